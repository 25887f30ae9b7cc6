"""Any input that is not a regular file is a live stream: a named pipe and `<(command)` print as they are fed.

`tracelog parse <(ssh host journalctl -kf)` and a named pipe have no end to
wait for: each packet's timeline must appear once its lines stop coming (the
idle timeout), as with stdin from a pipe, while the writer is still there.
The writer here feeds a real capture into a named pipe and holds it open.
"""

from __future__ import annotations

import os
import select
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.samples import SAMPLES
from tracelog.parallel import plan
from tracelog.pipeline import ParseOptions

ROOT = Path(__file__).resolve().parents[2]
CAPTURE = SAMPLES / "lab-legacy/ping.dmesg"
IDLE = 0.3
FIRST_PACKET_WITHIN = 10.0  # seconds: the idle timeout and a busy machine's start-up, not the writer's close


def parse_command(source: str, how: str) -> list[str]:
    """`tracelog parse` reading a named pipe by its name, or through a process substitution of it."""
    parse = [sys.executable, "-m", "tracelog", "parse", "--format", "jsonl", "--idle", str(IDLE)]
    if how == "named pipe":
        return [*parse, source]
    return ["bash", "-c", f"{shlex.join(parse)} <(cat {shlex.quote(source)})"]


@pytest.mark.parametrize("how", ["named pipe", "process substitution"])
def test_a_stream_that_is_no_file_prints_each_packet_before_it_ends(how: str, tmp_path: Path) -> None:
    fifo = tmp_path / "trace.fifo"
    os.mkfifo(fifo)
    child = subprocess.Popen(parse_command(str(fifo), how), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with fifo.open("w") as writer:  # opens once the reader has
            for line in CAPTURE.read_text().splitlines():
                writer.write(line + "\n")
                writer.flush()
                time.sleep(0.002)
            assert child.stdout is not None
            ready, _, _ = select.select([child.stdout], [], [], FIRST_PACKET_WITHIN)
            assert ready, f"no packet printed in {FIRST_PACKET_WITHIN:.0f} s while the writer held the pipe open"
            assert child.stdout.readline().startswith(b'{"packet":1,')
        _, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, stderr.decode()


def test_a_named_pipe_is_never_split_between_processes(tmp_path: Path) -> None:
    """The parallel reader plans chunks of regular files only: a pipe cannot be entered midway (nor read twice)."""
    fifo = tmp_path / "trace.fifo"
    os.mkfifo(fifo)
    assert plan([str(fifo)], jobs=2, options=ParseOptions()) == []
