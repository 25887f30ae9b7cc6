"""The parse layer: log lines → `TraceEvent`s (and skips, caveats, bad lines)."""

from __future__ import annotations

from collections.abc import Iterator

from tracelog.events import SourceLine
from tracelog.parse.kernel import parse_kernel_line
from tracelog.parse.outcome import BadLine, Caveat, Outcome, Skip

__all__ = ["BadLine", "Caveat", "Outcome", "Skip", "parse_line"]


def parse_line(line: SourceLine, year: int) -> Iterator[Outcome]:
    """Parse one line of any supported format; `year` completes year-less time stamps."""
    return parse_kernel_line(line, year)
