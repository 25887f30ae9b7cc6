"""Output that cannot be written ends with one clear line and a named exit code, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.samples import SAMPLES
from tracelog.errors import ExitStatus

CAPTURE = str(SAMPLES / "docker-legacy/http.dmesg")


@pytest.mark.parametrize(
    "command",
    [
        ["parse", "-f", "table", CAPTURE],
        ["parse", "-f", "jsonl", CAPTURE],
        ["parse", "-f", "csv", CAPTURE],
        ["summary", CAPTURE],
        ["--version"],
        ["-h"],
        ["parse", "--help"],
    ],
)
def test_a_full_disk_is_one_line_and_its_own_exit_code(command: list[str]) -> None:
    with open("/dev/full", "w") as full:
        run = subprocess.run(
            [sys.executable, "-m", "tracelog", *command],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    assert run.returncode == ExitStatus.OUTPUT
    problems = [line for line in run.stderr.splitlines() if "lines from" not in line]
    assert problems == ["tracelog: cannot write the output: No space left on device"]
