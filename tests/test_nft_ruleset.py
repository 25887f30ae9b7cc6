"""`--rules` with `nft list ruleset` output: the real snapshots read whole, and nft trace steps named from them."""

from __future__ import annotations

import re
from ipaddress import ip_address
from pathlib import Path

import pytest

import tracelog
from tests.conftest import RunCli
from tests.samples import SAMPLES
from tracelog.errors import InputError
from tracelog.events import Header, TraceEvent
from tracelog.nft_ruleset import NftElement, NftRule, is_nft_ruleset, parse_nft_ruleset
from tracelog.ruleset import load_rulesets

KUBE_PROXY = SAMPLES / "k8s-nftables/nft-list-ruleset.txt"
NFT_SNAPSHOTS = [
    KUBE_PROXY,
    SAMPLES / "k8s-nft/nft-list-ruleset.txt",
    SAMPLES / "docker-nft/nft-list-ruleset.txt",
    SAMPLES / "lab-nft/ruleset.nft",
    SAMPLES / "lab-nft/native.ruleset.nft",
    SAMPLES / "lookalikes/ruleset.nft",
]
# the test's own reading of a snapshot: a rule is a line in a chain that opens no block and is no property
_BLOCK = re.compile(r"^\s*(table|chain|set|map|flowtable)\s")
_PROPERTY = re.compile(r"^\s*(type |policy |comment |flags |elements |devices |\}|$)")


def expected_rules(text: str) -> dict[str, int]:
    """Rules per chain (`table/chain`), counted line by line."""
    rules: dict[str, int] = {}
    table = chain = None
    for line in text.splitlines():
        opened = _BLOCK.match(line)
        if opened and opened[1] == "table":
            table = line.split()[2]
        elif opened:
            chain = f"{table}/{line.split()[1]}" if opened[1] == "chain" else None
            if chain:
                rules[chain] = 0
        elif chain and line.startswith("\t\t") and not _PROPERTY.match(line):
            rules[chain] += 1
        elif line.strip() == "}" and line.startswith("\t") and not line.startswith("\t\t"):
            chain = None
    return rules


@pytest.mark.parametrize("snapshot", NFT_SNAPSHOTS, ids=lambda path: str(path.relative_to(SAMPLES)))
def test_every_chain_and_rule_of_a_real_snapshot_is_read(snapshot: Path) -> None:
    text = snapshot.read_text()
    ruleset = parse_nft_ruleset(text, snapshot.name)
    read = {
        f"{table.name}/{chain.name}": len(chain.rules)
        for table in ruleset.tables.values()
        for chain in table.chains.values()
    }
    assert read == expected_rules(text)
    assert is_nft_ruleset(text)


def test_handles_and_comments_are_kept_and_live_state_left_out() -> None:
    ruleset = parse_nft_ruleset(KUBE_PROXY.read_text(), "k")
    check = ruleset.tables[("ip", "kube-proxy")].chains["cluster-ips-check"].rules
    assert check[0] == NftRule(
        32, 'ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"'
    )
    assert check[0].statements == "ip daddr @cluster-ips reject"
    trace = ruleset.tables[("ip", "trace")].chains["trace_prerouting"].rules
    assert [rule.text for rule in trace] == ["ip saddr { 10.244.0.0/16, 198.51.100.10 } counter meta nftrace set 1"]


def test_map_elements_keep_their_values_and_comments_over_wrapped_lines() -> None:
    ruleset = parse_nft_ruleset(KUBE_PROXY.read_text(), "k")
    assert ruleset.element_comments("ip", "kube-proxy", "no-endpoint-services") == {
        "10.96.100.20 . tcp . 80": "default/empty:http"
    }
    service_ips = ruleset.tables[("ip", "kube-proxy")].sets["service-ips"].elements
    assert NftElement("10.96.100.10 . tcp . 80", "goto service-SUSTUHLJ-default/web/tcp/http") in service_ips
    assert len(service_ips) == 2  # printed over two lines
    assert [element.key for element in ruleset.tables[("ip", "kube-proxy")].sets["cluster-ips"].elements] == [
        "10.96.0.1",
        "10.96.100.10",
        "10.96.100.20",
    ]


def test_an_element_comment_may_hold_what_separates_elements() -> None:
    text = (
        "table ip t {\n\tmap m {\n\t\ttype ipv4_addr : verdict\n"
        '\t\telements = { 10.0.0.1 comment "a, b : }" : drop,\n\t\t\t     fd00::1 : accept }\n\t}\n}\n'
    )
    elements = parse_nft_ruleset(text, "t").tables[("ip", "t")].sets["m"].elements
    assert elements == (NftElement("10.0.0.1", "drop", "a, b : }"), NftElement("fd00::1", "accept"))


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("table ip t {\n\tchain c {\n\t\tip saddr 1.2.3.4 drop\n", "ends inside table ip t"),
        ("table ip t {\n\tchain c {\n}\n}\n}\n", ":5:1: not an nft list ruleset line"),
        ("table nope t {\n}\n", ":1:"),
    ],
)
def test_a_snapshot_that_is_not_one_is_an_input_error(text: str, where: str) -> None:
    with pytest.raises(InputError, match=re.escape(where)):
        parse_nft_ruleset(text, "snap")


def test_iptables_save_and_nft_snapshots_are_told_apart() -> None:
    rulesets = load_rulesets([str(SAMPLES / "k8s-nft/iptables-save.txt"), str(KUBE_PROXY)])
    assert set(rulesets.by_family) == {"ipv4"}
    assert [ruleset.source for ruleset in rulesets.nft] == [str(KUBE_PROXY)]
    assert not is_nft_ruleset((SAMPLES / "k8s-nft/iptables-save.txt").read_text())


def _step(rule: str | None, handle: str | None, chain: str = "cluster-ips-check") -> TraceEvent:
    header = Header("ipv4", ip_address("10.244.1.10"), ip_address("10.96.100.10"), "TCP")
    return TraceEvent("kube-proxy", chain, "rule", header, handle=handle, rule=rule, verdict="DROP", nf_family="ip")


@pytest.mark.parametrize(
    ("rule", "handle", "expected_rule", "mismatch"),
    [
        # plain nft monitor: the one rule of the chain that reads alike
        (
            "ip daddr @cluster-ips reject",
            None,
            'ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"',
            None,
        ),
        # nft -a monitor: the rule of that handle
        (
            "ip daddr @cluster-ips reject",
            "0x20",
            'ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"',
            None,
        ),
        # `unknown rule handle 32`: the trace has no text at all
        (None, "0x20", 'ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"', None),
        ("ip daddr @cluster-ips accept", "0x20", "ip daddr @cluster-ips accept", "reads otherwise"),
        ("ip daddr @cluster-ips reject", "0x63", "ip daddr @cluster-ips reject", "has no rule with handle 99"),
    ],
)
def test_an_nft_step_gets_its_rule_from_the_snapshot(
    rule: str | None, handle: str | None, expected_rule: str, mismatch: str | None
) -> None:
    annotated = load_rulesets([str(KUBE_PROXY)]).annotate(_step(rule, handle))
    assert annotated.rule == expected_rule
    assert (annotated.mismatch is None) == (mismatch is None)
    if mismatch is not None:
        assert mismatch in str(annotated.mismatch)


def test_steps_of_tables_the_snapshot_lacks_and_xtables_steps_are_left_alone() -> None:
    rulesets = load_rulesets([str(KUBE_PROXY)])
    xtables = _step("-4 -t filter -A KUBE-FORWARD -j ACCEPT", "0x2")
    assert rulesets.annotate(xtables) == xtables
    other = _step("drop", "0x2")._replace(table="elsewhere")
    assert rulesets.annotate(other) == other
    missing = rulesets.annotate(_step("drop", "0x2", chain="nope"))
    assert "chain ip kube-proxy nope is not in" in str(missing.mismatch)


@pytest.mark.parametrize("trace", ["wrong-port.nft-monitor", "wrong-port.handles.nft-monitor"])
def test_parse_rules_names_each_kube_proxy_step_from_the_snapshot(trace: str, run_cli: RunCli) -> None:
    run = run_cli("parse", "-f", "jsonl", "--rules", str(KUBE_PROXY), str(SAMPLES / "k8s-nftables" / trace))
    assert run.status == 0, run.stderr
    steps = [step for record in run.records() for step in record["steps"] if step["table"] == "kube-proxy"]
    assert steps
    assert all(step["mismatch"] is None for step in steps)
    rejected = [step for step in steps if step["chain"] == "cluster-ips-check"]
    assert {step["rule"] for step in rejected} == {
        'ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"'
    }


def test_the_library_reads_nft_snapshots_too() -> None:
    records = list(
        tracelog.read_packets([str(SAMPLES / "k8s-nftables/no-endpoints.handles.nft-monitor")], rules=[str(KUBE_PROXY)])
    )
    assert records
    assert all(step["mismatch"] is None for record in records for step in record["steps"])
