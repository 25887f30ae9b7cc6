"""ulogd2's LOGEMU and JSON renderings of legacy TRACE records, on the real captures in samples/lab-ulogd."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import RunCli
from tests.outcomes import event_at, outcomes, sample_events
from tests.samples import SAMPLES
from tracelog.events import Partial, TraceEvent, is_known
from tracelog.parse import BadLine, Caveat, Skip

LOGEMU = SAMPLES / "lab-ulogd/syslogemu.log"
JSON = SAMPLES / "lab-ulogd/ulogd.json"


def json_lines() -> list[str]:
    return JSON.read_text().splitlines()


def test_every_logemu_record_is_one_event() -> None:
    records = [n for n, text in enumerate(LOGEMU.read_text().splitlines(), start=1) if " TRACE: " in text]
    assert [event.origin.line for event in sample_events(LOGEMU)] == records


def test_every_json_trace_record_is_one_event() -> None:
    records = [n for n, text in enumerate(json_lines(), start=1) if '"oob.prefix": "TRACE: ' in text]
    assert [event.origin.line for event in sample_events(JSON)] == records


def test_logemu_record() -> None:
    """`TOS=00` (no 0x) and `MARK=0x0` are ulogd's spellings; the rest is the kernel logger's."""
    event = event_at(LOGEMU, 1)
    assert (event.table, event.chain, event.kind, event.rulenum, event.host) == ("raw", "PREROUTING", "policy", 3, "vm")
    assert (event.stamp.wallclock, event.stamp.assumed_year) == (datetime(2026, 11, 28, 4, 9, 39), True)
    header = event.header
    assert (str(header.src), str(header.dst), header.in_iface, header.out_iface) == (
        "172.18.0.2",
        "172.18.0.3",
        "docker0",
        None,
    )
    assert (header.length, header.tos, header.prec, header.ttl, header.ip_id, header.ip_flags) == (
        84,
        0,
        0,
        64,
        62703,
        ("DF",),
    )
    assert (header.proto, header.icmp_type, header.icmp_code, header.icmp_id, header.icmp_seq) == (
        "ICMP",
        8,
        0,
        21273,
        0,
    )
    assert (header.mark, header.extra) == (0, ())


def test_logemu_tcp_record() -> None:
    header = event_at(LOGEMU, 29).header
    assert (header.proto, header.sport, header.dport, header.tcp_seq, header.tcp_ack) == (
        "TCP",
        51534,
        80,
        2087526836,
        0,
    )
    assert (header.tcp_window, header.tcp_flags, header.tcp_urgp) == (64240, ("SYN",), 0)


def test_json_record() -> None:
    event = event_at(JSON, 3)
    assert (event.table, event.chain, event.kind, event.rulenum, event.nf_family, event.host) == (
        "filter",
        "FORWARD",
        "rule",
        1,
        "ip",
        None,
    )
    # oob.time.sec/usec: the kernel's time stamp, in UTC
    assert event.stamp.wallclock == datetime(2026, 11, 28, 4, 9, 42, 888388, tzinfo=UTC)
    header = event.header
    assert (str(header.src), str(header.dst), header.in_iface, header.out_iface, header.mac) == (
        "172.18.0.2",
        "172.18.0.3",
        "docker0",
        "docker0",
        "02:42:ac:12:00:03:02:42:ac:12:00:02:08:00",
    )
    assert (header.length, header.tos, header.prec, header.ttl, header.ip_id, header.ip_flags) == (
        84,
        0,
        0,
        64,
        63108,
        ("DF",),
    )  # "ip.fragoff": 16384 is the DF bit
    assert (header.proto, header.icmp_type, header.icmp_code, header.icmp_id, header.icmp_seq, header.mark) == (
        "ICMP",
        8,
        0,
        21301,
        0,
        0,
    )
    # keys with no Header attribute are kept, in the record's order
    assert ("ip.csum", "60410") in header.extra
    assert not {"oob.prefix", "timestamp", "src_ip", "tcp.syn"} & {key for key, _ in header.extra}


def test_json_tcp_record() -> None:
    header = event_at(JSON, 29).header
    assert (header.proto, header.sport, header.dport, header.tcp_seq, header.tcp_ack) == (
        "TCP",
        51536,
        80,
        2050982658,
        0,
    )
    # tcp.urgp is only sent with the URG flag
    assert (header.tcp_window, header.tcp_flags, header.tcp_urgp) == (64240, ("SYN",), None)


def test_json_postrouting_record_has_no_mac() -> None:
    event = next(e for e in sample_events(JSON) if e.chain == "POSTROUTING")
    assert (event.header.in_iface, event.header.out_iface, event.header.mac) == (None, "docker0", None)


def test_both_renderings_of_the_same_scenarios_agree() -> None:
    """LOGEMU and JSON captured the same scenarios one after the other: same steps, same stable fields."""
    logemu, js = sample_events(LOGEMU), sample_events(JSON)
    stable = (
        "family",
        "proto",
        "in_iface",
        "out_iface",
        "length",
        "tos",
        "prec",
        "ttl",
        "ip_flags",
        "icmp_type",
        "icmp_code",
        "tcp_flags",
        "mark",
    )
    assert len(logemu) == len(js)
    for a, b in zip(logemu, js, strict=True):
        assert (a.table, a.chain, a.kind, a.rulenum) == (b.table, b.chain, b.kind, b.rulenum)
        assert [getattr(a.header, name) for name in stable] == [getattr(b.header, name) for name in stable]


def test_logemu_lookalikes_are_skipped() -> None:
    """Another NFLOG prefix that starts with TRACE: is not a TRACE record."""
    line = LOGEMU.read_text().splitlines()[0].replace("TRACE: raw:PREROUTING:policy:3", "TRACE: eb:in")
    assert outcomes([line]) == [Skip.LOOKALIKE]


def test_a_cut_logemu_record_is_a_bad_line() -> None:
    line = LOGEMU.read_text().splitlines()[0]
    (bad,) = outcomes([line[: line.index(" SRC=") + 8]])
    assert isinstance(bad, BadLine)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"oob.prefix": "IPTABLES-DROP: "}, Skip.OTHER),
        ({"oob.prefix": "TRACE: eb:in "}, Skip.LOOKALIKE),
        ({"oob.prefix": None}, Skip.OTHER),
    ],
)
def test_json_records_of_other_nflog_rules(change: dict[str, object], expected: Skip) -> None:
    record = json.loads(json_lines()[0]) | change
    assert outcomes([json.dumps(record)]) == [expected]


def test_json_records_of_the_wrong_types_are_bad_lines() -> None:
    line = json_lines()[0]
    record = json.loads(line) | {"ip.ttl": "64"}
    (bad,) = outcomes([json.dumps(record)])
    assert isinstance(bad, BadLine)
    assert "ip.ttl" in bad.reason
    (bad,) = outcomes([json.dumps(json.loads(line) | {"src_ip": 7})])
    assert isinstance(bad, BadLine)


def damaged_event(text: str) -> TraceEvent:
    *notes, event = outcomes([text])
    assert notes
    assert all(isinstance(note, Caveat) for note in notes)
    assert isinstance(event, TraceEvent), event
    assert event.header.partial is not None
    return event


def test_a_json_record_cut_short_keeps_what_it_shows() -> None:
    line = json_lines()[0]
    event = damaged_event(line[: line.index('"dest_ip"')])
    assert str(event.header.src) == "172.18.0.2"
    assert not is_known(event.header.dst)
    assert event.header.partial is not None
    assert "dst" in event.header.partial.elided


@pytest.mark.parametrize("elision", ["...", "[...]", "…"])
def test_elided_json_members_are_unknown(elision: str) -> None:
    line = json_lines()[0]
    event = damaged_event(re.sub(r'"ip\.ttl": \d+, ', f"{elision} ", line))
    assert event.header.ttl is None
    assert event.header.partial is not None
    assert "ttl" in event.header.partial.elided


def test_redacted_and_garbled_json_addresses_are_unknown() -> None:
    line = json_lines()[0]
    redacted = damaged_event(json.dumps(json.loads(line) | {"src_ip": "x.x.x.x"}))
    assert str(redacted.header.src) == "x.x.x.x"
    assert redacted.header.partial == Partial(redacted=("src",))
    garbled = damaged_event(json.dumps(json.loads(line) | {"src_ip": "172.18.0.299"}))
    assert garbled.header.partial == Partial(unreadable=("src",))


def test_blanks_and_remarks_in_a_json_record_are_mended() -> None:
    line = json_lines()[0]
    (undamaged,) = outcomes([line])
    assert isinstance(undamaged, TraceEvent)
    (remarked,) = outcomes([line + "  # <- this one"])
    assert isinstance(remarked, TraceEvent)
    assert remarked.header == undamaged.header
    spaced = damaged_event(line.replace('"src_ip": "172.18.0.2"', '"src _ip": "172.18 .0.2"'))
    assert spaced.header._replace(partial=None) == undamaged.header
    assert spaced.header.partial == Partial(repaired=("src_ip",))


@pytest.mark.parametrize("value", [[172, 18, 0, 2], {"ip": "172.18.0.2"}, 1.5])
def test_json_addresses_that_are_not_text_are_bad_lines(value: object) -> None:
    (bad,) = outcomes([json.dumps(json.loads(json_lines()[0]) | {"src_ip": value})])
    assert isinstance(bad, BadLine)


def test_a_null_member_is_one_the_record_lacks() -> None:
    """ulogd writes no null; jq writes one for a key its projection names and the record lacks."""
    (caveat, event) = outcomes([json.dumps(json.loads(json_lines()[0]) | {"src_ip": None})])
    assert isinstance(caveat, Caveat)
    assert isinstance(event, TraceEvent)
    assert event.header.partial == Partial(elided=("src",))


def test_json_without_the_kernel_time_uses_ulogds() -> None:
    record = {key: value for key, value in json.loads(json_lines()[0]).items() if not key.startswith("oob.time")}
    (event,) = outcomes([json.dumps(record)])
    assert isinstance(event, TraceEvent)
    assert event.stamp.wallclock == datetime(2026, 11, 28, 4, 9, 42, 888352)


@pytest.mark.parametrize("sample", [LOGEMU, JSON], ids=["syslogemu.log", "ulogd.json"])
def test_the_cli_reads_both_renderings(sample: Path, run_cli: RunCli) -> None:
    run = run_cli("parse", "--format", "jsonl", "--year", "2026", str(sample))
    assert run.status == 0, run.stderr
    steps = [step for record in run.records() for step in record["steps"]]
    assert len(steps) == len(sample_events(sample))
    assert all(step["rulenum"] for step in steps)


@given(st.binary(max_size=300))
def test_random_bytes_never_raise(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    for prefix in ("Nov 28 04:09:39 vm TRACE: ", "Nov 28 04:09:39 vm TRACE: raw:PREROUTING:policy:3 ", "{", ""):
        for outcome in outcomes([prefix + text]):
            assert isinstance(outcome, TraceEvent | BadLine | Skip | Caveat)


json_values = st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.floats(allow_nan=False)


@given(st.dictionaries(st.sampled_from(sorted(json.loads(json_lines()[28]))), json_values, max_size=12))
def test_json_records_with_odd_values_never_raise(changes: dict[str, object]) -> None:
    record = json.loads(json_lines()[28]) | changes
    for outcome in outcomes([json.dumps(record)]):
        assert isinstance(outcome, TraceEvent | BadLine | Skip | Caveat)


# ---- ulogd JSON as people pass it on (samples/ulogd-jq: jq and fold on the real ulogd.json)

JQ = SAMPLES / "ulogd-jq"


def read_records(path: Path, run_cli: RunCli) -> list[dict[str, Any]]:
    run = run_cli("parse", "--format", "jsonl", "--year", "2026", str(path))
    assert run.status == 0, run.stderr
    records: list[dict[str, Any]] = run.records()
    return records


def packets_by_steps(records: list[dict[str, Any]]) -> list[list[tuple[object, ...]]]:
    """Each packet as its steps, without where they were read from."""
    return [[(s["table"], s["chain"], s["kind"], s["rulenum"], s["time"]) for s in r["steps"]] for r in records]


@pytest.mark.parametrize("name", ["pretty.jq", "folded-700.json"])
def test_a_record_printed_over_several_lines_is_read_whole(name: str, run_cli: RunCli) -> None:
    """`jq .` (one member a line), `fold -w 700` (cut inside strings too): the same packets as one-line records."""
    whole = read_records(JSON, run_cli)
    records = read_records(JQ / name, run_cli)
    assert packets_by_steps(records) == packets_by_steps(whole)[: len(records)]
    for mine, original in zip(records, whole, strict=False):
        assert (mine["src"], mine["dst"], mine["proto"], mine["partial"]) == (
            original["src"],
            original["dst"],
            original["proto"],
            None,
        )
    first_lines = [number for number, line in enumerate((JQ / name).read_text().splitlines(), 1) if line[:1] == "{"]
    assert [step["line"] for record in records for step in record["steps"]] == first_lines


def lines_by_packet(records: list[dict[str, Any]]) -> list[list[int]]:
    return [[step["line"] for step in record["steps"]] for record in records]


@pytest.mark.parametrize("name", ["addresses.jq-c", "some-keys.jq-c"])
def test_a_jq_projection_is_read_for_what_it_keeps(name: str, run_cli: RunCli) -> None:
    """Every record is a step; `partial` names what the projection left out; no two packets are joined on it.

    Steps join on what the projection shows: the IP id and echo sequence
    where it kept them; the addresses alone, which another packet of the
    flow shares, join nothing.
    """
    whole = lines_by_packet(read_records(JSON, run_cli))
    records = read_records(JQ / name, run_cli)
    found = lines_by_packet(records)
    assert sorted(line for packet in found for line in packet) == sorted(line for packet in whole for line in packet)
    packet_of = {line: number for number, packet in enumerate(whole) for line in packet}
    assert all(len({packet_of[line] for line in packet}) == 1 for packet in found)  # no merges
    for record in records:
        assert {"tos", "ttl"} <= set(record["partial"]["elided"])  # neither projection keeps them
        assert record["partial"]["guessed"] == []
    first = records[0]
    if name == "addresses.jq-c":
        assert (first["proto"], first["src"], first["dst"]) == ("?", "172.18.0.2", "172.18.0.3")
        assert {"proto", "in_iface", "ip_id", "length"} <= set(first["partial"]["elided"])
        assert all(len(packet) == 1 for packet in found)
    else:  # the ping's IP ids and echo sequences were kept: its packets are whole
        assert (first["proto"], first["icmp_type"], first["steps"][0]["in"]) == ("ICMP", 8, "docker0")
        assert found[:4] == whole[:4]


def test_other_json_over_several_lines_is_read_line_by_line_as_before() -> None:
    """A pretty-printed object that is no ulogd record (a journal entry): its lines are read one by one."""
    kernel_line = next(
        line for line in (SAMPLES / "lab-legacy/journalctl.txt").read_text().splitlines() if "TRACE:" in line
    )
    message = kernel_line[kernel_line.index("TRACE:") :]
    assert message.startswith("TRACE: raw:PREROUTING:")
    lines = json.dumps({"PRIORITY": "4", "MESSAGE": message, "_TRANSPORT": "kernel"}, indent=2).splitlines()
    found = outcomes(lines)
    (event,) = [outcome for outcome in found if isinstance(outcome, TraceEvent)]
    assert event.origin.line == 3
    assert (event.table, event.chain) == ("raw", "PREROUTING")


def test_a_json_object_left_open_at_the_end_is_read_as_far_as_it_goes() -> None:
    lines = (JQ / "pretty.jq").read_text().splitlines()
    end = lines.index("}")
    (*_, event) = outcomes(lines[: end - 5])
    assert isinstance(event, TraceEvent)
    assert event.header.partial is not None
    assert event.origin.line == 1


def test_a_kernel_log_line_after_a_json_object_left_open_is_a_record_of_its_own() -> None:
    json_line = json_lines()[0]
    cut = json_line[: json_line.index('"ip.ttl"')]
    kernel = next(line for line in (SAMPLES / "lab-legacy/tcp.dmesg").read_text().splitlines() if "TRACE:" in line)
    events = [outcome for outcome in outcomes([cut, kernel[:-20]]) if isinstance(outcome, TraceEvent)]
    assert [event.origin.line for event in events] == [1, 2]
