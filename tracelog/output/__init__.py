"""Every output format: timelines, JSON lines, CSV, Parquet, the summary and the HTML report.

Each format is a `Format` (how it takes packet records: prepared where they
are made, finished with their packet and flow numbers) and a writer; `Output`
pairs the two, and `open_output` picks them for `--format`, refusing a target
it cannot write before anything is read.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from tracelog.output.format import RECORDS, Format, write_texts

T = TypeVar("T")
U = TypeVar("U")


class OutputFormat(enum.StrEnum):
    """What `--format` can name for packets."""

    table = "table"
    jsonl = "jsonl"
    csv = "csv"
    parquet = "parquet"


@dataclass(frozen=True, slots=True)
class Output(Generic[T, U]):
    """An output: the format that takes each packet's record, and what writes the finished packets."""

    format: Format[T, U]
    write: Callable[[Iterator[U]], None]


def open_output(kind: OutputFormat, directory: str | None = None, force: bool = False) -> Output[Any, Any]:
    """The output `--format` names, writing to stdout (Parquet: to `directory`, checked before any reading)."""
    if kind is OutputFormat.jsonl:
        from tracelog.output.jsonl import JSON_LINES

        return Output(JSON_LINES, lambda lines: write_texts(lines, sys.stdout))
    if kind is OutputFormat.csv:
        from tracelog.output.csv import write_csv

        return Output(RECORDS, lambda records: write_csv(records, sys.stdout))
    if kind is OutputFormat.parquet:
        from tracelog.output.parquet import parquet_target, write_parquet

        target = parquet_target(directory, force)
        return Output(RECORDS, lambda records: write_parquet(records, target))
    from tracelog.output.text import TIMELINE_TEXTS, print_timelines, stdout_console

    console = stdout_console()
    if console.is_terminal:
        return Output(RECORDS, lambda records: print_timelines(records, console))
    return Output(TIMELINE_TEXTS, lambda texts: write_texts(texts, sys.stdout))


def redacted(output: Output[T, U], redact: Callable[[Any], Any]) -> Output[T, U]:
    """The same output, each record passed through `redact` before the format prepares it."""
    prepare = output.format.prepare
    return Output(Format(lambda record: prepare(redact(record)), output.format.finish), output.write)
