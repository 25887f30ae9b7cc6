"""Root only: `tracelog enable/disable/status/watch` on a real kernel, inside namespaces this module creates.

Each test gets a fresh namespace (`tl-rules-…`, always deleted) that already
holds the user's own raw and filter rules, including a TRACE rule tracelog
did not write.  Traffic is busybox ping to an address on the namespace's
loopback, so nothing leaves it; the initial namespace's firewall is never
touched (only the global nf_log_all_netns knob, set and restored).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler
from ipaddress import ip_address
from pathlib import Path
from socketserver import ThreadingUnixStreamServer
from typing import Any

import pytest

from tests.lab import dockerlab, kernlog
from tests.lab.namespaces import (
    BUSYBOX,
    MONITOR_SETTLE,
    REPO,
    TAGGED_ROW,
    TIMEOUT,
    USER_RULES,
    LabNamespace,
    lab_namespace,
    require_backend,
    running_watch,
    stop_watch,
    wait_for_rules,
    wait_until,
    watch_a_ping,
)
from tracelog.rules.legacy import LEFT_EMPTY as LEGACY_LEFT_EMPTY

pytestmark = [pytest.mark.lab, pytest.mark.root_only]


def proto_for(family: str) -> str:
    return "icmp" if family == "ipv4" else "icmpv6"


def enable(ns: LabNamespace, backend: str, family: str, *extra: str) -> subprocess.CompletedProcess[str]:
    done = ns.tracelog("enable", proto_for(family), "--dst", ns.address(family), "--backend", backend, *extra)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done


# -- tracing real traffic -------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_enabled_rules_trace_real_traffic(ns: LabNamespace, backend: str, family: str, tmp_path: Path) -> None:
    report = enable(ns, backend, family).stdout
    assert f"backend: {backend}, because --backend {backend} asked for" in report
    assert "ruleset snapshot: " in report
    if backend == "legacy":
        lines = legacy_trace_of_one_ping(ns, family)
        # Appended after the user's two raw PREROUTING rules; the flag set in OUTPUT shows it matching there.
        assert any("TRACE: raw:PREROUTING:rule:3 " in line for line in lines), lines
        packets = parse(lines, tmp_path)
        destination = ns.address(family)
        assert [packet["dst"] for packet in packets] == [destination, destination]  # request and reply
        assert packets[0]["steps"][0]["table"] == "raw"
    else:
        lines = monitor_trace_of_one_ping(ns, family)
        traced = [line for line in lines if " TRACE: " in line and '--comment "tracelog:1,' in line]
        assert traced, lines
        packets = parse(lines, tmp_path)
        assert [packet["dst"] for packet in packets] == [ns.address(family)] * 2
    assert ns.tagged_packets(backend, family) >= 2


def legacy_trace_of_one_ping(ns: LabNamespace, family: str) -> list[str]:
    """Kernel-log TRACE lines naming our address, between two markers around one ping."""
    printed = ip_address(ns.address(family)).exploded if family == "ipv6" else ns.address(family)
    with kernlog.nf_log_all_netns():
        kernlog.ensure_nf_log_all_netns()
        window = kernlog.Window.new(ns.name)
        window.open()
        ns.ping(family)
        window.close()
        lines = kernlog.slice_window(kernlog.read_dmesg(), window)
    return [line for line in lines if "TRACE:" in line and f"DST={printed} " in line]


def monitor_trace_of_one_ping(ns: LabNamespace, family: str) -> list[str]:
    """What `xtables-monitor --trace` in the namespace printed while one ping ran."""
    monitor = subprocess.Popen(
        ["ip", "netns", "exec", ns.name, "stdbuf", "-oL", "xtables-monitor", "--trace"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(MONITOR_SETTLE)
        ns.ping(family)
        time.sleep(MONITOR_SETTLE)
    finally:
        monitor.terminate()
        output, _ = monitor.communicate(timeout=10)
    return output.splitlines()


def parse(lines: list[str], tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "trace.log"
    path.write_text("".join(line + "\n" for line in lines))
    done = subprocess.run(
        [sys.executable, "-m", "tracelog", "parse", "-f", "jsonl", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


# -- idempotence and exact removal --------------------------------------------------------------------


def test_enabling_twice_adds_nothing(ns: LabNamespace, backend: str) -> None:
    enable(ns, backend, "ipv4", "--for", "none")
    once = ns.save(backend, "ipv4")
    again = enable(ns, backend, "ipv4", "--for", "none").stdout
    assert "present  " in again
    assert ns.save(backend, "ipv4") == once
    enable(ns, backend, "ipv4", "--for", "5m")  # new settings replace the old rules
    assert ns.save(backend, "ipv4").count("tracelog:1,") == 2


def test_disable_leaves_the_users_rules_byte_identical(ns: LabNamespace, backend: str) -> None:
    before = {family: ns.save(backend, family) for family in ("ipv4", "ipv6")}
    enable(ns, backend, "ipv4")
    enable(ns, backend, "ipv6", "--limit", "none")
    ns.tracelog("enable", "tcp", "--dport", "443", "--iface", "lo", "--backend", backend)
    assert ns.save(backend, "ipv4") != before["ipv4"]
    status = ns.tracelog("status", "--backend", backend)
    assert status.returncode == 0, status.stderr
    assert "tracelog rules (6):" in status.stdout
    assert status.stdout.count("ops: trace the lab box") == 2  # the user's TRACE rules: reported, not touched
    done = ns.tracelog("disable", "--backend", backend)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "removed 6 tracelog rules"
    assert {family: ns.save(backend, family) for family in ("ipv4", "ipv6")} == before
    assert ns.tracelog("disable", "--backend", backend).stdout == "no tracelog rules found\n"


# -- expiry ----------------------------------------------------------------------------------------------


def test_for_stops_tracing_in_the_kernel_after_tracelog_exited(ns: LabNamespace, backend: str) -> None:
    enable(ns, backend, "ipv4", "--for", "2s")
    ns.ping("ipv4")
    assert ns.tagged_packets(backend, "ipv4") >= 2, "the rule did not match while it was live"
    time.sleep(3.5)  # --for 2s ends at the first whole second 2 s after enabling: within 3 s
    stopped = ns.tagged_packets(backend, "ipv4")
    ns.ping("ipv4", count=2)
    assert ns.tagged_packets(backend, "ipv4") == stopped, "the expired rule still matches"
    status = ns.tracelog("status", "--backend", backend)
    assert [line.split()[0] for line in status.stdout.splitlines()[:2]] == ["removed", "removed"]
    assert "no tracelog rules are installed" in status.stdout
    assert "tracelog:" not in ns.save(backend, "ipv4")


# -- watch ---------------------------------------------------------------------------------------------


def test_watch_prints_packets_and_cleans_up_on_sigterm(ns: LabNamespace, backend: str) -> None:
    before = ns.save(backend, "ipv4")
    run = watch_a_ping(ns, backend, "-f", "jsonl")
    stdout, stderr = run.stdout, run.stderr
    assert run.returncode == 130, stderr  # ended like Ctrl-C
    assert "Traceback" not in stderr
    assert stderr.count("tracelog: removed  ") == 2, stderr
    assert ns.save(backend, "ipv4") == before
    packets = [json.loads(line) for line in stdout.splitlines()]
    assert [packet["dst"] for packet in packets] == [ns.ipv4, ns.ipv4], stderr
    rules = [str(step["rule"]) for step in packets[0]["steps"]]
    # legacy: named by the snapshot watch took at start; nft: printed by the monitor itself
    assert any("tracelog:1," in rule for rule in rules), rules


def test_a_killed_watch_leaves_no_monitor_and_its_rules_expire(tmp_path: Path) -> None:
    require_backend("nft")
    with lab_namespace(tmp_path / "state") as ns:
        ns.load_user_rules("nft")
        argv = ns.tracelog_argv("watch", "icmp", "--backend", "nft", "--for", "2s")
        with running_watch(ns, argv, output=False, stderr=False) as watch:
            wait_for_rules(ns, "nft")
            monitors = children(watch.pid)
            assert monitors, "watch started no monitor"
            watch.kill()
        assert wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in monitors), 5.0)
        assert "tracelog:" in ns.save("nft", "ipv4")  # a SIGKILLed tracelog cleans nothing ...
        time.sleep(3.5)
        counted = ns.tagged_packets("nft", "ipv4")
        ns.ping("ipv4")
        assert ns.tagged_packets("nft", "ipv4") == counted  # ... but the kernel stopped the rules
        assert "removed" in ns.tracelog("status").stdout  # and the next command tidies them


def children(pid: int) -> list[int]:
    """All descendants of a process (the monitor runs under stdbuf's exec, so one level suffices)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


# -- what tracing leaves behind -------------------------------------------------------------------------

_NFT_COUNTER = re.compile(r"counter packets \d+ bytes \d+")


def filter_rules_only(ns: LabNamespace, backend: str) -> None:
    """The user's filter rules without any raw table: tracelog has to bring the raw table and chains itself."""
    for family, rules in USER_RULES.items():
        filter_only = rules[rules.index("*filter") :]
        subprocess.run(
            ["ip", "netns", "exec", ns.name, ns.tool(backend, family, "restore")],
            input=filter_only,
            text=True,
            capture_output=True,
            timeout=TIMEOUT,
            check=True,
        )


def nft_ruleset(ns: LabNamespace) -> str:
    """`nft list ruleset` without counters."""
    return _NFT_COUNTER.sub("counter", ns.run("nft", "list", "ruleset").stdout)


def whole_state(ns: LabNamespace, backend: str) -> tuple[str, ...]:
    """Both families' `iptables-save` of the backend and, for nft, the nf_tables ruleset, counters aside."""
    saved = tuple(ns.save(backend, family) for family in ("ipv4", "ipv6"))
    return (*saved, nft_ruleset(ns)) if backend == "nft" else saved


@pytest.fixture
def bare_ns(tmp_path: Path, backend: str) -> Iterator[LabNamespace]:
    with lab_namespace(tmp_path / "state") as namespace:
        filter_rules_only(namespace, backend)
        yield namespace


def test_disable_removes_the_raw_tables_and_chains_tracelog_created(bare_ns: LabNamespace, backend: str) -> None:
    if backend == "nft" and shutil.which("nft") is None:
        pytest.skip("nft is needed to look at the ruleset")
    before = whole_state(bare_ns, backend)
    enable(bare_ns, backend, "ipv4")
    enable(bare_ns, backend, "ipv6")
    if backend == "nft":
        assert 'comment "tracelog: created for its TRACE rules' in nft_ruleset(bare_ns)
    bare_ns.ping("ipv4")
    done = bare_ns.tracelog("disable", "--backend", backend)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "removed 4 tracelog rules"
    if backend == "nft":
        assert sorted(line for line in lines if " table " in line or " chain " in line) == sorted(
            f"removed  nft    {family} {what}  (tracelog created it; empty again)"
            for family, name in (("ipv4", "ip raw"), ("ipv6", "ip6 raw"))
            for what in (f"chain {name} PREROUTING", f"chain {name} OUTPUT", f"table {name}")
        )
        assert whole_state(bare_ns, backend) == before
    else:
        # Legacy tables cannot be unloaded from one namespace: they stay, empty, and status says so.
        assert [line for line in lines if line.startswith("kept ")] == [
            f"kept     legacy {family} table raw  ({LEGACY_LEFT_EMPTY})" for family in ("ipv4", "ipv6")
        ]
        empty_raw = "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
        assert [saved.replace(empty_raw, "") for saved in whole_state(bare_ns, backend)] == list(before)
        status = bare_ns.tracelog("status", "--backend", backend).stdout
        assert f"kept     legacy ipv4 table raw  ({LEGACY_LEFT_EMPTY})" in status


def test_a_table_that_was_there_stays_and_only_the_chain_tracelog_created_goes(tmp_path: Path) -> None:
    require_backend("nft")
    with lab_namespace(tmp_path / "state") as ns:
        ns.run("iptables-nft", "-t", "raw", "-A", "PREROUTING", "-s", "192.0.2.99", "-j", "CT", "--notrack")
        before = whole_state(ns, "nft")
        enable(ns, "nft", "ipv4")
        lines = ns.tracelog("disable").stdout.splitlines()
        assert [line for line in lines if " chain " in line or " table " in line] == [
            "removed  nft    ipv4 chain ip raw OUTPUT  (tracelog created it; empty again)"
        ]
        assert whole_state(ns, "nft") == before


def test_a_created_table_with_a_foreign_rule_is_kept(bare_ns: LabNamespace, backend: str) -> None:
    if backend != "nft":
        pytest.skip("legacy tables are never removed")
    enable(bare_ns, "nft", "ipv4")
    bare_ns.run("iptables-nft", "-t", "raw", "-A", "OUTPUT", "-p", "udp", "--dport", "9", "-j", "CT", "--notrack")
    lines = bare_ns.tracelog("disable").stdout.splitlines()
    assert [line for line in lines if " chain " in line or " table " in line] == [
        "removed  nft    ipv4 chain ip raw PREROUTING  (tracelog created it; empty again)"
    ]
    assert "CT --notrack" in bare_ns.save("nft", "ipv4")


def test_after_a_crash_status_removes_expired_rules_and_their_tables(tmp_path: Path) -> None:
    """The mark is in the kernel: a later process, not the one that created the table, removes it."""
    require_backend("nft")
    with lab_namespace(tmp_path / "state") as ns:
        filter_rules_only(ns, "nft")
        before = whole_state(ns, "nft")
        argv = ns.tracelog_argv("watch", "icmp", "--backend", "nft", "--for", "2s")
        with running_watch(ns, argv, output=False, stderr=False) as watch:
            wait_for_rules(ns, "nft")
            watch.kill()  # no clean-up of its own: a crash
        assert whole_state(ns, "nft") != before
        time.sleep(3.5)
        status = ns.tracelog("status")
        assert status.returncode == 0, status.stderr
        assert "removed  nft    ipv4 table ip raw  (tracelog created it; empty again)" in status.stdout
        assert whole_state(ns, "nft") == before


def test_watch_removes_the_tables_it_created_when_it_ends(bare_ns: LabNamespace, backend: str) -> None:
    if backend != "nft":
        pytest.skip("legacy tables are never removed")
    before = whole_state(bare_ns, "nft")
    with running_watch(bare_ns, bare_ns.tracelog_argv("watch", "icmp", "--backend", "nft"), output=False) as watch:
        wait_for_rules(bare_ns, "nft")
        _, stderr = stop_watch(watch)
    assert "tracelog: removed  nft    ipv4 table ip raw  (tracelog created it; empty again)" in stderr
    assert whole_state(bare_ns, "nft") == before


# -- --container: both halves of a conversation ------------------------------------------------------

CONTAINER = "web"
CONTAINER_HOST_SIDE = "198.51.100.1"
CONTAINER_IP = "198.51.100.2"


class _FakeDockerApi(BaseHTTPRequestHandler):
    """`GET /containers/web/json`: one running container whose address lives in a namespace of ours."""

    def do_GET(self) -> None:
        found = self.path == f"/containers/{CONTAINER}/json"
        inspect = {"State": {"Running": True}, "NetworkSettings": {"Networks": {"lab": {"IPAddress": CONTAINER_IP}}}}
        body = json.dumps(inspect if found else {"message": "No such container"}).encode()
        self.send_response(200 if found else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def address_string(self) -> str:
        return "unix"


@contextmanager
def fake_docker(path: Path) -> Iterator[str]:
    """A Docker API on a Unix socket (reachable from any network namespace); yields its DOCKER_HOST."""
    server = ThreadingUnixStreamServer(str(path), _FakeDockerApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"unix://{path}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def container_namespace(ns: LabNamespace) -> Iterator[str]:
    """A second namespace behind a veth pair, holding CONTAINER_IP, as a container sits behind its host."""
    name = f"{ns.name}-c"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=TIMEOUT)
    try:
        ns.run("ip", "link", "add", "veth-c", "type", "veth", "peer", "name", "eth0", "netns", name)
        ns.run("ip", "addr", "add", f"{CONTAINER_HOST_SIDE}/24", "dev", "veth-c")
        ns.run("ip", "link", "set", "veth-c", "up")
        for argv in (
            ["ip", "link", "set", "lo", "up"],
            ["ip", "addr", "add", f"{CONTAINER_IP}/24", "dev", "eth0"],
            ["ip", "link", "set", "eth0", "up"],
        ):
            subprocess.run(["ip", "netns", "exec", name, *argv], check=True, timeout=TIMEOUT)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=TIMEOUT)


def packets_by_tag(ns: LabNamespace, backend: str, chain: str) -> dict[str, int]:
    """Packets counted per tracelog rule in one raw chain, keyed by the rule's tag."""
    listing = ns.run(ns.tool(backend, "ipv4"), "-t", "raw", "-L", chain, "-v", "-x", "-n").stdout
    counted: dict[str, int] = {}
    for line in listing.splitlines():
        row, tag = TAGGED_ROW.match(line), re.search(r"/\* (tracelog:\S+) \*/", line)
        if row and tag:
            counted[tag[1]] = counted.get(tag[1], 0) + int(row["pkts"])
    return counted


def test_container_is_traced_to_it_and_from_it(ns: LabNamespace, backend: str, tmp_path: Path) -> None:
    """`--container web --dport 80`: the SYN towards it and its answer (here a RST from port 80) both match."""
    before = {family: ns.save(backend, family) for family in ("ipv4", "ipv6")}
    with container_namespace(ns), fake_docker(tmp_path / "docker.sock") as docker_host:
        done = ns.tracelog(
            "enable", "tcp", "--container", CONTAINER, "--dport", "80", "--backend", backend, DOCKER_HOST=docker_host
        )
        assert done.returncode == 0, done.stderr
        installed = [line for line in done.stdout.splitlines() if line.startswith("added ")]
        to_match = f"-p tcp -d {CONTAINER_IP}/32 -m tcp --dport 80"
        from_match = f"-p tcp -s {CONTAINER_IP}/32 -m tcp --sport 80"
        assert [line.split(": ", 1)[1] for line in installed] == [to_match, to_match, from_match, from_match]
        ns.run(BUSYBOX, "nc", "-w", "2", CONTAINER_IP, "80", check=False)  # refused: the RST is the reply
        to_it = packets_by_tag(ns, backend, "OUTPUT")
        from_it = packets_by_tag(ns, backend, "PREROUTING")
    assert [count for tag, count in to_it.items() if f"dst={CONTAINER_IP}" in tag] == [1]  # the SYN
    assert [count for tag, count in from_it.items() if f"src={CONTAINER_IP}" in tag] == [1]  # the RST from :80
    assert ns.tracelog("disable", "--backend", backend).stdout.splitlines()[-1] == "removed 4 tracelog rules"
    assert {family: ns.save(backend, family) for family in ("ipv4", "ipv6")} == before


# -- Docker -------------------------------------------------------------------------------------------


def test_container_address_comes_from_a_real_docker_daemon(tmp_path: Path) -> None:
    """dockerd runs in the initial namespace (dockerlab saves and restores its firewall); our rules do not."""
    require_backend("legacy")
    with ExitStack() as stack:
        try:
            stack.enter_context(dockerlab.docker_lab(tmp_path / "docker", "legacy"))
        except dockerlab.DockerUnavailable as error:
            pytest.skip(f"the Docker lab cannot run here: {error}")
        ns = stack.enter_context(lab_namespace(tmp_path / "state"))
        done = ns.tracelog("enable", "icmp", "--container", dockerlab.NGINX_1, "--backend", "legacy")
        assert done.returncode == 0, done.stderr
        saved = ns.save("legacy", "ipv4")
        assert f"-s {dockerlab.NGINX_1_IP}/32" in saved
        assert f"-d {dockerlab.NGINX_1_IP}/32" in saved
        assert f"ctr={dockerlab.NGINX_1}" in saved
        assert ns.tracelog("disable").stdout.splitlines()[-1] == "removed 4 tracelog rules"
