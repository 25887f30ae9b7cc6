"""Pathological inputs made from the real captures, and what tracelog spends on them per MB.

Each case is a file of about the size asked for, written from lines of a real
capture under samples/ with only what makes the case rewritten (an IP id, a
port, a field's length, a host name), or from random bytes.  Beside them an
ordinary input of the same size (the bench's kernel log, cut there) is
measured in the same run, and each case's time and peak RSS per MB are given
as ratios to it: tracelog's cost should grow with the input's size, whatever
it holds.

Run from the repository root:

    python -m bench.hostile                            # every case at 4 MB, this tree
    python -m bench.hostile --size-mb 8 --against /tmp/old   # beside another tree, e.g. `git archive` of a commit
    python bench/run.py --pathological                 # the same section in the whole bench's report
"""

from __future__ import annotations

import argparse
import itertools
import random
import re
import statistics
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import build
from bench.measure import ROOT, Sample, byte_compile, run_once

MB = 1 << 20
FIXED_IP_ID = 54321  # zmap's
_CAPTURE = build.SAMPLES / "lab-legacy/tcp.dmesg"  # a TCP handshake through Docker's chains
_SYSLOG_CAPTURE = build.SAMPLES / "lab-legacy/rsyslog-traditional.log"
_NEAR_CAP_FIELD = 60_000  # an interface name just under tracelog's 64 KiB line limit
_STAMP = re.compile(r"^\[\s*\d+\.\d+\]")
_IP_ID = re.compile(r"(?<= )ID=\d+")  # the IP id: the first ID= (an ICMP echo id comes later)


def _first_line() -> str:
    """The capture's first line: `raw:PREROUTING:policy:3`, where every packet is first seen."""
    return _CAPTURE.read_text().splitlines()[0]


def _stamped(text: str, number: int) -> str:
    """The line with a dmesg stamp that grows by 10 µs a line."""
    seconds, micros = divmod(1_000_000_000 + 10 * number, 1_000_000)
    return _STAMP.sub(f"[{seconds:5d}.{micros:06d}]", text, count=1)


def write_lines(path: Path, size: int, lines: Iterable[str]) -> int:
    """Write whole lines until `size` bytes are reached; return how many."""
    written = count = 0
    with path.open("w", encoding="utf-8", errors="surrogateescape") as handle:
        for line in lines:
            if written >= size:
                break
            handle.write(line + "\n")
            written += len(line.encode("utf-8", "surrogateescape")) + 1
            count += 1
    return count


def ordinary_lines() -> Iterator[str]:
    """The bench's kernel log: copies of every capture, packets interleaved as on a busy host."""
    return (line.rstrip("\n") for line in build.lines(build.Plan("kernel", 1 << 40)))


def fixed_id_flood() -> Iterator[str]:
    """One-step packets that share zmap's fixed IP id (54321), each from a new source port."""
    line = _IP_ID.sub(f"ID={FIXED_IP_ID}", _first_line(), count=1)
    for number in itertools.count():
        yield _stamped(re.sub(r"SPT=\d+", f"SPT={1024 + number % 64_000}", line), number)


def scanner_flood() -> Iterator[str]:
    """zmap as a target sees it: the fixed IP id, and a new destination address for every packet."""
    line = _IP_ID.sub(f"ID={FIXED_IP_ID}", _first_line(), count=1)
    for number in itertools.count():
        address = f"DST=10.{number >> 16 & 255}.{number >> 8 & 255}.{number & 255}"
        yield _stamped(re.sub(r"DST=\S+", address, line), number)


def new_names() -> Iterator[str]:
    """The first step again and again, each time through a new bridge port: a field text no shape fits twice."""
    line = _first_line()
    for number in itertools.count():
        yield _stamped(line.replace("PHYSIN=vethb99e073", f"PHYSIN=veth{number:07x}", 1), number)


def identical_lines() -> Iterator[str]:
    """A retransmission flood: the same first step again and again, each a packet of its own."""
    line = _first_line()
    return (_stamped(line, number) for number in itertools.count())


def endless_packet() -> Iterator[str]:
    """A rule step repeated: each line can continue the packet before, which never ends."""
    line = _first_line().replace(":policy:", ":rule:", 1)
    return (_stamped(line, number) for number in itertools.count())


def _ordinary_with(special: Callable[[int], str | None]) -> Iterator[str]:
    """Ordinary lines, with `special(number)` in place of line `number` where it gives one."""
    for number, line in enumerate(ordinary_lines()):
        yield special(number) or line


def huge_fields_lines(field_bytes: int, every: int = 1_000, count: int = 3) -> Iterator[str]:
    """Ordinary lines, and `count` TRACE lines whose IN=, MAC= or SRC= value is `field_bytes` long, `every` apart.

    The long lines are steps of a captured packet (its 4th to 6th lines),
    with one field's value blown up.
    """
    captured = _CAPTURE.read_text().splitlines()
    keys = ("IN", "MAC", "SRC")

    def huge(number: int) -> str | None:
        which, rest = divmod(number - every // 2, every)
        if rest or not 0 <= which < count:
            return None
        key = keys[which % len(keys)]
        return re.sub(rf"(?<= ){key}=\S*", f"{key}={'7' * field_bytes}", captured[3 + which % len(keys)], count=1)

    return _ordinary_with(huge)


def near_cap_lines() -> Iterator[str]:
    """TRACE lines whose interface name is 60,000 characters, each a new one: just under the line limit."""
    rng = random.Random(15)
    captured = _CAPTURE.read_text().splitlines()
    for number in itertools.count():
        name = "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=_NEAR_CAP_FIELD))
        yield _stamped(captured[number % len(captured)].replace("IN=docker0", f"IN={name}", 1), number)


def many_hosts() -> Iterator[str]:
    """Syslog lines from a new host every packet run, hours apart: per-host state must not pile up."""
    for number, run in enumerate(build.packets(build.Plan("kernel", 1 << 40))):
        hours, minutes = divmod(number, 60)  # a minute a run: an hour every 60 runs
        stamp = f"Nov {1 + hours // 24 % 28:2d} {hours % 24:02d}:{minutes:02d}:{number % 60:02d}"
        for line in run:
            yield f"{stamp} host-{number} kernel: {line}"


def write_random_bytes(path: Path, size: int) -> int:
    """Garbage: random bytes, lines wherever a newline falls (about every 256 bytes); the lines written."""
    data = random.Random(15).randbytes(size)
    path.write_bytes(data)
    return data.count(b"\n")


def write_no_newline(path: Path, size: int) -> int:
    """Garbage without a single newline: one line of printable characters as long as the file."""
    rng = random.Random(15)
    with path.open("wb") as handle:
        left = size
        while left > 0:
            block = bytes(rng.choices(range(32, 127), k=min(left, MB)))
            handle.write(block)
            left -= len(block)
    return 1


@dataclass(frozen=True)
class Case:
    """A kind of input, and how to write it at a size."""

    name: str
    title: str
    write: Callable[[Path, int], int]


def _lines_case(name: str, title: str, lines: Callable[[], Iterable[str]]) -> Case:
    return Case(name, title, lambda path, size: write_lines(path, size, lines()))


def _huge_fields(path: Path, size: int) -> int:
    """Three lines whose fields take a quarter of the input each, spread among ordinary lines (~300 bytes)."""
    return write_lines(path, size, huge_fields_lines(size // 4, every=max(size // 4 // 300 // 3, 10)))


ORDINARY = _lines_case("ordinary", "ordinary kernel log (the bench's copies of every capture)", ordinary_lines)
CASES = [
    _lines_case("fixed-id", f"same-id flood: one-step packets sharing IP id {FIXED_IP_ID}", fixed_id_flood),
    _lines_case("scanner", f"scanner: IP id {FIXED_IP_ID}, a new destination each packet", scanner_flood),
    _lines_case("identical", "retransmission flood: one TRACE line again and again", identical_lines),
    _lines_case("new-names", "one TRACE line again and again, each time from a new bridge port", new_names),
    _lines_case("endless", "a packet that never ends: one rule step repeated", endless_packet),
    Case("huge-fields", "huge fields: 3 TRACE lines with IN=, MAC=, SRC= of a quarter of the input each", _huge_fields),
    _lines_case(
        "near-cap", f"long lines under the limit: a new {_NEAR_CAP_FIELD:,}-character IN= each", near_cap_lines
    ),
    _lines_case("many-hosts", "many hosts, many hours: syslog lines, a new host each packet run", many_hosts),
    Case("random", "all garbage: random bytes", write_random_bytes),
    Case("no-newline", "all garbage, no newline: one line as long as the input", write_no_newline),
]


@dataclass(frozen=True)
class Run:
    """Every run of one tracelog on one input."""

    case: Case
    tree: str
    size: int
    lines: int
    samples: tuple[Sample, ...]

    @property
    def cpu(self) -> float:
        return statistics.median(sample.cpu for sample in self.samples)

    @property
    def wall(self) -> float:
        return statistics.median(sample.wall for sample in self.samples)

    @property
    def rss_mb(self) -> float:
        return max(sample.max_rss_kb for sample in self.samples) / 1024

    @property
    def killed(self) -> Sample | None:
        return next((sample for sample in self.samples if sample.killed), None)

    def cpu_per_mb(self) -> float:
        """CPU seconds per MB of input; of a run killed at its budget, per MB it had read."""
        killed = self.killed
        if killed is not None and killed.bytes_read:
            return killed.cpu / (killed.bytes_read / MB)
        return self.cpu / (self.size / MB)


def tracelog_command(path: Path) -> list[str]:
    return [sys.executable, "-m", "tracelog", "parse", "--format", "jsonl", "--jobs", "1", str(path)]


def measure(
    sizes: int, trees: dict[str, Path], out: Path, repeat: int, budget: float, cases: Sequence[Case] = CASES
) -> list[Run]:
    """Every case and the ordinary input, each tree in turn (order rotating), `repeat` rounds."""
    out.mkdir(parents=True, exist_ok=True)
    runs: list[Run] = []
    for case in [ORDINARY, *cases]:
        path = out / f"hostile-{case.name}-{sizes}.log"
        lines = case.write(path, sizes)
        samples: dict[str, list[Sample]] = {name: [] for name in trees}
        names = list(trees)
        for round_ in range(repeat):
            shift = round_ % len(names)
            for name in [*names[shift:], *names[:shift]]:
                _progress(f"{case.name}: {name}, round {round_ + 1}")
                samples[name].append(run_once(tracelog_command(path), path, budget, trees[name]))
        runs += [Run(case, name, path.stat().st_size, lines, tuple(samples[name])) for name in trees]
        path.unlink()
    return runs


def _ratio(value: float, reference: float) -> str:
    ratio = value / reference if reference else float("nan")
    return f"{ratio:.1f}×" if ratio < 100 else f"{ratio:,.0f}×"


def report(runs: Sequence[Run]) -> list[str]:
    """One row per case and tree: CPU and peak RSS per MB, and as ratios to the ordinary input in that tree."""
    ordinary = {run.tree: run for run in runs if run.case is ORDINARY}
    rows = [
        "| input | tree | MB | lines | exit | wall s | CPU s | CPU s / MB | × ordinary | peak RSS MB | RSS MB / MB "
        "| × ordinary |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in runs:
        base = ordinary[run.tree]
        mb = run.size / MB
        killed = run.killed
        status = "killed" if killed else str(run.samples[-1].status)
        wall = f"> {run.wall:.0f}" if killed else f"{run.wall:.2f}"
        cpu_mb = run.cpu_per_mb()
        rows.append(
            f"| {run.case.title} | {run.tree} | {mb:.1f} | {run.lines:,} | {status} | {wall} | {run.cpu:.2f} "
            f"| {cpu_mb:.2f} | {_ratio(cpu_mb, base.cpu_per_mb())} | {run.rss_mb:.0f} | {run.rss_mb / mb:.1f} "
            f"| {_ratio(run.rss_mb, base.rss_mb)} |"
        )
    return rows


NOTES = [
    "Each input is written from a real capture (or random bytes) at the size shown, and read with",
    "`tracelog parse --format jsonl --jobs 1`; the ordinary input is the bench's kernel log cut at the same",
    "size, measured in the same run.  CPU s: user + system of the run (median of the rounds); peak RSS: the",
    "largest of the rounds.  `× ordinary`: per MB, against the ordinary input read by the same tree.  A run",
    "still going at the budget is killed, and its CPU per MB counts what it had read (its file offset).",
]


def section(runs: Sequence[Run]) -> list[str]:
    """The report's pathological-input section."""
    return ["### Pathological input: time and memory per MB", "", *report(runs), "", *NOTES]


def _progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=float, default=4.0, help="size of each input (default 4 MB)")
    parser.add_argument("--repeat", type=int, default=2, help="rounds; the median CPU time is reported (default 2)")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds a run may take before it is killed")
    parser.add_argument(
        "--against",
        type=Path,
        action="append",
        default=[],
        help="another source tree to measure in turn with this one (holding tracelog/ and "
        "grammars/, e.g. from `git archive COMMIT tracelog grammars`); repeatable",
    )
    parser.add_argument(
        "--case",
        action="append",
        choices=[case.name for case in CASES],
        help="only this case (repeatable; default: all)",
    )
    parser.add_argument("--out", type=Path, default=build.OUT, help="where the inputs are written (and removed)")
    args = parser.parse_args(argv)
    trees = {"this tree": ROOT, **{str(tree): tree.resolve() for tree in args.against}}
    for tree in trees.values():
        byte_compile(tree)
    cases = [case for case in CASES if not args.case or case.name in args.case]
    runs = measure(int(args.size_mb * MB), trees, args.out, args.repeat, args.budget, cases)
    print("\n".join(section(runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
