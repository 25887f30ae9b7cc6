"""`xtables-monitor --trace` lines, on the real captures in samples/docker-nft and samples/lab-nft."""

from __future__ import annotations

import ipaddress
import itertools
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import RunCli
from tests.outcomes import event_at, outcomes, sample_events
from tests.samples import SAMPLES
from tracelog.events import Header, Partial, TraceEvent, is_known
from tracelog.parse import BadLine, Caveat, Skip, xtables
from tracelog.parse.netlink import UNSEEN_PACKET

XTABLES_SAMPLES = sorted(SAMPLES.glob("*/*.xtables-monitor"))
SAMPLE_IDS = [str(path.relative_to(SAMPLES)) for path in XTABLES_SAMPLES]
PING = SAMPLES / "docker-nft/ping.xtables-monitor"
# `xtables-monitor -c --trace`: each rule with its live counters, `-4 -t raw [2:168] -A PREROUTING ...`
DASH_C = SAMPLES / "lab-nft-options/ping.xtables-monitor"


@pytest.mark.parametrize("sample", XTABLES_SAMPLES, ids=SAMPLE_IDS)
def test_every_trace_line_is_one_event(sample: Path) -> None:
    """PACKET lines only describe packets: the steps are the TRACE lines, nothing is skipped."""
    trace_lines = [n for n, text in enumerate(sample.read_text().splitlines(), start=1) if text.startswith(" TRACE: ")]
    assert [event.origin.line for event in sample_events(sample)] == trace_lines


def test_rule_steps_carry_handle_verdict_and_rule() -> None:
    first = event_at(PING, 2)
    assert (first.table, first.chain, first.kind, first.handle, first.verdict) == (
        "raw",
        "PREROUTING",
        "rule",
        "0x2",
        "CONTINUE",
    )
    assert first.rule == "-4 -t raw -A PREROUTING -p icmp -j TRACE"
    assert (first.rulenum, first.trace_id, first.nf_family) == (None, "6773a007", "ip")
    jump = event_at(PING, 7)
    assert (jump.chain, jump.handle, jump.verdict, jump.rule) == (
        "FORWARD",
        "0x17",
        "JUMP:DOCKER-USER",
        "-4 -t filter -A FORWARD -j DOCKER-USER",
    )


def test_rule_texts_read_without_live_counters() -> None:
    """`-c` prints `[packets:bytes]` after the table; taken out, the rule reads as iptables-save prints it."""
    first = event_at(DASH_C, 2)
    assert "-t raw [2:168] -A PREROUTING" in first.origin.text
    assert (first.handle, first.verdict, first.rule) == ("0x6", "CONTINUE", "-4 -t raw -A PREROUTING -p icmp -j TRACE")
    rules = [event.rule for event in sample_events(DASH_C) if event.rule is not None]
    assert len(rules) == 25
    assert not [rule for rule in rules if "[" in rule]
    assert rules[-1] == "-4 -t filter -A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"


def test_steps_of_one_rule_with_other_counters_are_read_once() -> None:
    """Live counters differ at every step: the grammar still reads each rule's step line only once."""
    read: list[str] = []

    def counting(text: str) -> Any:
        read.append(text)
        return xtables._grammar(text)

    lines = xtables._monitor_lines(counting)
    steps = [lines.parse(text) for text in DASH_C.read_text().splitlines() if text.startswith(" TRACE: ")]
    assert len(steps) == 31
    rules = {(step.table, step.chain, step.kind, step.handle) for step in steps}
    assert sum(" TRACE: " in text for text in read) == len(rules)
    assert [step.rule for step in steps] == [event.rule for event in sample_events(DASH_C)]


def test_icmp_packets_have_no_protocol_in_their_packet_lines() -> None:
    """xtables-monitor prints ports and TCP flags, nothing for ICMP: the header's protocol is unknown, `?`."""
    assert {event.header.proto for event in sample_events(PING)} == {"?"}
    assert " PROTO=" not in PING.read_text()


@pytest.mark.parametrize("sample", [PING, DASH_C], ids=lambda path: str(path.relative_to(SAMPLES)))
def test_a_matched_rule_with_dash_p_gives_the_protocol(sample: Path) -> None:
    """The raw `-p icmp -j TRACE` rule matched every traced packet: each packet's first step says ICMP."""
    events = sample_events(sample)
    first_steps = [event for event in events if event.chain == "PREROUTING" and event.kind == "rule"]
    assert {event.trace_id for event in first_steps} == {event.trace_id for event in events}
    assert {xtables.rule_protocol(event.rule) for event in first_steps} == {"ICMP"}
    assert {xtables.rule_protocol(event.rule) for event in events if event.table == "filter"} == {None}


@pytest.mark.parametrize("sample", XTABLES_SAMPLES, ids=SAMPLE_IDS)
def test_a_matched_rule_never_contradicts_the_packet_line(sample: Path) -> None:
    """Where the packet line tells the protocol (TCP flags), every rule the packet matched agrees with it."""
    said = [
        (event.header.proto, xtables.rule_protocol(event.rule))
        for event in sample_events(sample)
        if event.kind == "rule" and event.rule is not None
    ]
    assert said
    assert all(header == rule for header, rule in said if header != "?" and rule is not None)


@pytest.mark.parametrize(
    ("rule", "protocol"),
    [
        ("-4 -t raw -A PREROUTING -p icmp -j TRACE", "ICMP"),
        ("-4 -t filter -A DOCKER -d 172.18.0.3/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT", "TCP"),
        ("-6 -t raw -A PREROUTING -p ipv6-icmp -j TRACE", "ICMPv6"),
        ("-4 -t filter -A FORWARD -p udp -m udp --dport 53 -j ACCEPT", "UDP"),
        ("-4 -t filter -A FORWARD -p 47 -j ACCEPT", "47"),
        ("-4 -t filter -A FORWARD -p sctp -j ACCEPT", "132"),
        ("-4 -t filter -A FORWARD ! -p icmp -j DROP", None),
        ("-4 -t filter -A FORWARD -p all -j ACCEPT", None),
        ("-4 -t filter -A FORWARD -p 0 -j ACCEPT", None),
        ("-4 -t filter -A FORWARD -p ospf -j ACCEPT", None),
        ('-4 -t filter -A FORWARD -m comment --comment "not -p icmp" -j ACCEPT', None),
        ('-4 -t filter -A FORWARD -m comment --comment "unbalanced -j ACCEPT', None),
        ("-4 -t filter -A FORWARD -j DOCKER-USER", None),
    ],
)
def test_the_protocol_a_rule_requires(rule: str, protocol: str | None) -> None:
    """`-p` as iptables-save prints it, in the kernel logger's spelling; nothing where the rule allows several."""
    assert xtables.rule_protocol(rule) == protocol


def test_the_raw_return_verdict_is_named() -> None:
    """NFT_RETURN has no word in print_verdict(): `0xfffffffb`."""
    event = event_at(PING, 8)
    assert (event.chain, event.kind, event.handle, event.verdict) == ("DOCKER-USER", "rule", "0x16", "RETURN")


def test_policy_steps_have_no_rule() -> None:
    event = event_at(PING, 3)
    assert (event.table, event.chain, event.kind, event.handle, event.rule, event.verdict) == (
        "raw",
        "PREROUTING",
        "policy",
        None,
        None,
        "ACCEPT",
    )


def test_drop_in_a_user_chain() -> None:
    event = event_at(SAMPLES / "lab-nft/drop.xtables-monitor", 8)
    assert (event.chain, event.handle, event.verdict) == ("DOCKER-USER", "0x14", "DROP")
    assert event.rule is not None
    assert event.rule.endswith("--dport 8080 -j DROP")
    assert (event.header.sport, event.header.dport, event.header.tcp_flags) == (53790, 8080, ("SYN",))


def test_packet_fields_in_the_kernel_loggers_terms() -> None:
    header = event_at(PING, 2).header
    assert (header.family, str(header.src), str(header.dst), header.in_iface, header.out_iface) == (
        "ipv4",
        "172.18.0.2",
        "172.18.0.3",
        "docker0",
        None,
    )
    # MACSRC=2:42:ac:12:0:2 MACDST=2:42:ac:12:0:3 MACPROTO=0800, written as the kernel's MAC=
    assert header.mac == "02:42:ac:12:00:03:02:42:ac:12:00:02:08:00"
    assert (header.length, header.tos, header.prec, header.ttl, header.ip_id, header.ip_flags) == (
        84,
        0,
        0,
        64,
        52221,
        ("DF",),
    )
    # xtables-monitor prints no protocol and no ports for ICMP
    assert (header.proto, header.sport, header.icmp_type) == ("?", None, None)


def test_each_step_has_its_hooks_packet_line() -> None:
    forward = event_at(PING, 7).header
    assert (forward.in_iface, forward.out_iface) == ("docker0", "docker0")
    postrouting = event_at(PING, 14).header
    assert (postrouting.in_iface, postrouting.out_iface) == (None, "docker0")


def test_sign_extended_link_layer_bytes_are_read() -> None:
    """`LL=0x0 0242ffffffac1200030242ffffffac1200020800`: 0xac printed from a signed char."""
    assert event_at(PING, 14).header.mac == event_at(PING, 2).header.mac


def test_tcp_packets_get_their_protocol_and_kernel_flag_order() -> None:
    header = event_at(SAMPLES / "docker-nft/http.xtables-monitor", 16).header  # `SYN ACK`
    assert (header.proto, header.sport, header.dport, header.tcp_flags) == ("TCP", 80, 40654, ("ACK", "SYN"))
    assert header.ip_id == 0


def test_ipv6_length_is_the_whole_packet() -> None:
    """xtables-monitor adds 20, not the 40 of the IPv6 header, to the payload length it prints."""
    event = event_at(SAMPLES / "lab-nft/ipv6-ping.xtables-monitor", 2)
    header = event.header
    assert (header.family, str(header.src), str(header.dst), event.nf_family) == (
        "ipv6",
        "fd00:18::2",
        "ff02::1:ff00:3",
        "ip6",
    )
    assert (header.length, header.tc, header.ttl, header.flowlabel) == (72, 0, 255, 0)  # printed LEN=52


def test_a_step_before_any_packet_line_keeps_its_step_with_an_unknown_header() -> None:
    """A monitor started mid-packet, or a paste trimmed there: the steps are kept, their packet unknown."""
    lines = PING.read_text().splitlines()
    caveat, first, _, second = outcomes(lines[1:3])
    assert isinstance(caveat, Caveat)
    assert caveat.message == UNSEEN_PACKET
    assert isinstance(first, TraceEvent)
    assert isinstance(second, TraceEvent)
    assert (first.table, first.chain, first.kind, first.verdict) == ("raw", "PREROUTING", "rule", "CONTINUE")
    assert first.header is second.header  # one unknown packet for the steps of one trace id
    assert (first.header.family, first.header.proto) == ("ipv4", "?")
    assert not is_known(first.header.src)
    assert first.header.partial == Partial(guessed=("header",))


def test_steps_of_two_unseen_packets_never_share_a_header() -> None:
    lines = PING.read_text().splitlines()
    other = lines[2].replace("6773a007", "0badcafe")
    events = [o for o in outcomes([lines[2], other]) if isinstance(o, TraceEvent)]
    assert events[0].header.src != events[1].header.src


def test_steps_follow_the_packet_line_of_their_own_id() -> None:
    lines = PING.read_text().splitlines()
    request, reply = lines[0], lines[14]  # trace ids 6773a007 and b459619b
    result = outcomes([request, reply, lines[1], lines[15]])
    assert [str(event.header.src) for event in result if isinstance(event, TraceEvent)] == ["172.18.0.2", "172.18.0.3"]


def test_a_bad_address_in_a_packet_line_is_unknown_and_never_taken_from_an_older_line() -> None:
    lines = PING.read_text().splitlines()
    broken = lines[0].replace("SRC=172.18.0.2", "SRC=172.18.0.299")
    caveat, event = outcomes([lines[0], broken, lines[1]])
    assert isinstance(caveat, Caveat)
    assert isinstance(event, TraceEvent)
    assert not is_known(event.header.src)
    assert event.header.partial == Partial(unreadable=("src",))


def test_an_unreadable_packet_line_is_bad_and_its_steps_are_not_misattributed() -> None:
    lines = PING.read_text().splitlines()
    broken = lines[0].replace("SRC=", "SRC=" + "? " * 12)
    bad, caveat, event = outcomes([lines[0], broken, lines[1]])
    assert isinstance(bad, BadLine)
    assert isinstance(caveat, Caveat)
    assert isinstance(event, TraceEvent)
    assert event.header.partial == Partial(guessed=("header",))


def test_a_step_line_cut_inside_its_step_is_a_bad_line() -> None:
    lines = PING.read_text().splitlines()
    (bad,) = outcomes([lines[0], lines[1][:25]])
    assert isinstance(bad, BadLine)
    assert bad.reason == "line ends early"


@pytest.mark.parametrize("cut", [60, 120])
def test_truncated_lines_keep_what_they_show(cut: int) -> None:
    lines = PING.read_text().splitlines()
    result = outcomes([lines[0][:cut], lines[1][:cut]])
    events = [o for o in result if isinstance(o, TraceEvent)]
    assert len(events) == 1, result
    assert all(isinstance(o, Caveat) for o in result if o is not events[0])
    assert events[0].header.partial is not None
    assert (events[0].table, events[0].chain) == ("raw", "PREROUTING")


@pytest.mark.parametrize(
    ("damage", "partial"),
    [
        (("SRC=172.18.0.2", "SRC=x.x.x.x"), Partial(redacted=("src",))),
        (("MACSRC=2:42:ac:12:0:2", "MACSRC=xxx"), Partial(redacted=("mac",))),
        (("LEN=84 TOS=0x0 TTL=64", "..."), Partial(elided=("length", "tos", "ttl"))),
        (("TTL=64", "TT L=64"), Partial(repaired=("ttl",))),
    ],
)
def test_a_damaged_packet_line_gives_its_steps_a_partial_header(damage: tuple[str, str], partial: Partial) -> None:
    lines = PING.read_text().splitlines()
    *notes, event = outcomes([lines[0].replace(*damage), lines[1]])
    assert notes
    assert isinstance(event, TraceEvent)
    assert event.header.partial == partial
    (undamaged,) = outcomes(lines[:2])
    assert isinstance(undamaged, TraceEvent)
    if partial.repaired:
        assert event.header._replace(partial=None) == undamaged.header


def test_a_packet_line_cut_short_with_an_ellipsis() -> None:
    lines = PING.read_text().splitlines()
    cut = lines[0][: lines[0].index(" MACSRC")] + " .."
    *_, event = outcomes([cut, lines[1]])
    assert isinstance(event, TraceEvent)
    assert event.header.in_iface == "docker0"
    assert event.header.partial is not None
    assert "src" in event.header.partial.elided


def test_truncated_trace_line_says_it_ends_early() -> None:
    lines = PING.read_text().splitlines()
    (bad,) = outcomes([lines[0], lines[6][: lines[6].index("rule:") + 5]])
    assert isinstance(bad, BadLine)
    assert bad.reason == "line ends early"


def test_a_packet_that_is_neither_ip_nor_arp_skips_its_steps() -> None:
    """Without an IPv4/IPv6 header xtables-monitor dumps the network header as `NH=`: here LLDP's."""
    lines = PING.read_text().splitlines()
    lldp = lines[0][: lines[0].index(" SRC=")].replace("MACPROTO=0800", "MACPROTO=88cc") + " NH=020704000c29"
    assert outcomes([lldp, lines[1]]) == [Skip.NON_IP]


ARP = SAMPLES / "lab-arp"


def test_arp_is_read_from_its_network_header() -> None:
    """`NH=` holds the whole ARP header, its bytes printed as signed chars: operation, sender, target."""
    events = sample_events(ARP / "local.xtables-monitor")
    request, reply = events[0].header, events[-1].header
    assert (request.family, request.proto, request.arp_op) == ("ipv4", "ARP", 1)
    assert (str(request.src), str(request.dst)) == ("10.99.0.2", "10.99.0.1")
    assert (request.arp_sender_mac, request.arp_target_mac) == ("02:00:0a:63:00:02", "ff:ff:ff:ff:ff:ff")
    assert request.mac == "ff:ff:ff:ff:ff:ff:02:00:0a:63:00:02:08:06"
    assert (reply.arp_op, str(reply.src), str(reply.dst), reply.arp_target_mac) == (
        2,
        "10.99.0.1",
        "10.99.0.2",
        "02:00:0a:63:00:02",
    )
    assert reply.arp_sender_mac is not None
    assert "ffffff" in ARP.joinpath("local.xtables-monitor").read_text().splitlines()[-3]  # a byte above 0x7f
    assert all(e.header.partial is None for e in events)


def test_a_hidden_network_header_keeps_its_steps() -> None:
    """`NH=...` in a paste: ARP by its Ethernet type, its addresses unknown (their family guessed); else all unknown."""
    lines = (ARP / "local.xtables-monitor").read_text().splitlines()
    elided = re.sub(r"NH=\S+", "NH=...", lines[0])
    (event,) = [o for o in outcomes([elided, lines[1]]) if isinstance(o, TraceEvent)]
    assert (event.header.proto, event.header.partial) == ("ARP", Partial(elided=("src", "dst"), guessed=("family",)))
    reply = re.sub(r"NH=\S+", "NH=xxx", lines[-3])
    (event,) = [o for o in outcomes([reply, lines[-2]]) if isinstance(o, TraceEvent)]
    assert event.header.proto == "?"
    assert event.header.partial is not None


def test_each_lines_format_is_recognised_by_itself() -> None:
    """One input may interleave kernel log, xtables-monitor, nft monitor and ulogd lines."""
    files = [
        "docker-nft/ping.dmesg",
        "docker-nft/ping.xtables-monitor",
        "lab-nft/native.nft-monitor",
        "lab-ulogd/syslogemu.log",
        "lab-ulogd/ulogd.json",
    ]
    texts = [(SAMPLES / name).read_text().splitlines() for name in files]
    alone = [len(outcomes(lines)) for lines in texts]
    mixed = [line for group in itertools.zip_longest(*texts) for line in group if line is not None]
    result = outcomes(mixed)
    assert all(isinstance(o, TraceEvent) for o in result)
    assert len(result) == sum(alone)


@pytest.mark.parametrize("sample", XTABLES_SAMPLES, ids=SAMPLE_IDS)
def test_the_cli_gives_packets_with_rule_verdict_and_handle(sample: Path, run_cli: RunCli) -> None:
    run = run_cli("parse", "--format", "jsonl", str(sample))
    assert run.status == 0, run.stderr
    steps = [step for record in run.records() for step in record["steps"]]
    assert len(steps) == len(sample_events(sample))
    assert all(step["verdict"] for step in steps)
    rules = [step for step in steps if step["kind"] == "rule"]
    assert rules
    assert all(step["handle"].startswith("0x") for step in rules)
    # xtables-monitor prints the rules of iptables, ip6tables and arptables, not of netdev or bridge tables
    assert all(step["rule"] for step in rules if step["nf_family"] not in ("netdev", "bridge"))


# ---- property tests: xtables-monitor's printf()s, from iptables/xtables-monitor.c

XTABLES_TCP_FLAGS = ("SYN", "ACK", "FIN", "RST", "PSH", "URG")  # the order it prints them in


def render_packet_line(h: Header, trace_id: int, fused_id: bool) -> str:
    """A PACKET line for `h`; `fused_id` is the older `ID=%d` without a space before the IP flags."""
    parts = [f"PACKET: {2 if h.family == 'ipv4' else 10} {trace_id:08x}"]
    parts += [f"{key}={value}" for key, value in (("IN", h.in_iface), ("OUT", h.out_iface)) if value]
    if h.mac is not None:
        octets = [octet.lstrip("0") or "0" for octet in h.mac.split(":")]
        parts += [
            f"MACSRC={':'.join(octets[6:12])}",
            f"MACDST={':'.join(octets[:6])}",
            f"MACPROTO={''.join(h.mac.split(':')[12:])}",
        ]
    parts += [f"SRC={h.src}", f"DST={h.dst}"]
    if h.family == "ipv4":
        assert h.tos is not None
        assert h.prec is not None
        ident = f"ID={h.ip_id}" + ("" if fused_id else " ")
        parts += [f"LEN={h.length}", f"TOS=0x{h.tos | h.prec:x}", f"TTL={h.ttl}", ident + " ".join(h.ip_flags)]
    else:
        assert h.length is not None
        parts += [f"LEN={h.length - 20}", f"TC={h.tc}", f"HOPLIMIT={h.ttl}", f"FLOWLBL={h.flowlabel}"]
    if h.sport is not None:
        parts += [f"SPORT={h.sport}", f"DPORT={h.dport}", *(f for f in XTABLES_TCP_FLAGS if f in h.tcp_flags)]
    if h.mark is not None:
        parts.append(f"MARK=0x{h.mark:x}")
    return " ".join(part for part in parts if part) + " "


u8 = st.integers(0, 255)
u16 = st.integers(0, 65535)
# `xxx` is read as a redacted interface, as pastes mean it
ifaces = st.none() | st.from_regex(r"[a-z][a-z0-9.@_-]{0,14}", fullmatch=True).filter(lambda name: name != "xxx")
macs = st.lists(u8, min_size=14, max_size=14).map(lambda b: ":".join(f"{x:02x}" for x in b))
kernel_flag_order = ("CWR", "ECE", "URG", "ACK", "PSH", "RST", "SYN", "FIN")


@st.composite
def xtables_headers(draw: st.DrawFn) -> Header:
    """Headers with only what xtables-monitor prints, in the kernel logger's terms."""
    family = draw(st.sampled_from(["ipv4", "ipv6"]))
    ipv4 = family == "ipv4"
    address = st.builds(
        ipaddress.IPv4Address if ipv4 else ipaddress.IPv6Address, st.integers(0, 2**32 - 1 if ipv4 else 2**128 - 1)
    )
    ports = draw(st.booleans())
    flags = draw(st.sets(st.sampled_from(XTABLES_TCP_FLAGS))) if ports else set()
    values: dict[str, object] = {
        "family": family,
        "src": draw(address),
        "dst": draw(address),
        "ttl": draw(u8),
        "in_iface": draw(ifaces),
        "out_iface": draw(ifaces),
        "mac": draw(st.none() | macs),
        "proto": "TCP" if flags else "?",
        "tcp_flags": tuple(f for f in kernel_flag_order if f in flags),
        "sport": draw(u16) if ports else None,
        "dport": draw(u16) if ports else None,
        "mark": draw(st.none() | st.integers(1, 2**32 - 1)),
    }
    if ipv4:
        values |= {
            "length": draw(u16),
            "tos": draw(u8) & 0x1E,
            "prec": draw(u8) & 0xE0,
            "ip_id": draw(u16),
            "ip_flags": tuple(f for f in ("CE", "DF", "MF") if draw(st.booleans())),
        }
    else:
        values |= {
            "length": draw(st.integers(20, 65535 + 20)),
            "tc": draw(u8),
            "flowlabel": draw(st.integers(0, 2**20 - 1)),
        }
    return Header(**values)  # type: ignore[arg-type]


@settings(max_examples=300)
@given(header=xtables_headers(), trace_id=st.integers(0, 2**32 - 1), fused_id=st.booleans())
def test_a_rendered_packet_line_parses_back_to_its_header(header: Header, trace_id: int, fused_id: bool) -> None:
    packet = render_packet_line(header, trace_id, fused_id)
    step = f" TRACE: 2 {trace_id:08x} filter:FORWARD:policy:ACCEPT "
    found = outcomes([packet, step])
    assert len(found) == 1, (packet, found)
    (event,) = found
    assert isinstance(event, TraceEvent), (packet, event)
    assert event.header == header


@given(st.binary(max_size=300))
def test_random_bytes_never_raise(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    for prefix in ("PACKET: 2 6773a007 ", " TRACE: 2 6773a007 ", ""):
        for outcome in outcomes([prefix + text]):
            assert isinstance(outcome, TraceEvent | BadLine | Skip | Caveat)


@given(
    st.text(
        alphabet=st.sampled_from(list("PACKET:TRACE 2 6773a007 raw:filter:rule:policy:return:0x1e:JUMP=SRC.")),
        max_size=200,
    )
)
def test_xtables_shaped_garbage_never_raises(text: str) -> None:
    lines = PING.read_text().splitlines()
    for outcome in outcomes([lines[0], "PACKET: 2 6773a007 " + text, " TRACE: 2 6773a007 " + text]):
        assert isinstance(outcome, TraceEvent | BadLine | Skip | Caveat)
