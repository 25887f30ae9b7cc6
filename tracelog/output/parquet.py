"""`--format parquet`: the steps and packets tables as a Parquet dataset, partitioned by host.

For analyses too large for one process: pandas, DuckDB or Dask read the
directory without tracelog.  Rows are written in batches, so memory stays
bounded whatever the size of the log.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracelog.analyse import PACKET_COLUMNS, STEP_COLUMNS, Row, packet_row, step_rows
from tracelog.errors import Unavailable, UsageError
from tracelog.records.packet import PacketRecord

if TYPE_CHECKING:
    import pyarrow as pa

BATCH_ROWS = 50_000
_INTEGERS = frozenset({"packet", "flow", "step", "rulenum", "sport", "dport", "line", "steps"})


def _schema(columns: Iterable[str]) -> pa.Schema:
    """Integers where the contract has numbers, text elsewhere (a time is uptime or ISO-8601: text)."""
    import pyarrow as pa

    return pa.schema([(name, pa.int64() if name in _INTEGERS else pa.string()) for name in columns])


def _cell(name: str, value: Any) -> Any:
    if value is None or name in _INTEGERS:
        return value
    return value if isinstance(value, str) else str(value)


class _Table:
    """One partitioned table, flushed every `BATCH_ROWS` rows."""

    def __init__(self, root: Path, columns: tuple[str, ...]) -> None:
        self.root, self.columns, self.rows = root, columns, list[Row]()
        self.schema = _schema(columns)

    def add(self, rows: Iterable[Row]) -> None:
        self.rows.extend(rows)
        if len(self.rows) >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.rows:
            return
        data = {name: [_cell(name, row[name]) for row in self.rows] for name in self.columns}
        data["host"] = [host or "unknown" for host in data["host"]]
        pq.write_to_dataset(pa.table(data, schema=self.schema), str(self.root), partition_cols=["host"])
        self.rows.clear()


def parquet_target(directory: str | None, force: bool) -> Path:
    """Where the dataset goes, checked before anything is read.

    A target that already holds something is refused unless `force`: the
    dataset writer would add to it, and every packet number would then
    appear twice.
    """
    if not directory:
        raise UsageError("--format parquet needs --output DIRECTORY")
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise Unavailable("pyarrow is not installed", hint="reinstall tracelog, which depends on it") from None
    target = Path(directory)
    if not target.parent.is_dir():
        raise UsageError(f"cannot write {target}: {target.parent} is not a directory")
    if not force and (target.is_symlink() or target.exists()):
        if not target.is_dir() or target.is_symlink():
            raise UsageError(f"{target} exists and is not a directory", hint="--force replaces it")
        if any(target.iterdir()):
            raise UsageError(f"{target} is not empty", hint="--force replaces what it holds")
    return target


def write_parquet(records: Iterable[PacketRecord], target: Path) -> None:
    """Write `<target>/steps` and `<target>/packets`, partitioned by host, in one rename at the end.

    The dataset is written beside the target and renamed into place, so an
    interrupted run leaves whatever was there before, never half a dataset.
    """
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        staging.chmod(0o777 & ~_umask())  # mkdtemp's is 0700: the dataset gets what mkdir would give it
        steps, packets = _Table(staging / "steps", STEP_COLUMNS), _Table(staging / "packets", PACKET_COLUMNS)
        for record in records:
            steps.add(step_rows(record))
            packets.add([packet_row(record)])
        steps.flush()
        packets.flush()
        _remove(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _umask() -> int:
    """The process's umask (reading it means setting it: it is set back at once)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _remove(path: Path) -> None:
    """Clear the way for the new dataset: a file, a link or a directory tree (checked by `parquet_target`)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
