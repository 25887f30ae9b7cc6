"""Root only: `tracelog doctor` in a namespace holding Docker 29's nftables rules and an iptables FORWARD DROP.

The namespace (`tp-doc-…`) is the test's own and is deleted with everything in it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from tests.lab.docker29 import CONFIG, docker29_ruleset

pytestmark = [
    pytest.mark.lab,
    pytest.mark.root_only,
    pytest.mark.skipif(shutil.which("iptables-nft") is None, reason="iptables-nft is not installed"),
]


@pytest.fixture
def namespace() -> Iterator[str]:
    name = f"tp-doc-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def in_namespace(name: str, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", name, *argv], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def test_doctor_warns_that_iptables_drops_what_docker_accepted(namespace: str) -> None:
    assert in_namespace(namespace, "nft", "-f", "-", stdin=docker29_ruleset(CONFIG)).returncode == 0
    before = in_namespace(namespace, sys.executable, "-m", "tracelog", "doctor", "--backend", "nft")
    assert "forward policy" not in before.stdout
    assert in_namespace(namespace, "iptables-nft", "-P", "FORWARD", "DROP").returncode == 0
    after = in_namespace(namespace, sys.executable, "-m", "tracelog", "doctor", "--backend", "nft")
    [line] = [line for line in after.stdout.splitlines() if "forward policy" in line]
    assert "iptables-nft has policy DROP" in line
    assert "Docker's (ip docker-bridges)" in line
