"""The report page in Chromium: every sample opens offline, each packet drawn once, verdicts marked where they fell.

Each test writes its page with the library (`tracelog.output.report.write_page`) and
opens the file; screenshots of every page go to the folder printed at the end.
"""

from __future__ import annotations

import copy
import io
import re
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import OpenedPage, OpenPage
from tests.samples import SAMPLES, trace_samples
from tests.test_report import sample_name, sample_records
from tracelog.output.report import packet_svg, write_page
from tracelog.output.timeline import describe, timeline_rows
from tracelog.records.packet import PacketRecord, step_names

Record = PacketRecord
_PACKETS_SEEN = """() => Array.from(document.querySelectorAll('[data-packet]')).map(card => [
    Number(card.dataset.packet),
    card.querySelector('h4').textContent,
    Array.from(card.querySelectorAll('[data-verdict]')).map(step => [Number(step.dataset.step), step.dataset.verdict]),
    card.querySelectorAll('svg.hooks').length,
])"""


def write(records: list[Record], path: Path, **options: Any) -> Path:
    with path.open("w", encoding="utf-8") as out:
        write_page(records, out, **options)
    return path


def shoot(opened: OpenedPage, screenshots: Path, name: str, *, full: bool = True) -> Path:
    path = screenshots / f"{re.sub(r'[^A-Za-z0-9.-]+', '_', name)}.png"
    opened.page.screenshot(path=str(path), full_page=full)
    return path


def shown_packets(opened: OpenedPage) -> list[int]:
    return [number for number, *_ in opened.page.evaluate(_PACKETS_SEEN)]


@pytest.mark.parametrize("sample", trace_samples(), ids=sample_name)
def test_every_sample_opens_offline_with_each_packet_once(
    sample: Path, open_page: OpenPage, screenshots: Path, tmp_path: Path
) -> None:
    records = sample_records(sample)
    opened = open_page(write(records, tmp_path / "report.html", title=sample_name(sample)))
    opened.show_all()
    seen = opened.page.evaluate(_PACKETS_SEEN)
    assert sorted(number for number, *_ in seen) == [record["packet"] for record in records]
    by_number = {record["packet"]: record for record in records}
    for number, title, decided, diagrams in seen:
        record = by_number[number]
        assert diagrams == 1
        # the title is the timeline's: names, and where destination NAT sent the packet
        assert title.startswith(f"#{number} {describe(record)} flow {record['flow']}")
        expected = [[record["verdict_step"], record["verdict"]]] if record["verdict"] else []
        assert decided == expected, number
    shoot(opened, screenshots, sample_name(sample))
    opened.assert_self_contained()


@pytest.mark.parametrize(
    ("sample", "rule"),
    [
        ("docker-legacy/drop.dmesg", "-s 172.18.0.2/32 -d 172.18.0.3/32 -p tcp -m tcp --dport 80 -j DROP"),
        ("lab-legacy/drop.dmesg", "-s 172.18.0.2/32 -d 172.18.0.3/32 -p tcp -m tcp --dport 8080 -j DROP"),
        ("lab-nft/drop.nft-monitor", "ip saddr 172.18.0.2 ip daddr 172.18.0.3 tcp dport 8080 counter drop"),
        ("lab-nft/drop.xtables-monitor", "-s 172.18.0.2/32 -d 172.18.0.3/32 -p tcp -m tcp --dport 8080 -j DROP"),
    ],
)
def test_the_dropping_rule_is_marked_at_its_step(
    sample: str, rule: str, open_page: OpenPage, screenshots: Path, tmp_path: Path
) -> None:
    records = sample_records(SAMPLES / sample)
    dropped = [record for record in records if record["verdict"] == "DROP"]
    assert dropped
    opened = open_page(write(records, tmp_path / "drop.html"))
    page = opened.page
    for record in dropped:
        card = page.locator(f'[data-packet="{record["packet"]}"]')
        marked = card.locator('[data-verdict="DROP"]')
        assert marked.count() == 1
        assert marked.get_attribute("data-step") == str(record["verdict_step"])
        assert "DOCKER-USER" in marked.inner_text()
        assert rule in marked.inner_text()
        assert "v-drop" in (card.get_attribute("class") or "")
        assert card.locator(".ending").inner_text().startswith("DROPPED by ")
        # the diagram: the packet stops in the filter table of FORWARD
        assert "FORWARD: filter" in (card.locator("svg.hooks > title").text_content() or "")
        assert " DROP" in (card.locator("svg.hooks > title").text_content() or "")
        red = page.evaluate("(el) => getComputedStyle(el).color", card.locator(".ending strong").element_handle())
        assert red == "rgb(179, 38, 30)"
    shoot(opened, screenshots, f"dropped-{sample}")
    opened.assert_self_contained()


def test_names_and_nat_rewrites_are_shown(open_page: OpenPage, screenshots: Path, tmp_path: Path) -> None:
    records = sample_records(SAMPLES / "lab-legacy/dnat.dmesg")
    opened = open_page(write(records, tmp_path / "dnat.html"))
    page = opened.page
    first = page.locator('[data-packet="1"]')
    assert "192.0.2.10:55580 → 192.0.2.1:8080 → 172.18.0.3:80 (nginx-2)" in first.locator("h4").inner_text()
    assert first.locator(".nat-line").inner_text().strip() == (
        "NAT dst 192.0.2.1:8080 → 172.18.0.3:80 by nat:DOCKER rule 2 (step 3)"
    )
    step = first.locator('[data-step="4"]')
    assert step.locator(".change.nat").all_inner_texts() == ["NAT dst 192.0.2.1 → 172.18.0.3", "NAT dport 8080 → 80"]
    assert "2–3 DNAT" in (first.locator("svg.hooks").text_content() or "")
    reply = page.locator('[data-packet="2"]')
    assert reply.locator("h4").inner_text().startswith("#2 TCP SYN,ACK 172.18.0.3:80 (nginx-2) → 192.0.2.10:55580")
    # request and reply side by side
    request_box, reply_box = first.bounding_box(), reply.bounding_box()
    assert request_box is not None
    assert reply_box is not None
    assert abs(request_box["y"] - reply_box["y"]) < 1
    assert reply_box["x"] > request_box["x"] + request_box["width"]
    options = page.locator("#f-name option").all_inner_texts()
    assert "nginx-2" in options
    shoot(opened, screenshots, "dnat-names-first-screen", full=False)
    opened.assert_self_contained()


def _addresses(record: Record) -> set[str]:
    return {record["src"], record["dst"]} | {step[key] for step in record["steps"] for key in ("src", "dst")}


def _names(record: Record) -> set[str | None]:
    return {record["src_name"], record["dst_name"], record["endpoint_name"]} | {
        name for step in record["steps"] for name in step_names(step)
    }


def _expected(records: list[Record], test: Any) -> list[int]:
    return [record["packet"] for record in records if test(record)]


def test_filters_by_container_address_verdict_chain_and_rule_text(open_page: OpenPage, tmp_path: Path) -> None:
    records = sample_records(SAMPLES / "docker-legacy/proxy.dmesg") + [
        {**record, "packet": record["packet"] + 100, "flow": record["flow"] + 10}
        for record in sample_records(SAMPLES / "docker-legacy/drop.dmesg")
    ]
    opened = open_page(write(records, tmp_path / "filters.html"))
    page = opened.page
    count = page.locator("#f-count")

    page.select_option("#f-verdict", "DROP")
    opened.show_all()
    assert shown_packets(opened) == _expected(records, lambda r: r["verdict"] == "DROP") == [101, 102, 103]
    assert count.inner_text() == f"3 of {len(records)} packets match in 1 flow"
    page.select_option("#f-verdict", "")

    page.select_option("#f-chain", "filter:DOCKER-USER")
    opened.show_all()
    assert shown_packets(opened) == _expected(records, lambda r: any(s["chain"] == "DOCKER-USER" for s in r["steps"]))
    page.select_option("#f-chain", "")

    page.fill("#f-rule", "ADDRTYPE --dst-type local")
    page.wait_for_function("() => document.querySelector('#f-count').textContent.includes(' of ')")
    opened.show_all()
    wanted = _expected(
        records, lambda r: any("addrtype --dst-type local" in row.decision.lower() for row in timeline_rows(r))
    )
    assert 0 < len(wanted) < len(records)
    assert shown_packets(opened) == wanted
    page.fill("#f-rule", "")

    page.select_option("#f-name", "nginx-1")
    opened.show_all()
    assert shown_packets(opened) == _expected(
        records,
        lambda r: (
            "nginx-1"
            in {r["src_name"], r["dst_name"], r["endpoint_name"]}
            | {s[k] for s in r["steps"] for k in ("in_name", "out_name", "physin_name", "physout_name")}
        ),
    )
    page.select_option("#f-name", "")

    page.fill("#f-address", "172.18.0.3")
    page.wait_for_function("() => document.querySelector('#f-count').textContent.includes(' of ')")
    opened.show_all()
    assert shown_packets(opened) == _expected(
        records,
        lambda r: any(
            "172.18.0.3" in a for a in [r["src"], r["dst"]] + [s[k] for s in r["steps"] for k in ("src", "dst")]
        ),
    )
    page.fill("#f-address", "")
    page.wait_for_function("() => !document.querySelector('#f-count').textContent.includes(' of ')")

    page.uncheck("#f-flows")
    opened.show_all()
    assert shown_packets(opened) == [record["packet"] for record in records]
    assert page.locator(".flow-head").count() == 0
    opened.assert_self_contained()


def test_keyboard_and_links_to_a_packet(open_page: OpenPage, tmp_path: Path) -> None:
    records = sample_records(SAMPLES / "lab-legacy/dnat.dmesg")
    path = write(records, tmp_path / "keys.html")
    opened = open_page(path)
    page = opened.page
    page.keyboard.press("j")
    assert page.evaluate("document.activeElement.dataset.packet") == "1"
    page.keyboard.press("j")
    assert page.evaluate("document.activeElement.dataset.packet") == "2"
    page.keyboard.press("k")
    assert page.evaluate("document.activeElement.dataset.packet") == "1"
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "f-rule"
    page.keyboard.type("j")  # typed into the field, not a jump
    assert page.input_value("#f-rule") == "j"
    page.keyboard.press("Escape")
    assert page.evaluate("document.activeElement.id") != "f-rule"
    opened.assert_self_contained()
    linked = open_page(path, "#packet-9")
    assert linked.page.evaluate("document.activeElement.dataset.packet") == "9"
    linked.page.click('a[href="#flow-1"]')
    assert linked.page.evaluate("document.activeElement.id") == "flow-1"
    linked.assert_self_contained()


def _contrast(page: Any, selector: str) -> float:
    """The contrast ratio of an element's text against white, as WCAG defines it."""
    script = """(selector) => {
        const [r, g, b] = getComputedStyle(document.querySelector(selector)).color.match(/\\d+/g).map(Number);
        const lin = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
        const l = 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
        return 1.05 / (l + 0.05);
    }"""
    ratio: float = page.evaluate(script, selector)
    return ratio


def test_text_is_readable_and_the_page_prints(open_page: OpenPage, screenshots: Path, tmp_path: Path) -> None:
    records = sample_records(SAMPLES / "docker-legacy/drop.dmesg")
    opened = open_page(write(records, tmp_path / "print.html"))
    page = opened.page
    for selector in ("body", ".made", ".answer", "table.summary th", ".ending strong", "ol.steps .time", ".flow-facts"):
        assert _contrast(page, selector) >= 4.5, selector
    page.emulate_media(media="print")
    assert not page.locator("#filters").is_visible()
    assert page.locator("[data-packet]").count() == len(records)
    shoot(opened, screenshots, "printed-drop")
    page.pdf(path=str(tmp_path / "drop.pdf"))
    assert (tmp_path / "drop.pdf").stat().st_size > 1000
    opened.assert_self_contained()


def test_a_big_page_draws_packets_as_they_are_scrolled_to(open_page: OpenPage, tmp_path: Path) -> None:
    base = sample_records(SAMPLES / "lab-legacy/dnat.dmesg") + sample_records(SAMPLES / "docker-legacy/proxy.dmesg")
    records: list[Record] = []
    for copy_number in range(60):
        for record in base:
            copied = copy.deepcopy(record)
            copied["packet"] = len(records) + 1
            copied["flow"] = copy_number * 10 + record["flow"]
            records.append(copied)
    opened = open_page(write(records, tmp_path / "big.html"))
    page = opened.page
    first = page.locator("[data-packet]").count()
    assert 0 < first < len(records)
    page.mouse.wheel(0, 30000)
    page.wait_for_function(f"() => document.querySelectorAll('[data-packet]').length > {first}")
    opened.show_all()
    assert page.locator("[data-packet]").count() == len(records)
    opened.assert_self_contained()


def test_a_redacted_page_opens_and_shows_tokens(open_page: OpenPage, screenshots: Path, tmp_path: Path) -> None:
    records = sample_records(SAMPLES / "lab-legacy/dnat.dmesg")
    opened = open_page(write(records, tmp_path / "redacted.html", title="redacted dnat", redact=True))
    text = opened.page.inner_text("body")
    assert "nginx" not in text
    assert "172.18." not in text
    assert "10.1.2.1:8080 → 10.2.0.3:80 (container-1)" in text
    shoot(opened, screenshots, "redacted-dnat", full=False)
    opened.assert_self_contained()


def test_the_standalone_svg_opens_on_its_own(open_page: OpenPage, screenshots: Path, tmp_path: Path) -> None:
    record = sample_records(SAMPLES / "lab-legacy/dnat.dmesg")[0]
    path = tmp_path / "packet-1.svg"
    path.write_text(packet_svg(record), encoding="utf-8")
    wrapper = tmp_path / "svg.html"
    wrapper.write_text(f'<!doctype html><title>svg</title><img src="{path.name}" alt="packet 1">', encoding="utf-8")
    opened = open_page(wrapper, report=False)
    image = opened.page.locator("img")
    opened.page.wait_for_function("() => document.querySelector('img').complete")
    assert opened.page.evaluate("document.querySelector('img').naturalWidth") == 670
    image.screenshot(path=str(screenshots / "packet-1.svg.png"))
    assert opened.errors == []
    assert [url for url in opened.requests if not url.startswith("file:")] == []


def test_a_page_written_to_a_stream_is_the_same(tmp_path: Path) -> None:
    """The library writes to any text stream; a file and a string buffer get the same page."""
    records = sample_records(SAMPLES / "docker-legacy/drop.dmesg")
    buffer = io.StringIO()
    write_page(records, buffer, title="t")
    assert write(records, tmp_path / "same.html", title="t").read_text(encoding="utf-8") == buffer.getvalue()


def test_a_long_flow_is_collapsed_and_opens_on_request(open_page: OpenPage, screenshots: Path, tmp_path: Path) -> None:
    base = sample_records(SAMPLES / "docker-legacy/drop.dmesg")
    records: list[Record] = []
    for _ in range(15):  # one flow of 45 dropped SYNs, then a flow of its own
        for record in base:
            records.append({**record, "packet": len(records) + 1})
    for record in sample_records(SAMPLES / "lab-legacy/dnat.dmesg"):
        records.append({**record, "packet": len(records) + 1, "flow": 2})
    path = write(records, tmp_path / "long.html")
    opened = open_page(path)
    page = opened.page
    assert not page.locator("#more").is_visible()  # two flows: every row is drawn, the long flow's first packets
    flow_one = [number for number in shown_packets(opened) if number <= 45]
    assert flow_one == list(range(1, 13))
    # flow 2 is drawn whole: its 13th packet is the reply beside the 12th
    assert shown_packets(opened)[12:] == list(range(46, 59))
    assert page.locator(".expand").count() == 1
    page.locator(".expand button").first.click()
    assert page.evaluate("document.activeElement.dataset.packet") == "13"
    assert [number for number in shown_packets(opened) if number <= 45] == list(range(1, 46))
    shoot(opened, screenshots, "long-flow-opened", full=False)
    page.uncheck("#f-diagrams")
    assert not page.locator("[data-packet='1'] .diagram").is_visible()
    opened.assert_self_contained()
    linked = open_page(path, "#packet-58")
    assert linked.page.evaluate("document.activeElement.dataset.packet") == "58"
    linked.assert_self_contained()
