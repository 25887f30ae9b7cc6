"""`--format csv`: the steps frame, one row per step of every packet."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import TextIO

from tracelog.analyse import STEP_COLUMNS, step_rows
from tracelog.records.packet import PacketRecord


def write_csv(records: Iterable[PacketRecord], out: TextIO) -> None:
    """The steps frame as CSV, streamed one packet at a time."""
    writer = csv.DictWriter(out, fieldnames=STEP_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerows(step_rows(record))
        out.flush()
