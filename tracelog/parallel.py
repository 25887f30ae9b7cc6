"""One big log file read by several processes: its chunks, their seams, and the records in order.

A saved log of millions of lines is parsed and correlated chunk by chunk, a
process per CPU.  A chunk is lines [begin, end) of the file.  Its run starts
reading `lead` lines earlier, so that the packets under way at `begin` are
known, and reads on past `end` until every packet begun before `end` is
complete.  It keeps exactly the packets whose first line lies in the chunk:
chunk after chunk, these are the packets one process reading the whole file
finds, in the same order.

That holds when a lead-in is long enough for a run's parser and correlator
to agree with those that read everything before it, so every seam is
checked: the lines from `end` on that a chunk gave to packets begun before
`end` must be the very lines the next chunk gave to packets begun in its
lead-in, and both must read the lines they share alike.  A seam that does
not fit (a packet longer than the lead-in, a trace id recalled from long
before) costs time, not truth: the rest of the file is then read by one
process from the file's start.

The main process runs the first chunk itself, streaming, while the others
run in forked workers that spool their records to disk (memory stays
bounded); flows and the outputs follow in the main process, in order.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import multiprocessing
import os
import pickle
import signal
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from tracelog.correlate import Packet
from tracelog.errors import InputError
from tracelog.events import SourceLine
from tracelog.names import Names
from tracelog.parse import Outcome
from tracelog.pipeline import PacketBuilder, ParseOptions, RunStats, trace_packets
from tracelog.record import NO_NAMES, packet_record
from tracelog.sources import STDIN, is_gzip, read_lines

# Below this a chunk's lead-in and run-out (a few thousand lines each) cost
# more than a second process saves.
MIN_CHUNK_BYTES = 8 << 20
# A chunk's lead-in, in correlation windows: a packet untouched for one window
# of events is complete, so the packets under way at a chunk's start began
# within a few windows before it, nearly always within one.
LEAD_WINDOWS = 2
# Lines after a seam that both chunks read and compare outcome by outcome.
OVERLAP_LINES = 2_000
_BATCH = 256  # records per pickle in a worker's spool
_BLOCK = 1 << 20  # bytes read at a time to plan the chunks

Reading = tuple[tuple[int, int], ...]
"""(line number, hash of the line's parse outcomes) for each line of a stretch."""

Record = dict[str, Any]


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity, not the machine's count)."""
    return len(os.sched_getaffinity(0))


@dataclass(frozen=True, slots=True)
class Chunk:
    """Lines [begin, end) of one file (`end` None: to its end), read from byte `offset`, after `lines_before` lines."""

    name: str
    offset: int
    lines_before: int
    begin: int
    end: int | None = None

    def owns(self, line: int) -> bool:
        return self.begin <= line and (self.end is None or line < self.end)

    def rest(self) -> Chunk:
        """This chunk and all after it, read from the file's start: always right, never fast."""
        return Chunk(self.name, 0, 0, self.begin)


@dataclass(frozen=True, slots=True)
class Seam:
    """What a chunk's run saw at its two edges, for checking against its neighbours.

    `head` and `tail` are the lines from `begin` (`end`) on whose events
    joined packets begun before it; `head_reading` and `tail_reading` are how
    the run read the first lines from `begin` (`end`) on, as far as it read.
    `cut_short` says the file could not be read to the end.
    """

    packets: int
    head: frozenset[int]
    tail: frozenset[int]
    head_reading: Reading
    tail_reading: Reading
    cut_short: bool

    def fits(self, after: Seam) -> bool:
        """Whether the chunk `after` (the next one) agrees with this one where they meet."""
        shared = len(self.tail_reading)
        return self.tail == after.head and self.tail_reading == after.head_reading[:shared]


def plan(inputs: Sequence[str], jobs: int, options: ParseOptions) -> list[Chunk]:
    """The chunks to read the inputs in, one per process; none when one process is the way.

    Only a single plain file is split (a gzip stream cannot be entered
    midway, a pipe not at all), and not with `strict`, whose first bad line
    must stop the run where one process would stop it.
    """
    if jobs < 2 or options.strict or len(inputs) != 1 or inputs[0] == STDIN:
        return []
    name = inputs[0]
    try:
        info = os.stat(name)
        if not stat.S_ISREG(info.st_mode) or info.st_size < 2 * MIN_CHUNK_BYTES or is_gzip(name):
            return []
    except (OSError, InputError):
        return []  # the one-process run reports it
    count = min(jobs, info.st_size // MIN_CHUNK_BYTES)
    with Path(name).open("rb") as handle:
        return _chunks(name, handle, count, info.st_size, LEAD_WINDOWS * options.window)


def _chunks(name: str, data: BinaryIO, count: int, size: int, lead: int) -> list[Chunk]:
    """`count` chunks of about equal size, cut at line starts, each with `lead` lines before it.

    The file is read a block at a time, not mapped: a mapping's pages count
    as the process's memory once touched.
    """
    cuts = sorted({_line_start(data, size * index // count) for index in range(1, count)} - {size})
    offsets = [_lines_back(data, cut, lead) for cut in cuts]
    newlines = _newlines_before(data, sorted({0, *cuts, *offsets}))
    begins = [newlines[cut] + 1 for cut in cuts]
    chunks = [Chunk(name, 0, 0, 1, begins[0] if begins else None)]
    for index, (offset, begin) in enumerate(zip(offsets, begins, strict=True)):
        end = begins[index + 1] if index + 1 < len(begins) else None
        chunks.append(Chunk(name, offset, newlines[offset], begin, end))
    return chunks


def _line_start(data: BinaryIO, position: int) -> int:
    """The start of the first line at or after `position` (the file's size if none starts there)."""
    if position == 0:
        return 0
    data.seek(position - 1)
    while block := data.read(_BLOCK):
        newline = block.find(b"\n")
        if newline >= 0:
            return data.tell() - len(block) + newline + 1
    return data.tell()


def _lines_back(data: BinaryIO, start: int, lines: int) -> int:
    """The start of the line `lines` lines before the line that starts at `start` (0 at the file's start)."""
    end = start - 1  # the newline that ends the line before
    while end > 0:
        block_start = max(0, end - _BLOCK)
        data.seek(block_start)
        block = data.read(end - block_start)
        for _ in range(lines):
            end = block.rfind(b"\n", 0, end - block_start) + block_start
            if end < block_start:
                break
            lines -= 1
        else:
            return end + 1
        end = block_start
    return 0


def _newlines_before(data: BinaryIO, positions: list[int]) -> dict[int, int]:
    """How many newlines lie before each of the (sorted) byte positions."""
    counts: dict[int, int] = {}
    total = previous = 0
    data.seek(0)
    for position in positions:
        for _ in range(previous, position, _BLOCK):
            total += data.read(min(_BLOCK, position - data.tell())).count(b"\n")
        counts[position], previous = total, position
    return counts


class ChunkRun:
    """The run over one chunk: its own packets (renumbered from 1), its own counts, and its `seam`."""

    def __init__(self, chunk: Chunk, options: ParseOptions) -> None:
        self.chunk = chunk
        self._builder = PacketBuilder(options)
        self._aside = RunStats()  # what the lead-in and run-out read: the neighbours' to count
        self._emitted = 0
        self._own = 0
        self._head: set[int] = set()
        self._tail: set[int] = set()
        self._head_reading: list[tuple[int, int]] = []
        self._tail_reading: list[tuple[int, int]] = []
        self.seam: Seam | None = None

    def packets(self, stats: RunStats) -> Iterator[Packet]:
        """Yield the chunk's packets, counting its lines into `stats`; then `seam` tells how it ended."""
        chunk, builder, cut_short = self.chunk, self._builder, False
        begun_before_end: int | None = None
        try:
            for line in read_lines(chunk.name, chunk.offset, chunk.lines_before):
                if chunk.end is not None and line.line >= chunk.end:
                    if begun_before_end is None:
                        begun_before_end = builder.correlator.started
                    if self._emitted >= begun_before_end:
                        break  # every packet begun in the chunk is complete
                yield from self._sort(self._take(line, stats), stats)
            else:
                yield from self._sort(builder.finish(stats if chunk.end is None else self._aside), stats)
        except InputError as error:
            stats.unreadable.append(str(error))
            cut_short = True
            yield from self._sort(builder.finish(stats), stats)
        self.seam = Seam(
            self._own, frozenset(self._head), frozenset(self._tail), tuple(self._head_reading),
            tuple(self._tail_reading), cut_short,
        )

    def _take(self, line: SourceLine, stats: RunStats) -> list[Packet]:
        """Parse and correlate one line, counted where it belongs, noting how it read near an edge."""
        chunk, builder = self.chunk, self._builder
        outcomes = builder.parser.parse(line)
        number = line.line
        if chunk.begin <= number < chunk.begin + OVERLAP_LINES:
            self._head_reading.append(_reading(number, outcomes))
        if chunk.end is not None and chunk.end <= number < chunk.end + OVERLAP_LINES:
            self._tail_reading.append(_reading(number, outcomes))
        counted = stats if chunk.owns(number) else self._aside
        counted.lines += 1
        return builder.absorb(outcomes, counted)

    def _sort(self, packets: list[Packet], stats: RunStats) -> Iterator[Packet]:
        """Keep the chunk's own packets; note which later lines joined packets begun before an edge."""
        chunk = self.chunk
        for packet in packets:
            self._emitted += 1
            first = packet.first.origin.line
            lines = [step.event.origin.line for step in packet.steps]
            if first < chunk.begin:
                self._head.update(line for line in lines if line >= chunk.begin)
            if chunk.end is not None and first < chunk.end:
                self._tail.update(line for line in lines if line >= chunk.end)
            if chunk.owns(first):
                self._own += 1
                stats.packets += 1
                yield Packet(self._own, packet.steps, packet.rewrites)


def _reading(number: int, outcomes: list[Outcome]) -> tuple[int, int]:
    return number, hash(tuple(outcomes))


def packet_records_of(
    inputs: Sequence[str], options: ParseOptions, stats: RunStats, names: Names = NO_NAMES, jobs: int = 1
) -> Iterator[Record]:
    """The records of `packet_record` for the inputs' packets, in order: from `jobs` processes where that pays."""
    chunks = plan(inputs, jobs, options)
    if not chunks:
        return (packet_record(packet, names) for packet in trace_packets(inputs, options, stats))
    return _chunked_records(chunks, options, stats, names)


def _chunked_records(chunks: list[Chunk], options: ParseOptions, stats: RunStats, names: Names) -> Iterator[Record]:
    sys.stdout.flush()  # a forked worker flushes what it inherited: nothing may be pending
    context = multiprocessing.get_context("fork")
    with contextlib.ExitStack() as cleanup:
        # anonymous files, made before the workers fork so that they share them: nothing is left on disk, whoever dies
        spools = [cleanup.enter_context(tempfile.TemporaryFile(prefix="tracelog-")) for _ in chunks[1:]]
        pool = cleanup.enter_context(context.Pool(len(spools), _adopt, (options, names, spools)))
        results = [pool.apply_async(_spool_chunk, (chunk, index)) for index, chunk in enumerate(chunks[1:])]
        first = ChunkRun(chunks[0], options)
        yield from (packet_record(packet, names) for packet in first.packets(stats))
        seam = first.seam
        offset = 0
        for chunk, result, spool in zip(chunks[1:], results, spools, strict=True):
            assert seam is not None
            offset += seam.packets
            if seam.cut_short:
                return  # as one process would: the file ends where it could not be read
            chunk_stats, chunk_seam = result.get()
            if not seam.fits(chunk_seam):
                pool.terminate()
                rest = ChunkRun(chunk.rest(), options)
                yield from _renumbered((packet_record(packet, names) for packet in rest.packets(stats)), offset)
                return
            stats.add(chunk_stats)
            spool.seek(0)
            yield from _renumbered(_spooled(spool), offset)
            seam = chunk_seam


def _renumbered(records: Iterable[Record], offset: int) -> Iterator[Record]:
    for record in records:
        record["packet"] += offset
        yield record


def _spooled(spool: BinaryIO) -> Iterator[Record]:
    """The records a worker spooled, batch by batch."""
    while True:
        try:
            batch: list[Record] = pickle.load(spool)
        except EOFError:
            return
        yield from batch


@dataclass(slots=True)
class _Job:
    """What every chunk of one run is read with, handed to the forked workers (never pickled)."""

    options: ParseOptions = field(default_factory=ParseOptions)
    names: Names = NO_NAMES
    spools: list[BinaryIO] = field(default_factory=list)


_job = _Job()
_PR_SET_PDEATHSIG = 1  # prctl(2)


def _adopt(options: ParseOptions, names: Names, spools: list[BinaryIO]) -> None:
    """A worker's start: it dies with the main process; Ctrl-C is the main process's to handle."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _job.options, _job.names, _job.spools = options, names, spools


def _spool_chunk(chunk: Chunk, index: int) -> tuple[RunStats, Seam]:
    """A worker's whole task: the chunk's records, pickled in batches into its spool."""
    stats = RunStats()
    run = ChunkRun(chunk, _job.options)
    records = (packet_record(packet, _job.names) for packet in run.packets(stats))
    with open(_job.spools[index].fileno(), "wb", closefd=False) as out:  # the inherited descriptor
        while batch := list(itertools.islice(records, _BATCH)):
            pickle.dump(batch, out, pickle.HIGHEST_PROTOCOL)
    assert run.seam is not None
    return stats, run.seam
