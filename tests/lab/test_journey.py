"""Root lab: the README's journey on a real Docker host, from a plain `pip install .`, on both backends.

For the legacy backend, then the nft one, Docker runs nginx-1 and nginx-2 on
docker0 (no IPv6 rules), DOCKER-USER drops nginx-2's pings to nginx-1, and the
commands a user types run as written with the installed `tracelog`: the
doctor, `enable`, the traffic (a ping each way, both with echo id 1, and an
HTTP fetch), every reader the README names without `--rules` (`dmesg`, `tail
-f` on syslog files in both of rsyslog's formats, `tracelog summary`,
`xtables-monitor --trace`, `nft monitor trace`, `--names docker`), `status`,
`disable`, then `watch`.  The tests judge what each command printed against
what the kernel did: the TRACE rules' counters, the rule that decided each
packet, the rulesets before and after.

Each backend's journey is walked once, on first use, and Docker is stopped
and the host restored before any test judges it.  Needs root, br_netfilter,
docker.io and busybox-static (.ci/docker-setup.sh); skips when dockerd cannot
start.  About 70 s on two cores, a third of it `pip install .`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.lab import dockerlab
from tests.lab import journey as jr
from tests.lab.journey import Journey

pytestmark = [pytest.mark.lab, pytest.mark.root_only]

Record = dict[str, Any]
BACKENDS: tuple[dockerlab.Backend, ...] = ("legacy", "nft")
TABLE_READERS: dict[dockerlab.Backend, tuple[str, ...]] = {
    "legacy": (jr.DMESG, jr.TAIL_SYSLOG, jr.TAIL_KERN_LOG, jr.NAMES_KERN_LOG, jr.WATCH),
    "nft": (jr.XTABLES_MONITOR, jr.NFT_MONITOR, jr.NAMES_XTABLES, jr.WATCH),
}
LIVE_READERS = {backend: (*jr.LIVE_READERS[backend], *jr.WATCHES) for backend in BACKENDS}
JSONL_READERS: dict[dockerlab.Backend, tuple[str, ...]] = {
    "legacy": (jr.DMESG_JSONL,),
    "nft": (jr.XTABLES_JSONL, jr.NFT_JSONL),
}
SUMMARIES: dict[dockerlab.Backend, tuple[str, ...]] = {
    "legacy": (jr.SUMMARY_KERN_LOG,),
    "nft": (jr.SUMMARY_XTABLES, jr.SUMMARY_NFT),
}
ALL_READERS = {backend: (*LIVE_READERS[backend], *jr.OFFLINE_READERS[backend]) for backend in BACKENDS}
INTERRUPTED = 130
# `ACCEPTED by filter FORWARD rule 6: …`, `… handle 14: …`, `DROPPED by a rule of filter DOCKER-USER: …`
DECIDED_IN_FILTER = re.compile(r"(ACCEPTED|DROPPED) by (a rule of )?filter (?P<chain>FORWARD|DOCKER[-\w]*)\b")


def per_backend(readers: dict[dockerlab.Backend, tuple[str, ...]]) -> list[Any]:
    """(backend, command) parameters."""
    return [
        pytest.param(backend, command, id=f"{backend}: {command}")
        for backend, commands in readers.items()
        for command in commands
    ]


def only(backend: dockerlab.Backend) -> pytest.MarkDecorator:
    """A test of one backend's journey."""
    return pytest.mark.parametrize("backend", [backend])


class Journeys:
    """Each backend's journey, walked on first use and only once; Docker is stopped before any test judges it."""

    def __init__(self, tracelog: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tracelog = tracelog
        self._tmp_path_factory = tmp_path_factory
        self._walked: dict[dockerlab.Backend, Journey | BaseException] = {}

    def __call__(self, backend: dockerlab.Backend) -> Journey:
        if backend not in self._walked:
            try:
                self._walked[backend] = self._walk(backend)
            except (Exception, pytest.skip.Exception) as error:  # the next test gets it again, without a walk
                self._walked[backend] = error
        walked = self._walked[backend]
        if isinstance(walked, BaseException):
            raise walked
        return walked

    def _walk(self, backend: dockerlab.Backend) -> Journey:
        try:
            dockerlab.require_tools()
        except dockerlab.DockerUnavailable as err:
            pytest.skip(f"the Docker lab cannot run here: {err}")
        workdir = self._tmp_path_factory.mktemp(f"journey-{backend}")
        shell = jr.Shell(self._tracelog, workdir / "state")
        try:
            with dockerlab.docker_lab(workdir / "docker-logs", backend):
                return jr.walk(backend, shell, workdir)
        except dockerlab.DockerUnavailable as err:
            pytest.skip(f"dockerd cannot run here: {err}")


@pytest.fixture(scope="module")
def journeys(tmp_path_factory: pytest.TempPathFactory) -> Journeys:
    """`tracelog` from `python3 -m venv V && V/bin/pip install .`, and the journeys walked with it."""
    jr.echo("pip install . into a fresh virtual environment")
    tracelog = jr.plain_install(tmp_path_factory.mktemp("plain-install") / "venv")
    return Journeys(tracelog, tmp_path_factory)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> dockerlab.Backend:
    """Both backends, unless a test names one."""
    backend: dockerlab.Backend = request.param
    return backend


@pytest.fixture
def walked(journeys: Journeys, backend: dockerlab.Backend) -> Journey:
    """The journey on `backend`."""
    return journeys(backend)


def lab_packets(walk: Journey, command: str) -> list[jr.Timeline]:
    """The lab's packets among the timelines a reader printed."""
    return [shown for shown in jr.timelines(walk.readers[command].stdout) if walk.mine(shown)]


def lab_records(walk: Journey, command: str) -> list[Record]:
    """The lab's packets among the JSON lines a reader printed."""
    records = [json.loads(line) for line in walk.readers[command].stdout.splitlines() if line.startswith("{")]
    lab = {dockerlab.NGINX_1_IP, dockerlab.NGINX_2_IP}
    if walk.backend == "legacy":
        return [r for r in records if any(step["physin"] in walk.veths for step in r["steps"])]
    return [r for r in records if {r["src"], r["dst"]} == lab]


def flows(summary: str) -> list[dict[str, str]]:
    """The rows of the summary's Flows table, cut at the header's column starts."""
    if "Flows\n" not in summary:
        return []
    lines = summary.split("Flows\n", 1)[1].split("\n\n", 1)[0].splitlines()
    header = lines[0]
    starts = [match.start() for match in re.finditer(r"\S+", header)]
    names = header.split()
    rows = []
    for line in lines[1:]:
        cells = [line[start:end].strip() for start, end in zip(starts, [*starts[1:], None], strict=True)]
        rows.append(dict(zip(names, cells, strict=True)))
    return rows


def shown(typed: jr.Typed) -> str:
    return f"\n{typed}"


# --- the README as typed ------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        jr.DOCTOR,
        jr.ENABLES[2],
        jr.STATUS,
        jr.DISABLE,
        jr.DMESG,
        jr.TAIL_SYSLOG,
        jr.XTABLES_MONITOR,
        jr.NFT_MONITOR,
    ],
)
def test_the_journey_types_the_readmes_commands(command: str) -> None:
    assert command in jr.readme_commands()


# --- doctor, enable -----------------------------------------------------------------


def test_doctor_says_tracing_works(walked: Journey) -> None:
    assert walked.doctor.status == 0, shown(walked.doctor)
    assert "tracing should work here" in walked.doctor.stdout


def test_enable_installs_tracing(walked: Journey) -> None:
    failed = [typed for typed in walked.enables if typed.status != 0]
    assert not failed, "".join(map(shown, failed))
    assert len(walked.snapshots) == len(jr.ENABLES)
    for snapshot in walked.snapshots:
        assert Path(snapshot).is_dir()


def test_the_kernel_traced_the_traffic(walked: Journey) -> None:
    # 5 ICMP packets (2 requests, 2 replies, 1 dropped request) and the HTTP fetch's TCP packets
    assert walked.traced > 5


@only("legacy")
def test_container_rules_trace_both_directions(walked: Journey) -> None:
    """`enable tcp --container nginx-2 --dport 80` traces the requests to nginx-2 and its answers."""
    records = lab_records(walked, jr.DMESG_JSONL)
    to_server = [r for r in records if r["proto"] == "TCP" and r["dst"] == dockerlab.NGINX_2_IP and r["dport"] == 80]
    answers = [r for r in records if r["proto"] == "TCP" and r["src"] == dockerlab.NGINX_2_IP and r["sport"] == 80]
    assert to_server
    assert answers, "no packet from nginx-2:80 was traced"


@only("nft")
def test_container_rules_trace_both_directions_on_nft(walked: Journey) -> None:
    records = lab_records(walked, jr.XTABLES_JSONL)
    tcp = [step for r in records for step in r["steps"] if step["dport"] == 80 or step["sport"] == 80]
    assert any(step["dst"] == dockerlab.NGINX_2_IP and step["dport"] == 80 for step in tcp)
    assert any(step["src"] == dockerlab.NGINX_2_IP and step["sport"] == 80 for step in tcp), (
        "no packet from nginx-2:80 was traced"
    )


@only("nft")
def test_enable_says_where_the_legacy_tables_lines_go(walked: Journey) -> None:
    """Legacy tables left on the host (empty, but registered) log the packets nf_tables flags."""
    assert walked.kernel_lines, "the kernel log got no TRACE line while tracing through nf_tables"
    said = walked.enables[0].stdout
    assert "never the kernel log" not in said, shown(walked.enables[0])
    assert re.search(r"dmesg|kernel log", said), shown(walked.enables[0])


@only("nft")
def test_doctor_says_where_the_legacy_tables_lines_go(walked: Journey) -> None:
    assert walked.kernel_lines, "the kernel log got no TRACE line while tracing through nf_tables"
    assert re.search(r"dmesg|kernel log", walked.doctor.stdout), shown(walked.doctor)


@only("legacy")
@pytest.mark.parametrize("host", ["docker on legacy, iptables on nf_tables", "rules in legacy and in nf_tables"])
def test_doctor_names_a_mixed_backend_host(walked: Journey, host: str) -> None:
    doctor = walked.mixed_doctors[host]
    findings = [line for line in doctor.stdout.splitlines() if re.match(r"(info|warn|fail)\s", line)]
    assert any("legacy" in line and ("nf_tables" in line or "nft" in line) for line in findings), shown(doctor)


# --- the readers --------------------------------------------------------------------


@pytest.mark.parametrize(("backend", "command"), per_backend(ALL_READERS))
def test_reader_ends_cleanly(walked: Journey, command: str) -> None:
    """Exit 0 at the end of the input; 130 after Ctrl-C for a live reader; never a traceback."""
    typed = walked.readers[command]
    expected = INTERRUPTED if command in LIVE_READERS[walked.backend] else 0
    assert typed.status == expected, shown(typed)
    assert "Traceback" not in typed.stderr, shown(typed)


@pytest.mark.parametrize(("backend", "command"), per_backend(TABLE_READERS))
def test_reader_shows_each_traced_packet(walked: Journey, command: str) -> None:
    assert walked.traced_for(command) > 0
    assert len(lab_packets(walked, command)) == walked.traced_for(command), shown(walked.readers[command])


@pytest.mark.parametrize(("backend", "command"), per_backend(LIVE_READERS))
def test_live_reader_prints_while_the_stream_is_open(walked: Journey, command: str) -> None:
    assert walked.seen_live[command], shown(walked.readers[command])


@pytest.mark.parametrize(("backend", "command"), per_backend(TABLE_READERS))
def test_each_packet_ends_at_the_filter_rule_that_decided(walked: Journey, command: str) -> None:
    """Accepted by a FORWARD/DOCKER rule, or dropped in DOCKER-USER: never a nat or raw policy."""
    packets = lab_packets(walked, command)
    assert packets, shown(walked.readers[command])
    wrong = [p.text for p in packets if not DECIDED_IN_FILTER.match(p.ending)]
    assert not wrong, "\n\n".join(wrong)
    dropped = [p for p in packets if p.ending.startswith("DROPPED")]
    assert dropped
    for packet in dropped:
        decided = DECIDED_IN_FILTER.match(packet.ending)
        assert decided is not None
        assert decided["chain"] == "DOCKER-USER", packet.text


@pytest.mark.parametrize(("backend", "command"), per_backend(JSONL_READERS))
def test_verdict_is_at_the_filter_rule_that_decided(walked: Journey, command: str) -> None:
    records = lab_records(walked, command)
    assert records, shown(walked.readers[command])
    assert len(records) == walked.traced, shown(walked.readers[command])
    for record in records:
        assert record["verdict"] in ("ACCEPT", "DROP"), record
        step = record["steps"][record["verdict_step"] - 1]
        assert record["verdict_at"].startswith("filter:"), record
        assert step["table"] == "filter", record
        assert step["kind"] == "rule", record
        assert str(step["rule"]).rstrip().lower().endswith(record["verdict"].lower()), record


@only("legacy")
def test_legacy_steps_show_rule_text_from_the_snapshot(walked: Journey) -> None:
    typed = walked.readers[jr.DMESG_JSONL]
    records = lab_records(walked, jr.DMESG_JSONL)
    assert records, shown(typed)
    assert walked.snapshots[-1] in typed.stderr, shown(typed)
    for record in records:
        for step in record["steps"]:
            assert step["mismatch"] is None, step
            assert step["kind"] != "rule" or step["rule"], step


@only("legacy")
@pytest.mark.parametrize("command", [jr.TAIL_SYSLOG, jr.TAIL_KERN_LOG])
def test_syslog_steps_show_elapsed_times(walked: Journey, command: str) -> None:
    """RFC 3164 and RFC 3339 lines both carry clocks: every step row has its time."""
    packets = lab_packets(walked, command)
    assert packets, shown(walked.readers[command])
    for packet in packets:
        assert all(re.match(r"\s*\+\d+\.\d+ms\s", row) for row in packet.steps), packet.text


@only("legacy")
def test_a_capture_from_another_host_is_read_without_this_hosts_snapshot(walked: Journey) -> None:
    typed = walked.readers[jr.FOREIGN_SAMPLE]
    assert typed.status == 0, shown(typed)
    records = [json.loads(line) for line in typed.stdout.splitlines()]
    assert records
    assert all(step["rule"] is None for record in records for step in record["steps"]), shown(typed)
    assert "snapshot" in typed.stderr, shown(typed)


@only("nft")
@pytest.mark.parametrize("command", [jr.XTABLES_MONITOR, jr.SUMMARY_XTABLES])
def test_nft_handles_are_decimal(walked: Journey, command: str) -> None:
    """As `nft -a list ruleset` shows them."""
    typed = walked.readers[command]
    assert "DOCKER-USER" in typed.stdout, shown(typed)
    assert not re.search(r"\b0x[0-9a-f]+\b", typed.stdout), shown(typed)


@only("nft")
def test_nft_rule_text_has_no_live_counters(walked: Journey) -> None:
    typed = walked.readers[jr.NFT_MONITOR]
    assert lab_packets(walked, jr.NFT_MONITOR), shown(typed)
    assert not re.search(r"counter packets \d+ bytes \d+", typed.stdout), shown(typed)


@only("nft")
def test_xtables_monitor_titles_name_the_protocol(walked: Journey) -> None:
    packets = lab_packets(walked, jr.XTABLES_MONITOR)
    assert packets, shown(walked.readers[jr.XTABLES_MONITOR])
    assert not [p.title for p in packets if re.match(r"#\d+ \? ", p.title)]


@pytest.mark.parametrize(
    ("backend", "command"), per_backend({"legacy": (jr.NAMES_KERN_LOG, jr.WATCH), "nft": (jr.NAMES_XTABLES, jr.WATCH)})
)
def test_containers_are_named_from_the_docker_daemon(walked: Journey, command: str) -> None:
    """`--names docker` asks the daemon; `watch` does it unasked when the daemon answers."""
    packets = lab_packets(walked, command)
    assert packets, shown(walked.readers[command])
    unnamed = [p.title for p in packets if not ("(nginx-1)" in p.title and "(nginx-2)" in p.title)]
    assert not unnamed, shown(walked.readers[command])


def test_watch_reads_as_parse_does(walked: Journey) -> None:
    """`watch … --verdict DROP -f jsonl`: only the dropped ping, as a JSON line, its containers named."""
    typed = walked.readers[jr.WATCH_DROPS]
    records = [json.loads(line) for line in typed.stdout.splitlines() if line.startswith("{")]
    assert len(records) == 1, shown(typed)
    assert records[0]["verdict"] == "DROP", records[0]
    assert (records[0]["src_name"], records[0]["dst_name"]) == (dockerlab.NGINX_2, dockerlab.NGINX_1), records[0]


# --- summaries ----------------------------------------------------------------------


@pytest.mark.parametrize(("backend", "command"), per_backend(SUMMARIES))
def test_summary_answers_with_the_dropping_rule(walked: Journey, command: str) -> None:
    typed = walked.readers[command]
    assert typed.status == 0, shown(typed)
    assert re.search(r"dropped by (a rule of )?filter[ :]DOCKER-USER\b", typed.stdout), shown(typed)
    assert not re.search(r":rule:(?!\d)", typed.stdout), shown(typed)


@pytest.mark.parametrize(("backend", "command"), per_backend(SUMMARIES))
def test_summary_flows_end_at_filter_rules(walked: Journey, command: str) -> None:
    typed = walked.readers[command]
    rows = [row for row in flows(typed.stdout) if dockerlab.NGINX_2_IP in row["client"] + row["server"]]
    assert rows, shown(typed)
    # `filter FORWARD rule 6`, `filter FORWARD handle 14`, or `a rule of filter FORWARD` (plain nft monitor)
    assert all(re.match(r"(a rule of )?filter ", row["verdict_place"]) for row in rows), shown(typed)


@pytest.mark.parametrize(("backend", "command"), per_backend(SUMMARIES))
def test_summary_flows_say_who_was_dropped(walked: Journey, command: str) -> None:
    """nginx-1's pings to nginx-2 were answered; nginx-2's ping to nginx-1 was dropped.

    xtables-monitor prints neither ICMP type nor identifier, so an echo
    request cannot be told from a reply there and the pings of both ways are
    one flow: its answer still names the dropped packet's direction.
    """
    typed = walked.readers[command]
    if "xtables-monitor" in command:
        dropped = f"1 packet from {dockerlab.NGINX_2_IP} to {dockerlab.NGINX_1_IP} was dropped by filter DOCKER-USER"
        assert dropped in typed.stdout, shown(typed)
        return
    pings = {(row["client"], row["server"]): row["verdict"] for row in flows(typed.stdout) if row["proto"] != "TCP"}
    assert pings.get((dockerlab.NGINX_1_IP, dockerlab.NGINX_2_IP)) == "ACCEPT", shown(typed)
    assert pings.get((dockerlab.NGINX_2_IP, dockerlab.NGINX_1_IP)) == "DROP", shown(typed)


@pytest.mark.parametrize(("backend", "command"), per_backend(SUMMARIES))
def test_summary_counts_the_servers_replies(walked: Journey, command: str) -> None:
    """The HTTP fetch was answered, and `--container nginx-2 --dport 80` traced the answers."""
    typed = walked.readers[command]
    tcp = [row for row in flows(typed.stdout) if row["proto"] == "TCP"]
    assert tcp, shown(typed)
    assert all(row["replies"] not in ("", "0") for row in tcp), shown(typed)
    assert "no traced reply" not in typed.stdout, shown(typed)


# --- status, disable ----------------------------------------------------------------


def test_status_lists_the_rules_and_the_snapshots(walked: Journey) -> None:
    status = walked.status
    assert status.status == 0, shown(status)
    added = [
        line.split(None, 1)[1].split(": ", 1)[0]
        for typed in walked.enables
        for line in typed.stdout.splitlines()
        if line.startswith("added ")
    ]
    assert added
    assert all(" ".join(rule.split()) in " ".join(status.stdout.split()) for rule in added), shown(status)
    assert all(Path(snapshot).name in status.stdout for snapshot in walked.snapshots), shown(status)


def test_disable_leaves_the_rulesets_as_before_enable(walked: Journey) -> None:
    assert walked.disable.status == 0, shown(walked.disable)
    assert walked.changes == {}
