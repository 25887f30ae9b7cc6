"""nftrace's rendering of legacy TRACE records: packet ids, rule texts, and the packet summaries it prints last."""

from __future__ import annotations

import ipaddress
import re
import shlex
from pathlib import Path

import pytest

from tests.conftest import RunCli
from tests.samples import SAMPLES, traced_packets
from tracelog.errors import ExitStatus
from tracelog.events import SourceLine, TraceEvent
from tracelog.parse import Caveat, LineParser, nftrace
from tracelog.parse.fields import Field
from tracelog.parse.nftrace import summary_fields
from tracelog.ruleset import read_ruleset

# the summaries pktdump writes for each protocol (its format strings, filled in):
# family, source end, destination end, text → the addresses, then the other fields
SUMMARIES: list[tuple[tuple[str, str, str, str], tuple[str, str], list[Field]]] = [
    (
        ("IP", "10.0.0.2.40000", "10.0.0.1.80", "Flags [S], seq 1, win 64240, length 0"),
        ("10.0.0.2", "10.0.0.1"),
        [("PROTO", "TCP"), ("SPT", 40000), ("DPT", 80), ("FLAG", "SYN"), ("SEQ", 1), ("WINDOW", 64240)],
    ),
    (
        ("IP", "10.0.0.1.80", "10.0.0.2.40000", "Flags [S.], seq 9, ack 2, win 65160, length 0"),
        ("10.0.0.1", "10.0.0.2"),
        [
            ("PROTO", "TCP"),
            ("SPT", 80),
            ("DPT", 40000),
            ("FLAG", "SYN"),
            ("FLAG", "ACK"),
            ("SEQ", 9),
            ("ACK", 2),
            ("WINDOW", 65160),
        ],
    ),
    (
        ("IP", "10.0.0.2", "10.0.0.1", "ICMP echo request, id 7, seq 1, length 64"),
        ("10.0.0.2", "10.0.0.1"),
        [("PROTO", "ICMP"), ("TYPE", 8), ("CODE", 0), ("ID", 7), ("SEQ", 1)],
    ),
    (
        ("IP", "10.0.0.2.40000", "10.0.0.1.80", "Flags [P.], seq 1:6, ack 1, win 502, options [nop,nop], length 5"),
        ("10.0.0.2", "10.0.0.1"),
        [
            ("PROTO", "TCP"),
            ("SPT", 40000),
            ("DPT", 80),
            ("FLAG", "PSH"),
            ("FLAG", "ACK"),
            ("SEQ", 1),
            ("ACK", 1),
            ("WINDOW", 502),
        ],
    ),
    (("IP", "10.0.0.2", "10.0.0.1", "ICMP, length 36"), ("10.0.0.2", "10.0.0.1"), [("PROTO", "ICMP")]),
    (
        ("IP6", "fd00::2", "fd00::1", "ICMP6, echo reply, id 8, seq 3, length 64"),
        ("fd00::2", "fd00::1"),
        [("PROTO", "ICMPv6"), ("TYPE", 129), ("CODE", 0), ("ID", 8), ("SEQ", 3)],
    ),
    (
        ("IP6", "fd00::2.5353", "fd00::1.53", "UDP, length 12"),
        ("fd00::2", "fd00::1"),
        [("PROTO", "UDP"), ("SPT", 5353), ("DPT", 53)],
    ),
    (
        ("IP", "10.0.0.1.53", "10.0.0.2.3000", "4711 1/0/0 A 10.0.0.9 (44)"),  # a DNS answer: UDP
        ("10.0.0.1", "10.0.0.2"),
        [("PROTO", "UDP"), ("SPT", 53), ("DPT", 3000)],
    ),
    (("IP", "10.0.0.1", "10.0.0.2", "GREv0, length 40"), ("10.0.0.1", "10.0.0.2"), []),  # not named: unknown
]


@pytest.mark.parametrize(("summary", "addresses", "fields"), SUMMARIES)
def test_a_packet_summary_gives_its_header_fields(
    summary: tuple[str, str, str, str], addresses: tuple[str, str], fields: list[Field]
) -> None:
    found = summary_fields(*summary)
    assert found[:2] == [("SRC", ipaddress.ip_address(addresses[0])), ("DST", ipaddress.ip_address(addresses[1]))]
    assert found[2:] == fields


# ---- the real captures (samples/nftrace: capture.sh, meta.json) ----------------------------------------------

CAPTURES = sorted(SAMPLES.glob("nftrace/*.nftrace"))
STEP_LINE = re.compile(r"^(?P<id>[0-9a-f]{12}) TRACE: (?P<table>\w+):(?P<chain>\S+):(?P<kind>\w+):(?P<number>\d+)")
SUMMARY_LINE = re.compile(r"^(?P<id>[0-9a-f]{12}) IP6? (?P<text>.*)$")


def step_lines(capture: Path) -> list[re.Match[str]]:
    return [found for line in capture.read_text().splitlines() if (found := STEP_LINE.match(line))]


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda path: path.name)
def test_every_step_line_is_a_step_of_its_packet_id(run_cli: RunCli, capture: Path) -> None:
    run = run_cli("parse", "--format", "jsonl", str(capture))
    assert run.status == ExitStatus.OK, run.stderr
    records = run.records()
    steps = [
        (record["trace_id"], step["table"], step["chain"], step["kind"])
        for record in records
        for step in record["steps"]
    ]
    assert steps == [(line["id"], line["table"], line["chain"], line["kind"]) for line in step_lines(capture)]
    assert all(len({step["line"] for step in record["steps"]}) == len(record["steps"]) for record in records)


@pytest.mark.parametrize("name", ["ping-drop.nftrace", "ipv6-ping-reject.nftrace", "ping-verbose.nftrace"])
def test_without_nat_the_packets_are_those_the_kernel_traced(run_cli: RunCli, name: str) -> None:
    records = run_cli("parse", "--format", "jsonl", str(SAMPLES / "nftrace" / name)).records()
    assert len(records) == traced_packets(SAMPLES / "nftrace" / name)


def test_a_packet_nat_rewrote_has_a_packet_id_before_and_after(run_cli: RunCli) -> None:
    """nftrace hashes the packet as logged: NAT changes its id, and each id's steps are a packet of their own."""
    capture = SAMPLES / "nftrace" / "exchange.nftrace"
    records = run_cli("parse", "--format", "jsonl", str(capture)).records()
    assert len(records) == len({line["id"] for line in step_lines(capture)}) > traced_packets(capture)
    first, second = records[:2]
    assert (first["dport"], second["dport"]) == (8080, 9000)
    assert first["steps"][-1]["rule"].endswith("-j DNAT --to-destination 10.77.0.1:9000")


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda path: path.name)
def test_each_packet_shows_what_its_summary_says(run_cli: RunCli, capture: Path) -> None:
    summaries = {
        found["id"]: found["text"] for line in capture.read_text().splitlines() if (found := SUMMARY_LINE.match(line))
    }
    for record in run_cli("parse", "--format", "jsonl", str(capture)).records():
        summary = summaries.get(record["trace_id"])
        if summary is None:  # `nftrace -v` prints gopacket's dump instead: the header stays unknown
            assert (record["src"], record["dst"]) == ("?", "?")
            continue
        source, destination = summary.split(": ", 1)[0].split(" > ")
        shown = ([record["src"], record["dst"]], [record["sport"], record["dport"]])
        ends = [end if record["sport"] is None else end.rsplit(".", 1) for end in (source, destination)]
        if record["sport"] is None:
            assert shown[0] == ends, summary
        else:
            assert shown == ([ends[0][0], ends[1][0]], [int(ends[0][1]), int(ends[1][1])]), summary
        assert record["proto"] == {"Flags": "TCP", "ICMP": "ICMP", "ICMP6,": "ICMPv6"}.get(
            summary.split(": ", 1)[1].split()[0], "UDP"
        )


@pytest.mark.parametrize("name", ["ping-drop.nftrace", "exchange.nftrace"])
def test_a_rule_text_is_the_rule_the_ruleset_holds(run_cli: RunCli, name: str) -> None:
    """Unquoted (a comment with quotes and a non-ASCII letter), each rule reads as the saved ruleset's own line."""
    ruleset = read_ruleset(str(SAMPLES / "nftrace" / "iptables-save.txt"))
    compared = 0
    for record in run_cli("parse", "--format", "jsonl", str(SAMPLES / "nftrace" / name)).records():
        for step in record["steps"]:
            if step["kind"] != "rule":
                continue
            saved = ruleset.resolve(step["table"], step["chain"], step["kind"], step["rulenum"]).rule
            assert saved is not None
            assert shlex.split(step["rule"]) == shlex.split(saved)
            compared += 1
    assert compared


def test_the_first_versions_lines_without_a_packet_id_are_steps_too() -> None:
    """nftrace's first versions printed no packet id: each step is read, its packet unknown."""
    lines = [
        line[13:]
        for line in (SAMPLES / "nftrace" / "ping-drop.nftrace").read_text().splitlines()
        if STEP_LINE.match(line)
    ]
    parser = LineParser(2026)
    events = [
        o
        for n, text in enumerate(lines, 1)
        for o in parser.parse(SourceLine("old", n, text))
        if isinstance(o, TraceEvent)
    ]
    assert len(events) == len(lines)
    assert all(event.trace_id is None for event in events)
    assert any(event.rule and "--comment" in event.rule for event in events)


def test_steps_held_for_a_summary_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past MAX_HELD steps waiting for their summary, the oldest goes on without one: memory stays bounded."""
    monkeypatch.setattr(nftrace, "MAX_HELD", 4)
    lines = [
        line for line in (SAMPLES / "nftrace" / "ping-drop.nftrace").read_text().splitlines() if STEP_LINE.match(line)
    ]
    parser = LineParser(2026)
    released = [
        o
        for n, text in enumerate(lines[:10], 1)
        for o in parser.parse(SourceLine("s", n, text))
        if isinstance(o, TraceEvent)
    ]
    assert [event.origin.line for event in released] == list(range(1, 7))
    assert len([o for o in parser.flush() if isinstance(o, TraceEvent)]) == 4


def read(lines: list[str]) -> list[object]:
    parser = LineParser(2026)
    outcomes: list[object] = [o for n, text in enumerate(lines, 1) for o in parser.parse(SourceLine("s", n, text))]
    return outcomes + parser.flush()


ICMP_STEP = '000000000007 TRACE: filter:INPUT:rule:1  "-A INPUT -p icmp -j ACCEPT"'


@pytest.mark.parametrize(
    "summary",
    [
        "000000000007 IP 10.0.0.1 > fd00::1: ICMP echo request, id 1, seq 1, length 64",  # two families
        "000000000007 IP6 10.0.0.1 > 10.0.0.2: ICMP echo request, id 1, seq 1, length 64",  # not IPv6
        "000000000007 IP 10.0.0.1.99999 > 10.0.0.2.53: UDP, length 5",  # no port
    ],
)
def test_a_summary_that_cannot_be_one_is_noted_and_its_step_kept(summary: str) -> None:
    outcomes = read([ICMP_STEP, "", "Aggregated packets:", summary])
    (event,) = [o for o in outcomes if isinstance(o, TraceEvent)]
    assert str(event.header.src) == "?"
    assert nftrace.UNREAD_SUMMARY in [o.message for o in outcomes if isinstance(o, Caveat)]


def test_a_summary_quoting_a_trace_mark_is_still_a_summary() -> None:
    """A decoded syslog datagram may carry `TRACE: …`: what follows the packet id says the line is a summary."""
    summary = "000000000007 IP 10.0.0.1.514 > 10.0.0.2.514: SYSLOG kern.warning, TRACE: raw:PREROUTING:policy:2"
    (event,) = [o for o in read([ICMP_STEP, "Aggregated packets:", summary]) if isinstance(o, TraceEvent)]
    assert (str(event.header.src), event.header.sport) == ("10.0.0.1", 514)


def test_steps_held_for_a_summary_are_bounded_in_characters(monkeypatch: pytest.MonkeyPatch) -> None:
    """Long rule texts count: past MAX_HELD_CHARS held, the oldest step goes on without its summary."""
    monkeypatch.setattr(nftrace, "MAX_HELD_CHARS", 15_000)  # two such steps fit, not three
    rule = "-A INPUT -m comment --comment " + "x" * 3_000 + " -j ACCEPT"
    lines = [f'{number:012x} TRACE: filter:INPUT:rule:1  "{rule}"' for number in range(5)]
    parser = LineParser(2026)
    released = [o for n, text in enumerate(lines, 1) for o in parser.parse(SourceLine("s", n, text))]
    assert [o.origin.line for o in released if isinstance(o, TraceEvent)] == [1, 2, 3]
