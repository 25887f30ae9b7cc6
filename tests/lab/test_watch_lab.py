"""Root only: `tracelog watch` reads as `tracelog parse` does (names, filters, formats) and stops on SIGINT too.

Uses the namespaces of `test_rules_lab`: a ping to an address on a fresh
namespace's loopback, nothing leaving it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.lab.namespaces import (
    MONITOR_SETTLE,
    LabNamespace,
    running_watch,
    stop_watch,
    wait_for_rules,
    wait_until,
    watch_a_ping,
)

pytestmark = [pytest.mark.lab, pytest.mark.root_only]


def inspect_naming(address: str, name: str, directory: Path) -> Path:
    """`docker inspect` output for one container at `address`, the shape Docker writes."""
    path = directory / "inspect.json"
    network = {"bridge": {"IPAddress": address, "GlobalIPv6Address": "", "MacAddress": "02:42:0a:fe:00:01"}}
    path.write_text(
        json.dumps(
            [{"Id": "0" * 64, "Name": f"/{name}", "State": {"Running": True}, "NetworkSettings": {"Networks": network}}]
        )
    )
    return path


def test_watch_names_filters_and_writes_csv(ns: LabNamespace, backend: str, tmp_path: Path) -> None:
    names = inspect_naming(ns.ipv4, "lab-box", tmp_path)
    run = watch_a_ping(ns, backend, "--names", str(names), "--name", "lab-box", "--format", "csv")
    assert run.returncode == 130, run.stderr
    rows = list(csv.DictReader(io.StringIO(run.stdout)))
    assert rows, run.stderr
    assert {row["dst"] for row in rows} == {ns.ipv4}
    # the echo request and its reply (numbered among what else the kernel log carried)
    assert len({row["packet"] for row in rows}) == 2


def test_a_filter_that_matches_nothing_prints_nothing(ns: LabNamespace, backend: str) -> None:
    run = watch_a_ping(ns, backend, "--format", "jsonl", "--verdict", "DROP")
    assert run.returncode == 130, run.stderr
    assert run.stdout == ""
    assert " packets" in run.stderr  # read, and none was dropped
    assert "Traceback" not in run.stderr


def test_a_backgrounded_watch_stops_on_sigint_and_removes_its_rules(ns: LabNamespace, backend: str) -> None:
    before = ns.save(backend, "ipv4")
    run = watch_a_ping(ns, backend, "--format", "jsonl", stop=signal.SIGINT, backgrounded=True)
    assert run.returncode == 130, run.stderr
    assert "Traceback" not in run.stderr
    assert [json.loads(line)["dst_name"] for line in run.stdout.splitlines()] == [None, None]
    assert ns.save(backend, "ipv4") == before


# Datagrams to the discard port, sent in one go: far more trace events than a netlink socket holds.
FLOOD = (
    "import socket, sys\nout = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nout.bind(('', int(sys.argv[3])))\n"
    "for _ in range(int(sys.argv[2])):\n    out.sendto(b'x', (sys.argv[1], 9))\n"
)
MARKER_PORT = 4242


def monitor_pid(watch: subprocess.Popen[str]) -> int | None:
    """The xtables-monitor that a running watch started (`ip netns exec` became the watch itself)."""
    for pid in Path(f"/proc/{watch.pid}/task/{watch.pid}/children").read_text().split():
        with contextlib.suppress(FileNotFoundError):  # a child that is already gone
            if Path(f"/proc/{pid}/comm").read_text().strip() == "xtables-monitor":
                return int(pid)
    return None


@pytest.mark.parametrize("backend", ["nft"], indirect=True)
def test_a_watch_goes_on_when_the_monitor_socket_overflows(ns: LabNamespace) -> None:
    """The monitor stopped while a burst goes by: its socket overflows, it is started again, the overflow said."""
    argv = ns.tracelog_argv(
        "watch",
        "udp",
        "--dport",
        "9",
        "--dst",
        ns.ipv4,
        "--backend",
        "nft",
        "--limit",
        "none",
        "--idle",
        "0.3",
        "-f",
        "jsonl",
    )
    with running_watch(ns, argv) as watch:
        wait_for_rules(ns, "nft")
        time.sleep(MONITOR_SETTLE)
        first = monitor_pid(watch)
        assert first is not None
        os.kill(first, signal.SIGSTOP)
        ns.run(sys.executable, "-c", FLOOD, ns.ipv4, "3000", "0")
        os.kill(first, signal.SIGCONT)
        assert wait_until(lambda: monitor_pid(watch) not in (None, first), 10), "xtables-monitor was not started again"
        time.sleep(MONITOR_SETTLE)
        ns.run(sys.executable, "-c", FLOOD, ns.ipv4, "1", str(MARKER_PORT))
        time.sleep(1.0)
        stdout, stderr = stop_watch(watch)
    assert watch.returncode == 130, stderr
    assert "tracelog: xtables-monitor's netlink socket overflowed 1 time: some trace events were lost\n" in stderr
    assert MARKER_PORT in [json.loads(line)["sport"] for line in stdout.splitlines()], stderr
    assert "tracelog:" not in ns.save("nft", "ipv4")  # the rules are gone
