"""Root only: the state directory `sudo tracelog enable` leaves, read by an unprivileged user afterwards.

`enable` runs as root in a namespace of its own (`tl-rules-…`); the reader
runs as `nobody` (setpriv), once without groups and once in group `adm`,
which is who may read the trace (Debian's kernel log files are root:adm).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.namespaces import REPO, TIMEOUT, LabNamespace, lab_namespace, require_backend
from tests.samples import SAMPLES

pytestmark = [pytest.mark.lab, pytest.mark.root_only]

SAMPLE = SAMPLES / "lab-legacy/ping.dmesg"
NOBODY = ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups"]
NOBODY_IN_ADM = ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--groups", "adm"]


@pytest.fixture
def shared_state() -> Iterator[Path]:
    """A state directory `nobody` can reach (pytest's tmp_path is root's alone)."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is not installed")
    top = Path(tempfile.mkdtemp(prefix="tlr-state-"))
    top.chmod(0o755)
    try:
        yield top / "state"
    finally:
        shutil.rmtree(top)


@pytest.fixture
def enabled(shared_state: Path) -> Iterator[LabNamespace]:
    """`tracelog enable` as root has saved a snapshot (and made the state directory) in `shared_state`."""
    require_backend("legacy")
    with lab_namespace(shared_state) as ns:
        ns.load_user_rules("legacy")
        done = ns.tracelog("enable", "icmp", "--dst", ns.ipv4, "--backend", "legacy")
        assert done.returncode == 0, done.stderr
        yield ns
        ns.tracelog("disable")


def as_user(ns: LabNamespace, drop: list[str], *argv: str) -> subprocess.CompletedProcess[str]:
    """`argv` inside the namespace as another user, with tracelog's state directory set."""
    return subprocess.run(
        ["ip", "netns", "exec", ns.name, *drop, *argv],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=ns.env(),
        timeout=TIMEOUT,
        check=False,
    )


LATEST = "from tracelog.state import latest_snapshot; print(latest_snapshot(warn=lambda line: print('warn:', line)))"


def test_nobody_reads_a_trace_after_sudo_enable_without_a_traceback(enabled: LabNamespace) -> None:
    [snapshot] = (enabled.state / "snapshots").iterdir()
    said = as_user(enabled, NOBODY, sys.executable, "-c", LATEST)
    assert said.returncode == 0, said.stderr
    assert said.stdout.splitlines() == [
        f"warn: cannot read the ruleset snapshots in {enabled.state / 'snapshots'}: permission denied "
        "(snapshots are readable by root and group adm)",
        "[]",
    ]
    done = as_user(enabled, NOBODY, sys.executable, "-m", "tracelog", "parse", "-f", "jsonl", str(SAMPLE))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert [json.loads(line)["packet"] for line in done.stdout.splitlines()] == [1, 2, 3, 4]
    assert str(snapshot) not in done.stderr  # not used: it cannot be read


def test_group_adm_reads_the_snapshot(enabled: LabNamespace) -> None:
    [snapshot] = (enabled.state / "snapshots").iterdir()
    said = as_user(enabled, NOBODY_IN_ADM, sys.executable, "-c", LATEST)
    assert said.returncode == 0, said.stderr
    assert said.stdout.splitlines() == [str([snapshot / "ip6tables-legacy-save", snapshot / "iptables-legacy-save"])]
    assert (snapshot / "iptables-legacy-save").read_text().count("tracelog:1,") == 2  # the rules as enabled


def test_hostile_entries_in_the_state_directory(enabled: LabNamespace) -> None:
    """A newer snapshot that is a symlink to /etc, or holds symlinks: skipped, and /etc is never read as rules."""
    snapshots = enabled.state / "snapshots"
    [snapshot] = snapshots.iterdir()
    newer = snapshots / snapshot.name.replace(snapshot.name[:8], "20991231", 1)
    newer.symlink_to("/etc")
    (snapshot / "ip6tables-legacy-save").unlink()
    (snapshot / "ip6tables-legacy-save").symlink_to("/etc/passwd")
    said = as_user(enabled, [], sys.executable, "-c", LATEST)
    assert said.stdout.splitlines() == [
        f"warn: skipping {newer}: a symlink",
        f"warn: skipping the ruleset snapshot file {snapshot / 'ip6tables-legacy-save'}: a symlink",
        str([snapshot / "iptables-legacy-save"]),
    ]
    done = enabled.tracelog("parse", "-f", "jsonl", str(SAMPLE))
    assert done.returncode == 0, done.stderr
    assert "root:x:0" not in done.stdout + done.stderr
    assert all(json.loads(line)["packet"] for line in done.stdout.splitlines())
