"""What the parsers remember between lines stays bounded in characters, whatever the lines hold.

The parsers keep memos across lines (field texts by shape, monitors' step
lines by their text, the packet header each trace id stands for).  Lines
written from real captures with one field blown up, a new one on every line,
must not make those memos grow past a few megabytes: memory is measured with
`tracemalloc` while one parser reads them.
"""

from __future__ import annotations

import gc
import re
import tracemalloc
from collections.abc import Iterable, Iterator

from tests.samples import SAMPLES
from tracelog.events import SourceLine
from tracelog.parse import LineParser

MB = 1 << 20
KERNEL_CAPTURE = SAMPLES / "lab-legacy/tcp.dmesg"
XTABLES_CAPTURE = SAMPLES / "lab-nft/dnat.xtables-monitor"


def kept_bytes(lines: Iterable[str]) -> int:
    """How much more memory is in use once one parser has read `lines` (the parser still alive)."""
    parser = LineParser(2026)
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for number, text in enumerate(lines, 1):
            parser.parse(SourceLine("hostile", number, text))
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return after - before


def unique_name(number: int, length: int) -> str:
    """An interface name of `length` characters that no other `number` gives."""
    return f"x{number:x}".ljust(length, "z")


def test_field_shapes_of_long_new_interface_names_stay_bounded() -> None:
    """Each line a shape of its own (a new 900-character interface name), each seen twice so that it is learned."""
    first = KERNEL_CAPTURE.read_text().splitlines()[0]

    def lines() -> Iterator[str]:
        for number in range(2_500):
            named = first.replace("PHYSIN=vethb99e073", f"PHYSIN={unique_name(number, 900)}", 1)
            yield named
            yield re.sub(r"(?<= )ID=\d+", f"ID={number}", named, count=1)

    assert kept_bytes(lines()) < 12 * MB


def test_headers_of_monitor_packets_with_long_fields_stay_bounded() -> None:
    """xtables-monitor PACKET lines with a 30,000-character interface name, a new trace id each."""
    packet = next(line for line in XTABLES_CAPTURE.read_text().splitlines() if line.startswith("PACKET: "))
    trace_id = packet.split()[2]
    lines = (
        packet.replace(trace_id, f"{number:08x}", 1).replace("IN=eth0", f"IN={unique_name(number, 30_000)}", 1)
        for number in range(1_500)
    )
    assert kept_bytes(lines) < 16 * MB


def test_monitor_step_lines_with_long_rules_stay_bounded() -> None:
    """xtables-monitor TRACE lines whose rule carries a new 8,000-character comment each."""
    step = next(line for line in XTABLES_CAPTURE.read_text().splitlines() if " -j TRACE" in line)
    lines = (
        step.replace(" -j TRACE", f' -m comment --comment "{unique_name(number, 8_000)}" -j TRACE')
        for number in range(3_000)
    )
    assert kept_bytes(lines) < 16 * MB
