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

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from tracelog import netfilter
from tracelog.events import Header, TraceEvent

# A packet's steps are printed within microseconds of each other; other
# packets' lines interleave, but thousands of them in between means it ended.
DEFAULT_WINDOW = 5000

_NAT_FIELDS = ("src", "dst", "sport", "dport", "icmp_id")
_DNAT_FIELDS = frozenset({"dst", "dport", "icmp_id"})
_SNAT_FIELDS = frozenset({"src", "sport", "icmp_id"})

Identity = tuple[object, ...]


@dataclass(frozen=True, slots=True)
class Step:
    """One event in a packet's timeline, with the hook it ran at.

    The hook of a user-defined chain is not in the log line: it is the hook of
    the built-in chain that jumped to it, known only once correlated.
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


@dataclass(slots=True)
class _OpenPacket:
    number: int
    identity: Identity
    steps: list[Step]
    rewrites: list[Rewrite] = field(default_factory=list)
    touched: int = 0
    arrival: float = 0.0

    @property
    def header(self) -> Header:
        return self.steps[-1].event.header

    @property
    def stage(self) -> netfilter.Stage:
        step = self.steps[-1]
        hook = step.hook or ""
        return hook, netfilter.table_priority(step.event.table, hook)

    def freeze(self) -> Packet:
        return Packet(self.number, tuple(self.steps), tuple(self.rewrites))


def identity(event: TraceEvent) -> Identity:
    """The fields that stay the same for one packet at every hook."""
    h = event.header
    return (
        event.host,
        h.family,
        h.proto,
        h.ip_id,
        h.flowlabel,
        h.length,
        h.tcp_seq,
        h.tcp_ack,
        h.icmp_type,
        h.icmp_code,
        h.icmp_seq,
        h.udp_length,
    )


def _hook_of(event: TraceEvent, packet: _OpenPacket) -> str | None:
    """The event's hook if it may continue `packet`; None if it cannot."""
    if event.chain in netfilter.BUILTIN_CHAINS:
        return event.chain
    last = packet.steps[-1]
    return last.hook if last.event.table == event.table else None


def _follows(packet: _OpenPacket, event: TraceEvent, hook: str) -> bool:
    """Whether `event` at `hook` can come after the packet's last step."""
    last = packet.steps[-1]
    before_hook, before_priority = packet.stage
    if hook == before_hook:
        priority = netfilter.table_priority(event.table, hook)
        if priority != before_priority:
            return priority > before_priority
        # same table: a jump, a return or the next rule; a built-in chain's
        # policy line is always that table's last word for this hook
        return event.table == last.event.table and last.event.kind != "policy"
    if not netfilter.is_later_hook(before_hook, hook):
        return False
    header = packet.header
    if hook in netfilter.LOOPBACK_HOOKS and before_hook in (netfilter.OUTPUT, netfilter.POSTROUTING):
        return header.out_iface == "lo" and event.header.in_iface == "lo"
    # POSTROUTING lines print an empty IN= (the hook has no in-device)
    before_in, after_in = header.in_iface, event.header.in_iface
    return before_in is None or after_in is None or before_in == after_in


def _nat_changes(packet: _OpenPacket, event: TraceEvent, hook: str) -> list[str] | None:
    """The NAT fields that differ, or None if one differs where NAT cannot run."""
    before, after = packet.header, event.header
    if before.physin and after.physin and before.physin != after.physin:
        return None
    changed = [name for name in _NAT_FIELDS if getattr(before, name) != getattr(after, name)]
    if not changed:
        return changed
    stage = (hook, netfilter.table_priority(event.table, hook))
    allowed: set[str] = set()
    if netfilter.crosses_dnat(packet.stage, stage):
        allowed |= _DNAT_FIELDS
    if netfilter.crosses_snat(packet.stage, stage):
        allowed |= _SNAT_FIELDS
    return changed if allowed.issuperset(changed) else None


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

    @property
    def open_packets(self) -> int:
        return len(self._open)

    def feed(self, event: TraceEvent, arrival: float = 0.0) -> list[Packet]:
        """Add one event; return the packets that are now complete, in order."""
        self._events += 1
        key = identity(event)
        packet = self._continue(event, key) or self._start(event, key)
        packet.touched = self._events
        packet.arrival = arrival
        self._open.move_to_end(packet.number)
        while self._open:
            oldest = next(iter(self._open.values()))
            if self._events - oldest.touched <= self._window:
                break
            self._close(oldest)
        return self._ready()

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
        for packet in reversed(self._by_identity.get(key, ())):
            hook = _hook_of(event, packet)
            if hook is None or not _follows(packet, event, hook):
                continue
            changes = _nat_changes(packet, event, hook)
            if changes is None:
                continue
            step = len(packet.steps) + 1
            before = packet.header
            for name in changes:
                old, new = getattr(before, name), getattr(event.header, name)
                packet.rewrites.append(Rewrite(step, name, str(old), str(new)))
            packet.steps.append(Step(event, hook))
            return packet
        return None

    def _start(self, event: TraceEvent, key: Identity) -> _OpenPacket:
        self._numbers += 1
        hook = event.chain if event.chain in netfilter.BUILTIN_CHAINS else None
        packet = _OpenPacket(self._numbers, key, [Step(event, hook)])
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
