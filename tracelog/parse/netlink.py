"""What the netlink trace formats share: trace-id memory, verdict words, header encodings.

xtables-monitor and `nft monitor trace` print a packet's headers once per
hook, then its steps by trace id; those formats and ulogd's JSON also share
the kernel's numeric encodings (nfproto numbers, TCP flag bits, the TOS byte),
which are turned into the kernel packet logger's spellings so that a `Header`
means the same whatever the format.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, TypeVar

from lark import UnexpectedInput, UnexpectedToken

from tracelog.events import (
    Family,
    Header,
    NfFamily,
    Partial,
    SourceLine,
    Stamp,
    StepKind,
    TraceEvent,
    TraceEventFields,
    build,
    new_event,
    unknown_address,
)
from tracelog.parse.fields import FieldError
from tracelog.parse.mending import Mends, damage_notes, mend, remark_start
from tracelog.parse.outcome import BadLine, Caveat, Outcome, Skip
from tracelog.parse.shapes import BoundedMemo, ShapeMemo, ValueKind

# NFPROTO_* (include/uapi/linux/netfilter.h) → nft family names
NFPROTO_FAMILIES: dict[int, NfFamily] = {1: "inet", 2: "ip", 3: "arp", 5: "netdev", 7: "bridge", 10: "ip6"}

# IP protocols by the names nft and iptables print them with (nft's proto.c,
# /etc/protocols)
PROTOCOL_NUMBERS = {
    "icmp": 1,
    "igmp": 2,
    "tcp": 6,
    "udp": 17,
    "dccp": 33,
    "gre": 47,
    "esp": 50,
    "ah": 51,
    "icmpv6": 58,
    "ipv6-icmp": 58,
    "comp": 108,
    "sctp": 132,
    "udplite": 136,
}

# IP protocol numbers the kernel logger names in PROTO=; it prints the others as numbers
_PROTO_NAMES = {1: "ICMP", 6: "TCP", 17: "UDP", 50: "ESP", 51: "AH", 58: "ICMPv6", 136: "UDPLITE"}

# TCP flag bits, in the order the kernel packet logger prints them (nf_log_syslog.c)
_TCP_FLAG_BITS = (
    ("CWR", 0x80),
    ("ECE", 0x40),
    ("URG", 0x20),
    ("ACK", 0x10),
    ("PSH", 0x08),
    ("RST", 0x04),
    ("SYN", 0x02),
    ("FIN", 0x01),
)
_TCP_FLAG_VALUES = dict(_TCP_FLAG_BITS)

# the kernel logger splits the IPv4 TOS byte (IPTOS_TOS_MASK, IPTOS_PREC_MASK)
_TOS_MASK = 0x1E
_PREC_MASK = 0xE0

# how long a trace id is remembered: its lines arrive within microseconds, so
# thousands of other ids in between mean its packet is long gone
TRACE_ID_MEMORY = 4096
# how many characters of packet lines the headers remembered may come from
# (real lines: a few hundred each), so that long lines cannot pile up
TRACE_ID_CHARACTERS = 1 << 23

UNSEEN_PACKET = "step without a readable packet line before it (monitor started mid-packet?): header unknown"


def proto_name(number: int) -> str:
    """The kernel logger's `PROTO=` value for an IP protocol number."""
    return _PROTO_NAMES.get(number, str(number))


def tcp_flag_names(bits: int) -> tuple[str, ...]:
    """The TCP flags set in `bits`, named and ordered as the kernel logger prints them."""
    return tuple(name for name, bit in _TCP_FLAG_BITS if bits & bit)


def tcp_flag_bits(names: tuple[str, ...] | list[str]) -> int:
    """The flag byte for kernel-style flag names (for formats that print them in another order)."""
    return sum(_TCP_FLAG_VALUES[name] for name in set(names))


def tos_fields(tos: int) -> tuple[int, int]:
    """The kernel logger's `TOS=` and `PREC=` values for a whole IPv4 TOS byte."""
    return tos & _TOS_MASK, tos & _PREC_MASK


def bad_line(origin: SourceLine, error: UnexpectedInput | FieldError) -> BadLine:
    """Where a whole-line parse stopped, and why."""
    if isinstance(error, UnexpectedToken) and error.token.type == "$END":
        return BadLine(origin, len(origin.text.rstrip()) + 1, "line ends early")
    if isinstance(error, UnexpectedInput):
        found = origin.text[error.column - 1 :].split(" ", 1)[0][:12]
        return BadLine(origin, error.column, f"unexpected {found!r}" if found else "line ends early")
    return BadLine(origin, error.column, str(error))


def verdict_name(word: str, chain: str | None = None) -> str:
    """One spelling for every format: `ACCEPT`, `DROP`, `RETURN`, `JUMP:<chain>`, ..."""
    return f"{word.upper()}:{chain}" if chain else word.upper()


class TraceStep(NamedTuple):
    """A step line as read, waiting for the packet header its trace id refers to.

    `mark` is the packet mark when the step line prints one (nft policy and
    chain-end lines), which then overrides the header's; `partial` says
    what of the step line itself was elided (`rule`, `verdict`).  A named tuple: one
    is made for every step line, mostly from a remembered one with a new id.
    """

    trace_id: str
    nf_family: NfFamily | None
    table: str
    chain: str
    kind: StepKind
    verdict: str | None
    handle: str | None = None
    rule: str | None = None
    mark: int | None = None
    partial: Partial | None = None


_STEP_MEMO_LIMIT = 1 << 14
_STEP_MEMO_CHARACTERS = 1 << 22  # a rule's text can be long: kept in bounded memory whatever it holds
T = TypeVar("T")


class StepLineMemo:
    """Step lines of one rule differ only in their trace id: the grammar reads each distinct one once.

    `trace_id` matches the start of a line up to its id (group 1).  Only step
    lines are remembered (packet lines are new for every packet), and only
    lines that parsed: every error still comes from the grammar.  What is
    kept of a step is all but its trace id, within `_STEP_MEMO_LIMIT` lines
    and `_STEP_MEMO_CHARACTERS` characters of them.

    `volatile`, if given, matches some step lines like `trace_id` does and
    further, to a part of the line that differs from step to step but that
    the step does not depend on (group 2: xtables-monitor -c's live
    counters, which the parser leaves out of the rule).  Such a line is
    remembered without that part too.  It is tried only for a line whose
    text without its id is new, so that the lines of a run without it cost
    nothing more.
    """

    def __init__(self, trace_id: re.Pattern[str], volatile: re.Pattern[str] | None = None) -> None:
        self._trace_id, self._volatile = trace_id, volatile
        self._steps: BoundedMemo[str, tuple[Any, ...]] = BoundedMemo(_STEP_MEMO_LIMIT, _STEP_MEMO_CHARACTERS)

    def parse(self, text: str, parse: Callable[[str], T]) -> T | TraceStep:
        """The step of a line whose text without its trace id was read before, else `parse(text)`."""
        match = self._trace_id.match(text)
        if match is None:
            return parse(text)
        key = text[: match.start(1)] + text[match.end(1) :]
        rest = self._steps.get(key)
        if rest is None and self._volatile is not None and (loose := self._volatile.match(text)) is not None:
            key = text[: loose.start(1)] + text[loose.end(1) : loose.start(2)] + text[loose.end(2) :]
            rest = self._steps.get(key)
        if rest is not None:
            return build(TraceStep, (match.group(1), *rest))
        parsed = parse(text)
        if isinstance(parsed, TraceStep):
            self._steps.put(key, parsed[1:], len(key))
        return parsed


class MonitorLines:
    """A monitor's lines through two memos, the grammar reading whatever they cannot answer.

    Packet lines go by shape (`ShapeMemo`): `packet_line` matches one, with
    its trace id in group 1 and in group 2 the rest, whose values `values`
    finds (of `kinds`, as `ShapeMemo` takes them); `stub` and that rest make
    the line the grammar reads, so group 2 must hold everything the trace id
    pattern does not check.  `header` turns the grammar's result into a
    `Header`.  Step lines go by their text without the trace id
    (`StepLineMemo` with `step_line` and `step_volatile`).
    """

    def __init__(
        self,
        grammar: Callable[[str], Any],
        header: Callable[[Any], Header | None],
        packet_line: re.Pattern[str],
        stub: str,
        values: re.Pattern[str],
        kinds: tuple[ValueKind, ...],
        step_line: re.Pattern[str],
        step_volatile: re.Pattern[str] | None = None,
    ) -> None:
        self._grammar, self._header, self._packet_line, self._stub = grammar, header, packet_line, stub
        self._packets = ShapeMemo(values, kinds, self._read_packet)
        self._steps = StepLineMemo(step_line, step_volatile)

    def parse(self, text: str) -> Any:
        """A line as the grammar reads it, or a `KnownPacket` for a packet line of a known shape."""
        packet = self._packet_line.match(text)
        if packet is not None:
            header = self._packets.header(packet.group(2))
            if header is not None:
                return build(KnownPacket, (packet.group(1), header))
        return self._steps.parse(text, self._grammar)

    def _read_packet(self, fields: str) -> Header | None:
        """A packet line's header, by the grammar; None if the line's own parse must say why."""
        try:
            line = self._grammar(self._stub + fields)
            header = None if isinstance(line, TraceStep | Skip) else self._header(line)
        except (UnexpectedInput, FieldError):
            return None
        # a damaged line is read whole: the stub lacks what it may need (the family)
        return header if header is None or header.partial is None else None


_NO_STAMP = Stamp()  # monitors print no time


class PacketMemory:
    """The last packet header printed for each recent trace id of one run.

    `None` stands for a packet that is not IP: its steps are skipped, not
    reported as damaged.  Only the most recent `size` ids are kept, made from
    at most `characters` characters of packet lines, so a long live stream
    (or one of long lines) does not grow without bound.
    """

    def __init__(self, size: int = TRACE_ID_MEMORY, characters: int = TRACE_ID_CHARACTERS) -> None:
        self._size, self._characters = size, characters
        self._headers: OrderedDict[str, tuple[Header | None, int]] = OrderedDict()
        self._kept = 0  # characters of the lines the headers kept were read from

    def remember(self, trace_id: str, header: Header | None, length: int = 0) -> None:
        """Keep the header of `trace_id`'s packet, read from a line `length` characters long."""
        headers = self._headers
        before = headers.pop(trace_id, None)
        headers[trace_id] = (header, length)
        self._kept += length - (before[1] if before is not None else 0)
        while len(headers) > self._size or self._kept > self._characters:
            _, (_, dropped) = headers.popitem(last=False)
            self._kept -= dropped

    def forget(self, trace_id: str) -> None:
        """Drop what is known of `trace_id` (its latest packet line was unreadable)."""
        forgotten = self._headers.pop(trace_id, None)
        if forgotten is not None:
            self._kept -= forgotten[1]

    def learn(self, trace_id: str, header: Callable[[], Header | None], origin: SourceLine) -> list[Outcome]:
        """Remember the header a packet line gives; a header that cannot be built is a bad line.

        Either way the id's older header is gone, so later steps never borrow it.
        """
        try:
            self.remember(trace_id, header(), len(origin.text))
        except FieldError as error:
            self.forget(trace_id)
            return [bad_line(origin, error)]
        return []

    def step_outcome(self, step: TraceStep, origin: SourceLine) -> list[Outcome]:
        """The event for `step`, with its packet's last header.

        A step whose trace id has no packet line yet (the monitor started
        mid-packet, the paste was trimmed, the packet line was unreadable or
        its id forgotten) keeps its step with a header of its own, all
        unknown (see `unseen_header`), shared by the later steps of that id
        until a packet line comes; a note says so.
        """
        trace_id, nf_family, table, chain, kind, verdict, handle, rule, mark, partial = step
        try:
            header = self._headers[trace_id][0]
        except KeyError:
            header = unseen_header(nf_family)
            self.remember(trace_id, header)
        if header is None:
            return [Skip.NON_IP]
        if mark is not None:
            header = header._replace(mark=mark)
        if partial is not None:
            header = header._replace(partial=partial.merge(header.partial))
        fields: TraceEventFields = (
            table,
            chain,
            kind,
            header,
            None,
            handle,
            None,
            _NO_STAMP,
            trace_id,
            rule,
            verdict,
            None,
            nf_family,
            origin,
        )
        event = new_event(TraceEvent, fields)
        if header.partial is None:
            return [event]
        return [*(Caveat(origin, note) for note in _step_notes(header.partial)), event]


def unseen_header(nf_family: NfFamily | None) -> Header:
    """The header of a packet whose packet line was not seen: nothing known but the family its table may tell.

    Its addresses are its own (equal to no other packet's), so steps under
    it are joined only with each other, never with a packet on missing data.
    """
    family: Family = "ipv6" if nf_family == "ip6" else "ipv4"
    guessed = ("header",) if nf_family in ("ip", "ip6") else ("header", "family")
    return Header(family, unknown_address(family), unknown_address(family), "?", partial=Partial(guessed=guessed))


def _step_notes(partial: Partial) -> list[str]:
    """The notes of a step: that its packet line was not seen, or how its packet line was damaged."""
    return [UNSEEN_PACKET] if "header" in partial.guessed else damage_notes(partial)


class KnownPacket(NamedTuple):
    """A packet line whose header a `ShapeMemo` already gave (no fields left to read)."""

    trace_id: str
    header: Header


class PacketLine(Protocol):
    """What a monitor's packet line gives: the trace id its header is for."""

    @property
    def trace_id(self) -> str: ...


class MonitorParser:
    """Reads the lines of one run of a trace monitor (xtables-monitor, nft monitor).

    Packet lines yield nothing: they update the header their trace id stands
    for; each step line yields one step (see `PacketMemory.step_outcome`).
    A packet line that does not parse still names its trace id, which is
    forgotten, so its steps never keep an older header.  A line damaged in
    a paste is mended where it can be (`field_name` names the field a word
    mended in a line belongs to, for the notes).
    """

    def __init__(
        self,
        parse: Callable[[str], PacketLine | KnownPacket | TraceStep | Skip],
        header: Callable[[Any], Header | None],
        damaged_packet_id: Callable[[str], str | None],
        field_name: Callable[[str, str], str],
    ) -> None:
        self._parse, self._header, self._damaged_packet_id = parse, header, damaged_packet_id
        self._field_name = field_name
        self._packets = PacketMemory()

    def parse(self, origin: SourceLine) -> list[Outcome]:
        try:
            line = self._parse(origin.text)
        except (UnexpectedInput, FieldError) as error:
            mended = self._mend(origin.text)
            if mended is None:
                trace_id = self._damaged_packet_id(origin.text)
                if trace_id is not None:
                    self._packets.forget(trace_id)
                return [bad_line(origin, error)]
            line = mended
        if isinstance(line, TraceStep):
            if line.partial is not None and remark_start(origin.text) is not None:
                # a step read as cut short may just have a remark after it
                remarked = self._mend(origin.text)
                line = remarked if isinstance(remarked, TraceStep) else line
            return self._packets.step_outcome(line, origin)
        if isinstance(line, Skip):
            return [line]
        if isinstance(line, KnownPacket):
            self._packets.remember(line.trace_id, line.header, len(origin.text))
            return []
        return self._packets.learn(line.trace_id, lambda: self._header(line), origin)

    def _mend(self, text: str) -> TraceStep | KnownPacket | None:
        """A line the grammar could not read as it is, mended (see `tracelog.parse.mending`).

        A step, or a packet line's header, with what was mended in it.
        """

        def read(candidate: str, lenient: bool) -> TraceStep | KnownPacket | Skip:
            line = self._parse(candidate)
            if isinstance(line, TraceStep | Skip | KnownPacket):
                return line
            header = self._header(line)
            return KnownPacket(line.trace_id, header) if header is not None else Skip.NON_IP

        mended = mend(text, read)
        if mended is None or isinstance(mended.value, Skip):
            return None
        line = mended.value
        if isinstance(line, KnownPacket) and mended.mends != Mends():
            joined, dropped = (
                tuple(dict.fromkeys(self._field_name(mended.text, word) for word in words)) for words in mended.mends
            )
            note = Partial(repaired=joined, unreadable=dropped)
            line = KnownPacket(line.trace_id, line.header._replace(partial=note.merge(line.header.partial)))
        return line
