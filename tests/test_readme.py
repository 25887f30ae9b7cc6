"""The README's first screen stays true: its sample command prints what it shows."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.conftest import RunCli

README = Path(__file__).resolve().parent.parent / "README.md"


def test_first_screen_has_exactly_two_commands() -> None:
    first_screen = README.read_text().split("\n## ", 1)[0]
    commands = re.findall(r"```console\n(.*?)\n```", first_screen, flags=re.DOTALL)
    assert len(commands) == 2
    assert all("\n" not in command for command in commands)
    assert commands[1].endswith("pytest")


def test_shown_output_is_what_the_sample_command_prints(run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    text = README.read_text()
    command = re.search(r"```console\n(.*?)\n```", text, flags=re.DOTALL)
    shown = re.search(r"```text\n(.*?)\n```", text, flags=re.DOTALL)
    assert command is not None
    assert shown is not None
    args = shlex.split(command.group(1).split("&& .venv/bin/tracelog ")[-1])
    monkeypatch.chdir(README.parent)
    run = run_cli(*args)
    assert (run.stdout + run.stderr).rstrip("\n") == shown.group(1)
