"""Legacy TRACE records as tshark decodes them from NFLOG: each record's step, with what tshark shows of its packet.

With nfnetlink_log as the kernel's log backend, TRACE records go to NFLOG
group 0, where `tshark -i nflog` reads them: the prefix is the kernel's tag
(`TRACE: raw:PREROUTING:policy:2`), the packet is decoded by tshark.  People
paste its fields (`-T fields -e nflog.prefix -e ip`), one line a record, of
which the addresses are read; or its packet tree (`-V`), a frame a record,
where the prefix and each field are lines of their own.  Of a tree, the
fields the kernel logger prints are read as it would have printed them:
the IP header's (length, TOS, IP id, flags, TTL or hop limit, traffic class
and flow label, protocol), the transport's (ports, TCP's raw sequence
numbers, flags, window and urgent pointer, UDP's length, ICMP's type, code
and echo id and sequence), and the frame's time (when tshark got the
record).  A record is held from its frame's first line (or its prefix) to
the next frame's, its fields as they are read.  The interfaces' names are
not in the tree (NFLOG gives their indexes), nor is anything tshark did not
show: the step's header says so (`partial`), and the stderr summary says it
once.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, cast

from lark import Token, UnexpectedInput

from tracelog.events import Partial, SourceLine, Stamp, TraceEvent
from tracelog.parse.fields import IPV6_HEADER_LENGTH, Field, FieldError, build_header, ip_address
from tracelog.parse.grammar import load_parser
from tracelog.parse.kernel import Tag, TagTransformer
from tracelog.parse.mending import damage_notes, mend
from tracelog.parse.netlink import bad_line, proto_name, tcp_flag_names, tos_fields
from tracelog.parse.outcome import Caveat, Outcome, Skip

ADDRESSES_ONLY = "tshark's rendering: the chain path and the addresses where shown, the rest of the packet unknown"
TREE_FIELDS = (
    "tshark's packet tree: the fields the kernel logger prints, where tshark shows them;"
    " the interfaces' names unknown (it shows their indexes)"
)

Addresses = tuple[str, str]


class _FieldsLine(NamedTuple):
    tag: Tag
    addresses: Addresses | None


class _TreePrefix(NamedTuple):
    tag: Tag


class _IpHeader(NamedTuple):
    addresses: Addresses
    family: str


class _Frame(NamedTuple):
    pass


class _DamagedLine(NamedTuple):
    tag: Tag


class _Layer(NamedTuple):
    """A layer's line after the IP header's: the protocol whose fields follow (`TCP`, `ICMPv6`, ...)."""

    proto: str


class _TreeField(NamedTuple):
    """A field of a tree, as the kernel logger's `(key, value)` pairs, read under `layer` only.

    `nested`: read deeper in its layer too (an IPv6 extension header's Next Header).
    """

    layer: str
    pairs: tuple[Field, ...]
    nested: bool = False


class _FrameTime(NamedTuple):
    wallclock: datetime


_Line = _FieldsLine | _TreePrefix | _IpHeader | _Frame | _DamagedLine | _Layer | _TreeField | _FrameTime
_FIELDS_START = ("fields_line", "tree_prefix", "ip_header", "frame", "damaged_line", "layer", "tree_field")
# what a fields line that could not be read leaves unknown beyond what tshark does not show
_UNREAD = Partial(unreadable=("src", "dst"))

# the layers a tree's fields are read under: the frame's, the IP header's (by version), the transport's (by PROTO=)
_FRAME, _IPV4, _IPV6 = "frame", "ipv4", "ipv6"
_DONE = "done"  # the record's own layers are read: an IP header inside (a tunnel, an ICMP error) ends them
_LAYER_PROTOCOLS = {
    "Transmission Control Protocol": "TCP",
    "User Datagram Protocol": "UDP",
    "Internet Control Message Protocol": "ICMP",
    "Internet Control Message Protocol v6": "ICMPv6",
}
# the IPv4 flags tshark shows (the top three bits of the fragment offset word), as the kernel logger names them
_IP_FLAG_BITS = (("CE", 0x4), ("DF", 0x2), ("MF", 0x1))


def _number(token: Token) -> int:
    """A number as tshark prints it, in decimal or in hex."""
    return int(token, 16) if token.startswith("0x") else int(token)


class _TsharkTransformer(TagTransformer):
    """Turns the `tshark.lark` rules into one of the line kinds above."""

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
        version, src, dst = children
        return _IpHeader((str(src), str(dst)), _IPV4 if version == "4" else _IPV6)

    def frame(self, children: list[Token]) -> _Frame:
        return _Frame()

    def damaged_line(self, children: list[Any]) -> _DamagedLine:
        return _DamagedLine(children[0])

    def layer(self, children: list[Token]) -> _Layer:
        return _Layer(_LAYER_PROTOCOLS[str(children[0])])

    def tree_field(self, children: list[Any]) -> _TreeField | _FrameTime:
        return cast(_TreeField | _FrameTime, children[0])

    def epoch_time(self, children: list[Token]) -> _FrameTime:
        seconds, _, fraction = str(children[1]).partition(".")
        microseconds = int((fraction + "000000")[:6])
        return _FrameTime(datetime.fromtimestamp(int(seconds), UTC).replace(microsecond=microseconds))

    # IPv4
    def total_length(self, children: list[Token]) -> _TreeField:
        return _TreeField(_IPV4, (("LEN", _number(children[1])),))

    def ds_field(self, children: list[Token]) -> _TreeField:
        tos, prec = tos_fields(_number(children[1]))
        return _TreeField(_IPV4, (("TOS", tos), ("PREC", prec)))

    def identification(self, children: list[Token]) -> _TreeField:
        return _TreeField(_IPV4, (("ID", _number(children[1])),))

    def ip_flags(self, children: list[Token]) -> _TreeField:
        bits = _number(children[1])
        return _TreeField(_IPV4, tuple(("FLAG", name) for name, bit in _IP_FLAG_BITS if bits & bit))

    def time_to_live(self, children: list[Token]) -> _TreeField:
        return _TreeField(_IPV4, (("TTL", _number(children[1])),))

    def protocol(self, children: list[Token]) -> _TreeField:
        return _TreeField(_IPV4, (("PROTO", proto_name(_number(children[1]))),))

    # IPv6
    def traffic_class(self, children: list[Token]) -> _TreeField:
        return _TreeField(_IPV6, (("TC", _number(children[1])),))

    def flow_label(self, children: list[Token]) -> _TreeField:
        return _TreeField(_IPV6, (("FLOWLBL", _number(children[1])),))

    def payload_length(self, children: list[Token]) -> _TreeField:
        return _TreeField(_IPV6, (("LEN", _number(children[1]) + IPV6_HEADER_LENGTH),))

    def next_header(self, children: list[Token]) -> _TreeField:
        return _TreeField(_IPV6, (("PROTO", proto_name(_number(children[1]))),), nested=True)

    def hop_limit(self, children: list[Token]) -> _TreeField:
        return _TreeField(_IPV6, (("HOPLIMIT", _number(children[1])),))

    # ICMP, ICMPv6
    def icmp_type(self, children: list[Token]) -> _TreeField:
        return _TreeField("ICMP", (("TYPE", _number(children[1])),))

    def icmpv6_type(self, children: list[Token]) -> _TreeField:
        return _TreeField("ICMPv6", (("TYPE", _number(children[1])),))

    def code(self, children: list[Token]) -> _TreeField:
        return _TreeField("ICMP*", (("CODE", _number(children[1])),))

    def echo_identifier(self, children: list[Token]) -> _TreeField:
        return _TreeField("ICMP", (("ID", _number(children[1])),))

    def echo_sequence(self, children: list[Token]) -> _TreeField:
        return _TreeField("ICMP", (("SEQ", _number(children[1])),))

    def icmpv6_identifier(self, children: list[Token]) -> _TreeField:
        return _TreeField("ICMPv6", (("ID", _number(children[1])),))

    def icmpv6_sequence(self, children: list[Token]) -> _TreeField:
        return _TreeField("ICMPv6", (("SEQ", _number(children[1])),))

    # TCP, UDP
    def source_port(self, children: list[Token]) -> _TreeField:
        return _TreeField("PORTS", (("SPT", _number(children[1])),))

    def destination_port(self, children: list[Token]) -> _TreeField:
        return _TreeField("PORTS", (("DPT", _number(children[1])),))

    def tcp_sequence(self, children: list[Token]) -> _TreeField:
        return _TreeField("TCP", (("SEQ", _number(children[1])),))

    def tcp_acknowledgment(self, children: list[Token]) -> _TreeField:
        return _TreeField("TCP", (("ACK", _number(children[1])),))

    def tcp_flags(self, children: list[Token]) -> _TreeField:
        # tshark's 12 bits: the 4 the kernel logger prints as RES= (shifted as it does), then the flags
        bits = _number(children[1])
        flags = tuple(("FLAG", name) for name in tcp_flag_names(bits & 0xFF))
        return _TreeField("TCP", (("RES", (bits >> 8 & 0xF) << 2), *flags))

    def window(self, children: list[Token]) -> _TreeField:
        return _TreeField("TCP", (("WINDOW", _number(children[1])),))

    def urgent_pointer(self, children: list[Token]) -> _TreeField:
        return _TreeField("TCP", (("URGP", _number(children[1])),))

    def udp_length(self, children: list[Token]) -> _TreeField:
        return _TreeField("UDP", (("LEN", _number(children[1])),))


_TRANSFORMER = _TsharkTransformer()
# the layers of a field read under more than one (ICMP's code; TCP's and UDP's ports)
_SHARED_LAYERS = {"ICMP*": frozenset({"ICMP", "ICMPv6"}), "PORTS": frozenset({"TCP", "UDP"})}


def _grammar(text: str, start: str | None = None) -> _Line:
    """A line as `tshark.lark` reads it, from the rule `start` or the one its start says."""
    return cast(_Line, _parser().parse(text, start=start or _start(text)))


def _parser() -> Any:
    """The grammar's parser (loaded once)."""
    return load_parser("tshark", _FIELDS_START, _TRANSFORMER)


@functools.cache
def _tree_field_start() -> re.Pattern[str]:
    """The start of a line that may be a tree's field: a bit mask or a key, made of the grammar's own terminals."""
    parser = _parser()
    keys = "|".join(
        f"(?:{terminal.pattern.to_regexp()})" for terminal in parser.terminals if terminal.name.endswith("_KEY")
    )
    return re.compile(rf"(?:[01.]{{1,8}} )*(?:= )?(?:{keys})")


@functools.cache
def _layer_start() -> re.Pattern[str]:
    """The start of a layer's line, made of the grammar's own terminal."""
    return re.compile(_parser().get_terminal("LAYER_NAME").pattern.to_regexp())


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


def _address_fields(addresses: Addresses | None) -> list[Field]:
    """SRC and DST as tshark printed them; none where it printed no address (a name it resolved): left unknown."""
    if addresses is None:
        return []
    try:
        src, dst = ip_address(addresses[0]), ip_address(addresses[1])
    except ValueError:
        return []
    return [("SRC", src), ("DST", dst)] if src.version == dst.version else []


def _event(
    tag: Tag,
    fields: list[Field],
    origin: SourceLine,
    note: str = ADDRESSES_ONLY,
    damage: Partial | None = None,
    stamp: Stamp = Stamp(),
) -> list[Outcome]:
    """A record's step: its tag's table, chain, kind and number; its header the fields shown, the rest unknown.

    `damage` is what a paste did to the line, beside what tshark does not show.
    """
    header = build_header(fields, complete=False, cut=True)
    notes: list[Outcome] = [Caveat(origin, note)]
    if damage is not None and damage != Partial():
        header = header._replace(partial=damage.merge(header.partial))
        notes += [Caveat(origin, note) for note in damage_notes(damage)]
    event = TraceEvent(
        table=tag.table, chain=tag.chain, kind=tag.kind, header=header, rulenum=tag.number, stamp=stamp, origin=origin
    )
    return [*notes, event]


# A record's tree is a few hundred lines at most (a TCP segment with its options, a
# protocol decoded inside UDP): past this many, its fields are no longer looked for.
TREE_LINES = 2000
# and a field's line is short: a longer one is no field of the tree
TREE_LINE_CHARS = 1024


@dataclass(slots=True)
class _TreeRecord:
    """What has been read of one frame of a `-V` tree: its tag, its addresses, its fields by layer.

    `layer` is the layer whose fields are read (None: a layer not read, or
    all read); `network` and `transport` keep the last value of each key,
    so a record holds no more than the fields there are.
    """

    tag: Tag | None = None
    prefix: SourceLine | None = None
    addresses: Addresses | None = None
    layer: str | None = _FRAME
    network: dict[str, Any] = field(default_factory=dict)
    transport: dict[str, Any] = field(default_factory=dict)
    proto: str | None = None
    wallclock: datetime | None = None
    lines: int = 0

    def enter(self, line: _IpHeader | _Layer) -> None:
        """A layer's line: its fields are read from here on, if it is the record's own IP header or transport."""
        if isinstance(line, _IpHeader):
            first = self.addresses is None and self.layer != _DONE
            self.addresses = line.addresses if first else self.addresses
            self.layer = line.family if first else _DONE
        elif self.layer in (_IPV4, _IPV6) and self.proto in (None, line.proto):
            self.proto, self.layer = line.proto, line.proto
        else:
            self.layer = _DONE if self.addresses is not None else None

    def leave(self) -> None:
        """A line at the left margin that is no layer read here (NFLOG's, the data's): its fields are not read."""
        self.layer = _DONE if self.addresses is not None else None

    def read(self, line: _TreeField | _FrameTime, nested: bool) -> None:
        """A field of the current layer (`nested`: deeper than its own fields), kept if it belongs there."""
        if isinstance(line, _FrameTime):
            if self.layer == _FRAME and not nested:
                self.wallclock = line.wallclock
            return
        if (nested and not line.nested) or self.layer not in _SHARED_LAYERS.get(line.layer, (line.layer,)):
            return
        kept = self.network if self.layer in (_IPV4, _IPV6) else self.transport
        for key, value in line.pairs:
            if key == "PROTO":
                self.proto = value
            elif key == "FLAG":
                kept.setdefault(key, []).append(value)
            else:
                kept[key] = value

    def fields(self) -> list[Field]:
        """The kernel logger's fields, in its order: addresses, IP header, PROTO=, transport."""
        fields = _address_fields(self.addresses)
        fields += _pairs(self.network)
        if self.proto is not None:
            fields += [("PROTO", self.proto), *_pairs(self.transport)]
        return fields

    def outcomes(self) -> list[Outcome]:
        """The record's step (none for a frame without a TRACE prefix)."""
        if self.tag is None or self.prefix is None:
            return []
        stamp = Stamp(wallclock=self.wallclock) if self.wallclock is not None else Stamp()
        try:
            return _event(self.tag, self.fields(), self.prefix, TREE_FIELDS, stamp=stamp)
        except FieldError:  # fields that cannot be one header's: the addresses alone
            return _event(self.tag, _address_fields(self.addresses), self.prefix, TREE_FIELDS, stamp=stamp)


def _pairs(kept: dict[str, Any]) -> list[Field]:
    """Kept fields as pairs (each flag its own)."""
    return [(key, flag) for key, value in kept.items() for flag in (value if key == "FLAG" else [value])]


def _depth(text: str) -> int:
    """How far a tree's line is indented: its layer's fields at `_FIELD_DEPTH`, theirs deeper."""
    return len(text) - len(text.lstrip(" "))


# where a tree's layers put their own fields
_FIELD_DEPTH = 4


class TsharkParser:
    """Reads the tshark lines of one run: a `-V` tree's record is held, its fields read, until the next frame."""

    def __init__(self) -> None:
        self._record: _TreeRecord | None = None

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
            return [*self.flush(), *_event(line.tag, _address_fields(addresses), origin, damage=damage)]
        if isinstance(line, _Frame):
            released = self.flush()
            self._record = _TreeRecord()
            return [*released, Skip.OTHER]
        if isinstance(line, _TreePrefix):
            released = []
            if self._record is None or self._record.tag is not None:  # a tree pasted without its frames' lines
                released = self.flush()
                self._record = _TreeRecord()
            self._record.tag, self._record.prefix, self._record.layer = line.tag, origin, None
            return released
        if isinstance(line, _IpHeader) and self._record is not None and self._record.tag is not None:
            self._record.enter(line)
            return [Skip.OTHER]
        return [*self.flush(), Skip.OTHER]

    def tree_line(self, origin: SourceLine) -> list[Outcome] | None:
        """A line inside a frame's tree that starts no record: [Skip.OTHER] if it is a layer or a field read.

        None for any other line (and for every line outside a frame, or
        `TREE_LINES` after its frame began): it is not the tree's to read,
        and goes on to the other formats.
        """
        record = self._record
        if record is None or record.lines >= TREE_LINES or len(origin.text) > TREE_LINE_CHARS:
            return None
        record.lines += 1
        text = origin.text
        depth = _depth(text)
        if depth == 0:
            return self._read_layer(record, text)
        if depth < _FIELD_DEPTH or not _tree_field_start().match(text, depth):
            return None
        try:
            line = _grammar(text, "tree_field")
        except (UnexpectedInput, ValueError, OverflowError, OSError):  # a time or a number no clock or int holds
            return None
        record.read(cast(_TreeField | _FrameTime, line), nested=depth > _FIELD_DEPTH)
        return [Skip.OTHER]

    @staticmethod
    def _read_layer(record: _TreeRecord, text: str) -> list[Outcome] | None:
        """A line at the left margin: a layer's whose fields follow, or another (whose fields are not read)."""
        if not text.strip():
            return None
        if _layer_start().match(text) is not None:
            try:
                record.enter(cast(_Layer, _grammar(text, "layer")))
                return [Skip.OTHER]
            except UnexpectedInput:
                pass
        record.leave()
        return None

    def flush(self) -> list[Outcome]:
        """Release the record being read: its step, if its frame had a TRACE prefix."""
        if self._record is None:
            return []
        record, self._record = self._record, None
        return record.outcomes()
