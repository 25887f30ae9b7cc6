"""`tracelog summary`: flows, drops by rule and the rules hit most, for a person or as JSON lines and CSV."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tracelog.analyse import Report
from tracelog.output.text import emit
from tracelog.wording import escape_cell, escape_controls

if TYPE_CHECKING:
    import pandas as pd

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
    """One summary table as CSV, log text's controls escaped."""
    report.tables()[table].map(escape_cell).to_csv(out, index=False, lineterminator="\n")


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
    if not frames["services"].empty:
        emit(
            console,
            _rich_table(
                "Services", frames["services"], ["service", "address", "endpoint", "endpoint_name", "flows", "packets"]
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
