"""Root-only: `docker_names()` against a real dockerd running nginx-1 and nginx-2.

Needs root, docker.io and busybox-static (.ci/docker-setup.sh). Skips when not
root or when dockerd cannot start. The host firewall must be the same after as
before (legacy tables left empty aside: built-in ones cannot be unregistered).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.lab import dockerlab as lab
from tracelog.names import Names, docker_names

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: starts dockerd and changes the host firewall")


@dataclass
class LiveNames:
    """What the daemon named, the lab's own answer for the veths, and how to undo the lab."""

    names: Names
    veths: dict[str, str]
    before: lab.HostFirewall
    lab: ExitStack = field(default_factory=ExitStack)

    def teardown(self) -> None:
        """Stop Docker and restore the host firewall; safe to call twice."""
        self.lab.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveNames]:
    try:
        lab.require_tools()
    except lab.DockerUnavailable as err:
        pytest.skip(f"the Docker lab cannot run here: {err}")
    before = lab.save_host_firewall()
    stack = ExitStack()
    try:
        stack.enter_context(lab.docker_lab(tmp_path_factory.mktemp("names") / "logs", "legacy"))
    except lab.DockerUnavailable as err:
        pytest.skip(f"dockerd cannot run here: {err}")
    with stack:
        # the lab's way: `cat /sys/class/net/eth0/iflink` inside each container
        veths = {lab.host_veth(name): name for name in lab.CONTAINERS}
        found = LiveNames(docker_names(), veths, before, stack)
        yield found
        found.teardown()


def test_addresses_name_their_containers(live: LiveNames) -> None:
    assert live.names.address(lab.NGINX_1_IP) == lab.NGINX_1
    assert live.names.address(lab.NGINX_2_IP) == lab.NGINX_2


def test_host_veths_name_their_containers(live: LiveNames) -> None:
    assert len(live.veths) == 2
    assert {veth: live.names.interface(veth) for veth in live.veths} == live.veths


def test_docker0_is_the_bridge_network(live: LiveNames) -> None:
    assert live.names.interface(lab.BRIDGE) == "bridge"


def test_teardown_restores_host_firewall(live: LiveNames) -> None:
    live.teardown()
    assert lab.firewall_differences(live.before, lab.save_host_firewall()) == []
    assert not Path(f"/sys/class/net/{lab.BRIDGE}").exists()
