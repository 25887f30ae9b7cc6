"""A standard output closed before tracelog starts (`>&-`) is one line and the output exit status, not a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.samples import SAMPLES
from tracelog.errors import ExitStatus


@pytest.mark.parametrize("command", [["parse"], ["parse", "-f", "jsonl"], ["summary"], ["--version"]])
def test_a_closed_stdout_is_one_line_and_its_own_exit_code(command: list[str]) -> None:
    capture = str(SAMPLES / "docker-legacy/http.dmesg")
    argv = [sys.executable, "-m", "tracelog", *command, *([capture] if command[0] != "--version" else [])]
    run = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=60, check=False)
    assert run.returncode == ExitStatus.OK  # with an open stdout, it runs (the control)
    closed = subprocess.run(
        ["bash", "-c", 'exec "$@" >&-', "closed", *argv], stderr=subprocess.PIPE, text=True, timeout=60, check=False
    )
    assert closed.returncode == ExitStatus.OUTPUT
    assert closed.stderr == "tracelog: cannot write the output: standard output is closed\n"
