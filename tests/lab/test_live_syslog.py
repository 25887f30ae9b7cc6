"""The headline use, live: `tail -F syslog | tracelog parse` while traffic flows.

rsyslog (started by the test, as Debian configures it: imklog) writes the
kernel's TRACE lines to a file; tracelog reads it through `tail -F` and must
print every traced packet while the stream is still open.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.lab.capture import play_legacy_scenario
from tests.lab.logdaemons import Rsyslog
from tests.lab.netlab import DockerLikeLab
from tests.lab.scenarios import scenario_named

pytestmark = [pytest.mark.lab, pytest.mark.root_only]

IDLE = 0.5
DEADLINE = 20.0


def read_packets(stream: subprocess.Popen[str], expected: int) -> list[dict[str, object]]:
    """Read JSON lines until `expected` packets arrived or the deadline passed."""
    assert stream.stdout is not None
    packets: list[dict[str, object]] = []
    deadline = time.monotonic() + DEADLINE
    while len(packets) < expected and time.monotonic() < deadline:
        line = stream.stdout.readline()
        if line:
            packets.append(json.loads(line))
    return packets


def test_packets_stream_out_of_a_live_syslog(legacy_lab: DockerLikeLab) -> None:
    with Rsyslog() as rsyslog:
        syslog = rsyslog.files["traditional"]
        syslog.touch()
        tail = subprocess.Popen(["tail", "-n", "0", "-F", str(syslog)], stdout=subprocess.PIPE)
        parse = subprocess.Popen(
            [sys.executable, "-m", "tracelog", "parse", "--format", "jsonl", "--idle", str(IDLE)],
            stdin=tail.stdout,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert tail.stdout is not None
        tail.stdout.close()  # tracelog holds the read end now
        try:
            run, _lines, _window = play_legacy_scenario(legacy_lab, scenario_named("ping"))
            packets = read_packets(parse, run.traced_packets)
            assert parse.poll() is None  # the stream is still open: packets came out live
        finally:
            tail.terminate()
            tail.wait(timeout=10)
            parse.communicate(timeout=10)
    assert len(packets) == run.traced_packets
    assert all(packet["host"] for packet in packets)  # the syslog host field was read
    assert all(packet["steps"][0]["table"] == "raw" for packet in packets)  # type: ignore[index]
