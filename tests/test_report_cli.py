"""`tracelog report` on the command line: what it writes, and what it refuses in one line."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import RunCli
from tests.samples import SAMPLES

DOCKER = SAMPLES / "docker-legacy"
DROP = str(DOCKER / "drop.dmesg")
NAMED = ("--rules", str(DOCKER / "iptables-save.drop.txt"), "--names", str(DOCKER / "docker-inspect.json"))


def test_the_page_holds_every_packet_and_the_answer(run_cli: RunCli, tmp_path: Path) -> None:
    page = tmp_path / "trace.html"
    run = run_cli("report", *NAMED, DROP, "-o", str(page))
    assert run.status == 0, run.stderr
    html = page.read_text()  # packets are drawn by the page's script: tests/browser looks at them
    assert "3 packets in 1 flow" in html
    assert "dropped by filter DOCKER-USER rule 1" in html
    assert "nginx-2" in html


def test_a_redacted_page_names_no_address_or_container(run_cli: RunCli, tmp_path: Path) -> None:
    page = tmp_path / "share.html"
    assert run_cli("report", "--redact", *NAMED, DROP, "-o", str(page)).status == 0
    html = page.read_text()
    assert "172.18.0.2" not in html
    assert "nginx-1" not in html
    assert "-j DROP" in html  # rules stay


def test_one_packet_as_svg(run_cli: RunCli, tmp_path: Path) -> None:
    svg = tmp_path / "p1.svg"
    assert run_cli("report", "--packet", "1", "--format", "svg", *NAMED, DROP, "-o", str(svg)).status == 0
    assert "<svg " in svg.read_text()
    assert "DROP" in svg.read_text()


def test_what_report_refuses(run_cli: RunCli, tmp_path: Path) -> None:
    page = tmp_path / "trace.html"
    page.write_text("an earlier page")
    kept = run_cli("report", DROP, "-o", str(page))
    assert kept.status == 2
    assert "--force" in kept.stderr
    assert page.read_text() == "an earlier page"
    assert run_cli("report", DROP, "-o", str(page), "--force").status == 0
    assert run_cli("report", "--format", "svg", DROP, "-o", str(tmp_path / "x.svg")).status == 2
    missing = run_cli("report", "--packet", "99", "--format", "svg", DROP, "-o", str(tmp_path / "y.svg"))
    assert missing.status == 2
    assert missing.stderr.strip().splitlines()[-1].startswith("tracelog: ")


def test_parse_redact_names_no_address_or_container_in_any_format(run_cli: RunCli, tmp_path: Path) -> None:
    for output in ("jsonl", "table", "csv"):
        run = run_cli("parse", "--redact", "-f", output, *NAMED, DROP)
        assert run.status == 0, run.stderr
        assert "172.18.0." not in run.stdout
        assert "nginx" not in run.stdout
        assert "-j DROP" in run.stdout
    records = run_cli("parse", "--redact", "-f", "jsonl", *NAMED, DROP).records()
    assert len({record["src"] for record in records}) == 1  # one value, one token, every time
    assert [record["packet"] for record in records] == [1, 2, 3]
