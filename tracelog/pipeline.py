"""The whole run: inputs → lines → events → packets, with what was skipped on the way."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import NoReturn

from tracelog.correlate import DEFAULT_WINDOW, Correlator, Packet
from tracelog.errors import BadLineError, InputError
from tracelog.events import SourceLine, TraceEvent
from tracelog.parse import BadLine, Caveat, LineParser, Outcome, Skip, partial_line
from tracelog.ruleset import Rulesets
from tracelog.sources import MAX_LINE_BYTES, LongLine, read_source

EXAMPLES_KEPT = 5
# Kinds of note told apart: their messages can name what the log said (a
# chain the ruleset lacks), and a run's stats must not grow with the input.
CAVEAT_KINDS_KEPT = 20
OTHER_CAVEATS = f"notes of other kinds (the first {CAVEAT_KINDS_KEPT} kinds are told apart)"
# How a line too long to read shows it was meant as a TRACE line: a mark of
# any format near its start (the kernel log's and the monitors'), damaged after
# it or not.
_TRACE_MARK = re.compile(r"TRACE:|trace id |PACKET: \d")
_HEAD_SHOWN = 64  # characters of a long line's start shown in its report
LONG_LINE_SKIPPED = f"longer than {MAX_LINE_BYTES:,} bytes, and no TRACE line by its start: not read"


@dataclass(frozen=True, slots=True)
class ParseOptions:
    """How to read the inputs.

    `idle` is how long a live stream may stay silent before its open packets
    are printed; `year` completes RFC 3164 time stamps, which have none;
    `rulesets` name the rules behind legacy steps.
    """

    idle: float = 1.0
    year: int = field(default_factory=lambda: date.today().year)
    strict: bool = False
    window: int = DEFAULT_WINDOW
    rulesets: Rulesets | None = None


@dataclass(slots=True)
class RunStats:
    """What a run read, understood and skipped: the stderr summary and exit code."""

    lines: int = 0
    events: int = 0
    packets: int = 0
    skipped: Counter[Skip] = field(default_factory=Counter)
    bad: int = 0
    bad_examples: list[BadLine] = field(default_factory=list)
    caveats: Counter[str] = field(default_factory=Counter)
    caveat_examples: dict[str, str] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)

    def note_bad(self, bad: BadLine) -> None:
        self.bad += 1
        if len(self.bad_examples) < EXAMPLES_KEPT:
            self.bad_examples.append(bad)

    def note_caveat(self, caveat: Caveat) -> None:
        self._count_caveat(caveat.message, 1, f"{caveat.origin.source}:{caveat.origin.line}")

    def _count_caveat(self, message: str, count: int, where: str) -> None:
        if message not in self.caveats and len(self.caveats) >= CAVEAT_KINDS_KEPT:
            message = OTHER_CAVEATS
        self.caveats[message] += count
        self.caveat_examples.setdefault(message, where)

    def add(self, later: RunStats) -> None:
        """Count in what a run over the lines after these counted (see `tracelog.parallel`)."""
        self.lines += later.lines
        self.events += later.events
        self.packets += later.packets
        self.skipped += later.skipped
        self.bad += later.bad
        self.bad_examples += later.bad_examples[: EXAMPLES_KEPT - len(self.bad_examples)]
        for message, count in later.caveats.items():
            self._count_caveat(message, count, later.caveat_examples[message])
        self.unreadable += later.unreadable


def trace_packets(inputs: Sequence[str], options: ParseOptions, stats: RunStats) -> Iterator[Packet]:
    """Yield each packet of the named inputs (`-` is stdin) once it is complete."""
    return correlate_lines(_readable_lines(inputs, options.idle / 4, stats), options, stats)


def _readable_lines(inputs: Sequence[str], tick: float, stats: RunStats) -> Iterator[SourceLine | None]:
    """The lines of every input in turn; one that cannot be read is noted and passed over.

    Like grep: a missing file or a gzip stream cut short (a log rotated while
    copied) costs that file, or its tail, not the analysis of the others.
    """
    for name in inputs:
        try:
            yield from read_source(name, tick)
        except InputError as error:
            stats.unreadable.append(str(error))


def correlate_lines(lines: Iterable[SourceLine | None], options: ParseOptions, stats: RunStats) -> Iterator[Packet]:
    """Yield each packet of a line stream once it is complete, counting into `stats`.

    A `None` in the stream is a clock tick from a live source: packets whose
    last line arrived more than `options.idle` seconds ago are complete.
    Raises `BadLineError` on the first unparsable TRACE line with `strict`.
    """
    builder = PacketBuilder(options)
    for line in lines:
        packets = builder.tick(stats) if line is None else builder.feed(line, stats)
        stats.packets += len(packets)
        yield from packets
    packets = builder.finish(stats)
    stats.packets += len(packets)
    yield from packets


class PacketBuilder:
    """One run's parser and correlator: lines in, complete packets out.

    Each call names the stats to count into, so that a caller reading lines
    it does not report on (a worker's lead-in, see `tracelog.parallel`) can
    count them apart.  `stats.packets` is the caller's to count.
    """

    def __init__(self, options: ParseOptions) -> None:
        self.options = options
        self.parser = LineParser(options.year)
        self.correlator = Correlator(options.window)

    def feed(self, line: SourceLine, stats: RunStats) -> list[Packet]:
        """One more line; the packets it completed."""
        # `read(line)`, its commonest case written out: a call saved on every line of a big log
        outcomes = self.parser.parse(line) if type(line) is SourceLine else self.read(line)
        return self.feed_parsed(outcomes, stats)

    def read(self, line: SourceLine) -> list[Outcome]:
        """What one line gives, as the parser reads it; a line too long to read, as `long_line_outcomes` tells."""
        if isinstance(line, LongLine):
            return [*self.parser.flush(), *long_line_outcomes(line)]
        return self.parser.parse(line)

    def feed_parsed(self, outcomes: list[Outcome], stats: RunStats) -> list[Packet]:
        """One more line, as `parser` read it (for a caller that looks at the outcomes first)."""
        stats.lines += 1
        return self.absorb(outcomes, stats)

    def tick(self, stats: RunStats) -> list[Packet]:
        """A quiet moment on a live source: a held wrapped record will not be continued, idle packets are done."""
        return self.absorb(self.parser.flush(), stats) + self.correlator.expire(time.monotonic(), self.options.idle)

    def finish(self, stats: RunStats) -> list[Packet]:
        """The end of the input: every open packet is complete."""
        return self.absorb(self.parser.flush(), stats) + self.correlator.finish()

    def absorb(self, outcomes: Iterable[Outcome], stats: RunStats) -> list[Packet]:
        """Count each outcome and feed the events; return the packets that completed."""
        options, correlator = self.options, self.correlator
        packets: list[Packet] = []
        for outcome in outcomes:
            if isinstance(outcome, TraceEvent):
                if options.strict and outcome.header.partial is not None:
                    _stop_at(partial_line(outcome))  # --strict stops at a line it could not read fully
                stats.events += 1
                event = options.rulesets.annotate(outcome) if options.rulesets else outcome
                if event.mismatch:
                    stats.note_caveat(Caveat(event.origin, f"ruleset does not fit: {event.mismatch}"))
                packets += correlator.feed(event, time.monotonic())
            elif isinstance(outcome, Skip):
                stats.skipped[outcome] += 1
            elif isinstance(outcome, Caveat):
                stats.note_caveat(outcome)
            else:
                if options.strict:
                    _stop_at(outcome)
                stats.note_bad(outcome)
        return packets


def _stop_at(bad: BadLine) -> NoReturn:
    """`--strict`: the run ends at this line, shown with a caret under where reading stopped."""
    raise BadLineError(f"{bad.location}: {bad.reason}\n{bad.with_caret()}")


def long_line_outcomes(line: LongLine) -> list[Outcome]:
    """A line longer than `MAX_LINE_BYTES`, which was not read: a bad TRACE line, or a note and a skip.

    Its start tells what it was meant to be.  With a TRACE mark of any
    format in the start kept (`tracelog.sources.HEAD_BYTES`), it is a TRACE
    line not understood, like any other: listed, exit status 4
    (`BAD_LINES`), `--strict` stops at it.  Anything else is skipped as
    other lines are, with a note.  The report gives its place, its length
    and its first characters, control characters escaped; never the line.
    """
    head = line.text[:_HEAD_SHOWN]
    cut = len(line.text) > _HEAD_SHOWN or line.length > len(line.text.encode())
    origin = SourceLine(line.source, line.line, repr(head)[1:-1] + ("…" if cut else ""))
    if _TRACE_MARK.search(line.text):
        reason = f"line of {line.length:,} bytes, longer than the {MAX_LINE_BYTES:,} a line may have: not read"
        return [BadLine(origin, None, f"{reason} (it starts {head!r})")]
    return [Caveat(origin, LONG_LINE_SKIPPED), Skip.OTHER]
