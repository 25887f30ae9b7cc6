"""Where log lines come from: files, gzip files and stdin, with provenance."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import select
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from tracelog.errors import InputError
from tracelog.events import SourceLine, build

STDIN = "-"
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 16


def _open(name: str) -> BinaryIO:
    try:
        return Path(name).open("rb")
    except OSError as error:
        raise InputError(f"cannot read {name}: {error.strerror or error}") from error


def is_gzip(name: str) -> bool:
    """Whether a file holds gzip data, by its magic bytes (not its name)."""
    with _open(name) as raw:
        return raw.read(2) == _GZIP_MAGIC


def read_lines(name: str, offset: int = 0, lines_before: int = 0) -> Iterator[SourceLine]:
    """Yield the lines of one file (gzip detected by its magic bytes, not its name).

    Bytes are decoded as UTF-8 with replacement: logs carry binary garbage and
    a bad byte must cost one field, not the run.  A corrupt gzip stream ends
    the file with an `InputError` after the lines read so far.  A plain file
    may be read from byte `offset` on, where `lines_before` lines lie behind.
    """
    number = lines_before
    with _open(name) as raw:
        if offset:  # a named pipe (`<(dmesg)`) cannot seek at all
            raw.seek(offset)
        packed = isinstance(raw, io.BufferedReader) and raw.peek(2)[:2] == _GZIP_MAGIC
        with gzip.GzipFile(fileobj=raw, mode="rb") if packed else contextlib.nullcontext(raw) as handle:
            # decoded in bulk; lines end at "\n" only, as the kernel writes them
            text = io.TextIOWrapper(handle, encoding="utf-8", errors="replace", newline="\n")
            try:
                for number, data in enumerate(text, start=lines_before + 1):
                    yield build(SourceLine, (name, number, data.rstrip("\r\n")))
            except (OSError, EOFError) as error:
                raise InputError(f"{name}:{number + 1}: cannot read further: {error}") from error


def _split_chunks(chunks: Iterator[bytes | None], name: str) -> Iterator[SourceLine | None]:
    """Cut byte chunks into lines, passing the `None` ticks through."""
    pending = b""
    number = 0
    decompressor: zlib._Decompress | None = None
    for chunk in chunks:
        if chunk is None:
            yield None
            continue
        if number == 0 and not pending and chunk.startswith(_GZIP_MAGIC):
            decompressor = zlib.decompressobj(wbits=zlib.MAX_WBITS | 32)
        data = chunk
        if decompressor is not None:
            try:
                data = decompressor.decompress(chunk)
            except zlib.error as error:
                raise InputError(f"{name}:{number + 1}: cannot read further: {error}") from error
        *lines, pending = (pending + data).split(b"\n")
        for raw in lines:
            number += 1
            yield SourceLine(name, number, raw.decode("utf-8", "replace").rstrip("\r"))
        yield None
    if pending:
        yield SourceLine(name, number + 1, pending.decode("utf-8", "replace").rstrip("\r"))


def _fd_chunks(fd: int, tick: float) -> Iterator[bytes | None]:
    while True:
        ready, _, _ = select.select([fd], [], [], tick)
        if not ready:
            yield None
            continue
        chunk = os.read(fd, _CHUNK)
        if not chunk:
            return
        yield chunk


def follow_fd(fd: int, name: str, tick: float) -> Iterator[SourceLine | None]:
    """Yield a pipe's lines as they arrive, and `None` whenever `tick` seconds pass.

    This is what makes `tail -f log | tracelog parse` live: the ticks let the
    caller finish packets whose lines stopped arriving while the pipe stays
    open.  Gzip data is recognised and decompressed as it streams.
    """
    yield from _split_chunks(_fd_chunks(fd, tick), name)


def read_source(name: str, tick: float) -> Iterator[SourceLine | None]:
    """Yield the lines of one input; `-` is stdin, followed live with `tick` clock ticks."""
    return follow_fd(sys.stdin.fileno(), STDIN, tick) if name == STDIN else read_lines(name)
