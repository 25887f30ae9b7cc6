"""tracelog's state directory: ruleset snapshots taken when tracing starts, kept few, read defensively.

`$TRACELOG_STATE_DIR`, else `/var/lib/tracelog`.  Rules themselves carry
their state in their comment tags; nothing here is needed to remove them.

Who may read a snapshot: whoever may read the trace.  On Debian and Ubuntu
the kernel log files belong to group `adm` (`/var/log/kern.log`, root:adm
0640), so `snapshots/` and each snapshot directory are 0750 and each file
0640, group `adm`; where there is no `adm` group they are root's alone
(0700 and 0600).  The state directory itself, when tracelog creates it, is
0755.

Snapshots are input like any other file: reading them never raises, and
anything odd (an unreadable directory, a plain file where a snapshot should
be, a symlink) is skipped with one line of warning; no symlink is followed
from the state directory inward.

Pruning keeps the newest `KEEP_PER_NAMESPACE` (10) snapshots of each network
namespace and none older than `MAX_AGE` (7 days).
"""

from __future__ import annotations

import grp
import os
import re
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tracelog.errors import TracelogError

DEFAULT_STATE_DIR = Path("/var/lib/tracelog")
STATE_DIR_VARIABLE = "TRACELOG_STATE_DIR"
SNAPSHOTS = "snapshots"
READER_GROUP = "adm"
STATE_DIR_MODE = 0o755
SHARED_DIR_MODE, SHARED_FILE_MODE = 0o750, 0o640
PRIVATE_DIR_MODE, PRIVATE_FILE_MODE = 0o700, 0o600
KEEP_PER_NAMESPACE = 10
MAX_AGE = timedelta(days=7)
STAMP = "%Y%m%dT%H%M%S.%fZ"
_SNAPSHOT_NAME = re.compile(r"(?P<stamp>\d{8}T\d{6}\.\d{6}Z)-(?P<namespace>net-[0-9a-z]+)")
_SNAPSHOT_FILE = re.compile(r"ip6?tables-(?:legacy|nft)-save")

Warn = Callable[[str], None]


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


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One saved snapshot: when, of which network namespace, and its files."""

    path: Path
    taken: datetime
    namespace: str
    files: tuple[str, ...]


# -- writing -------------------------------------------------------------------------------------------


def save_snapshot(rulesets: dict[str, str], now: datetime, directory: Path | None = None) -> Path:
    """Write each tool's `iptables-save` output to `<state>/snapshots/<UTC time>-<netns>/<tool>`, then prune.

    The snapshot is what turns rule numbers in a later trace back into rules,
    since Docker and friends change the ruleset while one traces.
    """
    base = directory or state_dir()
    snapshots = base / SNAPSHOTS
    target = snapshots / f"{now.astimezone(UTC).strftime(STAMP)}-{namespace_id()}"
    group = reader_group()
    dir_mode, file_mode = (
        (SHARED_DIR_MODE, SHARED_FILE_MODE) if group is not None else (PRIVATE_DIR_MODE, PRIVATE_FILE_MODE)
    )
    try:
        if not base.exists():
            base.mkdir(parents=True, mode=STATE_DIR_MODE)
            os.chmod(base, STATE_DIR_MODE)  # mkdir's mode passes through the umask
        _own_directory(snapshots, dir_mode, group)
        target.mkdir(mode=dir_mode)
        _set_owner(target, dir_mode, group)
        for tool, text in rulesets.items():
            _write_file(target / tool, text, file_mode, group)
    except OSError as error:
        raise TracelogError(
            f"cannot save the ruleset snapshot in {target}: {error.strerror}",
            hint=f"set {STATE_DIR_VARIABLE} to a writable directory",
        ) from error
    prune_snapshots(base, now)
    return target


def reader_group() -> int | None:
    """The group that may read snapshots (`adm`, which reads the kernel log files), or None where it is missing."""
    try:
        return grp.getgrnam(READER_GROUP).gr_gid
    except KeyError:
        return None


def _own_directory(path: Path, mode: int, group: int | None) -> None:
    """Create `snapshots/`, or give an existing one (not a symlink) the mode and group readers need."""
    try:
        path.mkdir(mode=mode)
    except FileExistsError:
        if path.is_symlink() or not path.is_dir():
            raise NotADirectoryError(20, "not a directory (a symlink or a file)", str(path)) from None
    _set_owner(path, mode, group)


def _set_owner(path: Path, mode: int, group: int | None) -> None:
    if group is not None:
        try:
            os.chown(path, -1, group, follow_symlinks=False)
        except PermissionError:  # not root, and not a member of the group: the files stay private
            mode &= 0o700
    os.chmod(path, mode)


def _write_file(path: Path, text: str, mode: int, group: int | None) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode & 0o600)
    with os.fdopen(fd, "w") as file:
        if group is not None:
            try:
                os.fchown(file.fileno(), -1, group)
            except PermissionError:
                mode &= 0o600
        os.fchmod(file.fileno(), mode)
        file.write(text)


# -- reading -------------------------------------------------------------------------------------------


def latest_snapshot(
    directory: Path | None = None, *, warn: Warn | None = None, before: datetime | None = None
) -> list[Path]:
    """The files of the newest snapshot of this network namespace (taken by `before`, if given), or none.

    Never raises.  Kernel-log traces number rules of the legacy tables, so
    where both backends were saved the legacy files are the ones that
    explain them.  Whatever cannot be used (unreadable, not a directory or
    file, a symlink) is skipped, with one line to `warn` saying why.
    """
    say = warn if warn is not None else _quiet
    ours = [
        snapshot
        for snapshot in list_snapshots(directory, warn=say, namespace=namespace_id())
        if before is None or snapshot.taken <= before
    ]
    if not ours:
        return []
    newest = ours[-1]
    files = []
    for name in newest.files:
        path = newest.path / name
        problem = _unreadable_file(path)
        if problem:
            say(f"skipping the ruleset snapshot file {path}: {problem}")
            continue
        files.append(path)
    legacy = [path for path in files if "legacy" in path.name]
    return legacy or files


def _unreadable_file(path: Path) -> str | None:
    """Why `path` is no snapshot file to read (a symlink, a FIFO, no permission), or None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        return _reason(error)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "not a regular file"
    finally:
        os.close(fd)
    return None


def list_snapshots(
    directory: Path | None = None, *, warn: Warn | None = None, namespace: str | None = None
) -> list[Snapshot]:
    """The snapshots in the state directory (of one `namespace`, or all), oldest first.

    Never raises, and never follows a symlink inside the state directory.
    """
    say = warn if warn is not None else _quiet
    snapshots = (directory or state_dir()) / SNAPSHOTS
    try:
        if stat.S_ISLNK(os.lstat(snapshots).st_mode):
            say(f"skipping the ruleset snapshots: {snapshots} is a symlink")
            return []
        entries = sorted(os.scandir(snapshots), key=lambda entry: entry.name)
    except FileNotFoundError:
        return []
    except OSError as error:
        say(f"cannot read the ruleset snapshots in {snapshots}: {_reason(error)}")
        return []
    found = []
    for entry in entries:
        named = _SNAPSHOT_NAME.fullmatch(entry.name)
        if named is None or namespace not in (None, named["namespace"]):
            continue
        snapshot = _snapshot(entry, named, say)
        if snapshot is not None:
            found.append(snapshot)
    return found


def _snapshot(entry: os.DirEntry[str], named: re.Match[str], say: Warn) -> Snapshot | None:
    path = Path(entry.path)
    try:
        if not entry.is_dir(follow_symlinks=False):
            say(f"skipping {path}: {'a symlink' if entry.is_symlink() else 'not a directory'}")
            return None
        names = sorted(file.name for file in os.scandir(path) if _SNAPSHOT_FILE.fullmatch(file.name))
    except OSError as error:
        say(f"skipping the ruleset snapshot {path}: {_reason(error)}")
        return None
    try:
        taken = datetime.strptime(named["stamp"], STAMP).replace(tzinfo=UTC)
    except ValueError:
        say(f"skipping {path}: its name is no time")
        return None
    return Snapshot(path, taken, named["namespace"], tuple(names))


def _reason(error: OSError) -> str:
    if isinstance(error, PermissionError):
        return "permission denied (snapshots are readable by root and group adm)"
    if error.errno == 40:  # ELOOP: O_NOFOLLOW met a symlink
        return "a symlink"
    return error.strerror or str(error)


def _quiet(_line: str) -> None:
    return None


# -- pruning -------------------------------------------------------------------------------------------


def prune_snapshots(directory: Path | None = None, now: datetime | None = None) -> list[Path]:
    """Delete snapshots past the newest `KEEP_PER_NAMESPACE` of their namespace or older than `MAX_AGE`.

    Only directories named like snapshots are deleted, never through a
    symlink; one that cannot be deleted stays.  Returns what went.
    """
    moment = now or datetime.now(UTC)
    by_namespace: dict[str, list[Snapshot]] = {}
    for snapshot in list_snapshots(directory):
        by_namespace.setdefault(snapshot.namespace, []).append(snapshot)
    removed = []
    for snapshots in by_namespace.values():
        for index, snapshot in enumerate(reversed(snapshots)):
            if index < KEEP_PER_NAMESPACE and moment - snapshot.taken <= MAX_AGE:
                continue
            try:
                shutil.rmtree(snapshot.path)
            except OSError:
                continue
            removed.append(snapshot.path)
    return removed
