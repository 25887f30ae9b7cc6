"""`tracelog summary` and the filters shared with `parse`, on real captures."""

from __future__ import annotations

import csv
import io
import json

import pytest

from tests.conftest import RunCli
from tests.samples import SAMPLES

DOCKER = SAMPLES / "docker-legacy"
DROP_RUN = (
    "--rules",
    str(DOCKER / "iptables-save.drop.txt"),
    "--names",
    str(DOCKER / "docker-inspect.json"),
    str(DOCKER / "drop.dmesg"),
)
MIXED = SAMPLES / "lab-legacy/rsyslog-traditional.log"


def test_why_cannot_nginx_1_reach_nginx_2(run_cli: RunCli) -> None:
    run = run_cli("summary", "--src", "172.18.0.2", "--dst", "172.18.0.3", *DROP_RUN)
    assert run.status == 0
    answer = run.stdout.strip().splitlines()[-1]
    assert answer == (
        "3 packets from 172.18.0.2:56586 (nginx-1) to 172.18.0.3:80 (nginx-2) were dropped by "
        "filter DOCKER-USER rule 1: -s 172.18.0.2/32 -d 172.18.0.3/32 -p tcp -m tcp --dport 80 -j DROP."
    )
    assert "Drops by rule" in run.stdout


def test_summary_jsonl_sections(run_cli: RunCli) -> None:
    rows = [json.loads(line) for line in run_cli("summary", "-f", "jsonl", *DROP_RUN).stdout.splitlines()]
    flows = [row for row in rows if row["section"] == "flows"]
    assert flows == [
        {
            "section": "flows",
            "flow": 1,
            "host": None,
            "proto": "TCP",
            "client": "172.18.0.2:56586 (nginx-1)",
            "server": "172.18.0.3:80 (nginx-2)",
            "packets": 3,
            "requests": 3,
            "replies": 0,
            "path": "PREROUTING > FORWARD",
            "verdict": "DROP",
            "verdict_at": "filter:DOCKER-USER:rule:1",
            "verdict_rule": "-A DOCKER-USER -s 172.18.0.2/32 -d 172.18.0.3/32 -p tcp -m tcp --dport 80 -j DROP",
            "verdict_place": "filter DOCKER-USER rule 1",
        }
    ]
    hits = {(row["chain"], row["kind"], row["number"]): row["hits"] for row in rows if row["section"] == "rules"}
    assert hits[("DOCKER-USER", "rule", "1")] == 3
    assert hits[("PREROUTING", "policy", "3")] == 3
    assert rows[-1]["section"] == "answer"


def test_mixed_run_summary_counts_every_scenario(run_cli: RunCli) -> None:
    rules = [SAMPLES / "lab-legacy" / name for name in ("ruleset.iptables-save", "ruleset.ip6tables-save")]
    run = run_cli(
        "summary", "-f", "csv", "--table", "packets", "--rules", str(rules[0]), "--rules", str(rules[1]), str(MIXED)
    )
    packets = list(csv.DictReader(io.StringIO(run.stdout)))
    assert len(packets) == 44
    flows = list(csv.DictReader(io.StringIO(run_cli("summary", "-f", "csv", str(MIXED)).stdout)))
    assert len(flows) == len({row["flow"] for row in packets})


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (("--proto", "icmp"), 4),
        (("--proto", "TCP"), 13),
        # the client's 7 packets of the DNAT'ed connection carry the published port until DNAT; the
        # 6 replies leave from port 80 and are un-DNATed at POSTROUTING, after the last traced table
        (("--port", "8080"), 7),
        (("--dst", "172.18.0.3"), 2 + 7),  # 2 echo requests, and the client's packets after DNAT
        (("--src", "192.0.2.0/24"), 7),
        (("--chain", "nat:DOCKER"), 1),
        (("--verdict", "unknown"), 17),
    ],
)
def test_filters_on_parse(options: tuple[str, ...], expected: int, run_cli: RunCli) -> None:
    files = [str(SAMPLES / "lab-legacy" / name) for name in ("ping.dmesg", "dnat.dmesg")]
    assert len(run_cli("parse", "-f", "jsonl", *options, *files).records()) == expected


def test_filtered_packets_keep_their_numbers_and_flows_in_the_whole_trace(run_cli: RunCli) -> None:
    files = [str(SAMPLES / "lab-legacy" / name) for name in ("ping.dmesg", "dnat.dmesg")]
    every = run_cli("parse", "-f", "jsonl", *files).records()
    tcp = run_cli("parse", "-f", "jsonl", "--proto", "tcp", *files).records()
    assert tcp == [record for record in every if record["proto"] == "TCP"]
    assert tcp[0]["packet"] > 1  # the ICMP packets came first
    assert tcp[0]["flow"] > 1  # and their flows


def test_filter_by_verdict_and_container_name(run_cli: RunCli) -> None:
    dropped = run_cli("parse", "-f", "jsonl", "--verdict", "drop", "--name", "nginx-2", *DROP_RUN).records()
    assert len(dropped) == 3
    assert run_cli("parse", "-f", "jsonl", "--name", "nginx-9", *DROP_RUN).records() == []


def test_bad_filter_is_a_usage_error(run_cli: RunCli) -> None:
    run = run_cli("parse", "--src", "not-an-address", str(DOCKER / "ping.dmesg"))
    assert run.status == 2
    assert run.stderr == "tracelog: not an address or network: not-an-address\n"


def test_summary_of_nothing(run_cli: RunCli) -> None:
    run = run_cli("summary", "--proto", "sctp", str(DOCKER / "ping.dmesg"))
    assert run.status == 0
    assert run.stdout.strip().endswith("No traced packet matches.")


@pytest.mark.parametrize(
    ("sample", "dropped_by"),
    [
        # plain `nft monitor trace` prints no rule handle
        ("drop.nft-monitor", "a rule of filter DOCKER-USER: ip saddr 172.18.0.2 ip daddr 172.18.0.3 tcp dport 8080"),
        ("drop.xtables-monitor", "filter DOCKER-USER handle 20: -s 172.18.0.2/32 -d 172.18.0.3/32 -p tcp"),
    ],
)
def test_nft_drops_are_named_as_the_timeline_names_them(sample: str, dropped_by: str, run_cli: RunCli) -> None:
    path = str(SAMPLES / "lab-nft" / sample)
    answer = run_cli("summary", path).stdout.strip().splitlines()[-1]
    assert f"were dropped by {dropped_by}" in answer
    assert answer.endswith(" 1 packet was accepted.")
    timeline = run_cli("parse", path).stdout
    assert f"DROPPED by {dropped_by}" in timeline


def test_summary_tables_show_nft_handles_as_nft_does(run_cli: RunCli) -> None:
    """`handle 20`, as `nft -a list ruleset` prints it, never the trace's hex `0x14`."""
    text = run_cli("summary", str(SAMPLES / "lab-nft/drop.xtables-monitor")).stdout
    assert "0x" not in text
    assert "filter DOCKER-USER handle 20" in text
