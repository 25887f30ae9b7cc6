"""Packets → flows: which packet records are one conversation (a request and its replies), streaming.

Packets pair up the way conntrack pairs them: TCP and UDP by the reversed
5-tuple, ICMP queries (echo, …) by their addresses and identifier, ICMP errors
with the flow of the packet they quote.  NAT is seen through because a packet
is known by the addresses of every one of its steps: a DNAT'ed request's last
step shows the address its reply comes from.  Memory is bounded: a flow that
has seen no packet for `idle` packets is over, a flow is known by at most
`KEYS_PER_FLOW` keys, and the oldest flows are forgotten early when all flows
together have more than `KEYS_KEPT` keys or `HOST_CHARACTERS` of host names.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

# Packets of one conversation come seconds apart at most, thousands of other
# packets on a busy host; the live flows never outnumber this gap.
DEFAULT_IDLE = 10_000
# A real flow is known by a few keys (its 5-tuple, and the other one under
# NAT); a packet that brings new ones every time (NAT to a new address per
# packet, a forged trace) costs its flow its least recently seen keys.
KEYS_PER_FLOW = 64
# All flows' keys, and the host names they hold (a host field is whatever the
# log says): past either, the least recently seen flows are over early.
KEYS_KEPT = 1 << 16
HOST_CHARACTERS = 1 << 24
# Packets with more sights than this (steps through many rewrites) are not
# remembered: the cache would hold their every address.
_SIGHTS_CACHED = 8

# Error types that quote the offending packet (the types conntrack relates to a connection).
_ICMP_ERRORS = {"ICMP": frozenset({3, 4, 5, 11, 12}), "ICMPV6": frozenset({1, 2, 3, 4})}
# Query types, each mapped to its request type, so that a request and its reply share a key.
_ICMP_QUERIES = {
    "ICMP": {8: 8, 0: 8, 13: 13, 14: 13, 15: 15, 16: 15, 17: 17, 18: 17},
    "ICMPV6": {128: 128, 129: 128},
}

FlowKey = tuple[object, ...]
R = TypeVar("R", bound=Mapping[str, Any])


class Ends(NamedTuple):
    """One packet's conversation as a header shows it: who talks to whom about what.

    A named tuple, as one is made for nearly every packet.
    """

    proto: str
    src: str
    dst: str
    sport: int | None = None
    dport: int | None = None
    icmp_type: int | None = None
    icmp_id: int | None = None

    def key(self, host: str | None) -> FlowKey:
        """The same key for both directions: endpoints as a set, ICMP told apart by query and identifier.

        An ICMP query's key names who asked: a request from A and a request
        from B never pair up, even with one identifier, while each reply joins
        the request it answers.
        """
        queries = _ICMP_QUERIES.get(self.proto, {})
        if self.icmp_type in queries:
            request = queries[self.icmp_type]
            asker, asked = (self.src, self.dst) if self.icmp_type == request else (self.dst, self.src)
            return (host, self.proto, asker, asked, request, self.icmp_id)
        endpoints = frozenset({(self.src, self.sport), (self.dst, self.dport)})
        # other ICMP (neighbour discovery, …) has no reply type: one flow per type and address pair
        return (host, self.proto, endpoints, self.icmp_type)


Sight = tuple[str, str, int | None, int | None, int | None]
"""src, dst, sport, dport and echo identifier as one step of a record shows them."""


def packet_sights(record: Mapping[str, Any]) -> tuple[Sight, ...]:
    """The distinct conversations the steps of a record show, in order, NAT rewrites included.

    `icmp_id` (the echo identifier) is read where the record has it: per step
    first, because NAT may rewrite it, else for the whole packet.
    """
    icmp_id = record.get("icmp_id")
    return tuple(
        {
            (step["src"], step["dst"], step.get("sport"), step.get("dport"), step.get("icmp_id", icmp_id)): None
            for step in record["steps"]
        }
    )


def quoted_ends(inner: Mapping[str, Any]) -> Ends:
    """The packet an ICMP error quotes (`inner`: src, dst, proto, sport, dport; icmp_type, icmp_id optional)."""
    return Ends(
        str(inner["proto"]).upper(),
        inner["src"],
        inner["dst"],
        inner.get("sport"),
        inner.get("dport"),
        inner.get("icmp_type"),
        inner.get("icmp_id"),
    )


def flow_keys(record: Mapping[str, Any]) -> tuple[FlowKey, ...]:
    """Every key the packet's flow is known by, first step first, without repeats.

    An ICMP error is known only by the packet it quotes: its own addresses
    would tie together unrelated errors between the same two hosts.  Without
    `inner` it is a flow of its own.
    """
    host, proto, icmp_type = record.get("host"), str(record["proto"]).upper(), record.get("icmp_type")
    if icmp_type in _ICMP_ERRORS.get(proto, ()):
        inner = record.get("inner")
        return (quoted_ends(inner).key(host),) if inner else ()
    sights = packet_sights(record)
    if len(sights) > _SIGHTS_CACHED:
        return _sight_keys(host, proto, icmp_type, sights)
    return _remembered_sight_keys(host, proto, icmp_type, sights)


def _sight_keys(host: str | None, proto: str, icmp_type: int | None, sights: tuple[Sight, ...]) -> tuple[FlowKey, ...]:
    """The flow keys of a packet's sights."""
    ends = (Ends(proto, src, dst, sport, dport, icmp_type, echo) for src, dst, sport, dport, echo in sights)
    return tuple(dict.fromkeys(end.key(host) for end in ends))


# the packets of one conversation repeat their sights
_remembered_sight_keys = functools.lru_cache(maxsize=1 << 12)(_sight_keys)


@dataclass(slots=True)
class _Flow:
    """A live flow: its number, its keys (least recently seen first), its packet last seen, its host name's length."""

    number: int
    keys: dict[FlowKey, None]
    touched: int
    host_characters: int


class FlowTracker:
    """Streaming flow assignment: give it packet records in packet order, get flow ids back.

    Flow ids are 1-based in order of first appearance.  A flow that has not
    seen a packet for `idle` packets is forgotten, so a later packet with the
    same addresses starts a new flow, and at most `idle` + 1 flows are kept.
    A flow keeps its `KEYS_PER_FLOW` keys seen last; past `KEYS_KEPT` keys
    or `HOST_CHARACTERS` of host names in all, the flows seen least recently
    are forgotten before their time (see the module's docstring).
    """

    def __init__(self, idle: int = DEFAULT_IDLE) -> None:
        self._idle = idle
        self._packets = 0
        self._flows = 0
        self._live: OrderedDict[int, _Flow] = OrderedDict()
        self._by_key: dict[FlowKey, _Flow] = {}
        self._host_characters = 0

    @property
    def live_flows(self) -> int:
        """How many flows are still remembered."""
        return len(self._live)

    @property
    def live_keys(self) -> int:
        """How many keys the flows remembered are known by."""
        return len(self._by_key)

    def assign(self, record: Mapping[str, Any]) -> int:
        """The flow id of the next packet record.

        When a packet's keys point at two live flows (its first step at one,
        its last at another), it joins the one its first step names; ids
        already handed out never change, so flows are never merged.
        """
        return self.assign_keys(flow_keys(record))

    def assign_keys(self, keys: tuple[FlowKey, ...]) -> int:
        """The flow id of the next packet, known by its `flow_keys`."""
        self._packets += 1
        self._expire()
        flow = next((self._by_key[key] for key in keys if key in self._by_key), None) or self._start(keys)
        for key in keys:
            self._claim(flow, key)
        flow.touched = self._packets
        self._live.move_to_end(flow.number)
        return flow.number

    def _start(self, keys: tuple[FlowKey, ...]) -> _Flow:
        self._flows += 1
        host = keys[0][0] if keys else None
        flow = _Flow(self._flows, {}, self._packets, len(host) if isinstance(host, str) else 0)
        self._live[flow.number] = flow
        self._host_characters += flow.host_characters
        return flow

    def _claim(self, flow: _Flow, key: FlowKey) -> None:
        """Make `key` the flow's key seen last, taken from any other flow; its least recent goes past the limit."""
        owner = self._by_key.get(key)
        if owner is not None:
            del owner.keys[key]
        self._by_key[key] = flow
        flow.keys[key] = None
        if len(flow.keys) > KEYS_PER_FLOW:
            least_recent = next(iter(flow.keys))
            del flow.keys[least_recent]
            del self._by_key[least_recent]

    def _expire(self) -> None:
        """Forget the flows idle too long, and the least recent ones while all flows hold too much."""
        while self._live:
            oldest = next(iter(self._live.values()))
            crowded = len(self._by_key) > KEYS_KEPT or self._host_characters > HOST_CHARACTERS
            if self._packets - oldest.touched <= self._idle and not crowded:
                break
            del self._live[oldest.number]
            self._host_characters -= oldest.host_characters
            for key in oldest.keys:
                del self._by_key[key]


def assign_flows(records: Iterable[R], idle: int = DEFAULT_IDLE) -> Iterator[tuple[int, R]]:
    """Each record with its flow id, in the order given (records must come in packet order)."""
    tracker = FlowTracker(idle)
    for record in records:
        yield tracker.assign(record), record
