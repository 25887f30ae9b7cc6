"""Output: readable timelines (rich), JSON lines, CSV, and the run summary on stderr."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, NamedTuple, TextIO

import orjson
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from tracelog.analyse import STEP_COLUMNS, Report, step_rows
from tracelog.output.timeline import describe, ending, partial_note, timeline_rows
from tracelog.pipeline import RunStats
from tracelog.records.packet import TERMINAL_VERDICTS, Record, Shaping
from tracelog.wording import escape_controls, plural

if TYPE_CHECKING:
    import pandas as pd

# Into a file or pipe, timelines are not wrapped: grep and diff see whole steps.
UNWRAPPED_WIDTH = 1000


def json_line(record: Record) -> str:
    """One record as a JSON line: orjson, or the standard library for what orjson refuses.

    orjson is several times faster on the big records of a busy log; it
    refuses integers beyond 64 bits (a mangled field can hold one) and lone
    surrogates, which `json` still writes.
    """
    try:
        return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE).decode()
    except orjson.JSONEncodeError:
        return json.dumps(record, separators=(",", ":")) + "\n"


class Pending(NamedTuple):
    """A packet's output text but for its packet and flow numbers, which only the process that sees every packet knows.

    The rest, most of the work, is done where the record is made: in the
    workers reading a big file (`tracelog.parallel`).
    """

    lead: str
    middle: str
    end: str

    def numbered(self, packet: int, flow: int) -> str:
        return f"{self.lead}{packet}{self.middle}{flow}{self.end}"


_JSON_LEAD = '{"packet":'


def _json_members(fields: dict[str, object]) -> str:
    """`"a":1,"b":2`: the members of a JSON object, to be joined with others into one."""
    return json_line(fields)[1:-2]  # without the braces and the line end


def pending_json_line(record: Record) -> Pending:
    """`json_line` of a record whose packet and flow numbers are not known yet, to be numbered in order.

    Made from the record's named parts: the fields between `packet` and
    `flow` (the contract's order), and those after `flow`.
    """
    names = list(record)
    flow = names.index("flow")
    before = {name: record[name] for name in names[1:flow]}
    after = {name: record[name] for name in names[flow + 1 :]}
    return Pending(_JSON_LEAD, f',{_json_members(before)},"flow":', f",{_json_members(after)}}}\n")


JSON_LINES = Shaping(pending_json_line, Pending.numbered)
"""`--format jsonl`: each record's JSON line, written where the record is made."""


def write_texts(texts: Iterable[str], out: TextIO) -> None:
    """Each packet's text as it comes, flushed so live readers see it at once."""
    for text in texts:
        out.write(text)
        out.flush()


def write_csv(records: Iterable[Record], out: TextIO) -> None:
    """The steps frame as CSV, streamed one packet at a time."""
    writer = csv.DictWriter(out, fieldnames=STEP_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerows(step_rows(record))
        out.flush()


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


def _ending(record: Record) -> Styled:
    label, rest = ending(record)
    if not label:
        return Styled(((rest, ""),), "dim")
    return Styled(((label, "bold red" if record["verdict"] in TERMINAL_VERDICTS else "bold green"), (rest, "")))


def _title(record: Record) -> Styled:
    runs = [(f"#{record['packet']}", "bold"), (f" {describe(record)}", ""), (f"  flow {record['flow']}", "dim")]
    if record["host"]:
        runs.append((f"  on {record['host']}", "dim"))
    if note := partial_note(record):
        runs.append((note, "yellow"))
    return Styled(tuple(runs))


def timeline(record: Record) -> Group:
    """One packet for a terminal: its title, a row per step with changes marked, its ending."""
    table = Table(box=None, pad_edge=False, show_header=False)
    for column in ("time", "hook", "chain", "step", "changes", "rule"):
        table.add_column(
            column, no_wrap=column not in ("changes", "rule"), style="dim" if column in ("time", "hook") else None
        )
    for cells in _step_cells(record):
        table.add_row(*(cell if isinstance(cell, str) else cell.text() for cell in cells))
    return Group(_title(record).text(), table, _ending(record).text())


def pending_timeline_text(record: Record) -> Pending:
    """One packet as plain text for a file or pipe: the same cells and columns, no layout engine.

    Laid out as rich lays out `timeline` (columns two blanks apart, each as
    wide as its widest cell), at a fraction of the cost on large logs.
    """
    host = f"  on {record['host']}" if record["host"] else ""
    title = escape_controls(f" {describe(record)}  flow ")
    return Pending("#", title, escape_controls(host + partial_note(record)) + "\n" + _steps_text(record))


TIMELINE_TEXTS = Shaping(pending_timeline_text, Pending.numbered)
"""`--format table` into a file or pipe: each packet's timeline, laid out where its record is made."""


def _steps_text(record: Record) -> str:
    rows = [[cell if isinstance(cell, str) else cell.plain() for cell in cells] for cells in _step_cells(record)]
    widths = [max(map(len, column)) for column in zip(*rows, strict=True)]
    lines = ["  ".join(map(str.ljust, row, widths)).rstrip() for row in rows]
    return "\n".join([*lines, _ending(record).plain()]) + "\n\n"


# How the terminal styles a timeline's parts (`tracelog.output.timeline` names their kinds).
_CHANGE_STYLES = {"interface": "", "nat": "bold yellow", "ttl": "dim"}
_DECISION_STYLES = {"": "", "mismatch": "red", "note": "italic"}


def _step_cells(record: Record) -> Iterator[list[str | Styled]]:
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


def print_timelines(records: Iterable[Record], console: Console) -> None:
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


def summary_lines(stats: RunStats, sources: int) -> list[str]:
    """The run summary for stderr: what was read, understood, skipped and not understood."""
    skipped = ", ".join(f"{count} {skip.value}" for skip, count in stats.skipped.items())
    lines = [
        f"tracelog: {plural(stats.lines, 'line')} from {plural(sources, 'input')}: "
        f"{plural(stats.events, 'TRACE event')} in {plural(stats.packets, 'packet')}"
        + (f"; skipped {skipped}" if skipped else "")
    ]
    for message, count in stats.caveats.items():
        lines.append(f"tracelog: note: {plural(count, 'line')}: {message} (first at {stats.caveat_examples[message]})")
    lines.extend(f"tracelog: {problem}" for problem in stats.unreadable)
    if stats.bad:
        lines.append(f"tracelog: {plural(stats.bad, 'TRACE line')} not understood:")
        lines.extend(f"  {bad.location}: {bad.reason}" for bad in stats.bad_examples)
        if stats.bad > len(stats.bad_examples):
            lines.append(f"  ... and {stats.bad - len(stats.bad_examples)} more")
    return lines


# ---- tracelog summary -------------------------------------------------------------------------------

_SUMMARY_TOP = 20


def _plain(value: object) -> object:
    """pandas' missing values and numpy scalars as JSON's null and numbers."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def write_summary_jsonl(report: Report, out: TextIO) -> None:
    """Every summary row as one JSON object with its `section`; the answer last."""
    for section, frame in report.tables().items():
        for row in frame.to_dict(orient="records"):
            out.write(json.dumps({"section": section, **{k: _plain(v) for k, v in row.items()}}) + "\n")
    out.write(json.dumps({"section": "answer", "text": report.answer}) + "\n")


def write_summary_csv(report: Report, table: str, out: TextIO) -> None:
    """One summary table as CSV."""
    report.tables()[table].to_csv(out, index=False, lineterminator="\n")


def _rich_table(title: str, frame: pd.DataFrame, columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", box=None, pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in frame[columns].head(_SUMMARY_TOP).itertuples(index=False):
        table.add_row(*("" if _plain(value) is None else escape_controls(str(value)) for value in row))
    return table


def print_summary(report: Report, console: Console) -> None:
    """The summary for a person: flows, drops, the rules hit most, and the answer."""
    frames = report.tables()
    emit(
        console,
        _rich_table(
            "Flows",
            frames["flows"],
            ["flow", "proto", "client", "server", "requests", "replies", "path", "verdict", "verdict_place"],
        ),
    )
    if not frames["drops"].empty:
        emit(
            console,
            _rich_table(
                "Drops by rule",
                frames["drops"],
                ["packets", "flows", "verdict", "verdict_place", "verdict_rule", "example"],
            ),
        )
    emit(
        console,
        _rich_table("Rules hit most", frames["rules"], ["hits", "table", "chain", "kind", "number", "verdict", "rule"]),
    )
    emit(console, Text(escape_controls(report.answer)))
