"""Fixtures for the namespace lab: skip cleanly where the kernel cannot be driven."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab import kernlog
from tests.lab.namespaces import LabNamespace, lab_namespace, require_backend
from tests.lab.netlab import DockerLikeLab

REQUIRED_TOOLS = ("ip", "iptables-legacy", "ip6tables-legacy", "dmesg")


def lab_unavailable_reason() -> str | None:
    """Why the lab cannot run on this machine, or None when it can."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, iptables, /dev/kmsg)"
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        return f"missing tools: {', '.join(missing)}"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"'ip netns' unavailable: {probe.stderr.strip()}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``root_only`` tests, with the reason, where the lab cannot run."""
    reason = lab_unavailable_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if item.get_closest_marker("root_only"):
            item.add_marker(skip)


@pytest.fixture(scope="module")
def legacy_lab() -> Iterator[DockerLikeLab]:
    """One iptables-legacy lab per module, logging to the kernel ring buffer.

    The ``tlt`` prefix keeps test namespaces apart from a capture run
    (``tl``) that may be going on at the same time.
    """
    with kernlog.nf_log_all_netns(), DockerLikeLab(backend="legacy", prefix="tlt") as lab:
        yield lab


@pytest.fixture(params=["legacy", "nft"])
def backend(request: pytest.FixtureRequest) -> str:
    require_backend(request.param)
    return str(request.param)


@pytest.fixture
def ns(tmp_path: Path, backend: str) -> Iterator[LabNamespace]:
    with lab_namespace(tmp_path / "state") as namespace:
        namespace.load_user_rules(backend)
        yield namespace
