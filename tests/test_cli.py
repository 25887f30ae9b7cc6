"""The command line: exit codes, stderr, help, stdin, live streaming, signals and pipes."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import RunCli
from tests.samples import SAMPLES
from tracelog.cli import app
from tracelog.errors import ExitStatus

PING = SAMPLES / "docker-legacy/ping.dmesg"
TCP = SAMPLES / "lab-legacy/tcp.dmesg"


def tracelog(*args: str, stdin: int | None = None) -> subprocess.Popen[bytes]:
    """Start `python -m tracelog ARGS…` with stdout and stderr piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "tracelog", *args], stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def test_every_command_has_help_with_an_example(run_cli: RunCli) -> None:
    assert run_cli("--help").status == 0
    for command in app.registered_commands:
        assert command.callback is not None
        assert command.callback.__doc__, command.name
        run = run_cli(command.name or command.callback.__name__, "--help")
        assert run.status == 0
        assert "tracelog " in run.stdout, f"{command.name} --help shows no example"


def test_summary_goes_to_stderr_and_only_records_to_stdout(run_cli: RunCli) -> None:
    run = run_cli("parse", "-f", "jsonl", str(PING))
    assert run.status == ExitStatus.OK
    assert len(run.records()) == 4
    assert run.stderr == "tracelog: 28 lines from 1 input: 28 TRACE events in 4 packets\n"


def test_stdin_and_dash(run_cli: RunCli) -> None:
    text = PING.read_text()
    assert len(run_cli("parse", "-f", "jsonl", stdin=text).records()) == 4
    assert len(run_cli("parse", "-f", "jsonl", "-", str(TCP), stdin=text).records()) == 16


def test_several_files_and_gzip(run_cli: RunCli, tmp_path: Path) -> None:
    packed = tmp_path / "kern.log.2.gz"
    packed.write_bytes(gzip.compress(TCP.read_bytes()))
    run = run_cli("parse", "-f", "jsonl", str(PING), str(packed))
    records = run.records()
    assert len(records) == 4 + 12
    assert records[-1]["steps"][0]["source"] == str(packed)


def test_empty_and_garbage_input_exit_cleanly(run_cli: RunCli, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(os.urandom(4096) + b"\x00TRACE:\xff\n")
    empty = tmp_path / "empty.log"
    empty.write_text("")
    run = run_cli("parse", str(empty), str(garbage))
    assert run.status == ExitStatus.OK
    assert run.stdout == ""
    assert "0 packets" in run.stderr


def test_a_line_cut_short_is_read_as_far_as_it_goes(run_cli: RunCli, tmp_path: Path) -> None:
    """A paste that cut a TRACE line keeps the step, marked partial, with file:line on stderr."""
    lines = PING.read_text().splitlines()
    damaged = tmp_path / "damaged.log"
    damaged.write_text("\n".join([lines[0][:150], *lines[1:], "hello"]) + "\n")
    run = run_cli("parse", "-f", "jsonl", str(damaged))
    assert run.status == ExitStatus.OK
    assert f"fields elided or cut off: the step is read as far as it goes (first at {damaged}:1)" in run.stderr
    assert "skipped 1 other" in run.stderr
    assert sum(len(r["steps"]) for r in run.records()) == len(lines)  # every step came out


def test_strict_stops_at_the_first_bad_line_with_a_caret(run_cli: RunCli, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.log"
    line = PING.read_text().splitlines()[0].replace("SRC=172.18.0.2", "SRC=172.18.0.x")
    damaged.write_text(line + "\n")
    run = run_cli("parse", "--strict", str(damaged))
    assert run.status == ExitStatus.BAD_LINES
    message, echoed, caret = run.stderr.splitlines()[-3:]
    assert message.startswith(f"tracelog: {damaged}:1:")
    assert echoed == line
    assert caret.index("^") == line.index("172.18.0.x")  # under the value that could not be read


def test_unreadable_input_is_reported_and_the_rest_analysed(run_cli: RunCli, tmp_path: Path) -> None:
    cut = tmp_path / "cut.gz"
    cut.write_bytes(gzip.compress(TCP.read_bytes())[:-40])
    run = run_cli("parse", "-f", "jsonl", str(tmp_path / "missing.log"), str(cut), str(PING))
    assert run.status == ExitStatus.INPUT
    assert "missing.log: No such file" in run.stderr
    assert f"{cut}:" in run.stderr
    assert len(run.records()) >= 4


def test_usage_errors_exit_2(run_cli: RunCli) -> None:
    assert run_cli("parse", "--format", "xml", str(PING)).status == ExitStatus.USAGE
    assert run_cli("no-such-command").status == ExitStatus.USAGE


def test_no_input_on_a_terminal_is_one_line(run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    run = run_cli("parse")
    assert run.status == ExitStatus.INPUT
    assert run.stderr.count("\n") == 1
    assert "dmesg | tracelog parse" in run.stderr


def test_live_stream_prints_packets_while_the_pipe_stays_open() -> None:
    """`tail -f log | tracelog parse`: a packet prints within the idle timeout, before EOF."""
    process = tracelog("parse", "-f", "jsonl", "--idle", "0.3", stdin=subprocess.PIPE)
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write(PING.read_bytes())
    process.stdin.flush()
    started = time.monotonic()
    first = process.stdout.readline()
    assert b'"packet":1' in first
    assert time.monotonic() - started < 5
    assert process.poll() is None  # still running: the stream is open
    process.stdin.close()
    rest = process.stdout.read()  # the same buffered reader as readline: nothing is skipped
    process.stdout.close()
    assert process.stderr is not None
    process.stderr.close()
    assert process.wait(timeout=10) == 0
    assert len(rest.splitlines()) == 3


def test_ctrl_c_exits_quietly_with_the_summary() -> None:
    process = tracelog("parse", stdin=subprocess.PIPE)
    assert process.stdin is not None
    process.stdin.write(PING.read_bytes())
    process.stdin.flush()
    time.sleep(1.5)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == ExitStatus.INTERRUPTED
    assert b"Traceback" not in stderr
    assert b"28 TRACE events" in stderr


@pytest.mark.parametrize("output", ["table", "jsonl", "csv"])
def test_closed_pipe_exits_quietly(output: str, tmp_path: Path) -> None:
    big = tmp_path / "big.log"
    big.write_bytes(TCP.read_bytes() * 40)
    process = tracelog("parse", "-f", output, str(big))
    assert process.stdout is not None
    process.stdout.readline()
    process.stdout.close()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == ExitStatus.OK
    assert b"Traceback" not in stderr
    assert b"Exception" not in stderr
