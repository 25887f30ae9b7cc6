"""JSON lines: the contract's encoding, fast and exact; timelines: the plain layout is rich's."""

from __future__ import annotations

import copy
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from tests.conftest import RunCli
from tests.outcomes import outcomes
from tests.samples import SAMPLES, trace_samples
from tracelog.correlate import correlate_packets
from tracelog.events import TraceEvent
from tracelog.output.jsonl import json_line, prepare_json_line
from tracelog.output.text import UNWRAPPED_WIDTH, emit, prepare_timeline_text, timeline
from tracelog.records.numbering import packet_records
from tracelog.records.packet import PacketRecord


@pytest.mark.parametrize("sample", trace_samples(), ids=lambda path: str(path.relative_to(SAMPLES)))
def test_json_lines_read_back_as_the_records(sample: Path) -> None:
    events = [o for o in outcomes(sample.read_text().splitlines()) if isinstance(o, TraceEvent)]
    for record in packet_records(correlate_packets(events)):
        line = json_line(record)
        assert line.endswith("\n")
        assert "\n" not in line[:-1]
        assert json.loads(line) == record


def test_what_orjson_refuses_is_still_written() -> None:
    """A mangled field can hold a number beyond 64 bits, a names file a lone surrogate."""
    record = {"ip_id": 2**70, "src_name": "\ud800"}
    assert json.loads(json_line(record)) == record


def _json_variants(record: PacketRecord) -> Iterator[PacketRecord]:
    """A real record, then copies whose texts hold what the numbering looks for, and what orjson refuses."""
    yield record
    tricky = copy.deepcopy(record)
    tricky["src_name"] = tricky["host"] = ',"flow":null,"src_name":'
    tricky["dst_name"], tricky["packet"], tricky["flow"] = '{"packet":7,', 123_456, 98_765
    yield tricky
    refused = copy.deepcopy(tricky)
    refused["dst_name"], refused["steps"][0]["ttl"] = "\ud800", 2**70
    yield refused


@pytest.mark.parametrize("sample", trace_samples(), ids=lambda path: str(path.relative_to(SAMPLES)))
def test_json_lines_made_before_their_numbers_are_the_records_json_lines(sample: Path) -> None:
    """A worker writes a record's JSON line before its packet and flow numbers are known; numbered, it is the same."""
    for record in _sample_records(sample):
        for variant in _json_variants(record):
            unnumbered: PacketRecord = {**variant, "packet": 1, "flow": 0}
            assert prepare_json_line(unnumbered).finish(variant["packet"], variant["flow"]) == json_line(variant)


def _sample_records(sample: Path) -> list[PacketRecord]:
    events = [o for o in outcomes(sample.read_text().splitlines()) if isinstance(o, TraceEvent)]
    return list(packet_records(correlate_packets(events)))


def _variants(record: PacketRecord) -> Iterator[PacketRecord]:
    """A real record, then copies through the other branches: rules (with a control code), names, verdicts."""
    yield record
    ruled = copy.deepcopy(record)
    for number, step in enumerate(ruled["steps"]):
        step["rule"] = f'-A {step["chain"]} -m comment --comment "bell\x07" -j ACCEPT' if number % 3 == 0 else None
        step["verdict"] = ("ACCEPT", "RETURN", None)[number % 3] if number % 3 else "DROP"
        step["kind"] = ("rule", "return", "policy")[number % 3]
        step["mismatch"] = "rule 9 of 3" if number % 4 == 3 else None
        step["in_name"], step["physout_name"] = "nginx-1", "nginx\x082"
    ruled["verdict"], ruled["verdict_at"], ruled["verdict_step"] = "DROP", "x", 1
    ruled["src_name"], ruled["host"] = "nginx-1", "lab\x0chost"
    yield ruled
    policy = copy.deepcopy(ruled)
    policy["steps"][0]["rule"], policy["verdict"] = None, "ACCEPT"
    yield policy


@pytest.mark.parametrize("sample", trace_samples(), ids=lambda path: str(path.relative_to(SAMPLES)))
def test_plain_timelines_are_what_rich_prints_into_a_pipe(sample: Path) -> None:
    """Into a file or pipe, timelines skip rich's layout engine: every sample's packets prove it lays out the same."""
    for record in _sample_records(sample):
        for variant in _variants(record):
            out = io.StringIO()
            emit(Console(file=out, width=UNWRAPPED_WIDTH, highlight=False, force_terminal=False), timeline(variant))
            prepared = prepare_timeline_text(variant)
            assert prepared.finish(variant["packet"], variant["flow"]) == out.getvalue()


@pytest.mark.parametrize("name", ["rsyslog-fileformat.log", "rsyslog-traditional.log", "dnat.dmesg"])
def test_steps_show_elapsed_time_from_whichever_clock_the_lines_carry(name: str, run_cli: RunCli) -> None:
    """rsyslog's RFC 3339 stamps are a wall clock with microseconds: steps are timed from it too."""
    first = run_cli("parse", str(SAMPLES / "lab-legacy" / name)).stdout.split("\n\n")[0].splitlines()
    times = [line.split()[0] for line in first[1:-1]]
    assert times[0] == "+0.000ms"
    assert all(re.fullmatch(r"\+\d+\.\d{3}ms", time) for time in times)
    assert float(times[-1][1:-2]) > 0


@pytest.mark.parametrize("name", ["journalctl.txt", "dnat.dmesg-T"])
def test_a_clock_of_whole_seconds_times_no_step(name: str, run_cli: RunCli) -> None:
    """`journalctl -k` and `dmesg -T` print whole seconds: `+0.000ms` would be a guess."""
    first = run_cli("parse", str(SAMPLES / "lab-legacy" / name)).stdout.split("\n\n")[0].splitlines()
    assert not any(line.startswith("+") for line in first)
