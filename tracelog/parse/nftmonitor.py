"""`nft monitor trace` lines: `packet:` headers and the rule, verdict and policy steps that use them.

Step lines carry no header: their packet is the last `packet:` line printed
with the same trace id, so the parser keeps per-run state.  nft prints header
fields the way its rules spell them (`ip saddr 172.18.0.2`, `icmp type
echo-request`, `tcp flags == 0x12`); they are rewritten into the kernel
logger's fields so that `build_header` gives a `Header` that means what a
kernel-log one does, with what no `Header` attribute holds kept in `extra`.

Step kinds, from nft's NFT_TRACETYPE_* (netlink_events_trace_cb()):
`rule ... (verdict v)` is `rule`; `policy v`, the base chain's policy, is
`policy`; `verdict v` (NFT_TRACETYPE_RETURN) is the end of a chain's
evaluation without a verdict of its own, whether it ran out of rules
(`verdict continue`) or met a `return` (`verdict return`): control goes back
to the calling chain (or, in a base chain, to its policy), so it is `return`
with the verdict RETURN, as xtables-monitor's `return:` lines for the same
events.  `conntrack:` lines (nftables >= 1.1.4) are skipped as other lines.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, cast

from lark import Token, Transformer

from tracelog.events import Family, Header, NfFamily, Partial, StepKind
from tracelog.parse.fields import (
    ARP,
    ARP_ADDRESS_NOT_PRINTED,
    ARP_OPERATIONS,
    ECHO_TYPES,
    IPV6_HEADER_LENGTH,
    Field,
    FieldError,
    Hidden,
    Printed,
    build_header,
    has_ellipsis,
    hidden_name,
    hidden_value,
    ip_address,
    rule_damage,
)
from tracelog.parse.grammar import load_parser
from tracelog.parse.netlink import (
    PROTOCOL_NUMBERS,
    MonitorLines,
    MonitorParser,
    TraceStep,
    proto_name,
    tcp_flag_names,
    tos_fields,
    verdict_name,
)
from tracelog.parse.outcome import Skip
from tracelog.parse.shapes import NUMBER_VALUE, VALUE_START, ValueKind, address_kinds, address_values

Statement = tuple[str, str]
"""One `packet:` statement: `ip saddr`, `iif`, `@th,64,96`... and its value as printed."""

# nft's symbol tables (src/proto.c, src/datatype.c): names it prints for numbers
_ICMP_TYPES = {
    "echo-reply": 0,
    "destination-unreachable": 3,
    "source-quench": 4,
    "redirect": 5,
    "echo-request": 8,
    "router-advertisement": 9,
    "router-solicitation": 10,
    "time-exceeded": 11,
    "parameter-problem": 12,
    "timestamp-request": 13,
    "timestamp-reply": 14,
    "info-request": 15,
    "info-reply": 16,
    "address-mask-request": 17,
    "address-mask-reply": 18,
}
_ICMP_CODES = {
    "net-unreachable": 0,
    "host-unreachable": 1,
    "prot-unreachable": 2,
    "port-unreachable": 3,
    "frag-needed": 4,
    "net-prohibited": 9,
    "host-prohibited": 10,
    "admin-prohibited": 13,
}
_ICMPV6_TYPES = {
    "destination-unreachable": 1,
    "packet-too-big": 2,
    "time-exceeded": 3,
    "parameter-problem": 4,
    "echo-request": 128,
    "echo-reply": 129,
    "mld-listener-query": 130,
    "mld-listener-report": 131,
    "mld-listener-done": 132,
    "mld-listener-reduction": 132,
    "nd-router-solicit": 133,
    "nd-router-advert": 134,
    "nd-neighbor-solicit": 135,
    "nd-neighbor-advert": 136,
    "nd-redirect": 137,
    "router-renumbering": 138,
    "ind-neighbor-solicit": 141,
    "ind-neighbor-advert": 142,
    "mld2-listener-report": 143,
}
_ICMPV6_CODES = {
    "no-route": 0,
    "admin-prohibited": 1,
    "addr-unreachable": 3,
    "port-unreachable": 4,
    "policy-fail": 5,
    "reject-route": 6,
}
_DSCP = {
    **{f"cs{n}": n * 8 for n in range(8)},
    "df": 0,
    "be": 0,
    "lephb": 1,
    "af11": 0x0A,
    "af12": 0x0C,
    "af13": 0x0E,
    "af21": 0x12,
    "af22": 0x14,
    "af23": 0x16,
    "af31": 0x1A,
    "af32": 0x1C,
    "af33": 0x1E,
    "af41": 0x22,
    "af42": 0x24,
    "af43": 0x26,
    "va": 0x2C,
    "ef": 0x2E,
}
_ECN = {"not-ect": 0, "ect1": 1, "ect0": 2, "ce": 3}
_TCP_FLAGS = {"fin": 0x01, "syn": 0x02, "rst": 0x04, "psh": 0x08, "ack": 0x10, "urg": 0x20, "ecn": 0x40, "cwr": 0x80}
_ETHERTYPES = {"ip": "08:00", "ip6": "86:dd", "arp": "08:06", "vlan": "81:00", "8021ad": "88:a8"}
# The fields of the headers nft names (src/proto.c), of the protocols a trace's
# packet lines print: anything else after these words is damage
_HEADER_FIELDS = {
    "ether": frozenset({"daddr", "saddr", "type"}),
    "ip": frozenset(
        {
            "version",
            "hdrlength",
            "dscp",
            "ecn",
            "length",
            "id",
            "frag-off",
            "ttl",
            "protocol",
            "checksum",
            "saddr",
            "daddr",
            "option",
        }
    ),
    "ip6": frozenset({"version", "dscp", "ecn", "flowlabel", "length", "nexthdr", "hoplimit", "saddr", "daddr"}),
    "tcp": frozenset(
        {"sport", "dport", "sequence", "ackseq", "doff", "reserved", "flags", "window", "checksum", "urgptr", "option"}
    ),
    "udp": frozenset({"sport", "dport", "length", "checksum"}),
    "icmp": frozenset({"type", "code", "checksum", "id", "sequence", "gateway", "mtu"}),
    "icmpv6": frozenset(
        {
            "type",
            "code",
            "checksum",
            "parameter-problem",
            "packet-too-big",
            "id",
            "sequence",
            "max-delay",
            "taddr",
            "daddr",
        }
    ),
}
_LINK_LAYER_BITS = 8 * 64  # more than any link-layer header nft could print as @ll

# statement → kernel logger key, for fields nft prints as plain numbers
_NUMBERS = {
    "ip ttl": "TTL",
    "ip6 hoplimit": "HOPLIMIT",
    "ip id": "ID",
    "ip length": "LEN",
    "ip6 flowlabel": "FLOWLBL",
    "tcp sequence": "SEQ",
    "tcp ackseq": "ACK",
    "tcp window": "WINDOW",
    "tcp urgptr": "URGP",
    "udp length": "LEN",
    "icmp mtu": "MTU",
    "icmpv6 mtu": "MTU",
    "esp spi": "SPI",
    "ah spi": "SPI",
    **{
        f"{proto} {end}port": f"{end.upper()}PT"
        for proto in ("tcp", "udp", "udplite", "sctp", "dccp", "th")
        for end in ("s", "d")
    },
}
_SYMBOLS = {
    "icmp type": ("TYPE", _ICMP_TYPES),
    "icmp code": ("CODE", _ICMP_CODES),
    "icmpv6 type": ("TYPE", _ICMPV6_TYPES),
    "icmpv6 code": ("CODE", _ICMPV6_CODES),
    "arp operation": ("OPCODE", ARP_OPERATIONS),
}
# nft prints these for any ICMP message; the kernel only for echo messages, where they mean id and sequence
_ECHO_FIELDS = {"icmp id": "ID", "icmp sequence": "SEQ", "icmpv6 id": "ID", "icmpv6 sequence": "SEQ"}
_ADDRESSES = {"ip saddr": "SRC", "ip daddr": "DST", "ip6 saddr": "SRC", "ip6 daddr": "DST", "icmp gateway": "GATEWAY"}
_NETWORK = frozenset({"ip", "ip6", "arp"})
_LINK = frozenset({"iif", "oif", "ether", "vlan"})

# What nft prints of a rule's live state (statement.c, unless `nft -s`): a
# counter's numbers, a quota's use, when a `last` statement last matched.
# Taken out, a rule reads as written, as `nft -s list ruleset` shows it.
_LIVE_STATE = re.compile(
    r"(?<=\bcounter) packets \d+ bytes \d+"
    r"|(?<=bytes) used \d+ [kmg]?bytes"
    r"|(?<=\blast) used (?:never|(?:\d+(?:ms|[dhms]))+)(?=[\s,}]|$)"
)


def stateless_rule(text: str) -> str:
    """A rule as nft printed it in a trace, without the live state it prints too (`counter packets 3 bytes 180`)."""
    return _LIVE_STATE.sub("", text)


# What nft prints of a packet (trace_print_packet()), for naming what an elision hid:
# of an ARP packet, its operation only (nftables 1.0.6)
NFT_PRINTED = Printed(
    ipv4=("src", "dst", "tos", "prec", "ttl", "ip_id", "length"),
    ipv6=("src", "dst", "tc", "ttl", "flowlabel", "length"),
    transport={
        "TCP": ("sport", "dport", "tcp_window"),
        "UDP": ("sport", "dport", "udp_length"),
        "ICMP": ("icmp_type", "icmp_code"),
        "ICMPv6": ("icmp_type", "icmp_code"),
    },
    arp=("arp_op",),
)
# the addresses of an ARP packet, which nft does not print
_ARP_ADDRESSES: list[Field] = [("IPSRC", ARP_ADDRESS_NOT_PRINTED), ("IPDST", ARP_ADDRESS_NOT_PRINTED)]
# the statement an elision stands for in a packet line
_ELIDED = "…"
_CUT_STEP = Partial(elided=("verdict",))
_ELIDED_STEP = Partial(elided=("rule", "verdict"))


@dataclass(frozen=True, slots=True)
class _PacketLine:
    trace_id: str
    statements: list[Statement]
    family: NfFamily | None = None


_StepParts = tuple[StepKind, str | None, str | None, str | None, int | None, Partial | None]
"""kind, rule text, handle, verdict, mark, what of the step line was elided"""


class _NftTransformer(Transformer[Token, Any]):
    """Turns the `nftmonitor.lark` rules into a `_PacketLine`, a `TraceStep` or `Skip.OTHER`."""

    def line(self, children: list[Any]) -> _PacketLine | TraceStep | Skip:
        trace_id, family, table, chain, event = children
        nf_family: NfFamily = str(family)  # type: ignore[assignment]  # the grammar allows only these
        if isinstance(event, list):
            return _PacketLine(str(trace_id), event, nf_family)
        if isinstance(event, Skip):
            return event
        kind, rule, handle, verdict, mark, partial = event
        return TraceStep(str(trace_id), nf_family, str(table), str(chain), kind, verdict, handle, rule, mark, partial)

    def packet(self, children: list[Statement]) -> list[Statement]:
        return children

    def device(self, children: list[Token]) -> Statement:
        return str(children[0]), children[1].strip('"')

    def header_field(self, children: list[Any]) -> Statement:
        protocol, name = children[0], children[1]
        if name not in _HEADER_FIELDS.get(protocol, (name,)):
            # nft prints only the fields its templates have: a blank slipped into a word (`ip protoc ol`)
            raise FieldError(f"{protocol} {name}: no such field", name.column)
        return f"{protocol} {name}", children[2]

    def raw_field(self, children: list[Any]) -> Statement:
        return str(children[0]), children[1]

    def elision(self, children: list[Token]) -> Statement:
        return _ELIDED, str(children[0])

    def value(self, children: list[Token]) -> str:
        return "|".join(children)

    def rule(self, children: list[Any]) -> _StepParts:
        handle = hex(int(children[1].split()[-1])) if len(children) > 2 else None
        rule = stateless_rule(children[0])
        return "rule", rule, handle, children[-1], None, rule_damage(rule)

    def rule_cut(self, children: list[Token]) -> _StepParts:
        text = str(children[0]).rstrip()
        partial = _ELIDED_STEP if has_ellipsis(text) else _CUT_STEP
        return "rule", stateless_rule(text), None, None, None, partial.merge(rule_damage(text))

    def unknown_rule(self, children: list[Any]) -> _StepParts:
        return "rule", None, hex(int(children[0])), children[1], None, None

    def verdict_step(self, children: list[Any]) -> _StepParts:
        return "return", None, None, "RETURN", children[1] if len(children) > 1 else None, None

    def policy_step(self, children: list[Any]) -> _StepParts:
        return "policy", None, None, children[0], children[1] if len(children) > 1 else None, None

    def mark(self, children: list[Token]) -> int:
        return _number(("meta mark", str(children[0])))

    def conntrack(self, children: list[Token]) -> Skip:
        return Skip.OTHER

    def verdict(self, children: list[Token]) -> str:
        return verdict_name(children[0], children[1].strip('"') if len(children) > 1 else None)


_TRANSFORMER = _NftTransformer()


def _grammar(text: str) -> _PacketLine | TraceStep | Skip:
    return cast(_PacketLine | TraceStep | Skip, load_parser("nftmonitor", ("line",), _TRANSFORMER).parse(text))


def _line_header(line: _PacketLine) -> Header | None:
    return _header(line.statements, line.family)


# Packet lines differ from packet to packet in their trace id, decimal values
# (ip id, lengths, ports, sequence numbers) and addresses; the family, table and chain
# before `packet:` are part of the shape, so the grammar checks them too (names
# with blanks in them, which nft would quote, are left to the grammar).
_LINES = MonitorLines(
    _grammar,
    _line_header,
    packet_line=re.compile(r"trace id ([0-9a-f]+) (\S+ \S+ \S+ packet: .*)"),
    stub="trace id 0 ",
    values=re.compile(
        rf" {VALUE_START}(?:({NUMBER_VALUE})|{address_values('ip saddr ', 'ip daddr ', 'ip6 saddr ', 'ip6 daddr ')})"
        r"(?![^ \t])"
    ),
    kinds=(ValueKind(" ", NUMBER_VALUE), *address_kinds(" ")),
    step_line=re.compile(r"trace id ([0-9a-f]+) "),
)


def _number(statement: Statement, symbols: dict[str, int] | None = None) -> int:
    key, value = statement
    if symbols is not None and value in symbols:
        return symbols[value]
    try:
        return int(value, 0)
    except ValueError:
        raise FieldError(f"{key} {value}: not a number") from None


def _address(statement: Statement) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ip_address(statement[1])
    except ValueError:
        raise FieldError(f"{statement[0]} {statement[1]}: not an IP address") from None


def _tcp_flags(statement: Statement) -> list[Field]:
    bits = sum(
        _TCP_FLAGS[word] if word in _TCP_FLAGS else _number((statement[0], word))
        for part in statement[1].split("|")
        for word in part.split(",")
    )
    return [("FLAG", name) for name in tcp_flag_names(bits)]


def _raw_link_layer(statement: Statement) -> str | None:
    """`@ll,0,<bits> 0x...`: the link-layer header as the kernel's `MAC=` prints it (None if partial)."""
    offset, bits = (int(number) for number in statement[0].split(",")[1:])
    if offset or bits % 8 or bits > _LINK_LAYER_BITS:
        return None
    try:
        data = _number(statement).to_bytes(bits // 8, "big")
    except OverflowError:
        raise FieldError(f"{statement[0]} {statement[1]}: more bytes than announced") from None
    return ":".join(f"{octet:02x}" for octet in data)


@dataclass(slots=True)
class _Draft:
    """The kernel logger fields of one packet line, as they are worked out.

    The link and network layers' split values (ether addresses, dscp and ecn)
    are written once the transport layer starts, where PROTO= goes.
    """

    fields: list[Field] = field(default_factory=list)
    ether: dict[str, str] = field(default_factory=dict)
    traffic_class: dict[str, int] = field(default_factory=dict)
    network: str | None = None
    protocol: int | None = None
    icmp_type: int | None = None
    transport: bool = False
    non_ip: bool = False


_MAC_ADDRESS = re.compile(r"[0-9a-fA-F]{1,2}(?::[0-9a-fA-F]{1,2}){5}")


def _ethernet(draft: _Draft) -> list[Field]:
    """MAC= from the `ether` statements: hidden if a paste hid an address (`ether saddr [..]`)."""
    ether = draft.ether
    hidden = next((value for key, value in ether.items() if key != "type" and not _MAC_ADDRESS.fullmatch(value)), None)
    if hidden is not None:
        return [("MAC", hidden_value(hidden))]
    if "saddr" not in ether or "daddr" not in ether:
        return [("EXTRA", (f"ether {key}", value)) for key, value in ether.items()]
    kind = ether.get("type", draft.network or "")
    ethertype = _ETHERTYPES.get(kind) or (f"{int(kind, 16):04x}" if kind.startswith("0x") else "")
    octets = [ether["daddr"], ether["saddr"], *([ethertype[:2], ethertype[-2:]] if ethertype else [])]
    return [("MAC", ":".join(octets))]


def _traffic_class(draft: _Draft) -> list[Field]:
    parts = draft.traffic_class
    if not parts:
        return []
    byte = parts.get("dscp", 0) << 2 | parts.get("ecn", 0)
    if draft.network == "ip6":
        return [("TC", byte)]
    tos, prec = tos_fields(byte)
    return [("TOS", tos), ("PREC", prec)]


def _start_transport(draft: _Draft, protocol: str | None) -> None:
    """Write the link and network layers' pending fields, then PROTO= (`ARP` where ARP's own fields start)."""
    number = PROTOCOL_NUMBERS.get(protocol or "", draft.protocol)
    proto = "?" if number is None else proto_name(number)
    if protocol == "arp":  # the network layer itself: its ethertype goes into MAC=
        proto, draft.network = ARP, "arp"
    draft.fields += [*_ethernet(draft), *_traffic_class(draft), ("PROTO", proto)]
    draft.transport = True


def _icmpv6_word(draft: _Draft, statement: Statement) -> list[Field]:
    """nft names bytes 4-7 of an ICMPv6 header `parameter-problem`; echo messages hold id and sequence there."""
    value = _number(statement)
    if draft.icmp_type in ECHO_TYPES["ICMPv6"]:
        return [("ID", value >> 16), ("SEQ", value & 0xFFFF)]
    return [("PARAMETER", value)]


def _echo_field(draft: _Draft, statement: Statement) -> list[Field] | None:
    """`icmp id`/`icmp sequence`, which only an echo message has (None otherwise)."""
    key = statement[0]
    echo = draft.icmp_type in ECHO_TYPES["ICMP" if key.startswith("icmp ") else "ICMPv6"]
    return [(_ECHO_FIELDS[key], _number(statement))] if echo else None


def _link_field(draft: _Draft, statement: Statement) -> list[Field] | None:
    """The kernel fields of a device or link-layer statement (None if it is no such statement)."""
    key, value = statement
    protocol, _, name = key.partition(" ")
    if key in ("iif", "oif"):
        return [("IN" if key == "iif" else "OUT", value)]
    if protocol == "ether" and name in ("saddr", "daddr", "type"):
        draft.ether[name] = value
        draft.non_ip = draft.non_ip or (name == "type" and value not in ("ip", "ip6", "vlan", "8021ad"))
        return []
    if key.startswith("@ll,") and (mac := _raw_link_layer(statement)) is not None:
        return [("MAC", mac)]
    return None


def _network_field(draft: _Draft, statement: Statement) -> list[Field] | None:
    """The kernel fields of a network-layer statement (None if it is no such statement)."""
    key, value = statement
    protocol, _, name = key.partition(" ")
    if protocol in _NETWORK:
        draft.network = draft.network or protocol
    draft.non_ip = draft.non_ip or protocol == "arp" or key.startswith("@nh,")
    if name in ("dscp", "ecn") and protocol in ("ip", "ip6"):
        draft.traffic_class[name] = _number(statement, _DSCP if name == "dscp" else _ECN)
        return []
    if key in ("ip protocol", "ip6 nexthdr") and (value in PROTOCOL_NUMBERS or value.isdigit()):
        draft.protocol = PROTOCOL_NUMBERS[value] if value in PROTOCOL_NUMBERS else int(value)
        return []
    if key == "ip6 length":
        return [("LEN", _number(statement) + IPV6_HEADER_LENGTH)]
    return None


def _transport_field(draft: _Draft, statement: Statement) -> list[Field] | None:
    """The kernel fields of a transport layer statement (None if tracelog does not know it)."""
    key = statement[0]
    if key in _SYMBOLS:
        name, symbols = _SYMBOLS[key]
        number = _number(statement, symbols)
        if name == "TYPE":
            draft.icmp_type = number
        return [(name, number)]
    if key == "tcp flags":
        return _tcp_flags(statement)
    if key == "icmpv6 parameter-problem":
        return _icmpv6_word(draft, statement)
    if key in _ECHO_FIELDS:
        return _echo_field(draft, statement)
    return None


def _kernel_fields(draft: _Draft, statement: Statement) -> list[Field]:
    """One statement as kernel logger fields; what tracelog does not know goes to `extra`.

    A value elided or redacted in a paste (`ip saddr x.x.x.x`, `ip id ...`)
    is kept as hidden where it is an address or a number.
    """
    key = statement[0]
    try:
        if key in _ADDRESSES:
            return [(_ADDRESSES[key], _address(statement))]
        if key in _NUMBERS:
            return [(_NUMBERS[key], _number(statement))]
        if key in ("iif", "oif") and (hidden := _hidden_device(statement[1])) is not None:
            return [("IN" if key == "iif" else "OUT", hidden)]
        for read in (_link_field, _network_field, _transport_field):
            known = read(draft, statement)
            if known is not None:
                return known
    except FieldError:
        kernel_key = _ADDRESSES.get(key) or _NUMBERS.get(key) or (_SYMBOLS[key][0] if key in _SYMBOLS else None)
        hidden = hidden_value(statement[1])
        if kernel_key is None or hidden.how == "unreadable":
            raise
        return [(kernel_key, hidden)]
    hidden = hidden_value(statement[1])
    return [("EXTRA", (key, hidden if hidden.how != "unreadable" else statement[1]))]


def _hidden_device(name: str) -> Hidden | None:
    """A device name elided or redacted (`iif ...`), or with a blank slipped in (no name has one); else None."""
    if any(blank in name for blank in " \t"):
        return Hidden("repaired", "".join(name.split()))
    return hidden_name(name)


def _is_transport(draft: _Draft, key: str) -> bool:
    """Whether a statement starts the transport layer's fields (an ARP packet's own fields, for ARP)."""
    protocol = key.partition(" ")[0]
    return not draft.transport and (
        key.startswith("@th,")
        or protocol == "arp"
        or not (protocol in _NETWORK or protocol in _LINK or key.startswith(("@ll,", "@nh,")))
    )


def _header(statements: list[Statement], nf_family: NfFamily | None = None) -> Header | None:
    """The header of a `packet:` line; None for a packet that is neither IP nor ARP (other ethertypes).

    A line whose statements were elided, or that ends before its addresses
    (cut short), is read as far as it goes.  Of an ARP packet nft prints its
    operation only: its addresses are `ARP_ADDRESS_NOT_PRINTED`.
    """
    draft = _Draft()
    for statement in statements:
        if statement[0] == _ELIDED:
            draft.fields.append(("ELIDED", True))
            continue
        if _is_transport(draft, statement[0]):
            _start_transport(draft, statement[0].partition(" ")[0])
        draft.fields += _kernel_fields(draft, statement)
    if not draft.transport:
        _start_transport(draft, None)
    if ("PROTO", ARP) in draft.fields:
        return build_header([*draft.fields, *_ARP_ADDRESSES], complete=False, printed=NFT_PRINTED)
    network = draft.network or nf_family
    family: Family | None = "ipv4" if network == "ip" else "ipv6" if network == "ip6" else None
    if not any(key == "SRC" for key, _ in draft.fields):
        if draft.non_ip:
            return None
        return build_header(draft.fields, complete=False, family=family, printed=NFT_PRINTED, cut=True)
    return build_header(draft.fields, complete=False, family=family, printed=NFT_PRINTED)


# nft's names of header fields → `Header` fields, for notes on mended lines
_FIELD_NAMES = {
    "iif": "in_iface",
    "oif": "out_iface",
    "saddr": "src",
    "daddr": "dst",
    "dscp": "tos",
    "ecn": "prec",
    "ttl": "ttl",
    "hoplimit": "ttl",
    "id": "ip_id",
    "length": "length",
    "flowlabel": "flowlabel",
    "protocol": "proto",
    "nexthdr": "proto",
    "sport": "sport",
    "dport": "dport",
    "flags": "tcp_flags",
    "window": "tcp_window",
    "sequence": "icmp_seq",
    "type": "icmp_type",
    "code": "icmp_code",
    "operation": "arp_op",
}


def _field_name(text: str, word: str) -> str:
    """The `Header` field a word of a packet line is about (`dscp`, or a value after `ip ttl`), for notes."""
    words = text.split()
    at = words.index(word) if word in words else -1
    for candidate in words[max(0, at - 1) : at + 1][::-1] if at >= 0 else []:
        if candidate in _FIELD_NAMES:
            return _FIELD_NAMES[candidate]
    return "text"


def _damaged_packet_id(text: str) -> str | None:
    words = text.split(maxsplit=7)
    return words[2] if len(words) > 6 and words[6] == "packet:" else None


class NftMonitorParser(MonitorParser):
    """Reads the `nft monitor trace` lines of one run (`packet:` lines, then step lines)."""

    def __init__(self) -> None:
        super().__init__(_LINES.parse, _line_header, _damaged_packet_id, _field_name)
