"""`tracelog doctor` on fake hosts: /proc, /sys, /lib/modules and /var/log trees built per test.

Each test breaks one prerequisite of a working trace and checks that the
doctor names it, says how to fix it, and sets the exit code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tests.conftest import RunCli
from tracelog import doctor
from tracelog.doctor import Finding, diagnose, tracing_works
from tracelog.errors import ExitStatus
from tracelog.rules import host as host_facts
from tracelog.rules.detect import choose_backend
from tracelog.rules.host import HostFacts, NfLog, probe_host, trace_sources

RELEASE = "6.18.44-test"
NF_LOG = """\
 0 NONE (nfnetlink_log)
 2 nf_log_ipv4 (nf_log_ipv4,nfnetlink_log)
 7 nf_log_bridge (nf_log_bridge,nfnetlink_log)
10 nf_log_ipv6 (nf_log_ipv6,nfnetlink_log)
"""
LEGACY_SAVE = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n-A INPUT -i lo -j ACCEPT\nCOMMIT\n"
NFT_SAVE = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n"
ULOGD_CONF = """\
[global]
stack=log1:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,print1:PRINTPKT,emu1:LOGEMU
[log1]
group=0
[emu1]
file="/var/log/ulog/trace.log"
sync=1
"""


class FakeHost:
    """A directory laid out like the parts of a root file system the doctor reads."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.outputs: dict[tuple[str, ...], str] = {("iptables", "-V"): "iptables v1.8.9 (legacy)\n"}
        self.library_problem: str | None = None
        self.write("proc/self/status", "CapEff:\t000001ffffffffff\n")
        self.link("proc/self/ns/net", "net:[4026531840]")
        self.link("proc/2/ns/net", "net:[4026531840]")
        self.write("proc/2/comm", "kthreadd\n")
        self.write("proc/sys/net/netfilter/nf_log/2", "nf_log_ipv4\n")
        self.write("proc/sys/net/netfilter/nf_log_all_netns", "0\n")
        self.write("proc/net/netfilter/nf_log", NF_LOG)
        self.write("proc/net/ip_tables_names", "filter\n")
        self.write("proc/sys/kernel/osrelease", RELEASE + "\n")
        self.write(f"lib/modules/{RELEASE}/modules.dep", "kernel/net/netfilter/xt_TRACE.ko.xz: kernel/x_tables.ko\n")
        self.write("usr/lib/x86_64-linux-gnu/xtables/libxt_TRACE.so", "")
        for tool in ("xtables-monitor", "nft", "iptables-nft", "stdbuf", "iptables-legacy-save"):
            self.write(f"usr/sbin/{tool}", "")
        self.process(100, "rsyslogd")
        self.write("var/log/kern.log", "")
        self.save("legacy", LEGACY_SAVE)

    def write(self, name: str, text: str) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def link(self, name: str, target: str) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        path.symlink_to(target)

    def remove(self, name: str) -> None:
        (self.root / name).unlink()

    def process(self, pid: int, comm: str) -> None:
        self.write(f"proc/{pid}/comm", comm + "\n")

    def save(self, backend: str, text: str) -> None:
        for family in ("", "6"):
            self.outputs[(f"ip{family}tables-{backend}-save",)] = text if not family else ""

    def bridge(self, name: str, calls: tuple[int, int] | None) -> None:
        (self.root / "sys/class/net" / name / "bridge").mkdir(parents=True)
        if calls is not None:
            self.write("proc/sys/net/bridge/bridge-nf-call-iptables", f"{calls[0]}\n")
            self.write("proc/sys/net/bridge/bridge-nf-call-ip6tables", f"{calls[1]}\n")

    def probe(self, argv: Sequence[str]) -> str | None:
        if argv[0] == "nsenter":
            return self.outputs.get(("nsenter",))
        return self.outputs.get(tuple(argv), "" if argv[0].endswith("-save") else None)

    def facts(self) -> HostFacts:
        return probe_host(self.root, self.probe, lambda: self.library_problem)

    def findings(self, backend: str = "auto") -> list[Finding]:
        return diagnose(self.facts(), backend)


@pytest.fixture
def host(tmp_path: Path) -> FakeHost:
    return FakeHost(tmp_path)


def failing(findings: list[Finding]) -> list[tuple[str, str | None]]:
    return [(finding.check, finding.fix) for finding in findings if finding.level == "fail"]


def level(findings: list[Finding], check: str) -> list[str]:
    return [finding.level for finding in findings if finding.check == check]


def test_a_healthy_legacy_host(host: FakeHost) -> None:
    facts = host.facts()
    assert facts.usage.legacy_rules == 2
    assert facts.in_init_netns is True
    findings = diagnose(facts)
    assert failing(findings) == []
    assert tracing_works(findings)
    assert "iptables-legacy" in findings[1].message
    [source] = trace_sources(facts, choose_backend(facts.usage))
    assert (
        source.command([Path("/s/iptables-legacy-save")])
        == "tail -f /var/log/kern.log | tracelog parse --rules /s/iptables-legacy-save"
    )


def test_no_cap_net_admin(host: FakeHost) -> None:
    host.write("proc/self/status", "CapEff:\t0000000000000000\n")
    assert failing(host.findings()) == [("privileges", "run tracelog as root (sudo tracelog …)")]


def test_unbound_logger_prints_nothing(host: FakeHost) -> None:
    host.write("proc/net/netfilter/nf_log", NF_LOG.replace(" 2 nf_log_ipv4 (", " 2 NONE ("))
    findings = host.findings()
    assert failing(findings) == [("nf_log ipv4", "sysctl -w net.netfilter.nf_log.2=nf_log_ipv4")]
    assert not tracing_works(findings)
    assert doctor.backend_problems(findings, ["ipv6"]) == []
    assert [problem.check for problem in doctor.backend_problems(findings, ["ipv4"])] == ["nf_log ipv4"]


def test_logger_not_loaded_yet_binds_itself(host: FakeHost) -> None:
    host.write("proc/net/netfilter/nf_log", " 2 NONE (nfnetlink_log)\n10 NONE (nfnetlink_log)\n")
    assert level(host.findings(), "nf_log ipv4") == ["ok"]


def test_nfnetlink_log_needs_ulogd(host: FakeHost) -> None:
    host.write("proc/net/netfilter/nf_log", NF_LOG.replace(" 2 nf_log_ipv4 (", " 2 nfnetlink_log ("))
    host.write("etc/ulogd.conf", ULOGD_CONF)
    assert failing(host.findings()) == [
        ("nf_log ipv4", "start ulogd2, or bind the kernel logger: sysctl -w net.netfilter.nf_log.2=nf_log_ipv4")
    ]
    host.process(200, "ulogd")
    facts = host.facts()
    assert failing(diagnose(facts)) == []
    [source] = trace_sources(facts, choose_backend(facts.usage))
    assert source.command() == "tail -f /var/log/ulog/trace.log | tracelog parse"


@pytest.mark.parametrize(
    ("nsenter", "expected", "fix"),
    [("0\n", "fail", True), ("1\n", "ok", False), (None, "warn", True)],
)
def test_other_namespaces_need_nf_log_all_netns(host: FakeHost, nsenter: str | None, expected: str, fix: bool) -> None:
    host.link("proc/self/ns/net", "net:[4026532999]")
    host.remove("proc/sys/net/netfilter/nf_log_all_netns")  # only the initial namespace has the knob
    if nsenter is not None:
        host.outputs[("nsenter",)] = nsenter
    facts = host.facts()
    assert facts.in_init_netns is False
    [finding] = [finding for finding in diagnose(facts) if finding.check == "nf_log_all_netns"]
    assert finding.level == expected
    assert (finding.fix == "on the host (initial namespace): sysctl -w net.netfilter.nf_log_all_netns=1") is fix


def test_initial_namespace_does_not_need_nf_log_all_netns(host: FakeHost) -> None:
    assert level(host.findings(), "nf_log_all_netns") == []


def test_namespace_links_tell_when_the_netfilter_sysctls_are_absent(host: FakeHost) -> None:
    host.remove("proc/sys/net/netfilter/nf_log_all_netns")
    host.remove("proc/sys/net/netfilter/nf_log/2")
    (host.root / "proc/sys/net/netfilter/nf_log").rmdir()
    assert host.facts().in_init_netns is True  # kthreadd shares our namespace
    host.link("proc/self/ns/net", "net:[4026532999]")
    assert host.facts().in_init_netns is False
    host.write("proc/2/comm", "sh\n")  # a PID namespace: PID 2 is no kernel thread, and PID 1 is unreadable
    assert host.facts().in_init_netns is None


def test_bridges_without_br_netfilter(host: FakeHost) -> None:
    host.bridge("docker0", None)
    findings = [finding for finding in host.findings() if finding.check == "br_netfilter"]
    assert [(finding.level, finding.family) for finding in findings] == [("warn", "ipv4"), ("warn", "ipv6")]
    assert findings[0].fix == "modprobe br_netfilter && sysctl -w net.bridge.bridge-nf-call-iptables=1"


def test_bridges_with_one_family_switched_off(host: FakeHost) -> None:
    host.bridge("docker0", (1, 0))
    [finding] = [finding for finding in host.findings() if finding.check == "br_netfilter"]
    assert (finding.level, finding.fix) == ("warn", "sysctl -w net.bridge.bridge-nf-call-ip6tables=1")
    assert tracing_works(host.findings())  # bridged traffic is one kind of traffic, not all of it


def test_bridges_crossing_iptables(host: FakeHost) -> None:
    host.bridge("br0", (1, 1))
    assert level(host.findings(), "br_netfilter") == ["ok"]


def test_kernel_without_xt_trace(host: FakeHost) -> None:
    host.write(f"lib/modules/{RELEASE}/modules.dep", "kernel/net/netfilter/xt_LOG.ko.xz:\n")
    assert failing(host.findings())[0][0] == "TRACE target"
    assert failing(host.findings("nft")) == []  # nf_tables sets the trace flag itself


def test_loaded_or_invisible_xt_trace_is_fine(host: FakeHost) -> None:
    host.write(f"lib/modules/{RELEASE}/modules.dep", "")
    host.write("proc/net/ip_tables_targets", "TRACE\nERROR\n")
    assert failing(host.findings()) == []
    host.remove("proc/net/ip_tables_targets")
    host.remove(f"lib/modules/{RELEASE}/modules.dep")
    (host.root / "lib/modules" / RELEASE).rmdir()
    assert level(host.findings(), "TRACE target") == ["ok"]


def test_missing_trace_extension(host: FakeHost) -> None:
    host.remove("usr/lib/x86_64-linux-gnu/xtables/libxt_TRACE.so")
    host.write("usr/lib/x86_64-linux-gnu/xtables/libxt_LOG.so", "")
    assert failing(host.findings()) == [("TRACE target", "reinstall iptables (apt install --reinstall iptables)")]


def test_legacy_backend_without_python_iptables(host: FakeHost) -> None:
    host.library_problem = "the legacy backend needs python-iptables"
    # --backend nft would trace, but the legacy rules' steps would stay in the kernel log: the hint says so.
    assert failing(host.findings()) == [
        (
            "TRACE target",
            "pip install python-iptables (with --backend nft the TRACE rule goes to nf_tables, but the steps in the "
            "legacy tables still print to the kernel log only: read both trace readers then)",
        )
    ]
    host.save("legacy", DOCKER_LEGACY_SAVE)
    [(_, fix)] = failing(host.findings())
    assert "the steps in the legacy tables, Docker's chains among them, still print to the kernel log only" in str(fix)
    host.save("legacy", "")
    host.outputs[("iptables", "-V")] = "iptables v1.8.9 (legacy)\n"
    assert failing(host.findings()) == [("TRACE target", "pip install python-iptables, or use --backend nft")]
    host.save("legacy", "")
    host.save("nft", NFT_SAVE)
    assert failing(host.findings()) == []  # the host uses nf_tables: the legacy library is not needed


def test_both_backends_hold_rules(host: FakeHost) -> None:
    host.save("nft", NFT_SAVE)
    facts = host.facts()
    assert level(diagnose(facts), "backends") == ["warn"]
    sources = trace_sources(facts, choose_backend(facts.usage))
    assert [source.command() for source in sources] == [
        "tail -f /var/log/kern.log | tracelog parse",
        "stdbuf -oL xtables-monitor --trace | tracelog parse",
    ]


DOCKER_LEGACY_SAVE = """\
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -o docker0 -j DOCKER
-A DOCKER-USER -j RETURN
COMMIT
"""


def findings_of(findings: list[Finding], check: str) -> list[tuple[str, str, str | None]]:
    return [(finding.level, finding.message, finding.fix) for finding in findings if finding.check == check]


def test_docker_in_legacy_while_iptables_runs_nft(host: FakeHost) -> None:
    """Docker 20.10 on iptables-legacy, the admin's own rules through `iptables` (nf_tables): a mixed host."""
    host.write("proc/net/ip_tables_names", "filter\nnat\n")
    host.save("legacy", DOCKER_LEGACY_SAVE)
    host.save("nft", NFT_SAVE)
    host.outputs[("iptables", "-V")] = "iptables v1.8.9 (nf_tables)\n"
    host.outputs[("nft", "list", "tables")] = "table ip filter\n"
    facts = host.facts()
    assert (facts.usage.legacy_owners, facts.usage.nft_owners, facts.usage.nft_tables) == (
        ("Docker",),
        (),
        ("ip filter",),
    )
    findings = diagnose(facts)
    assert findings_of(findings, "mixed backends") == [
        (
            "info",
            "Docker's chains are in the legacy tables, while `iptables` runs iptables-nft (nf_tables): "
            "`iptables -L` and `iptables-save` do not show them, iptables-legacy-save does",
            None,
        )
    ]
    choice = choose_backend(facts.usage)
    assert (choice.backend, choice.both) == ("nft", True)
    kernel_log, monitor = trace_sources(facts, choice)
    assert kernel_log.shows == "the steps in the legacy tables ipv4 filter, ipv4 nat (Docker's chains)"
    assert monitor.shows == "the steps in the nf_tables tables ip filter, ip raw"
    assert monitor.what == "nf_tables trace events (netlink)"
    assert findings_of(findings, "trace readers") == [
        ("ok", f"tail -f /var/log/kern.log | tracelog parse shows {kernel_log.shows}", None),
        ("ok", f"stdbuf -oL xtables-monitor --trace | tracelog parse shows {monitor.shows}", None),
        (
            "warn",
            "a traced packet's steps are split between two readers, tail -f /var/log/kern.log and stdbuf -oL "
            "xtables-monitor --trace, and tracelog shows the part each one read as a packet of its own",
            "read both, each with its own tracelog parse; or keep every rule in one backend",
        ),
    ]
    assert tracing_works(findings)  # a split trace is still a trace
    assert "trace readers" in [problem.check for problem in doctor.backend_problems(findings, ["ipv4"])]


def test_the_other_way_round_docker_in_nf_tables_while_iptables_runs_legacy(host: FakeHost) -> None:
    host.write("proc/net/ip_tables_names", "")
    host.save("legacy", "")
    host.save("nft", DOCKER_LEGACY_SAVE)
    host.outputs[("nft", "list", "tables")] = "table ip filter\n"
    [(level_, message, _)] = findings_of(host.findings(), "mixed backends")
    assert (level_, message) == (
        "info",
        "Docker's chains are in the nf_tables tables, while `iptables` runs iptables-legacy (python-iptables): "
        "`iptables -L` and `iptables-save` do not show them, iptables-nft-save does",
    )
    facts = host.facts()
    legacy = choose_backend(facts.usage, "legacy")
    _, monitor = trace_sources(facts, legacy)
    # a kernel fact the lab shows: nf_tables reports a packet a legacy TRACE rule flagged only while its trace
    # switch is on, which an nf_tables rule that sets nftrace holds on
    assert monitor.shows.endswith(
        "; nf_tables reports them only while an nftables rule that sets nftrace exists on this host "
        "(the kernel's trace switch: `tracelog enable --backend nft` adds one)"
    )


def test_empty_legacy_tables_beside_nf_tables_add_their_policy_steps(host: FakeHost) -> None:
    """Legacy tables once loaded (`iptables-legacy -L` is enough) stay and print policy lines for flagged packets."""
    host.write("proc/net/ip_tables_names", "raw\nfilter\n")
    host.save("legacy", "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n")
    host.save("nft", NFT_SAVE)
    facts = host.facts()
    choice = choose_backend(facts.usage)
    assert (choice.backend, choice.both) == ("nft", False)
    kernel_log, _ = trace_sources(facts, choice)
    assert kernel_log.shows == (
        "the steps in the legacy tables ipv4 raw, ipv4 filter; they hold no rules, so mostly their policy steps"
    )
    [spread] = [finding for finding in diagnose(facts) if finding.check == "trace readers" and finding.fix]
    assert (spread.level, spread.fix) == ("info", "read both, each with its own tracelog parse")


def test_one_backend_one_reader(host: FakeHost) -> None:
    facts = host.facts()
    [source] = trace_sources(facts, choose_backend(facts.usage))
    assert source.shows == "the steps in the legacy tables ipv4 filter, ipv4 raw"
    assert findings_of(diagnose(facts), "trace readers") == [
        (
            "ok",
            "tail -f /var/log/kern.log | tracelog parse shows the steps in the legacy tables ipv4 filter, ipv4 raw",
            None,
        )
    ]


def test_without_nft_the_tables_come_from_iptables_nft_save(host: FakeHost) -> None:
    host.save("legacy", "")
    host.save("nft", "*raw\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n*filter\n:INPUT DROP [0:0]\nCOMMIT\n")
    assert host.facts().usage.nft_tables == ("ip raw", "ip filter")


@pytest.mark.parametrize(
    ("tools", "expected"),
    [(("xtables-monitor", "nft"), "ok"), (("nft",), "warn"), ((), "fail")],
)
def test_nft_trace_readers(host: FakeHost, tools: tuple[str, ...], expected: str) -> None:
    host.save("legacy", "")
    host.save("nft", NFT_SAVE)
    for tool in {"xtables-monitor", "nft"} - set(tools):
        host.remove(f"usr/sbin/{tool}")
    assert level(host.findings(), "nft trace reader") == [expected]


@pytest.mark.parametrize(
    ("setup", "reader"),
    [
        (lambda host: None, "tail -f /var/log/kern.log"),
        (lambda host: (host.remove("proc/100/comm"), host.process(1, "systemd-journal")), "journalctl -k -f"),
        (lambda host: host.remove("proc/100/comm"), "dmesg -w"),
    ],
)
def test_where_kernel_messages_go(host: FakeHost, setup: Callable[[FakeHost], object], reader: str) -> None:
    setup(host)
    facts = host.facts()
    [source] = trace_sources(facts, choose_backend(facts.usage))
    assert source.reader == reader
    assert tracing_works(diagnose(facts))


def test_parsers_of_proc_files() -> None:
    assert host_facts.parse_nf_log(NF_LOG) == {
        "ipv4": NfLog("nf_log_ipv4", ("nf_log_ipv4", "nfnetlink_log")),
        "ipv6": NfLog("nf_log_ipv6", ("nf_log_ipv6", "nfnetlink_log")),
    }
    assert host_facts.ulogd_log_file(ULOGD_CONF) == "/var/log/ulog/trace.log"
    assert host_facts.ulogd_log_file("") == host_facts.DEFAULT_ULOGD_FILE
    assert host_facts.has_net_admin("CapEff:\t0000000000001000\n")
    assert not host_facts.has_net_admin("CapEff:\t0000000000000fff\n")
    assert not host_facts.has_net_admin("")


def test_cli_prints_each_problem_with_its_fix(host: FakeHost, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    host.write("proc/net/netfilter/nf_log", NF_LOG.replace(" 2 nf_log_ipv4 (", " 2 NONE ("))
    facts = host.facts()
    monkeypatch.setattr(host_facts, "probe_host", lambda: facts)
    run = run_cli("doctor")
    assert run.status == ExitStatus.DOCTOR_FAILED
    assert int(ExitStatus.DOCTOR_FAILED) == 7
    assert (
        "fail  nf_log ipv4: no logger is bound for ipv4: legacy TRACE prints nothing\n"
        "      fix: sysctl -w net.netfilter.nf_log.2=nf_log_ipv4\n" in run.stdout
    )
    assert run.stdout.endswith("tracing will not work here: 1 problem to fix\n")
    host.write("proc/net/netfilter/nf_log", NF_LOG)
    healthy = host.facts()
    monkeypatch.setattr(host_facts, "probe_host", lambda: healthy)
    run = run_cli("doctor")
    assert (run.status, run.stdout.splitlines()[-1]) == (ExitStatus.OK, "tracing should work here")


# -- container engines' nftables rules beside iptables ---------------------------------------------------

DOCKER_TABLES = "table ip docker-bridges\ntable ip6 docker-bridges\n"


def test_a_forward_policy_drop_beside_dockers_nftables_rules_is_the_known_trap(host: FakeHost) -> None:
    """LEGACY_SAVE's filter FORWARD has policy DROP; Docker 29's nftables backend accepts in its own table."""
    host.outputs[("nft", "list", "tables")] = DOCKER_TABLES
    host.bridge("docker0", (1, 1))
    [trap] = [finding for finding in host.findings() if finding.check == "forward policy"]
    assert trap.level == "warn"
    assert "iptables-legacy" in trap.message
    assert "Docker's (ip docker-bridges)" in trap.message
    assert "a drop in any one wins" in trap.message
    assert trap.fix is not None
    assert "docker0" in trap.fix
    assert any("policy DROP" in warning for warning in doctor.tracing_warnings(host.facts(), "auto", ["ipv4"]))


def test_netavarks_table_beside_an_iptables_nft_forward_drop(host: FakeHost) -> None:
    host.save("legacy", LEGACY_SAVE.replace(":FORWARD DROP", ":FORWARD ACCEPT"))
    host.save("nft", "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n")
    host.outputs[("nft", "list", "tables")] = "table ip filter\ntable inet netavark\n"
    [trap] = [finding for finding in host.findings() if finding.check == "forward policy"]
    assert "the filter FORWARD of iptables-nft has policy DROP" in trap.message
    assert "netavark's (Podman) (inet netavark)" in trap.message


@pytest.mark.parametrize(
    ("save", "tables"),
    [
        (LEGACY_SAVE, ""),  # FORWARD DROP, but no container engine's nftables table
        (LEGACY_SAVE.replace(":FORWARD DROP", ":FORWARD ACCEPT"), DOCKER_TABLES),
        (LEGACY_SAVE.replace("*filter", "*mangle"), DOCKER_TABLES),  # FORWARD of another table
    ],
)
def test_no_trap_without_both_halves(host: FakeHost, save: str, tables: str) -> None:
    host.save("legacy", save)
    host.outputs[("nft", "list", "tables")] = tables
    assert level(host.findings(), "forward policy") == []


def test_rootless_podman_keeps_its_rules_in_its_own_namespace(host: FakeHost) -> None:
    host.process(300, "rootlessport")
    host.process(301, "slirp4netns")
    [found] = [finding for finding in host.findings() if finding.check == "rootless Podman"]
    assert found.level == "warn"
    assert "rootlessport, slirp4netns" in found.message
    assert found.fix is not None
    assert found.fix.startswith(
        "run tracelog there, as the user who runs the containers: podman unshare --rootless-netns"
    )


def test_in_the_rootless_namespace_itself_it_is_only_a_note(host: FakeHost) -> None:
    host.process(300, "rootlessport")
    host.save("legacy", LEGACY_SAVE.replace("COMMIT", ":NETAVARK_FORWARD - [0:0]\nCOMMIT"))
    assert level(host.findings(), "rootless Podman") == ["info"]


def test_no_rootless_podman_no_finding(host: FakeHost) -> None:
    assert level(host.findings(), "rootless Podman") == []
