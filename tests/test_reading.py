"""The library API: `tracelog.read_packets` gives the records `tracelog parse --format jsonl` prints."""

from __future__ import annotations

from pathlib import Path

import pytest

import tracelog
from tests.conftest import RunCli
from tests.samples import SAMPLES, trace_samples
from tracelog.errors import UsageError
from tracelog.events import SourceLine
from tracelog.pipeline import RunStats

DOCKER = SAMPLES / "docker-legacy"
NAMES = str(DOCKER / "docker-inspect.json")


@pytest.mark.parametrize("sample", trace_samples(), ids=lambda path: f"{path.parent.name}/{path.name}")
def test_read_packets_gives_what_the_cli_prints(sample: Path, run_cli: RunCli) -> None:
    assert list(tracelog.read_packets([str(sample)])) == run_cli("parse", "-f", "jsonl", str(sample)).records()


@pytest.mark.parametrize(
    "options",
    [
        {"rules": [str(DOCKER / "iptables-save.drop.txt")], "names": [NAMES]},
        {"rules": [str(DOCKER / "iptables-save.drop.txt")], "names": [NAMES], "verdict": "DROP", "name": "nginx-2"},
        {"names": [NAMES], "src": "172.18.0.2", "proto": "tcp", "port": 80},
        {"chain": "DOCKER-USER", "dst": "172.18.0.0/16"},
    ],
)
def test_read_packets_takes_the_cli_options(options: dict[str, object], run_cli: RunCli) -> None:
    trace = str(DOCKER / "drop.dmesg")
    argv = [
        f"--{key}={item}" for key, value in options.items() for item in (value if isinstance(value, list) else [value])
    ]
    expected = run_cli("parse", "-f", "jsonl", *argv, trace).records()
    assert expected
    assert list(tracelog.read_packets([trace], **options)) == expected  # type: ignore[arg-type]


def test_read_packets_reads_lines_and_counts_them() -> None:
    text = (DOCKER / "drop.dmesg").read_text().splitlines()
    lines = [SourceLine("paste", number, line) for number, line in enumerate(text, start=1)]
    stats = RunStats()
    records = list(tracelog.read_packets(lines, stats=stats))
    assert [record["packet"] for record in records] == [1, 2, 3]
    assert {step["source"] for record in records for step in record["steps"]} == {"paste"}
    assert (stats.lines, stats.packets) == (len(text), 3)


def test_a_name_filter_without_names_is_a_usage_error(run_cli: RunCli) -> None:
    with pytest.raises(UsageError, match="--name needs names"):
        tracelog.read_packets([str(DOCKER / "drop.dmesg")], name="nginx-2")
    run = run_cli("parse", "--name", "nginx-2", str(DOCKER / "drop.dmesg"))
    assert run.status == 2
    assert run.stderr.startswith("tracelog: --name needs names to match")


def test_summarise_gives_the_tables_tracelog_summary_prints(run_cli: RunCli) -> None:
    """`tracelog.summarise` holds every row and the answer of `tracelog summary --format jsonl`."""
    trace, rules = str(DOCKER / "drop.dmesg"), str(DOCKER / "iptables-save.drop.txt")
    printed = run_cli("summary", "-f", "jsonl", "--rules", rules, trace).records()
    report = tracelog.summarise([trace], rules=[rules])
    assert {"section": "answer", "text": report.answer} == printed[-1]
    assert "DROP" in report.answer
    rows = [
        {"section": section, **row} for section, frame in report.tables().items() for row in frame.to_dict("records")
    ]
    assert len(rows) == len(printed) - 1
    for row, shown in zip(rows, printed, strict=False):
        assert shown["section"] == row["section"]
        assert {key: value for key, value in shown.items() if value is not None} == {
            key: value for key, value in row.items() if shown.get(str(key)) is not None
        }
