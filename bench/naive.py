"""The TRACE parser everyone writes first, kept as the benchmark's baseline.

It finds the `TRACE:` tag with a regex, splits the `KEY=VALUE` fields into a
dict and groups lines by (SRC, DST, ID), dumping one JSON object per group.
It is deliberately plain: no streaming, no hook order, no NAT.  So it merges
different packets that share an IP id (ICMP echo ids overwrite it, SYN-ACKs
carry ID=0), splits one packet whose addresses NAT rewrote, and keeps every
line in memory until the end.  Its speed is what a quick script costs; its
groups are not packets, which is the point of comparing against it.

Usage: python bench/naive.py FILE... (no file: stdin)
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import TextIO

TRACE = re.compile(r"TRACE: (\S+) (.*)")
FIELD = re.compile(r"(\w+)=(\S*)")

Fields = dict[str, str]
Key = tuple[str | None, str | None, str | None]


def trace_fields(lines: Iterable[str]) -> Iterator[Fields]:
    """The fields of each line carrying a `TRACE:` tag, the tag itself as `rule`."""
    for line in lines:
        match = TRACE.search(line)
        if match:
            fields = dict(FIELD.findall(match.group(2)))
            fields["rule"] = match.group(1)
            yield fields


def group(events: Iterable[Fields]) -> dict[Key, list[Fields]]:
    """Lines with the same source, destination and IP id, taken to be one packet."""
    groups: dict[Key, list[Fields]] = defaultdict(list)
    for fields in events:
        groups[fields.get("SRC"), fields.get("DST"), fields.get("ID")].append(fields)
    return groups


def dump(groups: dict[Key, list[Fields]], out: TextIO) -> None:
    """One JSON object per group."""
    for (src, dst, ident), steps in groups.items():
        out.write(json.dumps({"src": src, "dst": dst, "id": ident, "steps": steps}) + "\n")


def lines_of(names: list[str]) -> Iterator[str]:
    """The lines of every named file in turn, or of stdin."""
    if not names:
        yield from sys.stdin
    for name in names:
        with open(name, encoding="utf-8", errors="replace") as handle:
            yield from handle


def main(argv: list[str]) -> int:
    """Parse, group, dump."""
    dump(group(trace_fields(lines_of(argv))), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
