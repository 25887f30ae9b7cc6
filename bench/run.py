"""tracelog's benchmark: throughput against a read-only loop and a naive script, live memory and latency.

Run from the repository root:

    python bench/run.py                          # defaults: 1M-line kernel log, 200k-line monitors, ~8-9 min
    python bench/run.py --lines 2000 --repeat 1 --no-live   # the smoke test's quick run

For each built input (see bench/build.py: copies of the real captures) it
times, several times (median), a loop that only reads the lines (the
ceiling), bench/naive.py, `tracelog parse --format jsonl` and `--format table`
(and `tracelog summary` once it exists), each child's stdout to /dev/null;
once more `--format jsonl --jobs 1`, to show what one process does alone.
The naive script and `--format jsonl` run in turn, round after round, with a
budget of their own (no new round after 120 s: two or three rounds on the 1M-line
file), since their ratio is the headline.  Then `--format jsonl` on every format at
the monitors' size (a kernel log built at it too), in turn: lines/s of paths
whose fixed costs weigh alike.
Then it streams a 10M-line kernel log into tracelog on stdin to see whether
its memory stays flat, and times how soon a packet prints on a live pipe.
With `--pathological`, it times the inputs of bench/hostile.py (floods of
packets sharing an IP id, huge fields, many hosts, garbage) against an
ordinary input of the same size, per MB.
The report is Markdown on stdout (also saved as bench/out/results.md);
progress goes to stderr.  A per-cell time budget (60 s: one whole run of the
1M-line file) keeps the whole run short; a tracelog run that outlasts it is killed and its
speed is taken over the part it read, which the report says.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: import the bench package

from bench import build, expect, hostile, live, report
from bench.expect import SourceCounts
from bench.measure import ROOT, TRACELOG, Cell, Turn, byte_compile, child_env, measure, measure_in_turn

CEILING_CODE = "import sys\nfor _ in open(sys.argv[1], encoding='utf-8', errors='replace'): pass"
LATENCY_CAPTURE = build.SAMPLES / "docker-legacy/ping.dmesg"


def arguments(argv: list[str] | None) -> argparse.Namespace:
    """The options, with defaults that finish well within 10 minutes on 2 cores."""
    parser = argparse.ArgumentParser(prog="python bench/run.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="kernel-log input size (default 1M)")
    parser.add_argument("--monitor-lines", type=int, help="nft / xtables-monitor input size (default: lines / 5)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool and input; the median is reported")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per tool and input (default 60)")
    parser.add_argument(
        "--pair-budget",
        type=float,
        default=120.0,
        help="no new round of the alternating naive / jsonl runs once this many seconds are spent (default 120)",
    )
    parser.add_argument("--out", type=Path, default=build.OUT, help="where inputs and results.md go")
    parser.add_argument("--no-live", action="store_true", help="skip the live memory and latency checks")
    parser.add_argument("--live-lines", type=int, default=10_000_000, help="lines streamed for the memory check")
    parser.add_argument("--live-seconds", type=float, default=60.0, help="at most this long streaming (default 60)")
    parser.add_argument("--idle", type=float, default=0.5, help="tracelog --idle for the latency check")
    parser.add_argument("--latency-copies", type=int, default=3, help="copies of the latency capture to write")
    parser.add_argument(
        "--pathological",
        action="store_true",
        help="also time pathological inputs against an ordinary one (bench/hostile.py)",
    )
    parser.add_argument(
        "--pathological-mb", type=float, default=4.0, help="size of each pathological input (default 4 MB)"
    )
    parser.add_argument(
        "--against",
        type=Path,
        action="append",
        default=[],
        help="with --pathological: another source tree (tracelog/ and grammars/, e.g. from "
        "`git archive COMMIT tracelog grammars`) measured in turn with this one; repeatable",
    )
    return parser.parse_args(argv)


def has_summary() -> bool:
    """Whether this tracelog has a `summary` command yet."""
    probe = [*TRACELOG, "summary", "--help"]
    return subprocess.run(probe, capture_output=True, check=False, cwd=ROOT, env=child_env()).returncode == 0


def jsonl_command(path: Path) -> list[str]:
    """`tracelog parse --format jsonl PATH`: the headline run."""
    return [*TRACELOG, "parse", "--format", "jsonl", str(path)]


def tools(path: Path, summary: bool) -> list[tuple[str, list[str], bool]]:
    """(name, command, is a reference) for every tool timed on `path`."""
    python = sys.executable
    found = [
        (report.CEILING, [python, "-c", CEILING_CODE, str(path)], True),
        (report.NAIVE, [python, str(ROOT / "bench" / "naive.py"), str(path)], True),
        (report.JSONL, jsonl_command(path), False),
        ("tracelog parse --format table", [*TRACELOG, "parse", "--format", "table", str(path)], False),
        (report.ONE_PROCESS, [*TRACELOG, "parse", "--format", "jsonl", "--jobs", "1", str(path)], False),
    ]
    if summary:
        found.append(("tracelog summary", [*TRACELOG, "summary", str(path)], False))
    return found


def bench_input(
    manifest: build.Manifest, counts: SourceCounts, args: argparse.Namespace, summary: bool
) -> report.InputResult:
    """Every tool on one input."""
    cells: list[Cell] = []
    found = tools(manifest.path, summary)
    jsonl = next(command for name, command, _ in found if name == report.JSONL)
    for name, command, reference in found:
        if name == report.JSONL:
            continue  # measured in turn with the naive script
        if name == report.NAIVE:
            report.progress(f"{manifest.path.name}: {name} and {report.JSONL}, in turn")
            turns = [
                Turn(name, command, manifest.path, manifest.lines, None),
                Turn(report.JSONL, jsonl, manifest.path, manifest.lines, args.budget),
            ]
            cells += measure_in_turn(turns, args.repeat, args.pair_budget)
            continue
        report.progress(f"{manifest.path.name}: {name}")
        repeat = 1 if name == report.ONE_PROCESS else args.repeat  # shown for comparison: one run is enough
        cells.append(measure(name, command, manifest.path, manifest.lines, repeat, args.budget, not reference))
    expected = expect.expected_packets(manifest.copies, counts.packets)
    copies = sum(manifest.copies.values())
    title = f"{build.FORMATS[manifest.fmt].title}, {copies:,} copies of {len(manifest.copies)} captures"
    groups, packets = sum(counts.groups.values()), sum(counts.packets.values())
    naive = f"on the captures alone: {groups:,} groups where tracelog finds {packets:,} packets"
    return report.InputResult(manifest, title, cells, expected, naive)


def one_size(manifests: list[build.Manifest], args: argparse.Namespace) -> list[Cell]:
    """`--format jsonl` on every format at the monitors' size, in turn: lines/s as paths, start-up weighing alike.

    A run's fixed costs (start-up, a worker's lead-in) weigh five times more
    on the monitors' 200k lines than on the 1M-line kernel log, so the
    paths are compared on inputs of one size: a kernel log built at it.
    """
    monitors = [manifest for manifest in manifests if manifest.fmt != "kernel"]
    size = monitors[0].lines
    kernel = build.ensure("kernel", size, args.out)
    report.progress(f"one size: {report.JSONL} on {size:,} lines of every format, in turn")
    turns = [
        Turn(
            build.FORMATS[manifest.fmt].title, jsonl_command(manifest.path), manifest.path, manifest.lines, args.budget
        )
        for manifest in [kernel, *monitors]
    ]
    return measure_in_turn(turns, args.repeat, args.pair_budget)


def live_checks(args: argparse.Namespace) -> tuple[live.Memory, live.Latency]:
    """The endless-pipe memory check, then the open-pipe latency check."""
    report.progress(f"live memory: streaming up to {args.live_lines:,} lines for at most {args.live_seconds:g} s")
    memory = live.memory(args.live_lines, args.live_seconds)
    report.progress(f"live latency: {args.latency_copies} copies of {LATENCY_CAPTURE.name}, --idle {args.idle:g}")
    return memory, live.latency(LATENCY_CAPTURE, args.latency_copies, args.idle)


def pathological_section(args: argparse.Namespace) -> list[str]:
    """Every case of bench/hostile.py at `--pathological-mb`, beside an ordinary input, each tree in turn."""
    trees = {"this tree": ROOT, **{str(tree): tree.resolve() for tree in args.against}}
    for tree in trees.values():
        byte_compile(tree)
    size = int(args.pathological_mb * hostile.MB)
    report.progress(f"pathological inputs: {len(hostile.CASES)} cases at {args.pathological_mb:g} MB")
    return hostile.section(hostile.measure(size, trees, args.out, args.repeat, args.budget))


def main(argv: list[str] | None = None) -> int:
    """Build, measure, report."""
    args = arguments(argv)
    began, load = time.monotonic(), os.getloadavg()
    sizes = {"kernel": args.lines, "nft": args.monitor_lines or max(args.lines // 5, 1)}
    sizes["xtables"] = sizes["nft"]
    counts = {}
    for fmt in sizes:
        report.progress(f"counting packets in the {fmt} captures")
        counts[fmt] = expect.source_counts(fmt)
    manifests = []
    for fmt, size in sizes.items():
        report.progress(f"input: {fmt}, {size:,} lines (built if missing) in {args.out}")
        manifests.append(build.ensure(fmt, size, args.out))
    byte_compile()
    summary = has_summary()
    results = [bench_input(manifest, counts[manifest.fmt], args, summary) for manifest in manifests]
    same_size = one_size(manifests, args)
    checks = None if args.no_live else live_checks(args)
    pathological = pathological_section(args) if args.pathological else []
    settings = f"--lines {args.lines} --repeat {args.repeat} --budget {args.budget:g}"
    settings += f" --pair-budget {args.pair_budget:g}"
    settings += "" if args.no_live else f" --live-lines {args.live_lines} --live-seconds {args.live_seconds:g}"
    settings += f" --pathological --pathological-mb {args.pathological_mb:g}" if args.pathological else ""
    took = time.monotonic() - began
    text = report.document(load, settings, results, same_size, list(counts.values()), checks, took, pathological)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
