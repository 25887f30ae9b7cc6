"""`--format parquet`: a dataset pandas reads back without tracelog."""

from __future__ import annotations

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
