"""Root-only: `podman_names()` against a real Podman service on a socket of the test's own.

Needs root and Debian's podman; skips without them. Only a network is created
(no container starts, so netavark writes no firewall rule), and it is removed
again, as is the service.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tracelog.errors import Unavailable
from tracelog.names import podman_names

pytestmark = [
    pytest.mark.lab,
    pytest.mark.root_only,
    pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed"),
]


@pytest.fixture
def podman_service(tmp_path: Path) -> Iterator[Path]:
    """`podman system service` listening on a socket in the test's directory."""
    sock = tmp_path / "podman.sock"
    service = subprocess.Popen(
        ["podman", "system", "service", "--time=0", f"unix://{sock}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if not sock.exists():
            pytest.skip("podman system service did not start")
        yield sock
    finally:
        service.terminate()
        service.wait(timeout=20)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: rootful Podman")
def test_podman_names_names_a_networks_bridge(podman_service: Path) -> None:
    name = f"tp-names-{uuid.uuid4().hex[:8]}"
    subprocess.run(["podman", "network", "create", "--subnet", "10.89.250.0/24", name], check=True, capture_output=True)
    try:
        names = podman_names(podman_service)
    finally:
        subprocess.run(["podman", "network", "rm", "-f", name], check=False, capture_output=True)
    bridges = [bridge for bridge, network in names.networks.items() if network == name]
    assert len(bridges) == 1
    assert bridges[0].startswith("podman")
    assert name in names.network_ids.values()


def test_a_stopped_service_is_one_unavailable_error(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="cannot reach the Podman service"):
        podman_names(tmp_path / "none.sock")
