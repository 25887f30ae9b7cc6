"""`… | tracelog summary` on a live stream: stopped by Ctrl-C or SIGTERM it still reports what it read."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

import pytest

from tests.samples import SAMPLES
from tracelog.errors import ExitStatus

DROP = (SAMPLES / "docker-legacy/drop.dmesg").read_text()
RULES = str(SAMPLES / "docker-legacy/iptables-save.drop.txt")
ANSWER = "were dropped by filter DOCKER-USER rule 1"


def live_summary(*options: str) -> subprocess.Popen[str]:
    """`tracelog summary` reading a pipe that stays open, the drop capture already written into it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tracelog", "summary", "--idle", "0.2", "--rules", RULES, *options],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None
    process.stdin.write(DROP)
    process.stdin.flush()
    return process


def read_for(process: subprocess.Popen[str], seconds: float) -> str:
    """What the process printed on stdout within `seconds`, without waiting for it to end."""
    assert process.stdout is not None
    fd, chunks, deadline = process.stdout.fileno(), [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode()


@pytest.mark.parametrize(("stop", "status"), [(signal.SIGINT, ExitStatus.INTERRUPTED), (signal.SIGTERM, 143)])
def test_an_interrupted_summary_reports_what_was_read(stop: signal.Signals, status: int) -> None:
    process = live_summary()
    try:
        time.sleep(2.0)  # read, and the packets complete after --idle
        process.send_signal(stop)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == status, stderr
    assert ANSWER in stdout
    assert "interrupted" in stderr
    assert "Traceback" not in stderr


def test_every_prints_the_summary_so_far_while_the_stream_stays_open() -> None:
    process = live_summary("--every", "0.5")
    try:
        early = read_for(process, 5.0)
        assert process.poll() is None  # still reading
        assert process.stdin is not None
        process.stdin.write(DROP)  # more packets: the next summary counts them too
        process.stdin.flush()
        later = read_for(process, 5.0)
    finally:
        process.kill()
        _, stderr = process.communicate()
    assert "3 packets from 172.18.0.2:56586 to 172.18.0.3:80 " + ANSWER in early
    assert "6 packets from 172.18.0.2:56586 to 172.18.0.3:80 " + ANSWER in later
    # each summary of an open stream says on stderr that it is one so far, and of how many packets
    assert "tracelog: the summary so far: 3 packets\n" in stderr
    assert "tracelog: the summary so far: 6 packets\n" in stderr
