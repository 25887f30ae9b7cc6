"""Legacy TRACE records as tshark decodes them from NFLOG: each record's step, with the addresses tshark shows.

With nfnetlink_log as the kernel's log backend, TRACE records go to NFLOG
group 0, where `tshark -i nflog` reads them: the prefix is the kernel's tag
(`TRACE: raw:PREROUTING:policy:2`), the packet is decoded by tshark.  People
paste its fields (`-T fields -e nflog.prefix -e ip`), one line a record, or
its packet tree (`-V`), where the prefix and the IP header's summary are
lines of their own: a prefix waits for its IP header's line until the next
frame starts.  Of the packet, only the addresses are read; the step's
header says the rest is not shown (`partial`), and the stderr summary says
it once.
"""

from __future__ import annotations

from typing import Any, NamedTuple, cast

from lark import Token, Transformer, UnexpectedInput

from tracelog.events import Partial, SourceLine, StepKind, TraceEvent
from tracelog.parse.fields import Field, build_header, ip_address
from tracelog.parse.grammar import load_parser
from tracelog.parse.mending import damage_notes, mend
from tracelog.parse.netlink import bad_line
from tracelog.parse.outcome import Caveat, Outcome, Skip

ADDRESSES_ONLY = "tshark's rendering: the chain path and the addresses where shown, the rest of the packet unknown"

Tag = tuple[str, str, str, int]
Addresses = tuple[str, str]


class _FieldsLine(NamedTuple):
    tag: Tag
    addresses: Addresses | None


class _TreePrefix(NamedTuple):
    tag: Tag


class _IpHeader(NamedTuple):
    addresses: Addresses


class _Frame(NamedTuple):
    pass


class _DamagedLine(NamedTuple):
    tag: Tag


_Line = _FieldsLine | _TreePrefix | _IpHeader | _Frame | _DamagedLine
_FIELDS_START = ("fields_line", "tree_prefix", "ip_header", "frame", "damaged_line")
# what a fields line that could not be read leaves unknown beyond what tshark does not show
_UNREAD = Partial(unreadable=("src", "dst"))


class _TsharkTransformer(Transformer[Token, Any]):
    """Turns the `tshark.lark` rules into one of the line kinds above."""

    def tag(self, children: list[Token]) -> Tag:
        table, chain, kind, number = children
        return str(table), str(chain), str(kind), int(number)

    def fields_line(self, children: list[Any]) -> _FieldsLine:
        tag, *columns = children
        headers = [column for column in columns if isinstance(column, _IpHeader)]
        if headers:
            return _FieldsLine(tag, headers[0].addresses)
        match [column for column in columns if isinstance(column, str)]:
            case [src, dst, *_]:  # `-e ip.src -e ip.dst -e ipv6.src -e ipv6.dst`: one family's pair shown
                return _FieldsLine(tag, (src, dst))
            case _:
                return _FieldsLine(tag, None)

    def address(self, children: list[Token]) -> str:
        return str(children[0])

    def text(self, children: list[Token]) -> None:
        return None

    def tree_prefix(self, children: list[Any]) -> _TreePrefix:
        return _TreePrefix(children[0])

    def ip_header(self, children: list[Token]) -> _IpHeader:
        return _IpHeader((str(children[1]), str(children[2])))

    def frame(self, children: list[Token]) -> _Frame:
        return _Frame()

    def damaged_line(self, children: list[Any]) -> _DamagedLine:
        return _DamagedLine(children[0])


_TRANSFORMER = _TsharkTransformer()


def _grammar(text: str, start: str | None = None) -> _Line:
    parser = load_parser("tshark", _FIELDS_START, _TRANSFORMER)
    return cast(_Line, parser.parse(text, start=start or _start(text)))


def _mendable(text: str, lenient: bool) -> _Line:
    """A line as the grammar reads it, for mending (`tracelog.parse.mending`)."""
    return _grammar(text)


def _damaged(text: str) -> tuple[_Line, Partial] | None:
    """A line the grammar cannot read as it is: mended (a remark after it, a blank inside a word), or its tag alone."""
    mended = mend(text, _mendable)
    if mended is not None:
        joined = mended.mends.joined
        return mended.value, Partial(repaired=("text",)) if joined else Partial()
    try:
        return _grammar(text, "damaged_line"), _UNREAD
    except UnexpectedInput:
        return None


def _start(text: str) -> str:
    """The grammar rule a line's start says it is."""
    stripped = text.lstrip()
    if stripped.startswith("Prefix:"):
        return "tree_prefix"
    if stripped.startswith("Internet"):
        return "ip_header"
    return "frame" if stripped.startswith("Frame") else "fields_line"


def _event(tag: Tag, addresses: Addresses | None, origin: SourceLine, damage: Partial | None = None) -> list[Outcome]:
    """A record's step: its tag's table, chain, kind and number; its header the addresses, the rest unknown.

    `damage` is what a paste did to the line, beside what tshark does not show.
    """
    fields: list[Field] = []
    if addresses is not None:
        try:
            fields = [("SRC", ip_address(addresses[0])), ("DST", ip_address(addresses[1]))]
        except ValueError:
            fields = []  # not an address tshark prints (a name it resolved): left unknown
    header = build_header(fields, complete=False, cut=True)
    notes: list[Outcome] = [Caveat(origin, ADDRESSES_ONLY)]
    if damage is not None and damage != Partial():
        header = header._replace(partial=damage.merge(header.partial))
        notes += [Caveat(origin, note) for note in damage_notes(damage)]
    table, chain, kind, number = tag
    step_kind: StepKind = kind  # type: ignore[assignment]  # the grammar allows only these three
    event = TraceEvent(table=table, chain=chain, kind=step_kind, header=header, rulenum=number, origin=origin)
    return [*notes, event]


class TsharkParser:
    """Reads the tshark lines of one run: a `-V` tree's prefix is held until its IP header's line."""

    def __init__(self) -> None:
        self._pending: tuple[Tag, SourceLine] | None = None

    def parse(self, origin: SourceLine) -> list[Outcome]:
        damage = None
        try:
            line = _grammar(origin.text)
        except UnexpectedInput as error:
            damaged = _damaged(origin.text)
            if damaged is None:
                return [*self.flush(), bad_line(origin, error)]
            line, damage = damaged
        if isinstance(line, _FieldsLine | _DamagedLine):
            addresses = line.addresses if isinstance(line, _FieldsLine) else None
            return [*self.flush(), *_event(line.tag, addresses, origin, damage)]
        if isinstance(line, _TreePrefix):
            released = self.flush()
            self._pending = (line.tag, origin)
            return released
        if isinstance(line, _IpHeader) and self._pending is not None:
            (tag, prefix), self._pending = self._pending, None
            return [*_event(tag, line.addresses, prefix), Skip.OTHER]
        return [*self.flush(), Skip.OTHER]

    def flush(self) -> list[Outcome]:
        """Release a tree's prefix whose IP header never came (a frame without one, the end of input)."""
        if self._pending is None:
            return []
        (tag, origin), self._pending = self._pending, None
        return _event(tag, None, origin)
