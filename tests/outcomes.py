"""Parsing whole captures in tests: every line through one `LineParser`, as a run does."""

from __future__ import annotations

from pathlib import Path

from tracelog.events import SourceLine, TraceEvent
from tracelog.parse import LineParser


def outcomes(lines: list[str], source: str = "x.log") -> list[object]:
    """The outcomes of `lines` read as one input (held records flushed at the end)."""
    parser = LineParser(year=2026)
    found = [o for number, text in enumerate(lines, start=1) for o in parser.parse(SourceLine(source, number, text))]
    return [*found, *parser.flush()]


def sample_events(path: Path) -> list[TraceEvent]:
    """The events of a capture that must hold nothing but events."""
    found = outcomes(path.read_text().splitlines(), str(path))
    events = [o for o in found if isinstance(o, TraceEvent)]
    assert events == found, [o for o in found if not isinstance(o, TraceEvent)]
    return events


def event_at(path: Path, line: int) -> TraceEvent:
    """The one event of a capture that comes from line `line`."""
    (event,) = [e for e in sample_events(path) if e.origin.line == line]
    return event
