"""What a right answer looks like: the packets tracelog finds in each source capture, and the naive script's groups.

A built input holds whole copies of captures whose numbers were shifted so
that no two copies look alike, so a parser that gets the captures right must
find exactly copies × packets in the built input.  The per-capture count comes
from tracelog itself (one run over every capture of a format); the bench then
checks that tracelog finds the same packets at scale, and the smoke test
checks that the builder kept them distinct.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench import build, naive
from bench.measure import ROOT, TRACELOG, child_env


@dataclass(frozen=True)
class SourceCounts:
    """Per capture of one format: its lines, tracelog's packets and the naive script's groups."""

    fmt: str
    lines: dict[str, int]
    packets: dict[str, int]
    groups: dict[str, int]
    straddling: int  # packets tracelog made of lines from two captures: would make `expected` wrong


def tracelog_packets(paths: list[Path]) -> tuple[Counter[str], int]:
    """Packets per input file in one tracelog run, by the file of each packet's first step."""
    result = subprocess.run(
        [*TRACELOG, "parse", "--format", "jsonl", *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env=child_env(),
    )
    counts: Counter[str] = Counter()
    straddling = 0
    for text in result.stdout.splitlines():
        steps = json.loads(text)["steps"]
        counts[steps[0]["source"]] += 1
        straddling += len({step["source"] for step in steps}) > 1
    return counts, straddling


def naive_groups(path: Path) -> int:
    """How many "packets" the naive script would print for one capture."""
    with path.open(encoding="utf-8", errors="replace") as handle:
        return len(naive.group(naive.trace_fields(handle)))


def source_counts(fmt: str) -> SourceCounts:
    """Count every capture a format's inputs are built from."""
    paths = build.sources(fmt)
    packets, straddling = tracelog_packets(paths)
    names = {str(path): build.load(fmt, path).name for path in paths}
    return SourceCounts(
        fmt,
        {names[str(path)]: len(build.load(fmt, path).lines) for path in paths},
        {names[source]: count for source, count in packets.items()},
        {names[str(path)]: naive_groups(path) for path in paths},
        straddling,
    )


def expected_packets(copies: Mapping[str, int], packets: Mapping[str, int]) -> int:
    """Packets a built input must hold: copies of each capture × the packets in it."""
    return sum(count * packets.get(name, 0) for name, count in copies.items())
