"""Shared fixtures: run the CLI in-process and collect what it printed."""

from __future__ import annotations

import json
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tracelog.cli import main


def pytest_configure() -> None:
    """Ctrl-C works in the children the tests interrupt, as in a terminal.

    Tests started from a background job inherit SIGINT ignored (a shell
    ignores it for `&` jobs), and so would every child; a handled signal is
    reset to its default in a child, an ignored one is not.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)


@dataclass(frozen=True)
class Run:
    """What one CLI invocation returned and printed."""

    status: int
    stdout: str
    stderr: str

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines()]


RunCli = Callable[..., Run]


@pytest.fixture(autouse=True)
def private_state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test away from the machine's /var/lib/tracelog (snapshots there would name rules)."""
    monkeypatch.setenv("TRACELOG_STATE_DIR", str(tmp_path_factory.mktemp("state")))


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Iterator[RunCli]:
    """Call `tracelog ARGS…` in-process; `stdin=` feeds standard input."""
    with tempfile.TemporaryFile() as stdin_file:

        def run(*args: str, stdin: str | None = None) -> Run:
            if stdin is not None:
                stdin_file.seek(0)
                stdin_file.truncate()
                stdin_file.write(stdin.encode())
                stdin_file.seek(0)
                monkeypatch.setattr("sys.stdin", _FakeStdin(stdin_file.fileno()))
            status = main(list(args))
            captured = capsys.readouterr()
            return Run(status, captured.out, captured.err)

        yield run


class _FakeStdin:
    """A stdin that is not a terminal, backed by a real file descriptor."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._fd


@pytest.fixture
def fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH of one directory holding only `cat` and `sleep`: a test writes the fake tools its case needs there."""
    directory = tmp_path / "bin"
    directory.mkdir()
    for tool in ("cat", "sleep"):
        found = shutil.which(tool)
        assert found is not None
        (directory / tool).symlink_to(found)
    monkeypatch.setenv("PATH", str(directory))
    return directory
