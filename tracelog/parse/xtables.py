"""`xtables-monitor --trace` lines (iptables-nft): PACKET headers and the TRACE steps that use them.

A TRACE line has no header of its own: its packet is the last PACKET line
printed with the same trace id, so the parser keeps per-run state.  PACKET
fields are read with the kernel logger's field grammar and rewritten into its
spellings (one `MAC=`, `TOS=` split from `PREC=`, a `PROTO=` before the ports)
so that `build_header` gives a `Header` that means what a kernel-log one does.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from lark import Token, Transformer
from lark.visitors import merge_transformers

from tracelog.events import Family, Header, NfFamily, StepKind
from tracelog.parse.fields import (
    ARP,
    Field,
    FieldError,
    FieldsTransformer,
    Hidden,
    Printed,
    build_header,
    field_name,
    hidden_value,
    is_hidden,
    rule_damage,
)
from tracelog.parse.grammar import load_parser
from tracelog.parse.netlink import (
    NFPROTO_FAMILIES,
    PROTOCOL_NUMBERS,
    MonitorLines,
    MonitorParser,
    TraceStep,
    proto_name,
    tcp_flag_bits,
    tcp_flag_names,
    tos_fields,
    verdict_name,
)
from tracelog.parse.shapes import NUMBER_VALUE, VALUE_START, ValueKind, address_kinds, address_values

_NFT_RETURN = 0xFFFFFFFB  # NFT_RETURN (-5): print_verdict() has no word for it
_TCP_FLAGS = frozenset({"SYN", "ACK", "FIN", "RST", "PSH", "URG"})
# xtables-monitor adds sizeof(struct iphdr), 20, to the IPv6 payload length
# where the kernel logger adds the 40 of the IPv6 header
_IPV6_LEN_SHORTFALL = 20
# one byte printed with %02x from a signed char: 00..7f, or ffffff80..ffffffff
_SIGNED_BYTE = re.compile(r"([0-7][0-9a-f])|ffffff([89a-f][0-9a-f])", re.IGNORECASE)

# `-c` (rule_cb(): nft_rule_print_save() without FMT_NOCOUNTS) prints the
# rule's live counters after its family and table, before its chain:
# `-4 -t raw [2:168] -A PREROUTING ...`
_RULE_HEAD = r"-[046] -t \S++ "
_RULE_COUNTERS = r"\[\d+:\d+\] "
_COUNTERS = re.compile(rf"({_RULE_HEAD}){_RULE_COUNTERS}")

_StepParts = tuple[StepKind, str | None, str, str | None]
"""kind, handle, verdict, rule text"""


# What xtables-monitor prints of a packet (trace_print_packet()), for naming
# what an elision hid: no interfaces unless set, no protocol, nothing of ICMP
XTABLES_PRINTED = Printed(
    ipv4=("src", "dst", "length", "tos", "ttl", "ip_id"),
    ipv6=("src", "dst", "length", "tc", "ttl", "flowlabel"),
    transport={"TCP": ("sport", "dport")},
    echo=(),
)


@dataclass(frozen=True, slots=True)
class _PacketLine:
    trace_id: str
    fields: list[Field]
    family: NfFamily | None = None


def _without_counters(rule: str) -> str:
    """A rule as xtables-monitor printed it, without the live counters `-c` adds (`[2:168]`)."""
    counted = _COUNTERS.match(rule) if "[" in rule else None
    return rule if counted is None else counted[1] + rule[counted.end() :]


def _unsigned_bytes(text: str) -> list[str] | None:
    """The bytes of a hex dump printed from signed chars, or None if it is not one."""
    matches = list(_SIGNED_BYTE.finditer(text))
    if sum(len(match[0]) for match in matches) != len(text):
        return None
    return [(match[1] or match[2]).lower() for match in matches]


class _XtablesTransformer(Transformer[Token, Any]):
    """Turns the `xtables.lark` rules into a `_PacketLine` or a `TraceStep`.

    The kernel logger's field rules come namespaced from logfields.lark and
    are merged in below, as the kernel parser does.
    """

    def packet(self, children: list[Any]) -> _PacketLine:
        family = NFPROTO_FAMILIES.get(int(children[0]))
        return _PacketLine(str(children[1]), children[2], family if family in ("ip", "ip6") else None)

    def packet_fields(self, children: list[Field]) -> list[Field]:
        return children

    def port(self, children: list[Token]) -> Field:
        key, value = children
        return ("SPT" if key == "SPORT=" else "DPT", hidden_value(value) if is_hidden(value) else int(value))

    def mac_address(self, children: list[Token]) -> Field:
        key, value = children
        return (key[:-1], hidden_value(value) if is_hidden(value) else str(value))

    def mac_proto(self, children: list[Token]) -> Field:
        value = children[1]
        return ("MACPROTO", hidden_value(value) if is_hidden(value) else str(value))

    def link_layer(self, children: list[Token]) -> Field:
        return ("LL", str(children[2]) if len(children) > 2 else "")

    def network_header(self, children: list[Token]) -> Field:
        value = children[1]
        return ("NH", hidden_value(value) if is_hidden(value) else str(value))

    def loopback(self, children: list[Token]) -> Field:
        return ("EXTRA", ("LOOPBACK", ""))

    def step(self, children: list[Any]) -> TraceStep:
        nfproto, trace_id, table, chain, (kind, handle, verdict, rule) = children
        family = NFPROTO_FAMILIES.get(int(nfproto))
        partial = rule_damage(rule)
        return TraceStep(str(trace_id), family, str(table), str(chain), kind, verdict, handle, rule, None, partial)

    def rule_step(self, children: list[Any]) -> _StepParts:
        rule = _without_counters(children[2].rstrip()) if len(children) > 2 else None
        return "rule", str(children[0]), children[1], rule

    def policy_step(self, children: list[Any]) -> _StepParts:
        return "policy", None, children[0], None

    def return_step(self, children: list[Any]) -> _StepParts:
        # xtables-monitor does not print the verdict of a chain's end: it is
        # the return to the calling chain
        return "return", None, "RETURN", None

    def verdict(self, children: list[Token]) -> str:
        word = children[0]
        if word.type == "CODE":
            return "RETURN" if int(word, 16) == _NFT_RETURN else str(word)
        return verdict_name(word, str(children[1]) if len(children) > 1 else None)


_TRANSFORMER = merge_transformers(_XtablesTransformer(), logfields=FieldsTransformer())  # type: ignore[no-untyped-call]


def _grammar(text: str) -> _PacketLine | TraceStep:
    return cast(_PacketLine | TraceStep, load_parser("xtables", ("line",), _TRANSFORMER).parse(text))


def _line_header(line: _PacketLine) -> Header | None:
    return _header(line.fields, "ipv6" if line.family == "ip6" else "ipv4" if line.family == "ip" else None)


def _monitor_lines(grammar: Callable[[str], _PacketLine | TraceStep]) -> MonitorLines:
    """xtables-monitor's lines through the memos, `grammar` reading what they cannot answer.

    PACKET lines differ from packet to packet in their trace id, decimal
    values and addresses; `MACPROTO=0800` is not one (it becomes part of the
    MAC= field, and so do the MAC addresses, rewritten).
    TRACE lines differ in their trace id, and under `-c` in the rule's live
    counters, which the rule text is read without.
    """
    return MonitorLines(
        grammar,
        _line_header,
        packet_line=re.compile(r"[ \t]*PACKET: \d+ ([0-9a-f]+) (.*)"),
        stub="PACKET: 0 0 ",
        values=re.compile(
            rf"={VALUE_START}(?:(?<!TYPE=)(?<!MACPROTO=)({NUMBER_VALUE})|{address_values(' SRC=', ' DST=')})(?![^ \t])"
        ),
        kinds=(ValueKind("=", NUMBER_VALUE), *address_kinds("=")),
        step_line=re.compile(r"[ \t]*TRACE: \d+ ([0-9a-f]+) "),
        step_volatile=re.compile(rf"[ \t]*TRACE: \d+ ([0-9a-f]+) \S++ ++{_RULE_HEAD}({_RULE_COUNTERS})"),
    )


_LINES = _monitor_lines(_grammar)


def _ethernet(parts: dict[str, str]) -> str:
    """MACDST:MACSRC:MACPROTO as the kernel's `MAC=` prints them: zero-padded octets."""
    octets = [*parts["MACDST"].split(":"), *parts["MACSRC"].split(":"), parts["MACPROTO"][:2], parts["MACPROTO"][2:]]
    return ":".join(octet.zfill(2).lower() for octet in octets)


def _rewrite(key: str, value: Any, macs: dict[str, Any]) -> list[Field]:
    """One xtables-monitor field as kernel logger fields (none while a MAC is incomplete)."""
    if key in ("MACSRC", "MACDST", "MACPROTO"):
        macs[key] = value
        if len(macs) < 3:
            return []
        hidden = next((part for part in macs.values() if type(part) is Hidden), None)
        return [("MAC", hidden if hidden is not None else _ethernet(macs))]
    if type(value) is Hidden:
        return [("TOS", value), ("PREC", value)] if key == "TOS" else [(key, value)]
    if key in ("LL", "OPT"):
        return _bytes_field(key, value)
    if key == "TOS":
        tos, prec = tos_fields(value)
        return [("TOS", tos), ("PREC", prec)]
    return [(key, value)]


def _bytes_field(key: str, value: str) -> list[Field]:
    """`LL=` (a link layer as the kernel's `MAC=` would print it) or `OPT=`, from bytes printed as signed chars."""
    octets = _unsigned_bytes(value)
    if key == "LL":
        return [("MAC", ":".join(octets))] if octets else [("EXTRA", ("LL", value))]
    return [("OPT", "".join(octets).upper() if octets is not None else value)]


def _proto(fields: list[Field]) -> Field:
    """PROTO=, which xtables-monitor does not print: TCP when it printed TCP flags.

    Ports alone may be UDP, UDP-Lite, SCTP or DCCP, and a header without ports
    anything else (ICMP and ICMPv6 print nothing of their own), so the
    protocol stays unknown ("?"); `rule_protocol` may tell it from a rule the
    packet matched.
    """
    tcp = any(key == "FLAG" and value in _TCP_FLAGS for key, value in fields)
    return ("PROTO", "TCP" if tcp else "?")


def rule_protocol(rule: str | None) -> str | None:
    """The IP protocol a packet has if it matched `rule`, in the kernel logger's spelling (`ICMP`, `TCP`, `47`).

    `rule` is an iptables rule as xtables-monitor prints it (or iptables-save):
    its `-p` option names the one protocol the rule lets through, by a name
    iptables prints (`icmp`, `ipv6-icmp`, `udp`) or a number.  A rule step in
    an nf_tables trace is a rule the packet matched: the kernel reports a rule
    only once every one of its expressions matched, a mismatch ending the rule
    without a trace event.  So a packet whose TRACE line shows `-p icmp` is
    ICMP at every hook (NAT never changes the protocol).

    None where the rule does not pin one protocol: no `-p`, `! -p icmp`,
    `-p all` (or 0), a name tracelog does not know, or text that does not
    split into words as iptables quotes them.
    """
    if rule is None or "-p" not in rule:
        return None
    try:
        words = shlex.split(rule)
    except ValueError:
        return None
    for at, word in enumerate(words[:-1]):
        if word in ("-p", "--protocol") and (at == 0 or words[at - 1] != "!"):
            name = words[at + 1].lower()
            number = int(name) if name.isdecimal() else PROTOCOL_NUMBERS.get(name, 0)
            return proto_name(number) if number else None
    return None


def _kernel_fields(fields: list[Field]) -> list[Field]:
    """The fields of a PACKET line in the kernel logger's spellings and order."""
    macs: dict[str, Any] = {}
    rewritten = [pair for key, value in fields for pair in _rewrite(key, value, macs)]
    ports = next((index for index, (key, _) in enumerate(rewritten) if key in ("SPT", "DPT")), len(rewritten))
    transport = rewritten[ports:]
    flags = [value for key, value in transport if key == "FLAG" and value in _TCP_FLAGS]
    others = [pair for pair in transport if not (pair[0] == "FLAG" and pair[1] in _TCP_FLAGS)]
    ordered_flags: list[Field] = [("FLAG", name) for name in tcp_flag_names(tcp_flag_bits(flags))]
    return [*rewritten[:ports], _proto(transport), *others, *ordered_flags]


# an ARP header for IPv4 over Ethernet (RFC 826): hardware type 1, protocol
# 0x0800, addresses of 6 and 4 bytes, then the operation
_ARP_IPV4_OVER_ETHERNET = ("00", "01", "08", "00", "06", "04")
_ARP_BYTES = 28
# what a network header hidden in a paste stands for when no Ethernet type says ARP
_UNKNOWN_NETWORK: list[Field] = [("PROTO", "?")]


def _arp_fields(octets: list[str]) -> list[Field] | None:
    """An ARP header's fields (`NH=` bytes) as the kernel logger prints them after `ARP`; None if it is none.

    Only ARP for IPv4 over Ethernet, the kernel logger's own case.
    """
    if len(octets) < _ARP_BYTES or tuple(octets[:6]) != _ARP_IPV4_OVER_ETHERNET:
        return None

    def address(start: int) -> ipaddress.IPv4Address:
        return ipaddress.IPv4Address(bytes(int(octet, 16) for octet in octets[start : start + 4]))

    return [
        ("PROTO", ARP),
        ("OPCODE", int(octets[6] + octets[7], 16)),
        ("MACSRC", ":".join(octets[8:14])),
        ("IPSRC", address(14)),
        ("MACDST", ":".join(octets[18:24])),
        ("IPDST", address(24)),
    ]


def _network_header(fields: list[Field]) -> list[Field] | None:
    """The fields that stand for a PACKET line's `NH=` bytes; None for a packet that is neither IP nor ARP.

    An ARP header's fields; a hidden one's (elided or redacted in a paste)
    are ARP's with the addresses hidden when the Ethernet type says ARP, else
    unknown.
    """
    value = next(value for key, value in fields if key == "NH")
    if type(value) is not Hidden:
        octets = _unsigned_bytes(value)
        return None if octets is None else _arp_fields(octets)
    arp = any(key == "MACPROTO" and str(proto).lower() == "0806" for key, proto in fields)
    return [("PROTO", ARP), ("IPSRC", value), ("IPDST", value)] if arp else _UNKNOWN_NETWORK


def _header(fields: list[Field], family: Family | None = None) -> Header | None:
    """The header of a PACKET line; None for a packet that is neither IP nor ARP (`NH=` instead of addresses).

    A line that ends before its addresses was cut: it is read as far as it goes.
    """
    if not any(key == "SRC" for key, _ in fields) and any(key == "NH" for key, _ in fields):
        network = _network_header(fields)
        if network is None:
            return None
        macs: dict[str, Any] = {}
        link = [pair for key, value in fields if key != "NH" for pair in _rewrite(key, value, macs)]
        cut = network is _UNKNOWN_NETWORK  # all but the link layer unknown
        return build_header([*link, *network], complete=False, family=family, printed=XTABLES_PRINTED, cut=cut)
    kernel_fields = _kernel_fields(fields)
    try:
        header = build_header(kernel_fields, complete=False, family=family, printed=XTABLES_PRINTED)
    except FieldError as error:
        if error.column is not None or not str(error).startswith("line ends early"):
            raise
        header = build_header(kernel_fields, complete=False, family=family, printed=XTABLES_PRINTED, cut=True)
    if header.family == "ipv6" and header.length is not None:
        header = header._replace(length=header.length + _IPV6_LEN_SHORTFALL)
    return header


def _field_name(text: str, word: str) -> str:
    """The `Header` field a word of a PACKET line is about (`TTL=63` → `ttl`), for notes."""
    key = word.partition("=")[0]
    if key in ("SPORT", "DPORT"):
        return key[0].lower() + "port"
    if key in ("MACSRC", "MACDST", "MACPROTO"):
        return "mac"
    return field_name(word, transport=False)


def _damaged_packet_id(text: str) -> str | None:
    words = text.split(maxsplit=3)
    return words[2] if len(words) > 2 and words[0] == "PACKET:" else None


class XtablesMonitorParser(MonitorParser):
    """Reads the `xtables-monitor --trace` lines of one run (PACKET lines, then TRACE lines)."""

    def __init__(self) -> None:
        super().__init__(_LINES.parse, _line_header, _damaged_packet_id, _field_name)
