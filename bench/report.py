"""The bench's results as Markdown, ready to paste into the README, with the machine they came from.

Figures without the machine are not comparable, and this one is shared: the
load average before and after the run is printed so a reader can judge.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.build import Manifest
from bench.expect import SourceCounts
from bench.live import Latency, Memory
from bench.measure import Cell


def _proc_field(path: str, name: str) -> str:
    try:
        text = Path(path).read_text()
    except OSError:
        return "?"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return "?"


def machine(load_before: tuple[float, float, float]) -> list[str]:
    """What the figures were measured on."""
    memory = _proc_field("/proc/meminfo", "MemTotal")
    gib = f"{int(memory.split()[0]) / 1024**2:.0f} GiB" if memory[:1].isdigit() else "?"
    load_after = os.getloadavg()
    return [
        f"- machine: {len(os.sched_getaffinity(0))} CPUs (nproc), {_proc_field('/proc/cpuinfo', 'model name')}, {gib}",
        f"- Linux {platform.release()}, Python {platform.python_version()} ({platform.python_implementation()})",
        f"- load average (1/5/15 min) before: {_load(load_before)}, after: {_load(load_after)}",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
    ]


def _load(load: tuple[float, float, float]) -> str:
    return " / ".join(f"{value:.2f}" for value in load)


def _int(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _times(reference: float | None, value: float | None) -> str:
    """How many times longer per line than the reference took."""
    if not reference or not value:
        return "—"
    ratio = reference / value
    return f"{ratio:,.0f}×" if ratio >= 100 else f"{ratio:.1f}×" if ratio >= 1 else f"{ratio:.2g}×"


@dataclass
class InputResult:
    """One built input and every tool's cell on it."""

    manifest: Manifest
    title: str
    cells: list[Cell]
    expected: int | None = None
    naive_note: str = ""

    def cell(self, tool: str) -> Cell | None:
        return next((cell for cell in self.cells if cell.tool == tool), None)


CEILING, NAIVE, JSONL = "read-only ceiling", "naive regex", "tracelog parse --format jsonl"
ONE_PROCESS = "tracelog parse --format jsonl --jobs 1"


def _note(cell: Cell, expected: int | None) -> str:
    """Why a figure is partial, an exit that was not OK, and the packets found against those expected."""
    killed = cell.killed
    if killed is not None:
        read = "?" if killed.lines_read is None else f"{killed.lines_read:,}"
        return f"killed at the {killed.wall:.0f} s budget, {read} of {cell.lines:,} lines read: lines/s of that part"
    last = cell.samples[-1]
    notes = [] if last.status == 0 else [f"exit {last.status}: {last.stderr.strip().splitlines()[-1:]}"]
    packets = last.packets()
    if packets is not None:
        notes.append(f"{packets:,} packets" + ("" if expected is None else f" (expected {expected:,})"))
    return "; ".join(notes)


def _rounds(naive: Cell, jsonl: Cell) -> str:
    """Each round's ratio of the two tools run in turn: the spread behind the medians."""
    pairs = zip(naive.samples, jsonl.samples, strict=True)
    ratios = [f"{run.wall / base.wall:.2f}×" for base, run in pairs if not run.killed]
    return f"round by round {', '.join(ratios)} the naive time" if len(ratios) > 1 else ""


def throughput(results: Sequence[InputResult]) -> list[str]:
    """One row per input and tool."""
    rows = [
        "| input | tool | runs | wall s (median) | CPU s | lines/s | time × ceiling | time × naive | peak RSS MB "
        "| notes |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for result in results:
        ceiling, naive = result.cell(CEILING), result.cell(NAIVE)
        top = ceiling.lines_per_second if ceiling else None
        base = naive.lines_per_second if naive else None
        for index, cell in enumerate(result.cells):
            label = f"{result.title}: {result.manifest.lines:,} lines" if index == 0 else ""
            wall = f"> {cell.wall:.1f}" if cell.killed else f"{cell.wall:.2f}"
            speed = cell.lines_per_second
            note = result.naive_note if cell.tool == NAIVE else _note(cell, result.expected)
            if cell.tool == JSONL and naive is not None:
                note = "; ".join(filter(None, [note, _rounds(naive, cell)]))
            rows.append(
                f"| {label} | {cell.tool} | {len(cell.samples)} | {wall} | {cell.cpu:.2f} | {_int(speed)} "
                f"| {_times(top, speed)} | {_times(base, speed)} | {cell.max_rss_mb:,.0f} | {note} |"
            )
    return rows


def one_size(cells: Sequence[Cell]) -> list[str]:
    """Every format's lines/s at one input size, against the kernel log's (the first cell), round by round."""
    rows = [
        "| input | lines | runs | wall s (median) | lines/s | × the kernel log's lines/s | round by round |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    kernel = cells[0]
    for cell in cells:
        speed, base = cell.lines_per_second, kernel.lines_per_second
        ratio = f"{speed / base:.2f}×" if speed and base else "?"
        rounds = ", ".join(
            f"{(cell.lines / run.wall) / (kernel.lines / first.wall):.2f}×"
            for first, run in zip(kernel.samples, cell.samples, strict=False)
            if not run.killed
        )
        rows.append(
            f"| {cell.tool} | {cell.lines:,} | {len(cell.samples)} | {cell.wall:.2f} | {_int(speed)} "
            f"| {ratio} | {rounds if cell is not kernel else ''} |"
        )
    return rows


def sources(counts: Sequence[SourceCounts]) -> list[str]:
    """How the naive script's groups compare with tracelog's packets on the captures themselves."""
    rows = [
        "| format | captures | lines | tracelog packets | naive groups |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for count in counts:
        rows.append(
            f"| {count.fmt} | {len(count.lines)} | {sum(count.lines.values()):,} | {sum(count.packets.values()):,} "
            f"| {sum(count.groups.values()):,} |"
        )
    return rows


def memory(result: Memory) -> list[str]:
    """The streamed run's RSS, first half against second half."""
    first, last = result.halves()
    lines = "?" if result.lines is None else f"{result.lines:,}"
    rate = "?" if result.lines is None or not result.seconds else f"{result.lines / result.seconds:,.0f}"
    verdict = "flat" if result.flat else "**grows**"
    end = result.samples[-1][1] / 1024 if result.samples else 0
    ended = "the stream ended" if result.finished else f"the {result.seconds:.0f} s limit"
    return [
        "| planned lines | streamed | seconds | lines/s | peak RSS MB 1st half | 2nd half | at the end | verdict |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        f"| {result.planned:,} | {lines} | {result.seconds:.0f} | {rate} | {first / 1024:,.0f} | {last / 1024:,.0f} "
        f"| {end:,.0f} | {verdict} |",
        "",
        f"Stopped at {ended}; RSS read from /proc every second ({len(result.samples)} samples); "
        f"flat means the second half's peak is within 10 % of the first half's.",
    ]


def latency(result: Latency) -> list[str]:
    """Delay from a packet's last line to its JSON line."""
    measured = sorted(result.measured)
    missing = len(result.delays) - len(measured)
    low = f"{measured[0] * 1000:.0f}" if measured else "—"
    high = f"{measured[-1] * 1000:.0f}" if measured else "—"
    middle = "—" if result.median is None else f"{result.median * 1000:.0f}"
    verdict = "met" if result.met else "**missed**"
    return [
        "| capture | packets timed | idle | min ms | median ms | max ms | target ms | verdict |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        f"| {result.capture} | {len(measured)} | {result.idle:g} s | {low} | {middle} | {high} "
        f"| {result.target * 1000:.0f} | {verdict} |",
        "",
        f"Target: every packet within idle + 100 ms. {missing} packets never printed in idle + 5 s; "
        f"{result.printed} JSON lines in all (one per packet written, the warm-up included).",
    ]


def document(
    load_before: tuple[float, float, float],
    settings: str,
    results: Sequence[InputResult],
    same_size: Sequence[Cell],
    counts: Sequence[SourceCounts],
    live: tuple[Memory, Latency] | None,
    took: float,
    pathological: Sequence[str] = (),
) -> str:
    """The whole report; `pathological`, the section of `bench.hostile` if it ran."""
    parts = [
        "## Benchmark",
        "",
        *machine(load_before),
        f"- settings: {settings}; the whole bench took {took:.0f} s",
        "",
    ]
    parts += ["### Throughput", "", *throughput(results), ""]
    parts += [
        "lines/s: input lines over the median wall time of whole runs (start-up included, from bytecode as",
        "installed); `time × ceiling` and",
        "`time × naive`: how many times longer per line than the read-only loop and the naive script; CPU s:",
        "user + system time of the child and its workers (a shared machine shows as wall above CPU).  tracelog",
        f"reads one big plain file with one process per CPU ({len(os.sched_getaffinity(0))} here; `--jobs 1`: one "
        "process alone); peak RSS is",
        "its processes' resident memory added up, sampled every 0.1 s (or the largest single process's peak,",
        "by wait4, if that is larger).  A tracelog run still going at the per-cell budget is killed, and its",
        "lines/s counts the lines its main process had read (its file offset).  The naive script's groups are",
        "not packets: see the next table.",
        "",
        f"### Every format at one size: {JSONL}, in turn",
        "",
        *one_size(same_size),
        "",
        "The throughput table's inputs differ in size, and a run's fixed costs (start-up, a worker's lead-in of",
        "one correlation window) weigh more on a smaller one; here each format's path reads as many lines, the",
        "tools taking turns round after round (the order rotating), each round's ratio beside the medians.",
        "",
        "### Packets on the source captures",
        "",
        *sources(counts),
        "",
    ]
    if live is not None:
        parts += ["### Live memory: `tracelog parse --format jsonl` on an endless pipe", "", *memory(live[0]), ""]
        parts += ["### Live latency: `tracelog parse --format jsonl --idle` on an open pipe", "", *latency(live[1]), ""]
    if pathological:
        parts += [*pathological, ""]
    return "\n".join(parts)


def progress(message: str) -> None:
    """What the bench is doing, on stderr, so stdout stays the report."""
    print(f"bench: {message}", file=sys.stderr, flush=True)
