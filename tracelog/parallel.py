"""One big log file read by several processes: its chunks, their seams, and their packets in order.

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
before), like a worker that dies, costs time, not truth: one process then
reads on from the file's start, past what was already taken.

The main process reads the first chunk itself while forked workers read the
others.  A worker makes as much of each packet's output as it can without the
numbers of packets and flows (`tracelog.records.numbering`), and spools it to an
anonymous file that the main process reads as it grows (memory stays
bounded); the main process numbers packets and flows, in order, and writes.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import pickle
import signal
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import BinaryIO, Generic, TypeVar

from tracelog.children import die_with_parent
from tracelog.correlate import Packet
from tracelog.errors import InputError
from tracelog.events import SourceLine
from tracelog.parse import Outcome
from tracelog.pipeline import PacketBuilder, ParseOptions, RunStats, trace_packets
from tracelog.sources import STDIN, is_gzip, read_lines

# Below this a chunk's lead-in and run-out (a few thousand lines each) cost
# more than a second process saves.
MIN_CHUNK_BYTES = 8 << 20
# A chunk's lead-in, in correlation windows: a packet untouched for one window
# of events is complete, so a packet under way at a chunk's start was touched
# within the window before it, and began there too unless it is a long one
# (which the seam check finds).
LEAD_WINDOWS = 1
# Lines after a seam that both chunks read and compare outcome by outcome.
OVERLAP_LINES = 2_000
# A pickle in a worker's spool holds this many packets, or fewer with as many
# steps: what a batch of packets costs to hold grows with their steps, and a
# packet can have thousands (see `tracelog.correlate.WINDOWS_HELD`).
_BATCH = 256
_BATCH_STEPS = 4096
_BLOCK = 1 << 20  # bytes read at a time to plan the chunks

Reading = tuple[tuple[int, int], ...]
"""(line number, hash of the line's parse outcomes) for each line of a stretch."""

M = TypeVar("M")
"""What a process makes of each packet (see `tracelog.records.numbering.prepare_packet`)."""


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
class Edge:
    """What a run saw from one edge of its chunk on, for checking against the neighbour's run.

    `joined`: the lines from the edge on whose events joined packets begun
    before it; `reading`: how the run read the first lines from the edge on
    (as far as it read them).
    """

    joined: frozenset[int]
    reading: Reading

    @classmethod
    def of(cls, joined: set[int], reading: list[tuple[int, int]]) -> Edge:
        return cls(frozenset(joined), tuple(reading))

    def fits(self, after: Edge) -> bool:
        """Whether the next chunk's run, starting at this edge, agrees with this run (the one before it)."""
        return self.joined == after.joined and self.reading == after.reading[: len(self.reading)]


@dataclass(frozen=True, slots=True)
class Ending:
    """How a chunk's run ended: its counts, its far edge (`None`: the file's end)."""

    stats: RunStats
    tail: Edge | None
    cut_short: bool = False


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

    Equal: what the main process adds to a worker's packets (their numbers,
    their flows) is a small part of what making them cost.

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
    """The run over one chunk: its own packets, its `head` edge, then how it `ended`.

    The packets keep the numbers the run gave them; `tracelog.records.numbering.number_packets`
    numbers them in the file's order.
    """

    def __init__(self, chunk: Chunk, options: ParseOptions) -> None:
        self.chunk = chunk
        self._builder = PacketBuilder(options)
        self._neighbours = RunStats()  # what the lead-in and run-out read: the neighbours' to count
        self._emitted = 0
        self._begun_before_begin: int | None = None
        self._head: set[int] = set()
        self._tail: set[int] = set()
        self._head_reading: list[tuple[int, int]] = []
        self._tail_reading: list[tuple[int, int]] = []
        self.head: Edge | None = None
        self.ended: Ending | None = None

    def packets(self, stats: RunStats) -> Iterator[Packet]:
        """Yield the chunk's packets, counting its lines into `stats`.

        `head` is set as soon as it is known: once the packets begun in the
        lead-in are complete and the first lines of the chunk are read.
        """
        chunk, builder, cut_short = self.chunk, self._builder, False
        begun_before_end: int | None = None
        try:
            for line in read_lines(chunk.name, chunk.offset, chunk.lines_before):
                number = line.line
                if self._begun_before_begin is None and number >= chunk.begin:
                    self._begun_before_begin = builder.correlator.started
                if chunk.end is not None and number >= chunk.end:
                    if begun_before_end is None:
                        begun_before_end = builder.correlator.started
                    if self._emitted >= begun_before_end:
                        break  # every packet begun in the chunk is complete
                yield from self._keep_own(self._read_line(line, stats), stats)
                if self.head is None and number >= chunk.begin + OVERLAP_LINES - 1:
                    self._know_head()
            else:
                yield from self._keep_own(builder.finish(stats if chunk.end is None else self._neighbours), stats)
        except InputError as error:
            stats.unreadable.append(str(error))
            cut_short = True
            yield from self._keep_own(builder.finish(stats), stats)
        self.head = self.head or Edge.of(self._head, self._head_reading)
        tail = None if chunk.end is None else Edge.of(self._tail, self._tail_reading)
        self.ended = Ending(stats, tail, cut_short)

    def _know_head(self) -> None:
        """Fix the head edge once every packet begun before the chunk is complete."""
        if self._begun_before_begin is not None and self._emitted >= self._begun_before_begin:
            self.head = Edge.of(self._head, self._head_reading)

    def _read_line(self, line: SourceLine, stats: RunStats) -> list[Packet]:
        """Parse and correlate one line, counted where it belongs, noting how it read near an edge."""
        chunk, builder = self.chunk, self._builder
        outcomes = builder.read(line)
        number = line.line
        if chunk.begin <= number < chunk.begin + OVERLAP_LINES:
            self._head_reading.append(_reading(number, outcomes))
        if chunk.end is not None and chunk.end <= number < chunk.end + OVERLAP_LINES:
            self._tail_reading.append(_reading(number, outcomes))
        return builder.feed_parsed(outcomes, stats if chunk.owns(number) else self._neighbours)

    def _keep_own(self, packets: list[Packet], stats: RunStats) -> Iterator[Packet]:
        """Keep the chunk's own packets; note which later lines joined packets begun before an edge.

        Steps come in line order, so only a packet whose last step lies past
        an edge it began before has lines to note: a few near each edge.
        """
        chunk = self.chunk
        for packet in packets:
            self._emitted += 1
            first, last = packet.first.origin.line, packet.last.origin.line
            if first < chunk.begin <= last:
                self._head.update(_lines_from(packet, chunk.begin))
            if chunk.end is not None and first < chunk.end <= last:
                self._tail.update(_lines_from(packet, chunk.end))
            if chunk.owns(first):
                stats.packets += 1
                yield packet


def _lines_from(packet: Packet, edge: int) -> Iterator[int]:
    return (line for line in (step.event.origin.line for step in packet.steps) if line >= edge)


def _reading(number: int, outcomes: list[Outcome]) -> tuple[int, int]:
    return number, hash(tuple(outcomes))


def map_packets(
    inputs: Sequence[str], options: ParseOptions, stats: RunStats, make: Callable[[Packet], M], jobs: int = 1
) -> Iterator[M]:
    """What `make` makes of each of the inputs' packets, in packet order: in `jobs` processes where that pays."""
    chunks = plan(inputs, jobs, options)
    if not chunks:
        return map(make, trace_packets(inputs, options, stats))
    return _chunked(chunks, options, stats, make)


def _chunked(chunks: list[Chunk], options: ParseOptions, stats: RunStats, make: Callable[[Packet], M]) -> Iterator[M]:
    """The main process reads the first chunk; workers read the others, and what they make is read as it comes."""
    sys.stdout.flush()  # a forked worker flushes what it inherited: nothing may be pending
    with contextlib.ExitStack() as cleanup:
        workers = [cleanup.enter_context(Worker(chunk, options, make)) for chunk in chunks[1:]]
        first = ChunkRun(chunks[0], options)
        yield from map(make, first.packets(stats))
        assert first.ended is not None
        ended = first.ended
        for chunk, worker in zip(chunks[1:], workers, strict=True):
            if ended.cut_short:
                return  # as one process would: the file ends where it could not be read
            assert ended.tail is not None
            head = worker.head()
            if head is not None and ended.tail.fits(head):
                yield from worker.prepared()
                if worker.ended is not None:
                    stats.add(worker.ended.stats)
                    ended = worker.ended
                    continue
            # the seam does not fit, or the worker is gone: one process reads on from the file's start
            rest = map(make, ChunkRun(chunk.rest(), options).packets(stats))
            yield from itertools.islice(rest, worker.taken, None)
            return


class Worker(Generic[M]):
    """A forked process reading one chunk: what it makes into an anonymous spool file, edges and ending over a pipe.

    The main process reads the spool while the worker writes it (a batch is
    a frame: its length, then its pickle), so memory stays bounded and the
    main process never waits for a whole chunk.  The worker dies with the
    main process, and leaves nothing on disk.
    """

    def __init__(self, chunk: Chunk, options: ParseOptions, make: Callable[[Packet], M]) -> None:
        self._spool = tempfile.TemporaryFile(prefix="tracelog-")  # noqa: SIM115 (closed by __exit__)
        self._read_at = 0
        context = multiprocessing.get_context("fork")
        self._messages, sender = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_work, args=(chunk, options, make, self._spool.fileno(), sender), daemon=True
        )
        self._process.start()
        sender.close()  # the worker holds the only sending end: its end is the pipe's end
        self.ended: Ending | None = None
        self.taken = 0  # packets handed out so far

    def __enter__(self) -> Worker[M]:
        return self

    def __exit__(self, *_: object) -> None:
        self._process.kill()
        self._process.join()
        self._messages.close()
        self._spool.close()

    def head(self) -> Edge | None:
        """The worker's head edge, once it knows it; `None` if it is gone without saying."""
        message = self._receive(None)
        return message if isinstance(message, Edge) else None

    def prepared(self) -> Iterator[M]:
        """What the worker made of the chunk's packets, as it writes it; `ended` is set if it finished."""
        while True:
            batch = self._next_batch()
            if batch is not None:
                yield from batch
            elif self.ended is not None:
                return
            else:
                message = self._receive(_WAIT)
                if isinstance(message, Ending):
                    self.ended = message  # every batch is written before: read them, then stop
                elif message is _GONE:
                    return

    def _next_batch(self) -> list[M] | None:
        fd = self._spool.fileno()
        header = os.pread(fd, _FRAME_HEADER, self._read_at)
        if len(header) < _FRAME_HEADER:
            return None
        size = int.from_bytes(header, "little")
        payload = os.pread(fd, size, self._read_at + _FRAME_HEADER)
        if len(payload) < size:
            return None
        self._read_at += _FRAME_HEADER + size
        batch: list[M] = pickle.loads(payload)
        self.taken += len(batch)  # a batch is handed out whole
        return batch

    def _receive(self, timeout: float | None) -> object:
        """The worker's next message; None if none came within `timeout`, `_GONE` if it never will."""
        try:
            if timeout is not None and not self._messages.poll(timeout):
                return None
            return self._messages.recv()
        except (EOFError, OSError):
            return _GONE


_GONE = object()  # a worker that ended without its last word
_WAIT = 0.02  # seconds the main process waits for a worker that has written nothing new
_FRAME_HEADER = 8


def _work(chunk: Chunk, options: ParseOptions, make: Callable[[Packet], M], spool: int, messages: Connection) -> None:
    """A worker's life: it dies with the main process, leaves Ctrl-C to it, and reads its chunk."""
    die_with_parent(signal.SIGKILL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stats = RunStats()
    run = ChunkRun(chunk, options)
    head_sent = False
    with open(spool, "wb", closefd=False) as out:  # the inherited descriptor
        for batch in _batches(run.packets(stats), make):
            payload = pickle.dumps(batch, pickle.HIGHEST_PROTOCOL)
            out.write(len(payload).to_bytes(_FRAME_HEADER, "little") + payload)
            out.flush()
            if not head_sent and run.head is not None:
                messages.send(run.head)
                head_sent = True
    if not head_sent:
        messages.send(run.head)
    messages.send(run.ended)
    messages.close()


def _batches(packets: Iterator[Packet], make: Callable[[Packet], M]) -> Iterator[list[M]]:
    """What `make` makes of the packets, in lists of at most `_BATCH` packets or about `_BATCH_STEPS` steps."""
    batch: list[M] = []
    steps = 0
    for packet in packets:
        batch.append(make(packet))
        steps += len(packet.steps)
        if len(batch) >= _BATCH or steps >= _BATCH_STEPS:
            yield batch
            batch, steps = [], 0
    if batch:
        yield batch
