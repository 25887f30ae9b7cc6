"""The kernel packet logger's fields (`IN=… SRC=… PROTO=TCP SPT=…`) → `Header`.

Shared by every format that prints them: the kernel log and ulogd's LOGEMU.
The transformer turns each field into a `(key, value)` pair; `build_header`
reads the pairs in order, because the same key means different things before
and after `PROTO=` (IP `LEN=`/`ID=` versus UDP `LEN=` and ICMP echo `ID=`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lark import Token, Transformer

from tracelog.events import Address, Header

Field = tuple[str, Any]

ICMP_PROTOS = frozenset({"ICMP", "ICMPv6"})
# echo request/reply: the only ICMP messages the kernel prints `ID= SEQ=` for
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


class FieldError(ValueError):
    """A field whose value cannot be right, e.g. an address that is not one."""

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message)
        self.column = column


class FieldsTransformer(Transformer[Token, Any]):
    """Turns the `logfields.lark` rules into `(key, value)` pairs."""

    def fields(self, children: list[Field]) -> list[Field]:
        return children

    def iface(self, children: list[Token]) -> Field:
        return (children[0][:-1], str(children[1]) if len(children) > 1 else None)

    def mac(self, children: list[Token]) -> Field:
        return ("MAC", str(children[1]) if len(children) > 1 else None)

    def address(self, children: list[Token]) -> Field:
        key, value = children
        try:
            return (key[:-1], ip_address(str(value)))
        except ValueError:
            raise FieldError(f"{key}{value} is not an IP address", value.column) from None

    def number(self, children: list[Token]) -> Field:
        return (children[0][:-1], int(children[1]))

    def hexnumber(self, children: list[Token]) -> Field:
        return (children[0][:-1], int(children[1], 16))

    def proto(self, children: list[Token]) -> Field:
        return ("PROTO", str(children[1]))

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
    """Mutable scratch space while the fields of one line are read."""

    values: dict[str, Any]
    ip_flags: list[str]
    tcp_flags: list[str]
    extra: list[tuple[str, str]]
    elided: bool = False
    transport: bool = False


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


def _attribute(key: str, draft: _HeaderDraft) -> str | None:
    if key in _COMMON_KEYS:
        return _COMMON_KEYS[key]
    if not draft.transport:
        return _IP_KEYS.get(key)
    proto = draft.values["proto"]
    specific = _ICMP_KEYS if proto in ICMP_PROTOS else _TCP_KEYS if proto == "TCP" else {}
    return specific.get(key) or _TRANSPORT_KEYS.get(key)


def _read(fields: Sequence[Field], draft: _HeaderDraft) -> None:
    for key, value in fields:
        if key == "PROTO":
            draft.values["proto"] = value
            draft.transport = True
        elif key == "FLAG":
            (draft.tcp_flags if draft.transport else draft.ip_flags).append(value)
        elif key == "ELIDED":
            draft.elided = True
        elif key == "EXTRA":
            draft.extra.append(value)
        elif key == "INNER":
            draft.values["inner"] = build_header(value, complete=False)
        elif (attribute := _attribute(key, draft)) is not None:
            draft.values[attribute] = value
        else:
            draft.extra.append((key, str(value)))


def _missing(draft: _HeaderDraft) -> str | None:
    """Name the first field a complete line would have had, if one is missing."""
    values = draft.values
    for key, attribute in (("SRC", "src"), ("DST", "dst"), ("PROTO", "proto")):
        if attribute not in values:
            return key
    if draft.elided or "frag" in values or "incomplete" in values:
        return None
    for first, second, key in _PAIRS:
        if first in values and second not in values:
            return key
    if values.get("icmp_type") in ECHO_TYPES.get(values["proto"], ()) and "icmp_seq" not in values:
        return "SEQ"
    last = _REQUIRED_LAST.get(values["proto"])
    if last is None:
        return None
    return None if _attribute(last, draft) in values else last


def build_header(fields: Sequence[Field], complete: bool = True) -> Header:
    """Build a `Header` from the pairs of one line (or one ICMP inner packet).

    With `complete`, a line that ends before its protocol's last field is
    rejected: it was truncated or wrapped, and guessing would mislead the
    correlator.  Inner packets are allowed to be partial, as the kernel may
    only have part of the offending packet.
    """
    draft = _HeaderDraft(values={}, ip_flags=[], tcp_flags=[], extra=[])
    _read(fields, draft)
    missing = _missing(draft)
    if missing is not None and (complete or missing in ("SRC", "DST")):
        what = "fields elided" if draft.elided else "line ends early"
        raise FieldError(f"{what}: no {missing}= field")
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
