"""Root-only: real Docker, a traced ping nginx-1 -> nginx-2, read by `tracelog parse`.

Needs root, a kernel with br_netfilter, docker.io and busybox-static
(.ci/docker-setup.sh). Skips when not root or when dockerd cannot start. The host
firewall must be the same after as before (legacy tables left empty aside: built-in
ones cannot be unregistered).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.lab import dockerlab as lab

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: starts dockerd and changes the host firewall")


@dataclass
class TracedPing:
    """A legacy-backend trace of `ping -c 2` nginx-1 -> nginx-2, and its undoing."""

    capture: Path
    result: lab.ScenarioResult
    veths: dict[str, str]
    before: lab.HostFirewall
    daemon: lab.DockerDaemon | None = None

    def teardown(self) -> None:
        """Stop Docker and restore the host firewall; safe to call twice."""
        if self.daemon is not None:
            lab.stop_dockerd(self.daemon)
            self.daemon = None
            lab.restore_host_firewall(self.before)


@pytest.fixture(scope="module")
def traced_ping(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TracedPing]:
    out = tmp_path_factory.mktemp("docker-legacy")
    try:
        lab.require_tools()
    except lab.DockerUnavailable as err:
        pytest.skip(f"the Docker lab cannot run here: {err}")
    before = lab.save_host_firewall()
    daemon: lab.DockerDaemon | None = None
    try:
        lab.set_iptables_backend("legacy")
        try:
            daemon = lab.start_dockerd(out / "logs")
        except lab.DockerUnavailable as err:
            pytest.skip(f"dockerd cannot run here: {err}")
        lab.build_busybox_image()
        lab.run_containers()
        veths = {
            ip: lab.host_veth(name)
            for name, ip in (
                (lab.NGINX_1, lab.NGINX_1_IP),
                (lab.NGINX_2, lab.NGINX_2_IP),
            )
        }
        lab.add_trace_rules("iptables-legacy")
        result = lab.trace_scenario(lab.PING, out, "legacy", veths.values())
        traced = TracedPing(out / "ping.dmesg", result, veths, before, daemon)
        daemon = None  # owned by `traced` from here on
        yield traced
        traced.teardown()
    finally:
        if daemon is not None:
            lab.stop_dockerd(daemon)
        lab.restore_host_firewall(before)


@pytest.fixture(scope="module")
def packets(traced_ping: TracedPing) -> list[dict[str, Any]]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tracelog",
            "parse",
            "--format",
            "jsonl",
            str(traced_ping.capture),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def test_kernel_traced_two_requests_and_two_replies(traced_ping: TracedPing) -> None:
    assert traced_ping.result.traced_packets == 4
    assert traced_ping.capture.read_text().count("TRACE: raw:PREROUTING:") == 4


def test_packet_count_matches_trace_counters(traced_ping: TracedPing, packets: list[dict[str, Any]]) -> None:
    assert len(packets) == traced_ping.result.traced_packets


def test_each_packet_starts_in_raw(packets: list[dict[str, Any]]) -> None:
    assert packets
    for packet in packets:
        assert packet["steps"][0]["table"] == "raw", packet


def test_bridged_steps_carry_the_containers_veths(traced_ping: TracedPing, packets: list[dict[str, Any]]) -> None:
    for packet in packets:
        assert str(packet["proto"]).lower() == "icmp"
        assert {packet["src"], packet["dst"]} == {lab.NGINX_1_IP, lab.NGINX_2_IP}
        ingress, egress = (
            traced_ping.veths[packet["src"]],
            traced_ping.veths[packet["dst"]],
        )
        for step in packet["steps"]:
            assert step["physin"] == ingress, step
        forwarded = [step for step in packet["steps"] if step["chain"] == "FORWARD"]
        assert forwarded, packet
        for step in forwarded:
            assert (step["in"], step["out"], step["physout"]) == (
                lab.BRIDGE,
                lab.BRIDGE,
                egress,
            ), step


def test_teardown_restores_host_firewall(traced_ping: TracedPing) -> None:
    traced_ping.teardown()
    assert lab.firewall_differences(traced_ping.before, lab.save_host_firewall()) == []
    assert not Path(f"/sys/class/net/{lab.BRIDGE}").exists()
