"""Property tests for the kernel-log grammar: round trips, and garbage never raises."""

from __future__ import annotations

import ipaddress
from typing import cast

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.kernel_lines import render_line
from tracelog.events import Address, Header, SourceLine, TraceEvent, is_known
from tracelog.parse import BadLine, Caveat, LineParser, Skip
from tracelog.parse.fields import ECHO_TYPES
from tracelog.parse.kernel import parse_whole_line

PARSER = LineParser(year=2026)

# `xxx` is read as a redacted interface, as pastes mean it
ifaces = st.from_regex(r"[a-z][a-z0-9.@_-]{0,14}", fullmatch=True).filter(lambda name: name != "xxx")
maybe_iface = st.none() | ifaces
u8 = st.integers(0, 255)
u16 = st.integers(0, 65535)
u32 = st.integers(0, 2**32 - 1)
hexbytes = st.binary(min_size=1, max_size=20).map(lambda b: b.hex().upper())
tcp_flags = st.lists(st.sampled_from(["CWR", "ECE", "URG", "ACK", "PSH", "RST", "SYN", "FIN"]), unique=True)
macs = st.lists(st.integers(0, 255), min_size=14, max_size=14).map(lambda b: ":".join(f"{x:02x}" for x in b))
ipv4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
ipv6 = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)


@st.composite
def transports(draw: st.DrawFn, family: str) -> dict[str, object]:
    icmp = "ICMP" if family == "ipv4" else "ICMPv6"
    proto = draw(st.sampled_from(["TCP", "UDP", icmp]))
    if proto == "TCP":
        return {
            "proto": proto,
            "sport": draw(u16),
            "dport": draw(u16),
            "tcp_seq": draw(u32),
            "tcp_ack": draw(u32),
            "tcp_window": draw(u16),
            "tcp_res": draw(st.integers(0, 15)),
            "tcp_flags": tuple(draw(tcp_flags)),
            "tcp_urgp": draw(u16),
            "tcp_options": draw(st.none() | hexbytes),
        }
    if proto == "UDP":
        return {"proto": proto, "sport": draw(u16), "dport": draw(u16), "udp_length": draw(u16)}
    icmp_type = draw(u8)
    echo = icmp_type in ECHO_TYPES[proto]  # the kernel prints ID= SEQ= for echo messages only
    return {
        "proto": proto,
        "icmp_type": icmp_type,
        "icmp_code": draw(u8),
        "icmp_id": draw(u16) if echo else None,
        "icmp_seq": draw(u16) if echo else None,
    }


@st.composite
def headers(draw: st.DrawFn) -> Header:
    family = draw(st.sampled_from(["ipv4", "ipv6"]))
    addresses = ipv4 if family == "ipv4" else ipv6
    incoming = draw(st.booleans())
    common = {
        "family": family,
        "src": draw(addresses),
        "dst": draw(addresses),
        "length": draw(u16),
        "ttl": draw(u8),
        "in_iface": draw(ifaces) if incoming else None,
        "out_iface": draw(maybe_iface),
        "mac": draw(macs) if incoming else None,
        "mark": draw(st.none() | st.integers(1, 2**32 - 1)),
    }
    if family == "ipv4":
        common |= {
            "tos": draw(u8),
            "prec": draw(u8),
            "ip_id": draw(u16),
            "ip_flags": tuple(draw(st.lists(st.sampled_from(["CE", "DF", "MF"]), unique=True))),
        }
    else:
        common |= {"tc": draw(u8), "flowlabel": draw(st.integers(0, 2**20 - 1))}
    if not incoming:
        uid = draw(st.none() | st.integers(0, 65535))
        common |= {"uid": uid, "gid": None if uid is None else draw(st.integers(0, 65535))}
    return Header(**common, **draw(transports(family)))  # type: ignore[arg-type]


prefixes = st.sampled_from(
    [
        "",
        "[ 1234.567890] ",
        "[Thu Apr 23 21:55:11 2020] ",
        "<4>[  72.839502] ",
        "Nov 28 03:24:23 vm kernel: [   72.839540] ",
        "Nov  8 03:24:23 host.example.org kernel: ",
        "2026-11-28T03:24:23.642605+00:00 vm kernel: ",
        "Mar 02 13:56:16 [localhost] kernel: ",
        "6,1234,72839502,-;",
        "[   72.839502][ T1234] ",
    ]
)
tags = st.tuples(
    st.sampled_from(["raw", "mangle", "nat", "filter", "security"]),
    st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,27}", fullmatch=True),
    st.sampled_from(["rule", "return", "policy"]),
    st.integers(1, 10_000),
)


def parse_one(text: str) -> list[object]:
    return [*PARSER.parse(SourceLine("-", 1, text)), *PARSER.flush()]


@settings(max_examples=300)
@given(header=headers(), prefix=prefixes, tag=tags)
def test_rendered_line_parses_back_to_the_same_event(
    header: Header, prefix: str, tag: tuple[str, str, str, int]
) -> None:
    table, chain, kind, number = tag
    outcomes = parse_one(render_line(prefix, f"{table}:{chain}:{kind}:{number}", header))
    assert len(outcomes) == 1
    event = outcomes[0]
    assert isinstance(event, TraceEvent), event
    assert (event.table, event.chain, event.kind, event.rulenum) == tag
    assert event.header == header


@settings(max_examples=300)
@given(header=headers(), prefix=prefixes, tag=tags)
def test_fast_path_agrees_with_the_grammar(header: Header, prefix: str, tag: tuple[str, str, str, int]) -> None:
    line = SourceLine("-", 1, render_line(prefix, ":".join(map(str, tag)), header))
    outcomes = [*PARSER.parse(line), *PARSER.flush()]
    assert [o for o in outcomes if isinstance(o, TraceEvent)] == [parse_whole_line(line, year=2026)]


def without_optional(header: Header) -> Header:
    return header._replace(uid=None, gid=None, mark=None, tcp_options=None, icmp_mtu=None)


@settings(max_examples=300)
@given(header=headers(), dropped=st.integers(1, 60))
def test_a_line_missing_its_last_fields_is_reported_never_misread(header: Header, dropped: int) -> None:
    """A wrapped or cut line loses whole trailing fields: it must not pass for a whole one.

    Only the optional trailing fields (socket owner, mark, TCP options, the
    ICMP error's MTU) may go missing without notice, since the kernel omits
    them too.
    """
    tokens = render_line("", "filter:FORWARD:rule:1", header).split(" ")
    short = " ".join(tokens[: max(3, len(tokens) - dropped)])
    for outcome in parse_one(short):
        if isinstance(outcome, TraceEvent) and outcome.header.partial is None:
            assert without_optional(outcome.header) == without_optional(header)
        elif isinstance(outcome, TraceEvent):
            assert_read_as_far_as_it_goes(outcome.header, header)
        else:
            assert isinstance(outcome, BadLine | Caveat)


def assert_read_as_far_as_it_goes(cut: Header, whole: Header) -> None:
    """A header read from a line cut short: what it shows is the whole line's, and it says it lacks something."""
    assert cut.partial is not None
    assert cut.partial.elided or cut.partial.unreadable
    for name, shown, real in zip(Header._fields, cut, whole, strict=True):
        if name in ("inner", "partial", "elided", "extra", *cut.partial.guessed) or shown in (None, (), "?"):
            continue
        if isinstance(shown, tuple):
            assert set(shown) <= set(cast(tuple[object, ...], real)), name
        elif name in ("src", "dst"):
            assert shown == real or not is_known(cast(Address, shown)), name
        else:
            assert shown == real, name


@given(st.binary(max_size=300))
def test_random_bytes_never_raise(data: bytes) -> None:
    for outcome in parse_one(data.decode("utf-8", "replace")):
        assert isinstance(outcome, TraceEvent | BadLine | Skip | Caveat)


@given(st.text(alphabet=st.sampled_from(list("TRACE: raw:filter:PREROUTING:rule:1 =SRC10.[]()ID")), max_size=200))
def test_trace_shaped_garbage_never_raises(text: str) -> None:
    for outcome in parse_one("TRACE: raw:PREROUTING:rule:1 " + text):
        assert isinstance(outcome, TraceEvent | BadLine | Skip | Caveat)
