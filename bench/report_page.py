"""The report page of a big kernel log: its size, the time to write it, and Chromium's time to the first packets.

The input is the bench's kernel log (`bench.build`, copies of the real captures),
read as `tracelog report` reads it, with the Docker captures' names.  Chromium is
the system's (Debian's `chromium`), driven by Playwright for Python; no browser
is downloaded.  Each load is timed from the start of navigation to the page's
own mark after it drew its first packets (`tracelog-first-packets`), and to the
first `data-packet` element seen from outside; then an address filter over all
packets is timed (less the page's pause after a keystroke).  Nothing here asserts a time: it prints what it measured.

Usage (from the repository root):
    python -m bench.report_page                          # the 200k-line kernel log
    python -m bench.report_page --lines 20000 --loads 1  # a quick look
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from bench.build import OUT, ROOT, ensure

NAMES = ROOT / "samples/docker-legacy/docker-inspect.json"
CHROMIUM = Path(os.environ.get("TRACELOG_CHROMIUM", "/usr/bin/chromium"))
TYPING_PAUSE_MS = 150  # the page waits this long after a keystroke before it filters


def _counted(records: Iterable[dict[str, Any]], seen: list[int]) -> Iterator[dict[str, Any]]:
    for record in records:
        seen[0] += 1
        yield record


def write_report(log: Path, page: Path) -> tuple[int, float]:
    """Write the page of `log`; return its packets and the seconds it took, reading included."""
    import tracelog
    from tracelog.output.report import write_page

    seen = [0]
    started = time.perf_counter()
    with page.open("w", encoding="utf-8") as out:
        write_page(_counted(tracelog.read_packets([str(log)], names=[str(NAMES)]), seen), out, title=log.name)
    return seen[0], time.perf_counter() - started


def time_loads(page: Path, loads: int) -> list[dict[str, float]]:
    """Open the page `loads` times in fresh browser contexts: milliseconds to each point, and the script's heap."""
    from playwright.sync_api import sync_playwright

    arguments = ["--no-sandbox"] if os.geteuid() == 0 else []
    results = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=arguments)
        for _ in range(loads):
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            tab = context.new_page()
            started = time.perf_counter()
            tab.goto(page.as_uri(), wait_until="commit", timeout=300_000)
            tab.wait_for_selector("[data-packet]", timeout=300_000)
            seen = (time.perf_counter() - started) * 1000
            marks = tab.evaluate(
                """() => ({
                    first: performance.getEntriesByName("tracelog-first-packets")[0].startTime,
                    parsed: performance.getEntriesByType("navigation")[0].domInteractive,
                    heap: performance.memory ? performance.memory.usedJSHeapSize : 0,
                    drawn: document.querySelectorAll("[data-packet]").length,
                })"""
            )
            before = tab.inner_text("#f-count")
            started = time.perf_counter()
            tab.fill("#f-address", "192.0.2.")
            tab.wait_for_function("(before) => document.querySelector('#f-count').textContent !== before", arg=before)
            filtered = (time.perf_counter() - started) * 1000 - TYPING_PAUSE_MS
            results.append({"seen": seen, "filter": filtered, **marks})
            context.close()
        browser.close()
    return results


def _median(results: list[dict[str, float]], key: str) -> float:
    return statistics.median(result[key] for result in results)


def main(argv: Sequence[str] | None = None) -> int:
    """Build the input if needed, write its page, time the loads, print what was measured."""
    parser = argparse.ArgumentParser(prog="python -m bench.report_page", description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=200_000, help="kernel log lines (whole copies of captures)")
    parser.add_argument("--loads", type=int, default=3, help="times the page is opened")
    parser.add_argument("--out", type=Path, default=OUT, help="directory for the input and the page")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set TRACELOG_CHROMIUM)", file=sys.stderr)
        return 2
    manifest = ensure("kernel", args.lines, args.out)
    page = args.out / f"report-{manifest.path.stem}.html"
    packets, seconds = write_report(manifest.path, page)
    size = page.stat().st_size
    results = time_loads(page, args.loads)
    print(f"# The report page of {manifest.path.name} ({manifest.lines:,} lines)\n")
    python = platform.python_version()
    print(f"- machine: {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, Python {python}")
    print(f"- load average (1/5/15 min): {' / '.join(f'{value:.2f}' for value in os.getloadavg())}")
    print(f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; Chromium at {CHROMIUM}\n")
    print("| packets | page MB | bytes per packet | MB per 10,000 packets | write s (reading included) |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    per_packet = size / max(packets, 1)
    print(f"| {packets:,} | {size / 1e6:.1f} | {per_packet:.0f} | {per_packet * 10_000 / 1e6:.2f} | {seconds:.1f} |\n")
    print(
        "| load | parsed ms | first packets drawn ms | first packet seen ms | packets drawn | JS heap MB | filter ms |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for number, result in enumerate(results, start=1):
        times = " | ".join(f"{result[key]:.0f}" for key in ("parsed", "first", "seen", "drawn"))
        print(f"| {number} | {times} | {result['heap'] / 1e6:.0f} | {result['filter']:.0f} |")
    print(
        f"\nmedian: first packets drawn {_median(results, 'first'):.0f} ms after navigation started"
        f" ({_median(results, 'seen'):.0f} ms seen from outside); an address filter over all packets"
        f" {_median(results, 'filter'):.0f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
