"""The benchmark's pathological inputs (bench/hostile.py): each is what its title says, and the section runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench import hostile
from tracelog.events import SourceLine, TraceEvent
from tracelog.parse import LineParser

ROOT = Path(__file__).resolve().parents[2]
SIZE = 256 << 10


def events(path: Path) -> list[TraceEvent]:
    parser = LineParser(2026)
    with path.open(encoding="utf-8", errors="replace") as lines:
        return [
            outcome
            for number, text in enumerate(lines, 1)
            for outcome in parser.parse(SourceLine(path.name, number, text.rstrip("\n")))
            if isinstance(outcome, TraceEvent)
        ]


@pytest.mark.parametrize("case", [hostile.ORDINARY, *hostile.CASES], ids=lambda case: case.name)
def test_each_case_is_written_at_about_the_size_asked(case: hostile.Case, tmp_path: Path) -> None:
    path = tmp_path / "case.log"
    lines = case.write(path, SIZE)
    assert SIZE <= path.stat().st_size < SIZE + hostile.MB
    assert lines >= 1


def test_the_floods_share_one_ip_id_and_identity(tmp_path: Path) -> None:
    for case in ("fixed-id", "scanner", "identical"):
        path = tmp_path / f"{case}.dmesg"
        next(c for c in hostile.CASES if c.name == case).write(path, SIZE)
        found = events(path)
        assert len(found) > 500
        assert {event.header.ip_id for event in found} == {hostile.FIXED_IP_ID if case != "identical" else 56577}
        assert len({(event.header.dst, event.header.sport) for event in found}) > (1 if case != "identical" else 0)


def test_huge_fields_are_three_lines_of_a_quarter_each(tmp_path: Path) -> None:
    path = tmp_path / "huge.dmesg"
    hostile.CASES[[case.name for case in hostile.CASES].index("huge-fields")].write(path, 4 * SIZE)
    long_lines = [line for line in path.read_bytes().splitlines() if len(line) > SIZE // 2]
    assert len(long_lines) == 3
    assert [re.search(rb"(IN|MAC|SRC)=7{1000}", line) is not None for line in long_lines] == [True] * 3


def test_many_hosts_give_each_packet_run_its_host(tmp_path: Path) -> None:
    path = tmp_path / "hosts.log"
    hostile.CASES[[case.name for case in hostile.CASES].index("many-hosts")].write(path, SIZE)
    found = events(path)
    assert len({event.host for event in found}) > 100
    assert len({event.stamp.wallclock.hour for event in found if event.stamp.wallclock}) > 1


def test_the_section_runs_and_reports_every_case(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "bench.hostile", "--size-mb", "0.05", "--repeat", "1", "--out", str(tmp_path)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    assert "### Pathological input" in result.stdout
    for case in [hostile.ORDINARY, *hostile.CASES]:
        assert case.title in result.stdout
    assert list(tmp_path.iterdir()) == []  # the inputs are removed
