"""The kernel-log parser: prefixes, look-alikes and damaged lines, on real captured lines."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest

from tests.samples import SAMPLES, kernel_log_samples, trace_samples
from tracelog.events import Partial, SourceLine, TraceEvent, is_known
from tracelog.parse import BadLine, Caveat, LineParser, Skip
from tracelog.parse.kernel import parse_whole_line, single_record

PARSER = LineParser(year=2026)
PING = (SAMPLES / "docker-legacy/ping.dmesg").read_text().splitlines()


def outcomes(text: str) -> list[object]:
    return [*PARSER.parse(SourceLine("f.log", 7, text)), *PARSER.flush()]


def only_event(text: str) -> TraceEvent:
    result = outcomes(text)
    assert len(result) == 1
    assert isinstance(result[0], TraceEvent), result
    return result[0]


@pytest.mark.parametrize("sample", kernel_log_samples(), ids=lambda path: str(path.relative_to(SAMPLES)))
def test_fast_path_agrees_with_the_grammar_on_every_sample_line(sample: Path) -> None:
    """The parser splits prefix and trace and memoises; the grammar's `line` rule is the reference."""
    for number, text in enumerate(sample.read_text().splitlines(), start=1):
        split = [o for o in PARSER.parse(SourceLine(str(sample), number, text)) if isinstance(o, TraceEvent)]
        whole = parse_whole_line(SourceLine(str(sample), number, text), year=2026)
        assert split == ([whole] if whole is not None else []), text


def shifted(text: str) -> str:
    """The line of another packet of the same flow: every number one more, the option bytes changed."""
    text = re.sub(r"(?<==)\d+(?=\s|$)", lambda number: str(int(number[0]) + 1), text)
    return re.sub(r"(?<=OPT \()[0-9A-F]+(?=\))", lambda options: options[0][::-1], text)


@pytest.mark.parametrize("sample", kernel_log_samples(), ids=lambda path: str(path.relative_to(SAMPLES)))
def test_known_shapes_with_new_values_agree_with_the_grammar(sample: Path) -> None:
    """A line read once teaches its shape; other packets' lines of that shape must still read as the grammar does."""
    for number, text in enumerate(sample.read_text().splitlines(), start=1):
        for variant in (text, shifted(text)):
            line = SourceLine(str(sample), number, variant)
            split = [o for o in PARSER.parse(line) if isinstance(o, TraceEvent)]
            whole = parse_whole_line(line, year=2026)
            assert split == ([whole] if whole is not None else []), variant


@pytest.mark.parametrize("sample", trace_samples(), ids=lambda path: str(path.relative_to(SAMPLES)))
def test_the_one_record_shortcut_takes_only_kernel_log_lines(sample: Path) -> None:
    """The dispatcher tries it before recognising a format: no other format's line may pass for one."""
    kernel = sample in kernel_log_samples()
    for number, text in enumerate(sample.read_text().splitlines(), start=1):
        event = single_record(SourceLine(str(sample), number, text), year=2026)
        assert event is None or (kernel and event == parse_whole_line(event.origin, year=2026)), text


def test_fields_of_a_real_bridged_line() -> None:
    event = only_event(PING[0])
    header = event.header
    assert (event.table, event.chain, event.kind, event.rulenum) == ("raw", "PREROUTING", "policy", 3)
    assert event.stamp.uptime == pytest.approx(641.018462)
    assert (header.in_iface, header.out_iface, header.physin, header.physout) == ("docker0", None, "veth1e06770", None)
    assert header.mac == "02:42:ac:12:00:03:02:42:ac:12:00:02:08:00"
    assert (str(header.src), str(header.dst), header.length, header.ttl, header.ip_id) == (
        "172.18.0.2",
        "172.18.0.3",
        84,
        64,
        32987,
    )
    assert header.ip_flags == ("DF",)
    assert (header.proto, header.icmp_type, header.icmp_code, header.icmp_id, header.icmp_seq) == ("ICMP", 8, 0, 20, 0)
    assert event.origin == SourceLine("f.log", 7, PING[0])


def test_unknown_fields_are_kept() -> None:
    event = only_event(PING[0].rstrip() + " NEWFIELD=42 ODD=")
    assert event.header.extra == (("NEWFIELD", "42"), ("ODD", ""))


@pytest.mark.parametrize(
    "text",
    [
        "[  641.0] IPTABLES-DROP: IN=docker0 OUT= SRC=172.18.0.2 DST=172.18.0.3 LEN=84 PROTO=ICMP TYPE=8 CODE=0",
        "[  641.0] TRACE: eb:in IN=docker0 OUT= MAC source = 02:42:ac:12:00:03 proto = 0x0800",
        "Nov 28 03:24:23 vm kernel: ip_tables: TRACE: raw:OUTPUT:policy:2 IN= OUT=lo",
    ],
)
def test_look_alikes_are_skipped(text: str) -> None:
    assert outcomes(text) == [Skip.LOOKALIKE if "TRACE:" in text else Skip.OTHER]


def test_lines_without_trace_are_other() -> None:
    assert outcomes("Nov 28 03:24:23 vm kernel: docker0: port 1(veth1e06770) entered forwarding state") == [Skip.OTHER]
    assert outcomes("") == [Skip.OTHER]


def test_an_unknown_prefix_keeps_the_event_and_says_so() -> None:
    caveat, event = outcomes("lorem ipsum " + PING[0])
    assert isinstance(caveat, Caveat)
    assert "prefix not recognised" in caveat.message
    assert isinstance(event, TraceEvent)
    assert event.stamp.uptime is None
    assert event.header == only_event(PING[0]).header


@pytest.mark.parametrize(
    "quoting",
    [
        "/var/log/kern.log:",
        "kern.log:12:",
        "12:",
        "  12: ",
        "  12│ ",
        "> ",
        ">> ",
        "- ",
        "* ",
        "# ",
        "// ",
        "| ",
        "root@vm:~# ",
        "$ ",
    ],
)
def test_quoting_before_a_record_is_taken_off(quoting: str) -> None:
    """`grep -H`/`-n`, gutters, Markdown quotes and bullets, comments, prompts: the log's own prefix is still read."""
    assert read_elsewhere(only_event(quoting + PING[0]), only_event(PING[0]))


@pytest.mark.parametrize("remark", ["  # noqa", " // dropped here?", "   <-- this one", "  # <- here", " (truncated)"])
def test_a_remark_after_a_record_is_left_out(remark: str) -> None:
    assert read_elsewhere(only_event(PING[0].rstrip() + remark), only_event(PING[0]))


def read_elsewhere(found: object, expected: TraceEvent) -> bool:
    """The same event, read from another line (a joined, wrapped or cut one)."""
    return isinstance(found, TraceEvent) and found._replace(origin=expected.origin) == expected


def test_two_records_joined_on_one_line_are_both_read() -> None:
    first, second = (only_event(line) for line in PING[:2])
    result = outcomes(PING[0].rstrip() + " " + PING[1])
    assert isinstance(result[0], Caveat)
    assert result[0].message == "two records on one line"
    assert len(result) == 3
    assert read_elsewhere(result[1], first)
    assert read_elsewhere(result[2], second)


def test_a_cut_record_does_not_hide_the_next_one_on_the_line() -> None:
    broken = PING[0][: PING[0].index("PROTO=")]
    *notes, cut, event = outcomes(broken + PING[1])
    assert all(isinstance(note, Caveat) for note in notes)
    assert "two records on one line" in [note.message for note in notes if isinstance(note, Caveat)]
    assert isinstance(cut, TraceEvent)
    assert cut.header.partial == Partial(elided=("proto",))
    assert read_elsewhere(event, only_event(PING[1]))


def test_a_record_too_damaged_to_read_does_not_hide_the_next_one_on_the_line() -> None:
    broken = PING[0][: PING[0].index("IN=")] + "?? " * 12
    bad, event = outcomes(broken + " " + PING[1])
    assert isinstance(bad, BadLine)
    assert read_elsewhere(event, only_event(PING[1]))


def test_a_cut_line_keeps_its_step_as_far_as_it_goes() -> None:
    """A record cut short (and continued by no line) keeps what it shows; the fields after the cut are unknown."""
    head = PING[0][: PING[0].index(" TTL=")]
    note, event = outcomes(head)
    assert isinstance(note, Caveat)
    assert "cut off" in note.message
    assert isinstance(event, TraceEvent)
    assert (event.table, event.chain, event.kind, event.rulenum) == ("raw", "PREROUTING", "policy", 3)
    assert (str(event.header.src), event.header.length, event.header.ttl) == ("172.18.0.2", 84, None)
    assert event.header.partial is not None
    assert event.header.partial.elided == ("ttl", "ip_id", "proto")


def test_a_record_cut_inside_its_tag_is_a_bad_line_with_its_position() -> None:
    head = PING[0][: PING[0].index("PREROUTING") + 4]
    (bad,) = outcomes(head)
    assert isinstance(bad, BadLine)
    assert bad.location.startswith("f.log:7")
    assert bad.with_caret().splitlines()[0] == head


def test_a_record_wrapped_by_a_terminal_is_joined_again() -> None:
    """A real line cut every 80 characters, as a terminal paste has it."""
    line = PING[0]
    pieces = [line[i : i + 80] for i in range(0, len(line), 80)]
    parser = LineParser(year=2026)
    found = [o for number, piece in enumerate(pieces, start=1) for o in parser.parse(SourceLine("p", number, piece))]
    found += parser.flush()
    caveat, event = found
    assert isinstance(caveat, Caveat)
    assert "wrapped" in caveat.message
    assert isinstance(event, TraceEvent)
    assert read_elsewhere(event, only_event(line))
    assert event.origin.line == 1


def test_a_cut_record_followed_by_another_record_keeps_its_step() -> None:
    parser = LineParser(year=2026)
    found = [
        *parser.parse(SourceLine("p", 1, PING[0][:200])),
        *parser.parse(SourceLine("p", 2, PING[1])),
        *parser.flush(),
    ]
    *notes, cut, event = found
    assert notes
    assert all(isinstance(note, Caveat) for note in notes)
    assert isinstance(cut, TraceEvent)
    assert cut.header.partial is not None
    assert cut.header.partial.elided
    assert read_elsewhere(event, only_event(PING[1]))


def damaged_event(text: str) -> TraceEvent:
    """The step of a damaged line, after the notes that say how it was damaged."""
    *notes, event = outcomes(text)
    assert notes
    assert all(isinstance(note, Caveat) for note in notes)
    assert isinstance(event, TraceEvent), event
    assert event.header.partial is not None
    return event


def test_elided_fields_keep_the_step_and_mark_the_header() -> None:
    text = PING[0].replace("LEN=84 TOS=0x00 PREC=0x00 TTL=64 ", "... ")
    event = damaged_event(text)
    assert event.header.elided
    assert event.header.ttl is None
    assert (event.table, event.chain) == ("raw", "PREROUTING")
    assert event.header.partial == Partial(elided=("length", "tos", "prec", "ttl"))


@pytest.mark.parametrize("ellipsis", ["...", "..", "…", "[..]", "[...]", "[…]"])
def test_every_spelling_of_an_ellipsis_is_an_elision(ellipsis: str) -> None:
    event = damaged_event(PING[0].replace("LEN=84 TOS=0x00 PREC=0x00 TTL=64 ", ellipsis + " "))
    assert event.header.partial == Partial(elided=("length", "tos", "prec", "ttl"))


def test_a_line_ending_after_its_interface_keeps_its_step() -> None:
    event = damaged_event(PING[0][: PING[0].index(" OUT=")] + " ...")
    header = event.header
    assert (header.in_iface, header.proto, header.family) == ("docker0", "?", "ipv4")
    assert not is_known(header.src)
    assert not is_known(header.dst)
    assert header.partial == Partial(
        elided=("out_iface", "src", "dst", "length", "tos", "prec", "ttl", "ip_id", "proto"), guessed=("family",)
    )


def test_elided_addresses_are_equal_to_nothing_but_themselves() -> None:
    """Two packets elided alike must never look like one: their unknown addresses differ."""
    text = PING[0][: PING[0].index(" SRC=")] + " ..."
    first, second = damaged_event(text), damaged_event(text)
    assert first.header.src != second.header.src
    assert first.header.src == first.header.src
    assert first.header.src != ipaddress.ip_address("0.0.0.0")


@pytest.mark.parametrize("value", ["...", "…", "[..]"])
def test_an_elided_value_keeps_its_field_unknown(value: str) -> None:
    event = damaged_event(PING[0].replace("TTL=64", f"TTL={value}"))
    assert event.header.ttl is None
    assert event.header.partial == Partial(elided=("ttl",))


@pytest.mark.parametrize(
    "placeholder", ["xxx", "x.x.x.x", "a.b.c.d", "<redacted>", "REDACTED", "***", "[IP]", "172.18.x.x", "X.X.X.X"]
)
def test_redacted_addresses_are_unknown_and_alike_only_when_spelt_alike(placeholder: str) -> None:
    event = damaged_event(PING[0].replace("SRC=172.18.0.2", f"SRC={placeholder}"))
    header = event.header
    assert not is_known(header.src)
    assert str(header.src) == placeholder
    assert header.dst == ipaddress.ip_address("172.18.0.3")
    assert header.partial == Partial(redacted=("src",))
    again = damaged_event(PING[1].replace("SRC=172.18.0.2", f"SRC={placeholder}"))
    assert again.header.src == header.src
    assert again.header.src != damaged_event(PING[0].replace("SRC=172.18.0.2", "SRC=yyy")).header.src


def test_a_redacted_mac_is_unknown() -> None:
    event = damaged_event(re.sub(r"MAC=\S+", "MAC=xxx", PING[0]))
    assert event.header.mac is None
    assert event.header.partial == Partial(redacted=("mac",))


@pytest.mark.parametrize(
    ("damaged", "field"),
    [
        ("TT L=64", "ttl"),
        ("TTL=6 4", "ttl"),
        ("PR EC=0x00", "prec"),
        ("SRC=172.18 .0.2", "src"),
        ("D F", "ip_flags"),
        ("PROT O=ICMP", "proto"),
        ("IN=dock er0", "in_iface"),
    ],
)
def test_a_blank_inside_a_field_is_closed(damaged: str, field: str) -> None:
    undamaged = damaged.replace(" ", "")
    event = damaged_event(PING[0].replace(undamaged, damaged, 1))
    assert event.header._replace(partial=None) == only_event(PING[0]).header
    assert event.header.partial == Partial(repaired=(field,))


def test_a_flag_and_a_key_split_apart_are_joined_again() -> None:
    """`URG P=0` reads as the URG flag and a field tracelog does not know, until the missing URGP= is noticed."""
    tcp = (SAMPLES / "lab-legacy/tcp.dmesg").read_text().splitlines()[0]
    event = damaged_event(tcp.replace("URGP=0", "URG P=0"))
    assert event.header._replace(partial=None) == only_event(tcp).header
    assert event.header.partial == Partial(repaired=("tcp_urgp",))


def test_an_unreadable_value_is_left_unknown() -> None:
    event = damaged_event(PING[0].replace("TTL=64", "TTL=6x4"))
    assert event.header.ttl is None
    assert event.header.partial == Partial(unreadable=("ttl",))


def test_a_bad_address_is_unknown_and_said_so() -> None:
    text = PING[0].replace("SRC=172.18.0.2", "SRC=172.18.0.999")
    note, event = outcomes(text)
    assert isinstance(note, Caveat)
    assert "could not be read" in note.message
    assert isinstance(event, TraceEvent)
    assert not is_known(event.header.src)
    assert event.header.partial == Partial(unreadable=("src",))


def test_year_less_time_stamps_use_the_given_year() -> None:
    line = (SAMPLES / "lab-legacy/rsyslog-traditional.log").read_text().splitlines()
    event = next(o for text in line for o in outcomes(text) if isinstance(o, TraceEvent))
    assert event.stamp.wallclock is not None
    assert event.stamp.wallclock.year == 2026
    assert event.stamp.assumed_year
    assert event.host == "vm"
