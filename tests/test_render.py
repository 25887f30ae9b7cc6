"""JSON lines: the contract's encoding, fast and exact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.outcomes import outcomes
from tests.samples import SAMPLES, trace_samples
from tracelog.correlate import correlate_packets
from tracelog.events import TraceEvent
from tracelog.record import packet_records
from tracelog.render import json_line


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
