"""Time and memory stay bounded by the input's size, whatever it holds.

Each input is written from a real capture by `bench.hostile` (only what makes
the case is rewritten: an IP id, a port, a field's length, a host name) or
from random bytes, and read by the CLI in a child process under an
address-space limit and a wall-time limit.  Its CPU time and peak RSS are
compared with those of an ordinary input of the same size read in the same
session: limits loose enough for a shared 2-core machine (ratios of CPU time,
not of wall time), tight enough that a cost growing with the open packets or
with a line's length fails them.
"""

from __future__ import annotations

import gzip
import itertools
import os
import re
import resource
import select
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench import hostile
from tests.samples import SAMPLES
from tracelog.errors import ExitStatus
from tracelog.pipeline import CAVEAT_KINDS_KEPT, LONG_LINE_SKIPPED
from tracelog.sources import MAX_LINE_BYTES

ROOT = Path(__file__).resolve().parents[2]
MB = 1 << 20
ADDRESS_SPACE = 1 << 30  # per process: reading a log takes a small part of it
WALL_LIMIT = 120.0  # seconds before a run is killed: only a cost out of bounds gets near it
KEPT_OUTPUT = 1 << 16  # of a run's stdout, for the assertions; the rest is counted
CAPTURE = SAMPLES / "lab-legacy/tcp.dmesg"


@dataclass(frozen=True)
class Reading:
    """One run of `tracelog parse --format jsonl`: how it ended, what it printed, what it cost."""

    status: int
    records: int  # lines on stdout: one per packet
    stdout: str  # its first KEPT_OUTPUT bytes
    stderr: str
    cpu: float
    rss_mb: float


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def read(path: Path, *options: str, stdin: bool = False) -> Reading:
    """`tracelog parse --format jsonl [options] PATH` (or `-` with PATH on stdin), limited in memory and time.

    CPU and peak RSS are `wait4`'s: the process's, and its workers' (which it
    waits for) counted in.
    """
    argv = [sys.executable, "-m", "tracelog", "parse", "--format", "jsonl", *options, "-" if stdin else str(path)]
    with (
        path.open("rb") as data,
        open(os.devnull, "rb") as nothing,
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
    ):
        child = subprocess.Popen(
            argv,
            stdin=data if stdin else nothing,
            stdout=out,
            stderr=err,
            cwd=ROOT,
            preexec_fn=_limit_address_space,  # noqa: PLW1509 (the tests start no threads)
        )
        pidfd = os.pidfd_open(child.pid)
        try:
            finished, _, _ = select.select([pidfd], [], [], WALL_LIMIT)
            if not finished:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            _, status, usage = os.wait4(child.pid, 0)
        finally:
            os.close(pidfd)
        child.returncode = os.waitstatus_to_exitcode(status)
        if not finished:
            pytest.fail(f"{path.name}: still running after {WALL_LIMIT:.0f} s")
        out.seek(0)
        kept = out.read(KEPT_OUTPUT)
        records = kept.count(b"\n") + sum(block.count(b"\n") for block in iter(lambda: out.read(MB), b""))
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    cpu = usage.ru_utime + usage.ru_stime
    return Reading(child.returncode, records, kept.decode("utf-8", "replace"), stderr, cpu, usage.ru_maxrss / 1024)


def write(path: Path, lines: Iterable[str], size: int) -> Path:
    """Whole lines until `size` bytes are written."""
    hostile.write_lines(path, size, lines)
    return path


Ordinary = Callable[[int], Reading]


@pytest.fixture(scope="module")
def ordinary(tmp_path_factory: pytest.TempPathFactory) -> Ordinary:
    """The bench's ordinary kernel log (copies of every capture) read at a size, once per size: the reference."""
    directory = tmp_path_factory.mktemp("ordinary")
    readings: dict[int, Reading] = {}

    def reading(size: int) -> Reading:
        if size not in readings:
            path = write(directory / f"ordinary-{size}.dmesg", hostile.ordinary_lines(), size)
            readings[size] = read(path, "--jobs", "1")
            assert readings[size].status == ExitStatus.OK
        return readings[size]

    return reading


# ---- many open packets that share an identity --------------------------------------------------------------

FLOOD_BYTES = 3 * MB  # ~9,500 lines: thousands of packets open at once, as the window allows


@pytest.mark.parametrize(
    "flood",
    [hostile.fixed_id_flood, hostile.scanner_flood, hostile.identical_lines],
    ids=["fixed-ip-id", "scanner", "identical-lines"],
)
def test_a_flood_of_packets_sharing_an_identity_costs_what_ordinary_lines_cost(
    flood: Callable[[], Iterable[str]], ordinary: Ordinary, tmp_path: Path
) -> None:
    """A scanner's fixed IP id (zmap's 54321), with a new destination each packet, or one line again and again.

    One-step packets pile up open, and each step is looked up among the open
    packets that share its identity: the lookup must not grow with them.  A
    line must not cost more for the address it holds either (the shape memo
    reading a new shape for every line of a scan).
    """
    path = write(tmp_path / "flood.dmesg", flood(), FLOOD_BYTES)
    lines = len(path.read_bytes().splitlines())
    flooded, reference = read(path), ordinary(FLOOD_BYTES)
    assert flooded.status == ExitStatus.OK, flooded.stderr
    assert flooded.records == lines  # each line a packet of its own
    assert flooded.cpu < 3 * reference.cpu, (flooded.cpu, reference.cpu)
    assert flooded.rss_mb < 1.5 * reference.rss_mb, (flooded.rss_mb, reference.rss_mb)


# ---- one line that costs too much -------------------------------------------------------------------------

FIELD_BYTES = 20 * MB


def _huge_fields(path: Path) -> Path:
    """The capture with three steps' IN=, MAC= and SRC= fields blown to 20 MB each (its 4th to 6th lines)."""
    return write(path, hostile.huge_fields_lines(FIELD_BYTES, every=500, count=3), 3 * FIELD_BYTES + MB)


def _bad_line_reports(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "longer than the" in line]


@pytest.mark.parametrize("how", ["file", "stdin", "gzip"])
def test_a_huge_field_is_a_bad_line_reported_in_a_few_words(how: str, ordinary: Ordinary, tmp_path: Path) -> None:
    """Three TRACE lines with a 20 MB field each: reported (place, length, start), skipped, in constant memory.

    The rest of the input is read as usual, and the exit status is that of
    TRACE lines not understood.  From a file, from a pipe, gzipped.
    """
    path = _huge_fields(tmp_path / "huge.dmesg")
    if how == "gzip":
        packed = tmp_path / "huge.dmesg.gz"
        packed.write_bytes(gzip.compress(path.read_bytes(), compresslevel=1))
        path = packed
    reading = read(path, stdin=how == "stdin")
    assert reading.status == ExitStatus.BAD_LINES
    reports = _bad_line_reports(reading.stderr)
    name = "-" if how == "stdin" else path.name
    assert len(reports) == 3
    for report in reports:
        place = re.search(r"(\S+):(\d+): line of ([\d,]+) bytes", report)
        assert place is not None, report
        assert place[1].endswith(name)
        assert int(place[3].replace(",", "")) > FIELD_BYTES
        assert "TRACE: " in report  # its start
    assert len(reading.stderr) < 4096  # never the field itself
    assert reading.records > 100  # the other lines' packets
    assert reading.rss_mb < ordinary(MB).rss_mb + 64, reading.rss_mb


def test_a_long_line_that_is_no_trace_line_is_skipped_with_a_note(ordinary: Ordinary, tmp_path: Path) -> None:
    """A 30 MB line of printable garbage, and no newline at all: other lines are skipped, this one too."""
    path = tmp_path / "garbage.log"
    hostile.write_no_newline(path, 30 * MB)
    reading = read(path)
    assert reading.status == ExitStatus.OK, reading.stderr
    assert "1 line from 1 input: 0 TRACE events in 0 packets; skipped 1 other" in reading.stderr
    assert LONG_LINE_SKIPPED in reading.stderr
    assert len(reading.stderr) < 4096
    assert reading.rss_mb < ordinary(MB).rss_mb + 32, reading.rss_mb


def test_strict_stops_at_a_line_too_long_to_read(tmp_path: Path) -> None:
    path = _huge_fields(tmp_path / "huge.dmesg")
    reading = read(path, "--strict")
    assert reading.status == ExitStatus.BAD_LINES
    assert reading.stderr.startswith(f"tracelog: {path}:")
    assert len(_bad_line_reports(reading.stderr)) == 1
    assert len(reading.stderr) < 4096


def test_lines_up_to_the_limit_are_read(tmp_path: Path) -> None:
    """A TRACE line of exactly `MAX_LINE_BYTES` is still a TRACE line; one byte more is not read."""
    (line, *_) = CAPTURE.read_text().splitlines()
    padding = MAX_LINE_BYTES - len(line.encode())
    longest = line.replace("IN=docker0", "IN=" + "d" * (padding + len("docker0")), 1)
    assert len(longest.encode()) == MAX_LINE_BYTES
    path = tmp_path / "longest.dmesg"
    path.write_text(f"{longest}\n{longest.replace('IN=', 'IN=x', 1)}\n")
    reading = read(path)
    assert reading.records == 1
    assert f"{path}:2: line of {MAX_LINE_BYTES + 1:,} bytes" in reading.stderr


def _commented(line: str, comment: str) -> str:
    """A monitor step line whose rule carries `comment` (other lines as they are)."""
    return line.replace(" -j ", f' -m comment --comment "{comment}" -j ', 1) if " -A " in line else line


def test_a_rule_comment_near_the_line_limit_costs_what_a_short_one_costs(tmp_path: Path) -> None:
    """xtables-monitor steps whose rules carry a 60 KB comment, in a line under the limit: read as usual.

    The kernel keeps at most 256 bytes of a comment, a paste any number: the
    readers of writers' comments (kube-proxy's, Docker's) must not spend more
    on a line than its length.
    """
    captured = (SAMPLES / "lab-nft/dnat.xtables-monitor").read_text().splitlines()
    long = write(
        tmp_path / "long.xtables-monitor", itertools.cycle(_commented(line, "k" * 60_000) for line in captured), MB
    )
    short = write(tmp_path / "short.xtables-monitor", itertools.cycle(_commented(line, "k") for line in captured), MB)
    slow, quick = read(long, "--jobs", "1"), read(short, "--jobs", "1")
    assert slow.status == quick.status == ExitStatus.OK, slow.stderr
    assert slow.cpu < 2 * quick.cpu, (slow.cpu, quick.cpu)


def test_a_snapshot_rule_with_a_long_comment_costs_what_its_length_costs(tmp_path: Path) -> None:
    """A `--rules` file whose DROP rule carries a 1 MB comment costs about what one with a short comment costs.

    In time (no quadratic unquoting) and in memory (no pattern keeping a
    backtracking mark per character of a quoted word).
    """
    text = (SAMPLES / "docker-legacy/iptables-save.drop.txt").read_text()
    costs = []
    for size in (1, MB):
        rules = tmp_path / f"rules-{size}.txt"
        rules.write_text(text.replace("-j DROP", f'-m comment --comment "a \\"{"c" * size}\\"" -j DROP'))
        reading = read(SAMPLES / "docker-legacy/drop.dmesg", "--rules", str(rules))
        assert reading.status == ExitStatus.OK, reading.stderr
        assert reading.records == 3
        assert size > 1 or '"comment":"a \\"c\\""' in reading.stdout  # the comment, unquoted
        costs.append(reading)
    assert costs[1].cpu < 2 * costs[0].cpu, costs
    assert costs[1].rss_mb < costs[0].rss_mb + 32, costs


# ---- state that must not pile up --------------------------------------------------------------------------


def test_a_packet_that_never_ends_is_held_in_bounded_memory(tmp_path: Path) -> None:
    """One rule step repeated: each line continues the packet before it, which never ends.

    Reading five times as many lines must not take more memory: the steps
    held are bounded (the packet is cut).  By default a file this big is read
    by a process per CPU.
    """
    small = write(tmp_path / "endless-small.dmesg", hostile.endless_packet(), 12 * MB)
    big = write(tmp_path / "endless-big.dmesg", hostile.endless_packet(), 60 * MB)
    few, many = read(small), read(big)
    assert few.status == many.status == ExitStatus.OK
    assert many.rss_mb < few.rss_mb + 48, (few.rss_mb, many.rss_mb)


def test_notes_naming_what_the_log_said_stay_a_few_lines(tmp_path: Path) -> None:
    """Steps in thousands of chains the ruleset lacks: a note each kind, and only so many kinds."""
    rules = SAMPLES / "lab-legacy/ruleset.iptables-save"
    captured = CAPTURE.read_text().splitlines()
    lines = [line.replace("filter:DOCKER-USER:", f"filter:CHAIN-{copy}:") for copy in range(300) for line in captured]
    path = tmp_path / "chains.dmesg"
    path.write_text("\n".join(lines) + "\n")
    reading = read(path, "--rules", str(rules))
    notes = [line for line in reading.stderr.splitlines() if line.startswith("tracelog: note:")]
    assert len(notes) <= CAVEAT_KINDS_KEPT + 2, len(notes)
    assert len(reading.stderr) < 16_384


def test_many_hosts_over_many_hours_cost_what_one_host_costs(ordinary: Ordinary, tmp_path: Path) -> None:
    """Syslog lines from a new host every packet run, the clock hours apart: no state per host piles up."""
    size = 4 * MB
    path = write(tmp_path / "hosts.log", hostile.many_hosts(), size)
    reading, reference = read(path, "--jobs", "1"), ordinary(size)
    assert reading.status == ExitStatus.OK, reading.stderr
    assert reading.cpu < 2 * reference.cpu, (reading.cpu, reference.cpu)
    assert reading.rss_mb < reference.rss_mb + 32, (reading.rss_mb, reference.rss_mb)


def test_random_bytes_cost_no_more_than_a_log(ordinary: Ordinary, tmp_path: Path) -> None:
    size = 4 * MB
    path = tmp_path / "random.bin"
    hostile.write_random_bytes(path, size)
    reading, reference = read(path, "--jobs", "1"), ordinary(size)
    assert reading.status == ExitStatus.OK, reading.stderr
    assert reading.cpu < 2 * reference.cpu, (reading.cpu, reference.cpu)
    assert reading.rss_mb < reference.rss_mb + 32, (reading.rss_mb, reference.rss_mb)
