"""Every real kernel-log capture: the packets found are the packets the kernel traced."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import RunCli
from tests.samples import SAMPLES, kernel_log_samples, trace_samples, traced_packets

SAMPLE_IDS = [str(path.relative_to(SAMPLES)) for path in kernel_log_samples()]


@pytest.mark.parametrize("sample", trace_samples(), ids=[str(path.relative_to(SAMPLES)) for path in trace_samples()])
def test_packets_match_the_kernel_counters(sample: Path, run_cli: RunCli) -> None:
    run = run_cli("parse", "--format", "jsonl", str(sample))
    records = run.records()
    assert run.status == 0, run.stderr
    assert "not understood" not in run.stderr
    assert len(records) == traced_packets(sample)
    assert [record["packet"] for record in records] == list(range(1, len(records) + 1))
    for record in records:
        first = record["steps"][0]
        # native nft rulesets switch tracing on in their own raw-priority chains
        # (samples/lab-nft/native.ruleset.nft: trace_prerouting, trace_output)
        assert first["table"] == "raw" or first["chain"].startswith("trace_"), record


# The test's own oracle for a legacy TRACE record, independent of the parser.
TRACE_TAG = re.compile(r"TRACE: (?:raw|mangle|nat|filter|security):\S+:(?:rule|return|policy):\d+ ")


@pytest.mark.parametrize("sample", kernel_log_samples(), ids=SAMPLE_IDS)
def test_every_trace_line_becomes_exactly_one_step(sample: Path, run_cli: RunCli) -> None:
    lines = sample.read_text().splitlines()
    trace_lines = [number for number, line in enumerate(lines, start=1) if TRACE_TAG.search(line)]
    steps = [
        (step["source"], step["line"])
        for record in run_cli("parse", "-f", "jsonl", str(sample)).records()
        for step in record["steps"]
    ]
    assert sorted(line for _, line in steps) == trace_lines
    assert {source for source, _ in steps} == {str(sample)}


def test_bridged_ping_between_docker_containers(run_cli: RunCli) -> None:
    """nginx-1 (veth1e06770) pings nginx-2 (veth1332838) over docker0 twice."""
    records = run_cli("parse", "-f", "jsonl", str(SAMPLES / "docker-legacy/ping.dmesg")).records()
    requests = [r for r in records if r["icmp_type"] == 8]
    replies = [r for r in records if r["icmp_type"] == 0]
    assert len(requests) == len(replies) == 2
    assert {(r["src"], r["dst"]) for r in requests} == {("172.18.0.2", "172.18.0.3")}
    first = records[0]["steps"]
    assert [s["hook"] for s in first] == ["PREROUTING"] * 2 + ["FORWARD"] * 7 + ["POSTROUTING"]
    assert first[0]["physin"] == "veth1e06770"
    assert first[-1]["physout"] == "veth1332838"
    assert first[-1]["in"] is None  # the kernel prints IN= empty at POSTROUTING
    # only the first packet of the connection is seen by the nat table
    assert all(s["table"] != "nat" for r in records[1:] for s in r["steps"])


def test_dnat_rewrite_is_shown_where_it_happens(run_cli: RunCli) -> None:
    records = run_cli("parse", "-f", "jsonl", str(SAMPLES / "lab-legacy/dnat.dmesg")).records()
    syn = records[0]
    assert (syn["src"], syn["dst"], syn["dport"]) == ("192.0.2.10", "192.0.2.1", 8080)
    assert syn["rewrites"] == [
        {"step": 4, "field": "dst", "from": "192.0.2.1", "to": "172.18.0.3"},
        {"step": 4, "field": "dport", "from": 8080, "to": 80},  # ports are ints, as in sport/dport
    ]
    assert (syn["endpoint"], syn["endpoint_name"]) == ("172.18.0.3:80", None)
    assert [s["chain"] for s in syn["steps"][1:3]] == ["PREROUTING", "DOCKER"]
    assert syn["steps"][3]["dst"] == "172.18.0.3"
    # later packets of the connection are rewritten by conntrack without a nat line
    later = [r for r in records if r["dst"] == "192.0.2.1" and r["packet"] > 1]
    assert later
    assert all(r["rewrites"] and r["rewrites"][0]["to"] == "172.18.0.3" for r in later)


def test_a_dnat_flow_shows_both_the_published_and_the_real_end(run_cli: RunCli) -> None:
    """The lab's nginx-2 has the address of the Docker capture's nginx-2: its inspect output names it."""
    names = ("--names", str(SAMPLES / "docker-legacy/docker-inspect.json"))
    dnat = str(SAMPLES / "lab-legacy/dnat.dmesg")
    syn = run_cli("parse", "-f", "jsonl", *names, dnat).records()[0]
    assert (syn["endpoint"], syn["endpoint_name"]) == ("172.18.0.3:80", "nginx-2")
    title = run_cli("parse", *names, dnat).stdout.splitlines()[0]
    assert title.startswith("#1 TCP SYN 192.0.2.10:55580 → 192.0.2.1:8080 → 172.18.0.3:80 (nginx-2)  in eth0")
    flows = run_cli("summary", "--format", "csv", "--table", "flows", *names, dnat).stdout
    assert "192.0.2.1:8080 → 172.18.0.3:80 (nginx-2)" in flows


def test_icmp_error_keeps_the_packet_it_reports(run_cli: RunCli) -> None:
    records = run_cli("parse", "-f", "jsonl", str(SAMPLES / "lab-legacy/udp-closed.dmesg")).records()
    datagram, error = records
    assert datagram["proto"] == "UDP"
    assert (error["proto"], error["icmp_type"], error["icmp_code"]) == ("ICMP", 3, 3)
    assert (error["src"], error["dst"]) == (datagram["dst"], datagram["src"])


def test_ipv6_addresses_are_compressed(run_cli: RunCli) -> None:
    records = run_cli("parse", "-f", "jsonl", str(SAMPLES / "lab-legacy/ipv6-ping.dmesg")).records()
    echo = [r for r in records if r["icmp_type"] == 128]
    assert echo
    assert all(r["family"] == "ipv6" and r["proto"] == "ICMPv6" for r in records)
    assert (echo[0]["src"], echo[0]["dst"]) == ("fd00:18::2", "fd00:18::3")


@pytest.mark.parametrize(
    ("name", "host", "first_seen"),
    [
        ("ping.dmesg", None, float),
        ("dnat.dmesg-T", None, str),
        ("udp-closed.dmesg-r", None, float),
        ("rsyslog-traditional.log", "vm", float),
        ("rsyslog-fileformat.log", "vm", str),
        ("journalctl.txt", "vm", str),
    ],
)
def test_each_prefix_gives_host_and_time(name: str, host: str | None, first_seen: type, run_cli: RunCli) -> None:
    records = run_cli("parse", "-f", "jsonl", "--year", "2026", str(SAMPLES / "lab-legacy" / name)).records()
    assert records
    assert {r["host"] for r in records} == {host}
    assert all(isinstance(r["first_seen"], first_seen) for r in records)


def test_look_alikes_in_a_real_log_are_skipped(run_cli: RunCli) -> None:
    """-j LOG lines (one with a "TRACE: " prefix), ebtables "TRACE: eb:" lines and the
    x_tables "TRACE target" message sit between real TRACE lines."""
    run = run_cli("parse", "-f", "jsonl", str(SAMPLES / "lookalikes/mixed.dmesg"))
    assert run.status == 0
    assert len(run.records()) == 4
    assert "skipped 3 lookalike, 4 other" in run.stderr


def test_loopback_packet_is_one_timeline_across_both_passes(run_cli: RunCli) -> None:
    """Out through OUTPUT/POSTROUTING, back in through PREROUTING/INPUT on lo: one packet."""
    records = run_cli("parse", "-f", "jsonl", str(SAMPLES / "lab-legacy/loopback.dmesg")).records()
    syn = next(r for r in records if r["tcp_flags"] == ["SYN"])
    hooks = [s["hook"] for s in syn["steps"]]
    assert hooks[0] == "OUTPUT"
    assert hooks[-1] == "INPUT"
    assert "PREROUTING" in hooks
    assert {"field": "dport", "from": 8081, "to": 8080} in [
        {k: v for k, v in r.items() if k != "step"} for r in syn["rewrites"]
    ]
    syn_ack = next(r for r in records if set(r["tcp_flags"]) == {"SYN", "ACK"})
    assert [(r["field"], r["from"], r["to"]) for r in syn_ack["rewrites"]] == [("sport", 8080, 8081)]


def test_mixed_run_is_the_sum_of_its_scenarios(run_cli: RunCli) -> None:
    """The rsyslog capture holds every lab scenario in one run, other kernel messages between."""
    run = run_cli("parse", "-f", "jsonl", str(SAMPLES / "lab-legacy/rsyslog-traditional.log"))
    protos = [r["proto"] for r in run.records()]
    assert protos.count("ICMPv6") == 6
    assert "skipped 14 other" in run.stderr


@pytest.mark.parametrize(
    "name", ["lab-nft/dnat.nft-monitor", "lab-nft/dnat.xtables-monitor", "lab-nft/native.nft-monitor"]
)
def test_dnat_rewrite_in_the_nft_formats(name: str, run_cli: RunCli) -> None:
    """The DNAT'ed connection from tl-ext: each client packet is one timeline showing its rewrite."""
    records = run_cli("parse", "-f", "jsonl", str(SAMPLES / name)).records()
    client = [r for r in records if r["src"] == "192.0.2.10" and r["dport"] == 8080]
    assert client
    for record in client:
        fields = {(r["field"], r["from"], r["to"]) for r in record["rewrites"]}
        assert ("dst", "192.0.2.1", "172.18.0.3") in fields
        assert ("dport", 8080, 80) in fields
    assert all(r["verdict"] is not None for r in records)  # nft traces carry their verdicts


def test_xtables_monitor_icmp_takes_its_protocol_from_the_rule_it_matched(run_cli: RunCli) -> None:
    """xtables-monitor prints no protocol for ICMP; the TRACE rule's `-p icmp` the packet matched says it."""
    run = run_cli("parse", "-f", "jsonl", str(SAMPLES / "docker-nft/ping.xtables-monitor"))
    assert {record["proto"] for record in run.records()} == {"ICMP"}
    title = run_cli("parse", str(SAMPLES / "lab-nft/udp-closed.xtables-monitor")).stdout.splitlines()[0]
    assert title.startswith("#1 (protocol not shown) 172.18.0.2:")  # no rule pins it: said plainly, not `?`


def test_partial_says_what_of_a_pasted_step_was_not_read_whole(run_cli: RunCli) -> None:
    """A redacted source address: the step and the packet say so; an undamaged capture says nothing."""
    lines = (SAMPLES / "docker-legacy/ping.dmesg").read_text().splitlines()
    pasted = "\n".join([lines[0].replace("SRC=172.18.0.2", "SRC=x.x.x.x"), *lines[1:]]) + "\n"
    first, *others = run_cli("parse", "-f", "jsonl", stdin=pasted).records()
    assert first["steps"][0]["partial"]["redacted"] == ["src"]
    assert first["partial"]["redacted"] == ["src"]
    assert len(others) == 3  # the capture's other packets: the redacted step joined its own by its IP id
    assert all(step["partial"] is None for record in others for step in record["steps"])
    whole = run_cli("parse", "-f", "jsonl", str(SAMPLES / "docker-legacy/ping.dmesg")).records()
    assert all(record["partial"] is None for record in whole)


def test_filters_pass_over_addresses_a_paste_hid(run_cli: RunCli) -> None:
    """`--src` matches the steps that show an address: a packet whose every step hides it matches nothing."""
    lines = (SAMPLES / "docker-legacy/ping.dmesg").read_text().splitlines()
    hidden = [line.replace("SRC=172.18.0.2", "SRC=x.x.x.x") for line in lines]
    run = run_cli("parse", "-f", "jsonl", "--src", "172.18.0.2", stdin="\n".join([hidden[0], *lines[1:]]) + "\n")
    assert run.status == 0, run.stderr
    (first, *_) = run.records()
    assert first["steps"][0]["src"] == "x.x.x.x"  # in a packet whose other steps show the address
    run = run_cli("parse", "-f", "jsonl", "--src", "172.18.0.2", stdin="\n".join(hidden) + "\n")
    assert run.status == 0, run.stderr
    assert not run.records()
