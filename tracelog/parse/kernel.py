"""Legacy iptables TRACE lines from a kernel log: dmesg, syslog, journal, kmsg."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, NamedTuple

from lark import Lark, Token, Transformer, UnexpectedInput
from lark.visitors import merge_transformers

from tracelog.events import (
    Header,
    Partial,
    SourceLine,
    Stamp,
    StepKind,
    TraceEvent,
    TraceEventFields,
    new_event,
    new_stamp,
)
from tracelog.parse.fields import Field, FieldError, FieldsTransformer, build_header, field_name
from tracelog.parse.grammar import load_parser
from tracelog.parse.mending import damage_notes, leads, mend
from tracelog.parse.outcome import BadLine, Caveat, Outcome, Skip
from tracelog.parse.shapes import (
    MAC_VALUE,
    NUMBER_VALUE,
    VALUE_START,
    ShapeMemo,
    ValueKind,
    address_kinds,
    address_values,
    mac_kind,
)
from tracelog.wording import TERMINAL_CONTROLS

MARK = "TRACE:"

# Prefilter: where a TRACE tag of a legacy table starts.  It must agree with
# the grammar's `tag` rule (checked by the tests on every sample); anything
# carrying "TRACE:" without such a tag is a look-alike or a damaged tag.
_RECORD = re.compile(r"TRACE:[ \t]*(?:raw|mangle|nat|filter|security):[^\s\x00]+:(?:rule|return|policy):\d")
# A word after the mark that is shaped like a tag, damaged or not: a table name,
# a colon and more (`raw:PREROUTING:polizy:3`, `filter:DOCKER return:2`), or a
# kind, a colon and a digit (`rwa:PREROUTING:policy:3`).  A line with the mark
# and no such word is a look-alike: ebtables' `TRACE: eb:` log prefix, a
# `-j LOG --log-prefix "TRACE: "` line (fields right after the mark), a
# program's own TRACE-level message.
_TAG_WORD = re.compile(
    r"(?:^|(?<=[\s\x00-\x1f\x7f]))(?:raw|mangle|nat|filter|security):\S"  # after a blank, a control or nothing
    r"|(?:^|(?<=[\s:\x00-\x1f\x7f]))(?:rule|return|policy):[\dA-Z]"  # a number, or xtables-monitor's verdict
)
# What stands right after the mark where a tag damaged more than once stands, no
# table or kind word left whole (`f lter:OUTPUT:p\x00olicy:1`): a word or two,
# split by one blank at most, then the first field `IN=`; or alone (ulogd's
# prefix holds the tag and nothing else).  See `_shaped_like_tag`.
_LETTER = re.compile(r"[A-Za-z]")
_TAG_SEGMENT = re.compile(r"[ \t]*([^=\s]+(?:[ \t]+[^=\s]+)?)[ \t]+IN=|[ \t]*([^=\s]+(?:[ \t]+[^=\s]+)?)[ \t]*$")

# a line that ends inside a tag it started (a terminal wrapped it there), or
# inside the family, trace id and tag of an xtables-monitor step; read once
# the controls a paste may have left in it are taken out (_PASTED_CONTROLS)
# (a kernel tag as far as it goes; a monitor's before its handle or verdict, which end it whole)
_CUT_TAG = re.compile(r"TRACE:\s*(?:[a-z]*(?::\S*)?|\d+(?:\s+[0-9a-f]*(?:\s+[a-z]*(?::[^\s:]*){0,2}:?)?)?)\s*$")
# terminal control sequences (CSI, OSC), then what terminals act on but tab and newline (wording.TERMINAL_CONTROLS)
_PASTED_SEQUENCES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?")
_PASTED_CONTROLS = dict.fromkeys(code for code in TERMINAL_CONTROLS if chr(code) not in "\t\n")
UNKNOWN_PREFIX = "prefix not recognised: host and time unknown"
DAMAGED_TAG = "TRACE tag not understood"

# a subsystem tag right before the mark (`ip_tables: TRACE:`): a printk message
_SUBSYSTEM = re.compile(r"\b(?!kernel:)[\w.-]+:[ \t]*$")


# The tag's kind as the grammar's terminal matched it, typed (a lookup: no call on the per-line path).
_STEP_KINDS: dict[str, StepKind] = {"rule": "rule", "return": "return", "policy": "policy"}


class Tag(NamedTuple):
    """A legacy TRACE tag, `table:chain:kind:N`: kernel.lark's `tag`, which tshark's and nftrace's grammars import."""

    table: str
    chain: str
    kind: StepKind
    number: int


def read_tag(table: str, chain: str, kind: str, number: str) -> Tag:
    """A tag from its four words as a grammar or the fast path matched them (which match only the three kinds)."""
    return Tag(table, chain, _STEP_KINDS[kind], int(number))


class TagTransformer(Transformer[Token, Any]):
    """The `tag` rule as a `Tag`, for each grammar that has it."""

    def tag(self, children: list[Token]) -> Tag:
        table, chain, kind, number = map(str, children)
        return read_tag(table, chain, kind, number)


Trace = tuple[Tag, Header]
"""The tag and the header of one record."""


class _Prefix(NamedTuple):
    """The parts of a log prefix, still as text (the year comes later); one per line, so a cheap tuple."""

    host: str | None = None
    uptime: float | None = None
    clock: str | None = None
    clock_kind: str | None = None


@functools.lru_cache(maxsize=4096)
def _wallclock(kind: str, text: str, year: int) -> datetime | None:
    """A log's wall-clock text as a datetime; cached, as consecutive lines share their second."""
    if kind == "ISO_TIME":
        return datetime.fromisoformat(text)
    if kind == "CTIME":
        return datetime.strptime(text.strip("[]"), "%a %b %d %H:%M:%S %Y")
    fmt = "%Y %b %d %H:%M:%S.%f" if "." in text else "%Y %b %d %H:%M:%S"
    try:
        return datetime.strptime(f"{year} {text}", fmt)
    except ValueError:  # Feb 29 in an assumed year that has none
        return None


def _stamp(prefix: _Prefix, year: int) -> Stamp:
    if prefix.clock is None or prefix.clock_kind is None:
        return Stamp(uptime=prefix.uptime)
    clock = _wallclock(prefix.clock_kind, prefix.clock, year)
    assumed = prefix.clock_kind == "SYSLOG_TIME"
    return Stamp(prefix.uptime, clock, assumed_year=assumed and clock is not None)


class KernelTransformer(FieldsTransformer, TagTransformer):
    """Turns the `kernel.lark` rules into plain values.

    The field rules come namespaced from the imported grammar (merged below);
    only `fields` itself keeps its name, hence the inheritance.
    """

    def trace(self, children: list[Any]) -> Trace:
        return children[0], build_header(children[1])

    def kmsg_stamp(self, children: list[Token]) -> _Prefix:
        first = children[0]
        if first.type == "UPTIME":
            return _Prefix(uptime=float(first.strip("[] ")))
        return _Prefix(clock=str(first), clock_kind="CTIME")

    def syslog_header(self, children: list[Any]) -> _Prefix:
        clock, host = children[0], children[1]
        inner = children[-1] if isinstance(children[-1], _Prefix) else _Prefix()
        if clock.type == "UPTIME":
            return _Prefix(host=str(host), uptime=float(clock.strip("[] ")))
        return _Prefix(str(host), inner.uptime, str(clock), clock.type)

    def line(self, children: list[Any]) -> tuple[_Prefix, Trace]:
        return children[0], children[1]

    def prefix(self, children: list[Any]) -> _Prefix:
        parts = [child for child in children if isinstance(child, _Prefix)]
        if parts:
            return parts[0]
        if children and children[0].type == "KMSG_RECORD":
            return _Prefix(uptime=int(children[0].split(",")[2]) / 1e6)
        return _Prefix()


_TRANSFORMER = merge_transformers(KernelTransformer(), logfields=FieldsTransformer())  # type: ignore[no-untyped-call]


def _parser() -> Lark:
    return load_parser("kernel", ("line", "prefix", "trace", "fields"), _TRANSFORMER)


def _parse(text: str, start: str) -> Any:
    return _parser().parse(text, start=start)


# ---- the fast path -------------------------------------------------------------------------------
# The same results as the grammar, found cheaply for the shapes real logs use;
# anything else, and every error, goes to the grammar.  Checked against the
# grammar on every sample line, shifted copies of them and generated lines (tests).

_TAG = re.compile(
    r"[ \t]*(?P<table>raw|mangle|nat|filter|security):(?P<chain>[^\s:\x00]+)"
    r":(?P<kind>rule|return|policy):(?P<number>\d{1,20})(?=[ \t]|$)"
)


@functools.cache
def _prefix_pattern() -> re.Pattern[str]:
    """The usual prefixes as one regex, made of the grammar's own terminal patterns."""
    parser = _parser()

    def term(name: str) -> str:
        return f"(?:{parser.get_terminal(name).pattern.to_regexp()})"

    blank = r"[ \t]*"
    caller = f"(?:{term('CALLER')}{blank})?"
    return re.compile(
        rf"{blank}(?:{term('PRIO')}{blank})?(?:"
        rf"(?P<uptime>{term('UPTIME')}){blank}{caller}"
        rf"|(?P<ctime>{term('CTIME')}){blank}{caller}"
        rf"|(?:(?P<syslog>{term('SYSLOG_TIME')})|(?P<iso>{term('ISO_TIME')})){blank}(?P<host>{term('HOST')}){blank}"
        rf"{term('PROGRAM')}{blank}(?:(?P<inner>{term('UPTIME')}){blank}{caller})?"
        rf"|(?P<kmsg>{term('KMSG_RECORD')}){blank}"
        rf")?"
    )


@functools.cache
def _record_pattern() -> re.Pattern[str]:
    """A usual prefix, the mark and the tag: the start of a line that holds one record."""
    return re.compile(_prefix_pattern().pattern + MARK + _TAG.pattern)


def _fast_prefix(text: str) -> _Prefix | None:
    match = _prefix_pattern().fullmatch(text)
    return None if match is None else _matched_prefix(match)


def _matched_prefix(match: re.Match[str]) -> _Prefix:
    """The prefix the groups of `_prefix_pattern` (alone or inside `_record_pattern`) found."""
    uptime, ctime, syslog, iso, host, inner, kmsg = match.group(
        "uptime", "ctime", "syslog", "iso", "host", "inner", "kmsg"
    )
    if uptime:
        return _Prefix(uptime=float(uptime.strip("[] ")))
    if ctime:
        return _Prefix(clock=ctime, clock_kind="CTIME")
    if syslog or iso:
        kind = "SYSLOG_TIME" if syslog else "ISO_TIME"
        return _Prefix(host, float(inner.strip("[] ")) if inner else None, syslog or iso, kind)
    if kmsg:
        return _Prefix(uptime=int(kmsg.split(",")[2]) / 1e6)
    return _Prefix()


def grammar_header(text: str) -> Header | None:
    """The header the grammar reads in a field text (what follows the tag); None if it cannot."""
    try:
        return build_header(_parse(text, "fields"))
    except (UnexpectedInput, FieldError):
        return None  # the whole trace goes to the grammar, which says where and why


# What differs between the field texts of packets of one flow, or of a scan: the
# decimal values (ids, lengths, ports, sequence numbers; not ICMP `TYPE=`, which
# decides which fields a line must have), the option bytes, which carry TCP
# timestamps, the addresses and the MAC header.  The `=` or `(` before a value
# is consumed with it; the blank or `)` after it stays, so the texts alone tell
# where which kind of value was.
FIELD_VALUES = re.compile(
    rf"[=(]{VALUE_START}(?:(?<==)(?<!TYPE=)({NUMBER_VALUE})(?![^ \t])|(?<=OPT \()([0-9A-Fa-f]+)(?=\))"
    rf"|{address_values('SRC=', 'DST=')}(?![^ \t])|(?<=MAC=)({MAC_VALUE})(?![^ \t]))"
)
FIELD_VALUE_KINDS = (
    ValueKind("=", NUMBER_VALUE),
    ValueKind("(", "[0-9A-Fa-f]+"),
    *address_kinds("="),
    mac_kind("="),
)
_FIELDS = ShapeMemo(FIELD_VALUES, FIELD_VALUE_KINDS, grammar_header)


def _fast_trace(text: str, start: int, end: int) -> Trace | None:
    tag = _TAG.match(text, start, end)
    return None if tag is None else _tagged_trace(tag, end)


def _tagged_trace(tag: re.Match[str], end: int) -> Trace | None:
    """The trace whose tag `tag` matched (its named groups), with the fields after it up to `end`."""
    header = _FIELDS.header(tag.string[tag.end() : end])
    if header is None:
        return None
    return read_tag(*tag.group("table", "chain", "kind", "number")), header


def trace_event(trace: Trace, prefix: _Prefix, origin: SourceLine, year: int) -> TraceEvent:
    """The step of a record in the kernel logger's words (a kernel log's, ulogd LOGEMU's), with its host and time."""
    tag, header = trace
    return TraceEvent(
        table=tag.table,
        chain=tag.chain,
        kind=tag.kind,
        header=header,
        rulenum=tag.number,
        host=prefix.host,
        stamp=_stamp(prefix, year),
        origin=origin,
    )


def _error(origin: SourceLine, offset: int, error: Exception) -> BadLine:
    if isinstance(error, UnexpectedInput):
        found = origin.text[offset + error.column - 1 : offset + error.column + 11].split(" ")[0]
        return BadLine(origin, offset + error.column, f"unexpected {found!r}" if found else "line ends early")
    column = getattr(error, "column", None)
    return BadLine(origin, offset + column if column else None, str(error))


def _parse_trace(origin: SourceLine, start: int, end: int) -> tuple[Any, BadLine | None]:
    """Parse the trace between `start` and `end`; on failure, say where."""
    fast = _fast_trace(origin.text, start, end)
    if fast is not None:
        return fast, None
    text = origin.text[start:end]
    try:
        return _parse(text, "trace"), None
    except (UnexpectedInput, FieldError) as error:
        return None, _error(origin, start, error)


def _read_fields(text: str) -> list[Field]:
    fields: list[Field] = _parse(text, "fields")
    return fields


def mended_trace(text: str, cut: bool, read_fields: Callable[[str], list[Field]]) -> Trace | None:
    """A trace whose fields the grammar could not read as they are, mended (see `tracelog.parse.mending`).

    `text` starts at the tag; `read_fields` reads the fields after it (the
    kernel log's, or ulogd's spellings of them).  The header's `partial`
    names the fields mended and left out; a record that only ends early is
    no business of mending unless it is `cut`.
    """
    tag = _TAG.match(text)
    if tag is None:
        return None

    def read(fields: str, lenient: bool) -> Header:
        return build_header(read_fields(fields), cut=cut or lenient)

    mended = mend(text[tag.end() :], read, droppable=lambda word: True)
    if mended is None:
        return None
    header = mended.value
    joined, dropped = mended.mends
    if joined or dropped:
        fields = mended.text

        def name(word: str) -> str:
            at = fields.find(word)
            return field_name(word, 0 <= fields.find("PROTO=") < at)

        unreadable = tuple(dict.fromkeys(name(word) for word in dropped))
        note = Partial(repaired=tuple(dict.fromkeys(name(word) for word in joined)), unreadable=unreadable)
        partial = note.merge(header.partial)
        partial = partial._replace(elided=tuple(field for field in partial.elided if field not in unreadable))
        header = header._replace(partial=partial)
    return read_tag(*tag.group("table", "chain", "kind", "number")), header


def _parse_prefix(text: str) -> _Prefix | None:
    fast = _fast_prefix(text)
    if fast is not None:
        return fast
    try:
        prefix: _Prefix = _parse(text, "prefix")
    except UnexpectedInput:
        return None
    return prefix


def _quoted_prefix(text: str) -> _Prefix | None:
    """The prefix of a quoted line: the log's own after the quoting (`> `, `12: `, `kern.log:`) is taken off."""
    for start in leads(text):
        prefix = _parse_prefix(text[start:])
        if prefix is not None:
            return prefix
    return None


def looks_cut(bad: BadLine) -> bool:
    """Whether a bad record failed only at its end, as a line wrapped by a terminal does."""
    text = bad.origin.text.rstrip()
    if bad.column is None:
        return bad.reason.startswith("line ends early")
    return bad.column > text.rfind(" ") + 1 or bad.reason == "line ends early"


def starts_record(text: str) -> bool:
    """Whether a line holds a record whose tag is whole (the prefilter of the kernel log's and LOGEMU's records)."""
    return _RECORD.search(text) is not None


def parse_whole_line(origin: SourceLine, year: int) -> TraceEvent | None:
    """Parse a line with the grammar's `line` rule in one go (None if it does not parse).

    The reference the split fast path of `parse_kernel_line` is tested against.
    """
    try:
        prefix, trace = _parse(origin.text, "line")
    except (UnexpectedInput, FieldError):
        return None
    return trace_event(trace, prefix, origin, year)


def parse_kernel_line(origin: SourceLine, year: int) -> list[Outcome]:
    """Classify and parse one kernel-log line.

    Gives one outcome per record: usually one event; a `Skip` for other
    messages and look-alikes; a `BadLine` for a TRACE record that does not
    parse; a `Caveat` beside an event whose prefix was not recognised.  Two
    records joined on one line (a lost newline) give two events when the
    first one's fields are complete.
    """
    event = single_record(origin, year)
    return [event] if event is not None else other_records(origin, year)


def other_records(origin: SourceLine, year: int) -> list[Outcome]:
    """`parse_kernel_line` for a line `single_record` already turned down."""
    return list(_records(origin, year))


def single_record(origin: SourceLine, year: int) -> TraceEvent | None:
    """The event of a line holding one record with a usual prefix, as nearly every line does.

    None for anything else: `parse_kernel_line` then says what the line is.
    A line that starts with the mark (after blanks) has no prefix to read:
    xtables-monitor's step lines look so, and the general path takes the rare
    bare kernel record.

    The general path's steps (`_tagged_trace`, `trace_event`) written out in one
    function: it runs for every line of a big log, where each call saved shows.
    """
    text = origin.text
    if text.count(MARK) != 1 or text.lstrip(" \t").startswith(MARK):  # most other lines end here, before any regex
        return None
    record = _record_pattern().match(text)
    if record is None:
        return None
    header = _FIELDS.header(text[record.end() :])
    if header is None or header.partial is not None:
        return None
    table, chain, kind, number, uptime = record.group("table", "chain", "kind", "number", "uptime")
    if uptime:  # dmesg: the uptime is the whole prefix
        host, stamp = None, new_stamp(Stamp, (float(uptime.strip("[] ")), None, False))
    else:
        prefix = _matched_prefix(record)
        host, stamp = prefix.host, _stamp(prefix, year)
    fields: TraceEventFields = (
        table,
        chain,
        _STEP_KINDS[kind],
        header,
        int(number),
        None,
        host,
        stamp,
        None,
        None,
        None,
        None,
        None,
        origin,
    )
    return new_event(TraceEvent, fields)


def _records(origin: SourceLine, year: int, cut: bool = False) -> Iterator[Outcome]:
    """Every record of any line, look-alikes, damage and joins included (see `parse_kernel_line`).

    With `cut`, the line's last record is known to end early: it is read as
    far as it goes (see `read_cut_line`).
    """
    text = origin.text
    starts = [match.start() for match in _RECORD.finditer(text)]
    if not starts:
        yield Skip.OTHER if MARK not in text else read_tagless_line(origin)
        return
    prefix = _parse_prefix(text[: starts[0]]) or _quoted_prefix(text[: starts[0]])
    if prefix is None:
        if _printk_subsystem(text[: starts[0]]):
            yield Skip.LOOKALIKE
            return
        yield Caveat(origin, UNKNOWN_PREFIX)
        prefix = _Prefix()
    for index, start in enumerate(starts):
        body = start + len(MARK)
        end = starts[index + 1] if index + 1 < len(starts) else len(text)
        outcomes, next_prefix = _record(origin, body, end, cut)
        for outcome in outcomes:
            if isinstance(outcome, BadLine | Caveat):
                yield outcome
            else:
                event = trace_event(outcome, prefix, origin, year)
                if event.header.partial is not None:
                    yield from (Caveat(origin, note) for note in damage_notes(event.header.partial))
                yield event
        if end < len(text):
            prefix = _parse_prefix(text[next_prefix:end]) or _Prefix()


def _printk_subsystem(before: str) -> bool:
    """Whether what comes before the mark is a log prefix, then a subsystem's tag (`ip_tables: `): a printk message.

    Not a prefix damaged into something that ends like one (`kern\x1bel: `).
    """
    subsystem = _SUBSYSTEM.search(before)
    return subsystem is not None and _parse_prefix(before[: subsystem.start()]) is not None


def tag_start(text: str) -> int | None:
    """Where the tag after the first TRACE mark of `text` starts, if a word after it is shaped like a tag.

    The tag may be damaged (see `_TAG_WORD`); None for a look-alike.
    """
    mark = text.find(MARK)
    if mark < 0:
        return None
    start = mark + len(MARK)
    rest = text[start:]
    return start if _TAG_WORD.search(rest) is not None or _shaped_like_tag(rest) else None


def _shaped_like_tag(rest: str) -> bool:
    """Whether what follows a mark is a tag damaged past its words: `table:chain:kind:N` in shape.

    Colon-separated pieces, none empty, the first with a letter (a table's
    name), the last ending in a digit (the rule number): three colons, or two
    where a damage took one and the first field follows.  A program's message
    (`TRACE: 12:30:45 entering`, `TRACE: [::1]:53`, `TRACE: a:b:c IN=x`) is
    none of these.
    """
    found = _TAG_SEGMENT.match(rest)
    if found is None:
        return False
    segment, colons = (found[1], 2) if found[1] is not None else (found[2], 3)
    pieces = segment.split(":")
    return len(pieces) > colons and all(pieces) and _LETTER.search(pieces[0]) is not None and pieces[-1][-1].isdigit()


def _without_controls(text: str) -> str:
    """A line with the controls a paste may have left in it taken out (see `_PASTED_CONTROLS`)."""
    return text if text.isprintable() else _PASTED_SEQUENCES.sub("", text).translate(_PASTED_CONTROLS)


def read_tagless_line(origin: SourceLine) -> BadLine | Skip:
    """A line with the TRACE mark and no whole tag: a tag cut at the end of the line, a damaged one, or a look-alike."""
    if _CUT_TAG.search(_without_controls(origin.text)) is not None:
        return BadLine(origin, origin.text.find(MARK) + 1, "line ends early")
    return _damaged_tag(origin) or Skip.LOOKALIKE


def _damaged_tag(origin: SourceLine) -> BadLine | None:
    """A line whose tag starts like a TRACE tag and is not one: where it fails and why; None for a look-alike."""
    start = tag_start(origin.text)
    if start is None:
        return None
    try:
        _parse(origin.text[start:], "trace")
    except (UnexpectedInput, FieldError) as error:
        failed = _error(origin, start, error)
        return BadLine(origin, failed.column, f"{DAMAGED_TAG}: {failed.reason}")
    return BadLine(origin, start + 1, DAMAGED_TAG)


def _record(origin: SourceLine, body: int, end: int, cut: bool) -> tuple[list[Trace | BadLine | Caveat], int]:
    """The trace of the record whose fields start at `body` and whose line or next record starts at `end`.

    With notes before it, or a bad line; and where the next record's prefix
    starts.  Another record's prefix may trail this one's fields (a lost
    newline); a record damaged in a paste is mended, and one another
    record follows on its line was cut there.
    """
    text = origin.text
    trace, bad = _parse_trace(origin, body, end)
    next_prefix = end
    notes: list[Trace | BadLine | Caveat] = []
    if bad is not None and end < len(text):
        next_prefix = _trailing_prefix_start(text, body, end)
        trace, still_bad = _parse_trace(origin, body, next_prefix)
        if still_bad is None:
            return [Caveat(origin, "two records on one line"), trace], next_prefix
    if bad is not None:
        joined = end < len(text)
        trace = mended_trace(text[body:next_prefix], cut or joined, _read_fields)
        if trace is None:
            return [bad], next_prefix
        if joined:
            notes.append(Caveat(origin, "two records on one line"))
    return [*notes, trace], next_prefix


_PREFIX_WORDS = 10


def _trailing_prefix_start(text: str, body: int, end: int) -> int:
    """Where the longest log prefix that ends at `end` starts (`end` if none).

    Only used for the rare line that holds two records: the words before the
    second record's mark are tried as a prefix, longest first wins.
    """
    start, cut = end, end
    for _ in range(_PREFIX_WORDS):
        cut = text.rfind(" ", body, cut - 1)
        if cut < body:
            break
        if text[cut + 1 : end].strip() and _parse_prefix(text[cut + 1 : end]) is not None:
            start = cut + 1
    return start


def read_cut_line(origin: SourceLine, year: int) -> list[Outcome]:
    """A kernel-log line whose last record ends early and that no later line continued, read as far as it goes.

    Its step keeps what the line shows; the fields after the cut are
    unknown, and its header's `partial` names them as elided.
    """
    return list(_records(origin, year, cut=True))
