"""One big file read by several processes gives what one process gives: packets, numbers, counts.

The inputs are the bench's copies of the real captures (packets interleaved
the way a busy host interleaves them) and every sample; chunks are made
small so that a few thousand lines make many seams.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import build
from tests.conftest import RunCli
from tests.samples import SAMPLES, trace_samples
from tracelog import parallel
from tracelog.correlate import Packet
from tracelog.errors import ExitStatus, InputError
from tracelog.events import SourceLine
from tracelog.output.format import RECORDS
from tracelog.parallel import Chunk, ChunkRun, Edge, map_packets, plan
from tracelog.parse import LineParser
from tracelog.pipeline import ParseOptions, RunStats
from tracelog.records.numbering import number_packets, prepare_packet
from tracelog.records.packet import NO_NAMES, PacketRecord
from tracelog.sources import read_lines

OPTIONS = ParseOptions(year=2026)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("built")
    return {
        fmt: build.build(fmt, lines, out).path
        for fmt, lines in (("kernel", 30_000), ("nft", 12_000), ("xtables", 12_000))
    }


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 64 kB (a few hundred lines), read in 4 kB blocks when planned."""
    monkeypatch.setattr(parallel, "MIN_CHUNK_BYTES", 64 << 10)
    monkeypatch.setattr(parallel, "_BLOCK", 4 << 10)


@pytest.fixture
def rests(monkeypatch: pytest.MonkeyPatch) -> list[Chunk]:
    """The chunks handed to one process reading on from the file's start."""
    handed: list[Chunk] = []
    rest = Chunk.rest

    def spy(chunk: Chunk) -> Chunk:
        handed.append(chunk)
        return rest(chunk)

    monkeypatch.setattr(Chunk, "rest", spy)
    return handed


def records(path: Path, jobs: int, options: ParseOptions = OPTIONS) -> tuple[list[PacketRecord], RunStats]:
    stats = RunStats()
    prepare = functools.partial(prepare_packet, names=NO_NAMES, wanted=None, prepare=RECORDS.prepare)
    found = list(number_packets(map_packets([str(path)], options, stats, prepare, jobs), RECORDS.finish))
    return found, stats


def line_starts(path: Path) -> list[int]:
    data = path.read_bytes()
    return [0] + [index + 1 for index, byte in enumerate(data) if byte == ord("\n")]


@pytest.mark.usefixtures("small_chunks")
@pytest.mark.parametrize("fmt", ["kernel", "nft", "xtables"])
@pytest.mark.parametrize("jobs", [2, 5])
def test_chunks_give_the_packets_one_process_gives(
    built: dict[str, Path], fmt: str, jobs: int, rests: list[Chunk]
) -> None:
    chunks = plan([str(built[fmt])], jobs, OPTIONS)
    assert len(chunks) == jobs
    one, one_stats = records(built[fmt], 1)
    several, several_stats = records(built[fmt], jobs)
    assert rests == []  # every seam fitted: the chunks' own records, not one process reading on
    assert several == one
    assert [record["packet"] for record in several] == list(range(1, len(one) + 1))
    assert several_stats == one_stats


@pytest.mark.usefixtures("small_chunks")
@pytest.mark.parametrize("sample", trace_samples(), ids=lambda path: f"{path.parent.name}/{path.name}")
def test_every_sample_read_in_chunks_is_read_as_by_one_process(sample: Path) -> None:
    """Small captures, many seams: bad lines, look-alikes, wrapped records and caveats counted once each."""
    tiny = dataclasses.replace(OPTIONS, window=20)  # a 20-line lead-in: seams inside the captures' packets
    one, one_stats = records(sample, 1, tiny)
    several, several_stats = records(sample, 3, tiny)
    assert several == one
    assert several_stats == one_stats


@pytest.mark.usefixtures("small_chunks")
def test_a_seam_that_does_not_fit_hands_the_rest_to_one_process(
    built: dict[str, Path], monkeypatch: pytest.MonkeyPatch, rests: list[Chunk]
) -> None:
    """Without a lead-in a chunk cannot know the packets under way: the check finds it, the answer stays right."""
    monkeypatch.setattr(parallel, "LEAD_WINDOWS", 0)
    one, one_stats = records(built["kernel"], 1)
    several, several_stats = records(built["kernel"], 4)
    assert rests, "no seam was found not to fit"
    assert several == one
    assert several_stats == one_stats


def test_seams_fit_only_where_both_sides_agree() -> None:
    before = Edge(frozenset({10, 12}), ((10, 1), (11, 2), (12, 3)))
    after = Edge(frozenset({10, 12}), ((10, 1), (11, 2), (12, 3), (13, 4)))
    assert before.fits(after)
    assert not before.fits(dataclasses.replace(after, joined=frozenset({10})))
    assert not before.fits(dataclasses.replace(after, reading=((10, 1), (11, 9), (12, 3))))


@pytest.mark.usefixtures("small_chunks")
@pytest.mark.parametrize("jobs", [2, 3, 7])
def test_chunks_cut_at_line_starts_and_know_their_line_numbers(built: dict[str, Path], jobs: int) -> None:
    path = built["xtables"]
    starts = line_starts(path)
    options = dataclasses.replace(OPTIONS, window=100)
    chunks = plan([str(path)], jobs, options)
    assert len(chunks) == jobs
    assert chunks[0] == Chunk(str(path), 0, 0, 1, chunks[1].begin)
    assert [chunk.end for chunk in chunks] == [chunk.begin for chunk in chunks[1:]] + [None]
    for chunk in chunks[1:]:
        assert starts[chunk.lines_before] == chunk.offset
        assert chunk.begin - 1 - chunk.lines_before == parallel.LEAD_WINDOWS * options.window
    edges = [starts[chunk.begin - 1] for chunk in chunks] + [path.stat().st_size]
    sizes = [after - before for before, after in itertools.pairwise(edges)]
    assert max(sizes) - min(sizes) < 1_000  # about equal, within a line or so


@pytest.mark.usefixtures("small_chunks")
def test_one_process_reads_what_cannot_or_need_not_be_split(built: dict[str, Path], tmp_path: Path) -> None:
    path = str(built["kernel"])
    packed = tmp_path / "kern.log.gz"
    packed.write_bytes(gzip.compress(built["kernel"].read_bytes()))
    small = tmp_path / "small.log"
    small.write_bytes(built["kernel"].read_bytes()[: 100 << 10])
    assert plan([path], 1, OPTIONS) == []
    assert plan([path], 2, dataclasses.replace(OPTIONS, strict=True)) == []
    assert plan([path, path], 2, OPTIONS) == []
    assert plan(["-"], 2, OPTIONS) == []
    assert plan([str(packed)], 2, OPTIONS) == []
    assert plan([str(small)], 2, OPTIONS) == []
    assert plan([str(tmp_path / "missing.log")], 2, OPTIONS) == []
    assert len(plan([path], 2, OPTIONS)) == 2


def test_a_chunk_that_cannot_be_read_on_ends_the_file_there(
    built: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As with one process: the lines read so far count, the error is reported, nothing after it."""

    def failing(name: str, offset: int = 0, lines_before: int = 0) -> Iterator[SourceLine]:
        for line in read_lines(name, offset, lines_before):
            if line.line == 1000:
                raise InputError(f"{name}:1000: cannot read further: test")
            yield line

    monkeypatch.setattr(parallel, "read_lines", failing)
    stats = RunStats()
    run = ChunkRun(Chunk(str(built["kernel"]), 0, 0, 1, 5000), OPTIONS)
    packets = list(run.packets(stats))
    assert run.ended is not None
    assert run.ended.cut_short
    assert stats.lines == 999
    assert stats.unreadable == [f"{built['kernel']}:1000: cannot read further: test"]
    assert packets
    assert all(step.event.origin.line < 1000 for packet in packets for step in packet.steps)


@pytest.mark.usefixtures("small_chunks")
@pytest.mark.parametrize(
    "command",
    [
        ("parse", "-f", "jsonl"),
        ("parse",),
        ("parse", "-f", "csv"),
        ("summary",),
        ("parse", "--proto", "udp"),
        (
            "parse",
            "--rules",
            str(SAMPLES / "docker-legacy/iptables-save.txt"),
            "--names",
            str(SAMPLES / "docker-legacy/docker-inspect.json"),
        ),
    ],
)
def test_the_cli_prints_the_same_with_one_process_or_several(
    run_cli: RunCli, built: dict[str, Path], command: tuple[str, ...]
) -> None:
    one = run_cli(*command, "-j", "1", str(built["kernel"]))
    several = run_cli(*command, "--jobs", "3", str(built["kernel"]))
    assert (several.status, several.stdout, several.stderr) == (one.status, one.stdout, one.stderr)
    assert one.stdout


def own_processes(marker: str) -> list[int]:
    """Processes whose command line names `marker` (a file only this test uses)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kernel log the default chunk size splits in two."""
    return build.build("kernel", 60_000, tmp_path_factory.mktemp("big")).path


@pytest.mark.parametrize("how", ["closed pipe", "ctrl-c"])
def test_an_interrupted_run_in_chunks_ends_quietly_and_leaves_nothing_behind(big: Path, how: str) -> None:
    assert len(plan([str(big)], 2, OPTIONS)) == 2
    process = subprocess.Popen(
        [sys.executable, "-m", "tracelog", "parse", "-f", "jsonl", "-j", "2", str(big)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().startswith(b'{"packet":1,')
    assert len(own_processes(str(big))) == 2
    if how == "closed pipe":
        process.stdout.close()
    else:
        os.killpg(process.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole group
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == (ExitStatus.OK if how == "closed pipe" else ExitStatus.INTERRUPTED)
    assert b"Traceback" not in stderr
    assert b"Exception" not in stderr
    time.sleep(0.2)
    assert own_processes(str(big)) == []


def test_a_chunk_notes_how_it_read_the_lines_at_its_edges(built: dict[str, Path]) -> None:
    """What the seam check compares: the outcomes of the lines after each edge, as one parser read them."""
    path = built["nft"]
    parser = LineParser(OPTIONS.year)
    expected = {line.line: hash(tuple(parser.parse(line))) for line in read_lines(str(path))}
    texts = path.read_text().splitlines()
    # a chunk that starts with a step line, its packet line just before the chunk
    begin = next(
        number for number in range(3000, 4000) if "packet:" in texts[number - 2] and "packet:" not in texts[number - 1]
    )
    end = begin + 3000
    run = ChunkRun(Chunk(str(path), 0, 0, begin, end), OPTIONS)
    list(run.packets(RunStats()))
    assert run.head is not None
    assert run.ended is not None
    assert run.ended.tail is not None
    tail = run.ended.tail.reading
    assert run.head.reading == tuple((n, expected[n]) for n in range(begin, begin + parallel.OVERLAP_LINES))
    assert tail
    assert tail == tuple((n, expected[n]) for n in range(end, end + len(tail)))
    # without a lead-in, step lines whose packet line came before the chunk read differently
    blind = ChunkRun(Chunk(str(path), line_starts(path)[begin - 1], begin - 1, begin, end), OPTIONS)
    list(blind.packets(RunStats()))
    assert blind.head is not None
    assert blind.head.reading != run.head.reading


@pytest.mark.usefixtures("small_chunks")
def test_a_worker_that_dies_midway_costs_time_not_truth(
    built: dict[str, Path], monkeypatch: pytest.MonkeyPatch, rests: list[Chunk]
) -> None:
    """Killed after its first batches (say by the OOM killer): one process reads on, after what was taken."""
    main, real = os.getpid(), ChunkRun.packets

    def dying(self: ChunkRun, stats: RunStats) -> Iterator[Packet]:
        for count, packet in enumerate(real(self, stats)):
            if count == 1500 and os.getpid() != main:
                os._exit(1)
            yield packet

    monkeypatch.setattr(ChunkRun, "packets", dying)
    one, one_stats = records(built["kernel"], 1)
    several, several_stats = records(built["kernel"], 3)
    assert [chunk.begin for chunk in rests] == [plan([str(built["kernel"])], 3, OPTIONS)[1].begin]
    assert several == one
    assert several_stats == one_stats


@pytest.mark.usefixtures("small_chunks")
@pytest.mark.parametrize("jobs", [2, 4])
def test_lines_too_long_to_read_and_an_endless_packet_read_in_chunks_as_by_one_process(
    jobs: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lines past the limit across the chunks' cuts, and a packet cut by the bound on steps held."""
    monkeypatch.setattr(parallel, "_BATCH_STEPS", 50)  # a worker's batches cut by their steps too
    captured = (SAMPLES / "lab-legacy/tcp.dmesg").read_text().splitlines()
    rule = captured[0].replace(":policy:", ":rule:", 1)
    long_trace = captured[3].replace("IN=docker0", "IN=" + "d" * (200 << 10), 1)
    long_noise = "kernel: " + "n" * (150 << 10)
    lines = [*captured * 20, long_trace, *captured * 5, long_noise, *[rule] * 600, *captured * 20, long_trace]
    path = tmp_path / "long.dmesg"
    path.write_text("\n".join(lines) + "\n")
    tiny = dataclasses.replace(OPTIONS, window=20)
    one, one_stats = records(path, 1, tiny)
    several, several_stats = records(path, jobs, tiny)
    assert len(plan([str(path)], jobs, tiny)) > 1
    assert several == one
    assert several_stats == one_stats
    assert one_stats.bad == 2
    # the endless packet, cut by the step that takes the steps held past 4 windows
    assert max(len(record["steps"]) for record in one) == 4 * tiny.window + 1
