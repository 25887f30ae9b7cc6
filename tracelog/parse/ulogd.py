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
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from lark import UnexpectedInput
from lark.visitors import merge_transformers

from tracelog.events import Header, SourceLine, Stamp, StepKind, TraceEvent
from tracelog.parse.fields import Field, FieldError, FieldsTransformer, build_header
from tracelog.parse.grammar import load_parser
from tracelog.parse.kernel import MARK, _event, _KernelTransformer
from tracelog.parse.netlink import NFPROTO_FAMILIES, bad_line, proto_name, tcp_flag_names, tos_fields
from tracelog.parse.outcome import BadLine, Outcome, Skip

_TRANSFORMER = merge_transformers(_KernelTransformer(), logfields=FieldsTransformer())  # type: ignore[no-untyped-call]

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
_IPV6_HEADER = 40  # ip6.payloadlen leaves out the header the kernel's LEN= counts

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
    return load_parser("ulogd", ("line", "oob_prefix"), _TRANSFORMER).parse(text, start=start)


# ---- LOGEMU


def _tag_end(text: str) -> int:
    """The column just past the TRACE tag, where the packet fields start."""
    tag = text.find(MARK) + len(MARK) + 1
    end = text.find(" ", tag)
    return len(text) if end < 0 else end + 1


def parse_logemu_line(origin: SourceLine, year: int) -> Iterator[Outcome]:
    """One LOGEMU line: an event, or a look-alike whose prefix is not a TRACE tag (ebtables, NFLOG rules)."""
    try:
        prefix, trace = _parse(origin.text, "line")
    except (UnexpectedInput, FieldError) as error:
        if isinstance(error, UnexpectedInput) and error.column <= _tag_end(origin.text):
            yield Skip.LOOKALIKE
        else:
            yield bad_line(origin, error)
        return
    yield _event(trace, prefix, origin, year)


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
    """The kernel fields of `table` that the record has (empty interface names are absent ones)."""
    pairs: list[Field] = []
    for keys, name in table:
        key = _key(record, keys)
        if key is not None and record[key] != "":
            pairs.append((name, str(record[key]) if name in _TEXT_FIELDS else _int(record, key)))
    return pairs


def _addresses(record: dict[str, Any]) -> list[Field]:
    pairs: list[Field] = []
    for keys, name in _ADDRESSES:
        key = _key(record, keys)
        try:
            pairs.append((name, ipaddress.ip_address(record[key] if key else "")))
        except ValueError:
            raise FieldError(f"no IP address in {keys[0]!r} ({keys[1]!r})") from None
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
        pairs.append(("LEN", _int(record, "ip6.payloadlen") + _IPV6_HEADER))
    if "ip6.fragid" in record:
        pairs.append(("FRAG", f"FRAG:{_int(record, 'ip6.fragoff')} ID:{_int(record, 'ip6.fragid'):08x}"))
    return pairs


def _transport_fields(record: dict[str, Any]) -> list[Field]:
    proto = proto_name(_int(record, "ip.protocol")) if "ip.protocol" in record else "?"
    pairs = [("PROTO", proto), *_pairs(record, _PORTS), *_pairs(record, _TRANSPORT.get(proto, ()))]
    if proto == "TCP":
        bits = sum(bit for key, bit in _TCP_FLAG_KEYS if record.get(key))
        pairs += [("FLAG", name) for name in tcp_flag_names(bits)]
    return pairs


def _json_header(record: dict[str, Any]) -> Header | None:
    """The packet of one JSON record; None if it is not IP (ARP through a bridge)."""
    if _key(record, _ADDRESSES[0][0]) is None and any(key.startswith("arp.") for key in record):
        return None
    addresses = _addresses(record)
    network = _ipv6_fields(record) if addresses[0][1].version == 6 else _ipv4_fields(record)
    extra = [
        ("EXTRA", (key, str(value)))
        for key, value in record.items()
        if key not in _MAPPED and key not in _READ_ELSEWHERE
    ]
    fields = [*_pairs(record, _LINK), *addresses, *network, *_transport_fields(record), *_pairs(record, _OWNER)]
    return build_header([*fields, *extra], complete=False)


def _json_stamp(record: dict[str, Any]) -> Stamp:
    """When ulogd received the record: the kernel's time stamp if sent, else ulogd's local-time `timestamp`."""
    try:
        if "oob.time.sec" in record:
            microseconds = _int(record, "oob.time.usec") if "oob.time.usec" in record else 0
            return Stamp(wallclock=datetime.fromtimestamp(_int(record, "oob.time.sec") + microseconds / 1e6, UTC))
        return Stamp(wallclock=datetime.fromisoformat(record["timestamp"])) if "timestamp" in record else Stamp()
    except (TypeError, ValueError, OverflowError, OSError):
        raise FieldError("oob.time.sec/usec or timestamp is not a time") from None


def _json_event(record: dict[str, Any], tag: tuple[str, str, str, int], origin: SourceLine) -> TraceEvent | Skip:
    header = _json_header(record)
    if header is None:
        return Skip.NON_IP
    table, chain, kind, number = tag
    step_kind: StepKind = kind  # type: ignore[assignment]  # the grammar allows only these three
    family = NFPROTO_FAMILIES.get(_int(record, "oob.family")) if "oob.family" in record else None
    return TraceEvent(
        table=table,
        chain=chain,
        kind=step_kind,
        header=header,
        rulenum=number,
        stamp=_json_stamp(record),
        nf_family=family,
        origin=origin,
    )


def _json_record(origin: SourceLine) -> dict[str, Any] | Outcome:
    """The JSON object of a line, or what the line is if it holds none."""
    try:
        record = json.loads(origin.text)
    except ValueError as error:
        if MARK not in origin.text:
            return Skip.OTHER
        column = error.colno if isinstance(error, json.JSONDecodeError) else None
        return BadLine(origin, column, f"not JSON: {error}")
    return record if isinstance(record, dict) else Skip.OTHER


def parse_json_line(origin: SourceLine) -> Iterator[Outcome]:
    """One line of ulogd's JSON output: an event when its `oob.prefix` is a TRACE tag."""
    record = _json_record(origin)
    if not isinstance(record, dict):
        yield record
        return
    prefix = record.get("oob.prefix")
    if not isinstance(prefix, str) or not prefix.lstrip().startswith(MARK):
        yield Skip.OTHER
        return
    try:
        tag = _parse(prefix, "oob_prefix")
    except UnexpectedInput:
        yield Skip.LOOKALIKE
        return
    try:
        yield _json_event(record, tag, origin)
    except FieldError as error:
        yield BadLine(origin, None, str(error))
