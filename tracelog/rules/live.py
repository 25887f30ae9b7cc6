"""`tracelog watch`: the live trace source of the chosen backend, and removing the rules however it ends.

Legacy tables print into the kernel log, read from `/dev/kmsg` starting at
its current end; nf_tables sends netlink events, read by a line-buffered
`xtables-monitor --trace` child.  SIGTERM and SIGHUP end a watch like Ctrl-C,
and the cleanup itself cannot be interrupted half-way.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import select
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Protocol

from tracelog.children import die_with_parent
from tracelog.errors import PermissionDenied, Unavailable
from tracelog.events import Family, SourceLine
from tracelog.rules.manage import EnableReport, Plan, enable_tracing, remove_rules
from tracelog.sources import follow_fd
from tracelog.wording import plural

KMSG = Path("/dev/kmsg")
KMSG_RECORD_MAX = 8192
# SIGINT too, handled rather than left as inherited: a shell starts `tracelog watch … &` with it ignored
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
MONITOR_STOP_WAIT = 5.0
_MONITOR_FAMILY: dict[Family, str] = {"ipv4": "-4", "ipv6": "-6"}
# strerror(ENOBUFS) in English: a burst of trace events overflowed the monitor's netlink socket
MONITOR_OVERFLOWED = "No buffer space available"


class Stopped(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP: a watch ends the way Ctrl-C ends it, rules removed on the way out."""


class TraceSource(Protocol):
    """A live stream of trace lines with `None` clock ticks, as `correlate_lines` takes it."""

    def lines(self, tick: float) -> Iterator[SourceLine | None]:
        """The lines from now on."""

    def close(self) -> None:
        """Stop reading; safe to call twice."""

    def problem(self) -> str | None:
        """Why the stream ended or lost lines, if it did."""


class KmsgSource:
    """Kernel log records written from now on: each `read()` of /dev/kmsg is one record.

    Not `follow_fd`: /dev/kmsg fails a read with EPIPE when the ring buffer
    overwrote unread records, which must count lost lines, not end the watch.
    """

    def __init__(self, path: Path = KMSG) -> None:
        self.name = str(path)
        self.lost = 0
        try:
            self._fd: int | None = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except PermissionError as error:
            raise PermissionDenied(f"cannot read {path}", hint="run as root") from error
        except OSError as error:
            raise Unavailable(f"cannot read {path}: {error.strerror}") from error
        os.lseek(self._fd, 0, os.SEEK_END)

    def lines(self, tick: float) -> Iterator[SourceLine | None]:
        number = 0
        while self._fd is not None:
            ready, _, _ = select.select([self._fd], [], [], tick)
            record = self._read() if ready else None
            if record is not None:
                number += 1
                # A record is `level,seq,usec,flags;text`, then ` KEY=value` dictionary lines.
                yield SourceLine(self.name, number, record.decode("utf-8", "replace").split("\n", 1)[0])
            yield None

    def _read(self) -> bytes | None:
        assert self._fd is not None
        try:
            return os.read(self._fd, KMSG_RECORD_MAX)
        except BlockingIOError:
            return None
        except BrokenPipeError:
            self.lost += 1  # the next read resumes at the oldest record still kept
            return None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def problem(self) -> str | None:
        if self.lost:
            return f"the kernel log overwrote unread records {plural(self.lost, 'time')}: some TRACE lines were lost"
        return None


class MonitorSource:
    """`xtables-monitor --trace` as a child in its own session, so Ctrl-C reaches tracelog alone.

    A burst of events can overflow the monitor's netlink socket: the kernel
    drops the events that did not fit and xtables-monitor exits (ENOBUFS).  It
    is started again at once and the overflow counted, as `KmsgSource` counts
    overwritten records; any other exit ends the lines.
    """

    def __init__(self, families: set[Family]) -> None:
        if shutil.which("xtables-monitor") is None:
            raise Unavailable("xtables-monitor is not installed", hint="apt install iptables")
        only = [_MONITOR_FAMILY[family] for family in families] if len(families) == 1 else []
        argv = ["xtables-monitor", "--trace", *only]
        # xtables-monitor writes through stdio: without -oL a pipe gets its lines in 4 KiB bursts.
        if shutil.which("stdbuf"):
            argv = ["stdbuf", "-oL", *argv]
        self.name = "xtables-monitor"
        self.overflows = 0
        self._argv = argv
        self._failure: str | None = None
        self._process = self._start_monitor()

    def _start_monitor(self) -> subprocess.Popen[bytes]:
        """Start xtables-monitor, its messages in English so that an overflow is recognised."""
        # stderr stays a pipe: xtables-monitor only writes there when it fails, and then exits.
        return subprocess.Popen(  # tracelog starts no threads, so preexec_fn is safe here
            self._argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "LC_ALL": "C"},
            start_new_session=True,
            preexec_fn=functools.partial(die_with_parent, signal.SIGTERM),  # noqa: PLW1509
        )

    def lines(self, tick: float) -> Iterator[SourceLine | None]:
        read = 0
        while True:
            assert self._process.stdout is not None
            for line in follow_fd(self._process.stdout.fileno(), self.name, tick, lines_before=read):
                if line is not None:
                    read = line.line
                yield line
            ended = self._exit_message()
            if MONITOR_OVERFLOWED not in ended:
                self._failure = ended
                return
            self.overflows += 1
            self._close_pipes()
            self._process = self._start_monitor()

    def _exit_message(self) -> str:
        """How the monitor ended: its exit status and the last line it wrote on stderr."""
        assert self._process.stderr is not None
        returncode = self._process.wait()
        said = self._process.stderr.read().decode(errors="replace").strip().splitlines()
        reason = f": {said[-1]}" if said else ""
        return f"xtables-monitor exited with {returncode}{reason}"

    def _close_pipes(self) -> None:
        """Close the pipes of the monitor that ran last."""
        for pipe in (self._process.stdout, self._process.stderr):
            if pipe is not None:
                pipe.close()

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=MONITOR_STOP_WAIT)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        elif self._failure is None and self._process.stderr is not None and not self._process.stderr.closed:
            self._failure = self._exit_message()
        self._close_pipes()

    def problem(self) -> str | None:
        """Set when xtables-monitor ended by itself before tracelog stopped it, or its socket overflowed."""
        said = [self._failure] if self._failure is not None else []
        if self.overflows:
            said.append(
                f"xtables-monitor's netlink socket overflowed {plural(self.overflows, 'time')}: "
                "some trace events were lost"
            )
        return "; ".join(said) or None


def open_source(plan: Plan) -> TraceSource:
    """The reader for the chosen backend; refuses when legacy lines would not reach the kernel log."""
    if plan.choice.backend == "nft":
        return MonitorSource(plan.families)
    for family in plan.families:
        entry = plan.facts.nf_log.get(family)
        if entry is not None and entry.bound == "nfnetlink_log":
            raise Unavailable(
                f"legacy {family} TRACE lines go to ulogd here (nf_log is nfnetlink_log), not the kernel log",
                hint=f"tracelog enable, then tail -f {plan.facts.ulogd_file} | tracelog parse",
            )
    return KmsgSource()


@dataclass(slots=True)
class Watch:
    """A running watch: what enabling did, and the lines to correlate."""

    report: EnableReport
    source: TraceSource


@contextlib.contextmanager
def watching(plan: Plan, now: datetime, say: Callable[[str], None], warnings: Sequence[str] = ()) -> Iterator[Watch]:
    """Open the source, then add the rules; on the way out remove exactly the rules added here.

    The source opens first so the first traced packet is not missed.  Rules
    that were already there (another `enable`) are left for their owner.
    What the source lost is said when the watch is stopped, and is the error
    when the source ended by itself.
    """
    with _stop_signals():
        source = open_source(plan)
        report: EnableReport | None = None
        try:
            with _deferred_stop():  # a stop while rules are being added would lose track of them
                report = enable_tracing(plan, now, renew=False, warnings=warnings)
            yield Watch(report, source)
        except KeyboardInterrupt:  # the usual end of a watch: lines lost on the way are said all the same
            if (problem := source.problem()) is not None:
                say(problem)
            raise
        finally:
            with _shielded():
                source.close()
                if report is not None:
                    added = [(change.rule, change.what) for change in report.added if change.rule is not None]
                    for change in remove_rules(plan.backend, added):
                        say(change.line())
                    for table in plan.backend.remove_created_tables():
                        say(table.line())
    problem = source.problem()
    if problem is not None:
        raise Unavailable(problem)


def _raise_stopped(signum: int, _frame: FrameType | None) -> None:
    raise Stopped(signal.Signals(signum).name)


@contextlib.contextmanager
def _stop_signals() -> Iterator[None]:
    previous = {number: signal.signal(number, _raise_stopped) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextlib.contextmanager
def _deferred_stop() -> Iterator[None]:
    """Hold Ctrl-C, SIGTERM and SIGHUP until the block is done, then deliver the first one that came."""
    came: list[int] = []
    previous = {number: signal.signal(number, lambda signum, _frame: came.append(signum)) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if came:
            signal.raise_signal(came[0])


@contextlib.contextmanager
def _shielded() -> Iterator[None]:
    """No signal may cut rule removal short, and a closed stdout must not break libiptc's stdout juggling."""
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in STOP_SIGNALS}
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
