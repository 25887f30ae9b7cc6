"""Where `tracelog report` writes: a page or one packet's SVG, to stdout or to a file renamed into place when whole."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

from tracelog.errors import UsageError
from tracelog.output.redact import Redactor
from tracelog.output.report.diagram import packet_svg
from tracelog.output.report.page import write_page
from tracelog.records.packet import PacketRecord

STDOUT = "-"
DEFAULT_TITLE = "tracelog report"


def report_target(output: str | None, *, force: bool = False) -> Path | None:
    """Where the page goes (None: stdout), checked before anything is read.

    A page is no text for a terminal; an existing file is replaced only with
    `force`.
    """
    if output is None or output == STDOUT:
        if sys.stdout.isatty():
            raise UsageError("a report is HTML or SVG, not for a terminal", hint="give --output trace.html")
        return None
    target = Path(output)
    if target.is_dir():
        raise UsageError(f"{target} is a directory", hint="name a file: --output trace.html")
    if not target.parent.is_dir():
        raise UsageError(f"cannot write {target}: {target.parent} is not a directory")
    if not force and (target.exists() or target.is_symlink()):
        raise UsageError(f"{target} exists", hint="--force replaces it")
    return target


@contextlib.contextmanager
def _opened(target: Path | None) -> Iterator[TextIO]:
    """stdout, or a file beside `target` renamed into place once written whole (an error leaves nothing half done)."""
    if target is None:
        yield sys.stdout
        return
    handle, staging = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with open(handle, "w", encoding="utf-8") as out:
            yield out
        os.chmod(staging, 0o666 & ~_umask())  # as open() would have made it
        os.replace(staging, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staging)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class _UntilInterrupted:
    """The records until Ctrl-C or SIGTERM: the page then shows what was read, and the interruption is raised after."""

    def __init__(self, records: Iterable[PacketRecord]) -> None:
        self.records = records
        self.stopped: KeyboardInterrupt | None = None

    def __iter__(self) -> Iterator[PacketRecord]:
        try:
            yield from self.records
        except KeyboardInterrupt as stop:
            self.stopped = stop


def write_report(
    records: Iterable[PacketRecord],
    target: Path | None,
    *,
    title: str | None = None,
    redact: bool = False,
    redactor: Redactor | None = None,
    packet: int | None = None,
) -> None:
    """The page of `records` (or, with `packet`, that packet's SVG) to `target` (None: stdout).

    Interrupted while reading (Ctrl-C, SIGTERM as `KeyboardInterrupt`), it
    writes what was read and raises the interruption afterwards.  Redacted
    without a title, the page is called `tracelog report`: file names can
    name a host.
    """
    redactor = redactor or (Redactor() if redact else None)
    read = _UntilInterrupted(records)
    if packet is not None:
        found = _packet(read, packet, redactor)
        if found is None and read.stopped is None:
            raise UsageError(f"packet {packet} is not in the trace", hint="parse numbers the packets shown")
        if found is not None:
            with _opened(target) as out:
                out.write(packet_svg(found))
    else:
        with _opened(target) as out:
            write_page(read, out, title=title or DEFAULT_TITLE, redact=redactor is not None, redactor=redactor)
    if read.stopped is not None:
        raise read.stopped


def _packet(records: Iterable[PacketRecord], number: int, redactor: Redactor | None) -> PacketRecord | None:
    """Packet `number`, redacted as it would be on the page (every packet before it redacted in turn)."""
    for record in records:
        shown = redactor.record(record) if redactor else record
        if record["packet"] == number:
            return shown
        if record["packet"] > number:
            return None
    return None
