"""The report page without a browser: its words are the timeline's, it loads nothing, it escapes every log text.

tests/browser/ opens the same pages in Chromium.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import io
import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import tracelog
from tests.samples import SAMPLES, trace_samples
from tests.test_ruleset import TRACED_WITH_SNAPSHOT
from tracelog.analyse import Summary
from tracelog.errors import UsageError
from tracelog.output.report import report_target, write_page, write_report
from tracelog.output.report.diagram import packet_diagram, step_ranges, visits
from tracelog.output.summary import print_summary
from tracelog.output.text import prepare_timeline_text
from tracelog.output.timeline import ending_text, nat_rewrites, timeline_rows
from tracelog.records.packet import PacketRecord
from tracelog.wording import escape_controls

RULES = {sample: [f"samples/{snapshot}" for snapshot in snapshots] for sample, snapshots in TRACED_WITH_SNAPSHOT}
NAMES = "samples/docker-legacy/docker-inspect.json"
Record = PacketRecord


def sample_name(path: Path) -> str:
    return path.relative_to(SAMPLES).as_posix()


def sample_records(sample: Path, *, named: bool = True) -> list[Record]:
    """A sample's records, with its ruleset snapshot where there is one, and the Docker captures' names.

    Files are named from the repository's root, as a user there names them
    (the records and notes hold the names as given).
    """
    name = sample_name(sample)
    names = [NAMES] if named and name.startswith(("docker-legacy/", "lab-legacy/")) else []
    with contextlib.chdir(SAMPLES.parent):
        return list(tracelog.read_packets([f"samples/{name}"], rules=RULES.get(name, []), names=names))


def page_of(records: list[Record], **options: Any) -> str:
    out = io.StringIO()
    write_page(records, out, **options)
    return out.getvalue()


class PageParts(HTMLParser):
    """What a page holds: every tag with its attributes, and the text of each script and style."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.styles: list[str] = []
        self._open: tuple[str, dict[str, str | None]] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in ("script", "style"):
            self._open, self._text = (tag, dict(attrs)), []

    def handle_data(self, data: str) -> None:
        if self._open:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._open and tag == self._open[0]:
            text = "".join(self._text)
            if tag == "script":
                self.scripts.append((self._open[1], text))
            else:
                self.styles.append(text)
            self._open = None


def parts_of(page: str) -> PageParts:
    parts = PageParts()
    parts.feed(page)
    parts.close()
    return parts


def page_data(page: str) -> Iterator[dict[str, Any]]:
    for attrs, text in parts_of(page).scripts:
        if attrs.get("type") == "application/json":
            data: dict[str, Any] = json.loads(text)
            yield data


# ---- the same words as the terminal ------------------------------------------------------------------


def _timeline_steps(record: Record) -> str:
    """The steps and ending as the plain timeline lays them out, from the report's cells."""
    rows = [
        [
            row.elapsed,
            row.hook_shown,
            row.place,
            row.position,
            "".join(f"{text} " for text, _ in row.changes),
            row.decision,
        ]
        for row in timeline_rows(record)
    ]
    rows = [[escape_controls(cell) for cell in row] for row in rows]
    widths = [max(map(len, column)) for column in zip(*rows, strict=True)]
    lines = ["  ".join(map(str.ljust, row, widths)).rstrip() for row in rows]
    return "\n".join([*lines, escape_controls(ending_text(record))]) + "\n\n"


@pytest.mark.parametrize("sample", trace_samples(), ids=sample_name)
def test_steps_and_endings_are_the_timelines_words(sample: Path) -> None:
    for record in sample_records(sample):
        timeline = prepare_timeline_text(record).finish(record["packet"], record["flow"])
        assert timeline.split("\n", 1)[1] == _timeline_steps(record)


def test_a_nat_rewrite_is_named_with_both_ends_where_it_happened() -> None:
    record = sample_records(SAMPLES / "lab-legacy/dnat.dmesg")[0]
    assert nat_rewrites(record) == ["dst 192.0.2.1:8080 → 172.18.0.3:80 by nat:DOCKER rule 2 (step 3)"]
    reply = sample_records(SAMPLES / "lab-legacy/dnat.dmesg")[1]
    assert nat_rewrites(reply) == []


# ---- the diagram --------------------------------------------------------------------------------------


def test_the_dropping_table_is_marked_on_the_diagram() -> None:
    record = sample_records(SAMPLES / "docker-legacy/drop.dmesg")[0]
    found = [(visit.hook, visit.table, step_ranges(visit.steps), visit.verdict) for visit in visits(record)]
    assert found == [
        ("PREROUTING", "raw", "1", None),
        ("PREROUTING", "nat", "2", None),
        ("FORWARD", "filter", "3–4", "DROP"),
    ]
    diagram = packet_diagram(record)
    assert "<title>Path: PREROUTING: raw 1, nat 2; FORWARD: filter 3–4 DROP</title>" in diagram
    assert "✕" in diagram


def test_packets_on_one_path_share_one_diagram() -> None:
    records = sample_records(SAMPLES / "docker-legacy/drop.dmesg")
    assert len({packet_diagram(record) for record in records}) == 1


def test_tables_beyond_iptables_own_get_rows_of_their_own() -> None:
    record = sample_records(SAMPLES / "lab-nft/native.nft-monitor")[0]
    assert [(visit.hook, visit.table) for visit in visits(record)][:2] == [
        ("PREROUTING", "filter"),
        ("PREROUTING", "nat"),
    ]
    many = copy.deepcopy(record)
    for number, step in enumerate(many["steps"][:4]):
        step["hook"], step["table"] = "PREROUTING", f"extra{number}"
    diagram = packet_diagram(many)
    assert "extra0" in diagram
    assert "+3 more" in diagram


# ---- one file, nothing from outside -----------------------------------------------------------------


def test_the_page_loads_nothing_and_runs_only_its_own_script_and_style() -> None:
    page = page_of(sample_records(SAMPLES / "docker-legacy/drop.dmesg"), title="drop")
    parts = parts_of(page)
    for tag, attrs in parts.tags:
        assert "src" not in attrs, tag
        for name in ("href", "xlink:href", "action", "poster", "data"):
            value = attrs.get(name)
            assert value is None or value.startswith(("#", "data:")), (tag, name, value)
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
    policy = next(attrs["content"] for tag, attrs in parts.tags if attrs.get("http-equiv") == "Content-Security-Policy")
    assert policy is not None
    assert "default-src 'none'" in policy
    code = [text for attrs, text in parts.scripts if "type" not in attrs]
    assert len(code) == 1
    assert len(parts.styles) == 1
    for text in (code[0], parts.styles[0]):
        digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy
    assert "unsafe-inline" not in policy


def _hostile(record: Record) -> Record:
    """A real record whose log texts carry markup, a script end, controls and bidirectional overrides."""
    hostile = copy.deepcopy(record)
    hostile["host"] = "<script>alert('host')</script>"
    hostile["src_name"] = "</script><img src=x onerror=alert(1)>"
    step = hostile["steps"][-1]
    step["rule"] = '-A DOCKER-USER -m comment --comment "\x1b[2J\u202e<!-- </script>" -j DROP'
    step["table"] = "<b>filter</b>"
    step["chain"] = "DOCKER-USER\x07"
    hostile["verdict_at"] = "x&y"
    return hostile


def test_log_text_is_escaped_everywhere_and_shows_its_controls() -> None:
    records = sample_records(SAMPLES / "docker-legacy/drop.dmesg")
    page = page_of([_hostile(record) for record in records], title="<title>\x1b]0;owned\x07")
    for forbidden in ("<script>alert", "<img", "<!--", "<b>filter", "\x1b", "\x07", "\u202e", "</title>\x1b"):
        assert forbidden not in page
    assert re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", page) is None
    assert page.count("</script>") == len([1 for _ in page_data(page)]) + 1
    strings = [text for data in page_data(page) for text in data.get("s", [])]
    assert any("\\x1b[2J\\u202e<!-- </script>" in text for text in strings)
    assert "<script>alert('host')</script>" in strings
    diagrams = [text for text in strings if text.startswith("<svg")]
    assert diagrams
    assert all("<b>" not in text for text in diagrams)
    assert any("&lt;b&gt;filter&lt;/b&gt;" in text for text in diagrams)


# ---- the page's parts ----------------------------------------------------------------------------------


def test_the_summary_is_plain_html_at_the_top() -> None:
    page = page_of(sample_records(SAMPLES / "docker-legacy/drop.dmesg"), title="drop")
    answer = page.index('<p class="answer">3 packets from 172.18.0.2:56586 (nginx-1) to 172.18.0.3:80 (nginx-2)')
    assert answer < page.index('id="flows"') < page.index('id="drops"') < page.index('id="rules"')
    assert page.index('id="rules"') < page.index('class="tl-data"')
    assert '<a href="#packet-1">3</a>' in page  # the drops table links its first packet
    assert '<a href="#flow-1">1</a>' in page


def test_every_packet_is_in_the_data_once_in_order() -> None:
    records = sample_records(SAMPLES / "lab-legacy/dnat.dmesg")
    packets = [packet for data in page_data(page_of(records)) for packet in data.get("p", [])]
    assert [packet[0] for packet in packets] == [record["packet"] for record in records]
    client = records[0]["src"]  # one flow: the client sent the first packet, the rest are requests or replies
    assert [packet[2] for packet in packets] == [0 if record["src"] == client else 1 for record in records]
    assert {packet[2] for packet in packets} == {0, 1}


def test_an_empty_trace_still_makes_a_page() -> None:
    page = page_of([], title="nothing")
    assert "No traced packet matches." in page
    assert page.rstrip().endswith("</html>")


def _copies(records: list[Record], count: int) -> Iterator[Record]:
    for copy_number in range(count):
        for record in records:
            copied = copy.deepcopy(record)
            copied["packet"] = copy_number * len(records) + record["packet"]
            copied["flow"] = copy_number * 100 + record["flow"]
            copied["sport"] = 1024 + copied["packet"]
            yield copied


def test_the_page_stays_small_per_packet() -> None:
    """10,000 packets in at most about 10 MB: a thousand bytes a packet, repeated texts stored once."""
    records = sample_records(SAMPLES / "lab-legacy/dnat.dmesg") + sample_records(SAMPLES / "docker-legacy/proxy.dmesg")
    count = 100
    page = page_of(list(_copies(records, count)))
    assert len(page.encode()) / (len(records) * count) < 1000


# ---- where the command writes -------------------------------------------------------------------------


def test_a_target_is_checked_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    existing = tmp_path / "old.html"
    existing.write_text("old")
    with pytest.raises(UsageError, match="exists"):
        report_target(str(existing))
    assert report_target(str(existing), force=True) == existing
    with pytest.raises(UsageError, match="is a directory"):
        report_target(str(tmp_path))
    with pytest.raises(UsageError, match="is not a directory"):
        report_target(str(tmp_path / "nowhere" / "page.html"))
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    with pytest.raises(UsageError, match="not for a terminal"):
        report_target(None)


def test_the_page_is_renamed_into_place_only_when_whole(tmp_path: Path) -> None:
    records = sample_records(SAMPLES / "docker-legacy/drop.dmesg")
    target = tmp_path / "page.html"

    def broken() -> Iterator[Record]:
        yield records[0]
        raise OSError("the log went away")

    with pytest.raises(OSError, match="went away"):
        write_report(broken(), target)
    assert list(tmp_path.iterdir()) == []
    write_report(iter(records), target, title="drop")
    assert list(tmp_path.iterdir()) == [target]
    assert target.read_text() == page_of(records, title="drop")


def test_an_interrupted_read_still_writes_what_was_read(tmp_path: Path) -> None:
    records = sample_records(SAMPLES / "docker-legacy/drop.dmesg")

    def interrupted() -> Iterator[Record]:
        yield from records[:2]
        raise KeyboardInterrupt("SIGTERM")

    with pytest.raises(KeyboardInterrupt):
        write_report(interrupted(), tmp_path / "page.html")
    packets = [packet for data in page_data((tmp_path / "page.html").read_text()) for packet in data.get("p", [])]
    assert [packet[0] for packet in packets] == [1, 2]


def test_one_packets_svg_is_redacted_as_the_page_is(tmp_path: Path) -> None:
    records = sample_records(SAMPLES / "lab-legacy/dnat.dmesg")
    write_report(iter(records), tmp_path / "p2.svg", packet=2, redact=True)
    svg = (tmp_path / "p2.svg").read_text()
    assert "#2 TCP SYN,ACK 10.2.0.3:80 (container-1) → 10.1.2.10:55580" in svg
    with pytest.raises(UsageError, match="packet 99 is not in the trace"):
        write_report(iter(records), tmp_path / "p99.svg", packet=99)
    assert not (tmp_path / "p99.svg").exists()


def test_the_summary_tables_have_the_terminals_columns() -> None:
    """`tracelog summary` prints each table's columns in an order; the page's tables follow it."""
    records = sample_records(SAMPLES / "docker-legacy/drop.dmesg")
    summary = Summary()
    for record in records:
        summary.add(record)
    printed_text = io.StringIO()
    print_summary(summary.report(), Console(file=printed_text, width=1000, color_system=None))
    printed = printed_text.getvalue().splitlines()
    page = page_of(records)
    for table, title in (("flows", "Flows"), ("drops", "Drops by rule"), ("rules", "Rules hit most")):
        header = printed[printed.index(title) + 1].split()
        section = page[page.index(f'id="{table}"') :]
        columns = re.findall(r'<th scope="col">([^<]*)</th>', section[: section.index("</thead>")])
        assert [column.replace(" ", "_") for column in columns] == header, table
