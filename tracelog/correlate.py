"""Events → packets: which TRACE steps belong to one packet, without a packet id.

A step continues an open packet when it has the same identity (fields no
netfilter hook rewrites: IP id, length, TCP sequence numbers, ICMP type and
sequence, ...), runs later in the hook/table order than the packet's last
step, arrives on the same interface, and shows the same addresses and ports,
unless NAT ran in between (see `tracelog.netfilter`).  Anything else starts a
new packet.  Memory is bounded: a packet untouched for `window` events is
complete, and packets leave memory as soon as they are emitted, in order of
first appearance.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from typing import NamedTuple

from tracelog import netfilter
from tracelog.events import Header, TraceEvent, build

# A packet's steps are printed within microseconds of each other; other
# packets' lines interleave, but thousands of them in between means it ended.
DEFAULT_WINDOW = 5000

_NAT_FIELDS = ("src", "dst", "sport", "dport", "icmp_id")


def _header_fields(*names: str) -> itemgetter[tuple[object, ...]]:
    """A getter of several `Header` fields at once, by position: a tuple index is cheaper than an attribute."""
    return itemgetter(*(Header._fields.index(name) for name in names))


_nat_values = _header_fields(*_NAT_FIELDS)
_DNAT_FIELDS = frozenset({"dst", "dport", "icmp_id"})
_SNAT_FIELDS = frozenset({"src", "sport", "icmp_id"})

Identity = tuple[object, ...]


class Step(NamedTuple):
    """One event in a packet's timeline, with the hook it ran at.

    The hook of a user-defined chain is not in the log line: it is the hook of
    the built-in chain that jumped to it, known only once correlated.  A named
    tuple, as one is made for every line.
    """

    event: TraceEvent
    hook: str | None


@dataclass(frozen=True, slots=True)
class Rewrite:
    """A header field NAT changed: first shown with its new value at `step` (1-based)."""

    step: int
    field: str
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class Packet:
    """One packet's journey through the hooks, in the order the log printed it."""

    number: int
    steps: tuple[Step, ...]
    rewrites: tuple[Rewrite, ...] = ()

    @property
    def first(self) -> TraceEvent:
        return self.steps[0].event

    @property
    def last(self) -> TraceEvent:
        return self.steps[-1].event


Stage = tuple[str | None, int | None]
"""Hook and priority of a step; either may be unknown (native nf_tables chains)."""


@dataclass(slots=True)
class _OpenPacket:
    number: int
    identity: Identity
    steps: list[Step]
    stage: Stage
    last: TraceEvent
    rewrites: list[Rewrite] = field(default_factory=list)
    touched: int = 0
    arrival: float = 0.0

    def add(self, event: TraceEvent, stage: Stage) -> None:
        """The next step; `stage` and `last` are the newest step's, kept at hand for the next event."""
        self.steps.append(build(Step, (event, stage[0])))
        self.stage = stage
        self.last = event

    def freeze(self) -> Packet:
        return Packet(self.number, tuple(self.steps), tuple(self.rewrites))


_identity_fields = _header_fields(
    "family", "proto", "ip_id", "flowlabel", "length", "tcp_seq", "tcp_ack", "icmp_type", "icmp_code", "icmp_seq",
    "udp_length",
)


def identity(event: TraceEvent) -> Identity:
    """The fields that stay the same for one packet at every hook (and the host that logged it)."""
    return event.host, _identity_fields(event.header)


@functools.lru_cache(maxsize=256)
def _builtin_stage(table: str, chain: str) -> Stage:
    return chain, netfilter.table_priority(table, chain)


def _stage(event: TraceEvent, packet: _OpenPacket | None) -> Stage:
    """Where `event` ran, as far as the log and the packet so far tell.

    iptables built-in chains name their hook and have known priorities; a
    native nf_tables chain named after its hook (`prerouting`, fw4's `dstnat`)
    gives the hook only; any other chain is a user chain and ran where the
    step before it in the same table ran.
    """
    chain = event.chain
    if chain in netfilter.BUILTIN_CHAINS:
        return _builtin_stage(event.table, chain)
    native_hook = netfilter.hook_of_chain(chain) if chain.islower() else None
    if native_hook is not None:
        return native_hook, None
    if packet is not None and packet.last.table == event.table:
        return packet.stage
    return None, None


def _same_trace(packet: _OpenPacket, event: TraceEvent) -> bool:
    return event.trace_id is not None and event.trace_id == packet.last.trace_id


def _follows_within_hook(last: TraceEvent, before: int | None, event: TraceEvent, after: int | None) -> bool:
    """Table order within one hook: later priority, or the same table going on."""
    if before is None or after is None:
        return True  # native tables: their order within a hook is in the ruleset only
    if before != after:
        return after > before
    # same table: a jump, a return or the next rule; a built-in chain's
    # policy line is always that table's last word for this hook
    return event.table == last.table and last.kind != "policy"


def _follows(packet: _OpenPacket, event: TraceEvent, stage: Stage) -> bool:
    """Whether `event`, run at `stage`, can come after the packet's last step."""
    (before_hook, before), (hook, after) = packet.stage, stage
    if hook is None or before_hook is None:
        return _same_trace(packet, event)  # nothing but the trace id can tell
    last = packet.last
    if hook == before_hook:
        return _follows_within_hook(last, before, event, after)
    if not netfilter.is_later_hook(before_hook, hook):
        return False
    header = last.header
    if hook in netfilter.LOOPBACK_HOOKS and before_hook in (netfilter.OUTPUT, netfilter.POSTROUTING):
        return header.out_iface == "lo" and event.header.in_iface == "lo"
    # POSTROUTING lines print an empty IN= (the hook has no in-device)
    before_in, after_in = header.in_iface, event.header.in_iface
    return before_in is None or after_in is None or before_in == after_in


def _nat_changes(packet: _OpenPacket, event: TraceEvent, stage: Stage) -> list[str] | None:
    """The NAT fields that differ, or None if one differs where NAT cannot run."""
    before, after = packet.last.header, event.header
    if before.physin and after.physin and before.physin != after.physin:
        return None
    old, new = _nat_values(before), _nat_values(after)
    if old == new:  # usually the very same address objects: compared by identity
        return []
    changed = [name for name, was, now in zip(_NAT_FIELDS, old, new, strict=True) if was != now]
    allowed: set[str] = set()
    before_hook, after_hook = packet.stage[0], stage[0]
    if before_hook is not None and after_hook is not None:
        if netfilter.crosses_dnat((before_hook, packet.stage[1]), (after_hook, stage[1])):
            allowed |= _DNAT_FIELDS
        if netfilter.crosses_snat((before_hook, packet.stage[1]), (after_hook, stage[1])):
            allowed |= _SNAT_FIELDS
    return changed if allowed.issuperset(changed) else None


def _same_trace_first(packets: list[_OpenPacket], event: TraceEvent) -> Iterator[_OpenPacket]:
    """Newest first, those whose last step had the event's trace id before the others.

    The trace id is a strong hint, not a packet id.  Lazily: the first
    candidate nearly always fits, and packets sharing an identity (IPv6
    without ids, TCP with ID=0) can be dozens.
    """
    newest_first = packets[::-1]
    yield from (packet for packet in newest_first if _same_trace(packet, event))
    yield from (packet for packet in newest_first if not _same_trace(packet, event))


class Correlator:
    """Streaming correlation: feed events, collect packets as they complete.

    Packets are emitted in order of first appearance; a finished packet waits
    only for older ones still open, which the window bounds.
    """

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        self._window = window
        self._events = 0
        self._numbers = 0
        self._open: OrderedDict[int, _OpenPacket] = OrderedDict()
        self._by_identity: dict[Identity, list[_OpenPacket]] = {}
        self._finished: dict[int, Packet] = {}
        self._emitted = 0
        self._horizon = window  # no packet can be due before this event count

    @property
    def open_packets(self) -> int:
        return len(self._open)

    @property
    def started(self) -> int:
        """How many packets have begun: the number the newest one got."""
        return self._numbers

    def feed(self, event: TraceEvent, arrival: float = 0.0) -> list[Packet]:
        """Add one event; return the packets that are now complete, in order."""
        self._events += 1
        key = identity(event)
        packet = self._continue(event, key) or self._start(event, key)
        packet.touched = self._events
        packet.arrival = arrival
        self._open.move_to_end(packet.number)
        if self._events > self._horizon:
            self._close_untouched()
        return self._ready() if self._finished else []

    def _close_untouched(self) -> None:
        """Complete the packets untouched for more than the window.

        Then note when the next one can be due: the oldest open packet's last
        touch only grows, so until that event count, nothing is.
        """
        while self._open:
            oldest = next(iter(self._open.values()))
            if self._events - oldest.touched <= self._window:
                self._horizon = oldest.touched + self._window
                return
            self._close(oldest)
        self._horizon = self._events + self._window

    def expire(self, now: float, idle: float) -> list[Packet]:
        """Complete the packets whose last event arrived more than `idle` seconds before `now`."""
        while self._open:
            oldest = next(iter(self._open.values()))
            if now - oldest.arrival <= idle:
                break
            self._close(oldest)
        return self._ready()

    def finish(self) -> list[Packet]:
        """End of input: every open packet is complete."""
        for packet in list(self._open.values()):
            self._close(packet)
        return self._ready()

    def _continue(self, event: TraceEvent, key: Identity) -> _OpenPacket | None:
        same_identity = self._by_identity.get(key)
        if not same_identity:
            return None
        candidates: Iterable[_OpenPacket] = reversed(same_identity)
        if event.trace_id is not None and len(same_identity) > 1:
            candidates = _same_trace_first(same_identity, event)
        for packet in candidates:
            stage = _stage(event, packet)
            if not _follows(packet, event, stage):
                continue
            before = packet.last.header
            # the same field text as the last step (one shared header): nothing changed
            changes = [] if event.header is before else _nat_changes(packet, event, stage)
            if changes is None:
                continue
            step = len(packet.steps) + 1
            for name in changes:
                old, new = getattr(before, name), getattr(event.header, name)
                packet.rewrites.append(Rewrite(step, name, str(old), str(new)))
            packet.add(event, stage)
            return packet
        return None

    def _start(self, event: TraceEvent, key: Identity) -> _OpenPacket:
        self._numbers += 1
        stage = _stage(event, None)
        packet = _OpenPacket(self._numbers, key, [], stage, event)
        packet.add(event, stage)
        self._open[packet.number] = packet
        self._by_identity.setdefault(key, []).append(packet)
        return packet

    def _close(self, packet: _OpenPacket) -> None:
        del self._open[packet.number]
        siblings = self._by_identity[packet.identity]
        siblings.remove(packet)
        if not siblings:
            del self._by_identity[packet.identity]
        self._finished[packet.number] = packet.freeze()

    def _ready(self) -> list[Packet]:
        ready = []
        while self._emitted + 1 in self._finished:
            self._emitted += 1
            ready.append(self._finished.pop(self._emitted))
        return ready


def correlate_packets(events: Iterable[TraceEvent], window: int = DEFAULT_WINDOW) -> Iterator[Packet]:
    """Group a finite stream of events into packets (offline use)."""
    correlator = Correlator(window)
    for event in events:
        yield from correlator.feed(event)
    yield from correlator.finish()
