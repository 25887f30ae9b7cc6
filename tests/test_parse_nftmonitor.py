"""`nft monitor trace` lines, on the real captures in samples/docker-nft and samples/lab-nft."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lark import UnexpectedInput

from tests.conftest import RunCli
from tests.outcomes import event_at, outcomes, sample_events
from tests.samples import SAMPLES, with_handles
from tracelog.events import Partial, TraceEvent
from tracelog.parse import BadLine, Caveat, Skip, nftmonitor, xtables
from tracelog.parse.fields import ARP_ADDRESS_NOT_PRINTED, FieldError
from tracelog.parse.netlink import UNSEEN_PACKET, KnownPacket

NFT_SAMPLES = sorted(SAMPLES.glob("*/*.nft-monitor"))
SAMPLE_IDS = [str(path.relative_to(SAMPLES)) for path in NFT_SAMPLES]
PING = SAMPLES / "docker-nft/ping.nft-monitor"
NATIVE = SAMPLES / "lab-nft/native.nft-monitor"
# `nft -a monitor trace`, started after a first ping: handles, and counters above zero
DASH_A = SAMPLES / "lab-nft-options/ping.nft-monitor"
# captures where xtables-monitor ran beside nft monitor, on the same trace events
PAIRED = [path for path in NFT_SAMPLES if path.with_suffix(".xtables-monitor").exists()]


@pytest.mark.parametrize("sample", NFT_SAMPLES, ids=SAMPLE_IDS)
def test_every_step_line_is_one_event(sample: Path) -> None:
    """`packet:` lines only describe packets; every other line is a rule, verdict or policy step."""
    steps = [n for n, text in enumerate(sample.read_text().splitlines(), start=1) if " packet: " not in text]
    assert [event.origin.line for event in sample_events(sample)] == steps


def test_rule_steps_carry_the_rule_and_its_verdict() -> None:
    event = event_at(PING, 2)
    assert (event.table, event.chain, event.kind, event.verdict, event.trace_id, event.nf_family) == (
        "raw",
        "PREROUTING",
        "rule",
        "CONTINUE",
        "6773a007",
        "ip",
    )
    assert event.rule == "meta l4proto icmp counter meta nftrace set 1"
    assert (event.handle, event.rulenum) == (None, None)  # nft prints handles only with -a
    assert event_at(PING, 7).verdict == "JUMP:DOCKER-USER"
    assert event_at(PING, 12).verdict == "ACCEPT"


def test_an_explicit_return_rule_is_a_rule_step() -> None:
    event = event_at(PING, 8)
    assert (event.chain, event.kind, event.rule, event.verdict) == ("DOCKER-USER", "rule", "counter return", "RETURN")


def test_policy_steps() -> None:
    event = event_at(PING, 3)
    assert (event.table, event.chain, event.kind, event.rule, event.verdict) == (
        "raw",
        "PREROUTING",
        "policy",
        None,
        "ACCEPT",
    )


def test_native_tables_with_anonymous_sets() -> None:
    trace = event_at(NATIVE, 2)
    assert (trace.nf_family, trace.table, trace.chain) == ("inet", "filter", "trace_prerouting")
    assert trace.rule == "ip saddr { 172.18.0.0/16, 192.0.2.0/24 } counter meta nftrace set 1"
    web = event_at(NATIVE, 31)
    assert (web.chain, web.verdict) == ("forward", "ACCEPT")
    assert web.rule == 'iifname "docker0" oifname "docker0" tcp dport { 80, 443 } accept'
    drop = event_at(NATIVE, 159)
    assert (drop.kind, drop.verdict, drop.header.dport, drop.header.tcp_flags) == ("rule", "DROP", 8080, ("SYN",))


def test_dnat_rule_sees_the_packet_before_it_is_rewritten() -> None:
    event = event_at(NATIVE, 93)
    assert (event.nf_family, event.table, event.chain, event.verdict) == ("ip", "nat", "prerouting", "ACCEPT")
    assert event.rule == 'iifname "eth0" tcp dport 8080 dnat to 172.18.0.3:80'
    assert (str(event.header.dst), event.header.dport, event.header.in_iface) == ("192.0.2.1", 8080, "eth0")


def test_icmp_echo_header() -> None:
    header = event_at(PING, 2).header
    assert (header.family, str(header.src), str(header.dst), header.proto) == (
        "ipv4",
        "172.18.0.2",
        "172.18.0.3",
        "ICMP",
    )
    assert (header.in_iface, header.mac) == ("docker0", "02:42:ac:12:00:03:02:42:ac:12:00:02:08:00")
    assert (header.length, header.tos, header.prec, header.ttl, header.ip_id) == (84, 0, 0, 64, 52221)
    # `icmp code net-unreachable` is nft's name for code 0
    assert (header.icmp_type, header.icmp_code, header.icmp_id, header.icmp_seq) == (8, 0, 13, 0)
    # the echo payload nft shows as raw bytes is kept, not lost
    assert header.extra == (("@th,64,96", "0xa3a29c280000000000000000"),)


def test_raw_link_layer_bytes_are_the_mac() -> None:
    """POSTROUTING has no input device: nft prints the Ethernet header as `@ll,0,112 0x242ac...`."""
    assert event_at(PING, 14).header.mac == event_at(PING, 2).header.mac


def test_icmp_error_header_reads_as_the_kernel_logs_it() -> None:
    """`ip dscp cs6` is the kernel's `TOS=0x00 PREC=0xC0`; an error has no echo id, whatever nft prints."""
    nft = event_at(SAMPLES / "lab-nft/udp-closed.nft-monitor", 16).header
    assert (nft.proto, nft.icmp_type, nft.icmp_code, nft.icmp_id, nft.icmp_seq) == ("ICMP", 3, 3, None, None)
    kernel_log = (SAMPLES / "lab-legacy/udp-closed.dmesg").read_text().splitlines()
    kernel = next(o for o in outcomes(kernel_log) if isinstance(o, TraceEvent) and o.header.icmp_type == 3).header
    fields = ("tos", "prec", "ttl", "length", "proto", "icmp_type", "icmp_code", "icmp_id", "icmp_seq")
    assert [getattr(nft, name) for name in fields] == [getattr(kernel, name) for name in fields]


def test_icmpv6_echo_id_and_sequence() -> None:
    """nft calls bytes 4-7 of an ICMPv6 header `parameter-problem`; an echo keeps its id and sequence there."""
    events = sample_events(SAMPLES / "lab-nft/ipv6-ping.nft-monitor")
    requests = [e.header for e in events if e.header.icmp_type == 128]
    assert {(h.proto, h.icmp_code, h.icmp_id) for h in requests} == {("ICMPv6", 0, 20808)}
    assert {h.icmp_seq for h in requests} == {0, 1}
    # `ip6 length 64` is the payload: the kernel's LEN= counts the 40-byte header too
    assert {(str(h.src), str(h.dst), h.length, h.tc, h.ttl, h.flowlabel) for h in requests} == {
        ("fd00:18::2", "fd00:18::3", 104, 0, 64, 772344)
    }


def test_tcp_flags_as_a_number() -> None:
    header = event_at(SAMPLES / "lab-nft/tcp.nft-monitor", 16).header  # `tcp flags == 0x12`
    assert (header.proto, header.sport, header.tcp_flags, header.tcp_window) == ("TCP", 80, ("ACK", "SYN"), 65160)


@pytest.mark.parametrize("sample", PAIRED, ids=[str(path.relative_to(SAMPLES)) for path in PAIRED])
def test_both_monitors_read_the_same_events_alike(sample: Path) -> None:
    """xtables-monitor and nft monitor ran together: same steps, same verdicts, same header fields."""
    nft, xtables = sample_events(sample), sample_events(sample.with_suffix(".xtables-monitor"))
    assert [(e.trace_id, e.nf_family, e.table, e.chain, e.kind, e.verdict) for e in nft] == [
        (e.trace_id, e.nf_family, e.table, e.chain, e.kind, e.verdict) for e in xtables
    ]
    shared = (
        "family",
        "src",
        "dst",
        "in_iface",
        "out_iface",
        "mac",
        "length",
        "tos",
        "prec",
        "tc",
        "ttl",
        "flowlabel",
        "ip_id",
        "sport",
        "dport",
        "tcp_flags",
    )
    for a, b in zip(nft, xtables, strict=True):
        # of an ARP packet nft prints the operation only, xtables-monitor the whole header
        names = [name for name in shared if name not in ("src", "dst")] if a.header.proto == "ARP" else shared
        assert [getattr(a.header, name) for name in names] == [getattr(b.header, name) for name in names], (
            a.origin.line,
            b.origin.line,
        )
        if a.header.proto == "ARP":
            assert (b.header.proto, b.header.arp_op) == ("ARP", a.header.arp_op)


def test_the_captures_say_which_were_taken_with_handles() -> None:
    assert with_handles(DASH_A)
    assert not with_handles(PING)
    assert not with_handles(NATIVE)


@pytest.mark.parametrize("sample", [path for path in NFT_SAMPLES if with_handles(path)], ids=str)
def test_captures_with_handles_give_every_rule_its_handle(sample: Path) -> None:
    rules = [event for event in sample_events(sample) if event.kind == "rule"]
    assert rules
    assert all(event.handle is not None for event in rules)


def test_rule_handles_under_nft_dash_a() -> None:
    """`nft -a monitor trace` ends the rule with `# handle N`: kept as xtables-monitor prints it, in hex."""
    event = event_at(DASH_A, 7)  # `... jump DOCKER-USER # handle 8 (verdict jump DOCKER-USER)`
    assert (event.handle, event.rule, event.verdict) == ("0x8", "counter jump DOCKER-USER", "JUMP:DOCKER-USER")
    assert event.handle is not None
    assert int(event.handle, 16) == 8  # what `nft -a list ruleset` calls it
    xtables = event_at(DASH_A.with_suffix(".xtables-monitor"), 7)
    assert (xtables.trace_id, xtables.chain, xtables.handle) == (event.trace_id, event.chain, event.handle)


def test_plain_nft_monitor_trace_prints_no_handles() -> None:
    """Without -a (nft 1.0.6), a rule step has its rule text and verdict, but neither handle nor position."""
    events = [event for sample in NFT_SAMPLES if not with_handles(sample) for event in sample_events(sample)]
    rules = [event for event in events if event.kind == "rule"]
    assert rules
    assert {(event.handle, event.rulenum) for event in events} == {(None, None)}
    assert all(event.rule and event.verdict for event in rules)


@pytest.mark.parametrize("sample", NFT_SAMPLES, ids=SAMPLE_IDS)
def test_rule_texts_read_without_live_counters(sample: Path) -> None:
    """`counter packets 3 bytes 180` is the rule's count, not the rule: it reads `counter`, as `nft -s` lists it."""
    numbers = re.compile(r"packets \d+ bytes \d+")
    assert numbers.search(sample.read_text())
    rules = [event.rule for event in sample_events(sample) if event.rule is not None]
    assert rules
    assert not [rule for rule in rules if numbers.search(rule)]


def test_counters_above_zero_are_taken_out_too() -> None:
    """nft prints the counters of the ruleset it read when it started: 2 packets here, before the traced ping."""
    assert "counter packets 2 bytes 168 return # handle 19" in DASH_A.read_text().splitlines()[7]
    event = event_at(DASH_A, 8)
    assert (event.chain, event.rule, event.handle, event.verdict) == ("DOCKER-USER", "counter return", "0x13", "RETURN")


def test_other_live_state_is_taken_out_like_counters() -> None:
    """A quota's `used` and a set element's counter are live state as well (`nft -s` leaves them out)."""
    lines = PING.read_text().splitlines()
    stateful = lines[6].replace(
        "counter packets 0 bytes 0 jump",
        "ip saddr { 172.18.0.2 counter packets 7 bytes 588 } quota 10 mbytes used 3 kbytes counter packets 7 bytes 588"
        " last used 2s jump",
    )
    *_, event = outcomes([lines[5], stateful])
    assert isinstance(event, TraceEvent)
    assert event.rule == "ip saddr { 172.18.0.2 counter } quota 10 mbytes counter last jump DOCKER-USER"


def test_the_verdict_is_the_last_parenthesis() -> None:
    lines = PING.read_text().splitlines()
    commented = lines[6].replace("jump DOCKER-USER (", 'jump DOCKER-USER comment "(verdict drop)" (')
    *_, event = outcomes([lines[5], commented])
    assert isinstance(event, TraceEvent)
    assert event.verdict == "JUMP:DOCKER-USER"
    assert event.rule is not None
    assert event.rule.endswith('comment "(verdict drop)"')


def test_a_step_before_its_packet_line_keeps_its_step_with_an_unknown_header() -> None:
    caveat, event = outcomes(PING.read_text().splitlines()[1:2])
    assert isinstance(caveat, Caveat)
    assert caveat.message == UNSEEN_PACKET
    assert isinstance(event, TraceEvent)
    assert (event.table, event.chain, event.kind, event.verdict) == ("raw", "PREROUTING", "rule", "CONTINUE")
    assert event.header.partial == Partial(guessed=("header",))


def test_a_step_of_an_inet_table_before_its_packet_line_guesses_the_family_too() -> None:
    native = (SAMPLES / "lab-nft/native.nft-monitor").read_text().splitlines()
    step = next(line for line in native if " inet " in line and " rule " in line)
    _, event = outcomes([step])
    assert isinstance(event, TraceEvent)
    assert event.header.partial == Partial(guessed=("header", "family"))


def test_conntrack_lines_are_not_read() -> None:
    """nftables >= 1.1.4 adds `conntrack:` lines; there is no capture of one, so they are skipped."""
    lines = PING.read_text().splitlines()
    conntrack = lines[1][: lines[1].index(" rule ")] + " conntrack: ct state new"
    assert outcomes([lines[0], conntrack]) == [Skip.OTHER]


def test_a_packet_that_is_neither_ip_nor_arp_skips_its_steps() -> None:
    lines = PING.read_text().splitlines()
    lldp = lines[0][: lines[0].index(" ip saddr")].replace("ether type ip", "") + " ether type 0x88cc "
    assert outcomes([lldp, lines[1]]) == [Skip.NON_IP]


ARP = SAMPLES / "lab-arp"


def test_arp_in_the_netdev_bridge_and_arp_families_is_read() -> None:
    """A request flooded by a bridge, the bridge's reply from its arp table: nft prints their operation and MACs."""
    events = sample_events(ARP / "local.nft-monitor")
    assert [(e.nf_family, e.table, e.chain) for e in events][::3] == [
        ("netdev", "trace", "trace_ingress"),
        ("bridge", "td_bridge", "prerouting"),
        ("arp", "td_arp", "input"),
        ("arp", "td_arp", "trace_output"),
    ]
    request, reply = events[0].header, events[-1].header
    assert (request.family, request.proto, request.arp_op, request.in_iface) == ("ipv4", "ARP", 1, "td-bra")
    assert request.mac == "ff:ff:ff:ff:ff:ff:02:00:0a:63:00:02:08:06"
    assert (reply.proto, reply.arp_op, reply.out_iface, reply.mac) == ("ARP", 2, "td-br0", None)
    assert request.src is request.dst is reply.src is ARP_ADDRESS_NOT_PRINTED
    assert all(e.header.partial is None for e in events)


def test_a_bad_address_is_a_bad_line_and_its_steps_are_not_misattributed() -> None:
    lines = PING.read_text().splitlines()
    broken = lines[0].replace("ip saddr 172.18.0.2", "ip saddr 172.18.0.299")
    bad, caveat, event = outcomes([lines[0], broken, lines[1]])
    assert isinstance(bad, BadLine)
    assert "not an IP address" in bad.reason
    assert isinstance(caveat, Caveat)
    assert isinstance(event, TraceEvent)
    assert event.header.partial == Partial(guessed=("header",))


@pytest.mark.parametrize(
    ("damage", "partial"),
    [
        (("ip saddr 172.18.0.2", "ip saddr x.x.x.x"), Partial(redacted=("src",))),
        (("ether saddr 02:42:ac:12:00:02", "ether saddr xx:xx:xx:xx:xx:xx"), Partial(redacted=("mac",))),
        (("ip ttl 64 ", "ip ttl ... "), Partial(elided=("ttl",))),
        (("ip dscp cs0 ip ecn not-ect ip ttl 64 ", "[...] "), Partial(elided=("tos", "prec", "ttl"))),
    ],
)
def test_a_damaged_packet_line_gives_its_steps_a_partial_header(damage: tuple[str, str], partial: Partial) -> None:
    lines = PING.read_text().splitlines()
    assert damage[0] in lines[0]
    *notes, event = outcomes([lines[0].replace(*damage), lines[1]])
    assert notes
    assert isinstance(event, TraceEvent)
    assert event.header.partial == partial


def test_a_packet_line_cut_short_with_an_ellipsis() -> None:
    lines = PING.read_text().splitlines()
    cut = lines[0][: lines[0].index(" ether saddr")] + " .."
    *_, event = outcomes([cut, lines[1]])
    assert isinstance(event, TraceEvent)
    assert event.header.in_iface == "docker0"
    assert event.header.partial is not None
    assert {"src", "dst"} <= set(event.header.partial.elided)


def test_a_blank_inside_a_statement_is_closed() -> None:
    lines = PING.read_text().splitlines()
    (undamaged,) = outcomes(lines[:2])
    _, event = outcomes([lines[0].replace("ip dscp", "ip dsc p"), lines[1]])
    assert isinstance(undamaged, TraceEvent)
    assert isinstance(event, TraceEvent)
    assert event.header._replace(partial=None) == undamaged.header
    assert event.header.partial == Partial(repaired=("tos",))


@pytest.mark.parametrize("remark", ["  # noqa", "   <-- this one", " // here"])
def test_a_remark_after_a_line_is_left_out(remark: str) -> None:
    lines = PING.read_text().splitlines()
    expected = outcomes(lines[:3])
    found = outcomes([line.rstrip() + remark for line in lines[:3]])
    assert all(isinstance(event, TraceEvent) for event in found), found
    assert [event.header for event in found] == [event.header for event in expected]  # type: ignore[attr-defined]
    assert [event.rule for event in found] == [event.rule for event in expected]  # type: ignore[attr-defined]


def test_a_packet_line_with_a_damaged_head_is_bad_even_when_its_statements_are_known() -> None:
    """The shape memo reads statements; the family, table and chain before them must still be checked."""
    lines = PING.read_text().splitlines()
    family = lines[0].split()[3]
    damaged = lines[0].replace(f" {family} ", " notafamily ", 1)
    (bad,) = outcomes([lines[0], damaged])
    assert isinstance(bad, BadLine)
    assert bad.origin.line == 2


def test_the_packet_mark_of_a_policy_step() -> None:
    """Policy and chain-end lines add `meta mark` when the packet has one."""
    lines = PING.read_text().splitlines()
    marked, garbled = (lines[2].rstrip() + f" meta mark {mark}" for mark in ("0x0000002a", "0xzz"))
    event, bad = outcomes([lines[0], marked, garbled])
    assert isinstance(event, TraceEvent)
    assert (event.kind, event.verdict, event.header.mark) == ("policy", "ACCEPT", 42)
    assert isinstance(bad, BadLine)


@pytest.mark.parametrize("line", [0, 2])
def test_truncated_lines_are_bad_lines(line: int) -> None:
    lines = PING.read_text().splitlines()
    result = outcomes([lines[0], lines[line][: len(lines[line]) // 2]])
    assert result
    assert all(isinstance(o, BadLine) for o in result), result


def test_a_rule_line_cut_before_its_verdict_keeps_its_step() -> None:
    lines = PING.read_text().splitlines()
    cut = lines[1][: lines[1].index(" (verdict")]
    _, event = outcomes([lines[0], cut])
    assert isinstance(event, TraceEvent)
    assert (event.kind, event.verdict) == ("rule", None)
    assert event.rule is not None
    assert event.header.partial == Partial(elided=("verdict",))


@pytest.mark.parametrize("sample", NFT_SAMPLES, ids=SAMPLE_IDS)
def test_the_cli_gives_packets_with_rules_and_verdicts(sample: Path, run_cli: RunCli) -> None:
    run = run_cli("parse", "--format", "jsonl", str(sample))
    assert run.status == 0, run.stderr
    steps = [step for record in run.records() for step in record["steps"]]
    assert len(steps) == len(sample_events(sample))
    assert all(step["verdict"] for step in steps)
    rules = [step for step in steps if step["kind"] == "rule"]
    assert rules
    assert all(step["rule"] for step in rules)
    with_handles = "# handle " in sample.read_text()  # `nft -a monitor trace`
    assert all((step["handle"] is not None) == (with_handles and step["kind"] == "rule") for step in steps)


@given(st.binary(max_size=300))
def test_random_bytes_never_raise(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    for prefix in ("trace id 6773a007 ip filter FORWARD ", "trace id 6773a007 ip filter FORWARD packet: ", ""):
        for outcome in outcomes([prefix + text]):
            assert isinstance(outcome, TraceEvent | BadLine | Skip | Caveat)


NFT_WORDS = [
    "ip",
    "ip6",
    "saddr",
    "daddr",
    "1.2.3.4",
    "::1",
    "tcp",
    "flags",
    "==",
    "|",
    "syn",
    "0x12",
    "icmp",
    "icmpv6",
    "type",
    "echo-request",
    "parameter-problem",
    "@ll,0,112",
    "@th,8,16",
    "0xfff",
    "iif",
    '"lo"',
    "ether",
    "arp",
    "rule",
    "(verdict",
    "accept)",
    "jump",
    "policy",
    "meta",
    "mark",
    "length",
    "99999999999",
]


@given(st.lists(st.sampled_from(NFT_WORDS), max_size=40).map(" ".join))
def test_nft_shaped_garbage_never_raises(text: str) -> None:
    lines = PING.read_text().splitlines()
    header = "trace id 6773a007 ip filter FORWARD "
    for outcome in outcomes([header + "packet: " + text, header + text, lines[1]]):
        assert isinstance(outcome, TraceEvent | BadLine | Skip | Caveat)


def meaning(module: ModuleType, line: object) -> object:
    """What a parsed monitor line says: a packet line its trace id and header, a step line itself."""
    if isinstance(line, KnownPacket):
        return line.trace_id, line.header
    if isinstance(line, module._PacketLine):
        fields = line.statements if module is nftmonitor else line.fields
        return line.trace_id, module._header(fields)
    return line


def another_packet(text: str) -> str:
    """A line of the same shape for another packet: every decimal value one more."""
    return re.sub(r"(?<=[= ])\d+(?=\s|$)", lambda number: str(int(number[0]) + 1), text)


def test_memos_agree_with_the_grammar_on_every_sample_line() -> None:
    """Step lines (by their text without the trace id) and packet lines (by shape) are memoised; the grammar is
    the reference, also for lines of a shape seen before with other values."""
    checked = 0
    for module, pattern in ((nftmonitor, "*/*.nft-monitor"), (xtables, "*/*.xtables-monitor")):
        for sample in sorted(SAMPLES.glob(pattern)):
            for line in sample.read_text().splitlines():
                for text in (line, another_packet(line)):
                    try:
                        expected = meaning(module, module._grammar(text))
                    except (UnexpectedInput, FieldError):
                        continue  # errors always come from the grammar itself
                    assert meaning(module, module._LINES.parse(text)) == expected, text
                    checked += 1
    assert checked > 2000


def test_an_ethernet_address_elided_marks_the_mac_elided() -> None:
    """`ether saddr [..]` (the run up to the next address elided): the MAC is unknown, and says so."""
    lines = PING.read_text().splitlines()
    elided = re.sub(r"ether saddr \S+ ether daddr \S+", "ether saddr [..]", lines[0])
    (*_, event) = outcomes([elided, lines[1]])
    assert isinstance(event, TraceEvent)
    assert event.header.mac is None
    assert event.header.partial is not None
    assert "mac" in event.header.partial.elided
