"""Legacy TRACE records as ulogd2 writes them after reading NFLOG: LOGEMU text and JSON lines.

When the nf_log backend is nfnetlink_log, the kernel hands each TRACE record
to NFLOG group 0 instead of its log, with the `TRACE: table:chain:kind:N `
tag as the NFLOG prefix.  LOGEMU prints it like the kernel logger would, so
the kernel parser's transformer reads it (with ulogd's own spellings allowed
by ulogd.lark); the JSON plugin gives every field its own key, read here with
the json module and written as the kernel logger's fields for `build_header`.
Key names are those of ulogd's BASE, IFINDEX, IP2STR and HWHDR plugins; the
JSON plugin renames a few to their CIM names (`src_ip`, `dest_port`...).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from lark import UnexpectedInput
from lark.visitors import merge_transformers

from tracelog.events import Family, Header, Partial, SourceLine, Stamp, TraceEvent
from tracelog.parse.fields import (
    IPV6_HEADER_LENGTH,
    Field,
    FieldError,
    FieldsTransformer,
    Hidden,
    Printed,
    build_header,
    hidden_name,
    hidden_value,
)
from tracelog.parse.grammar import load_parser
from tracelog.parse.kernel import (
    DAMAGED_TAG,
    MARK,
    KernelTransformer,
    Tag,
    Trace,
    mended_trace,
    read_tagless_line,
    starts_record,
    tag_start,
    trace_event,
)
from tracelog.parse.mending import damage_notes, leads, mend
from tracelog.parse.netlink import NFPROTO_FAMILIES, bad_line, proto_name, tcp_flag_names, tos_fields
from tracelog.parse.outcome import BadLine, Caveat, Outcome, Skip

_TRANSFORMER = merge_transformers(KernelTransformer(), logfields=FieldsTransformer())  # type: ignore[no-untyped-call]

# JSON key (CIM name first, then ulogd's own) → kernel logger field
_ADDRESSES = ((("src_ip", "ip.saddr.str"), "SRC"), (("dest_ip", "ip.daddr.str"), "DST"))
_LINK = ((("oob.in",), "IN"), (("oob.out",), "OUT"), (("mac.str",), "MAC"))
_IPV4 = ((("ip.totlen",), "LEN"), (("ip.ttl",), "TTL"), (("ip.id",), "ID"))
_IPV6 = ((("ip6.priority",), "TC"), (("ip6.hoplimit",), "HOPLIMIT"), (("ip6.flowlabel",), "FLOWLBL"))
_PORTS = tuple(
    ((cim, *(f"{proto}.{end}" for proto in ("tcp", "udp", "sctp"))), key)
    for cim, end, key in (("src_port", "sport", "SPT"), ("dest_port", "dport", "DPT"))
)
_TRANSPORT = {
    "TCP": ((("tcp.seq",), "SEQ"), (("tcp.ackseq",), "ACK"), (("tcp.window",), "WINDOW"), (("tcp.urgp",), "URGP")),
    "UDP": ((("udp.len",), "LEN"),),
    "UDPLITE": ((("udp.len",), "LEN"),),
    "ICMP": (
        (("icmp.type",), "TYPE"),
        (("icmp.code",), "CODE"),
        (("icmp.echoid",), "ID"),
        (("icmp.echoseq",), "SEQ"),
        (("icmp.fragmtu",), "MTU"),
    ),
    "ICMPv6": (
        (("icmpv6.type",), "TYPE"),
        (("icmpv6.code",), "CODE"),
        (("icmpv6.echoid",), "ID"),
        (("icmpv6.echoseq",), "SEQ"),
    ),
    "ESP": ((("ahesp.spi",), "SPI"),),
    "AH": ((("ahesp.spi",), "SPI"),),
}
_TEXT_FIELDS = frozenset({"IN", "OUT", "MAC"})
_OWNER = ((("oob.uid",), "UID"), (("oob.gid",), "GID"), (("oob.mark",), "MARK"))
_TCP_FLAG_KEYS = (
    ("tcp.urg", 0x20),
    ("tcp.ack", 0x10),
    ("tcp.psh", 0x08),
    ("tcp.rst", 0x04),
    ("tcp.syn", 0x02),
    ("tcp.fin", 0x01),
)
# ip.fragoff is the IPv4 frag_off word: flag bits, then the offset in 8-byte units
_IP_FLAG_BITS = (("CE", 0x8000), ("DF", 0x4000), ("MF", 0x2000))
_FRAGMENT_OFFSET = 0x1FFF
_NFPROTO_IPV6 = 10
_MAC = re.compile(r"[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2})+")

# read into other fields, or about the record rather than the packet
_READ_ELSEWHERE = frozenset(
    {
        "timestamp",
        "dvc",
        "oob.prefix",
        "oob.time.sec",
        "oob.time.usec",
        "oob.family",
        "ip.protocol",
        "ip.tos",
        "ip.fragoff",
        "ip6.payloadlen",
        "ip6.fragoff",
        "ip6.fragid",
        "mac.saddr.str",
        "mac.daddr.str",
        *(key for key, _ in _TCP_FLAG_KEYS),
    }
)
_MAPPED = frozenset(
    key
    for table in (_ADDRESSES, _LINK, _IPV4, _IPV6, _PORTS, _OWNER, *_TRANSPORT.values())
    for keys, _ in table
    for key in keys
)


def _parse(text: str, start: str) -> Any:
    return load_parser("ulogd", ("line", "oob_prefix", "syslog_header", "fields"), _TRANSFORMER).parse(
        text, start=start
    )


def _read_fields(text: str) -> list[Field]:
    fields: list[Field] = _parse(text, "fields")
    return fields


# ---- LOGEMU


def parse_logemu_line(origin: SourceLine, year: int) -> Iterator[Outcome]:
    """One LOGEMU line: an event, or a look-alike whose prefix is not a TRACE tag (ebtables, NFLOG rules).

    A prefix that starts like a TRACE tag and is not one is a damaged tag:
    a bad line, not a look-alike.
    """
    try:
        prefix, trace = _parse(origin.text, "line")
    except (UnexpectedInput, FieldError) as error:
        if not starts_record(origin.text):
            yield read_tagless_line(origin)
            return
        mended = _mended_line(origin.text)
        if mended is None:
            yield bad_line(origin, error)
            return
        prefix, trace = mended
    event = trace_event(trace, prefix, origin, year)
    if event.header.partial is not None:
        yield from (Caveat(origin, note) for note in damage_notes(event.header.partial))
    yield event


def _mended_line(text: str) -> tuple[Any, Trace] | None:
    """A LOGEMU line whose fields could not be read as they are, mended as the kernel log's are."""
    mark = text.find(MARK)
    try:
        prefix = _parse(text[:mark], "syslog_header")
    except UnexpectedInput:
        return None
    trace = mended_trace(text[mark + len(MARK) :], False, _read_fields)
    return None if trace is None else (prefix, trace)


# ---- JSON


def _key(record: dict[str, Any], keys: Sequence[str]) -> str | None:
    """The first of `keys` the record has: plugins and ulogd versions name some fields differently."""
    return next((key for key in keys if key in record), None)


def _int(record: dict[str, Any], key: str) -> int:
    value = record[key]
    if type(value) is not int:
        raise FieldError(f'"{key}": {value!r} is not a number')
    return value


def _pairs(record: dict[str, Any], table: Sequence[tuple[Sequence[str], str]]) -> list[Field]:
    """The kernel fields of `table` that the record has (an empty interface name is no interface).

    A value hidden in a paste (`"ip.ttl": "xxx"`) is kept as hidden.
    """
    pairs: list[Field] = []
    for keys, name in table:
        key = _key(record, keys)
        if key is None:
            continue
        value = record[key]
        if value == "":
            if name in ("IN", "OUT"):
                pairs.append((name, None))  # shown, as the kernel's empty `OUT=`
            continue
        if name in _TEXT_FIELDS:
            hidden = None if not isinstance(value, str) else hidden_name(value) if name != "MAC" else _hidden_mac(value)
            pairs.append((name, hidden or str(value)))
        elif type(value) is int:
            pairs.append((name, value))
        elif isinstance(value, str) and (hidden := hidden_value(value)).how != "unreadable":
            pairs.append((name, hidden))
        else:
            pairs.append((name, _int(record, key)))
    return pairs


def _hidden_mac(value: str) -> Hidden | None:
    return None if _MAC.fullmatch(value) else hidden_value(value)


def _addresses(record: dict[str, Any], elided: bool) -> list[Field]:
    """SRC and DST; a value redacted in a paste is hidden, and so is one elided (`elided`: some were)."""
    pairs: list[Field] = []
    for keys, name in _ADDRESSES:
        key = _key(record, keys)
        if key is None and elided:
            continue
        value = record[key] if key else ""
        if not isinstance(value, str) or not value:  # ipaddress would take an int for one
            raise FieldError(f"no IP address in {keys[0]!r} ({keys[1]!r})")
        try:
            pairs.append((name, ipaddress.ip_address(value)))
        except ValueError:
            pairs.append((name, hidden_value(value)))
    return pairs


def _ipv4_fields(record: dict[str, Any]) -> list[Field]:
    pairs = _pairs(record, _IPV4)
    if "ip.tos" in record:
        tos, prec = tos_fields(_int(record, "ip.tos"))
        pairs += [("TOS", tos), ("PREC", prec)]
    if "ip.fragoff" in record:
        word = _int(record, "ip.fragoff")
        pairs += [("FLAG", name) for name, bit in _IP_FLAG_BITS if word & bit]
        if word & _FRAGMENT_OFFSET:
            pairs.append(("FRAG", f"FRAG:{word & _FRAGMENT_OFFSET}"))
    return pairs


def _ipv6_fields(record: dict[str, Any]) -> list[Field]:
    pairs = _pairs(record, _IPV6)
    if "ip6.payloadlen" in record:
        pairs.append(("LEN", _int(record, "ip6.payloadlen") + IPV6_HEADER_LENGTH))
    if "ip6.fragid" in record:
        pairs.append(("FRAG", f"FRAG:{_int(record, 'ip6.fragoff')} ID:{_int(record, 'ip6.fragid'):08x}"))
    return pairs


def _transport_fields(record: dict[str, Any], elided: bool = False) -> list[Field]:
    if "ip.protocol" not in record:  # the ports of a protocol not shown, if any
        return [("PROTO", Hidden("elided", "…") if elided else "?"), *_pairs(record, _PORTS)]
    proto = proto_name(_int(record, "ip.protocol"))
    pairs = [("PROTO", proto), *_pairs(record, _PORTS), *_pairs(record, _TRANSPORT.get(proto, ()))]
    if proto == "TCP":
        bits = sum(bit for key, bit in _TCP_FLAG_KEYS if record.get(key))
        pairs += [("FLAG", name) for name in tcp_flag_names(bits)]
    return pairs


# The keys ulogd's JSON output has for every traced IP packet (the BASE and
# IP2STR plugins' fields, by protocol): a record without one of them is a
# projection (`jq '{"oob.prefix", src_ip}'`) or a paste that lost members.
_ALWAYS = (("oob.in",), ("oob.out",), _ADDRESSES[0][0], _ADDRESSES[1][0], ("ip.protocol",))
_ALWAYS_IPV4 = (("ip.totlen",), ("ip.ttl",), ("ip.id",), ("ip.tos",))
_ALWAYS_IPV6 = (("ip6.payloadlen",), ("ip6.hoplimit",), ("ip6.flowlabel",), ("ip6.priority",))
_ALWAYS_TRANSPORT = {
    "TCP": (*(keys for keys, _ in _PORTS), ("tcp.seq",), ("tcp.ackseq",), ("tcp.window",)),
    "UDP": (*(keys for keys, _ in _PORTS), ("udp.len",)),
    "ICMP": (("icmp.type",), ("icmp.code",)),
    "ICMPv6": (("icmpv6.type",), ("icmpv6.code",)),
}
# What ulogd's JSON output always holds, by `Header` field, for naming what a projection left out
ULOGD_JSON_PRINTED = Printed(
    ipv4=("in_iface", "out_iface", "src", "dst", "length", "tos", "prec", "ttl", "ip_id", "proto"),
    ipv6=("in_iface", "out_iface", "src", "dst", "length", "tc", "ttl", "flowlabel", "proto"),
    transport={
        "TCP": ("sport", "dport", "tcp_seq", "tcp_ack", "tcp_window"),
        "UDP": ("sport", "dport", "udp_length"),
        "ICMP": ("icmp_type", "icmp_code"),
        "ICMPv6": ("icmp_type", "icmp_code"),
    },
)


def _lacks_keys(record: dict[str, Any], ipv6: bool) -> bool:
    """Whether the record lacks a key ulogd writes for every packet of its kind (a projection of one)."""
    proto = proto_name(record["ip.protocol"]) if type(record.get("ip.protocol")) is int else None
    expected = (*_ALWAYS, *(_ALWAYS_IPV6 if ipv6 else _ALWAYS_IPV4), *_ALWAYS_TRANSPORT.get(proto or "", ()))
    return any(_key(record, keys) is None for keys in expected)


def _json_header(record: dict[str, Any], elided: bool = False) -> Header | None:
    """The packet of one JSON record; None if it is not IP (ARP through a bridge).

    `elided`: some of the record's members were elided in a paste, so the
    fields it lacks are unknown rather than absent.  A record that lacks
    keys ulogd always writes (a `jq` projection) is read so too: its
    `partial` names the fields it does not show.
    """
    if _key(record, _ADDRESSES[0][0]) is None and any(key.startswith("arp.") for key in record):
        return None
    family_ipv6 = "oob.family" in record and _int(record, "oob.family") == _NFPROTO_IPV6
    elided = elided or _lacks_keys(record, family_ipv6 or "ip6.payloadlen" in record)
    addresses = _addresses(record, elided)
    known = [value for _, value in addresses if type(value) is not Hidden]
    # redacted or elided addresses: the family ulogd recorded says it
    ipv6 = known[0].version == 6 if known else family_ipv6
    network = _ipv6_fields(record) if ipv6 else _ipv4_fields(record)
    extra = [
        ("EXTRA", (key, str(value)))
        for key, value in record.items()
        if key not in _MAPPED and key not in _READ_ELSEWHERE
    ]
    transport = _transport_fields(record, elided)
    fields = [*_pairs(record, _LINK), *addresses, *network, *transport, *_pairs(record, _OWNER)]
    family: Family | None = "ipv6" if ipv6 else "ipv4" if "oob.family" in record else None
    return build_header([*fields, *extra], complete=False, family=family, printed=ULOGD_JSON_PRINTED, cut=elided)


def _json_stamp(record: dict[str, Any]) -> Stamp:
    """When ulogd received the record: the kernel's time stamp if sent, else ulogd's local-time `timestamp`."""
    try:
        if "oob.time.sec" in record:
            microseconds = _int(record, "oob.time.usec") if "oob.time.usec" in record else 0
            return Stamp(wallclock=datetime.fromtimestamp(_int(record, "oob.time.sec") + microseconds / 1e6, UTC))
        return Stamp(wallclock=datetime.fromisoformat(record["timestamp"])) if "timestamp" in record else Stamp()
    except (TypeError, ValueError, OverflowError, OSError):
        raise FieldError("oob.time.sec/usec or timestamp is not a time") from None


def _json_event(
    record: dict[str, Any], tag: Tag, origin: SourceLine, mends: _JsonMends | None = None
) -> TraceEvent | Skip:
    header = _json_header(record, mends is not None and mends.elided)
    if header is None:
        return Skip.NON_IP
    if mends is not None and mends.repaired:
        header = header._replace(partial=Partial(repaired=mends.repaired).merge(header.partial))
    family = NFPROTO_FAMILIES.get(_int(record, "oob.family")) if "oob.family" in record else None
    return TraceEvent(
        table=tag.table,
        chain=tag.chain,
        kind=tag.kind,
        header=header,
        rulenum=tag.number,
        stamp=_json_stamp(record),
        nf_family=family,
        origin=origin,
    )


class _JsonMends(NamedTuple):
    """What reading a damaged JSON line took: members elided (or cut off), members whose text was mended."""

    elided: bool = False
    repaired: tuple[str, ...] = ()


# one member of a JSON object, `"key": value`, with a plain value (no object or array)
_JSON_MEMBER = re.compile(
    r'"([^"\\]*(?:\\.[^"\\]*)*)"[ \t]*:[ \t]*'
    r'("[^"\\]*(?:\\.[^"\\]*)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)'
    r"(?=[ \t]*(?:[,}]|$))"
)
_JSON_GLUE = re.compile(r"[\s{},]*")
# the TRACE tag of an `oob.prefix` member whose end was elided
_ELIDED_PREFIX = re.compile(r'"oob\.prefix"[ \t]*:[ \t]*"[ \t]*(TRACE:[ \t]*[^\s"]+)')


def _loads(text: str, lenient: bool = False) -> Any:
    """`json.loads`, its errors as `FieldError`s with their column (for mending).

    A number too long to convert (Python refuses past 4,300 digits) is an
    error like any other.
    """
    try:
        return json.loads(text)
    except ValueError as error:
        column = error.colno if isinstance(error, json.JSONDecodeError) else None
        raise FieldError(f"not JSON: {error}", column) from None


def _mended_json(text: str) -> tuple[dict[str, Any], _JsonMends] | None:
    """The object of a JSON line damaged in a paste, as far as it can be read; None if none.

    A remark after the object is left out; blanks slipped into it are
    closed (see `tracelog.parse.mending`); what is left is read member by
    member, and anything between them that is no member (an elision, a cut)
    means members were elided.
    """
    start = text.find("{")
    if start < 0:
        return None
    try:
        record, end = json.JSONDecoder().raw_decode(text, start)
        if isinstance(record, dict) and "{" not in text[end:]:
            return record, _JsonMends()
    except ValueError:
        pass
    mended = mend(text[start:], _loads)
    if mended is not None and isinstance(mended.value, dict):
        return mended.value, _JsonMends(repaired=tuple(_json_key(mended.text, word) for word in mended.mends.joined))
    record, covered = {}, start
    gaps = False
    for member in _JSON_MEMBER.finditer(text, start):
        gaps = gaps or bool(_JSON_GLUE.fullmatch(text, covered, member.start()) is None)
        try:
            record[_loads(f'"{member[1]}"')] = _loads(member[2])
        except FieldError:  # a member that is no JSON (a control character, a number too long): a gap
            gaps = True
            continue
        covered = member.end()
    gaps = gaps or _JSON_GLUE.fullmatch(text, covered) is None or not text.rstrip().endswith("}")
    if "oob.prefix" not in record and (prefix := _ELIDED_PREFIX.search(text)) is not None:
        record["oob.prefix"] = prefix[1] + " "  # the elision took the rest of the member, not the tag
    return (record, _JsonMends(elided=gaps)) if record else None


# the texts tracelog reads from a record, where a blank slipped in would change what it reads
_SPACE_PRONE = ("src_ip", "dest_ip", "ip.saddr.str", "ip.daddr.str", "oob.in", "oob.out", "mac.str")


def _closed_blanks(record: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]] | None:
    """The record with blanks slipped into its keys and texts closed (`"src _ip"`, `"172.18 .0.2"`), if it had any.

    ulogd's keys have no blanks; of the texts, only those of the fields
    tracelog reads as addresses and names are closed.  With the keys
    mended, as notes say them.
    """
    closed: dict[str, Any] = {}
    mended: list[str] = []
    for key, value in record.items():
        name = "".join(key.split())
        if name != key:
            mended.append(name)
        spaced = isinstance(value, str) and name in _SPACE_PRONE and " " in value
        if spaced:
            mended.append(name)
        closed[name] = "".join(value.split()) if spaced else value
    return (closed, tuple(dict.fromkeys(mended))) if mended else None


def _json_key(text: str, word: str) -> str:
    """The key of the member a mended word is in, for notes."""
    at = text.find(word)
    keys = list(re.finditer(r'"([^"]*)"[ \t]*:', text[: at + 1]))
    return keys[-1][1] if keys else "text"


class _JsonRecord(NamedTuple):
    """The JSON object of a line, and what reading it took if the line was damaged."""

    record: dict[str, Any]
    mends: _JsonMends | None = None


def _json_record(origin: SourceLine) -> _JsonRecord | Outcome:
    """The JSON object of a line, or what the line is if it holds none."""
    try:
        record = json.loads(origin.text)
    except ValueError as error:
        if MARK not in origin.text:
            return Skip.OTHER
        mended = _mended_json(origin.text)
        if mended is not None:
            return _JsonRecord(*mended)
        column = error.colno if isinstance(error, json.JSONDecodeError) else None
        return BadLine(origin, column, f"not JSON: {error}")
    return _JsonRecord(record) if isinstance(record, dict) else Skip.OTHER


def parse_json_line(origin: SourceLine) -> Iterator[Outcome]:
    """One line of ulogd's JSON output: an event when its `oob.prefix` is a TRACE tag."""
    read = _json_record(origin)
    if not isinstance(read, _JsonRecord):
        yield read
        return
    record, mends = read
    if None in record.values():  # ulogd writes no null: a jq projection names keys the record lacked
        record = {key: value for key, value in record.items() if value is not None}
    if any(" " in key for key in record) or any(" " in str(record.get(key, "")) for key in _SPACE_PRONE):
        closed = _closed_blanks(record)
        if closed is not None:
            record, mends = closed[0], (mends or _JsonMends())._replace(repaired=closed[1])
    prefix = record.get("oob.prefix")
    if not isinstance(prefix, str) or not prefix.lstrip().startswith(MARK):
        # a damaged record whose prefix could not be read, on a line that shows a TRACE tag
        damaged = mends is not None and tag_start(origin.text) is not None
        yield BadLine(origin, None, f"{DAMAGED_TAG}: oob.prefix cannot be read") if damaged else Skip.OTHER
        return
    try:
        tag = _parse(prefix, "oob_prefix")
    except UnexpectedInput:
        yield Skip.LOOKALIKE if tag_start(prefix) is None else BadLine(origin, None, f"{DAMAGED_TAG}: {prefix!r}")
        return
    try:
        event = _json_event(record, tag, origin, mends)
    except FieldError as error:
        yield BadLine(origin, None, str(error))
        return
    if isinstance(event, TraceEvent) and event.header.partial is not None:
        yield from (Caveat(origin, note) for note in damage_notes(event.header.partial))
    yield event


# ---- a JSON object over several lines

# `jq .` prints one member a line (a ulogd record takes about 40); a terminal
# or a mail wraps a long line.  Past these, what was gathered is read as it is.
JSON_LINES_MAX = 64
JSON_CHARS_MAX = 64 << 10
_JSON_TOKEN = re.compile(r'\\.|["{}\[\]]')
WRAPPED = "a record wrapped over several lines was joined"


def _json_nesting(text: str, depth: int = 0, in_string: bool = False) -> tuple[int, bool]:
    """The objects and arrays left open at the end of `text`, and whether it ends inside a string.

    Counted on from `depth` and `in_string` (the lines before).
    """
    for token in _JSON_TOKEN.finditer(text):
        mark = token[0]
        if in_string:
            in_string = mark != '"'
        elif mark == '"':
            in_string = True
        elif mark in "{[":
            depth += 1
        elif mark in "}]":
            depth -= 1
    return depth, in_string


class JsonObjectLines:
    """The lines of one JSON object printed over several, gathered until it closes.

    A line that is part of such an object reads as nothing alone (`{`,
    `  "src_ip": "172.18.0.2",`): the object is read once whole, its lines
    joined as they were cut (a wrapped line's cut may fall inside a string),
    as from its first line.
    """

    def __init__(self, first: SourceLine, depth: int, in_string: bool, quoting: int) -> None:
        self._lines = [first]
        self._chars = len(first.text)
        self._depth, self._in_string = depth, in_string
        self._quoting = quoting

    @classmethod
    def start(cls, line: SourceLine, quoting: int = 0) -> JsonObjectLines | None:
        """The gathering a line starting a JSON object begins, if the object goes on past it.

        `quoting`: the layers of quoting taken off the line (`> `, `12: `,
        see `tracelog.parse.mending.leads`), which the lines after it have too.
        """
        text = line.text.rstrip()
        if text.endswith("}"):
            return None  # one line, whole or not: read as it is
        depth, in_string = _json_nesting(text)
        return cls(line, depth, in_string, quoting) if depth > 0 else None

    def unquoted(self, line: SourceLine) -> SourceLine | None:
        """A line after the first without the layers of quoting the first had; None if it has fewer."""
        if not self._quoting:
            return line
        found = leads(line.text)
        if len(found) < self._quoting:
            return None
        return SourceLine(line.source, line.line, line.text[found[self._quoting - 1] :])

    @property
    def closed(self) -> bool:
        return self._depth <= 0 and not self._in_string

    def add(self, line: SourceLine) -> bool:
        """Take the object's next line; False if the object would grow past its bounds (left to be read as it is)."""
        if len(self._lines) >= JSON_LINES_MAX or self._chars + len(line.text) > JSON_CHARS_MAX:
            return False
        self._lines.append(line)
        self._chars += len(line.text)
        self._depth, self._in_string = _json_nesting(line.text, self._depth, self._in_string)
        return True

    @property
    def lines(self) -> list[SourceLine]:
        return self._lines

    def read(self) -> list[Outcome] | None:
        """A ulogd record's outcomes, read as one line from the object's first; None for anything else.

        (A line that was all of it, or other JSON, is for its lines to be
        read one by one, as ever.)
        """
        first = self._lines[0]
        joined = SourceLine(first.source, first.line, "".join(line.text.rstrip("\r") for line in self._lines))
        if len(self._lines) == 1 or ULOGD_JSON_KEY not in joined.text:
            return None
        return [Caveat(joined, WRAPPED), *parse_json_line(joined)]


ULOGD_JSON_KEY = '"oob.prefix"'
"""A key every ulogd JSON record of an NFLOG rule with a prefix has."""
