"""The library's way in: read traces into packet records, named, filtered and numbered.

`parse`, `summary`, `report` and `watch` all read through `Reading`;
`read_packets` and `summarise` are the same for a Python caller:

    import tracelog
    for packet in tracelog.read_packets(["kern.log"], rules=["iptables-save.txt"], verdict="DROP"):
        print(packet["packet"], packet["verdict_at"])
    print(tracelog.summarise(["kern.log"]).drops)
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TypedDict, TypeVar, Unpack, cast

from tracelog.analyse import Report, Summary
from tracelog.correlate import Packet
from tracelog.errors import InputError, TracelogError, UsageError
from tracelog.events import SourceLine
from tracelog.names import LIVE_SOURCES, Names, load_names
from tracelog.output.format import RECORDS, Format
from tracelog.parallel import available_cpus, map_packets
from tracelog.pipeline import ParseOptions, RunStats, correlate_lines
from tracelog.records.filters import PacketFilter, parse_network
from tracelog.records.numbering import Prepared, number_packets, prepare_packet
from tracelog.records.packet import PacketRecord
from tracelog.ruleset import FINAL_TARGETS
from tracelog.saved_rules import choose_rules
from tracelog.sources import STDIN

T = TypeVar("T")
U = TypeVar("U")
Lines = Iterable[SourceLine | None]
"""A stream of lines read elsewhere (`None`: a clock tick from a live source)."""
DOCKER = "docker"
# What a record's `proto` can be: the kernel logger's names, or an IP protocol number it has no name for.
_KNOWN_PROTOCOL = re.compile(
    r"(?i:tcp|udp|udplite|icmp|icmpv6|sctp|dccp|gre|esp|ah|igmp|arp)|25[0-5]|2[0-4]\d|1?\d?\d", re.ASCII
)
# What a record's `verdict` can be, `unknown` for none.
_KNOWN_VERDICTS = frozenset({*FINAL_TARGETS, "UNKNOWN"})
"""The name source that asks the running Docker daemon."""


def _ignore(note: str) -> None:
    """Where a caller who does not want the run's notes sends them."""


@dataclass(frozen=True, slots=True)
class Reading:
    """What to read and how: the inputs, the rules and names that explain them, and which packets to keep.

    `inputs` are file names (`-` is stdin) or a stream of lines; `rules` are
    iptables-save snapshots (none: the one `tracelog enable` saved, where it
    fits); `names` are `docker inspect` / `podman inspect` files, or `docker`
    or `podman` to ask the running service (`names_optional`: a service that
    does not answer is a note, not an error).  `say` gets the one-line notes a run has for its user (which snapshot
    named the rules, names that could not be had).
    """

    inputs: Sequence[str] | Lines = (STDIN,)
    rules: Sequence[str] = ()
    names: Sequence[str] = ()
    wanted: PacketFilter = field(default_factory=PacketFilter)
    idle: float = 1.0
    year: int | None = None
    strict: bool = False
    jobs: int | None = None
    names_optional: bool = False
    say: Callable[[str], None] = _ignore

    def __post_init__(self) -> None:
        if self.wanted.name is not None and not self.names:
            raise UsageError("--name needs names to match", hint="add --names docker or --names INSPECT.json")

    def files(self) -> list[str] | None:
        """The input names, or None for a stream of lines."""
        if isinstance(self.inputs, str):
            return [self.inputs]
        if isinstance(self.inputs, Sequence) and all(isinstance(name, str) for name in self.inputs):
            return [str(name) for name in self.inputs]
        return None

    def read(self, stats: RunStats, output: Format[T, U]) -> Iterator[U]:
        """Each packet as `output` shows it: named, in flows, filtered, numbered, in packet order."""
        files = self.files()
        if files is not None and STDIN in files and sys.stdin.isatty():
            raise InputError("no input on stdin", hint="give a FILE or pipe a log in: dmesg | tracelog parse")
        options = ParseOptions(idle=self.idle, strict=self.strict)
        if self.year is not None:
            options = replace(options, year=self.year)
        chosen = choose_rules(self.rules, files or (), options.year, live=files is None)
        if chosen.note:
            self.say(chosen.note)
        options = replace(options, rulesets=chosen.rulesets)
        names = self.load_names()
        wanted = self.wanted.matches if self.wanted else None

        def prepare(packet: Packet) -> Prepared[T]:
            return prepare_packet(packet, names, wanted, output.prepare)

        packets: Iterator[Prepared[T]]
        if files is None:
            lines = cast(Lines, self.inputs)
            packets = map(prepare, correlate_lines(lines, options, stats))
        else:
            packets = map_packets(files, options, stats, prepare, self.jobs or available_cpus())
        return number_packets(packets, output.finish)

    def load_names(self) -> Names:
        """Names from inspect files, and from each running service its word names (`docker`, `podman`)."""
        found = load_names([source for source in self.names if source not in LIVE_SOURCES])
        for source in dict.fromkeys(source for source in self.names if source in LIVE_SOURCES):
            try:
                found = found.merge(LIVE_SOURCES[source]())
            except TracelogError as error:
                if not self.names_optional:
                    raise
                self.say(f"no container names: {error}")
        return found


class FilterOptions(TypedDict, total=False):
    """The filters `parse`, `summary` and `watch` take, by their option names."""

    src: str | None
    dst: str | None
    proto: str | None
    port: int | None
    verdict: str | None
    chain: str | None
    name: str | None


def packet_filter(**options: Unpack[FilterOptions]) -> PacketFilter:
    """The filters `parse`, `summary` and `watch` take, from their option values, checked."""
    src, dst, proto = options.get("src"), options.get("dst"), options.get("proto")
    verdict = options.get("verdict")
    if proto is not None and not _KNOWN_PROTOCOL.fullmatch(proto):
        raise UsageError(
            f"invalid value for --proto: {proto!r}", hint="a protocol name such as tcp, udp, icmp, or 0-255"
        )
    if verdict is not None and verdict.upper() not in _KNOWN_VERDICTS:
        known = ", ".join(sorted(_KNOWN_VERDICTS))
        raise UsageError(f"invalid value for --verdict: {verdict!r}", hint=f"one of {known}")
    return PacketFilter(
        src=parse_network(src) if src else None,
        dst=parse_network(dst) if dst else None,
        proto=proto,
        port=options.get("port"),
        verdict=verdict,
        chain=options.get("chain"),
        name=options.get("name"),
    )


def read_packets(
    inputs: Sequence[str] | Lines,
    *,
    rules: Sequence[str] = (),
    names: Sequence[str] = (),
    idle: float = 1.0,
    year: int | None = None,
    strict: bool = False,
    jobs: int | None = None,
    stats: RunStats | None = None,
    **filters: Unpack[FilterOptions],
) -> Iterator[PacketRecord]:
    """Each packet's record, exactly as `tracelog parse --format jsonl` prints it, in packet order.

    Takes the filters of `tracelog parse` by their option names (`src`,
    `dst`, `proto`, `port`, `verdict`, `chain`, `name`), and counts what was
    read, skipped and not understood into `stats` when given.
    """
    reading = Reading(inputs, rules, names, packet_filter(**filters), idle, year, strict, jobs)
    return reading.read(stats if stats is not None else RunStats(), RECORDS)


def summarise(
    inputs: Sequence[str] | Lines,
    *,
    rules: Sequence[str] = (),
    names: Sequence[str] = (),
    year: int | None = None,
    jobs: int | None = None,
    stats: RunStats | None = None,
    **filters: Unpack[FilterOptions],
) -> Report:
    """The tables `tracelog summary` prints (flows, drops, rules, packets) as pandas frames, and its answer.

    Takes the inputs, rules, names and filters of `read_packets`.
    """
    found = Summary()
    for record in read_packets(inputs, rules=rules, names=names, year=year, jobs=jobs, stats=stats, **filters):
        found.add(record)
    return found.report()
