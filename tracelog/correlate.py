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
import itertools
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, NamedTuple

from tracelog import netfilter
from tracelog.chains.native import native_chain
from tracelog.events import Header, Partial, TraceEvent, UnknownIPv4Address, UnknownIPv6Address, build

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


# What a packet's `partial` says when its steps were grouped on a guess (see `_fit`)
GUESSED_GROUPING = Partial(guessed=("grouping",))


@dataclass(frozen=True, slots=True)
class Packet:
    """One packet's journey through the hooks, in the order the log printed it.

    `partial` is what the grouping itself guessed (`GUESSED_GROUPING`), beside
    what its steps' headers say; None when no step was joined on a guess.
    """

    number: int
    steps: tuple[Step, ...]
    rewrites: tuple[Rewrite, ...] = ()
    partial: Partial | None = None

    @property
    def first(self) -> TraceEvent:
        return self.steps[0].event

    @property
    def last(self) -> TraceEvent:
        return self.steps[-1].event

    @property
    def header(self) -> Header:
        """The header as first shown: the first step's whose packet line was seen (a monitor's excerpt may lack it)."""
        first = self.steps[0].event.header
        if first.partial is None or "header" not in first.partial.guessed:
            return first
        shown = (
            step.event.header for step in self.steps if "header" not in (step.event.header.partial or _WHOLE).guessed
        )
        return next(shown, first)


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
    guessed: bool = False  # a step was joined on its trace id and hook order alone

    def add(self, event: TraceEvent, stage: Stage) -> None:
        """The next step; `stage` and `last` are the newest step's, kept at hand for the next event."""
        self.steps.append(build(Step, (event, stage[0])))
        self.stage = stage
        self.last = event

    def freeze(self) -> Packet:
        return Packet(self.number, tuple(self.steps), tuple(self.rewrites), GUESSED_GROUPING if self.guessed else None)


_IDENTITY_FIELDS = (
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
    "arp_op",
)
_identity_fields = _header_fields(*_IDENTITY_FIELDS)


def identity(event: TraceEvent) -> Identity:
    """The fields that stay the same for one packet at every hook (and the host that logged it)."""
    return event.host, _identity_fields(event.header)


# ---- steps read from damaged text
#
# A field a paste elided or redacted is no evidence either way: it neither
# joins two steps nor keeps them apart.  Two steps of which one hides a field
# the correlator joins on are joined only where something else vouches for
# it: the same packet line (a monitor's steps under one header), the same
# trace id, or an identity field that tells packets of one flow apart.  The
# trace id alone (a hint, not a packet id) makes the grouping a guess.

# what the correlator joins on: the identity, the fields NAT may change, the
# interfaces; `header` for a step whose packet line was not seen, `fields`
# for a line cut where no field could be named
_JOIN_FIELDS = frozenset({*_IDENTITY_FIELDS, *_NAT_FIELDS, "in_iface", "out_iface", "physin", "header", "fields"})
_UNKNOWN_ADDRESSES = (UnknownIPv4Address, UnknownIPv6Address)
_WHOLE = Partial()


# what the correlator compares only between steps at different hooks (see `_follows`)
_INTERFACES = frozenset({"in_iface", "out_iface"})
_JOIN_FIELDS_BUT_INTERFACES = _JOIN_FIELDS - _INTERFACES


@functools.lru_cache(maxsize=256)
def _hides(partial: Partial, fields: frozenset[str]) -> bool:
    """Whether a step's text hid one of `fields` (elided, redacted, unreadable or guessed)."""
    hidden = (*partial.elided, *partial.redacted, *partial.unreadable, *partial.guessed)
    return not fields.isdisjoint(hidden)


def _unsure_beyond_interfaces(header: Header) -> bool:
    """Whether the header's text hid a field the correlator joins on other than the interfaces."""
    return header.partial is not None and _hides(header.partial, _JOIN_FIELDS_BUT_INTERFACES)


def _unsure(header: Header) -> bool:
    """Whether the header's text hid a field the correlator joins on (elided, redacted, unreadable or guessed)."""
    return header.partial is not None and _hides(header.partial, _JOIN_FIELDS)


def _shows_one_packet(header: Header, other: Header) -> bool:
    """Whether both headers show the same value of an identity field that differs from packet to packet of one flow.

    A nonzero IP id or an ICMP echo sequence number; not the length, flow
    label or UDP length, which a flow's packets share, nor TCP's sequence
    and acknowledgement numbers, which pure ACKs and retransmissions repeat.
    """
    return bool(header.ip_id and header.ip_id == other.ip_id) or (
        header.icmp_seq is not None and header.icmp_seq == other.icmp_seq
    )


def _same_packet_line(header: Header, other: Header) -> bool:
    """Whether two headers of one trace id show the same packet line (or the same unseen one).

    A monitor's steps share the header of their packet line, but for a
    step line's own notes and mark.
    """
    return header is other or header._replace(mark=None, partial=None) == other._replace(mark=None, partial=None)


def _later_stage(packet: _OpenPacket, event: TraceEvent, stage: Stage) -> bool:
    """Whether `event` runs at a later hook than the packet's last step, or at the same hook in a table yet to run.

    At the same hook, a later priority where both are known; otherwise
    (native tables) a table the packet has no step of at this hook yet.
    """
    (before_hook, before_priority), (after_hook, after_priority) = packet.stage, stage
    if before_hook != after_hook:
        return True
    if before_priority is not None and after_priority is not None:
        return after_priority > before_priority
    table = (event.table, event.nf_family)
    return not any(hook == after_hook and (step.table, step.nf_family) == table for step, hook in packet.steps)


def _hides_interfaces_alone_at_one_hook(packet: _OpenPacket, header: Header, stage: Stage) -> bool:
    """Whether a step and the packet's last, at one hook, hid no field the join rests on but their interfaces.

    Interfaces are compared only across hooks (`_follows`): there the join is as sure as if they showed.
    """
    hook = stage[0]
    if hook is None or hook != packet.stage[0]:
        return False
    return not (_unsure_beyond_interfaces(header) or _unsure_beyond_interfaces(packet.last.header))


def _guess(packet: _OpenPacket, event: TraceEvent, stage: Stage) -> bool | None:
    """Whether a step that hid (or follows one that hid) a field joins the packet on a guess; None if it may not.

    An identity field that tells packets apart vouches for the join, and
    so does the packet line of the step before (the same trace id, the
    same fields): no guess.  Steps at one hook that hid no such field but
    their interfaces join as if they had shown them, as those are compared
    only across hooks (an RST's IP id 0 tells nothing apart, its sequence
    numbers do).  Otherwise the trace id may, a guess, and only
    where a new packet line can start: at a later hook or table.  A new
    packet line at the same table and hook is a new evaluation, a packet
    of its own whose trace id the kernel reused.  In a format without trace
    ids, a step that hid its identity joins nothing: its addresses and the
    hook order fit another packet of its flow as well (steps of one packet
    hidden in a paste leave holes another packet's steps fit into).
    """
    header, last = event.header, packet.last.header
    if _shows_one_packet(header, last):
        return False
    if _hides_interfaces_alone_at_one_hook(packet, header, stage):
        return False
    if not _same_trace(packet, event):
        return None
    if _same_packet_line(header, last):
        return False
    return True if _later_stage(packet, event, stage) else None


def _compatible(header: Header, other: Header) -> bool:
    """Whether no identity field both headers show differs (for joining steps across a damaged packet line)."""
    guessed = (header.partial or _WHOLE).guessed + (other.partial or _WHOLE).guessed
    for name, mine, theirs in zip(_IDENTITY_FIELDS, _identity_fields(header), _identity_fields(other), strict=True):
        unknown = mine is None or theirs is None or (name == "proto" and "?" in (mine, theirs))
        if not (unknown or mine == theirs or (name == "family" and "family" in guessed)):
            return False
    return True


def _known(value: object) -> bool:
    """Whether a NAT field's value was shown (not None, not an address elided or redacted)."""
    return value is not None and type(value) not in _UNKNOWN_ADDRESSES


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
    native_hook = netfilter.hook_of_chain(chain, event.nf_family) if chain.islower() else None
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
        return _handed_up(last, event, hook)
    header = last.header
    if _crosses_loopback(before_hook, hook):
        return header.out_iface == "lo" and event.header.in_iface == "lo"
    # POSTROUTING lines print an empty IN= (the hook has no in-device)
    before_in, after_in = header.in_iface, event.header.in_iface
    return before_in is None or after_in is None or before_in == after_in or _handed_up(last, event, hook)


def _may_be_handed_up(event: TraceEvent, hook: str) -> bool:
    """Whether `event` may be a frame a bridge handed up to the bridge device's own stack: an arp table's INPUT."""
    return hook == netfilter.INPUT and event.nf_family == "arp"


def _handed_up(last: TraceEvent, event: TraceEvent, hook: str) -> bool:
    """Whether `event` is the frame a bridge table saw (`last`), handed up to the bridge device itself.

    A bridge floods a broadcast (an ARP request) to its ports and to its own
    device: after its bridge FORWARD steps, the frame shows at arp INPUT,
    arriving on the bridge instead of the port, its Ethernet header the same.
    """
    if last.nf_family != "bridge" or not _may_be_handed_up(event, hook):
        return False
    before, after = last.header.mac, event.header.mac
    return before is None or after is None or before == after


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


def _nat_changes(packet: _OpenPacket, event: TraceEvent, stage: Stage, unsure: bool = False) -> list[str] | None:
    """The NAT fields that differ, or None if one differs where NAT cannot run.

    With `unsure` headers, a field either one does not show is no change.
    """
    before, after = packet.last.header, event.header
    if before.physin and after.physin and before.physin != after.physin:
        return None
    old, new = _nat_values(before), _nat_values(after)
    if old == new:  # usually the very same address objects: compared by identity
        return []
    changed = [
        name
        for name, was, now in zip(_NAT_FIELDS, old, new, strict=True)
        if was != now and not (unsure and not (_known(was) and _known(now)))
    ]
    return changed if _nat_allowed(packet.stage, stage).issuperset(changed) else None


Found = tuple[_OpenPacket, Stage, list[str], bool]
"""The packet a step continues, where the step ran, the NAT fields it changed, and whether the join is a guess."""


def _fit(packet: _OpenPacket, event: TraceEvent) -> Found | None:
    """Whether `event` can be the packet's next step: if so, where it ran and the NAT fields it changed.

    Where either step's header hid a field the correlator joins on, the
    join needs more than the fields shown (see `_guess`).
    """
    stage = _stage(event, packet)
    if not _follows(packet, event, stage):
        return None
    header, last = event.header, packet.last.header
    if header is last:  # the same field text as the last step (one shared header): nothing changed
        return packet, stage, [], False
    unsure = (header.partial is not None or last.partial is not None) and (_unsure(header) or _unsure(last))
    guessed = False
    if unsure:
        guess = _guess(packet, event, stage)
        if guess is None:
            return None
        guessed = guess
    changes = _nat_changes(packet, event, stage, unsure)
    return None if changes is None else (packet, stage, changes, guessed)


def _note_rewrites(packet: _OpenPacket, before: Header, after: Header, changes: list[str]) -> None:
    """The NAT fields a step changed, as the packet's rewrites at that step."""
    step = len(packet.steps) + 1
    for name in changes:
        old, new = getattr(before, name), getattr(after, name)
        if old is not None and new is not None:  # a port a damaged step does not show was not rewritten
            packet.rewrites.append(Rewrite(step, name, str(old), str(new)))


def _first_fit(candidates: Iterable[_OpenPacket], event: TraceEvent) -> Found | None:
    """The first of the candidates `event` fits, if any."""
    for packet in candidates:
        found = _fit(packet, event)
        if found is not None:
            return found
    return None


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
    out before a step is added and put back after.  A packet whose last
    header hid a field the correlator joins on is not indexed by its NAT
    fields (a hidden one matches any): those are tried one by one (`unsure`).
    """

    def __init__(self, packets: Iterable[_OpenPacket]) -> None:
        self._groups: dict[Context, _ContextGroup] = {}
        self._traces: dict[str, list[int]] = {}
        self._unsure: list[int] = []
        for packet in packets:
            self.add(packet)

    def add(self, packet: _OpenPacket) -> None:
        last = packet.last
        if last.trace_id is not None:
            _insert(self._traces, last.trace_id, packet.number)
        if _unsure(last.header):
            bisect.insort(self._unsure, packet.number)
            return
        context = (packet.stage, last.table, last.kind)
        group = self._groups.get(context)
        if group is None:
            group = self._groups[context] = _ContextGroup()
        group.add(_nat_values(last.header), packet.number)

    def remove(self, packet: _OpenPacket) -> None:
        last = packet.last
        if last.trace_id is not None:
            _remove(self._traces, last.trace_id, packet.number)
        if _unsure(last.header):
            del self._unsure[bisect.bisect_left(self._unsure, packet.number)]
            return
        context = (packet.stage, last.table, last.kind)
        group = self._groups[context]
        group.remove(_nat_values(last.header), packet.number)
        if not group.every:
            del self._groups[context]

    def traced(self, trace_id: str | None) -> list[int]:
        """The packets whose last step had `trace_id`, oldest first."""
        return self._traces.get(trace_id, []) if trace_id is not None else []

    def find(self, event: TraceEvent, packets: Mapping[int, _OpenPacket]) -> Found | None:
        """What a scan of the packets, newest first and the event's trace id first, would find.

        The packets whose last step had the event's trace id come first, as
        in the scan.  Then each context is asked once whether a step can
        follow a packet standing there (the packets whose context decides
        nothing, an unknown hook, are those the trace id alone can join,
        already tried), and which NAT fields may have changed since; of the
        packets the NAT fields allow, the newest that fits is that
        context's; the newest of those wins, unless a newer packet of those
        not indexed by their NAT fields fits.  A step that hid a field the
        correlator joins on is looked for among the newest packets first
        (see `Correlator._find_unsure`): its NAT fields match inexactly.
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
        return self._newer_unsure(event, packets, best, examined) or best

    def _newer_unsure(
        self, event: TraceEvent, packets: Mapping[int, _OpenPacket], best: Found | None, examined: int
    ) -> Found | None:
        """The newest packet not indexed by its NAT fields that `event` fits, if newer than `best`."""
        for number in reversed(self._unsure):
            if (best is not None and number < best[0].number) or examined >= EXAMINED_MAX:
                break
            fit = _fit(packets[number], event)
            if fit is not None:
                return fit
            examined += 1
        return None

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
        elif not (netfilter.is_later_hook(before_hook, hook) or _may_be_handed_up(event, hook)) or (
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
        self._by_trace: dict[str, _OpenPacket] = {}  # the newest open packet whose last step had the trace id
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
        trace_id = event.trace_id
        # a step or its trace id's packet read from damaged text may hand the packet over
        pending = self._by_trace.get(trace_id) if trace_id is not None else None
        if pending is not None and (event.header.partial is not None or pending.last.header.partial is not None):
            handed = self._hand_over(pending, event, key)
            if handed is not None:
                return self._take_over(handed, event, key)
        same_identity = self._by_identity.get(key)
        if not same_identity:
            return None
        if len(same_identity) >= self._index_from:
            index = self._indexes[key]
            found = self._find_unsure(event, index, same_identity) if _unsure(event.header) else None
            found = found or index.find(event, self._open)
            return None if found is None else self._add_step(found, event, index)
        # a few packets: tried one by one, newest first, those of the event's trace id first
        candidates: Iterable[_OpenPacket] = reversed(same_identity.values())
        if trace_id is not None and len(same_identity) > 1:
            candidates = _same_trace_first(candidates, event)
        for candidate in candidates:
            found = _fit(candidate, event)
            if found is not None:
                return self._add_step(found, event, None)
        return None

    def _add_step(self, found: Found, event: TraceEvent, index: _CandidateIndex | None) -> _OpenPacket:
        """Add a step to the packet found for it (taken out of its identity's index and put back, if there is one)."""
        packet, stage, changes, guessed = found
        before = packet.last
        if changes:
            _note_rewrites(packet, before.header, event.header, changes)
        if guessed:
            packet.guessed = True
        if index is not None:
            index.remove(packet)
            packet.add(event, stage)
            index.add(packet)
        else:
            packet.add(event, stage)
        trace_id, before_trace = event.trace_id, before.trace_id
        if trace_id is not None:
            self._by_trace[trace_id] = packet
        if before_trace is not None and before_trace != trace_id:
            self._forget_trace(packet, before_trace)
        return packet

    def _take_over(self, found: Found, event: TraceEvent, key: Identity) -> _OpenPacket:
        """Add a step handed over to its trace id's packet: from now on the packet has the step's identity."""
        packet, stage, changes, _ = found
        before = packet.last
        _note_rewrites(packet, before.header, event.header, changes)
        packet.guessed = True
        self._unfile(packet)
        packet.add(event, stage)
        packet.identity = key
        self._file(packet)
        self._by_trace[event.trace_id] = packet  # type: ignore[index]  # handed over by its trace id
        if before.trace_id != event.trace_id:
            self._forget_trace(packet, before.trace_id)
        return packet

    @staticmethod
    def _hand_over(packet: _OpenPacket, event: TraceEvent, key: Identity) -> Found | None:
        """Where the step can join its trace id's packet, when the two show different identities and either hid some.

        A packet line damaged in a paste (its IP id elided), or not seen at all
        (a monitor's excerpt started mid-packet), gives its steps an identity
        of their own: the trace id and the hook order are all that joins them
        to the rest of their packet, so the grouping is a guess.
        """
        header, last = event.header, packet.last.header
        if packet.last.trace_id != event.trace_id or not (_unsure(header) or _unsure(last)) or packet.identity == key:
            return None
        return _fit(packet, event) if _compatible(header, last) else None

    def _find_unsure(
        self, event: TraceEvent, index: _CandidateIndex, same_identity: dict[int, _OpenPacket]
    ) -> Found | None:
        """Of many packets of its identity, the one a step that hid a field fits: its trace id's first, then the newest.

        Its NAT fields cannot be looked up (a hidden one matches any), so at
        most `EXAMINED_MAX` packets are tried; past them, the index finds the
        packets whose NAT fields it shows alike.
        """
        traced = [self._open[number] for number in reversed(index.traced(event.trace_id))]
        candidates = itertools.chain(traced, reversed(same_identity.values()))
        return _first_fit(itertools.islice(candidates, EXAMINED_MAX), event)

    def _forget_trace(self, packet: _OpenPacket, trace_id: str | None) -> None:
        """The packet is no longer the latest of a trace id (its last step has another, or it is complete)."""
        if trace_id is not None and self._by_trace.get(trace_id) is packet:
            del self._by_trace[trace_id]

    def _start(self, event: TraceEvent, key: Identity) -> _OpenPacket:
        self._numbers += 1
        stage = _stage(event, None)
        packet = _OpenPacket(self._numbers, key, [], stage, event)
        packet.add(event, stage)
        self._open[packet.number] = packet
        self._file(packet)
        if event.trace_id is not None:
            self._by_trace[event.trace_id] = packet
        return packet

    def _file(self, packet: _OpenPacket) -> None:
        """List an open packet among those of its identity (and in their index, when they are many)."""
        key = packet.identity
        siblings = self._by_identity.get(key)
        if siblings is None:
            siblings = self._by_identity[key] = {}
        elif next(reversed(siblings)) > packet.number:  # handed over: an older packet joins newer ones
            siblings = self._by_identity[key] = dict(sorted({**siblings, packet.number: packet}.items()))
        siblings[packet.number] = packet
        if len(siblings) > self._index_from:
            self._indexes[key].add(packet)
        elif len(siblings) == self._index_from:
            self._indexes[key] = _CandidateIndex(siblings.values())

    def _unfile(self, packet: _OpenPacket) -> None:
        """Take a packet out of the lists of its identity: it is complete, or now has another identity."""
        key = packet.identity
        siblings = self._by_identity[key]
        if len(siblings) > self._index_from:
            self._indexes[key].remove(packet)
        elif len(siblings) == self._index_from:
            del self._indexes[key]
        del siblings[packet.number]
        if not siblings:
            del self._by_identity[key]

    def _close(self, packet: _OpenPacket) -> None:
        del self._open[packet.number]
        self._unfile(packet)
        if packet.last.trace_id is not None:
            self._forget_trace(packet, packet.last.trace_id)
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
