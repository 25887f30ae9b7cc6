"""Rendered output pinned by golden files (tests/golden/).

A change in output is a reviewed diff: regenerate on purpose with
`TRACELOG_UPDATE_GOLDEN=1 pytest tests/test_golden.py` and read the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import RunCli
from tests.samples import SAMPLES

GOLDEN = Path(__file__).parent / "golden"
CASES = [
    ("docker-legacy/ping.dmesg", "table"),
    ("lab-legacy/dnat.dmesg", "table"),
    ("lab-legacy/udp-closed.dmesg", "table"),
    ("lab-legacy/ipv6-ping.dmesg", "table"),
    ("docker-legacy/ping.dmesg", "jsonl"),
    ("lab-legacy/dnat.dmesg", "jsonl"),
    ("lab-legacy/udp-closed.dmesg", "csv"),
]


@pytest.mark.parametrize(("sample", "output"), CASES, ids=[f"{s}-{o}" for s, o in CASES])
def test_output_matches_golden_file(sample: str, output: str, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(SAMPLES.parent)  # sources are printed as given: keep them relative
    run = run_cli("parse", "--format", output, f"samples/{sample}")
    golden = GOLDEN / f"{sample.replace('/', '__')}.{output}"
    if os.environ.get("TRACELOG_UPDATE_GOLDEN"):
        golden.write_text(run.stdout)
    assert run.stdout == golden.read_text()
