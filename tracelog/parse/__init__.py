"""The parse layer: log lines → `TraceEvent`s (and skips, caveats, bad lines)."""

from __future__ import annotations

from collections.abc import Iterator

from tracelog.events import SourceLine
from tracelog.parse.kernel import parse_kernel_line
from tracelog.parse.outcome import BadLine, Caveat, Outcome, Skip

__all__ = ["BadLine", "Caveat", "LineParser", "Outcome", "Skip"]


class LineParser:
    """Parses the lines of one run, whatever their format.

    One instance per run, because some formats spread one event over several
    lines (a header line, then step lines that refer to it by trace id).
    `year` completes year-less syslog time stamps.
    """

    def __init__(self, year: int) -> None:
        self._year = year

    def parse(self, line: SourceLine) -> Iterator[Outcome]:
        """Parse one line into zero or more outcomes."""
        return parse_kernel_line(line, self._year)
