"""Nothing from a log reaches a terminal as control: timelines, summaries and stderr, read through a real pty."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import RunCli
from tests.samples import SAMPLES

# What terminals act on: set the window title (OSC), clear the screen (CSI), bell,
# backspace, carriage return, and a bidirectional override.
HOSTILE = "\x1b]0;pwned\x07\x1b[2J\x08\rX\u202e\x9b2J"
ESCAPED = "\\x1b]0;pwned\\x07\\x1b[2J\\x08\\x0dX\\u202e\\x9b2J"
# (U+009B is CSI in one character: a terminal that takes C1 controls in UTF-8 acts on it)
ACTING = ("\x1b]", "\x1b[2J", "\x07", "\x08", "\u202e", "\x9b")


def hostile_rules(directory: Path) -> Path:
    """The drop capture's real snapshot, its DROP rule carrying an attacker's comment."""
    rules = directory / "iptables-save.txt"
    text = (SAMPLES / "docker-legacy/iptables-save.drop.txt").read_text()
    rules.write_text(text.replace("--dport 80 -j DROP", f'--dport 80 -m comment --comment "{HOSTILE}" -j DROP'))
    return rules


def hostile_trace(directory: Path) -> Path:
    """The real rsyslog capture, its host field and one interface name written by an attacker."""
    text = (SAMPLES / "lab-legacy/rsyslog-traditional.log").read_text()
    trace = directory / "hostile.log"
    host = "vm\x1b]0;pwned\x07\x1b[2J"  # what a syslog host field can carry and still be read
    trace.write_text(text.replace(" vm kernel: ", f" {host} kernel: ").replace("IN=docker0", f"IN=d{HOSTILE}"))
    return trace


def on_a_terminal(*args: str, cwd: Path) -> str:
    """What `tracelog ARGS` writes to a terminal (stdout and stderr share the pty, as in a shell)."""
    controller, terminal = pty.openpty()
    env = {**os.environ, "COLUMNS": "200", "TERM": "xterm-256color"}
    process = subprocess.Popen(
        [sys.executable, "-m", "tracelog", *args],
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
        cwd=cwd,
        env=env,
    )
    os.close(terminal)
    chunks = []
    while True:
        ready, _, _ = select.select([controller], [], [], 30)
        if not ready:
            process.kill()
            break
        try:
            chunk = os.read(controller, 1 << 16)
        except OSError:  # the pty is closed once the child has gone
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=30)
    os.close(controller)
    return b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.parametrize("command", ["parse", "summary"])
def test_a_rule_comment_is_escaped_on_a_terminal(command: str, tmp_path: Path) -> None:
    rules = hostile_rules(tmp_path)
    shown = on_a_terminal(command, "--rules", str(rules), str(SAMPLES / "docker-legacy/drop.dmesg"), cwd=tmp_path)
    assert ESCAPED in shown
    assert not any(code in shown for code in ACTING), repr(shown[:400])
    assert "\r" not in shown.replace("\r\n", "")  # the pty's own line ends aside


@pytest.mark.parametrize("command", ["parse", "summary"])
def test_host_and_interface_fields_never_act_on_a_terminal(command: str, tmp_path: Path) -> None:
    shown = on_a_terminal(command, str(hostile_trace(tmp_path)), cwd=tmp_path)
    assert "Traceback" not in shown
    assert not any(code in shown for code in ACTING), repr(shown[:400])
    assert "\r" not in shown.replace("\r\n", "")


def test_bad_lines_on_stderr_are_escaped(tmp_path: Path) -> None:
    line = (SAMPLES / "lab-legacy/ping.dmesg").read_text().splitlines()[1]
    bad = tmp_path / "bad.dmesg"
    bad.write_text(line.replace("TRACE: raw:PREROUTING:", f"TRACE: raw:PREROUTING{HOSTILE}:") + "\n")
    shown = on_a_terminal("parse", str(bad), cwd=tmp_path)
    assert not any(code in shown for code in ACTING), repr(shown)


@pytest.mark.parametrize(
    "command",
    [
        ("parse", "--format", "csv"),
        ("parse", "--format", "jsonl"),
        ("summary", "--format", "csv"),
        ("summary", "--format", "jsonl"),
    ],
    ids=" ".join,
)
def test_data_formats_never_act_on_a_terminal_either(command: tuple[str, ...], tmp_path: Path) -> None:
    """CSV and JSON lines on a terminal: a host field's and a rule comment's controls come out escaped too."""
    rules = hostile_rules(tmp_path)
    shown = on_a_terminal(*command, "--rules", str(rules), str(hostile_trace(tmp_path)), cwd=tmp_path)
    assert "Traceback" not in shown
    assert not any(code in shown for code in ACTING), repr(shown[:400])
    assert "\r" not in shown.replace("\r\n", "")


def test_json_lines_keep_every_value_while_escaping_what_terminals_act_on(run_cli: RunCli, tmp_path: Path) -> None:
    """JSON's own escapes (`\\u009b`): the line is safe to print and parses back to the very text of the log."""
    rules = hostile_rules(tmp_path)
    run = run_cli("parse", "--format", "jsonl", "--rules", str(rules), str(SAMPLES / "docker-legacy/drop.dmesg"))
    assert not any(code in run.stdout for code in ACTING)
    assert any(HOSTILE in (step["rule"] or "") for record in run.records() for step in record["steps"])
