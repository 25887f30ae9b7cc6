"""`--format csv`: the steps frame, one row per step of every packet, log text's controls escaped."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import TextIO

from tracelog.analyse import STEP_COLUMNS, step_rows
from tracelog.records.packet import PacketRecord
from tracelog.wording import escape_cell


def write_csv(records: Iterable[PacketRecord], out: TextIO) -> None:
    """The steps frame as CSV, streamed one packet at a time."""
    writer = csv.DictWriter(out, fieldnames=STEP_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerows({name: escape_cell(value) for name, value in row.items()} for row in step_rows(record))
        out.flush()
