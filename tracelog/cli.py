"""The command line: parses options, calls the library, maps errors to exit codes."""

from __future__ import annotations

import enum
import functools
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Annotated, ParamSpec, TypeVar

import typer

from tracelog.errors import ExitStatus, InputError, TracelogError
from tracelog.pipeline import ParseOptions, RunStats, trace_packets
from tracelog.record import packet_records
from tracelog.ruleset import load_rulesets
from tracelog.sources import STDIN

app = typer.Typer(
    help="Readable netfilter TRACE output: one timeline per packet.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class OutputFormat(enum.StrEnum):
    table = "table"
    jsonl = "jsonl"
    csv = "csv"


class _Settings:
    """Global flags read by `main`, outside the command's context."""

    traceback = False


P = ParamSpec("P")
R = TypeVar("R")


def _quiet_stdout() -> None:
    """After a closed pipe, point stdout at /dev/null so the exit flush is silent."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _ends_quietly(command: Callable[P, R]) -> Callable[P, R]:
    """Ctrl-C and a closed pipe (`| head`) end a command without a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            raise typer.Exit(ExitStatus.INTERRUPTED) from None
        except BrokenPipeError:
            _quiet_stdout()
            raise typer.Exit(ExitStatus.OK) from None

    return wrapper


@app.callback()
def _global(
    traceback: Annotated[bool, typer.Option("--traceback", help="Show the Python traceback of an error.")] = False,
) -> None:
    _Settings.traceback = traceback


@app.command()
@_ends_quietly
def parse(
    files: Annotated[list[str] | None, typer.Argument(help="Log files (plain or .gz); - or none for stdin.")] = None,
    output: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")] = OutputFormat.table,
    idle: Annotated[float, typer.Option(help="Seconds a live stream may stay silent before open packets print.",
                                        min=0.05)] = 1.0,
    year: Annotated[int | None, typer.Option(help="Year for syslog time stamps that have none [default: now].")] = None,
    strict: Annotated[bool, typer.Option(help="Stop at the first TRACE line that cannot be parsed.")] = False,
    rules: Annotated[
        list[str] | None,
        typer.Option("--rules", help="iptables-save / ip6tables-save snapshot taken while tracing (repeatable)."),
    ] = None,
) -> None:
    """Turn TRACE log lines into one timeline per packet.

    Reads kernel logs (dmesg, syslog, kern.log, journalctl -k), live from a
    pipe or from saved files.  Examples:

        tail -f /var/log/syslog | tracelog parse

        tracelog parse --format jsonl /var/log/kern.log /var/log/kern.log.2.gz

        tracelog parse --rules iptables-save.txt kern.log
    """
    inputs = files or [STDIN]
    if STDIN in inputs and sys.stdin.isatty():
        raise InputError("no input on stdin", hint="give a FILE or pipe a log in: dmesg | tracelog parse")
    rulesets = load_rulesets(rules) if rules else None
    options = ParseOptions(idle=idle, strict=strict, rulesets=rulesets)
    if year is not None:
        options = replace(options, year=year)
    stats = RunStats()
    records = packet_records(trace_packets(inputs, options, stats))
    try:
        _write(records, output)
    except (KeyboardInterrupt, BrokenPipeError):
        _print_summary(stats, len(inputs))  # an interrupted live run still says what it read
        raise
    _print_summary(stats, len(inputs))
    if stats.unreadable:
        raise typer.Exit(ExitStatus.INPUT)
    if stats.bad:
        raise typer.Exit(ExitStatus.BAD_LINES)


def _print_summary(stats: RunStats, inputs: int) -> None:
    from tracelog.render import summary_lines

    for line in summary_lines(stats, inputs):
        typer.echo(line, err=True)


def _write(records: Iterator[dict[str, object]], output: OutputFormat) -> None:
    from tracelog import render

    if output is OutputFormat.jsonl:
        render.write_jsonl(records, sys.stdout)
    elif output is OutputFormat.csv:
        render.write_csv(records, sys.stdout)
    else:
        console = render.PipeConsole(width=None if sys.stdout.isatty() else render.UNWRAPPED_WIDTH, highlight=False)
        render.print_timelines(records, console)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; every user error is one line on stderr and an `ExitStatus`."""
    try:
        app(args=list(argv) if argv is not None else None, prog_name="tracelog")
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else ExitStatus.ERROR
    except TracelogError as error:
        if _Settings.traceback:
            raise
        print(f"tracelog: {error}", file=sys.stderr)
        return int(error.status)
    return ExitStatus.OK


def main_exit() -> None:
    """Console-script entry point."""
    sys.exit(main())

