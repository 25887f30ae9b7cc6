"""tracelog's state directory: ruleset snapshots taken when tracing starts.

`$TRACELOG_STATE_DIR`, else `/var/lib/tracelog`.  Rules themselves carry
their state in their comment tags; nothing here is needed to remove them.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from tracelog.errors import TracelogError

DEFAULT_STATE_DIR = Path("/var/lib/tracelog")
STATE_DIR_VARIABLE = "TRACELOG_STATE_DIR"


def state_dir() -> Path:
    """Where tracelog keeps its files."""
    configured = os.environ.get(STATE_DIR_VARIABLE)
    return Path(configured) if configured else DEFAULT_STATE_DIR


def namespace_id(ns_link: Path = Path("/proc/self/ns/net")) -> str:
    """`net-4026531840`: the network namespace's inode, so snapshots of different namespaces never mix."""
    try:
        return "net-" + os.readlink(ns_link).removeprefix("net:[").rstrip("]")
    except OSError:
        return "net-unknown"


def save_snapshot(rulesets: dict[str, str], now: datetime, directory: Path | None = None) -> Path:
    """Write each tool's `iptables-save` output to `<state>/snapshots/<UTC time>-<netns>/<tool>`.

    The snapshot is what turns rule numbers in a later trace back into rules,
    since Docker and friends change the ruleset while one traces.
    """
    target = (directory or state_dir()) / "snapshots" / f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}-{namespace_id()}"
    try:
        target.mkdir(parents=True, exist_ok=False, mode=0o700)
        for tool, text in rulesets.items():
            (target / tool).write_text(text)
    except OSError as error:
        raise TracelogError(
            f"cannot save the ruleset snapshot in {target}: {error.strerror}",
            hint=f"set {STATE_DIR_VARIABLE} to a writable directory",
        ) from error
    return target


def latest_snapshot(directory: Path | None = None) -> list[Path]:
    """The files of the newest snapshot of this network namespace, or none.

    Kernel-log traces number rules of the legacy tables, so where both
    backends were saved the legacy files are the ones that explain them.
    """
    snapshots = (directory or state_dir()) / "snapshots"
    try:
        taken = sorted(snapshots.glob(f"*-{namespace_id()}"))
    except OSError:
        return []
    if not taken:
        return []
    files = sorted(path for path in taken[-1].iterdir() if path.is_file())
    legacy = [path for path in files if "legacy" in path.name]
    return legacy or files
