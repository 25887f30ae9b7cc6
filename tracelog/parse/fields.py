"""The kernel packet logger's fields (`IN=… SRC=… PROTO=TCP SPT=…`) → `Header`.

Shared by every format that prints them: the kernel log and ulogd's LOGEMU.
The transformer turns each field into a `(key, value)` pair; `build_header`
reads the pairs in order, because the same key means different things before
and after `PROTO=` (IP `LEN=`/`ID=` versus UDP `LEN=` and ICMP echo `ID=`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from lark import Token, Transformer

from tracelog.events import Address, Family, Header, Partial, unknown_address

Field = tuple[str, Any]

ICMP_PROTOS = frozenset({"ICMP", "ICMPv6"})
# echo request/reply: the only ICMP messages the kernel prints `ID= SEQ=` for
# the fixed IPv6 header: the kernel logger's LEN= counts it, a payload length (ulogd, nft) does not
IPV6_HEADER_LENGTH = 40
ECHO_TYPES: dict[str, frozenset[int]] = {"ICMP": frozenset({0, 8}), "ICMPv6": frozenset({128, 129})}

# Fields that must be present for a header to be complete.  A line cut short
# (wrapped by a terminal, truncated by a log shipper) lacks its last ones.
_REQUIRED_LAST: dict[str, str] = {"TCP": "URGP", "UDP": "LEN", "UDPLITE": "LEN", "ICMP": "CODE", "ICMPv6": "CODE"}
# Fields the kernel always prints together: the first without the second is a cut line.
_PAIRS = (("icmp_id", "icmp_seq", "SEQ"), ("uid", "gid", "GID"))


_ADDRESSES_KEPT = 1 << 12
_addresses: dict[str, Address] = {}


def ip_address(text: str) -> Address:
    """The address `text` spells (ValueError if none), one object per spelling while it is in use.

    Headers of one conversation then share their address objects, so the
    comparisons and lookups that follow (NAT checks, record text) find them
    equal by identity instead of calling `ipaddress`' Python-level `__eq__`.
    """
    found = _addresses.get(text)
    if found is None:
        if len(_addresses) >= _ADDRESSES_KEPT:
            _addresses.clear()
        found = _addresses[text] = ipaddress.ip_address(text)
    return found


HiddenHow = Literal["elided", "redacted", "unreadable", "repaired"]


class Hidden(NamedTuple):
    """A value the text did not show as the kernel prints it: elided, redacted or unreadable, as `shown`.

    `repaired` is a value read back from damaged text: `shown` is what it reads as.
    """

    how: HiddenHow
    shown: str


# `...`, `..`, `…`, `[..]`: elided by hand
_ELLIPSIS = re.compile(r"\[?(?:\.{2,}|…+)\]?")
# what people type over a value they hide: `x.x.x.x`, `xxx`, `a.b.c.d`, `<redacted>`, `[IP]`, `***`,
# `172.18.x.x`, `REDACTED`; anything else that is no value is damage
_REDACTION = re.compile(
    r"<[^<>]*>|\[[^\[\]]*\]|[xX*]+|[a-d](?:\.[a-d]){3}"
    r"|(?=[^xX*]*[xX*])(?:[0-9a-fA-F]+|[xX]+|\*+)?(?:[.:](?:[0-9a-fA-F]+|[xX]+|\*+)?)+"
    r"|(?i:redacted|hidden|masked|removed|anonymi[sz]ed|snip|ip|mac|addr|address|host|ipv[46])"
)


_ELLIPSIS_WORD = re.compile(r"(?<!\S)\[?(?:\.{2,}|…+)\]?(?!\S)")


# an address or name redacted inside a rule's text: `172.18.x.x/16`, `x.x.x.x`, `<redacted>`, `[IP]`, `REDACTED`
_RULE_PLACEHOLDER = re.compile(
    r"(?<![\w.:])(?:(?:[0-9a-fA-F]{1,4}[.:]){0,7}(?:[xX]+|\*+)(?:[.:](?:[0-9a-fA-F]{1,4}|[xX]+|\*+))*"
    r"|<[^<>\s]+>|\[(?:IP|MAC|ip|mac|REDACTED|redacted)\]|REDACTED|redacted)(?:/\d+)?(?![\w.:])"
)


def has_ellipsis(text: str) -> bool:
    """Whether a text (a rule as a trace printed it) has a word elided by hand in it."""
    return _ELLIPSIS_WORD.search(text) is not None


def rule_damage(rule: str | None) -> Partial | None:
    """What was elided or redacted of a rule's text in a paste, as a step's note; None if nothing shows."""
    if rule is None:
        return None
    elided, redacted = has_ellipsis(rule), _RULE_PLACEHOLDER.search(rule) is not None
    if not (elided or redacted):
        return None
    return Partial(elided=("rule",) if elided else (), redacted=("rule",) if redacted else ())


def hidden_value(shown: str) -> Hidden:
    """How a value that is not one was hidden: elided, redacted, or neither (unreadable)."""
    shown = str(shown)  # a lark token is a str, but none leaves the parse layer
    if _ELLIPSIS.fullmatch(shown):
        return Hidden("elided", shown)
    if _REDACTION.fullmatch(shown):
        return Hidden("redacted", shown)
    return Hidden("unreadable", shown)


class FieldError(ValueError):
    """A field whose value cannot be right, e.g. an address that is not one."""

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message)
        self.column = column


def is_hidden(token: Token) -> bool:
    """Whether a value is logfields' HIDDEN (namespaced `logfields__HIDDEN` where the grammar is imported)."""
    return token.type.endswith("HIDDEN")


# interface names that are placeholders rather than names
_HIDDEN_NAMES = frozenset({"xxx", "XXX", "REDACTED", "redacted", "***", "[IF]", "IFACE"})


def hidden_name(name: str) -> Hidden | None:
    """An interface name that is an ellipsis or a placeholder (`...`, `<redacted>`), as hidden; None for a name.

    An interface may be called almost anything, so only these count.
    """
    if name[:1] not in (".", "…", "<", "[") and name not in _HIDDEN_NAMES:
        return None
    hidden = hidden_value(name)
    return None if hidden.how == "unreadable" else hidden


class FieldsTransformer(Transformer[Token, Any]):
    """Turns the `logfields.lark` rules into `(key, value)` pairs."""

    def fields(self, children: list[Field]) -> list[Field]:
        return children

    def iface(self, children: list[Token]) -> Field:
        if len(children) == 1:
            return (children[0][:-1], None)
        name = str(children[1])
        return (children[0][:-1], hidden_name(name) or name)

    def mac(self, children: list[Token]) -> Field:
        if len(children) == 1:
            return ("MAC", None)
        value = children[1]
        return ("MAC", hidden_value(str(value)) if is_hidden(value) else str(value))

    def address(self, children: list[Token]) -> Field:
        key, value = children
        if not is_hidden(value):
            try:
                return (key[:-1], ip_address(str(value)))
            except ValueError:
                pass
        return (key[:-1], hidden_value(str(value)))

    def number(self, children: list[Token]) -> Field:
        key, value = children
        return (key[:-1], hidden_value(str(value)) if is_hidden(value) else int(value))

    def hexnumber(self, children: list[Token]) -> Field:
        key, value = children
        return (key[:-1], hidden_value(str(value)) if is_hidden(value) else int(value, 16))

    def proto(self, children: list[Token]) -> Field:
        value = children[1]
        return ("PROTO", hidden_value(str(value)) if is_hidden(value) else str(value))

    def flag(self, children: list[Token]) -> Field:
        return ("FLAG", str(children[0]))

    def ipv6_frag(self, children: list[Token]) -> Field:
        return ("FRAG", " ".join(children))

    def options(self, children: list[Token]) -> Field:
        return ("OPT", str(children[0]) if children else "")

    def inner(self, children: list[Field]) -> Field:
        return ("INNER", children)

    def incomplete(self, children: list[Token]) -> Field:
        return ("INCOMPLETE", str(children[0]))

    def unknown(self, children: list[Token]) -> Field:
        return ("EXTRA", (children[0][:-1], str(children[1]) if len(children) > 1 else ""))

    def elision(self, children: list[Token]) -> Field:
        return ("ELIDED", True)


@dataclass(slots=True)
class _HeaderDraft:
    """Mutable scratch space while the fields of one line are read.

    `hidden` holds the fields whose values the text did not show, by
    `Header` attribute (None while there are none, as on nearly every line).
    """

    values: dict[str, Any]
    ip_flags: list[str]
    tcp_flags: list[str]
    extra: list[tuple[str, str]]
    elided: bool = False
    transport: bool = False
    hidden: dict[str, Hidden] | None = None
    inner_partial: Partial | None = None


# key → Header attribute, before and after PROTO=
_IP_KEYS = {
    "IN": "in_iface",
    "OUT": "out_iface",
    "PHYSIN": "physin",
    "PHYSOUT": "physout",
    "MAC": "mac",
    "SRC": "src",
    "DST": "dst",
    "LEN": "length",
    "TOS": "tos",
    "PREC": "prec",
    "TTL": "ttl",
    "HOPLIMIT": "ttl",
    "ID": "ip_id",
    "TC": "tc",
    "FLOWLBL": "flowlabel",
    "FRAG": "frag",
    "OPT": "ip_options",
}
_COMMON_KEYS = {"UID": "uid", "GID": "gid", "MARK": "mark", "INCOMPLETE": "incomplete"}
_TRANSPORT_KEYS = {
    "SPT": "sport",
    "DPT": "dport",
    "WINDOW": "tcp_window",
    "RES": "tcp_res",
    "URGP": "tcp_urgp",
    "OPT": "tcp_options",
    "LEN": "udp_length",
    "TYPE": "icmp_type",
    "CODE": "icmp_code",
    "GATEWAY": "icmp_gateway",
    "MTU": "icmp_mtu",
    "PARAMETER": "icmp_parameter",
    "SPI": "spi",
}
_ICMP_KEYS = {"ID": "icmp_id", "SEQ": "icmp_seq"}
_TCP_KEYS = {"SEQ": "tcp_seq", "ACK": "tcp_ack"}
# an ARP packet's fields, as the kernel logger prints them after `ARP` (dump_arp_packet()): here after PROTO=ARP
_ARP_KEYS = {
    "OPCODE": "arp_op",
    "MACSRC": "arp_sender_mac",
    "IPSRC": "src",
    "MACDST": "arp_target_mac",
    "IPDST": "dst",
}
_KNOWN_KEYS = frozenset({*_IP_KEYS, *_COMMON_KEYS, *_TRANSPORT_KEYS, *_ICMP_KEYS, *_TCP_KEYS, *_ARP_KEYS, "PROTO"})
ARP = "ARP"

# ARP operations (ARPOP_*, include/uapi/linux/if_arp.h) by the names nft prints them with (src/proto.c)
ARP_OPERATIONS = {
    "request": 1,
    "reply": 2,
    "rrequest": 3,
    "rreply": 4,
    "inrequest": 8,
    "inreply": 9,
    "nak": 10,
}
# The sender and target protocol addresses of an ARP packet whose trace does
# not print them (nft monitor prints its operation only): one object, so that
# the steps of one packet compare alike, and no address.
ARP_ADDRESS_NOT_PRINTED = unknown_address("ipv4")


class Printed(NamedTuple):
    """The header fields a format always prints (by `Header` attribute, in order): what an elision can have hidden.

    `ipv4` and `ipv6` up to the protocol, then `transport` by protocol, and
    `echo` beside them for ICMP echo messages; `arp` for an ARP packet.
    """

    ipv4: tuple[str, ...]
    ipv6: tuple[str, ...]
    transport: dict[str, tuple[str, ...]]
    echo: tuple[str, ...] = ("icmp_id", "icmp_seq")
    arp: tuple[str, ...] = ("arp_op", "arp_sender_mac", "src", "arp_target_mac", "dst")

    def fields(self, family: Family, values: dict[str, Any]) -> tuple[str, ...]:
        proto = values.get("proto", "?")
        if proto == ARP:
            return self.arp
        transport = self.transport.get(proto, ())
        echo = self.echo if values.get("icmp_type") in ECHO_TYPES.get(proto, ()) else ()
        return (*(self.ipv4 if family == "ipv4" else self.ipv6), *transport, *echo)


_ICMP_PRINTED = ("icmp_type", "icmp_code")
_PORTS_PRINTED = ("sport", "dport")
# the kernel packet logger (nf_log_syslog.c): IN= and OUT= always, if empty
KERNEL_PRINTED = Printed(
    ipv4=("in_iface", "out_iface", "src", "dst", "length", "tos", "prec", "ttl", "ip_id", "proto"),
    ipv6=("in_iface", "out_iface", "src", "dst", "length", "tc", "ttl", "flowlabel", "proto"),
    transport={
        "TCP": (*_PORTS_PRINTED, "tcp_seq", "tcp_ack", "tcp_window", "tcp_res", "tcp_urgp"),
        "UDP": (*_PORTS_PRINTED, "udp_length"),
        "UDPLITE": (*_PORTS_PRINTED, "udp_length"),
        "ICMP": _ICMP_PRINTED,
        "ICMPv6": _ICMP_PRINTED,
    },
)

# fields only one IP version has, as evidence of the family where no address shows it
_IPV4_ONLY = ("tos", "prec", "ip_id")
_IPV6_ONLY = ("tc", "flowlabel")


def _attribute(key: str, draft: _HeaderDraft) -> str | None:
    if key in _COMMON_KEYS:
        return _COMMON_KEYS[key]
    if not draft.transport:
        return _IP_KEYS.get(key)
    proto = draft.values["proto"]
    if proto == ARP:
        return _ARP_KEYS.get(key)
    specific = _ICMP_KEYS if proto in ICMP_PROTOS else _TCP_KEYS if proto == "TCP" else {}
    return specific.get(key) or _TRANSPORT_KEYS.get(key)


def _hide(draft: _HeaderDraft, attribute: str, value: Hidden) -> None:
    if draft.hidden is None:
        draft.hidden = {}
    draft.hidden[attribute] = value


def _split_key(before: Field, key: str) -> bool:
    """Whether a field tracelog does not know is the end of a known key split by a blank (`PHYSI N=`, `URG P=`).

    The word before it then read as an interface name or a flag; no real
    line has such a pair.
    """
    word = before[1] if before[0] in ("IN", "OUT", "PHYSIN", "PHYSOUT", "FLAG") else None
    return isinstance(word, str) and f"{word}{key}" in _KNOWN_KEYS


def _read_extra(field: tuple[str, Any], draft: _HeaderDraft) -> None:
    """A field tracelog does not know, kept as written (its value elided or redacted, noted so)."""
    name, text = field
    if type(text) is Hidden:
        _hide(draft, name, text)
    draft.extra.append((name, text.shown if type(text) is Hidden else text))


def _read(fields: Sequence[Field], draft: _HeaderDraft) -> None:
    before: Field = ("", None)
    for key, value in fields:
        if key == "EXTRA" and _split_key(before, value[0]):
            raise FieldError(f"{before[1]} {value[0]}=: a key split by a blank?")
        before = (key, value)
        if key == "PROTO":
            if type(value) is Hidden:
                _hide(draft, "proto", value)
            draft.values["proto"] = "?" if type(value) is Hidden else value
            draft.transport = True
        elif key == "FLAG":
            (draft.tcp_flags if draft.transport else draft.ip_flags).append(value)
        elif key == "ELIDED":
            draft.elided = True
        elif key == "EXTRA":
            _read_extra(value, draft)
        elif key == "INNER":
            inner = draft.values["inner"] = build_header(value, complete=False)
            draft.inner_partial = inner.partial
        elif (attribute := _attribute(key, draft)) is not None:
            if type(value) is Hidden:
                _hide(draft, attribute, value)
            if type(value) is not Hidden or value.how == "repaired":
                draft.values[attribute] = value.shown if type(value) is Hidden else value
        else:
            draft.extra.append((key, str(value)))


_ALWAYS_PRINTED = (("SRC", "src"), ("DST", "dst"), ("PROTO", "proto"))


def _missing(draft: _HeaderDraft) -> str | None:
    """Name the first field a complete line would have had, if one is missing."""
    if draft.elided:
        return None  # what an elision hid is unknown, not missing
    shown = draft.values.keys() | (draft.hidden or {}).keys()
    required = [key for key, attribute in _ALWAYS_PRINTED if attribute not in shown]
    if required or "frag" in shown or "incomplete" in shown:
        return required[0] if required else None
    for first, second, key in _PAIRS:
        if first in shown and second not in shown:
            return key
    proto = draft.values["proto"]
    if draft.values.get("icmp_type") in ECHO_TYPES.get(proto, ()) and "icmp_seq" not in shown:
        return "SEQ"
    last = _REQUIRED_LAST.get(proto)
    return None if last is None or _attribute(last, draft) in shown else last


def build_header(
    fields: Sequence[Field],
    complete: bool = True,
    family: Family | None = None,
    printed: Printed = KERNEL_PRINTED,
    cut: bool = False,
) -> Header:
    """Build a `Header` from the pairs of one line (or one ICMP inner packet).

    With `complete`, a line that ends before its protocol's last field is
    rejected: it was truncated or wrapped, and guessing would mislead the
    correlator.  Inner packets are allowed to be partial, as the kernel may
    only have part of the offending packet.

    A line whose fields were elided by hand (`...`), or one known to be
    `cut` short, is read as far as it goes: the fields it lacks are unknown
    (addresses included), and its `partial` names them among those
    `printed` by its format; hidden values (`SRC=x.x.x.x`) are unknown too.
    `family` is the IP version where the format says it beside the fields.
    """
    draft = _HeaderDraft(values={}, ip_flags=[], tcp_flags=[], extra=[], elided=cut)
    _read(fields, draft)
    missing = _missing(draft)
    if missing is not None and (complete or missing in ("SRC", "DST")):
        raise FieldError(f"line ends early: no {missing}= field")
    if draft.elided or draft.hidden is not None or draft.inner_partial is not None:
        return _partial_header(draft, family, printed)
    values = draft.values
    src: Address = values["src"]
    if type(src) is not type(values["dst"]):
        raise FieldError("SRC= and DST= are of different IP versions")
    return Header(
        family="ipv4" if src.version == 4 else "ipv6",
        ip_flags=tuple(draft.ip_flags),
        tcp_flags=tuple(draft.tcp_flags),
        extra=tuple(draft.extra),
        elided=draft.elided,
        proto=values.pop("proto", "?"),
        **values,
    )


def _family(draft: _HeaderDraft, given: Family | None) -> tuple[Family, bool]:
    """The IP version of a header whose addresses may not show it, and whether it is a guess."""
    values, hidden = draft.values, draft.hidden or {}
    for attribute in ("src", "dst"):
        address = values.get(attribute)
        if address is not None:
            return ("ipv4" if address.version == 4 else "ipv6"), False
    if given is not None:
        return given, False
    proto = values.get("proto")
    if proto == "ICMPv6" or any(attribute in values or attribute in hidden for attribute in _IPV6_ONLY):
        return "ipv6", False
    if proto == "ICMP" or any(attribute in values or attribute in hidden for attribute in _IPV4_ONLY):
        return "ipv4", False
    shown = " ".join(hidden[attribute].shown for attribute in ("src", "dst") if attribute in hidden)
    if "." in shown:
        return "ipv4", True
    return ("ipv6" if ":" in shown else "ipv4"), True


def _cut_field(draft: _HeaderDraft) -> str:
    """The field a line cut short lacks when the fields its format always prints are all there (`GID=` after `UID=`)."""
    draft.elided = False
    try:
        key = _missing(draft)
    finally:
        draft.elided = True
    return "fields" if key is None else _attribute(key, draft) or key.lower()


def _partial_header(draft: _HeaderDraft, given: Family | None, printed: Printed) -> Header:
    """A header with fields not shown: unknown values, and a `partial` naming them."""
    values, hidden = draft.values, draft.hidden or {}
    family, guessed = _family(draft, given)
    how: dict[HiddenHow, list[str]] = {"elided": [], "redacted": [], "unreadable": [], "repaired": []}
    for attribute, value in hidden.items():
        how[value.how].append(attribute)
    if draft.elided:
        shown = values.keys() | hidden.keys()
        how["elided"] += [name for name in printed.fields(family, values) if name not in shown] or [_cut_field(draft)]
    for attribute in ("src", "dst"):
        placeholder = hidden.get(attribute)
        address = values.get(attribute)
        if address is None:
            redacted = placeholder is not None and placeholder.how == "redacted"
            values[attribute] = unknown_address(family, placeholder.shown if redacted and placeholder else None)
        elif ("ipv4" if address.version == 4 else "ipv6") != family:
            raise FieldError("SRC= and DST= are of different IP versions")
    partial = Partial(
        elided=tuple(dict.fromkeys(how["elided"])),
        redacted=tuple(how["redacted"]),
        repaired=tuple(how["repaired"]),
        unreadable=tuple(how["unreadable"]),
        guessed=("family",) if guessed else (),
    )
    if draft.inner_partial is not None:
        partial = partial.merge(Partial(*(tuple(f"inner.{name}" for name in names) for names in draft.inner_partial)))
    return Header(
        family=family,
        ip_flags=tuple(draft.ip_flags),
        tcp_flags=tuple(draft.tcp_flags),
        extra=tuple(draft.extra),
        elided=draft.elided,
        proto=values.pop("proto", "?"),
        partial=partial,
        **values,
    )


_FLAGS_IP = frozenset({"CE", "DF", "MF"})


def field_name(word: str, transport: bool) -> str:
    """The `Header` field a word of the kernel logger's fields is about (`TTL=63` → `ttl`), for notes.

    `transport` says whether the word comes after `PROTO=`, where the same
    keys mean other fields.  A word that is no field is `text`.
    """
    key, equals, _ = word.partition("=")
    if key == "OPT" or word.startswith("OPT"):
        return "tcp_options" if transport else "ip_options"
    if not equals:
        if key in _FLAGS_IP and not transport:
            return "ip_flags"
        return "tcp_flags" if transport and key.isalpha() and key.isupper() else "text"
    if key == "PROTO":
        return "proto"
    names = (_COMMON_KEYS, _ICMP_KEYS, _TRANSPORT_KEYS) if transport else (_COMMON_KEYS, _IP_KEYS)
    return next((table[key] for table in names if key in table), key.lower() or "text")
