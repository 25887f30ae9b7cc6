"""One packet's diagram as a standalone SVG (`tracelog report --packet N --format svg`), pinned by golden files.

Regenerate on purpose with `TRACELOG_UPDATE_GOLDEN=1 pytest tests/test_report_svg.py` and read the diff.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.samples import SAMPLES
from tests.test_report import sample_records
from tracelog.output.report import packet_svg

GOLDEN = Path(__file__).parent / "golden"
SVG = "{http://www.w3.org/2000/svg}"
# (sample, packet): a drop in DOCKER-USER, a DNAT'ed packet with names, a native nf_tables ruleset's
# own tables, a local packet looping back through lo, and an IPv6 packet
CASES = [
    ("docker-legacy/drop.dmesg", 1),
    ("lab-legacy/dnat.dmesg", 1),
    ("lab-nft/native.nft-monitor", 1),
    ("lab-legacy/loopback.dmesg", 1),
    ("lab-legacy/ipv6-ping.dmesg", 1),
]


@pytest.mark.parametrize(("sample", "packet"), CASES, ids=[f"{sample}#{packet}" for sample, packet in CASES])
def test_packet_svg_matches_golden_file(sample: str, packet: int) -> None:
    record = next(r for r in sample_records(SAMPLES / sample) if r["packet"] == packet)
    svg = packet_svg(record)
    golden = GOLDEN / f"report-{sample.replace('/', '__')}-{packet}.svg"
    if os.environ.get("TRACELOG_UPDATE_GOLDEN"):
        golden.write_text(svg)
    assert svg == golden.read_text()


def test_packet_svg_is_one_standalone_document() -> None:
    record = sample_records(SAMPLES / "docker-legacy/drop.dmesg")[0]
    root = ET.fromstring(packet_svg(record).split("\n", 1)[1])
    assert root.tag == f"{SVG}svg"
    title = root.find(f"{SVG}title")
    assert title is not None
    assert title.text == "Path: PREROUTING: raw 1, nat 2; FORWARD: filter 3–4 DROP"
    ids = {element.get("id") for element in root.iter() if element.get("id")}
    assert {"tl-hooks", "tl-arrow", "tl-arrow-on"} <= ids
    texts = "\n".join(element.text or "" for element in root.iter(f"{SVG}text"))
    assert "#1 TCP SYN 172.18.0.2:56586 (nginx-1) → 172.18.0.3:80 (nginx-2)" in texts
    assert "DROPPED by filter DOCKER-USER rule 1" in texts
