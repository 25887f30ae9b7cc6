"""Root only: `tracelog doctor` inside a real namespace, each prerequisite broken on purpose and restored.

The namespace-local knobs (nf_log binding, bridge-nf-call-*) die with the
namespace; the one global knob, nf_log_all_netns, is put back to what it was.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab import kernlog
from tests.lab.namespaces import LabNamespace, lab_namespace, require_backend
from tests.lab.test_rules_lab import legacy_trace_of_one_ping, monitor_trace_of_one_ping

pytestmark = [pytest.mark.lab, pytest.mark.root_only]

NF_LOG_ALL_NETNS = Path("/proc/sys/net/netfilter/nf_log_all_netns")


@pytest.fixture
def ns(tmp_path: Path) -> Iterator[LabNamespace]:
    """A namespace whose own rules live in the legacy tables."""
    require_backend("legacy")
    with lab_namespace(tmp_path / "state") as namespace:
        namespace.load_user_rules("legacy")
        yield namespace


def doctor(ns: LabNamespace, *args: str, **env: str) -> tuple[int, list[str]]:
    done = ns.tracelog("doctor", *args, **env)
    assert done.stderr == "", done.stderr
    return done.returncode, done.stdout.splitlines()


def test_a_namespace_with_everything_in_place(ns: LabNamespace) -> None:
    with kernlog.nf_log_all_netns():
        status, lines = doctor(ns)
    assert status == 0, lines
    assert any(line.startswith("ok    backends: tracelog would use iptables-legacy") for line in lines)
    assert "ok    nf_log_all_netns: not the initial network namespace, and nf_log_all_netns=1 lets it log" in lines
    assert lines[-1] == "tracing should work here"


def test_an_unbound_logger_is_named_and_really_silences_the_trace(ns: LabNamespace) -> None:
    ns.run("sysctl", "-q", "-w", "net.netfilter.nf_log.2=NONE")
    try:
        with kernlog.nf_log_all_netns():
            status, lines = doctor(ns)
            assert status == 7
            assert "fail  nf_log ipv4: no logger is bound for ipv4: legacy TRACE prints nothing" in lines
            assert "      fix: sysctl -w net.netfilter.nf_log.2=nf_log_ipv4" in lines
            enabled = ns.tracelog("enable", "icmp", "--dst", ns.ipv4, "--backend", "legacy")
            assert "warning: no logger is bound for ipv4" in enabled.stdout
            assert legacy_trace_of_one_ping(ns, "ipv4") == []  # the doctor was right
            assert ns.tagged_packets("legacy", "ipv4") >= 1  # although the rule matched
    finally:
        ns.run("sysctl", "-q", "-w", "net.netfilter.nf_log.2=nf_log_ipv4")
    with kernlog.nf_log_all_netns():
        assert doctor(ns)[0] == 0


def test_nf_log_all_netns_is_read_in_the_initial_namespace(ns: LabNamespace) -> None:
    previous = NF_LOG_ALL_NETNS.read_text()
    try:
        NF_LOG_ALL_NETNS.write_text("0\n")
        status, lines = doctor(ns, "--backend", "legacy")
        NF_LOG_ALL_NETNS.write_text("1\n")
        fixed, _ = doctor(ns, "--backend", "legacy")
    finally:
        NF_LOG_ALL_NETNS.write_text(previous)
    assert status == 7
    assert (
        "fail  nf_log_all_netns: not the initial network namespace, and nf_log_all_netns=0 drops its legacy TRACE lines"
    ) in lines
    assert "      fix: on the host (initial namespace): sysctl -w net.netfilter.nf_log_all_netns=1" in lines
    assert fixed == 0


def test_bridges_without_bridge_nf_call(ns: LabNamespace) -> None:
    subprocess.run(["modprobe", "br_netfilter"], capture_output=True, timeout=30, check=False)
    if not Path("/proc/sys/net/bridge").exists():
        pytest.skip("br_netfilter is not available in this kernel")
    ns.run("ip", "link", "add", "br0", "type", "bridge")
    ns.run("sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=0", "net.bridge.bridge-nf-call-ip6tables=1")
    with kernlog.nf_log_all_netns():
        status, lines = doctor(ns)
        assert status == 0  # bridged traffic is only part of the traffic: a warning
        assert (
            "warn  br_netfilter: net.bridge.bridge-nf-call-iptables=0: ipv4 traffic between ports of br0 never "
            "crosses iptables"
        ) in lines
        assert "      fix: sysctl -w net.bridge.bridge-nf-call-iptables=1" in lines
        ns.run("sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1")
        assert "ok    br_netfilter: bridged traffic on br0 crosses iptables" in doctor(ns)[1]


def test_a_missing_trace_extension_is_named_and_enable_fails_cleanly(ns: LabNamespace, tmp_path: Path) -> None:
    empty = tmp_path / "xtables"
    empty.mkdir()
    status, lines = doctor(ns, XTABLES_LIBDIR=str(empty))
    assert status == 7
    assert "fail  TRACE target: libxt_TRACE.so is missing: iptables cannot parse -j TRACE" in lines
    before = ns.save("legacy", "ipv4")
    for backend in ("legacy", "nft"):
        done = ns.tracelog("enable", "icmp", "--backend", backend, XTABLES_LIBDIR=str(empty))
        assert done.returncode == 1
        assert done.stderr.startswith("tracelog: cannot ")
        assert done.stderr.count("\n") == 1
    assert ns.save("legacy", "ipv4") == before


def test_the_backend_holding_rules_is_followed_and_both_are_flagged(ns: LabNamespace) -> None:
    if shutil.which("iptables-nft") is None:
        pytest.skip("iptables-nft is not installed")
    _, lines = doctor(ns)
    assert any(line.startswith("ok    backends: tracelog would use iptables-legacy") for line in lines)
    ns.run("iptables-nft", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT")
    _, lines = doctor(ns)
    [backends] = [line for line in lines if "backends:" in line]
    assert backends.startswith("warn  backends:")
    assert "both backends hold rules" in backends


def test_without_cap_net_admin(ns: LabNamespace) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is not installed")
    drop = ["setpriv", "--bounding-set=-net_admin"]
    done = subprocess.run(
        [*ns.tracelog_argv()[:4], *drop, *ns.tracelog_argv()[4:], "doctor"],
        capture_output=True,
        text=True,
        env=ns.env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 7
    assert "fail  privileges: no CAP_NET_ADMIN: tracelog cannot add TRACE rules" in done.stdout
    before = ns.save("legacy", "ipv4")
    done = subprocess.run(
        [*ns.tracelog_argv()[:4], *drop, *ns.tracelog_argv()[4:], "enable", "icmp"],
        capture_output=True,
        text=True,
        env=ns.env(),
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (
        5,
        "tracelog: changing the firewall needs root (CAP_NET_ADMIN) (run it with sudo)\n",
    )
    assert ns.save("legacy", "ipv4") == before


DOCKER_CHAINS = """\
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-USER - [0:0]
-A INPUT -j DOCKER-USER
-A FORWARD -j DOCKER-USER
-A DOCKER-USER -j RETURN
COMMIT
"""


@pytest.mark.parametrize("flavour", ["nft", "legacy"])
def test_a_mixed_host_and_where_each_part_of_its_trace_really_goes(tmp_path: Path, flavour: str) -> None:
    """Docker's chains in the backend `iptables` does not run, the admin's rule through `iptables`, TRACE by tracelog.

    The doctor says the steps are split between the kernel log and xtables-monitor; the kernel then shows it:
    a legacy chain reports to the kernel log whichever backend set the trace flag, and xtables-monitor sees
    only the nf_tables chains.  `iptables` is `flavour` for tracelog alone (its PATH), never switched for the host.
    """
    require_backend("legacy")
    require_backend("nft")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "iptables").symlink_to(shutil.which(f"iptables-{flavour}") or "missing")
    path = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    docker = "legacy" if flavour == "nft" else "nft"
    words = {"legacy": "iptables-legacy (python-iptables)", "nft": "iptables-nft (nf_tables)"}
    tables = {"legacy": "legacy tables", "nft": "nf_tables tables"}
    with lab_namespace(tmp_path / "state") as ns:
        subprocess.run(
            ["ip", "netns", "exec", ns.name, f"iptables-{docker}-restore"],
            input=DOCKER_CHAINS,
            text=True,
            capture_output=True,
            timeout=60,
            check=True,
        )
        ns.run(f"iptables-{flavour}", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT")
        with kernlog.nf_log_all_netns():
            status, lines = doctor(ns, **path)
            assert status == 0, lines
            assert (
                f"info  mixed backends: Docker's chains are in the {tables[docker]}, while `iptables` runs "
                f"{words[flavour]}: `iptables -L` and `iptables-save` do not show them, "
                f"iptables-{docker}-save does"
            ) in lines
            readers = [line for line in lines if "trace readers:" in line]
            shows = {"legacy": readers[0], "nft": readers[1]}
            assert shows["legacy"].startswith(
                "ok    trace readers: dmesg -w | tracelog parse shows the steps in the legacy tables ipv4 filter"
            ), readers
            assert "xtables-monitor --trace | tracelog parse shows the steps in the nf_tables tables" in shows["nft"]
            assert "(Docker's chains)" in shows[docker]
            assert "Docker" not in shows[flavour]
            assert readers[2].startswith("warn  trace readers: a traced packet's steps are split between two readers")

            enabled = ns.tracelog("enable", "icmp", "--dst", ns.ipv4, **path)
            assert enabled.returncode == 0, enabled.stderr
            report = enabled.stdout.splitlines()
            assert report[0].startswith(f"backend: {flavour}, because both backends hold rules; following `iptables`")
            assert "read the trace from the kernel ring buffer (no syslog daemon writes it to a file):" in report
            assert "read the trace from nf_tables trace events (netlink):" in report
            assert any(line.startswith("warning: a traced packet's steps are split") for line in report)

            if flavour == "legacy":
                # nf_tables reports a packet a legacy TRACE rule flagged only while the kernel's nf_tables
                # trace switch is on: while some nf_tables rule that sets nftrace exists, in any namespace.
                # This one never matches; it only holds the switch on, as a host's own nft trace rule would.
                for command in (
                    "add table ip tlswitch",
                    "add chain ip tlswitch hold",
                    "add rule ip tlswitch hold ip saddr 192.0.2.250 meta nftrace set 1",
                ):
                    ns.run("nft", *command.split())
            kernel = legacy_trace_of_one_ping(ns, "ipv4")
            monitor = [line for line in monitor_trace_of_one_ping(ns, "ipv4") if " TRACE: " in line]
        assert ns.tracelog("disable", **path).returncode == 0
    # What the doctor said: each backend's chains report to that backend's reader only.
    seen = {"legacy": kernel, "nft": monitor}
    assert any("filter:DOCKER-USER:" in line for line in seen[docker]), seen
    assert not any("DOCKER" in line for line in seen[flavour]), seen
    assert any("filter:INPUT:" in line for line in seen[flavour]), seen  # the admin's table, in the other reader
    assert any("raw:" in line for line in seen[flavour]), seen  # where tracelog put its TRACE rule
