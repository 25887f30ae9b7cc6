"""Timing one child process: wall time, CPU, peak RSS, and how far it got when it ran out of time.

Why `os.wait4` and not `getrusage(RUSAGE_CHILDREN)` deltas: `ru_maxrss` of
RUSAGE_CHILDREN is the largest child so far, not a sum, so a delta hides a
smaller child's peak.  `wait4` returns the rusage of exactly the child
reaped.  Why a pidfd: it wakes `select` the moment the child exits (exact
wall time) and lets the budget kill it without any race against pid reuse.
Between wake-ups every 0.1 s the memory of the child's whole process tree
is sampled: tracelog forks workers for a big file, and the peak reported
is the larger of the sampled sum and the largest single process's peak.
"""

from __future__ import annotations

import os
import re
import select
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKETS = re.compile(r"(\d+) TRACE events in (\d+) packets?")
_SAMPLE_EVERY = 0.1  # seconds between samples of the tool's memory
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def child_env() -> dict[str, str]:
    """The environment for `python -m tracelog`: this working tree first, installed or not."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


@dataclass(frozen=True)
class Sample:
    """One run of one tool on one input.

    `status` is None when the run was killed at its budget; `lines_read` is
    then how many lines of the input it had read (from its file offset, so
    at most one read buffer ahead of what it processed).
    """

    wall: float
    cpu: float
    max_rss_kb: int
    status: int | None
    lines_read: int | None
    stderr: str

    @property
    def killed(self) -> bool:
        return self.status is None

    def packets(self) -> int | None:
        """Packets tracelog reported on stderr, if it finished and said."""
        found = PACKETS.findall(self.stderr)
        return int(found[-1][1]) if found and not self.killed else None


def count_lines(path: Path, upto: int) -> int:
    """Newlines in the first `upto` bytes of `path`."""
    count = 0
    left = upto
    with path.open("rb") as handle:
        while left > 0:
            chunk = handle.read(min(left, 1 << 20))
            if not chunk:
                break
            count += chunk.count(b"\n")
            left -= len(chunk)
    return count


def file_offset(pid: int, path: Path) -> int | None:
    """How far process `pid` has read into `path`, from /proc/PID/fdinfo."""
    target = str(path.resolve())
    best: int | None = None
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    for name in names:
        try:
            if os.readlink(f"/proc/{pid}/fd/{name}") != target:
                continue
            info = Path(f"/proc/{pid}/fdinfo/{name}").read_text()
        except OSError:
            continue
        match = re.search(r"^pos:\s+(\d+)", info, re.MULTILINE)
        if match:
            best = max(best or 0, int(match.group(1)))
    return best


def process_tree_rss_kb(root: int) -> int:
    """The resident memory of `root` and all its descendants together, in kB (0 once it is gone).

    A tool that forks workers (tracelog on a big file) uses the sum; `wait4`
    gives only the largest single process's peak.  Pages the processes share
    count once per process: an upper bound.
    """
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    tree, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        tree.append(pid)
        frontier.extend(children.get(pid, ()))
    total = 0
    for pid in tree:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE_KB
        except (OSError, IndexError):
            continue
    return total


def run_once(argv: Sequence[str], path: Path, budget: float | None) -> Sample:
    """Run `argv` once with stdout to /dev/null; kill it after `budget` seconds (None: never)."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT, env=child_env()
        )
        pidfd = os.pidfd_open(child.pid)
        tree_rss_kb = 0
        try:
            while True:  # woken the moment the child exits; between, its memory is sampled
                ready, _, _ = select.select([pidfd], [], [], _SAMPLE_EVERY)
                if ready or (budget is not None and time.perf_counter() - start >= budget):
                    break
                tree_rss_kb = max(tree_rss_kb, process_tree_rss_kb(child.pid))
            offset = None
            if not ready:
                offset = file_offset(child.pid, path)
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            _, status, usage = os.wait4(child.pid, 0)
            wall = time.perf_counter() - start
        finally:
            os.close(pidfd)
        child.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    killed = not ready
    return Sample(
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        max_rss_kb=max(usage.ru_maxrss, tree_rss_kb),
        status=None if killed else child.returncode,
        lines_read=count_lines(path, offset) if killed and offset is not None else None,
        stderr=stderr,
    )


@dataclass(frozen=True)
class Cell:
    """Every run of one tool on one input, and what they add up to."""

    tool: str
    lines: int
    samples: tuple[Sample, ...]

    @property
    def killed(self) -> Sample | None:
        return next((sample for sample in self.samples if sample.killed), None)

    @property
    def wall(self) -> float:
        return statistics.median(sample.wall for sample in self.samples)

    @property
    def lines_per_second(self) -> float | None:
        """Over the whole input; for a run killed at its budget, over the part it read."""
        killed = self.killed
        if killed is None:
            return self.lines / self.wall if self.wall > 0 else None
        return (killed.lines_read or 0) / killed.wall if killed.lines_read is not None else None

    @property
    def max_rss_mb(self) -> float:
        return max(sample.max_rss_kb for sample in self.samples) / 1024

    @property
    def cpu(self) -> float:
        return statistics.median(sample.cpu for sample in self.samples)


COMPLETED = (0, 4)  # tracelog's OK and BAD_LINES: the rest of the input was still analysed


Tool = tuple[str, Sequence[str]]
"""A tool's name in the report and its command line."""


def measure(tool: str, argv: Sequence[str], path: Path, lines: int, repeat: int, budget: float, kill: bool) -> Cell:
    """Run a tool up to `repeat` times while the cell's `budget` seconds last (median of what ran).

    With `kill`, a run is also stopped when the budget runs out; reference
    tools run to completion, since every ratio depends on them.  No run starts
    that would not fit the budget, and a run that was killed or failed is
    not repeated: it would say the same.
    """
    samples: list[Sample] = []
    spent = 0.0
    for _ in range(repeat):
        sample = run_once(argv, path, budget if kill else None)
        samples.append(sample)
        spent += sample.wall
        if sample.status not in COMPLETED or spent + sample.wall > budget:
            break
    return Cell(tool, lines, tuple(samples))


def measure_pair(reference: Tool, candidate: Tool, path: Path, lines: int, repeat: int, budget: float,
                 pair_budget: float) -> tuple[Cell, Cell]:
    """Run two tools in turn, round after round, so that a slow spell of a shared machine falls on both.

    Their ratio is the headline figure, so they alternate (the order swaps
    every round) for up to `repeat` rounds, and a new round starts only
    while `pair_budget` seconds are not yet spent: at least two rounds when
    one takes less than the budget.  The candidate is killed at `budget`,
    and not run again once killed or failed; the reference always runs to
    completion.  Round `i` is sample `i` of both cells.
    """
    runs: dict[str, list[Sample]] = {reference[0]: [], candidate[0]: []}
    spent = 0.0
    for round_ in range(repeat):
        order = (reference, candidate) if round_ % 2 == 0 else (candidate, reference)
        for name, argv in order:
            sample = run_once(argv, path, budget if name == candidate[0] else None)
            runs[name].append(sample)
            spent += sample.wall
        if runs[candidate[0]][-1].status not in COMPLETED or spent >= pair_budget:
            break
    return Cell(reference[0], lines, tuple(runs[reference[0]])), Cell(candidate[0], lines, tuple(runs[candidate[0]]))
