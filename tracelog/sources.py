"""Where log lines come from: files, gzip files, stdin, named pipes and devices, with provenance."""

from __future__ import annotations

import contextlib
import functools
import gzip
import io
import itertools
import os
import select
import stat
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from tracelog.errors import InputError
from tracelog.events import SourceLine, new_source_line

STDIN = "-"
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 16  # bytes read at a time from a pipe
_BLOCK = 1 << 15  # bytes read (or decompressed) at a time from a file: what a CPU cache holds

MAX_LINE_BYTES = 64 << 10
"""The longest line tracelog reads.

Real TRACE lines are far shorter: the kernel prints at most 1 KiB per
record, a monitor's line with a long rule a few KiB.  A longer line is passed
over in constant memory (`LongLine`), so one line costs at most this much,
whatever the input holds.
"""
HEAD_BYTES = 256
"""What is kept of a line longer than `MAX_LINE_BYTES`: its start, to say what it was."""


class LongLine(SourceLine):
    """A line longer than `MAX_LINE_BYTES`, passed over: `text` is its first `HEAD_BYTES` only.

    A `SourceLine` still, so that a reader that does not look for it reads
    the start of the line and no more; `length` is the whole line's, in bytes
    (without its newline).
    """

    length: int

    @classmethod
    def of(cls, source: str, line: int, head: bytes, length: int) -> LongLine:
        long_line = cls(source, line, head.decode("utf-8", "replace"))
        long_line.length = length
        return long_line


# `_new_line((source, line, text))` makes a SourceLine without a Python-level call (see `events.new_source_line`)
_new_line = functools.partial(new_source_line, SourceLine)


class _LineCutter:
    """Cuts a stream of bytes into numbered lines, in memory bounded by what it is given at once.

    Lines end at "\n" only, as the kernel writes them (a trailing "\r" goes).
    Bytes are decoded as UTF-8 with replacement: logs carry binary garbage and
    a bad byte must cost one field, not the run.  Of a line longer than
    `MAX_LINE_BYTES` only its start is kept while the rest is counted and
    dropped, piece by piece, up to its newline.
    """

    def __init__(self, name: str, lines_before: int = 0) -> None:
        self.name = name
        self.number = lines_before  # the lines cut so far
        self._pending = b""  # the start of a line whose newline has not come yet
        self._long_head: bytes | None = None  # the start of a long line being passed over
        self._long_length = 0

    def cut(self, data: bytes) -> list[SourceLine]:
        """The lines `data` ends (with what came before it); the rest waits for more."""
        lines: list[SourceLine] = []
        if self._long_head is not None:
            newline = data.find(b"\n")
            if newline < 0:
                self._long_length += len(data)
                return lines
            self._long_length += newline
            lines.append(self._long_line())
            data = data[newline + 1 :]
        if self._pending:
            data = self._pending + data
        last = data.rfind(b"\n")
        if last >= 0:
            lines += self._complete(data[:last])
        tail = data[last + 1 :]
        if len(tail) > MAX_LINE_BYTES:
            self._long_head, self._long_length, self._pending = tail[:HEAD_BYTES], len(tail), b""
        else:
            self._pending = tail
        return lines

    def end(self) -> list[SourceLine]:
        """The last line, if no newline ended it."""
        if self._long_head is not None:
            return [self._long_line()]
        if not self._pending:
            return []
        return self._complete(self._pending)

    def _long_line(self) -> LongLine:
        assert self._long_head is not None
        self.number += 1
        line = LongLine.of(self.name, self.number, self._long_head, self._long_length)
        self._long_head = None
        return line

    def _complete(self, data: bytes) -> list[SourceLine]:
        """Whole lines: `data` ends where a line ends (its newline cut off)."""
        name, first = self.name, self.number + 1
        texts = data.decode("utf-8", "replace").split("\n")
        self.number += len(texts)
        # nearly always: no line has that many characters, so none has too many bytes (4 at most per character)
        if max(map(len, texts)) <= MAX_LINE_BYTES // 4:
            if b"\r" in data:
                texts = [text.rstrip("\r") for text in texts]
            return list(map(_new_line, zip(itertools.repeat(name), itertools.count(first), texts)))
        pieces = data.split(b"\n")
        return [
            LongLine.of(name, number, piece[:HEAD_BYTES], len(piece))
            if len(piece) > MAX_LINE_BYTES
            else new_source_line(SourceLine, (name, number, piece.decode("utf-8", "replace").rstrip("\r")))
            for number, piece in enumerate(pieces, first)
        ]


def _open(name: str) -> BinaryIO:
    try:
        return Path(name).open("rb")
    except OSError as error:
        raise InputError(f"cannot read {name}: {error.strerror or error}") from error


MAX_SIDE_FILE_BYTES = 64 << 20
"""The most a file read whole may hold: a `--rules` snapshot or `--names` inspect output (real ones: kilobytes)."""


def read_side_file(name: str, limit: int = MAX_SIDE_FILE_BYTES) -> bytes:
    """A small file read whole (a snapshot, inspect output), refused with one line past `limit` bytes.

    Read at most one byte past the limit, so that a huge file or an endless
    pipe costs bounded memory.
    """
    with _open(name) as raw:
        try:
            data = raw.read(limit + 1)
        except OSError as error:
            raise InputError(f"cannot read {name}: {error.strerror or error}") from error
    if len(data) > limit:
        raise InputError(f"{name} holds more than {limit >> 20} MiB: no ruleset snapshot or inspect output is that big")
    return data


def is_gzip(name: str) -> bool:
    """Whether a file holds gzip data, by its magic bytes (not its name)."""
    with _open(name) as raw:
        return raw.read(2) == _GZIP_MAGIC


def read_lines(name: str, offset: int = 0, lines_before: int = 0) -> Iterator[SourceLine]:
    """Yield the lines of one file (gzip detected by its magic bytes, not its name).

    Read a block at a time: memory stays bounded by the block and
    `MAX_LINE_BYTES` (a longer line is a `LongLine`), whatever the file
    holds.  A corrupt gzip stream ends the file with an `InputError` after
    the lines read so far.  A plain file may be read from byte `offset` on,
    where `lines_before` lines lie behind.
    """
    with _open(name) as raw:
        yield from _file_lines(raw, name, offset, lines_before)


def _file_lines(raw: BinaryIO, name: str, offset: int = 0, lines_before: int = 0) -> Iterator[SourceLine]:
    """`read_lines` of a file already open."""
    cutter = _LineCutter(name, lines_before)
    if offset:
        raw.seek(offset)
    packed = isinstance(raw, io.BufferedReader) and raw.peek(2)[:2] == _GZIP_MAGIC
    with gzip.GzipFile(fileobj=raw, mode="rb") if packed else contextlib.nullcontext(raw) as handle:
        try:
            while block := handle.read(_BLOCK):
                yield from cutter.cut(block)
        except (OSError, EOFError) as error:
            raise InputError(f"{name}:{cutter.number + 1}: cannot read further: {error}") from error
    yield from cutter.end()


def _split_chunks(chunks: Iterator[bytes | None], name: str, lines_before: int) -> Iterator[SourceLine | None]:
    """Cut byte chunks into lines numbered on from `lines_before`, passing the `None` ticks through.

    A gzip stream is decompressed a block at a time, so that a small chunk
    that unpacks to gigabytes costs no more memory than any other.
    """
    cutter = _LineCutter(name, lines_before)
    decompressor: zlib._Decompress | None = None
    started = False
    for chunk in chunks:
        if chunk is None:
            yield None
            continue
        if not started and chunk.startswith(_GZIP_MAGIC):
            decompressor = zlib.decompressobj(wbits=zlib.MAX_WBITS | 32)
        started = started or bool(chunk)
        if decompressor is None:
            yield from cutter.cut(chunk)
        else:
            try:
                data = decompressor.decompress(chunk, _BLOCK)
                yield from cutter.cut(data)
                while decompressor.unconsumed_tail:
                    yield from cutter.cut(decompressor.decompress(decompressor.unconsumed_tail, _BLOCK))
            except zlib.error as error:
                raise InputError(f"{name}:{cutter.number + 1}: cannot read further: {error}") from error
        yield None
    yield from cutter.end()


def _fd_chunks(fd: int, name: str, tick: float) -> Iterator[bytes | None]:
    while True:
        ready, _, _ = select.select([fd], [], [], tick)
        if not ready:
            yield None
            continue
        try:
            chunk = os.read(fd, _CHUNK)
        except OSError as error:  # a device that fails a read (EIO, EINVAL)
            raise InputError(f"{name}: cannot read further: {error.strerror or error}") from error
        if not chunk:
            return
        yield chunk


def follow_fd(fd: int, name: str, tick: float, lines_before: int = 0) -> Iterator[SourceLine | None]:
    """Yield a pipe's lines as they arrive, and `None` whenever `tick` seconds pass.

    This is what makes `tail -f log | tracelog parse` live: the ticks let the
    caller finish packets whose lines stopped arriving while the pipe stays
    open.  Gzip data is recognised and decompressed as it streams.  Lines
    longer than `MAX_LINE_BYTES` are `LongLine`s, as from a file.  The first
    line is numbered `lines_before + 1`: a stream may go on from another pipe.
    """
    yield from _split_chunks(_fd_chunks(fd, name, tick), name, lines_before)


def read_source(name: str, tick: float) -> Iterator[SourceLine | None]:
    """Yield the lines of one input; `-` is stdin, followed live with `tick` clock ticks (see `follow_fd`).

    So is any input that is not a regular file: a named pipe, `<(command)`,
    a character device.  Such an input has no end to wait for before its
    packets are printed, and cannot be read from the middle.
    """
    return follow_fd(sys.stdin.fileno(), STDIN, tick) if name == STDIN else _named_lines(name, tick)


def _named_lines(name: str, tick: float) -> Iterator[SourceLine | None]:
    """The lines of a named input: a regular file to its end, anything else live (`read_source`)."""
    with _open(name) as raw:
        if stat.S_ISREG(os.fstat(raw.fileno()).st_mode):
            yield from _file_lines(raw, name)
        else:
            yield from follow_fd(raw.fileno(), name, tick)
