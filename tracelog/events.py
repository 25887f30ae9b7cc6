"""The records the parse layer produces: one `TraceEvent` per TRACE step.

Every layer after parsing sees only these immutable records with plain types;
no lark object escapes the parse layer.  They are typed named tuples rather
than frozen dataclasses because a big log makes several of them per line, and
a frozen dataclass costs a call per field to build (for `TraceEvent` alone, 7 %
of all instructions per line of the benchmark's kernel log, by callgrind).
"""

from __future__ import annotations

from datetime import datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Literal, NamedTuple

Address = IPv4Address | IPv6Address
Family = Literal["ipv4", "ipv6"]
StepKind = Literal["rule", "return", "policy"]
NfFamily = Literal["ip", "ip6", "inet", "bridge", "arp", "netdev"]


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
    lost.  `elided` marks a line whose fields were cut by hand (`...`).

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
