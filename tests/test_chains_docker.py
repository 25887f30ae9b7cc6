"""Docker's chains and drop reasons, read from the real captures (samples/docker29-nft, samples/docker-legacy)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import RunCli
from tests.samples import SAMPLES
from tracelog.chains import Reason, docker
from tracelog.chains.comments import rule_comment

DOCKER29 = SAMPLES / "docker29-nft"


def deciding_step(record: dict[str, Any]) -> dict[str, Any]:
    """The step the verdict line names."""
    step: dict[str, Any] = record["steps"][record["verdict_step"] - 1]
    return step


def reason_of(step: dict[str, Any]) -> Reason | None:
    return docker.verdict_reason(step["table"], step["chain"], step["rule"], step["verdict"])


@pytest.mark.parametrize(
    ("scenario", "label"),
    [("icc", "ICC"), ("direct", "DROP DIRECT ACCESS"), ("unpublished", "UNPUBLISHED PORT DROP")],
)
def test_each_docker29_drop_is_named_by_its_comment(scenario: str, label: str, run_cli: RunCli) -> None:
    records = run_cli("parse", "-f", "jsonl", str(DOCKER29 / f"{scenario}.nft-monitor")).records()
    assert records
    for record in records:
        step = deciding_step(record)
        assert (record["verdict"], step["table"]) == ("DROP", "docker-bridges")
        reason = reason_of(step)
        assert reason is not None
        assert reason.label == label
        assert reason.meaning


def test_icc_means_one_thing_accepted_and_another_dropped() -> None:
    rule = 'iifname "docker0" counter drop comment "ICC"'
    dropped = docker.verdict_reason("docker-bridges", "filter-forward-in__docker0", rule, "DROP")
    allowed = docker.verdict_reason(
        "docker-bridges", "filter-forward-in__docker0", rule.replace("drop", "accept"), "ACCEPT"
    )
    assert dropped is not None
    assert allowed is not None
    assert "may not" in dropped.meaning
    assert "may not" not in allowed.meaning


def test_an_accepted_published_port_has_no_drop_reason(run_cli: RunCli) -> None:
    records = run_cli("parse", "-f", "jsonl", str(DOCKER29 / "published.nft-monitor")).records()
    syn = records[0]
    step = deciding_step(syn)
    assert (syn["verdict"], step["chain"]) == ("ACCEPT", "filter-forward-in__docker0")
    assert reason_of(step) is None
    assert syn["endpoint"] == "172.18.0.3:80"  # one packet across the DNAT of nat-prerouting-and-output


def test_the_forward_policy_trap_shows_docker_accepting_and_iptables_dropping(run_cli: RunCli) -> None:
    """iptables-nft's FORWARD chain, there before Docker's tables, drops what docker-bridges accepted."""
    records = run_cli("parse", "-f", "jsonl", str(DOCKER29 / "forward-policy.nft-monitor")).records()
    assert records
    for record in records:
        steps = record["steps"]
        decided = deciding_step(record)
        assert (record["verdict"], decided["table"], decided["chain"], decided["kind"]) == (
            "DROP",
            "filter",
            "FORWARD",
            "policy",
        )
        filtering = [s for s in steps if s["table"] == "docker-bridges" and s["chain"].startswith("filter-")]
        accepted = [s for s in filtering if s["verdict"] == "ACCEPT"]
        assert [s["chain"] for s in accepted] == ["filter-forward-in__docker0"]
        assert reason_of(decided) is None


def test_docker29_base_chains_get_their_hooks(run_cli: RunCli) -> None:
    records = run_cli("parse", "-f", "jsonl", str(DOCKER29 / "published.nft-monitor")).records()
    hooks = {(s["chain"], s["hook"]) for r in records for s in r["steps"] if s["table"] == "docker-bridges"}
    assert ("raw-PREROUTING", "PREROUTING") in hooks
    assert ("filter-FORWARD", "FORWARD") in hooks
    assert ("filter-forward-in__docker0", "FORWARD") in hooks
    assert ("nat-POSTROUTING", "POSTROUTING") in hooks


def test_every_docker29_chain_of_the_captures_is_described(run_cli: RunCli) -> None:
    for capture in sorted(DOCKER29.glob("*.nft-monitor")):
        for record in run_cli("parse", "-f", "jsonl", str(capture)).records():
            for step in record["steps"]:
                if step["table"] == "docker-bridges":
                    meaning = docker.describe_chain(step["table"], step["chain"])
                    assert meaning is not None, step["chain"]
                    assert meaning.writer == docker.NFT_WRITER


def test_per_bridge_chains_name_their_bridge() -> None:
    meaning = docker.describe_chain("docker-bridges", "filter-forward-in__br-0123456789ab")
    assert meaning is not None
    assert meaning.network == "br-0123456789ab"
    assert docker.describe_chain("docker-bridges", "filter-forward-in__") is None
    assert docker.describe_chain("docker-bridges", "my-own-chain") is None


def test_docker_iptables_chains_of_the_docker_capture_are_described() -> None:
    save = (SAMPLES / "docker-legacy" / "iptables-save.txt").read_text()
    table = ""
    for line in save.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":") and line.startswith(":DOCKER"):
            chain = line[1:].split()[0]
            assert docker.describe_chain(table, chain) is not None, (table, chain)
    assert docker.describe_chain("filter", "KUBE-FORWARD") is None


def test_a_users_drop_in_docker_user_has_no_docker_reason(run_cli: RunCli) -> None:
    sample = SAMPLES / "docker-legacy"
    rules = ("--rules", str(sample / "iptables-save.drop.txt"))
    records = run_cli("parse", "-f", "jsonl", *rules, str(sample / "drop.dmesg")).records()
    step = deciding_step(records[0])
    assert step["chain"] == "DOCKER-USER"
    assert reason_of(step) is None


# Docker 28's iptables rules carry no comment: moby's iptabler writes them so
# (testdata/TestIptabler goldens); their shape names them.
@pytest.mark.parametrize(
    ("table", "chain", "rule", "label"),
    [
        ("raw", "PREROUTING", "-d 172.18.0.3/32 ! -i docker0 -j DROP", "DROP DIRECT ACCESS"),
        ("raw", "PREROUTING", "-d 127.0.0.1/32 ! -i lo -p tcp -m tcp --dport 8080 -j DROP", "DROP REMOTE LOOPBACK"),
        ("filter", "DOCKER", "! -i docker0 -o docker0 -j DROP", "UNPUBLISHED PORT DROP"),
        ("filter", "DOCKER-FORWARD", "-i docker0 -o docker0 -j DROP", "ICC"),
        ("filter", "FORWARD", "-i docker0 -o docker0 -j DROP", "ICC"),
        ("filter", "DOCKER-ISOLATION-STAGE-2", "-o docker0 -j DROP", "INTER-NETWORK"),
        ("filter", "DOCKER-INTERNAL", "! -s 192.168.0.0/24 -o br-dummy -j DROP", "INTERNAL NETWORK INGRESS"),
        ("filter", "DOCKER-INTERNAL", "! -d 192.168.0.0/24 -i br-dummy -j DROP", "INTERNAL NETWORK EGRESS"),
        ("filter", "DOCKER-ISOLATION-STAGE-1", "-i br-dummy ! -d 192.168.0.0/24 -j DROP", "INTERNAL NETWORK EGRESS"),
    ],
)
def test_docker_iptables_drops_are_named_by_their_shape(table: str, chain: str, rule: str, label: str) -> None:
    reason = docker.verdict_reason(table, chain, rule, "DROP")
    assert reason is not None
    assert reason.label == label


@pytest.mark.parametrize(
    ("table", "chain", "rule", "verdict"),
    [
        ("raw", "PREROUTING", "-d 172.18.0.3/32 -i docker0 -j DROP", "DROP"),  # not negated: not Docker's
        ("filter", "DOCKER", "-d 172.18.0.3/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT", "ACCEPT"),
        ("filter", "DOCKER", "-i docker0 -o docker0 -j DROP", "DROP"),
        ("filter", "DOCKER-USER", "-s 172.18.0.2/32 -j DROP", "DROP"),
        ("nat", "DOCKER", "-i docker0 -j RETURN", "RETURN"),
        ("filter", "DOCKER-FORWARD", "-i docker0 -o eth0 -j DROP", "DROP"),
    ],
)
def test_other_rules_get_no_docker_reason(table: str, chain: str, rule: str, verdict: str) -> None:
    assert docker.verdict_reason(table, chain, rule, verdict) is None


@pytest.mark.parametrize(
    ("rule", "comment"),
    [
        ('iifname "docker0" counter drop comment "ICC"', "ICC"),
        ('counter drop comment "UNPUBLISHED PORT DROP"', "UNPUBLISHED PORT DROP"),
        ('-m comment --comment "dnat name: tpnet id: ae6e" -j NETAVARK-DN-X', "dnat name: tpnet id: ae6e"),
        ("-m comment --comment tracelog:1,x -j TRACE", "tracelog:1,x"),
        (r'-m comment --comment "say \"hi\"" -j ACCEPT', 'say "hi"'),
        ("ip daddr 10.0.0.1 accept", None),
        (None, None),
    ],
)
def test_rule_comment(rule: str | None, comment: str | None) -> None:
    assert rule_comment(rule) == comment
