"""Mending pasted text where a grammar stops: remarks after a record, quoting before it, blanks inside fields.

People paste TRACE lines into issues, chats and mails, and the text suffers
on the way: a `> ` or a line number in front, a `# noqa` or `<-- this one`
behind, a blank slipped into a field (`TT L=63`, `TTL=6 3`) by a mail client
or a terminal.  The grammars read what the kernel and the monitors print,
nothing else; this module takes such a text apart where the grammar stopped
and tries the readings that undo the damage, keeping the one that reads
furthest.  Only lines the grammar could not read come here, so undamaged
lines never pay for it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Generic, NamedTuple, TypeVar

from lark import UnexpectedInput

from tracelog.events import Partial, TraceEvent
from tracelog.parse.fields import FieldError, hidden_value
from tracelog.parse.outcome import BadLine

T = TypeVar("T")

# How many mends one text may take: each is a grammar reading or three, and a
# text needing more is more damage than text.
MENDS_MAX = 8

# A remark written after a record: a comment (`#`, `//`) such as a linter's
# pragma, an arrow (`<-- this one`), `(truncated)`.  No record has these
# (nft's `# handle 7` is its own).
_REMARK = re.compile(
    r"[ \t]+(?:#(?! handle \d)|//|<-+|←|-->?)(?:[ \t].*)?$"
    r"|[ \t]+\((?:truncated|snip(?:ped)?|cut|shortened|trimmed|\.\.\.|…)\)[ \t]*$",
    re.IGNORECASE,
)

# What quoting puts before a line, one layer at a time: Markdown quotes and
# bullets, code comments, table bars, line-number gutters (`12: `, `12│`),
# grep's file names and line numbers (`kern.log:12:`), shell prompts
# (`root@vm:~# `, `$ `).
_LEAD = re.compile(
    r"[ \t]*(?:"
    r">[ \t]?"
    r"|[-*+•][ \t]"
    r"|#[ \t]?"
    r"|//[ \t]?"
    r"|\|[ \t]?"
    r"|\d+[ \t]*[:│|][ \t]?"
    r"|[^\s:\[<]+:[ \t]?(?=\S)"
    r"|[^\s\[]*[$#❯%>][ \t]"
    r")"
)
_LEADS_MAX = 4

_WORD = re.compile(r"\S+")


def remark_start(text: str) -> int | None:
    """Where a remark written after the record starts, if the text ends with one."""
    found = _REMARK.search(text)
    return None if found is None else found.start()


def leads(text: str) -> list[int]:
    """Where the text would start with one, two, ... layers of quoting taken off (each a column, 0-based)."""
    found, at = [], 0
    for _ in range(_LEADS_MAX):
        lead = _LEAD.match(text, at)
        if lead is None or lead.end() == at:
            break
        at = lead.end()
        found.append(at)
    return found


class Mends(NamedTuple):
    """What mending did to a text: the words joined (as read after), and the words left out as unreadable."""

    joined: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()


class Mended(NamedTuple, Generic[T]):
    """A reading of a mended text, the text it was read from and how it was mended."""

    value: T
    text: str
    mends: Mends


Reader = Callable[[str, bool], T]
"""Reads a text, leniently once words were left out of it (a field left out is then no cut line)."""


def _attempt(read: Reader[T], text: str, lenient: bool) -> tuple[T | None, int | None]:
    """The reading of `text`, or where it fails (0-based; past the end where it fails without a place)."""
    try:
        return read(text, lenient), None
    except UnexpectedInput as error:
        return None, max(0, error.column - 1)
    except FieldError as error:
        return None, error.column - 1 if error.column else len(text) + 1


def _word_at(text: str, at: int) -> re.Match[str] | None:
    """The word holding column `at`, or the first one after it."""
    for word in _WORD.finditer(text):
        if word.end() > at:
            return word
    return None


def _joins(text: str, word: re.Match[str]) -> list[tuple[str, int]]:
    """The texts with a blank around the word closed, each with a column of the joined word.

    The blank after the word, the one before it, and the one before the
    word before it: a reading may stop a word after the split
    (`ip dsc p cs0` stops at `cs0`).
    """
    candidates = []
    after = _WORD.search(text, word.end())
    if after is not None:
        candidates.append((text[: word.end()] + text[after.start() :], word.start()))
    start = word.start()
    for _ in range(2):
        gap_start = len(text[:start].rstrip())
        if gap_start == 0:
            break
        candidates.append((text[:gap_start] + text[start:], gap_start - 1))
        start = text.rfind(" ", 0, gap_start) + 1
    return candidates


# a key split by a blank where the first part reads as a word of its own (`URG P=0`)
_SPLIT_KEY = re.compile(r"(?<!\S)([A-Z]{1,8}) +([A-Z][A-Z0-9_]*=\S*)")
_SPLIT_KEYS_MAX = 6


def _split_key(read: Reader[T], text: str, lenient: bool) -> tuple[str, str] | None:
    """The text with a split `KEY=` joined, where that makes it read; and the joined word."""
    for split in list(_SPLIT_KEY.finditer(text))[:_SPLIT_KEYS_MAX]:
        candidate = text[: split.start()] + split[1] + split[2] + text[split.end() :]
        if _attempt(read, candidate, lenient)[1] is None:
            return candidate, split[1] + split[2]
    return None


_NO_READING = 1 << 30


def _damage(value: object) -> int:
    """How much of a reading is doubtful: the names its header's `partial` lists, and the fields no one knows.

    A blank closed in the wrong place makes a field tracelog does not know
    (`ip dsc pcs0`, `URG P=0`) where the right place makes none.
    """
    header = getattr(value, "header", value)
    partial = getattr(header, "partial", None)
    unknown = len(getattr(header, "extra", ()))
    return unknown + (0 if partial is None else sum(len(names) for names in partial))


def mend(text: str, read: Reader[T], droppable: Callable[[str], bool] | None = None) -> Mended[T] | None:
    """Read `text` with `read`, mending it where the reading stops; None if no mend makes it read.

    A remark at the end is taken off first.  Then, at the word where the
    reading stops: a bracket a cut left open is closed; a blank that split
    a field is closed (the word joined to a neighbour, whichever reads
    further, or of two readings the one with less unknown); or, where
    `droppable` allows, the word is left out as unreadable.  A reading that
    fails without a place (a field the format requires is missing) is
    mended only where a key was split before it (`URG P=0`).
    """
    remark = remark_start(text)
    if remark is not None:
        text = text[:remark]
    joined: list[str] = []
    dropped: list[str] = []
    for _ in range(MENDS_MAX):
        value, stop = _attempt(read, text, bool(dropped))
        if stop is None:
            return Mended(value, text, Mends(tuple(joined), tuple(dropped)))  # type: ignore[arg-type]
        step = _mend_at(read, text, stop, bool(dropped))
        if step is not None:
            text, word = step
            if word:
                joined.append(word)
            continue
        word_at = _word_at(text, stop) if stop <= len(text) else None
        if word_at is None or droppable is None or not droppable(word_at[0]):
            return None
        dropped.append(word_at[0])
        text = (text[: word_at.start()].rstrip() + " " + text[word_at.end() :].lstrip()).strip(" ")
    return None


def _mend_at(read: Reader[T], text: str, stop: int, lenient: bool) -> tuple[str, str] | None:
    """One mend where a reading of `text` stopped, as the mended text and the word it made; None if none helps."""
    if stop > len(text):
        return _split_key(read, text, lenient)
    word = _word_at(text, stop)
    if word is None:
        return None
    unclosed = text.count("[") - text.count("]")
    if unclosed > 0 and not text[word.end() :].strip():
        # a line cut (or elided to its end) inside an ICMP error's quoted packet
        closed = text + " ]" * unclosed
        if _attempt(read, closed, lenient)[1] is None:
            return closed, ""
    best: tuple[str, str] | None = None
    best_stop, best_damage = stop, _NO_READING
    for candidate, inside in _joins(text, word):
        value, reached = _attempt(read, candidate, lenient)
        damage = _damage(value) if reached is None else _NO_READING
        better_reading = reached is None and damage < best_damage
        if better_reading or (best_damage == _NO_READING and reached is not None and reached > best_stop):
            best_stop, best_damage = len(candidate) + 2 if reached is None else reached, damage
            found = _WORD.match(candidate, candidate.rfind(" ", 0, inside) + 1)
            best = candidate, found[0] if found else ""
    return best


# what the stderr summary says of a damaged line, one note per kind of damage
_NOTES = (
    ("elided", "fields elided or cut off: the step is read as far as it goes"),
    ("redacted", "values redacted (x.x.x.x, <redacted>): read as unknown"),
    ("repaired", "blanks inside fields closed (TT L=63 read as TTL=63)"),
    ("unreadable", "fields that could not be read: left unknown"),
    ("guessed", "header not shown in full: what it lacks is guessed or unknown"),
)


def damage_notes(partial: Partial) -> list[str]:
    """One note per kind of damage a step's text had (see `Partial`)."""
    return [note for kind, note in _NOTES if getattr(partial, kind)]


# where a pasted record's text starts, after any prefix, in each format
_RECORD_START = re.compile(r"TRACE: |PACKET: |trace id |\{")
_VALUE_WORD = re.compile(r"(?:[A-Z][A-Z0-9_]*=)?(\S+)")


def partial_line(event: TraceEvent) -> BadLine:
    """A step read from damaged text, as a line not read fully: where the damage starts, if it shows, and what it was.

    For `--strict`, which stops at the first line it cannot read fully.
    """
    origin = event.origin
    partial = event.header.partial or Partial()
    start = _RECORD_START.search(origin.text)
    column = None
    for word in _VALUE_WORD.finditer(origin.text, start.end() if start else 0):
        value = word[1]
        keyword = value.isalpha() and value.islower() and value.strip("x")  # nft's `ip`, not a placeholder
        if not keyword and hidden_value(value).how != "unreadable":
            column = word.start(1) + 1
            break
    return BadLine(origin, column, "not read fully: " + "; ".join(damage_notes(partial)))
