"""The verdict names the step that decided a packet's fate, never a table that only passed it on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import tracelog
from tests.conftest import RunCli
from tests.samples import SAMPLES, trace_samples
from tracelog.netfilter import passes_packet_on

DOCKER_RULES = SAMPLES / "docker-legacy/iptables-save.txt"
LAB_RULES = [SAMPLES / "lab-legacy/ruleset.iptables-save", SAMPLES / "lab-legacy/ruleset.ip6tables-save"]
PASS_ON_TABLES = ("raw", "mangle", "nat")


def deciding_step(record: dict[str, Any]) -> dict[str, Any]:
    step: dict[str, Any] = record["steps"][record["verdict_step"] - 1]
    return step


def test_a_forwarded_ping_is_accepted_by_the_filter_rule_not_the_nat_policy(run_cli: RunCli) -> None:
    """The first echo request crosses nat POSTROUTING after filter FORWARD rule 6 accepted it."""
    run = run_cli("parse", "-f", "jsonl", "--rules", str(DOCKER_RULES), str(SAMPLES / "docker-legacy/ping.dmesg"))
    first = run.records()[0]
    assert first["steps"][-1]["table"] == "nat"  # the trace goes on past the deciding step
    assert (first["verdict"], first["verdict_at"]) == ("ACCEPT", "filter:FORWARD:rule:6")
    assert deciding_step(first)["rule"] == "-A FORWARD -i docker0 -o docker0 -j ACCEPT"


def test_the_timeline_names_the_deciding_rule(run_cli: RunCli) -> None:
    run = run_cli("parse", "--rules", str(DOCKER_RULES), str(SAMPLES / "docker-legacy/ping.dmesg"))
    first = run.stdout.split("\n\n")[0]
    assert first.splitlines()[-1] == "ACCEPTED by filter FORWARD rule 6: -i docker0 -o docker0 -j ACCEPT"


def test_a_dnat_rule_is_a_rewrite_not_the_verdict(run_cli: RunCli) -> None:
    """In iptables-nft traces a DNAT rule's step says ACCEPT: the nat table then passes the packet on."""
    for name in ("dnat.nft-monitor", "dnat.xtables-monitor"):
        records = run_cli("parse", "-f", "jsonl", str(SAMPLES / "lab-nft" / name)).records()
        dnatted = [record for record in records if record["rewrites"]]
        assert dnatted
        for record in dnatted:
            assert deciding_step(record)["table"] == "filter", (name, record["verdict_at"])


@pytest.mark.parametrize("sample", trace_samples(), ids=lambda path: f"{path.parent.name}/{path.name}")
def test_a_pass_on_step_decides_only_when_nothing_else_did(sample: Path, run_cli: RunCli) -> None:
    rules = [f"--rules={path}" for path in LAB_RULES] if sample.parent.name == "lab-legacy" else []
    for record in run_cli("parse", "-f", "jsonl", *rules, str(sample)).records():
        if record["verdict_step"] is None:
            continue
        decided = deciding_step(record)
        if decided["verdict"] in ("DROP", "REJECT"):
            continue
        deciding_elsewhere = [
            step
            for step in record["steps"]
            if step["verdict"] in ("ACCEPT", "DROP", "REJECT") and not passes_packet_on(step["table"], step["chain"])
        ]
        if deciding_elsewhere:
            assert decided == deciding_elsewhere[-1], record["verdict_at"]


@pytest.mark.parametrize(
    ("table", "chain", "passes_on"),
    [
        ("filter", "FORWARD", False),
        ("security", "INPUT", False),
        ("raw", "PREROUTING", True),
        ("mangle", "POSTROUTING", True),
        ("nat", "DOCKER", True),
        # native tables: the chain's type is guessed from the names
        ("filter", "forward", False),
        ("fw4", "dstnat", True),
        ("fw4", "srcnat_wan", True),
        ("docker-bridges", "nat-postrouting", True),
        ("docker-bridges", "raw-prerouting", True),
        ("docker-bridges", "filter-forward-in__docker0", False),
        ("kube-proxy", "nat-prerouting", True),
        ("inet-filter", "input", False),
    ],
)
def test_which_chains_pass_a_packet_on(table: str, chain: str, passes_on: bool) -> None:
    assert passes_packet_on(table, chain) is passes_on


def test_an_nf_tables_reject_is_a_reject() -> None:
    """nf_tables traces a reject rule's verdict as `drop`; the packet was rejected, and says so."""
    trace = SAMPLES / "k8s-nftables" / "no-endpoints.handles.nft-monitor"
    refused = [packet for packet in tracelog.read_packets([str(trace)]) if packet["verdict"] in ("DROP", "REJECT")]
    assert refused
    for packet in refused:
        assert packet["verdict_step"] is not None
        step = packet["steps"][packet["verdict_step"] - 1]
        assert step["verdict"] == "DROP"  # as the trace printed it
        assert packet["verdict"] == "REJECT"
