"""Reading without --rules: the snapshot `tracelog enable` saved helps where it fits, and never blocks a read."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import RunCli
from tests.samples import SAMPLES
from tracelog.state import save_snapshot

DOCKER = SAMPLES / "docker-legacy"
DROP_RULES = (DOCKER / "iptables-save.drop.txt").read_text()
LAB_RULES = (SAMPLES / "lab-legacy/ruleset.iptables-save").read_text()
DROP_RULE = "-s 172.18.0.2/32 -d 172.18.0.3/32 -p tcp -m tcp --dport 80 -j DROP"


def saved(rulesets: dict[str, str]) -> Path:
    """A snapshot as `tracelog enable` saves it on a host without IPv6 rules (empty ip6tables-save)."""
    return save_snapshot(rulesets, datetime.now(UTC))


def fresh_copy(sample: Path, directory: Path) -> Path:
    """The trace as written after the snapshot: a copy made now."""
    copy = directory / sample.name
    shutil.copyfile(sample, copy)
    return copy


def test_an_empty_family_does_not_block_a_live_read(run_cli: RunCli) -> None:
    """`enable` on a host without IPv6 rules saves an empty ip6tables-legacy-save: not an error."""
    saved({"iptables-legacy-save": DROP_RULES, "ip6tables-legacy-save": ""})
    run = run_cli("parse", "-f", "jsonl", stdin=(DOCKER / "drop.dmesg").read_text())
    assert run.status == 0, run.stderr
    assert [record["verdict"] for record in run.records()] == ["DROP"] * 3
    assert run.records()[0]["steps"][-1]["rule"].endswith(DROP_RULE)
    notes = [line for line in run.stderr.splitlines() if "snapshot" in line]
    assert len(notes) == 1
    assert "naming rules from the snapshot tracelog enable saved" in notes[0]
    assert "iptables-legacy-save" in notes[0]


def test_a_snapshot_that_fits_an_offline_file_is_used(run_cli: RunCli, tmp_path: Path) -> None:
    saved({"iptables-legacy-save": DROP_RULES, "ip6tables-legacy-save": ""})
    run = run_cli("parse", "-f", "jsonl", str(fresh_copy(DOCKER / "drop.dmesg", tmp_path)))
    assert run.status == 0, run.stderr
    assert [record["verdict_at"] for record in run.records()] == ["filter:DOCKER-USER:rule:1"] * 3


def test_an_offline_file_from_another_host_is_read_without_a_snapshot_that_does_not_fit(
    run_cli: RunCli, tmp_path: Path
) -> None:
    saved({"iptables-legacy-save": LAB_RULES, "ip6tables-legacy-save": ""})
    run = run_cli("parse", "-f", "jsonl", str(fresh_copy(DOCKER / "drop.dmesg", tmp_path)))
    assert run.status == 0, run.stderr
    steps = [step for record in run.records() for step in record["steps"]]
    assert all(step["rule"] is None and step["mismatch"] is None for step in steps)
    assert "ruleset does not fit" not in run.stderr
    note = next(line for line in run.stderr.splitlines() if "snapshot" in line)
    assert "does not fit" in note
    assert "DOCKER-USER" in note  # why: the chain the trace names is not in it
    assert "iptables-legacy-save names them anyway" in note  # the way to name them all the same


def test_a_snapshot_taken_after_the_file_was_written_is_not_its_snapshot(run_cli: RunCli, tmp_path: Path) -> None:
    trace = fresh_copy(DOCKER / "drop.dmesg", tmp_path)
    an_hour_ago = datetime.now(UTC).timestamp() - 3600
    os.utime(trace, (an_hour_ago, an_hour_ago))
    saved({"iptables-legacy-save": DROP_RULES})
    run = run_cli("parse", "-f", "jsonl", str(trace))
    assert run.status == 0, run.stderr
    assert all(record["verdict"] is None for record in run.records())
    note = next(line for line in run.stderr.splitlines() if "snapshot" in line)
    assert "taken after" in note


@pytest.mark.parametrize("damage", ["garbage", "directory"])
def test_a_damaged_snapshot_is_passed_over(damage: str, run_cli: RunCli) -> None:
    snapshot = saved({"iptables-legacy-save": "this is not iptables-save output\n", "ip6tables-legacy-save": ""})
    if damage == "directory":
        (snapshot / "iptables-legacy-save").unlink()
        (snapshot / "iptables-legacy-save").mkdir()
    run = run_cli("parse", "-f", "jsonl", stdin=(DOCKER / "drop.dmesg").read_text())
    assert run.status == 0, run.stderr
    assert len(run.records()) == 3
    assert "Traceback" not in run.stderr
    if damage == "garbage":
        note = next(line for line in run.stderr.splitlines() if "snapshot" in line)
        assert "iptables-legacy-save:1" in note


def test_given_rules_for_a_family_without_tables_are_no_error(run_cli: RunCli, tmp_path: Path) -> None:
    empty = tmp_path / "ip6tables-save.txt"
    empty.write_text("")
    run = run_cli(
        "parse",
        "-f",
        "jsonl",
        "--rules",
        str(DOCKER / "iptables-save.drop.txt"),
        "--rules",
        str(empty),
        str(DOCKER / "drop.dmesg"),
    )
    assert run.status == 0, run.stderr
    assert [record["verdict"] for record in run.records()] == ["DROP"] * 3


def test_the_newest_snapshot_taken_before_the_file_is_the_one_used(run_cli: RunCli, tmp_path: Path) -> None:
    """Tracing again after the capture saved a newer snapshot: the capture is still named from its own."""
    earlier = save_snapshot({"iptables-legacy-save": DROP_RULES}, datetime.now(UTC) - timedelta(minutes=5))
    trace = fresh_copy(DOCKER / "drop.dmesg", tmp_path)
    two_minutes_ago = datetime.now(UTC).timestamp() - 120
    os.utime(trace, (two_minutes_ago, two_minutes_ago))
    saved({"iptables-legacy-save": LAB_RULES})
    run = run_cli("parse", "-f", "jsonl", str(trace))
    assert [record["verdict"] for record in run.records()] == ["DROP"] * 3
    assert str(earlier) in run.stderr


def test_odd_entries_in_the_state_directory_are_said(run_cli: RunCli) -> None:
    snapshot = saved({"iptables-legacy-save": DROP_RULES, "ip6tables-legacy-save": ""})
    (snapshot / "ip6tables-legacy-save").unlink()
    (snapshot / "ip6tables-legacy-save").symlink_to("/etc/passwd")
    run = run_cli("parse", "-f", "jsonl", stdin=(DOCKER / "drop.dmesg").read_text())
    assert run.status == 0
    assert [record["verdict"] for record in run.records()] == ["DROP"] * 3
    note = next(line for line in run.stderr.splitlines() if "snapshot" in line)
    assert "ip6tables-legacy-save" in note
    assert "passed over skipping" not in note  # one phrase, said once
    assert "root:" not in run.stderr  # /etc/passwd was never read


@pytest.mark.parametrize("option", ["--rules", "--names"])
def test_a_huge_side_file_is_one_line_and_costs_no_memory(option: str, run_cli: RunCli, tmp_path: Path) -> None:
    """A file given to --rules or --names past 64 MiB (a sparse file here) is refused without being read whole."""
    huge = tmp_path / "huge.txt"
    with huge.open("wb") as out:
        out.truncate(65 << 20)
    run = run_cli("parse", option, str(huge), str(DOCKER / "drop.dmesg"))
    assert run.status == 3
    assert (
        run.stderr.strip().splitlines()[-1]
        == f"tracelog: {huge} holds more than 64 MiB: no ruleset snapshot or inspect output is that big"
    )
