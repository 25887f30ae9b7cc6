"""Packet and flow numbers are given in packet order, counting the packets the filters leave out."""

from __future__ import annotations

from tests.samples import SAMPLES
from tracelog.output.format import RECORDS
from tracelog.pipeline import ParseOptions, RunStats, trace_packets
from tracelog.records.numbering import Prepared, number_packets, packet_records, prepare_packet
from tracelog.records.packet import NO_NAMES, PacketRecord


def test_numbers_count_every_packet_and_shared_keys_share_a_flow() -> None:
    """A left-out packet still takes its packet number; packets known by one key are one flow."""
    prepared = [
        Prepared(keys=(("a",),), output="first"),
        Prepared(keys=(("b",),), output=None),
        Prepared(keys=(("a",), ("c",)), output="third"),
        Prepared(keys=(("c",),), output="fourth"),
        Prepared(keys=(("d",),), output="fifth"),
    ]
    finished = list(number_packets(prepared, lambda output, packet, flow: (output, packet, flow)))
    assert finished == [("first", 1, 1), ("third", 3, 1), ("fourth", 4, 1), ("fifth", 5, 3)]


def test_filtered_packets_keep_the_numbers_of_the_whole_trace() -> None:
    """Showing only some packets of a real capture does not renumber them."""
    path = SAMPLES / "docker-legacy" / "http.dmesg"
    whole = list(packet_records(trace_packets([str(path)], ParseOptions(), RunStats())))
    assert len(whole) > 2

    def wanted(record: PacketRecord) -> bool:
        return bool(record["dst"] == whole[-1]["dst"])

    packets = trace_packets([str(path)], ParseOptions(), RunStats())
    prepared = (prepare_packet(packet, NO_NAMES, wanted, RECORDS.prepare) for packet in packets)
    shown = list(number_packets(prepared, RECORDS.finish))
    expected = [record for record in whole if wanted(record)]
    assert 0 < len(shown) < len(whole)
    assert [(r["packet"], r["flow"]) for r in shown] == [(r["packet"], r["flow"]) for r in expected]
