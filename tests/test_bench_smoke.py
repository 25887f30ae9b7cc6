"""Smoke test of the benchmark: the builder keeps packets distinct, and bench/run.py completes.

No timing is asserted anywhere: performance claims come only from a real
`python bench/run.py` on a stated machine.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench import build, expect

ROOT = Path(__file__).resolve().parent.parent
SIZES = [("kernel", 2000), ("nft", 1000), ("xtables", 1000)]


def shape(line: str) -> str:
    """A line with its numbers blanked: the stamp, trace ids, then every digit run."""
    line = re.sub(r"^\[\s*\d+\.\d+\]", "[T]", line)
    line = re.sub(r"^(trace id |PACKET: \d+ | TRACE: \d+ )[0-9a-f]{8} ", r"\1X ", line)
    return re.sub(r"\d+", "N", line)


@pytest.mark.parametrize(("fmt", "lines"), SIZES)
def test_a_built_input_holds_copies_times_the_packets_of_its_captures(fmt: str, lines: int, tmp_path: Path) -> None:
    manifest = build.build(fmt, lines, tmp_path)
    counts = expect.source_counts(fmt)
    assert counts.straddling == 0
    found, straddling = expect.tracelog_packets([manifest.path])
    assert straddling == 0
    assert manifest.lines >= lines
    assert sum(found.values()) == expect.expected_packets(manifest.copies, counts.packets)


@pytest.mark.parametrize(("fmt", "lines"), SIZES)
def test_a_built_input_only_rewrites_numbers_in_captured_lines(fmt: str, lines: int, tmp_path: Path) -> None:
    manifest = build.build(fmt, lines, tmp_path)
    captured = {shape(line) for path in build.sources(fmt) for line in path.read_text().splitlines()}
    built = manifest.path.read_text().splitlines()
    assert len(built) == manifest.lines
    assert {shape(line) for line in built} <= captured


def test_kernel_stamps_stay_monotonic(tmp_path: Path) -> None:
    manifest = build.build("kernel", 2000, tmp_path)
    stamps = [float(line[1:].split("]", 1)[0]) for line in manifest.path.read_text().splitlines()]
    assert stamps == sorted(stamps)


@pytest.mark.parametrize("fmt", ["nft", "xtables"])
def test_every_copy_gets_its_own_trace_ids(fmt: str, tmp_path: Path) -> None:
    manifest = build.build(fmt, 1000, tmp_path)
    built = {line.split()[2] for line in manifest.path.read_text().splitlines()}
    per_capture = {
        build.load(fmt, path).name: {line.split()[2] for line in path.read_text().splitlines()}
        for path in build.sources(fmt)
    }
    assert len(built) == sum(count * len(per_capture[name]) for name, count in manifest.copies.items())


def test_the_bench_runs_end_to_end(tmp_path: Path) -> None:
    command = [sys.executable, "bench/run.py", "--lines", "2000", "--repeat", "1", "--no-live", "--out", str(tmp_path)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert "### Throughput" in result.stdout
    assert "tracelog parse --format jsonl" in result.stdout
    assert (tmp_path / "results.md").read_text().strip() == result.stdout.strip()
