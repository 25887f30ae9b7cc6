"""What to trace, before any kernel is touched: `TraceSpec`, its comment tag, its exact iptables rules.

Everything here is pure.  The tag written into each rule's comment encodes
the whole spec, so any later tracelog run can recognise its rules, tell when
they expire and rebuild their exact arguments to delete them by exact match.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from typing import Literal, get_args

from tracelog.errors import UsageError
from tracelog.events import Family

Proto = Literal["icmp", "tcp", "udp", "icmpv6", "all"]
Chain = Literal["PREROUTING", "OUTPUT"]
RateUnit = Literal["second", "minute", "hour", "day"]
Network = IPv4Network | IPv6Network

PROTOS: tuple[Proto, ...] = get_args(Proto)
CHAINS: tuple[Chain, ...] = ("PREROUTING", "OUTPUT")
TABLE = "raw"
TARGET = "TRACE"
TAG_PREFIX = "tracelog:"
TAG_VERSION = "1"
# iptables' own protocol names (getprotobyname), and numbers for libiptc.
IPTABLES_PROTOCOL: dict[Proto, str | None] = {
    "icmp": "icmp",
    "tcp": "tcp",
    "udp": "udp",
    "icmpv6": "ipv6-icmp",
    "all": None,
}
PROTOCOL_NUMBER = {"icmp": "1", "tcp": "6", "udp": "17", "ipv6-icmp": "58"}
_PORT_PROTOS = frozenset({"tcp", "udp"})
_SETTING_MATCHES = frozenset({"comment", "time", "limit"})  # how long and how fast, not which packets
_IFACE = re.compile(r"[A-Za-z0-9_.:@+-]{1,15}")
# The kernel keeps 255 comment bytes: the longest tag, with a 32-character container label, fits.
CONTAINER_LABEL_MAX = 32
_CONTAINER = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,{CONTAINER_LABEL_MAX - 1}}}")
_UNITS: dict[str, RateUnit] = {
    unit: full for full in get_args(RateUnit) for unit in (full, full[0], full[:3], full + "s")
}
_DURATION_PART = re.compile(r"(\d+)([smhd])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# xt_time stores the stop date as a 32-bit time_t in the kernel ABI.
_LATEST_STOP = datetime(2038, 1, 19, 3, 14, 7, tzinfo=UTC)
_TAG_TIME = "%Y%m%dT%H%M%SZ"
_DATESTOP = "%Y-%m-%dT%H:%M:%S"
_LAST_SECOND = timedelta(seconds=1)  # xt_time matches through the whole of its --datestop second


@dataclass(frozen=True, slots=True)
class Rate:
    """A `-m limit` rate; the burst equals the count so a quiet rule can pass one full second's worth."""

    count: int
    unit: RateUnit

    def __str__(self) -> str:
        return f"{self.count}/{self.unit}"

    @property
    def burst(self) -> int:
        return self.count


DEFAULT_RATE = Rate(10, "second")
"""TRACE prints a line per rule per table per packet: 10 packets/second keeps a busy host readable."""
DEFAULT_DURATION = "1h"
"""Rules expire in the kernel after an hour unless `--for` says otherwise (`--for none` keeps them)."""


def parse_proto(text: str) -> Proto:
    """One of icmp, tcp, udp, icmpv6, all."""
    for proto in PROTOS:
        if text == proto:
            return proto
    raise UsageError(f"unknown protocol {text!r}", hint=f"one of {', '.join(PROTOS)}")


def parse_rate(text: str) -> Rate | None:
    """`10/second`, `10/s`, `5/min`, `100/hour`, or `none` (no limit)."""
    if text.strip().lower() == "none":
        return None
    count, _, unit = text.strip().lower().partition("/")
    if not count.isdigit() or unit not in _UNITS or not 1 <= int(count) <= 10000:
        raise UsageError(f"bad rate {text!r}", hint="like 10/second, 5/minute (1 to 10000), or none")
    return Rate(int(count), _UNITS[unit])


def parse_duration(text: str) -> timedelta | None:
    """`90` (seconds), `90s`, `5m`, `2h`, `1h30m`, `1d`, or `none` (no expiry)."""
    text = text.strip().lower()
    if text == "none":
        return None
    if text.isdigit():
        text += "s"
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise UsageError(f"bad duration {text!r}", hint="like 30s, 5m, 1h30m, or none")
    seconds = sum(int(number) * _SECONDS[unit] for number, unit in parts)
    if seconds == 0:
        raise UsageError("the duration must be longer than 0 seconds", hint="or none for no expiry")
    return timedelta(seconds=seconds)


def expiry(now: datetime, duration: timedelta | None) -> datetime | None:
    """The last second in which rules enabled at `now` for `duration` match (`--datestop`).

    The kernel's time match counts whole seconds and includes its stop
    second, so tracing ends at the first whole second `duration` or more
    after `now`: it lasts at least `duration` and less than a second longer.
    """
    if duration is None:
        return None
    stop = (now + duration).astimezone(UTC)
    if stop.microsecond:
        stop = stop.replace(microsecond=0) + timedelta(seconds=1)
    until = stop - _LAST_SECOND
    if until > _LATEST_STOP:
        raise UsageError("the duration ends after 2038-01-19", hint="the kernel's time match cannot go further")
    return until


@dataclass(frozen=True, slots=True)
class Match:
    """One `-m NAME --option value …` extension of a rule, options in the order iptables prints them."""

    name: str
    options: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class RuleArgs:
    """One TRACE rule exactly as both backends take it: `iptables -t raw -A CHAIN <argv()>`."""

    family: Family
    chain: Chain
    protocol: str | None
    src: str | None
    dst: str | None
    in_iface: str | None
    out_iface: str | None
    matches: tuple[Match, ...]
    comment: str

    def argv(self) -> list[str]:
        """The rule spec after `-A CHAIN`, as `-C`, `-A` and `-D` all take it."""
        return [*self._words(self.matches), "-j", TARGET]

    def match_text(self) -> str:
        """Which packets the rule flags, `-p tcp -d 172.18.0.3/32 -m tcp --dport 80`: no tag, expiry or limit."""
        return " ".join(self._words(tuple(match for match in self.matches if match.name not in _SETTING_MATCHES)))

    def _words(self, matches: tuple[Match, ...]) -> list[str]:
        words: list[str] = []
        for flag, value in (
            ("-p", self.protocol),
            ("-s", self.src),
            ("-d", self.dst),
            ("-i", self.in_iface),
            ("-o", self.out_iface),
        ):
            if value is not None:
                words += [flag, value]
        for match in matches:
            words += ["-m", match.name]
            for option, value in match.options:
                words += [f"--{option}", value]
        return words

    def command(self, tool: str, action: str = "-A") -> list[str]:
        """The whole command line, e.g. `ip6tables-nft -t raw -A OUTPUT …`."""
        return [tool, "-t", TABLE, action, self.chain, *self.argv()]


@dataclass(frozen=True, slots=True)
class TraceSpec:
    """One match to trace in one family, with how fast and how long.

    The match fields (`key`) say which packets; `limit` and `until` are
    settings that enabling the same match again renews.  `container` only
    records where an address came from, for `tracelog status`.
    """

    proto: Proto
    family: Family = "ipv4"
    src: Network | None = None
    dst: Network | None = None
    sport: int | None = None
    dport: int | None = None
    iface: str | None = None
    limit: Rate | None = DEFAULT_RATE
    until: datetime | None = None
    container: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _check_spec(self)

    @property
    def key(self) -> tuple[object, ...]:
        """The match without its settings: two specs with one key trace the same packets."""
        return (self.proto, self.family, self.src, self.dst, self.sport, self.dport, self.iface)

    @property
    def stops(self) -> datetime | None:
        """When the kernel stops matching: the end of `until`, the last second its time match includes."""
        return None if self.until is None else self.until + _LAST_SECOND

    def expired(self, now: datetime) -> bool:
        """Whether the kernel already stopped matching."""
        return self.stops is not None and now >= self.stops

    def tag(self) -> str:
        """The comment that marks a rule as tracelog's and holds this whole spec."""
        fields = [f"{TAG_PREFIX}{TAG_VERSION}", f"fam={4 if self.family == 'ipv4' else 6}", f"proto={self.proto}"]
        for name, value in (
            ("src", _short(self.src)),
            ("dst", _short(self.dst)),
            ("sport", self.sport),
            ("dport", self.dport),
            ("iface", self.iface),
            ("ctr", self.container),
        ):
            if value is not None:
                fields.append(f"{name}={value}")
        fields.append(f"limit={self.limit if self.limit else 'none'}")
        if self.until is not None:
            fields.append(f"until={self.until.strftime(_TAG_TIME)}")
        return ",".join(fields)

    def rule(self, chain: Chain) -> RuleArgs:
        """The exact rule for one raw chain: PREROUTING matches the input interface, OUTPUT the output one."""
        matches = []
        if self.sport is not None or self.dport is not None:
            ports = (("sport", self.sport), ("dport", self.dport))
            matches.append(Match(self.proto, tuple((name, str(port)) for name, port in ports if port is not None)))
        matches.append(Match("comment", (("comment", self.tag()),)))
        if self.until is not None:
            matches.append(Match("time", (("datestop", self.until.strftime(_DATESTOP)),)))
        if self.limit is not None:
            matches.append(Match("limit", (("limit", str(self.limit)), ("limit-burst", str(self.limit.burst)))))
        return RuleArgs(
            family=self.family,
            chain=chain,
            protocol=IPTABLES_PROTOCOL[self.proto],
            src=None if self.src is None else str(self.src),
            dst=None if self.dst is None else str(self.dst),
            in_iface=self.iface if chain == "PREROUTING" else None,
            out_iface=self.iface if chain == "OUTPUT" else None,
            matches=tuple(matches),
            comment=self.tag(),
        )

    def rules(self) -> tuple[RuleArgs, ...]:
        """One rule in raw PREROUTING (arriving packets) and one in raw OUTPUT (locally sent ones)."""
        return tuple(self.rule(chain) for chain in CHAINS)

    def describe(self) -> str:
        """`tcp from 172.18.0.2 to any port 80 on eth0`, for people."""
        words = [self.proto if self.family == "ipv4" or self.proto == "icmpv6" else f"{self.proto} (IPv6)"]
        for label, net, port in (("from", self.src, self.sport), ("to", self.dst, self.dport)):
            if net is not None or port is not None:
                words.append(f"{label} {_short(net) or 'any'}" + (f" port {port}" if port is not None else ""))
        if self.container:
            words.append(f"(container {self.container})")
        if self.iface:
            words.append(f"on {self.iface}")
        return " ".join(words)


def _short(net: Network | None) -> str | None:
    """A host network as its bare address, any other as CIDR."""
    if net is None:
        return None
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


def _check_spec(spec: TraceSpec) -> None:
    if spec.proto not in PROTOS:
        raise UsageError(f"unknown protocol {spec.proto!r}", hint=f"one of {', '.join(PROTOS)}")
    if (spec.proto == "icmpv6" and spec.family == "ipv4") or (spec.proto == "icmp" and spec.family == "ipv6"):
        raise UsageError(f"{spec.proto} does not exist in {spec.family}", hint="icmp is IPv4, icmpv6 is IPv6 (-6)")
    for net in (spec.src, spec.dst):
        if net is not None and net.version != (4 if spec.family == "ipv4" else 6):
            raise UsageError(f"{net} is not an {spec.family} address", hint="use -6 for IPv6, and one family per run")
    for port in (spec.sport, spec.dport):
        if port is not None and spec.proto not in _PORT_PROTOS:
            raise UsageError("ports need tcp or udp", hint=f"tracelog enable tcp --dport {port}")
        if port is not None and not 1 <= port <= 65535:
            raise UsageError(f"bad port {port}", hint="1 to 65535")
    if spec.iface is not None and not _IFACE.fullmatch(spec.iface):
        raise UsageError(f"bad interface name {spec.iface!r}", hint="up to 15 characters, + for a wildcard")
    if spec.container is not None and not _CONTAINER.fullmatch(spec.container):
        raise UsageError(f"bad container name {spec.container!r}")
    if spec.until is not None and (spec.until.tzinfo is None or spec.until.microsecond):
        raise ValueError("until must be an aware datetime in whole seconds")


def parse_tag(comment: str) -> TraceSpec:
    """The spec a tracelog comment encodes; `ValueError` when it is not one this version wrote."""
    head, *fields = comment.split(",")
    if head != TAG_PREFIX + TAG_VERSION:
        raise ValueError(f"not a version {TAG_VERSION} tracelog tag: {comment!r}")
    values = {name: value for name, _, value in (item.partition("=") for item in fields)}
    if len(values) != len(fields) or not {"fam", "proto", "limit"} <= values.keys():
        raise ValueError(f"malformed tracelog tag: {comment!r}")
    unknown = values.keys() - {"fam", "proto", "src", "dst", "sport", "dport", "iface", "ctr", "limit", "until"}
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)} in tracelog tag: {comment!r}")
    proto = values["proto"]
    if proto not in PROTOS or values["fam"] not in ("4", "6"):
        raise ValueError(f"malformed tracelog tag: {comment!r}")
    try:
        return TraceSpec(
            proto=proto,
            family="ipv4" if values["fam"] == "4" else "ipv6",
            src=_network(values.get("src")),
            dst=_network(values.get("dst")),
            sport=_int(values.get("sport")),
            dport=_int(values.get("dport")),
            iface=values.get("iface"),
            limit=parse_rate(values["limit"]),
            until=_tag_time(values.get("until")),
            container=values.get("ctr"),
        )
    except UsageError as error:
        raise ValueError(f"malformed tracelog tag: {comment!r} ({error})") from error


def is_tracelog_comment(comment: str | None) -> bool:
    """Whether a rule comment claims to be tracelog's (of any version)."""
    return comment is not None and comment.startswith(TAG_PREFIX)


def _network(text: str | None) -> Network | None:
    return None if text is None else ip_network(text, strict=False)


def _int(text: str | None) -> int | None:
    return None if text is None else int(text)


def _tag_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.strptime(text, _TAG_TIME).replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class TraceRequest:
    """The options of `tracelog enable`/`watch`, as the user typed them."""

    proto: str
    src: str | None = None
    dst: str | None = None
    sport: int | None = None
    dport: int | None = None
    iface: str | None = None
    container: str | None = None
    ipv6: bool = False
    duration: str = DEFAULT_DURATION
    limit: str = str(DEFAULT_RATE)

    @property
    def family(self) -> Family:
        """IPv6 when asked with -6, by icmpv6, or by an IPv6 address."""
        addresses = [text for text in (self.src, self.dst) if text is not None]
        if self.ipv6 or self.proto == "icmpv6" or any(":" in text for text in addresses):
            return "ipv6"
        return "ipv4"


def plan_specs(request: TraceRequest, now: datetime, container_addresses: Sequence[str] = ()) -> list[TraceSpec]:
    """The specs one request stands for.

    A container's address fills whichever of source and destination is free.
    With neither given, the container is traced both ways, two specs per
    address: traffic to it with the ports as written, and traffic from it
    with the ports mirrored, so `--dport 80` towards it is `--sport 80` from
    it and the replies of its server are traced too.
    """
    base = TraceSpec(
        proto=parse_proto(request.proto),
        family=request.family,
        src=_user_network(request.src, "--src"),
        dst=_user_network(request.dst, "--dst"),
        sport=request.sport,
        dport=request.dport,
        iface=request.iface,
        limit=parse_rate(request.limit),
        until=expiry(now, parse_duration(request.duration)),
    )
    if request.container is None:
        return [base]
    if base.src is not None and base.dst is not None:
        raise UsageError("--container needs --src or --dst to be free", hint="it fills in the container's address")
    wanted = [text for text in container_addresses if ip_address(text).version == (4 if base.family == "ipv4" else 6)]
    if not wanted:
        raise UsageError(
            f"container {request.container} has no {base.family} address",
            hint="use -6 for its IPv6 address" if base.family == "ipv4" else "drop -6",
        )
    label = request.container[:CONTAINER_LABEL_MAX]
    specs = []
    for address in wanted:
        net = ip_network(address)
        if base.dst is None:
            specs.append(replace(base, dst=net, container=label))
        if base.src is None and base.dst is None:
            specs.append(replace(base, src=net, sport=base.dport, dport=base.sport, container=label))
        elif base.src is None:
            specs.append(replace(base, src=net, container=label))
    return specs


def _user_network(text: str | None, option: str) -> Network | None:
    if text is None:
        return None
    try:
        return ip_network(text, strict=False)
    except ValueError:
        raise UsageError(
            f"{option}: {text!r} is not an address or network",
            hint="like 172.18.0.2, 10.0.0.0/8 or fd00::1; use --container for a name",
        ) from None
