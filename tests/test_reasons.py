"""A rule's comment and a known writer's reason reach the contract, the timeline and the summary."""

from __future__ import annotations

import pytest

import tracelog
from tests.conftest import RunCli
from tests.samples import SAMPLES
from tracelog.chains.comments import rule_comment

DOCKER29 = SAMPLES / "docker29-nft"


def test_every_step_carries_its_rules_comment() -> None:
    """`comment` is what the rule text says after `comment`, and null for a rule without one or no rule."""
    steps = [step for packet in tracelog.read_packets([str(DOCKER29 / "icc.nft-monitor")]) for step in packet["steps"]]
    assert {step["comment"] for step in steps} == {None, "ICC"}
    assert all(step["comment"] == rule_comment(step["rule"]) for step in steps)
    assert all(step["comment"] is None for step in steps if not step["rule"] or "comment" not in step["rule"])


@pytest.mark.parametrize(
    ("capture", "label"),
    [("icc.nft-monitor", "ICC"), ("direct.nft-monitor", "DROP DIRECT ACCESS")],
)
def test_a_docker_drop_says_why(capture: str, label: str, run_cli: RunCli) -> None:
    """The deciding rule's reason is in the record, on the timeline's last line and in the summary's answer."""
    path = str(DOCKER29 / capture)
    dropped = [packet for packet in tracelog.read_packets([path]) if packet["verdict"] == "DROP"]
    assert dropped
    assert {packet["verdict_reason"]["label"] for packet in dropped if packet["verdict_reason"]} == {label}
    timeline = run_cli("parse", path).stdout
    assert f"— {label}: " in timeline
    assert f"({label}: " in run_cli("summary", path).stdout


def test_an_accepted_packet_has_no_reason() -> None:
    accepted = [
        packet
        for packet in tracelog.read_packets([str(DOCKER29 / "published.nft-monitor")])
        if packet["verdict"] == "ACCEPT"
    ]
    assert accepted
    assert all(packet["verdict_reason"] is None for packet in accepted)


def test_a_container_networks_chain_is_named_by_its_network() -> None:
    """netavark's per-network chains and Docker 29's per-bridge chains carry the network's name (with --names)."""
    netavark = SAMPLES / "netavark-nft"
    names = [str(netavark / "podman-network-inspect.json")]
    steps = [
        step
        for packet in tracelog.read_packets([str(netavark / "published.nft-monitor")], names=names)
        for step in packet["steps"]
    ]
    assert {step["network"] for step in steps if step["chain"].startswith("nv_")} == {"tpnet"}
    assert all(step["network"] is None for step in steps if step["chain"] in ("PREROUTING", "FORWARD"))
    docker_names = [str(SAMPLES / "docker-legacy" / "docker-network-inspect.json")]
    bridged = [
        step
        for packet in tracelog.read_packets([str(DOCKER29 / "icc.nft-monitor")], names=docker_names)
        for step in packet["steps"]
    ]
    assert {step["network"] for step in bridged if step["chain"].endswith("__docker0")} == {"bridge"}
    unnamed = [
        step for packet in tracelog.read_packets([str(DOCKER29 / "icc.nft-monitor")]) for step in packet["steps"]
    ]
    assert {step["network"] for step in unnamed} == {None}
