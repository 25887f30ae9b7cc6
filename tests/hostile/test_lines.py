"""Lines are read a block at a time: the same lines as ever, and a line too long to read passed over.

What one line may cost is bounded by `MAX_LINE_BYTES`; below it, reading in
blocks must give exactly the lines a text reader gives (UTF-8 with
replacement, lines ending at "\\n" only), whatever the bytes and wherever the
blocks fall, from a file, a gzip file and a pipe.
"""

from __future__ import annotations

import gzip
import io
import os
import random
import threading
from pathlib import Path

import pytest

from tests.samples import SAMPLES
from tracelog import sources
from tracelog.events import SourceLine
from tracelog.parse import BadLine, Caveat, Skip
from tracelog.pipeline import LONG_LINE_SKIPPED, PacketBuilder, ParseOptions, RunStats
from tracelog.sources import HEAD_BYTES, MAX_LINE_BYTES, LongLine, follow_fd, read_lines

CAPTURE = SAMPLES / "lab-legacy/tcp.dmesg"


def text_reader_lines(data: bytes, name: str) -> list[SourceLine]:
    """What a text reader makes of the bytes: the lines tracelog always read."""
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="replace", newline="\n")
    return [SourceLine(name, number, line.rstrip("\r\n")) for number, line in enumerate(text, start=1)]


def hostile_bytes(seed: int) -> bytes:
    """Real lines cut, mixed with random bytes, broken UTF-8, CR, CRLF and empty lines."""
    rng = random.Random(seed)
    captured = CAPTURE.read_bytes().splitlines()
    pieces = []
    for _ in range(400):
        kind = rng.randrange(6)
        if kind == 0:
            pieces.append(rng.randbytes(rng.randrange(300)))
        elif kind == 1:
            line = rng.choice(captured)
            pieces.append(line[: rng.randrange(len(line) + 1)] + b"\xe2\x82")  # a character cut short
        elif kind == 2:
            pieces.append(b"\r\n" * rng.randrange(3) + b"\n")
        else:
            pieces.append(rng.choice(captured) + rng.choice([b"\n", b"\r\n", b"\r\r\n", b"\xc3\xa9\n"]))
    return b"".join(pieces)


@pytest.fixture(params=[7, 64, 1 << 12], ids=lambda size: f"block-{size}")
def small_blocks(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Blocks smaller than a line, than a few lines, and than the file: lines cut everywhere."""
    block: int = request.param
    monkeypatch.setattr(sources, "_BLOCK", block)
    return block


@pytest.mark.parametrize("seed", range(5))
def test_a_file_read_in_blocks_gives_the_lines_a_text_reader_gives(
    seed: int, small_blocks: int, tmp_path: Path
) -> None:
    data = hostile_bytes(seed)
    path = tmp_path / "hostile.log"
    path.write_bytes(data)
    assert list(read_lines(str(path))) == text_reader_lines(data, str(path))
    packed = tmp_path / "hostile.log.gz"
    packed.write_bytes(gzip.compress(data))
    assert list(read_lines(str(packed))) == text_reader_lines(data, str(packed))


def pipe_lines(data: bytes, chunk: int) -> list[SourceLine]:
    """The lines `follow_fd` reads from a pipe written `chunk` bytes at a time (ticks left out)."""
    reading, writing = os.pipe()

    def feed() -> None:
        with open(writing, "wb", buffering=0) as pipe:
            for start in range(0, len(data), chunk):
                pipe.write(data[start : start + chunk])

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        return [line for line in follow_fd(reading, "-", 0.01) if line is not None]
    finally:
        writer.join()
        os.close(reading)


@pytest.mark.parametrize("seed", range(3))
def test_a_pipe_gives_the_lines_a_text_reader_gives(seed: int) -> None:
    data = hostile_bytes(seed)
    assert pipe_lines(data, 97) == text_reader_lines(data, "-")
    assert pipe_lines(gzip.compress(data), 97) == text_reader_lines(data, "-")


def long_line_input() -> tuple[bytes, list[bytes]]:
    """Captured lines around lines longer than the limit: by one byte, by far, last without a newline."""
    captured = CAPTURE.read_bytes().splitlines()
    just_over = captured[3].replace(b"IN=docker0", b"IN=" + b"d" * MAX_LINE_BYTES, 1)
    far_over = b"\x1b]0;title\x07" + b"x" * (3 * MAX_LINE_BYTES)
    lines = [captured[0], just_over, captured[1], far_over, b"", captured[2], just_over]
    return b"\n".join(lines), lines


def check_long_lines(found: list[SourceLine], lines: list[bytes]) -> None:
    assert [line.line for line in found] == list(range(1, len(lines) + 1))
    for line, raw in zip(found, lines, strict=True):
        if len(raw) > MAX_LINE_BYTES:
            assert isinstance(line, LongLine)
            assert line.length == len(raw)
            assert line.text == raw[:HEAD_BYTES].decode("utf-8", "replace")
        else:
            assert not isinstance(line, LongLine)
            assert line.text == raw.decode()


def test_a_line_past_the_limit_is_passed_over_and_numbered(small_blocks: int, tmp_path: Path) -> None:
    data, lines = long_line_input()
    path = tmp_path / "long.log"
    path.write_bytes(data)
    check_long_lines(list(read_lines(str(path))), lines)
    packed = tmp_path / "long.log.gz"
    packed.write_bytes(gzip.compress(data))
    check_long_lines(list(read_lines(str(packed))), lines)


def test_a_line_past_the_limit_is_passed_over_from_a_pipe() -> None:
    data, lines = long_line_input()
    check_long_lines(pipe_lines(data, 4096), lines)
    check_long_lines(pipe_lines(gzip.compress(data), 4096), lines)


def test_a_long_line_is_never_held_whole(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """What the cutter keeps between blocks stays within the limit while a 16 MB line goes by."""
    kept: list[int] = []
    cut = sources._LineCutter.cut

    def watched(self: sources._LineCutter, data: bytes) -> list[SourceLine]:
        lines = cut(self, data)
        kept.append(len(self._pending) + len(self._long_head or b""))
        return lines

    monkeypatch.setattr(sources._LineCutter, "cut", watched)
    path = tmp_path / "one-line.log"
    path.write_bytes(b"TRACE: " + b"y" * (16 << 20) + b"\n")
    (line,) = read_lines(str(path))
    assert isinstance(line, LongLine)
    assert max(kept) <= MAX_LINE_BYTES


def test_a_gzip_bomb_on_a_pipe_is_unpacked_a_block_at_a_time() -> None:
    """A small compressed chunk of a single 64 MB line: passed over, never unpacked whole."""
    bomb = gzip.compress(b"z" * (64 << 20) + b"\nTRACE-free line\n")
    assert len(bomb) < 1 << 20
    found = pipe_lines(bomb, len(bomb))
    assert [type(line) for line in found] == [LongLine, SourceLine]
    assert isinstance(found[0], LongLine)
    assert found[0].length == 64 << 20


def outcomes_of(line: SourceLine) -> list[object]:
    return list(PacketBuilder(ParseOptions(year=2026)).read(line))


def test_a_long_line_with_a_trace_mark_is_a_bad_trace_line_with_its_start_escaped() -> None:
    head = "[  871.9] TRACE: raw:PREROUTING:policy:3 IN=\x1b[2J\x07" + "i" * 200
    line = LongLine.of("big.log", 9, head.encode()[:HEAD_BYTES], 20 << 20)
    (bad,) = outcomes_of(line)
    assert isinstance(bad, BadLine)
    assert bad.location == "big.log:9"
    assert "line of 20,971,520 bytes" in bad.reason
    assert "\x1b" not in bad.reason + bad.with_caret()
    assert "\x07" not in bad.reason + bad.with_caret()
    assert "\\x1b[2J\\x07" in bad.reason
    assert len(bad.reason) < 200


@pytest.mark.parametrize("mark", ["trace id 7464ba71 ip raw PREROUTING packet: iif ", "PACKET: 2 7464ba71 IN="])
def test_the_monitors_marks_make_a_long_line_a_trace_line(mark: str) -> None:
    (bad,) = outcomes_of(LongLine.of("-", 1, mark.encode() + b"x" * 200, 1 << 20))
    assert isinstance(bad, BadLine)


def test_a_long_line_without_a_trace_mark_is_skipped_with_a_note() -> None:
    note, skip = outcomes_of(LongLine.of("-", 1, b"kernel: usb 1-1: " + b"x" * 300, 1 << 20))
    assert isinstance(note, Caveat)
    assert note.message == LONG_LINE_SKIPPED
    assert skip is Skip.OTHER


def test_a_long_line_is_counted_once_as_a_line(tmp_path: Path) -> None:
    data, lines = long_line_input()
    path = tmp_path / "long.log"
    path.write_bytes(data)
    builder, stats = PacketBuilder(ParseOptions(year=2026)), RunStats()
    for line in read_lines(str(path)):
        builder.feed(line, stats)
    builder.finish(stats)
    assert stats.lines == len(lines)
    assert stats.bad == 2  # the two TRACE lines made too long
    assert stats.skipped[Skip.OTHER] == 2  # the garbage line and the empty one
