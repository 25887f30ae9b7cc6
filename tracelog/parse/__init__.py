"""The parse layer: log lines → `TraceEvent`s (and skips, caveats, bad lines)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tracelog.events import SourceLine, TraceEvent
from tracelog.parse.kernel import (
    MARK,
    UNKNOWN_PREFIX,
    looks_cut,
    other_records,
    parse_kernel_line,
    read_cut_line,
    single_record,
    starts_record,
)
from tracelog.parse.mending import leads, partial_line
from tracelog.parse.nftmonitor import NftMonitorParser
from tracelog.parse.nftrace import NftraceParser
from tracelog.parse.outcome import BadLine, Caveat, Outcome, Skip
from tracelog.parse.tshark import TsharkParser
from tracelog.parse.ulogd import ULOGD_JSON_KEY, JsonObjectLines, parse_json_line, parse_logemu_line
from tracelog.parse.xtables import XtablesMonitorParser, rule_protocol

__all__ = ["BadLine", "Caveat", "LineParser", "Outcome", "Skip", "partial_line", "rule_protocol"]

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
    # (any word for the trace id: the xtables parser says what is wrong with a damaged one)
    r"|(?P<xtables>[ \t]*(?:PACKET|TRACE): \d+ \S+ )"
    r"|(?P<json>[ \t]*\{)"
    # ulogd LOGEMU: a syslog time and host, then the record, with no program tag
    r"|(?P<logemu>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ TRACE: )"
    # tshark on NFLOG: its fields (the prefix, then a tab), its packet tree's prefix, IP header and frame lines
    r"|(?P<tshark>TRACE: [a-z]+:\S+:(?:rule|return|policy):\d+ ?\t"
    r"|[ \t]*Prefix: TRACE: |Internet Protocol Version [46], Src: |Frame \d+: )"
    # nftrace: a packet id, then a step or a packet's summary; a step with its rule (its first versions: no id)
    r"|(?P<nftrace>[0-9a-f]{12} (?:TRACE: |IP6? )|Aggregated packets:|TRACE: [a-z]+:\S+:(?:rule|policy):\d+ +\")"
)

# A record of a format recognised by its start, quoted inside other text:
# after `> `, a line number, a file name (see `tracelog.parse.mending.leads`).
_QUOTED = re.compile(
    r"trace id [0-9a-f]+ |(?:PACKET|TRACE): \d+ [0-9a-f]+ |\{\s*\"|\{[ \t]*$"
    r"|TRACE: [a-z]+:\S+:(?:rule|return|policy):\d+ ?\t|Prefix: TRACE: |Internet Protocol Version [46], Src: "
    r"|[0-9a-f]{12} (?:TRACE: |IP6? )|Aggregated packets:"
)


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
        self._tshark = TsharkParser()
        self._nftrace = NftraceParser()
        self._held: _Held | None = None
        self._json: JsonObjectLines | None = None

    def parse(self, line: SourceLine) -> list[Outcome]:
        """Parse one line into zero or more outcomes.

        A kernel-log record cut at the end of its line (a paste from a
        terminal that wrapped it) is held back, and joined with the lines
        that continue it when that makes it whole.  So is a JSON object
        printed over several lines (`jq .`, a wrapped ulogd record), until
        it closes.
        """
        event = single_record(line, self._year)
        if event is not None:  # the kernel log's one-record line, the commonest of all: never a continuation
            return [event] if self._held is None and self._json is None else [*self.flush(), event]
        if self._json is not None:
            member = self._json.unquoted(line)
            if member is not None and _may_continue_json(member.text) and self._json.add(member):
                return self._release_json() if self._json.closed else []
            return [*self._release_json(), *self.parse(line)]
        return self._parse_line(line, gather=True)

    def _parse_line(self, line: SourceLine, gather: bool) -> list[Outcome]:
        """One line that is no kernel log's one-record line; `gather`: it may start a JSON object over several."""
        released: list[Outcome] = []
        if self._held is not None:
            # a line with a TRACE mark, or the start of another format's record, continues none
            own = MARK in line.text or _FORMATS.match(line.text) is not None
            if not own and self._held.pieces < _MAX_PIECES and self._join(line):
                return released
            released = self.flush()
        match = _FORMATS.match(line.text)
        if match is not None and gather and match.lastgroup == "json":
            self._json = JsonObjectLines.start(line)
            if self._json is not None:
                return released
        if match is not None:
            outcomes = self._dispatch(match.lastgroup, line)
        elif (tree := self._tshark.tree_line(line)) is not None:  # a field of a tshark `-V` tree's frame
            outcomes = tree
        else:
            outcomes = other_records(line, self._year)
            last = outcomes[-1] if outcomes else None
            if isinstance(last, BadLine) and last.origin is line and looks_cut(last):
                self._held = _Held(line, outcomes)
                return released
            if _may_be_quoted(line.text, outcomes):
                quoted = self._quoted(line)
                outcomes = outcomes if quoted is None else quoted  # [] for a record held for lines to come
        return released + outcomes if released else outcomes

    def flush(self) -> list[Outcome]:
        """Release what is held: a record joined if it was made whole, else read as far as it goes."""
        released = self._release_json() if self._json is not None else []
        released += self._tshark.flush()
        released += self._nftrace.flush()
        if self._held is not None:
            held, self._held = self._held, None
            released += held.outcomes if held.whole else read_cut_line(held.line, self._year)
        return released

    def _release_json(self) -> list[Outcome]:
        """A JSON object gathered over lines, read whole; or, if it is no ulogd record over several, line by line."""
        assert self._json is not None
        gathered, self._json = self._json, None
        outcomes = gathered.read()
        if outcomes is not None:
            return outcomes
        return [outcome for line in gathered.lines for outcome in self._parse_line(line, gather=False)]

    def _quoted(self, line: SourceLine) -> list[Outcome] | None:
        """A record of a format known by its start, quoted, read from its start.

        Quoting is `> `, `12: `, a file name from `grep -H` and the like;
        None unless quoting is all that comes before it: a mention of a
        trace id in other text is no record.  Outcomes keep the whole line
        as their origin, columns counted on it.
        """
        text = line.text
        for layers, lead in enumerate((0, *leads(text))):  # an indented code block is quoting too
            start = len(text) - len(text[lead:].lstrip(" \t"))
            kind = _FORMATS.match(text, start)
            if kind is not None:
                record = SourceLine(line.source, line.line, text[start:])
                if kind.lastgroup == "json" and (gathering := JsonObjectLines.start(record, layers)) is not None:
                    self._json = gathering  # a quoted object over several lines: each quoted alike
                    return []
                return [_requoted(outcome, line, start) for outcome in self._dispatch(kind.lastgroup, record)]
        return None

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
            if any(isinstance(outcome, TraceEvent) for outcome in outcomes) and not any(
                isinstance(outcome, BadLine) for outcome in outcomes
            ):
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
        if kind == "tshark":
            return self._tshark.parse(line)
        if kind == "nftrace":
            return self._nftrace.parse(line)
        if kind == "json":
            # other JSON logs (journalctl -o json) stay with the kernel parser, as before
            return list(parse_json_line(line)) if ULOGD_JSON_KEY in line.text else other_records(line, self._year)
        return list(parse_logemu_line(line, self._year))


def _requoted(outcome: Outcome, line: SourceLine, offset: int) -> Outcome:
    """An outcome of a record read without its quoting, given its whole line back.

    (An outcome of a line before, held until this one, keeps its own.)
    """
    if getattr(outcome, "origin", line).line != line.line:
        return outcome
    if isinstance(outcome, TraceEvent):
        return outcome._replace(origin=line)
    if isinstance(outcome, BadLine):
        return BadLine(line, None if outcome.column is None else outcome.column + offset, outcome.reason)
    if isinstance(outcome, Caveat):
        return Caveat(line, outcome.message)
    return outcome


def _may_continue_json(text: str) -> bool:
    """Whether a line may go on with a JSON object begun before: it starts no record of any format.

    A member of its own (`  "oob.prefix": "TRACE: …",`) may hold a TRACE tag.
    """
    return _FORMATS.match(text) is None and (text.lstrip().startswith('"') or not starts_record(text))


def _may_be_quoted(text: str, outcomes: list[Outcome]) -> bool:
    """Whether the kernel parser's reading of a line may be that of a quoted record of another format.

    A line it found no event in, with another format's mark inside; or an
    event whose prefix it did not know (a quoted ulogd LOGEMU line).
    """
    if not outcomes or not isinstance(outcomes[-1], TraceEvent):
        return _QUOTED.search(text) is not None
    first = outcomes[0]
    return isinstance(first, Caveat) and first.message is UNKNOWN_PREFIX
