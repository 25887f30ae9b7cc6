"""The two live checks: memory stays flat on an endless stream, and a packet prints soon after its lines stop.

Memory: a file has an end, a `tail -f` does not.  The builder streams a
kernel log (10M lines by default, never stored) through a pipe into
`tracelog parse --format jsonl`, and the child's RSS is read from
/proc/PID/status every second.  A time limit keeps the check short while
tracelog reads slower than the stream could feed it; the report says how
many lines went through.  Flat means the largest RSS of the second half of
the run is within 10 % of the first half's.

Latency: whole packets of a small capture are written one at a time into a
pipe that stays open; the time from writing a packet's last line to reading
its JSON line is what a person watching `tail -f | tracelog parse` waits.
"""

from __future__ import annotations

import queue
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from bench import build
from bench.measure import ROOT, TRACELOG, child_env

FLAT = 1.10  # last-half peak within 10 % of the first half's
LINES_READ = re.compile(r"tracelog: (\d+) lines? from")
STREAMED = re.compile(r"streamed (\d+) lines")


@dataclass(frozen=True)
class Memory:
    """RSS samples (seconds since start, KiB) of one streamed run, and how much went through."""

    planned: int
    seconds: float
    lines: int | None
    samples: tuple[tuple[float, int], ...]
    finished: bool

    def halves(self) -> tuple[int, int]:
        """Peak RSS (KiB) of the first and of the second half of the run, by time."""
        middle = self.seconds / 2
        first = [rss for at, rss in self.samples if at < middle] or [0]
        last = [rss for at, rss in self.samples if at >= middle] or [0]
        return max(first), max(last)

    @property
    def flat(self) -> bool:
        first, last = self.halves()
        return len(self.samples) >= 4 and last <= first * FLAT


def rss_kb(pid: int) -> int | None:
    """VmRSS of a live process, in KiB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) if match else None


def _sample_rss(pid: int, child: subprocess.Popen[bytes], seconds: float) -> list[tuple[float, int]]:
    """RSS once a second until `seconds` pass or the child ends."""
    samples: list[tuple[float, int]] = []
    start = time.monotonic()
    tick = 0
    while child.poll() is None and time.monotonic() - start < seconds:
        rss = rss_kb(pid)
        if rss is not None:
            samples.append((time.monotonic() - start, rss))
        tick += 1
        time.sleep(max(0.0, start + tick - time.monotonic()))
    return samples


def memory(lines: int, seconds: float) -> Memory:
    """Stream `lines` built kernel-log lines into tracelog for at most `seconds`, sampling its RSS."""
    feeder = subprocess.Popen(
        [sys.executable, "-m", "bench.build", "kernel", "--lines", str(lines), "--stdout"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert feeder.stdout is not None
    child = subprocess.Popen(
        [*TRACELOG, "parse", "--format", "jsonl"],
        stdin=feeder.stdout,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=child_env(),
    )
    feeder.stdout.close()  # the child holds the only read end: the feeder's end is its end of file
    start = time.monotonic()
    samples = _sample_rss(child.pid, child, seconds)
    elapsed = time.monotonic() - start
    finished = child.poll() is not None
    feeder.send_signal(signal.SIGTERM)  # ends after a whole line; tracelog then sees end of file
    _, fed = _finish(feeder, 30)
    _, said = _finish(child, 120)
    count = LINES_READ.findall(said) or STREAMED.findall(fed)
    return Memory(lines, elapsed, int(count[-1]) if count else None, tuple(samples), finished)


def _finish(process: subprocess.Popen[bytes], timeout: float) -> tuple[int, str]:
    """Wait for a process we started (kill it past `timeout`); its exit code and stderr."""
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
    return process.returncode, (err or b"").decode("utf-8", "replace")


@dataclass(frozen=True)
class Latency:
    """Seconds from a packet's last line written to its JSON line read, one per packet."""

    idle: float
    capture: str
    delays: tuple[float | None, ...]
    printed: int

    @property
    def target(self) -> float:
        return self.idle + 0.1

    @property
    def measured(self) -> list[float]:
        return [delay for delay in self.delays if delay is not None]

    @property
    def met(self) -> bool:
        return bool(self.measured) and len(self.measured) == len(self.delays) and max(self.measured) <= self.target

    @property
    def median(self) -> float | None:
        return statistics.median(self.measured) if self.measured else None


def _arrivals(stream: IO[bytes], arrived: queue.Queue[float]) -> None:
    """Time-stamp each JSON line as it arrives (a thread, so the writer never blocks on it)."""
    for _ in stream:
        arrived.put(time.perf_counter())


def _write(child: subprocess.Popen[bytes], run: list[str]) -> float:
    assert child.stdin is not None
    child.stdin.write("".join(text + "\n" for text in run).encode())
    child.stdin.flush()
    return time.perf_counter()


def _wait(arrived: queue.Queue[float], timeout: float) -> tuple[float | None, int]:
    """The first arrival within `timeout`, and how many lines came (later ones within 50 ms)."""
    try:
        first = arrived.get(timeout=timeout)
    except queue.Empty:
        return None, 0
    count = 1
    while True:
        try:
            arrived.get(timeout=0.05)
        except queue.Empty:
            return first, count
        count += 1


def latency(capture: Path, copies: int, idle: float) -> Latency:
    """Write whole packets of `copies` copies of `capture`, one at a time, and time each JSON line.

    The first packet only warms tracelog up (imports): it is not counted.
    """
    name = build.load("kernel", capture).name
    plan = build.Plan("kernel", copies * len(build.load("kernel", capture).lines), concurrent=1, captures=[capture])
    runs = list(build.packets(plan))
    child = subprocess.Popen(
        [*TRACELOG, "parse", "--format", "jsonl", "--idle", str(idle)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        env=child_env(),
    )
    assert child.stdout is not None
    assert child.stdin is not None
    arrived: queue.Queue[float] = queue.Queue()
    reader = threading.Thread(target=_arrivals, args=(child.stdout, arrived), daemon=True)
    reader.start()
    _write(child, runs[0])
    _, printed = _wait(arrived, 60 + idle)
    delays: list[float | None] = []
    for run in runs[1:]:
        written = _write(child, run)
        first, count = _wait(arrived, idle + 5)
        delays.append(None if first is None else first - written)
        printed += count
    child.stdin.close()
    try:
        child.wait(timeout=30)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    reader.join(timeout=5)
    return Latency(idle, name, tuple(delays), printed)
