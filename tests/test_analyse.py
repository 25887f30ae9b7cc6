"""The pandas frames: declared columns, one row per step or packet, derived path and rewrites."""

from __future__ import annotations

from tests.samples import SAMPLES
from tracelog.analyse import PACKET_COLUMNS, STEP_COLUMNS, packets_frame, steps_frame
from tracelog.pipeline import ParseOptions, RunStats, trace_packets
from tracelog.records.packet import PacketRecord, packet_record


def records(name: str) -> list[PacketRecord]:
    packets = trace_packets([str(SAMPLES / name)], ParseOptions(year=2026), RunStats())
    return [packet_record(packet) for packet in packets]


def test_steps_frame_has_a_row_per_trace_line() -> None:
    frame = steps_frame(records("lab-legacy/tcp.dmesg"))
    assert tuple(frame.columns) == STEP_COLUMNS
    assert len(frame) == 76
    assert frame.groupby("packet")["step"].min().eq(1).all()
    assert (frame.loc[frame["step"] == 1, "table"] == "raw").all()


def test_packets_frame_summarises_path_and_rewrites() -> None:
    frame = packets_frame(records("lab-legacy/dnat.dmesg")).set_index("packet")
    assert tuple(frame.reset_index().columns) == PACKET_COLUMNS
    assert len(frame) == 13
    first = frame.loc[1]
    assert first["path"] == "PREROUTING > FORWARD > POSTROUTING"
    assert (first["first_hook"], first["last_hook"]) == ("PREROUTING", "POSTROUTING")
    assert first["rewrites"] == "dst 192.0.2.1>172.18.0.3@4; dport 8080>80@4"
    assert first["verdict"] is None
    assert frame["steps"].sum() == 94


def test_frames_of_no_packets_are_empty_with_columns() -> None:
    assert list(steps_frame([]).columns) == list(STEP_COLUMNS)
    assert packets_frame([]).empty
