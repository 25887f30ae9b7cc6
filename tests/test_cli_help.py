"""The command line as people expect it: --version, -h, help with examples and placeholders, plain errors."""

from __future__ import annotations

import re

import pytest

from tests.conftest import RunCli
from tests.samples import SAMPLES
from tracelog import __version__
from tracelog.cli import app

COMMANDS = ["parse", "summary", "enable", "watch", "status", "disable", "doctor"]
DROP = str(SAMPLES / "docker-legacy/drop.dmesg")


def test_version(run_cli: RunCli) -> None:
    run = run_cli("--version")
    assert (run.status, run.stdout) == (0, f"tracelog {__version__}\n")


@pytest.mark.parametrize("argv", [["-h"], *([command, "-h"] for command in COMMANDS)])
def test_h_is_help(argv: list[str], run_cli: RunCli) -> None:
    run = run_cli(*argv)
    assert run.status == 0
    assert run.stdout.startswith("Usage: tracelog")


def test_top_level_help_has_examples_whole_summaries_and_exit_codes(run_cli: RunCli) -> None:
    text = run_cli("--help").stdout
    assert "Examples:" in text
    assert "sudo tracelog enable icmp" in text
    commands = text.split("Commands:")[1]
    assert "..." not in commands  # no summary cut mid-phrase
    for status in ("0  ", "2  ", "3  ", "4  ", "8  ", "130"):
        assert status in text.split("Exit status:")[1]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_names_what_each_option_wants(command: str, run_cli: RunCli) -> None:
    text = run_cli(command, "--help").stdout
    assert not re.search(r"<(list\[)?(str|int|float)", text), text  # no Python types as placeholders
    for line in callback_examples(command):
        assert line in text  # an example is never wrapped mid-word


def callback_examples(command: str) -> list[str]:
    """The example lines of a command's docstring."""
    callbacks = [info.callback for info in app.registered_commands if info.callback is not None]
    doc = next(callback.__doc__ or "" for callback in callbacks if callback.__name__ == command)
    return [line.strip() for line in doc.splitlines() if line.strip().startswith("tracelog ")]


def test_parse_help_placeholders(run_cli: RunCli) -> None:
    text = run_cli("parse", "--help").stdout
    for placeholder in ("FILE", "ADDR[/LEN]", "N", "SECONDS", "YEAR", "DIR"):
        assert placeholder in text
    options = text.split("Options:")[1]
    assert "repeatable" in options.split("--rules")[1].split("--names")[0]


def test_traceback_works_wherever_it_is_given(run_cli: RunCli) -> None:
    with pytest.raises(Exception, match="--name needs names"):
        run_cli("parse", "--name", "nginx-2", "--traceback", DROP)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["parse", "--format", "xml", DROP], "tracelog: invalid value for --format: 'xml' (one of table, jsonl"),
        (["parse", "--year", "99999", DROP], "tracelog: invalid value for --year: 99999"),
        (["parse", "--year", "0", DROP], "tracelog: invalid value for --year: 0"),
        (["parse", "--year", "-5", DROP], "tracelog: invalid value for --year: -5"),
        (["parse", "--port", "99999", DROP], "tracelog: invalid value for --port: 99999"),
        (["parse", "--proto", "ＴＣＰ", DROP], "tracelog: invalid value for --proto: 'ＴＣＰ'"),
        (["parse", "--verdict", "DROP😀", DROP], "tracelog: invalid value for --verdict: 'DROP😀'"),
        (["parse", "--bogus", DROP], "tracelog: no such option: --bogus"),
    ],
)
def test_bad_option_values_are_one_plain_line(argv: list[str], says: str, run_cli: RunCli) -> None:
    run = run_cli(*argv)
    assert run.status == 2
    assert run.stderr.startswith(says), run.stderr
    assert run.stderr.count("\n") == 1
    assert "Value error" not in run.stderr
    assert "Input should" not in run.stderr


@pytest.mark.parametrize(("option", "value"), [("--proto", "TCP"), ("--proto", "icmpv6"), ("--verdict", "drop")])
def test_good_filter_values_pass(option: str, value: str, run_cli: RunCli) -> None:
    assert run_cli("parse", option, value, DROP).status == 0
