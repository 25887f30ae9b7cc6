"""The state directory as input: snapshots saved readable by group adm, pruned, and read without ever raising.

Each test builds its own state directory, often a hostile one (plain files,
symlinks out of it and in loops, FIFOs, names that are no time); reading it
skips what is odd with one line and never follows a symlink.  The
unprivileged reader is in tests/lab/test_state_lab.py (it needs root to drop).
"""

from __future__ import annotations

import grp
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tracelog import state
from tracelog.errors import TracelogError
from tracelog.state import (
    KEEP_PER_NAMESPACE,
    MAX_AGE,
    latest_snapshot,
    list_snapshots,
    namespace_id,
    prune_snapshots,
    save_snapshot,
)

NOW = datetime(2026, 11, 28, 4, 0, 0, 250000, tzinfo=UTC)
RULESETS = {"iptables-legacy-save": "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n", "ip6tables-legacy-save": ""}


class Warnings(list[str]):
    def __call__(self, line: str) -> None:
        self.append(line)


def snapshot_name(moment: datetime, namespace: str | None = None) -> str:
    return f"{moment.strftime(state.STAMP)}-{namespace or namespace_id()}"


def test_a_snapshot_is_saved_and_found_again(tmp_path: Path) -> None:
    saved = save_snapshot(RULESETS, NOW, tmp_path)
    assert saved == tmp_path / "snapshots" / snapshot_name(NOW)
    assert latest_snapshot(tmp_path) == [saved / "ip6tables-legacy-save", saved / "iptables-legacy-save"]
    [listed] = list_snapshots(tmp_path)
    assert (listed.taken, listed.namespace, listed.files) == (
        datetime(2026, 11, 28, 4, 0, 0, 250000, tzinfo=UTC),
        namespace_id(),
        ("ip6tables-legacy-save", "iptables-legacy-save"),
    )


def test_the_legacy_files_explain_kernel_log_traces(tmp_path: Path) -> None:
    saved = save_snapshot({**RULESETS, "iptables-nft-save": "*raw\nCOMMIT\n"}, NOW, tmp_path)
    assert [path.name for path in latest_snapshot(tmp_path)] == ["ip6tables-legacy-save", "iptables-legacy-save"]
    (saved / "iptables-legacy-save").unlink()
    (saved / "ip6tables-legacy-save").unlink()
    assert latest_snapshot(tmp_path) == [saved / "iptables-nft-save"]


@pytest.mark.skipif(os.geteuid() != 0, reason="setting the group adm needs root")
def test_snapshots_are_readable_by_group_adm_and_nobody_else(tmp_path: Path) -> None:
    adm = grp.getgrnam("adm").gr_gid
    base = tmp_path / "state"
    saved = save_snapshot(RULESETS, NOW, base)
    assert stat.S_IMODE(base.stat().st_mode) == 0o755
    for path, mode in ((base / "snapshots", 0o750), (saved, 0o750), (saved / "iptables-legacy-save", 0o640)):
        info = path.lstat()
        assert (stat.S_IMODE(info.st_mode), info.st_gid) == (mode, adm), path


def test_an_old_private_snapshots_directory_is_opened_to_readers(tmp_path: Path) -> None:
    (tmp_path / "snapshots").mkdir(mode=0o700)
    save_snapshot(RULESETS, NOW, tmp_path)
    expected = 0o750 if state.reader_group() is not None and os.geteuid() == 0 else 0o700
    assert stat.S_IMODE((tmp_path / "snapshots").stat().st_mode) == expected


def test_a_symlinked_snapshots_directory_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    base = tmp_path / "state"
    base.mkdir()
    (base / "snapshots").symlink_to(elsewhere)
    with pytest.raises(TracelogError, match="cannot save the ruleset snapshot"):
        save_snapshot(RULESETS, NOW, base)
    assert list(elsewhere.iterdir()) == []
    warnings = Warnings()
    assert latest_snapshot(base, warn=warnings) == []
    assert warnings == [f"skipping the ruleset snapshots: {base / 'snapshots'} is a symlink"]


# -- hostile state directories ---------------------------------------------------------------------


def test_a_missing_state_directory_is_no_snapshot_and_no_warning(tmp_path: Path) -> None:
    warnings = Warnings()
    assert latest_snapshot(tmp_path / "none", warn=warnings) == []
    assert warnings == []


def test_a_plain_file_where_a_snapshot_should_be_is_skipped(tmp_path: Path) -> None:
    older = save_snapshot(RULESETS, NOW, tmp_path)
    bogus = tmp_path / "snapshots" / snapshot_name(NOW + timedelta(minutes=1))
    bogus.write_text("-A INPUT -j DROP\n")
    warnings = Warnings()
    assert latest_snapshot(tmp_path, warn=warnings) == [older / "ip6tables-legacy-save", older / "iptables-legacy-save"]
    assert warnings == [f"skipping {bogus}: not a directory"]


def test_symlinks_out_of_the_state_directory_are_never_followed(tmp_path: Path) -> None:
    snapshots = tmp_path / "snapshots"
    snapshots.mkdir()
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "iptables-legacy-save").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (snapshots / snapshot_name(NOW)).symlink_to(etc)
    warnings = Warnings()
    assert latest_snapshot(tmp_path, warn=warnings) == []
    assert warnings == [f"skipping {snapshots / snapshot_name(NOW)}: a symlink"]


def test_symlinked_files_loops_and_fifos_inside_a_snapshot_are_skipped(tmp_path: Path) -> None:
    saved = save_snapshot({"iptables-nft-save": "*raw\nCOMMIT\n"}, NOW, tmp_path)
    (saved / "iptables-legacy-save").symlink_to("/etc/passwd")
    (saved / "ip6tables-legacy-save").symlink_to(saved / "ip6tables-legacy-save")  # a loop
    os.mkfifo(saved / "ip6tables-nft-save")  # opening it to read would block
    warnings = Warnings()
    assert latest_snapshot(tmp_path, warn=warnings) == [saved / "iptables-nft-save"]
    assert sorted(warnings) == [
        f"skipping the ruleset snapshot file {saved / 'ip6tables-legacy-save'}: a symlink",
        f"skipping the ruleset snapshot file {saved / 'ip6tables-nft-save'}: not a regular file",
        f"skipping the ruleset snapshot file {saved / 'iptables-legacy-save'}: a symlink",
    ]


def test_names_that_are_no_snapshot_or_no_time_are_left_alone(tmp_path: Path) -> None:
    saved = save_snapshot(RULESETS, NOW, tmp_path)
    snapshots = tmp_path / "snapshots"
    (snapshots / "README").write_text("not a snapshot\n")
    (snapshots / f"20261399T250000.000000Z-{namespace_id()}").mkdir()
    (saved / "passwd").write_text("root:x:0:0\n")
    warnings = Warnings()
    assert [path.name for path in latest_snapshot(tmp_path, warn=warnings)] == [
        "ip6tables-legacy-save",
        "iptables-legacy-save",
    ]
    assert warnings == [f"skipping {snapshots / f'20261399T250000.000000Z-{namespace_id()}'}: its name is no time"]


def test_an_unreadable_state_directory_is_one_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real unprivileged reader runs in the lab; here the kernel's answer is stood in for."""
    save_snapshot(RULESETS, NOW, tmp_path)

    def refused(path: object) -> object:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "scandir", refused)
    warnings = Warnings()
    assert latest_snapshot(tmp_path, warn=warnings) == []
    assert warnings == [
        f"cannot read the ruleset snapshots in {tmp_path / 'snapshots'}: permission denied "
        "(snapshots are readable by root and group adm)"
    ]


def test_snapshots_of_other_namespaces_are_not_read_or_warned_about(tmp_path: Path) -> None:
    snapshots = tmp_path / "snapshots"
    snapshots.mkdir()
    (snapshots / snapshot_name(NOW, "net-1")).write_text("")
    warnings = Warnings()
    assert latest_snapshot(tmp_path, warn=warnings) == []
    assert warnings == []


# -- pruning -----------------------------------------------------------------------------------------


def test_pruning_keeps_the_newest_per_namespace_and_nothing_too_old(tmp_path: Path) -> None:
    snapshots = tmp_path / "snapshots"
    snapshots.mkdir()
    ours = [NOW - timedelta(minutes=minutes) for minutes in range(14)]
    for moment in ours:
        (snapshots / snapshot_name(moment)).mkdir()
    other_new, other_old = NOW - timedelta(days=1), NOW - MAX_AGE - timedelta(seconds=1)
    for moment in (other_new, other_old):
        (snapshots / snapshot_name(moment, "net-1")).mkdir()
    (snapshots / "notes").mkdir()
    removed = prune_snapshots(tmp_path, NOW)
    assert sorted(removed) == sorted(
        [snapshots / snapshot_name(moment) for moment in ours[KEEP_PER_NAMESPACE:]]
        + [snapshots / snapshot_name(other_old, "net-1")]
    )
    assert sorted(path.name for path in snapshots.iterdir()) == sorted(
        [snapshot_name(moment) for moment in ours[:KEEP_PER_NAMESPACE]] + [snapshot_name(other_new, "net-1"), "notes"]
    )


def test_saving_prunes(tmp_path: Path) -> None:
    for minutes in range(KEEP_PER_NAMESPACE + 4):
        save_snapshot(RULESETS, NOW + timedelta(minutes=minutes), tmp_path)
    assert len(list_snapshots(tmp_path)) == KEEP_PER_NAMESPACE
    assert list_snapshots(tmp_path)[-1].taken == NOW + timedelta(minutes=KEEP_PER_NAMESPACE + 3)


def test_pruning_never_deletes_through_a_symlink(tmp_path: Path) -> None:
    snapshots = tmp_path / "snapshots"
    snapshots.mkdir()
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep").write_text("data\n")
    (snapshots / snapshot_name(NOW - MAX_AGE * 2)).symlink_to(precious)
    assert prune_snapshots(tmp_path, NOW) == []
    assert (precious / "keep").read_text() == "data\n"
