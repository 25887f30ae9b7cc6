"""Timelines: one packet per block, styled on a terminal, plain and aligned into a file or pipe."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from tracelog.output.format import Format, UnnumberedText
from tracelog.output.timeline import describe, ending, partial_note, timeline_rows
from tracelog.records.packet import TERMINAL_VERDICTS, PacketRecord
from tracelog.wording import escape_controls

# Into a file or pipe, timelines are not wrapped: grep and diff see whole steps.
UNWRAPPED_WIDTH = 1000


class Styled(NamedTuple):
    """A cell, title or ending: runs of text with their rich styles, over a style for the whole.

    Only a terminal pays for a rich `Text`; a file or pipe gets the runs
    joined, without control codes as `Text` would have them.
    """

    runs: tuple[tuple[str, str], ...]
    style: str = ""

    def text(self) -> Text:
        return Text.assemble(*((escape_controls(run), style) for run, style in self.runs), style=self.style)

    def plain(self) -> str:
        return escape_controls("".join(run for run, _ in self.runs))


def _ending(record: PacketRecord) -> Styled:
    label, rest = ending(record)
    if not label:
        return Styled(((rest, ""),), "dim")
    return Styled(((label, "bold red" if record["verdict"] in TERMINAL_VERDICTS else "bold green"), (rest, "")))


def _title(record: PacketRecord) -> Styled:
    runs = [(f"#{record['packet']}", "bold"), (f" {describe(record)}", ""), (f"  flow {record['flow']}", "dim")]
    if record["host"]:
        runs.append((f"  on {record['host']}", "dim"))
    if note := partial_note(record):
        runs.append((note, "yellow"))
    return Styled(tuple(runs))


def timeline(record: PacketRecord) -> Group:
    """One packet for a terminal: its title, a row per step with changes marked, its ending."""
    table = Table(box=None, pad_edge=False, show_header=False)
    for column in ("time", "hook", "chain", "step", "changes", "rule"):
        table.add_column(
            column, no_wrap=column not in ("changes", "rule"), style="dim" if column in ("time", "hook") else None
        )
    for cells in _step_cells(record):
        table.add_row(*(cell if isinstance(cell, str) else cell.text() for cell in cells))
    return Group(_title(record).text(), table, _ending(record).text())


def prepare_timeline_text(record: PacketRecord) -> UnnumberedText:
    """One packet as plain text for a file or pipe: the same cells and columns, no layout engine.

    Laid out as rich lays out `timeline` (columns two blanks apart, each as
    wide as its widest cell), at a fraction of the cost on large logs.
    """
    host = f"  on {record['host']}" if record["host"] else ""
    title = escape_controls(f" {describe(record)}  flow ")
    return UnnumberedText("#", title, escape_controls(host + partial_note(record)) + "\n" + _steps_text(record))


TIMELINE_TEXTS = Format(prepare_timeline_text, UnnumberedText.finish)
"""`--format table` into a file or pipe: each packet's timeline, laid out where its record is made."""


def _steps_text(record: PacketRecord) -> str:
    rows = [[cell if isinstance(cell, str) else cell.plain() for cell in cells] for cells in _step_cells(record)]
    widths = [max(map(len, column)) for column in zip(*rows, strict=True)]
    lines = ["  ".join(map(str.ljust, row, widths)).rstrip() for row in rows]
    return "\n".join([*lines, _ending(record).plain()]) + "\n\n"


# How the terminal styles a timeline's parts (`tracelog.output.timeline` names their kinds).
_CHANGE_STYLES = {"interface": "", "nat": "bold yellow", "ttl": "dim"}
_DECISION_STYLES = {"": "", "mismatch": "red", "note": "italic"}


def _step_cells(record: PacketRecord) -> Iterator[list[str | Styled]]:
    """The cells of each step: time, hook (when it changes), table:chain, kind, changes, rule."""
    for row in timeline_rows(record):
        changes = Styled(tuple((f"{text} ", _CHANGE_STYLES[kind]) for text, kind in row.changes))
        decision = Styled(((row.decision, ""),), _DECISION_STYLES[row.decision_kind]) if row.decision else Styled(())
        yield [row.elapsed, row.hook_shown, row.place, row.position, changes, decision]


class PipeConsole(Console):
    """A console that lets a closed pipe surface as `BrokenPipeError`.

    rich exits with status 1 on its own; the CLI ends every command the same
    quiet way instead.
    """

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError


def print_timelines(records: Iterable[PacketRecord], console: Console) -> None:
    """The default output on a terminal: one timeline per packet, printed as each completes.

    Into a file or pipe, `TIMELINE_TEXTS` writes the same text without
    colours to lose or a layout engine to pay for on every packet.
    """
    for record in records:
        emit(console, timeline(record))


def emit(console: Console, renderable: RenderableType) -> None:
    """Print one block and a blank line; into a file or pipe without rich's cell padding."""
    if console.is_terminal:
        console.print(renderable)
        console.print()
        return
    with console.capture() as captured:
        console.print(renderable)
    console.file.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()) + "\n")
    console.file.flush()


def stdout_console() -> PipeConsole:
    """The console for standard output: as wide as the terminal, or unwrapped into a file or pipe."""
    return PipeConsole(width=None if sys.stdout.isatty() else UNWRAPPED_WIDTH, highlight=False)
