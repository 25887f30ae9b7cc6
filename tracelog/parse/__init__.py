"""The parse layer: log lines → `TraceEvent`s (and skips, caveats, bad lines)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tracelog.events import SourceLine
from tracelog.parse.kernel import looks_cut, other_records, parse_kernel_line, single_record, starts_record
from tracelog.parse.nftmonitor import NftMonitorParser
from tracelog.parse.outcome import BadLine, Caveat, Outcome, Skip
from tracelog.parse.ulogd import parse_json_line, parse_logemu_line
from tracelog.parse.xtables import XtablesMonitorParser, rule_protocol

__all__ = ["BadLine", "Caveat", "LineParser", "Outcome", "Skip", "rule_protocol"]

# A 300-character record wrapped at 40 columns spans 8 lines.
_MAX_PIECES = 8


@dataclass(frozen=True, slots=True)
class _Held:
    """A kernel-log record cut at the end of its line (or joined whole), waiting for more."""

    line: SourceLine
    outcomes: list[Outcome]
    pieces: int = 1
    whole: bool = False


# How each format's lines start; anything else is a kernel log line.  A kernel
# log's usual one-record line is recognised before this is tried (no other
# format's line is one: the tests read every sample both ways).
_FORMATS = re.compile(
    r"(?P<nft>trace id )"
    r"|(?P<xtables>[ \t]*(?:PACKET|TRACE): \d+ [0-9a-f]+ )"
    r"|(?P<json>[ \t]*\{)"
    # ulogd LOGEMU: a syslog time and host, then the record, with no program tag
    r"|(?P<logemu>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ TRACE: )"
)

# a key every ulogd JSON record of an NFLOG rule with a prefix has
_ULOGD_JSON = '"oob.prefix"'


class LineParser:
    """Parses the lines of one run, whatever their format, line by line.

    One instance per run, because some formats spread one event over several
    lines (a header line, then step lines that refer to it by trace id).
    Each line's format is recognised from its own start, so one input may
    mix formats (`cat dmesg.log xtables.log | tracelog parse`).  `year`
    completes year-less syslog time stamps.
    """

    def __init__(self, year: int) -> None:
        self._year = year
        self._xtables = XtablesMonitorParser()
        self._nft = NftMonitorParser()
        self._held: _Held | None = None

    def parse(self, line: SourceLine) -> list[Outcome]:
        """Parse one line into zero or more outcomes.

        A kernel-log record cut at the end of its line (a paste from a
        terminal that wrapped it) is held back, and joined with the lines
        that continue it when that makes it whole.
        """
        event = single_record(line, self._year)
        if event is not None:  # the kernel log's one-record line, the commonest of all: never a continuation
            return [event] if self._held is None else [*self.flush(), event]
        released: list[Outcome] = []
        if self._held is not None:
            if not starts_record(line.text) and self._held.pieces < _MAX_PIECES and self._join(line):
                return released
            released = self.flush()
        match = _FORMATS.match(line.text)
        if match is not None:
            outcomes = self._dispatch(match.lastgroup, line)
        else:
            outcomes = other_records(line, self._year)
            last = outcomes[-1] if outcomes else None
            if isinstance(last, BadLine) and last.origin is line and looks_cut(last):
                self._held = _Held(line, outcomes)
                return released
        return released + outcomes if released else outcomes

    def flush(self) -> list[Outcome]:
        """Release a held record: joined if it was made whole, else its bad line as it was."""
        if self._held is None:
            return []
        held, self._held = self._held, None
        return held.outcomes

    def _join(self, line: SourceLine) -> bool:
        """Take `line` as the continuation of the held record, if it fits.

        A joined record that parses is still held: the next line may carry
        its optional last fields (UID=, GID=, MARK=), and the longest whole
        record wins.
        """
        assert self._held is not None
        held = self._held
        for glue in ("", " "):
            text = held.line.text.rstrip("\r") + glue + line.text
            joined = SourceLine(held.line.source, held.line.line, text)
            outcomes = parse_kernel_line(joined, self._year)
            last = outcomes[-1] if outcomes else None
            if not any(isinstance(outcome, BadLine) for outcome in outcomes):
                note = Caveat(joined, "a record wrapped over several lines was joined")
                self._held = _Held(joined, [note, *outcomes], held.pieces + 1, whole=True)
                return True
            if not held.whole and isinstance(last, BadLine) and looks_cut(last):
                self._held = _Held(joined, outcomes, held.pieces + 1)
                return True
        return False

    def _dispatch(self, kind: str | None, line: SourceLine) -> list[Outcome]:
        """A line of one of the netlink-era formats, by the name its start matched."""
        if kind == "nft":
            return self._nft.parse(line)
        if kind == "xtables":
            return self._xtables.parse(line)
        if kind == "json":
            # other JSON logs (journalctl -o json) stay with the kernel parser, as before
            return list(parse_json_line(line)) if _ULOGD_JSON in line.text else other_records(line, self._year)
        return list(parse_logemu_line(line, self._year))
