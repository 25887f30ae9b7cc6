"""Analysis with pandas: the steps frame and the packets frame, behind a declared schema.

pandas is imported inside the functions that need it, so commands that never
analyse (`tracelog --help`, `tracelog enable`) start fast.  The row builders
are plain functions: the CSV renderer streams them without pandas.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

Record = dict[str, Any]

STEP_COLUMNS = (
    "packet",
    "step",
    "host",
    "family",
    "proto",
    "hook",
    "table",
    "chain",
    "kind",
    "rulenum",
    "handle",
    "time",
    "src",
    "dst",
    "sport",
    "dport",
    "in",
    "out",
    "physin",
    "physout",
    "rule",
    "verdict",
    "source",
    "line",
)
PACKET_COLUMNS = (
    "packet",
    "host",
    "family",
    "proto",
    "src",
    "dst",
    "sport",
    "dport",
    "first_seen",
    "last_seen",
    "steps",
    "first_hook",
    "last_hook",
    "path",
    "rewrites",
    "verdict",
    "verdict_at",
)


def step_rows(record: Record) -> list[Record]:
    """One row per step of a packet record, in `STEP_COLUMNS` order."""
    rows = []
    for number, step in enumerate(record["steps"], start=1):
        row = {key: record[key] for key in ("packet", "host", "family", "proto")}
        row.update({key: step[key] for key in STEP_COLUMNS if key in step})
        row["step"] = number
        rows.append({column: row.get(column) for column in STEP_COLUMNS})
    return rows


def hook_path(record: Record) -> list[str]:
    """The hooks a packet crossed, each once, in order."""
    path: list[str] = []
    for step in record["steps"]:
        hook = step["hook"]
        if hook and (not path or path[-1] != hook):
            path.append(hook)
    return path


def packet_row(record: Record) -> Record:
    """One row per packet, in `PACKET_COLUMNS` order."""
    path = hook_path(record)
    row = {column: record.get(column) for column in PACKET_COLUMNS}
    row.update(
        steps=len(record["steps"]),
        first_hook=path[0] if path else None,
        last_hook=path[-1] if path else None,
        path=" > ".join(path),
        rewrites="; ".join(f"{r['field']} {r['from']}>{r['to']}@{r['step']}" for r in record["rewrites"]),
    )
    return row


def steps_frame(records: Iterable[Record]) -> pd.DataFrame:
    """The steps frame: one row per step of every packet."""
    import pandas as pd

    rows = [row for record in records for row in step_rows(record)]
    return pd.DataFrame(rows, columns=list(STEP_COLUMNS))


def packets_frame(records: Iterable[Record]) -> pd.DataFrame:
    """The packets frame: one row per packet with its path, rewrites and verdict."""
    import pandas as pd

    return pd.DataFrame([packet_row(record) for record in records], columns=list(PACKET_COLUMNS))
