"""Events → packets: which TRACE steps belong to one packet, without a packet id.

A step continues an open packet when it has the same identity (fields no
netfilter hook rewrites: IP id, length, TCP sequence numbers, ICMP type and
sequence, ...), runs later in the hook/table order than the packet's last
step, arrives on the same interface, and shows the same addresses and ports,
unless NAT ran in between (see `tracelog.netfilter`).  Anything else starts a
new packet.

Memory is bounded: a packet untouched for `window` events is complete, and
packets leave memory as soon as they are emitted, in order of first
appearance.  The steps held (open packets, and complete ones waiting for an
older one) are bounded too, in lines and in characters of their long lines:
past either bound the oldest open packet is complete, whatever touched it
lately.

Time per step is bounded whatever the window holds.  A step is looked for
among the open packets of its identity, newest first; when many share one (a
scanner's fixed IP id, a flood of retransmissions), an index by where the
packets stand (hook, table, step kind), by trace id and by the NAT fields that
must match finds the newest that fits without trying the others, and gives
the packet a scan of them all would give.  Crafted input that defeats the
index too (open packets alike in all of that, told apart only by their
interfaces) costs at most `EXAMINED_MAX` candidates per step: past that, the
step starts a packet of its own.
"""

from __future__ import annotations

import bisect
import functools
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, NamedTuple

from tracelog import netfilter
from tracelog.chains.native import native_chain
from tracelog.events import Header, TraceEvent, build

# A packet's steps are printed within microseconds of each other; other
# packets' lines interleave, but thousands of them in between means it ended.
DEFAULT_WINDOW = 5000
# What the steps held may take, beyond which the oldest open packet is
# complete: in lines, a few windows (packets are a few lines each, and the
# complete ones wait only for the older ones still open); in characters of
# lines longer than real TRACE lines (< 1 KiB), what a few thousand of those
# would take.  Lines up to that length are bounded by their number.
WINDOWS_HELD = 4
LONG_LINE_CHARS = 1024
DEFAULT_MAX_HELD_CHARS = 32 << 20
# Open packets of one identity from which their index is kept; below it a
# scan of them all is as quick.
INDEX_FROM = 64
# Candidates a step examines at most (index groups included).
EXAMINED_MAX = 128

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


@dataclass(slots=True, eq=False)
class _OpenPacket:
    number: int
    identity: Identity
    steps: list[Step]
    stage: Stage
    last: TraceEvent
    rewrites: list[Rewrite] = field(default_factory=list)
    touched: int = 0
    arrival: float = 0.0
    long_chars: int = 0  # of its steps' log lines longer than LONG_LINE_CHARS

    def add(self, event: TraceEvent, stage: Stage) -> None:
        """The next step; `stage` and `last` are the newest step's, kept at hand for the next event."""
        self.steps.append(build(Step, (event, stage[0])))
        self.stage = stage
        self.last = event

    def freeze(self) -> Packet:
        return Packet(self.number, tuple(self.steps), tuple(self.rewrites))


_identity_fields = _header_fields(
    "family",
    "proto",
    "ip_id",
    "flowlabel",
    "length",
    "tcp_seq",
    "tcp_ack",
    "icmp_type",
    "icmp_code",
    "icmp_seq",
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

    A known writer's native base chain (Docker 29's `filter-FORWARD`,
    netavark's `inet netavark` `PREROUTING`) gives its hook, and no priority:
    that is in the ruleset only; iptables built-in chains name their hook and
    have known priorities; a native nf_tables chain named after its hook
    (`prerouting`, fw4's `dstnat`) gives the hook only; any other chain is a
    user chain and ran where the step before it in the same table ran.
    """
    chain = event.chain
    known = native_chain(event.table, chain)
    if known is not None and known.hook is not None:
        return known.hook, None
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


# verdicts a trace prints that end a table's evaluation of the packet at a hook
_ENDING_VERDICTS = frozenset({"ACCEPT", "DROP", "REJECT", "QUEUE", "STOLEN"})


def _ended_for(last: TraceEvent, before: int | None, event: TraceEvent) -> bool:
    """Whether the table that ended the packet's evaluation at this hook (`last`) is where `event` ran.

    An iptables table (its priority known) is done with the packet; in a
    native table, only the base chain that decided is sure to be (another
    of its chains may hook in at the same hook).
    """
    if event.table != last.table or event.nf_family != last.nf_family:
        return False
    return before is not None or event.chain == last.chain


def _crosses_loopback(before_hook: str, hook: str) -> bool:
    """Whether a packet seen at `before_hook` can be seen at `hook` only by looping back through `lo`."""
    return hook in netfilter.LOOPBACK_HOOKS and before_hook in (netfilter.OUTPUT, netfilter.POSTROUTING)


def _follows(packet: _OpenPacket, event: TraceEvent, stage: Stage) -> bool:
    """Whether `event`, run at `stage`, can come after the packet's last step."""
    (before_hook, before), (hook, after) = packet.stage, stage
    if hook is None or before_hook is None:
        return _same_trace(packet, event)  # nothing but the trace id can tell
    last = packet.last
    if hook == before_hook:
        ended = last.verdict in _ENDING_VERDICTS and _ended_for(last, before, event)
        return not ended and _follows_within_hook(last, before, event, after)
    if not netfilter.is_later_hook(before_hook, hook):
        return False
    header = last.header
    if _crosses_loopback(before_hook, hook):
        return header.out_iface == "lo" and event.header.in_iface == "lo"
    # POSTROUTING lines print an empty IN= (the hook has no in-device)
    before_in, after_in = header.in_iface, event.header.in_iface
    return before_in is None or after_in is None or before_in == after_in


def _nat_allowed(before: Stage, after: Stage) -> frozenset[str]:
    """The fields NAT may have rewritten between two stages of one packet."""
    (before_hook, _), (after_hook, _) = before, after
    if before_hook is None or after_hook is None:
        return frozenset()
    dnat = netfilter.crosses_dnat((before_hook, before[1]), (after_hook, after[1]))
    snat = netfilter.crosses_snat((before_hook, before[1]), (after_hook, after[1]))
    if dnat and snat:
        return _DNAT_FIELDS | _SNAT_FIELDS
    return _DNAT_FIELDS if dnat else _SNAT_FIELDS if snat else frozenset()


def _nat_changes(packet: _OpenPacket, event: TraceEvent, stage: Stage) -> list[str] | None:
    """The NAT fields that differ, or None if one differs where NAT cannot run."""
    before, after = packet.last.header, event.header
    if before.physin and after.physin and before.physin != after.physin:
        return None
    old, new = _nat_values(before), _nat_values(after)
    if old == new:  # usually the very same address objects: compared by identity
        return []
    changed = [name for name, was, now in zip(_NAT_FIELDS, old, new, strict=True) if was != now]
    return changed if _nat_allowed(packet.stage, stage).issuperset(changed) else None


Found = tuple[_OpenPacket, Stage, list[str]]
"""The packet a step continues, where the step ran, and the NAT fields it changed."""


def _fit(packet: _OpenPacket, event: TraceEvent) -> Found | None:
    """Whether `event` can be the packet's next step: if so, where it ran and the NAT fields it changed."""
    stage = _stage(event, packet)
    if not _follows(packet, event, stage):
        return None
    # the same field text as the last step (one shared header): nothing changed
    changes = [] if event.header is packet.last.header else _nat_changes(packet, event, stage)
    return None if changes is None else (packet, stage, changes)


def _same_trace_first(packets: Iterable[_OpenPacket], event: TraceEvent) -> Iterator[_OpenPacket]:
    """Newest first (`packets` are), those whose last step had the event's trace id before the others.

    The trace id is a strong hint, not a packet id.  Lazily: the first
    candidate nearly always fits.
    """
    newest_first = list(packets)
    yield from (packet for packet in newest_first if _same_trace(packet, event))
    yield from (packet for packet in newest_first if not _same_trace(packet, event))


Context = tuple[Stage, str, str]
"""Where an open packet stands: the stage, table and kind of its last step."""


def _insert(lists: dict[Any, list[int]], key: object, number: int) -> None:
    bisect.insort(lists.setdefault(key, []), number)


def _remove(lists: dict[Any, list[int]], key: object, number: int) -> None:
    numbers = lists[key]
    del numbers[bisect.bisect_left(numbers, number)]
    if not numbers:
        del lists[key]


class _ContextGroup:
    """The open packets of one identity and context, by the NAT fields a step must share with them.

    Each list holds packet numbers in ascending order.  A step from which
    no NAT ran must show a packet's fields unchanged (`exact`); past
    destination NAT only the source may not change (`same_source`), past
    source NAT only the destination (`same_destination`); past both, any
    packet of the group may fit (`every`).
    """

    __slots__ = ("every", "exact", "same_destination", "same_source")

    def __init__(self) -> None:
        self.exact: dict[tuple[object, ...], list[int]] = {}
        self.same_source: dict[tuple[object, object], list[int]] = {}
        self.same_destination: dict[tuple[object, object], list[int]] = {}
        self.every: list[int] = []

    def keys(self, nat: tuple[object, ...]) -> tuple[tuple[object, ...], tuple[object, object], tuple[object, object]]:
        src, dst, sport, dport, _ = nat
        return nat, (src, sport), (dst, dport)

    def add(self, nat: tuple[object, ...], number: int) -> None:
        exact, source, destination = self.keys(nat)
        _insert(self.exact, exact, number)
        _insert(self.same_source, source, number)
        _insert(self.same_destination, destination, number)
        bisect.insort(self.every, number)

    def remove(self, nat: tuple[object, ...], number: int) -> None:
        exact, source, destination = self.keys(nat)
        _remove(self.exact, exact, number)
        _remove(self.same_source, source, number)
        _remove(self.same_destination, destination, number)
        del self.every[bisect.bisect_left(self.every, number)]

    def may_fit(self, allowed: frozenset[str], nat: tuple[object, ...]) -> list[int]:
        """The packets a step showing `nat` may continue, when NAT may have changed the `allowed` fields."""
        exact, source, destination = self.keys(nat)
        if not allowed:
            return self.exact.get(exact, [])
        if allowed == _DNAT_FIELDS:
            return self.same_source.get(source, [])
        if allowed == _SNAT_FIELDS:
            return self.same_destination.get(destination, [])
        return self.every


class _CandidateIndex:
    """The open packets of one identity, when they are many: by context and NAT fields, and by trace id.

    A packet is indexed as it stands after its last step: it must be taken
    out before a step is added and put back after.
    """

    def __init__(self, packets: Iterable[_OpenPacket]) -> None:
        self._groups: dict[Context, _ContextGroup] = {}
        self._traces: dict[str, list[int]] = {}
        for packet in packets:
            self.add(packet)

    def add(self, packet: _OpenPacket) -> None:
        last = packet.last
        context = (packet.stage, last.table, last.kind)
        group = self._groups.get(context)
        if group is None:
            group = self._groups[context] = _ContextGroup()
        group.add(_nat_values(last.header), packet.number)
        if last.trace_id is not None:
            _insert(self._traces, last.trace_id, packet.number)

    def remove(self, packet: _OpenPacket) -> None:
        last = packet.last
        context = (packet.stage, last.table, last.kind)
        group = self._groups[context]
        group.remove(_nat_values(last.header), packet.number)
        if not group.every:
            del self._groups[context]
        if last.trace_id is not None:
            _remove(self._traces, last.trace_id, packet.number)

    def find(self, event: TraceEvent, packets: Mapping[int, _OpenPacket]) -> Found | None:
        """What a scan of the packets, newest first and the event's trace id first, would find.

        The packets whose last step had the event's trace id come first, as
        in the scan.  Then each context is asked once whether a step can
        follow a packet standing there (the packets whose context decides
        nothing, an unknown hook, are those the trace id alone can join,
        already tried), and which NAT fields may have changed since; of the
        packets the NAT fields allow, the newest that fits is that
        context's; the newest of those wins.
        """
        examined = 0
        if event.trace_id is not None:
            for number in reversed(self._traces.get(event.trace_id, ())):
                fit = _fit(packets[number], event)
                if fit is not None:
                    return fit
                examined += 1
                if examined >= EXAMINED_MAX:
                    return None
        best: Found | None = None
        nat = _nat_values(event.header)
        for context, group in self._groups.items():
            examined += 1
            if examined >= EXAMINED_MAX:
                break
            allowed = self._allowed_after(context, event, packets[group.every[-1]])
            if allowed is None:
                continue
            for number in reversed(group.may_fit(allowed, nat)):
                if best is not None and number < best[0].number:
                    break
                fit = _fit(packets[number], event)
                if fit is not None:
                    best = fit
                    break
                examined += 1
                if examined >= EXAMINED_MAX:
                    return best
        return best

    @staticmethod
    def _allowed_after(context: Context, event: TraceEvent, example: _OpenPacket) -> frozenset[str] | None:
        """The NAT fields that may have changed if `event` follows a packet standing at `context`.

        None if no packet standing there can take it (`example` is one that
        does) for a reason that does not depend on the packet but on where
        it stands.
        """
        before = context[0]
        stage = _stage(event, example)
        before_hook, hook = before[0], stage[0]
        if hook is None or before_hook is None:
            return None
        if hook == before_hook:
            if not _follows_within_hook(example.last, before[1], event, stage[1]):
                return None
        elif not netfilter.is_later_hook(before_hook, hook) or (
            _crosses_loopback(before_hook, hook) and event.header.in_iface != "lo"
        ):
            return None
        return _nat_allowed(before, stage)


class Correlator:
    """Streaming correlation: feed events, collect packets as they complete.

    Packets are emitted in order of first appearance; a finished packet waits
    only for older ones still open, which the window bounds.  `max_lines`
    (default: `WINDOWS_HELD` windows) bounds the steps held, `max_chars` the
    characters of those longer than `LONG_LINE_CHARS`.  `index_from` (at
    least 1) is how many open packets of one identity make an index pay.
    """

    def __init__(
        self,
        window: int = DEFAULT_WINDOW,
        max_lines: int | None = None,
        max_chars: int = DEFAULT_MAX_HELD_CHARS,
        index_from: int = INDEX_FROM,
    ) -> None:
        self._window = window
        self._max_lines = max_lines if max_lines is not None else WINDOWS_HELD * window
        self._max_chars = max_chars
        self._index_from = index_from
        self._events = 0
        self._numbers = 0
        self._open: OrderedDict[int, _OpenPacket] = OrderedDict()
        self._by_identity: dict[Identity, dict[int, _OpenPacket]] = {}  # by number, oldest first
        self._indexes: dict[Identity, _CandidateIndex] = {}  # of those with `index_from` packets or more
        self._finished: dict[int, _OpenPacket] = {}  # complete, waiting for an older packet
        self._ready: list[Packet] = []
        self._emitted = 0
        self._released_lines = 0  # the steps of the packets emitted: the others' are held
        self._held_long_chars = 0
        self._horizon = window  # no packet can be due before this event count
        self._lines_horizon = self._max_lines  # nor can the steps held be too many before this one

    @property
    def open_packets(self) -> int:
        return len(self._open)

    @property
    def held(self) -> tuple[int, int]:
        """The steps the packets not yet emitted hold, and the characters of their long lines."""
        return self._events - self._released_lines, self._held_long_chars

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
        chars = len(event.origin.text)
        if chars > LONG_LINE_CHARS:
            packet.long_chars += chars
            self._held_long_chars += chars
            if self._held_long_chars > self._max_chars:
                self._lines_horizon = 0  # too much held now
        if self._events > self._horizon:
            self._close_untouched()
        if self._events > self._lines_horizon:
            self._close_oldest()
        return self._take_ready() if self._ready else []

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

    def _close_oldest(self) -> None:
        """Complete open packets, oldest first, until the steps held are within bounds.

        The oldest open packet is the one the complete packets after it wait
        for: each one closed lets them go.  Those skipped to find it are let
        go at once, so the search costs nothing in the long run.
        """
        while self._open:
            held_lines, held_long_chars = self.held
            if held_lines <= self._max_lines and held_long_chars <= self._max_chars:
                break
            number = self._emitted + 1
            while number in self._finished:
                number += 1
            self._close(self._open[number])
        self._lines_horizon = self._released_lines + self._max_lines

    def expire(self, now: float, idle: float) -> list[Packet]:
        """Complete the packets whose last event arrived more than `idle` seconds before `now`."""
        while self._open:
            oldest = next(iter(self._open.values()))
            if now - oldest.arrival <= idle:
                break
            self._close(oldest)
        return self._take_ready()

    def finish(self) -> list[Packet]:
        """End of input: every open packet is complete."""
        for packet in list(self._open.values()):
            self._close(packet)
        return self._take_ready()

    def _continue(self, event: TraceEvent, key: Identity) -> _OpenPacket | None:
        same_identity = self._by_identity.get(key)
        if not same_identity:
            return None
        index, found = None, None
        if len(same_identity) >= self._index_from:
            index = self._indexes[key]
            found = index.find(event, self._open)
        else:  # a few packets: tried one by one, newest first, those of the event's trace id first
            candidates: Iterable[_OpenPacket] = reversed(same_identity.values())
            if event.trace_id is not None and len(same_identity) > 1:
                candidates = _same_trace_first(candidates, event)
            for packet in candidates:
                found = _fit(packet, event)
                if found is not None:
                    break
        if found is None:
            return None
        packet, stage, changes = found
        before = packet.last.header
        step = len(packet.steps) + 1
        for name in changes:
            old, new = getattr(before, name), getattr(event.header, name)
            if old is not None and new is not None:  # a port a damaged step does not show was not rewritten
                packet.rewrites.append(Rewrite(step, name, str(old), str(new)))
        if index is not None:
            index.remove(packet)
        packet.add(event, stage)
        if index is not None:
            index.add(packet)
        return packet

    def _start(self, event: TraceEvent, key: Identity) -> _OpenPacket:
        self._numbers += 1
        stage = _stage(event, None)
        packet = _OpenPacket(self._numbers, key, [], stage, event)
        packet.add(event, stage)
        self._open[packet.number] = packet
        siblings = self._by_identity.get(key)
        if siblings is None:
            siblings = self._by_identity[key] = {}
        siblings[packet.number] = packet
        if len(siblings) > self._index_from:
            self._indexes[key].add(packet)
        elif len(siblings) == self._index_from:
            self._indexes[key] = _CandidateIndex(siblings.values())
        return packet

    def _close(self, packet: _OpenPacket) -> None:
        del self._open[packet.number]
        key = packet.identity
        siblings = self._by_identity[key]
        if len(siblings) > self._index_from:
            self._indexes[key].remove(packet)
        elif len(siblings) == self._index_from:
            del self._indexes[key]
        del siblings[packet.number]
        if not siblings:
            del self._by_identity[key]
        finished = self._finished
        finished[packet.number] = packet
        if packet.number != self._emitted + 1:
            return  # it waits for an older one
        while (done := finished.pop(self._emitted + 1, None)) is not None:
            self._emitted += 1
            self._released_lines += len(done.steps)
            self._held_long_chars -= done.long_chars
            self._ready.append(done.freeze())
        if self._held_long_chars <= self._max_chars:
            self._lines_horizon = self._released_lines + self._max_lines

    def _take_ready(self) -> list[Packet]:
        ready, self._ready = self._ready, []
        return ready


def correlate_packets(events: Iterable[TraceEvent], window: int = DEFAULT_WINDOW) -> Iterator[Packet]:
    """Group a finite stream of events into packets (offline use)."""
    correlator = Correlator(window)
    for event in events:
        yield from correlator.feed(event)
    yield from correlator.finish()
