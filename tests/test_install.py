"""A plain `pip install .` brings everything the README's commands use."""

from __future__ import annotations

from importlib.metadata import requires

import pytest
from packaging.requirements import Requirement


@pytest.mark.parametrize("package", ["python-iptables", "pyarrow", "typer", "lark", "pandas", "rich", "orjson"])
def test_the_plain_install_requires(package: str) -> None:
    """`tracelog enable` on a legacy host needs python-iptables, `--format parquet` pyarrow: no extras."""
    plain = [Requirement(text) for text in requires("tracelog") or []]
    assert any(requirement.name == package and requirement.marker is None for requirement in plain)
