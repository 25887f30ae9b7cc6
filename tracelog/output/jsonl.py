"""`--format jsonl`: one JSON object per packet, the contract other tools read (README, "Output contract")."""

from __future__ import annotations

import json
from collections.abc import Mapping

import orjson

from tracelog.output.format import Format, UnnumberedText
from tracelog.records.packet import PacketRecord
from tracelog.wording import TERMINAL_CONTROLS

_PACKET_KEY = '{"packet":'
# What terminals act on that JSON may carry raw (C0 is escaped already): DEL, C1 (U+009B is
# CSI), the bidirectional overrides; written as JSON's own escapes, the values stay the same.
_RAW_CONTROLS = {code: f"\\u{code:04x}" for code in TERMINAL_CONTROLS if code >= 0x7F}


def json_line(record: Mapping[str, object]) -> str:
    """One record as a JSON line: orjson, or the standard library for what orjson refuses.

    orjson is several times faster on the big records of a busy log; it
    refuses integers beyond 64 bits (a mangled field can hold one) and lone
    surrogates, which `json` still writes.  Nothing in it acts on a terminal.
    """
    try:
        text = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE).decode()
    except orjson.JSONEncodeError:
        return json.dumps(record, separators=(",", ":")) + "\n"  # all but ASCII escaped
    return text if text.isascii() else text.translate(_RAW_CONTROLS)


def _json_members(fields: dict[str, object]) -> str:
    """`"a":1,"b":2`: the members of a JSON object, to be joined with others into one."""
    return json_line(fields)[1:-2]  # without the braces and the line end


def prepare_json_line(record: PacketRecord) -> UnnumberedText:
    """A record's JSON line but for its packet and flow numbers, made from the record's named parts.

    The contract's order puts `packet` first and `flow` later: the members
    between them and those after `flow` are written now.
    """
    members = list(record.items())
    flow = [name for name, _ in members].index("flow")
    between, after = dict(members[1:flow]), dict(members[flow + 1 :])
    return UnnumberedText(_PACKET_KEY, f',{_json_members(between)},"flow":', f",{_json_members(after)}}}\n")


JSON_LINES = Format(prepare_json_line, UnnumberedText.finish)
"""`--format jsonl`: each record's JSON line, written where the record is made."""
