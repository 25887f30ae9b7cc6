"""Packet and flow numbers: the one part of a record that depends on every packet before it.

Everything else of a packet's output is prepared wherever the packet is found
(a worker reading part of a big file: see `tracelog.parallel`); the numbers
are given here, in packet order, by the one process that sees every packet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Generic, NamedTuple, TypeVar

from tracelog.correlate import Packet
from tracelog.names import Names
from tracelog.records.flows import FlowKey, FlowTracker, flow_keys
from tracelog.records.packet import NO_NAMES, PacketRecord, named_record

T = TypeVar("T")
U = TypeVar("U")


class Prepared(NamedTuple, Generic[T]):
    """A packet's output made before its numbers are known, with the keys its flow is known by.

    `output` is None for a packet the filters leave out: it still counts for
    the packet and flow numbers of the packets after it.
    """

    keys: tuple[FlowKey, ...]
    output: T | None


def prepare_packet(
    packet: Packet, names: Names, wanted: Callable[[PacketRecord], bool] | None, prepare: Callable[[PacketRecord], T]
) -> Prepared[T]:
    """Make a packet's record and `prepare` its output, or None when `wanted` (the filters) leaves it out."""
    record = named_record(packet, names)
    return Prepared(flow_keys(record), prepare(record) if wanted is None or wanted(record) else None)


def number_packets(packets: Iterable[Prepared[T]], finish: Callable[[T, int, int], U]) -> Iterator[U]:
    """Give each shown packet its packet and flow numbers, in packet order, and `finish` its output with them."""
    flows = FlowTracker()
    for packet, (keys, output) in enumerate(packets, start=1):
        flow = flows.assign_keys(keys)
        if output is not None:
            yield finish(output, packet, flow)


def number_record(record: PacketRecord, packet: int, flow: int) -> PacketRecord:
    """Finish a whole record by giving it its packet and flow numbers."""
    record["packet"], record["flow"] = packet, flow
    return record


def keep_record(record: PacketRecord) -> PacketRecord:
    """Prepare nothing: a whole record is its own output."""
    return record


def packet_records(packets: Iterable[Packet], names: Names = NO_NAMES) -> Iterator[PacketRecord]:
    """Every packet's whole record, named and numbered, in one process."""
    return number_packets((prepare_packet(packet, names, None, keep_record) for packet in packets), number_record)
