"""`--format parquet`: a dataset pandas reads back without tracelog."""

from __future__ import annotations

import stat
from pathlib import Path

import pandas as pd

from tests.conftest import RunCli
from tests.samples import SAMPLES


def test_parquet_dataset_holds_every_step_and_packet(run_cli: RunCli, tmp_path: Path) -> None:
    out = tmp_path / "trace.parquet"
    mixed = SAMPLES / "lab-legacy/rsyslog-traditional.log"
    dmesg = SAMPLES / "lab-legacy/dnat.dmesg"
    run = run_cli("parse", "--format", "parquet", "--output", str(out), str(mixed), str(dmesg))
    assert run.status == 0
    assert run.stdout == ""
    steps = pd.read_parquet(out / "steps")
    packets = pd.read_parquet(out / "packets")
    assert len(steps) == 280 + 94
    assert len(packets) == 44 + 13
    assert sorted(packets["host"].astype(str).unique()) == ["unknown", "vm"]  # partitioned by syslog host
    assert packets.loc[packets["rewrites"] != "", "rewrites"].str.contains("dst 192.0.2.1>172.18.0.3").any()
    assert steps["line"].dtype == "int64"


def test_parquet_needs_a_directory(run_cli: RunCli) -> None:
    run = run_cli("parse", "--format", "parquet", str(SAMPLES / "lab-legacy/ping.dmesg"))
    assert run.status == 2
    assert "needs --output" in run.stderr


def test_summary_does_not_write_parquet(run_cli: RunCli) -> None:
    assert run_cli("summary", "--format", "parquet", str(SAMPLES / "lab-legacy/ping.dmesg")).status == 2


def test_parquet_refuses_a_target_that_holds_something(run_cli: RunCli, tmp_path: Path) -> None:
    """Writing into an earlier dataset would append: every packet number twice."""
    ping = str(SAMPLES / "lab-legacy/ping.dmesg")
    out = tmp_path / "trace.parquet"
    assert run_cli("parse", "--format", "parquet", "--output", str(out), ping).status == 0
    again = run_cli("parse", "--format", "parquet", "--output", str(out), ping)
    assert again.status == 2
    assert "--force" in again.stderr
    replaced = run_cli("parse", "--format", "parquet", "--output", str(out), "--force", ping)
    assert replaced.status == 0, replaced.stderr
    packets = pd.read_parquet(out / "packets")
    assert packets["packet"].is_unique
    assert sorted(path.name for path in tmp_path.iterdir()) == ["trace.parquet"]  # nothing left beside it


def test_parquet_refuses_a_file_as_its_directory(run_cli: RunCli, tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    run = run_cli("parse", "--format", "parquet", "--output", str(target), str(SAMPLES / "lab-legacy/ping.dmesg"))
    assert run.status == 2
    assert run.stderr.count("\n") == 1
    assert target.read_text() == "keep me"


def test_summary_refuses_parquet_before_reading(run_cli: RunCli, tmp_path: Path) -> None:
    run = run_cli("summary", "--format", "parquet", str(tmp_path / "missing.log"))
    assert run.status == 2
    assert "lines from" not in run.stderr  # nothing was read


def test_parquet_directory_gets_the_mode_any_new_directory_gets(run_cli: RunCli, tmp_path: Path) -> None:
    """Written in a private temporary directory first, the dataset still ends with the umask's mode, as mkdir's."""
    out = tmp_path / "trace.parquet"
    run = run_cli("parse", "--format", "parquet", "--output", str(out), str(SAMPLES / "lab-legacy/ping.dmesg"))
    assert run.status == 0
    (tmp_path / "made").mkdir()
    assert stat.S_IMODE(out.stat().st_mode) == stat.S_IMODE((tmp_path / "made").stat().st_mode)
