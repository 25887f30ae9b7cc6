"""Hand-made damaged pastes of real captures, their timelines pinned by golden files (tests/golden/damage/).

One or two per kind of damage a paste suffers: elided, redacted, blanks
inside fields, quoted, a monitor's excerpt started mid-packet, records
wrapped over lines, another tool's rendering cut, a non-IP packet redacted.  Regenerate
on purpose with `TRACELOG_UPDATE_GOLDEN=1 pytest tests/test_damage_golden.py`
and read the diff.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import RunCli
from tests.samples import SAMPLES

GOLDEN = Path(__file__).parent / "golden" / "damage"


def first_lines(sample: str, count: int) -> list[str]:
    return (SAMPLES / sample).read_text().splitlines()[:count]


def elided() -> list[str]:
    """A dmesg ping, fields elided three ways: a run, a value, everything after the interfaces."""
    lines = first_lines("docker-legacy/ping.dmesg", 10)
    lines[0] = re.sub(r" MAC=\S+", " MAC=...", lines[0])
    lines[2] = lines[2].replace("LEN=84 TOS=0x00 PREC=0x00 TTL=64 ", "[..] ")
    lines[4] = lines[4][: lines[4].index(" SRC=")] + " …"
    return lines


def redacted() -> list[str]:
    """The same ping with its addresses and MACs hidden, as people post them."""
    text = "\n".join(first_lines("docker-legacy/ping.dmesg", 10))
    text = text.replace("172.18.0.2", "x.x.x.x").replace("172.18.0.3", "<redacted>")
    return re.sub(r"MAC=\S+", "MAC=xxx", text).splitlines()


def blanks() -> list[str]:
    """Blanks slipped into fields by a mail client."""
    lines = first_lines("docker-legacy/ping.dmesg", 10)
    lines[0] = lines[0].replace("TTL=64", "TT L=64")
    lines[1] = lines[1].replace("PREC=0x00", "PR EC=0x00")
    lines[2] = lines[2].replace("TTL=64", "TTL=6 4")
    return lines


def quoted() -> list[str]:
    """A Markdown quote of `grep -n` output, one remark at the end of a line."""
    lines = [f"> {number}:{text}" for number, text in enumerate(first_lines("docker-legacy/ping.dmesg", 10), 120)]
    lines[3] = lines[3].rstrip() + "  # <- dropped here?"
    return ["$ dmesg | grep -n TRACE", *lines]


def nft_excerpt() -> list[str]:
    """`nft monitor trace` pasted from the middle of a packet, its first packet line trimmed."""
    return first_lines("lab-nft/ping.nft-monitor", 14)[1:]


def xtables_cut() -> list[str]:
    """`xtables-monitor --trace` whose second packet line was cut short with `..`."""
    lines = first_lines("lab-nft/ping.xtables-monitor", 14)
    lines[3] = lines[3][: lines[3].index(" SRC=")] + " .."
    return lines


def wrapped_json() -> list[str]:
    """ulogd JSON records pasted from a terminal 100 columns wide: each record wrapped over several lines."""
    return [text[at : at + 100] for text in first_lines("lab-ulogd/ulogd.json", 3) for at in range(0, len(text), 100)]


def tshark_cut() -> list[str]:
    """`tshark -T fields` pasted with a column cut short and another line's addresses redacted."""
    lines = first_lines("lab-tshark/prefix-ip.tshark", 6)
    lines[1] = lines[1][: lines[1].index(", Dst:")] + " …"
    lines[3] = re.sub(r"10\.98\.0\.\d", "x.x.x.x", lines[3])
    return lines


def arp_redacted() -> list[str]:
    """`nft monitor trace` of ARP through a bridge, its MAC addresses hidden."""
    return [
        re.sub(r"(ether [sd]addr) \S+", r"\1 xx:xx:xx:xx:xx:xx", text)
        for text in first_lines("lab-arp/bridge.nft-monitor", 12)
    ]


CASES: dict[str, Callable[[], list[str]]] = {
    "elided.dmesg": elided,
    "redacted.dmesg": redacted,
    "blanks.dmesg": blanks,
    "quoted.dmesg": quoted,
    "excerpt.nft-monitor": nft_excerpt,
    "cut.xtables-monitor": xtables_cut,
    "wrapped.ulogd-json": wrapped_json,
    "cut.tshark": tshark_cut,
    "redacted-arp.nft-monitor": arp_redacted,
}


@pytest.mark.parametrize("name", CASES)
def test_damaged_paste_matches_golden_file(name: str, run_cli: RunCli, tmp_path: Path) -> None:
    paste = tmp_path / name
    paste.write_text("\n".join(CASES[name]()) + "\n")
    run = run_cli("parse", "--format", "table", str(paste))
    assert run.status == 0, run.stderr
    golden = GOLDEN / f"{name}.table"
    if os.environ.get("TRACELOG_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(run.stdout)
    assert run.stdout == golden.read_text()


def test_a_packet_grouped_on_a_guess_says_so_and_shows_the_header_first_seen(run_cli: RunCli) -> None:
    """The excerpt's steps without their packet line joined the next hook's by trace id: `guessed: grouping`."""
    (record, *_) = run_cli("parse", "-f", "jsonl", stdin="\n".join(nft_excerpt()) + "\n").records()
    assert record["partial"]["guessed"] == ["header", "grouping"]
    assert record["steps"][0]["partial"]["guessed"] == ["header"]
    assert record["steps"][0]["src"] == "?"
    assert (record["src"], record["dst"], record["proto"]) == ("172.18.0.2", "172.18.0.3", "ICMP")
