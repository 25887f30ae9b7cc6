"""`tracelog watch`'s nft reader: an `xtables-monitor --trace` child, started again when its socket overflowed."""

from __future__ import annotations

import stat
import time
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.samples import SAMPLES
from tracelog.events import SourceLine
from tracelog.rules.live import KmsgSource, MonitorSource

CAPTURE = SAMPLES / "lab-nft/ping.xtables-monitor"
# What xtables-monitor 1.8.9 printed, and its exit status 1, when a burst overflowed its socket
# (the monitor stopped with SIGSTOP while 3000 traced datagrams went by) and when not run as root.
OVERFLOWED = "cannot receive from nfnetlink socket: No buffer space available"
NOT_PERMITTED = "cannot bind to nfnetlink socket: Operation not permitted"
DEADLINE = 10.0


class MonitorRun(NamedTuple):
    """One start of the fake xtables-monitor: print `lines`, then say `said` and exit `status`, or wait without one."""

    lines: list[str]
    said: str = ""
    status: int | None = None


def fake_monitor(directory: Path, *runs: MonitorRun) -> None:
    """An `xtables-monitor` that does what the first run says the first time it starts, the second the next time."""
    for number, run in enumerate(runs):
        printed = directory / f"run-{number}.txt"
        printed.write_text("".join(f"{line}\n" for line in run.lines))
        end = "exec sleep 60" if run.status is None else f"echo '{run.said}' >&2\nexit {run.status}"
        (directory / f"run-{number}.sh").write_text(f"cat {printed}\n{end}\n")
    path = directory / "xtables-monitor"
    path.write_text(
        f'#!/bin/sh\nfor run in {directory}/run-*.sh; do\n  [ -e "$run.done" ] && continue\n'
        '  : > "$run.done"\n  exec /bin/sh "$run"\ndone\necho "started too often" >&2\nexit 99\n'
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def read_until(source: MonitorSource, count: int) -> list[SourceLine]:
    """The source's lines until `count` came, its lines ended, or the deadline passed."""
    found: list[SourceLine] = []
    deadline = time.monotonic() + DEADLINE
    for line in source.lines(0.05):
        if line is not None:
            found.append(line)
        if len(found) == count or time.monotonic() > deadline:
            break
    return found


def test_a_monitor_whose_socket_overflowed_is_started_again(fake_tools: Path) -> None:
    captured = CAPTURE.read_text().splitlines()[:4]
    fake_monitor(fake_tools, MonitorRun(captured[:2], OVERFLOWED, 1), MonitorRun(captured[2:]))
    source = MonitorSource({"ipv4"})
    try:
        found = read_until(source, 4)
    finally:
        source.close()
    assert found == [SourceLine("xtables-monitor", number, text) for number, text in enumerate(captured, 1)]
    assert source.problem() == "xtables-monitor's netlink socket overflowed 1 time: some trace events were lost"


def test_any_other_failure_of_the_monitor_ends_the_lines(fake_tools: Path) -> None:
    captured = CAPTURE.read_text().splitlines()[:4]
    fake_monitor(fake_tools, MonitorRun(captured[:2], NOT_PERMITTED, 1), MonitorRun(captured[2:]))
    source = MonitorSource({"ipv4"})
    try:
        found = read_until(source, 4)
    finally:
        source.close()
    assert [line.text for line in found] == captured[:2]
    assert source.problem() == f"xtables-monitor exited with 1: {NOT_PERMITTED}"


def test_a_failure_after_overflows_says_both(fake_tools: Path) -> None:
    captured = CAPTURE.read_text().splitlines()[:3]
    overflowing = MonitorRun(captured[:1], OVERFLOWED, 1)
    fake_monitor(fake_tools, overflowing, overflowing, MonitorRun([], NOT_PERMITTED, 1))
    source = MonitorSource({"ipv4"})
    try:
        found = read_until(source, 3)
    finally:
        source.close()
    assert [line.text for line in found] == captured[:1] * 2
    assert source.problem() == (
        f"xtables-monitor exited with 1: {NOT_PERMITTED}; "
        "xtables-monitor's netlink socket overflowed 2 times: some trace events were lost"
    )


@pytest.mark.parametrize(("lost", "said"), [(1, "1 time:"), (3, "3 times:")])
def test_the_kernel_log_reader_says_how_often_it_lost_records(tmp_path: Path, lost: int, said: str) -> None:
    log = tmp_path / "kmsg"
    log.write_text("")
    source = KmsgSource(log)
    source.lost = lost
    problem = source.problem()
    source.close()
    assert problem is not None
    assert f"overwrote unread records {said}" in problem
