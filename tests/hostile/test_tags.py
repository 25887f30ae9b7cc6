"""A TRACE tag damaged is a TRACE line not understood, never a look-alike skipped in silence.

Each case is a real captured line with its tag damaged by substitution: a
typo in the kind or the table, a NUL or a blank inside `table:chain`, a rule
number that is none.  Whatever the format that carries the tag (the kernel
log with dmesg or syslog prefixes, ulogd's LOGEMU and JSON), the line is
listed with its place and why (exit 4), and `--strict` stops at it.  The
documented look-alikes stay look-alikes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import RunCli
from tests.samples import SAMPLES
from tracelog.errors import ExitStatus
from tracelog.events import SourceLine
from tracelog.parse import BadLine, LineParser, Skip
from tracelog.parse.kernel import DAMAGED_TAG

DAMAGE = {
    "kind": ("raw:PREROUTING:policy:3", "raw:PREROUTING:polizy:3"),
    "NUL in the chain": ("raw:PREROUTING:policy:3", "raw:PRE\x00ROUTING:policy:3"),
    "NUL in the table": ("raw:PREROUTING:policy:3", "r\x00aw:PREROUTING:policy:3"),
    "NUL for a colon": ("raw:PREROUTING:policy:3", "raw\x00PREROUTING:policy:3"),
    "blank in the chain": ("raw:PREROUTING:policy:3", "raw:PRE ROUTING:policy:3"),
    "table": ("raw:PREROUTING:policy:3", "rwa:PREROUTING:policy:3"),
    "rule number": ("raw:PREROUTING:policy:3", "raw:PREROUTING:policy:x3"),
}
# each of these captures has steps of raw:PREROUTING:policy:3
CAPTURES = {
    "dmesg": SAMPLES / "lab-legacy/tcp.dmesg",
    "syslog": SAMPLES / "lab-legacy/rsyslog-traditional.log",
    "logemu": SAMPLES / "lab-ulogd/syslogemu.log",
    "ulogd-json": SAMPLES / "lab-ulogd/ulogd.json",
}


def damaged_line(capture: str, damage: str) -> str:
    """The capture's first step of raw:PREROUTING:policy:3 with its tag damaged."""
    tag, damaged = DAMAGE[damage]
    line = next(line for line in CAPTURES[capture].read_text().splitlines() if tag in line)
    if capture == "ulogd-json":
        record = json.loads(line)
        record["oob.prefix"] = record["oob.prefix"].replace(tag, damaged)
        return json.dumps(record)
    return line.replace(tag, damaged, 1)


def outcomes(text: str) -> list[object]:
    parser = LineParser(2026)
    return [*parser.parse(SourceLine("damaged.log", 1, text)), *parser.flush()]


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("capture", CAPTURES)
def test_a_damaged_tag_is_a_trace_line_not_understood(capture: str, damage: str) -> None:
    (bad,) = outcomes(damaged_line(capture, damage))
    assert isinstance(bad, BadLine)
    assert bad.reason.startswith(DAMAGED_TAG)


@pytest.mark.parametrize(
    "text",
    [
        # ebtables' log prefix, as the look-alike capture holds it
        "[ 1375.281905] TRACE: eb: IN=veth0c95516 OUT=veth212a898 MAC source = 02:42:ac:12:00:02 proto = 0x0800",
        # a -j LOG rule with --log-prefix "TRACE: "
        "[ 1375.281940] TRACE: IN=docker0 OUT=docker0 SRC=172.18.0.2 DST=172.18.0.3 LEN=84 PROTO=ICMP TYPE=8 CODE=0",
        # a printk message from a subsystem, shaped like a trace
        "Nov 28 03:24:23 vm kernel: ip_tables: TRACE: raw:OUTPUT:policy:2 IN= OUT=lo",
        # a program's own TRACE-level messages, with colons in them
        "Nov 28 03:24:23 vm app[812]: TRACE: 12:30:45 entering handler",
        "Nov 28 03:24:23 vm app[1]: TRACE: [::1]:53",
        "Nov 28 03:24:23 vm app[1]: TRACE: fe80::1:2",
        "Nov 28 03:24:23 vm app[1]: TRACE: 12:30:45.001 main:init",
        "Nov 28 03:24:23 vm app[1]: TRACE: key:value:other IN=x",
    ],
)
def test_the_documented_look_alikes_stay_look_alikes(text: str) -> None:
    assert outcomes(text) == [Skip.LOOKALIKE]


def write_with_damage(tmp_path: Path, damage: str) -> tuple[Path, int]:
    """The dmesg capture with its 4th line's tag damaged (its kind, or a NUL in its chain); the file, the line."""
    lines = CAPTURES["dmesg"].read_text().splitlines()
    table, chain, kind, number = lines[3].split("TRACE: ")[1].split(" ")[0].split(":")
    damaged = f"{table}:{chain}:{kind}z:{number}" if damage == "kind" else f"{table}:{chain[:3]}\x00{chain[3:]}:{kind}"
    lines[3] = lines[3].replace(f"{table}:{chain}:{kind}", damaged, 1)
    path = tmp_path / "damaged.dmesg"
    path.write_text("\n".join(lines) + "\n")
    return path, 4


@pytest.mark.parametrize("damage", ["kind", "NUL"])
def test_the_cli_lists_a_damaged_tag_and_exits_4(run_cli: RunCli, tmp_path: Path, damage: str) -> None:
    path, number = write_with_damage(tmp_path, damage)
    run = run_cli("parse", "--format", "jsonl", str(path))
    assert run.status == ExitStatus.BAD_LINES
    assert f"{path}:{number}:" in run.stderr
    assert DAMAGED_TAG in run.stderr
    assert "lookalike" not in run.stderr
    assert run.records()  # the other lines are still read


def test_strict_stops_at_a_damaged_tag(run_cli: RunCli, tmp_path: Path) -> None:
    path, number = write_with_damage(tmp_path, "kind")
    run = run_cli("parse", "--format", "jsonl", "--strict", str(path))
    assert run.status == ExitStatus.BAD_LINES
    assert run.stderr.startswith(f"tracelog: {path}:{number}:")
    assert DAMAGED_TAG in run.stderr


@pytest.mark.parametrize(
    "damaged",
    [
        "f lter:OUTPUT:p\x00olicy:1",  # the table split by a blank, the kind by a NUL (hypothesis found it)
        "raw PREROUTING:polizy:3",  # a colon gone, the kind misspelt
        "r:w:PREROUTING z:3",
    ],
)
def test_a_tag_damaged_twice_is_still_a_trace_line_not_understood(damaged: str) -> None:
    """Two damages leave no table or kind word whole; what stands between the mark and `IN=` is still a tag."""
    line = CAPTURES["dmesg"].read_text().splitlines()[0]
    tag = line.split("TRACE: ")[1].split(" ")[0]
    (bad,) = outcomes(line.replace(tag, damaged, 1))
    assert isinstance(bad, BadLine)
    assert bad.reason.startswith(DAMAGED_TAG)


def test_a_damaged_tag_alone_in_a_ulogd_prefix_is_not_understood() -> None:
    """ulogd's JSON prefix holds the tag alone: damaged twice, the record is listed, not skipped."""
    record = json.loads(damaged_line("ulogd-json", "kind"))
    record["oob.prefix"] = "TRACE: r w:PREROUTING:p\x00licy:3"
    (bad,) = outcomes(json.dumps(record))
    assert isinstance(bad, BadLine)
    assert bad.reason.startswith(DAMAGED_TAG)
