"""Legacy TRACE records as the nftrace tool prints them: the chain path, each rule's text, a packet id.

nftrace reads NFLOG group 0 and prints a line per record: a packet id (a
hash of the packet as logged), the kernel's tag and the rule the tag points
to, as `iptables -S` prints it (`grammars/nftrace.lark`).  When it stops, it
prints every packet id once more with a tcpdump-like summary of the packet.
The steps of a packet id are held until that summary gives them their
addresses, ports and protocol, or until the input pauses or ends (a live
pipe, or nftrace killed before its summary); at most `MAX_HELD` steps are
held, the oldest released without a summary past that.  The packet id is
the steps' trace id: like an nft trace id, it may change within one packet,
here wherever the packet's bytes change (the TTL routing lowers, NAT).
"""

from __future__ import annotations

import itertools
import re
import sys
from collections import Counter, deque
from typing import Any, NamedTuple, cast

from lark import Token, UnexpectedInput

from tracelog.events import Header, Partial, SourceLine, TraceEvent
from tracelog.netfilter import NAT_TARGETS
from tracelog.parse.fields import Field, FieldError, build_header, ip_address, rule_damage
from tracelog.parse.grammar import load_parser
from tracelog.parse.kernel import MARK, Tag, TagTransformer
from tracelog.parse.netlink import bad_line
from tracelog.parse.outcome import Caveat, Outcome, Skip

SUMMARY_ONLY = "nftrace's rendering: the chain path, the rules and the packet's summary; the rest of the packet unknown"
UNREAD_SUMMARY = "an nftrace packet summary that could not be read: its packet's header stays unknown"
# Steps held for their packet's summary, and their characters (lines and rules): past either,
# the oldest goes on without one.  A few thousand packets of a trace fit.
MAX_HELD = 20_000
MAX_HELD_CHARS = 16 << 20


class _Step(NamedTuple):
    packet_id: str | None
    tag: Tag
    rule: str | None
    damage: Partial | None = None


class _Heading(NamedTuple):
    pass


class _Summary(NamedTuple):
    packet_id: str
    fields: list[Field]


_Line = _Step | _Heading | _Summary

_STARTS = ("step", "heading", "summary")
# pktdump's letters for the TCP flags it prints, in its order (the NS bit has no name in a header)
_TCP_FLAGS = {"F": "FIN", "S": "SYN", "R": "RST", "P": "PSH", ".": "ACK", "U": "URG", "E": "ECE", "W": "CWR"}
# Go's escapes in a quoted string (strconv.Quote), but \xNN (a byte, or a control such as \x1b): kept as printed
_GO_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", '"': '"'}
_GO_ESCAPE = re.compile(r'\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[abfnrtv\\"])')
_SUMMARY_START = re.compile(r"[ \t]*[0-9a-f]{12} IP6? ")
# a rule's words, a quoted one whole, in time linear in its length
_RULE_WORD = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|\S+')
_TCP_NUMBERS = {"seq": "SEQ", "ack": "ACK", "win": "WINDOW"}
_ECHO = {"ICMP": {"request": 8, "reply": 0}, "ICMPv6": {"request": 128, "reply": 129}}
# a rule's target that decides alone, whatever the chains around it (any other may be a user chain)
_DECIDING_TARGETS = frozenset({"ACCEPT", "DROP", "REJECT", "RETURN", *NAT_TARGETS})


class _NftraceTransformer(TagTransformer):
    """Turns the `nftrace.lark` rules into one of the line kinds above."""

    def step(self, children: list[Any]) -> _Step:
        tokens = {child.type: str(child) for child in children if isinstance(child, Token)}
        tag = next(child for child in children if isinstance(child, Tag))
        packet_id, rule, damaged = tokens.get("PACKET_ID"), tokens.get("RULE_TEXT"), tokens.get("RULE_DAMAGED")
        if damaged is not None:
            text = _unquote(damaged.strip().removeprefix('"').removesuffix('"'))
            return _Step(packet_id, tag, text, rule_damage(text) or Partial(unreadable=("rule",)))
        return _Step(packet_id, tag, None if rule is None else _unquote(rule[1:-1]))

    def heading(self, children: list[Token]) -> _Heading:
        return _Heading()

    def summary(self, children: list[Token]) -> _Summary:
        packet_id, family, source, destination, *text = map(str, children)
        return _Summary(packet_id, summary_fields(family, source, destination, "".join(text).strip()))


_TRANSFORMER = _NftraceTransformer()


def _unquote(inner: str) -> str:
    """The text inside a Go-quoted string (`%#v`): its escapes undone; a byte escaped (`\\xff`) and any
    escape a paste damaged are kept as printed."""
    return _GO_ESCAPE.sub(_unescape, inner)


def _unescape(found: re.Match[str]) -> str:
    """One escape's character; a code point that is none (a surrogate, past U+10FFFF) kept as printed."""
    escaped = found[1]
    if escaped[0] not in "uU":
        return _GO_ESCAPES[escaped]
    code = int(escaped[1:], 16)
    return chr(code) if code <= sys.maxunicode and not 0xD800 <= code <= 0xDFFF else found[0]  # no surrogate


def _grammar(text: str) -> _Line:
    """A line as `nftrace.lark` reads it, by what its start says it is (a summary may quote a TRACE mark)."""
    start = "heading" if text.lstrip().startswith("Aggregated") else "step"
    if _SUMMARY_START.match(text):
        start = "summary"
    return cast(_Line, load_parser("nftrace", _STARTS, _TRANSFORMER).parse(text, start=start))


def _end(text: str) -> tuple[str, int | None]:
    """An address and its port, as tcpdump joins them (`10.0.0.1.80`, `fd00::1.53`); no port for ICMP."""
    try:
        ip_address(text)
    except ValueError:
        address, _, port = text.rpartition(".")
        if not port.isdigit() or len(port) > 5 or int(port) > 0xFFFF:
            raise
        return address, int(port)
    return text, None


def summary_fields(family: str, source: str, destination: str, text: str) -> list[Field]:
    """The header fields a packet summary shows: addresses, ports, protocol, TCP flags, ICMP echo type and id."""
    (src, sport), (dst, dport) = _end(source), _end(destination)
    fields: list[Field] = [("SRC", ip_address(src)), ("DST", ip_address(dst))]
    if {address.version for _, address in fields} != {6 if family == "IP6" else 4}:
        raise ValueError(f"{family} with addresses of another version")
    words = text.replace(",", " ").split()
    icmp = "ICMPv6" if family == "IP6" else "ICMP"
    if text.startswith("Flags ["):
        flags = text[len("Flags [") : text.index("]")] if "]" in text else ""
        fields += [("PROTO", "TCP"), ("SPT", sport), ("DPT", dport)]
        fields += [("FLAG", _TCP_FLAGS[letter]) for letter in flags if letter in _TCP_FLAGS]
        # `seq 1:6` for a segment with data: its first byte's number, as the kernel's SEQ= is
        numbers: dict[str, str] = {}
        for key, value in itertools.pairwise(words):  # the first of each: TCP's, not a protocol's after it
            if key in _TCP_NUMBERS:
                numbers.setdefault(key, value.split(":")[0])
        fields += [(_TCP_NUMBERS[key], int(value)) for key, value in numbers.items() if value.isdigit()]
    elif words[:1] in (["ICMP"], ["ICMP6"]):
        fields.append(("PROTO", icmp))
        kind = words[2] if words[1:2] == ["echo"] and len(words) > 2 else None
        if kind in _ECHO[icmp]:
            fields += [("TYPE", _ECHO[icmp][kind]), ("CODE", 0)]
            fields += [(key.upper(), int(value)) for key, value in itertools.pairwise(words) if key in ("id", "seq")]
    elif sport is not None and dport is not None:
        fields += [("PROTO", "UDP"), ("SPT", sport), ("DPT", dport)]
    return fields


def _verdict(kind: str, rule: str | None) -> str | None:
    """What a policy or a rule decides, where its text alone says it: a policy, a deciding target."""
    words: list[str] = _RULE_WORD.findall(rule or "")
    if kind == "policy" and words[:1] == ["-P"] and len(words) == 3:
        return words[2]
    targets = [after for option, after in itertools.pairwise(words) if option in ("-j", "--jump")]
    return targets[-1] if kind == "rule" and targets and targets[-1] in _DECIDING_TARGETS else None


def _event(step: _Step, origin: SourceLine, header: Header) -> TraceEvent:
    """A step's event: its tag, rule and verdict, its packet's header with the step's own damage noted."""
    tag = step.tag
    if step.damage is not None:  # the step's own damage beside its packet's (a copy: the packet line is shared)
        header = header._replace(partial=step.damage.merge(header.partial))
    return TraceEvent(
        table=tag.table,
        chain=tag.chain,
        kind=tag.kind,
        header=header,
        rulenum=tag.number,
        trace_id=step.packet_id,
        rule=step.rule,
        verdict=_verdict(tag.kind, step.rule),
        origin=origin,
    )


def _chars(step: _Step, origin: SourceLine) -> int:
    """What a held step keeps: its line and its rule's text."""
    return len(origin.text) + len(step.rule or "")


class NftraceParser:
    """Reads the nftrace lines of one run: steps wait for their packet's summary (see the module's doc)."""

    def __init__(self) -> None:
        self._held: deque[tuple[_Step, SourceLine]] = deque()
        self._held_ids: Counter[str] = Counter()
        self._held_chars = 0
        self._headers: dict[str, Header] = {}
        # per packet id whose summary never came, its header, all unknown: one object, so that its
        # steps show one packet line (as a monitor's steps under theirs do), and no other id's
        self._unseen: dict[str, Header] = {}

    def parse(self, origin: SourceLine) -> list[Outcome]:
        try:
            line = _grammar(origin.text)
        except UnexpectedInput as error:  # a step is a TRACE line not understood; any other line is not nftrace's
            return [bad_line(origin, error)] if MARK in origin.text else [Skip.OTHER]
        except (ValueError, FieldError):  # a summary whose addresses are none: its packet's steps keep theirs unknown
            return [Caveat(origin, UNREAD_SUMMARY), Skip.OTHER]
        if isinstance(line, _Summary):
            return self._read_summary(line, origin)
        if isinstance(line, _Heading):
            return [Skip.OTHER]
        if line.packet_id is None:  # nftrace's first versions: no summary can name its packet
            return self._release(line, origin)
        released = self.flush() if self._headers else []  # a new run after a summary
        self._held.append((line, origin))
        self._held_ids[line.packet_id] += 1
        self._held_chars += _chars(line, origin)
        while len(self._held) > MAX_HELD or self._held_chars > MAX_HELD_CHARS:
            released += self._release_oldest()
        return released

    def _read_summary(self, summary: _Summary, origin: SourceLine) -> list[Outcome]:
        """Keep a summary's header for the held steps of its packet id (a summary of none is passed over)."""
        if summary.packet_id in self._held_ids:
            try:
                self._headers[summary.packet_id] = build_header(summary.fields, complete=False, cut=True)
            except FieldError:
                return [Caveat(origin, UNREAD_SUMMARY), Skip.OTHER]
        return [Skip.OTHER]

    def flush(self) -> list[Outcome]:
        """Release the held steps, each with its packet's summary if it came."""
        released = [outcome for held in self._held for outcome in self._release(*held)]
        self._held.clear()
        self._held_ids.clear()
        self._held_chars = 0
        self._headers.clear()
        self._unseen.clear()
        return released

    def _release_oldest(self) -> list[Outcome]:
        """The oldest held step, gone on without waiting longer for its summary."""
        step, origin = self._held.popleft()
        released = self._release(step, origin)
        self._held_chars -= _chars(step, origin)
        assert step.packet_id is not None  # steps without one are never held
        self._held_ids[step.packet_id] -= 1
        if not self._held_ids[step.packet_id]:
            del self._held_ids[step.packet_id]
            self._headers.pop(step.packet_id, None)
        return released

    def _release(self, step: _Step, origin: SourceLine) -> list[Outcome]:
        """A step's note and event, with its packet's header as known now."""
        return [Caveat(origin, SUMMARY_ONLY), _event(step, origin, self._header(step.packet_id))]

    def _header(self, packet_id: str | None) -> Header:
        """The header of a packet id's steps: its summary's, else one all unknown (a step without an id: its own)."""
        if packet_id is None:
            return build_header([], complete=False, cut=True)
        shown = self._headers.get(packet_id)
        if shown is not None:
            return shown
        if len(self._unseen) >= MAX_HELD:  # ids released long ago, past the held steps
            self._unseen.clear()
        return self._unseen.setdefault(packet_id, build_header([], complete=False, cut=True))
