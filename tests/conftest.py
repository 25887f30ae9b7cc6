"""Shared fixtures: run the CLI in-process and collect what it printed."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tracelog.cli import main


@dataclass(frozen=True)
class Run:
    """What one CLI invocation returned and printed."""

    status: int
    stdout: str
    stderr: str

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines()]


RunCli = Callable[..., Run]


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> RunCli:
    """Call `tracelog ARGS…` in-process; `stdin=` feeds standard input."""

    def run(*args: str, stdin: str | None = None) -> Run:
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", _FakeStdin(stdin))
        status = main(list(args))
        captured = capsys.readouterr()
        return Run(status, captured.out, captured.err)

    return run


class _FakeStdin:
    """A stdin that is not a terminal, backed by a real file descriptor."""

    def __init__(self, text: str) -> None:
        self._file = tempfile.TemporaryFile()
        self._file.write(text.encode())
        self._file.seek(0)
        self._fd = self._file.fileno()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._fd
