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

import compileall
import os
import re
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKETS = re.compile(r"(\d+) TRACE events in (\d+) packets?")
TRACELOG = [sys.executable, "-m", "tracelog"]
"""How the bench runs tracelog: this working tree's, with `child_env`."""
_SAMPLE_EVERY = 0.1  # seconds between samples of the tool's memory
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def byte_compile(tree: Path = ROOT) -> None:
    """Compile a tree's modules once (this working tree's by default), as `pip install` does.

    Python reads a module's bytecode if it finds it; where nobody wrote it
    (a fresh clone on a machine with PYTHONDONTWRITEBYTECODE set) every run
    would compile tracelog's modules anew, about 0.1 s no installed copy pays.
    """
    compileall.compile_dir(tree / "tracelog", quiet=1)


def child_env(tree: Path = ROOT) -> dict[str, str]:
    """The environment for `python -m tracelog`: this working tree (or `tree`) first, installed or not.

    The child also runs in `tree`: `python -m` looks in its working directory first.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
    return env


@dataclass(frozen=True)
class Sample:
    """One run of one tool on one input.

    `status` is None when the run was killed at its budget; `lines_read` and
    `bytes_read` are then how much of the input it had read (from its file
    offset, so at most one read buffer ahead of what it processed).
    """

    wall: float
    cpu: float
    max_rss_kb: int
    status: int | None
    lines_read: int | None
    stderr: str
    bytes_read: int | None = None

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


def run_once(argv: Sequence[str], path: Path, budget: float | None, tree: Path = ROOT) -> Sample:
    """Run `argv` once with stdout to /dev/null; kill it after `budget` seconds (None: never).

    tracelog is this working tree's, or `tree`'s (see `child_env`).
    """
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, cwd=tree, env=child_env(tree)
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
        bytes_read=offset if killed else None,
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


@dataclass(frozen=True)
class Turn:
    """One tool on one input, for `measure_in_turn`; `budget` None: it always runs to completion."""

    name: str
    argv: Sequence[str]
    path: Path
    lines: int
    budget: float | None


def measure_in_turn(turns: Sequence[Turn], repeat: int, turns_budget: float) -> list[Cell]:
    """Run tools in turn, round after round, so that a slow spell of a shared machine falls on all of them.

    Their ratios are headline figures, so they alternate (the order rotates
    every round) for up to `repeat` rounds, and a new round starts only
    while `turns_budget` seconds are not yet spent: at least two rounds when
    one takes less than the budget.  A tool with a budget is killed at it;
    after a run that was killed or failed no new round starts.  Round `i` is
    sample `i` of every cell.
    """
    runs: dict[str, list[Sample]] = {turn.name: [] for turn in turns}
    spent = 0.0
    for round_ in range(repeat):
        shift = round_ % len(turns)
        for turn in [*turns[shift:], *turns[:shift]]:
            sample = run_once(turn.argv, turn.path, turn.budget)
            runs[turn.name].append(sample)
            spent += sample.wall
        if any(samples[-1].status not in COMPLETED for samples in runs.values()) or spent >= turns_budget:
            break
    return [Cell(turn.name, turn.lines, tuple(runs[turn.name])) for turn in turns]
