"""The records the parse layer produces: one `TraceEvent` per TRACE step.

Every layer after parsing sees only these immutable records with plain types;
no lark object escapes the parse layer.  They are typed named tuples rather
than frozen dataclasses because a big log makes several of them per line, and
a frozen dataclass costs a call per field to build (for `TraceEvent` alone, 7 %
of all instructions per line of the benchmark's kernel log, by callgrind).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Literal, NamedTuple

Address = IPv4Address | IPv6Address
Family = Literal["ipv4", "ipv6"]
StepKind = Literal["rule", "return", "policy"]
NfFamily = Literal["ip", "ip6", "inet", "bridge", "arp", "netdev"]


class Partial(NamedTuple):
    """What a step's text lost or had mended before tracelog read it, by `Header` field name.

    Pasted traces come elided (`...`), redacted (`SRC=xxx`), with blanks
    slipped into fields (`TT L=63`) or without their monitor's packet line.
    Such a step is still read, as far as it can be; this says how far.
    `elided`: fields cut out by hand or cut off with the end of the line,
    as far as they can be named (the fields a complete line of its protocol
    has and this one lacks); `redacted`: fields whose values were replaced
    by placeholders (`x.x.x.x`, `<redacted>`); `repaired`: fields read back
    from damaged text; `unreadable`: fields whose text could not be read,
    left unknown; `guessed`: what was worked out rather than read (`family`
    from the fields present, `header` for a step whose packet line was not
    seen, so none of its header is known).
    """

    elided: tuple[str, ...] = ()
    redacted: tuple[str, ...] = ()
    repaired: tuple[str, ...] = ()
    unreadable: tuple[str, ...] = ()
    guessed: tuple[str, ...] = ()

    def merge(self, other: Partial | None) -> Partial:
        """Both notes in one, each name once, in order of first mention."""
        if other is None or other == self:
            return self
        return Partial(*(tuple(dict.fromkeys(mine + theirs)) for mine, theirs in zip(self, other, strict=True)))


class UnknownIPv4Address(IPv4Address):
    """An IPv4 address the log did not show: redacted (`x.x.x.x`) or elided.

    It is an address object so that every layer keeps working, but it is no
    address: it is never equal to a real one, so a step showing it never
    joins a packet on its strength.  Placeholders spelt alike (`shown`) are
    equal, as the same placeholder in one paste may stand for the same
    value; an elided address (`shown` None) is equal only to itself.  Its
    text is the placeholder as shown (`?` for an elided one).
    """

    __slots__ = ("shown",)

    def __init__(self, shown: str | None = None) -> None:
        super().__init__(0)
        self.shown = shown

    def __eq__(self, other: object) -> bool:
        return self is other or (self.shown is not None and type(other) is type(self) and other.shown == self.shown)

    def __hash__(self) -> int:
        return hash((type(self), self.shown)) if self.shown is not None else id(self)

    def __str__(self) -> str:
        return self.shown if self.shown is not None else UNKNOWN_ADDRESS_TEXT

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.shown!r})"

    def __reduce__(self) -> tuple[type, tuple[str | None]]:
        return type(self), (self.shown,)


class UnknownIPv6Address(IPv6Address):
    """An IPv6 address the log did not show; see `UnknownIPv4Address`."""

    __slots__ = ("shown",)

    def __init__(self, shown: str | None = None) -> None:
        super().__init__(0)
        self.shown = shown

    __eq__ = UnknownIPv4Address.__eq__
    __hash__ = UnknownIPv4Address.__hash__
    __str__ = UnknownIPv4Address.__str__
    __repr__ = UnknownIPv4Address.__repr__
    __reduce__ = UnknownIPv4Address.__reduce__


UNKNOWN_ADDRESS_TEXT = "?"
UnknownAddress = UnknownIPv4Address | UnknownIPv6Address


def unknown_address(family: Family, shown: str | None = None) -> UnknownAddress:
    """An address not shown, of `family`: a placeholder as `shown`, or None for one elided."""
    return UnknownIPv4Address(shown) if family == "ipv4" else UnknownIPv6Address(shown)


def is_known(address: Address | None) -> bool:
    """Whether `address` is one the log showed (not None, not redacted or elided)."""
    return address is not None and not isinstance(address, UnknownIPv4Address | UnknownIPv6Address)


# `build(Record, (every field, in order))` makes a named tuple without running
# its Python-level `__new__`, which `Record(...)` does and which costs about
# three times the tuple itself: the per-line paths of a big log use it.  The
# tests compare those paths' results with the plain constructors' on every sample.
build = tuple.__new__


class SourceLine(NamedTuple):
    """One input line with its file name and 1-based number.

    Events keep theirs as provenance, for reports.
    """

    source: str
    line: int
    text: str


class Stamp(NamedTuple):
    """When the log says an event happened.

    A kernel log can give the uptime (`[  72.8]`), a wall clock, or both; the
    wall clock may lack a year (RFC 3164 syslog), in which case the parser
    fills in the year it was told to assume and says so in `assumed_year`.
    """

    uptime: float | None = None
    wallclock: datetime | None = None
    assumed_year: bool = False


class Header(NamedTuple):
    """The packet as the logger printed it at one step.

    One attribute per field the kernel packet logger can print
    (nf_log_syslog.c); absent fields are None.  `extra` keeps fields tracelog
    does not know (newer kernels, other loggers), so nothing the log said is
    lost.  `elided` marks a line whose fields were cut by hand (`...`);
    `partial` says what of the text was elided, redacted or mended (None for
    an undamaged line), and addresses the text did not show are
    `UnknownIPv4Address`/`UnknownIPv6Address`.

    An ARP packet (the logger's `ARP OPCODE= MACSRC= IPSRC= MACDST=
    IPDST=`) has `proto` "ARP", its operation in `arp_op` (1 request,
    2 reply), its sender and target protocol addresses as `src` and `dst`
    (its `family` is theirs) and their hardware addresses in
    `arp_sender_mac` and `arp_target_mac`.

    The parsers' shape memos build it from a list of values (`build(Header, values)`).
    """

    family: Family
    src: Address
    dst: Address
    proto: str
    in_iface: str | None = None
    out_iface: str | None = None
    physin: str | None = None
    physout: str | None = None
    mac: str | None = None
    length: int | None = None
    tos: int | None = None
    prec: int | None = None
    tc: int | None = None
    ttl: int | None = None
    ip_id: int | None = None
    flowlabel: int | None = None
    ip_flags: tuple[str, ...] = ()
    frag: str | None = None
    ip_options: str | None = None
    incomplete: str | None = None
    sport: int | None = None
    dport: int | None = None
    tcp_seq: int | None = None
    tcp_ack: int | None = None
    tcp_window: int | None = None
    tcp_res: int | None = None
    tcp_flags: tuple[str, ...] = ()
    tcp_urgp: int | None = None
    tcp_options: str | None = None
    udp_length: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    icmp_id: int | None = None
    icmp_seq: int | None = None
    icmp_gateway: Address | None = None
    icmp_mtu: int | None = None
    icmp_parameter: int | None = None
    spi: int | None = None
    inner: Header | None = None
    uid: int | None = None
    gid: int | None = None
    mark: int | None = None
    extra: tuple[tuple[str, str], ...] = ()
    elided: bool = False
    partial: Partial | None = None
    arp_op: int | None = None
    arp_sender_mac: str | None = None
    arp_target_mac: str | None = None


class TraceEvent(NamedTuple):
    """One step of one packet through one netfilter chain.

    `rulenum` is the legacy 1-based position in the chain; `handle` is the
    nf_tables rule handle.  `rule` and `verdict` are filled when the trace
    itself carries them (nft formats) or a ruleset snapshot resolves them.
    `mismatch` says why a ruleset snapshot could not explain the step.
    `nf_family` is the nf_tables family of the table, when the trace names it
    (an `inet` table sees IPv4 and IPv6 alike, so `header.family` cannot say).
    `origin` is the line it was read from.
    """

    table: str
    chain: str
    kind: StepKind
    header: Header
    rulenum: int | None = None
    handle: str | None = None
    host: str | None = None
    stamp: Stamp = Stamp()
    trace_id: str | None = None
    rule: str | None = None
    verdict: str | None = None
    mismatch: str | None = None
    nf_family: NfFamily | None = None
    origin: SourceLine = SourceLine("-", 0, "")


# Typed forms of `build` for the records built on every line: the tuple of
# fields is checked by mypy at each call (its length, order and types), and
# tests/test_events.py checks each tuple type against its class's fields, so
# a field added to a record cannot shift the others silently.
SourceLineFields = tuple[str, int, str]
new_source_line: Callable[[type[SourceLine], SourceLineFields], SourceLine] = tuple.__new__
StampFields = tuple[float | None, datetime | None, bool]
new_stamp: Callable[[type[Stamp], StampFields], Stamp] = tuple.__new__
TraceEventFields = tuple[
    str,
    str,
    StepKind,
    Header,
    int | None,
    str | None,
    str | None,
    Stamp,
    str | None,
    str | None,
    str | None,
    str | None,
    NfFamily | None,
    SourceLine,
]
new_event: Callable[[type[TraceEvent], TraceEventFields], TraceEvent] = tuple.__new__
