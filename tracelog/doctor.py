"""Why a trace may show nothing: findings with fixes, from the facts `tracelog.rules.host` reads.

`diagnose` is a pure function of the facts, so every check is tested on
fake /proc trees without root.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from tracelog.events import Family
from tracelog.rules.backends import SAVE_TOOLS, BackendName
from tracelog.rules.detect import BackendUsage, Choice, choose_backend, parse_requested
from tracelog.rules.host import (
    BRIDGE_KNOBS,
    JOURNALD,
    NFPROTO,
    SYSLOG_DAEMONS,
    TABLE_WORDS,
    HostFacts,
    chains_of,
    split_trace,
    trace_sources,
)

Level = Literal["ok", "info", "warn", "fail"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One check's verdict, and the command that fixes it when there is one."""

    check: str
    level: Level
    message: str
    fix: str | None = None
    family: Family | None = None


# -- probing --------------------------------------------------------------------------------------------


# -- checks ---------------------------------------------------------------------------------------------


def diagnose(facts: HostFacts, requested: str = "auto") -> list[Finding]:
    """Every check, in the order a trace needs them, for the backend tracelog would use (or `requested`)."""
    choice = choose_backend(facts.usage, parse_requested(requested))
    legacy = choice.backend == "legacy" or choice.both
    nft = choice.backend == "nft" or choice.both
    findings = [
        _privileges(facts),
        _backends(facts, choice),
        *_mixed_backends(facts.usage),
        *_trace_target(facts, choice),
    ]
    if legacy:
        findings += [*_nf_log_checks(facts), *_netns_check(facts), _log_sink(facts)]
    if nft:
        findings.append(_nft_reader(facts))
    findings += _reader_findings(facts, choice)
    findings += _bridge_checks(facts)
    findings += _forward_policy_trap(facts.usage, facts.bridges)
    findings += _rootless_podman(facts)
    return findings


def tracing_works(findings: Iterable[Finding]) -> bool:
    """The doctor's exit code: no check failed."""
    return all(finding.level != "fail" for finding in findings)


def _privileges(facts: HostFacts) -> Finding:
    if facts.net_admin:
        return Finding("privileges", "ok", "CAP_NET_ADMIN: tracelog can change the firewall")
    return Finding(
        "privileges",
        "fail",
        "no CAP_NET_ADMIN: tracelog cannot add TRACE rules",
        "run tracelog as root (sudo tracelog …)",
    )


def _backends(facts: HostFacts, choice: Choice) -> Finding:
    message = f"tracelog would use {_backend_words(choice.backend)}: {choice.reason}"
    if choice.both:
        return Finding(
            "backends",
            "warn",
            message + ". A packet one backend flags is traced by the tables of both: the steps in legacy tables "
            "print to the kernel log, those in nf_tables go to xtables-monitor (see trace readers)",
        )
    return Finding("backends", "ok", message)


def _mixed_backends(usage: BackendUsage) -> list[Finding]:
    """Programs whose chains sit in the backend `iptables` does not run: `iptables -L` does not show them."""
    flavour = usage.iptables_flavour
    if flavour is None:
        return []
    other: BackendName = "legacy" if flavour == "nft" else "nft"
    owners = [owner for owner in usage.owners(other) if owner not in usage.owners(flavour)]
    if not owners:
        return []
    runs, shown_by = _backend_words(flavour), SAVE_TOOLS[other]["ipv4"]
    return [
        Finding(
            "mixed backends",
            "info",
            f"{chains_of(owners)} are in the {TABLE_WORDS[other]}, while `iptables` runs {runs}: "
            f"`iptables -L` and `iptables-save` do not show them, {shown_by} does",
        )
    ]


def _backend_words(backend: BackendName) -> str:
    return "iptables-legacy (python-iptables)" if backend == "legacy" else "iptables-nft (nf_tables)"


def _trace_target(facts: HostFacts, choice: Choice) -> list[Finding]:
    findings = []
    if facts.trace_extension is False:
        findings.append(
            Finding(
                "TRACE target",
                "fail",
                "libxt_TRACE.so is missing: iptables cannot parse -j TRACE",
                "reinstall iptables (apt install --reinstall iptables)",
            )
        )
    if choice.backend == "legacy" and facts.trace_module is False:
        findings.append(
            Finding(
                "TRACE target",
                "fail",
                "this kernel has no xt_TRACE module",
                "install the kernel's extra modules (apt install linux-modules-extra-$(uname -r))",
            )
        )
    if choice.backend == "legacy" and facts.legacy_library is not None:
        findings.append(Finding("TRACE target", "fail", facts.legacy_library, _legacy_library_fix(facts.usage)))
    if choice.backend == "nft" and "iptables-nft" not in facts.tools:
        findings.append(Finding("TRACE target", "fail", "iptables-nft is not installed", "apt install iptables"))
    if not findings:
        where = (
            "nf_tables sets the trace flag natively"
            if choice.backend == "nft"
            else (
                "xt_TRACE is available" if facts.trace_module else "xt_TRACE: module tree not visible, assumed built in"
            )
        )
        findings.append(Finding("TRACE target", "ok", where))
    return findings


def _legacy_library_fix(usage: BackendUsage) -> str:
    """Installing the library; `--backend nft` only where no legacy rule's steps would move out of sight.

    The TRACE rule would move to nf_tables, but the legacy tables keep
    printing their steps to the kernel log, a reader other than the one
    `--backend nft` prints.
    """
    if not usage.legacy_used:
        return "pip install python-iptables, or use --backend nft"
    whose = f", {chains_of(usage.legacy_owners)} among them," if usage.legacy_owners else ""
    return (
        "pip install python-iptables (with --backend nft the TRACE rule goes to nf_tables, but the steps in the "
        f"legacy tables{whose} still print to the kernel log only: read both trace readers then)"
    )


def _nf_log_checks(facts: HostFacts) -> list[Finding]:
    findings = []
    for family, number in NFPROTO.items():
        entry = facts.nf_log.get(family)
        name = f"nf_log {family}"
        fix = f"sysctl -w net.netfilter.nf_log.{number}=nf_log_{family}"
        if entry is None:
            findings.append(Finding(name, "warn", "/proc/net/netfilter/nf_log is not readable here", None, family))
        elif entry.bound is None and f"nf_log_{family}" in entry.available:
            findings.append(
                Finding(name, "fail", f"no logger is bound for {family}: legacy TRACE prints nothing", fix, family)
            )
        elif entry.bound is None:
            findings.append(Finding(name, "ok", f"nf_log_{family} binds itself when the first TRACE rule loads it"))
        elif entry.bound == "nfnetlink_log":
            findings.append(_nfnetlink_log(facts, family, fix))
        else:
            findings.append(Finding(name, "ok", f"{entry.bound} prints legacy TRACE lines to the kernel log"))
    return findings


def _nfnetlink_log(facts: HostFacts, family: Family, fix: str) -> Finding:
    message = "nfnetlink_log is bound: legacy TRACE lines go to NFLOG group 0, not the kernel log"
    if "ulogd" in facts.processes:
        return Finding(f"nf_log {family}", "ok", f"{message}; ulogd writes them to {facts.ulogd_file}")
    return Finding(
        f"nf_log {family}",
        "fail",
        f"{message}, and no ulogd is running to receive them",
        f"start ulogd2, or bind the kernel logger: {fix}",
        family,
    )


def _netns_check(facts: HostFacts) -> list[Finding]:
    if facts.in_init_netns is not False:
        return []
    name = "nf_log_all_netns"
    if facts.nf_log_all_netns == 1:
        return [Finding(name, "ok", "not the initial network namespace, and nf_log_all_netns=1 lets it log")]
    fix = "on the host (initial namespace): sysctl -w net.netfilter.nf_log_all_netns=1"
    if facts.nf_log_all_netns is None:
        return [
            Finding(
                name,
                "warn",
                "not the initial network namespace, and nf_log_all_netns could not be read: "
                "legacy TRACE lines are dropped unless it is 1",
                fix,
            )
        ]
    return [
        Finding(
            name, "fail", "not the initial network namespace, and nf_log_all_netns=0 drops its legacy TRACE lines", fix
        )
    ]


def _log_sink(facts: HostFacts) -> Finding:
    daemons = sorted(set(SYSLOG_DAEMONS) & facts.processes)
    if daemons and facts.log_files:
        return Finding("kernel log", "ok", f"{daemons[0]} writes kernel messages to {facts.log_files[0]}")
    if JOURNALD in facts.processes:
        return Finding("kernel log", "ok", "systemd-journald keeps kernel messages: journalctl -k")
    return Finding(
        "kernel log",
        "info",
        "no syslog daemon or journald: kernel messages stay in the ring buffer (dmesg), which overwrites old lines",
        "read them live: dmesg -w | tracelog parse",
    )


def _nft_reader(facts: HostFacts) -> Finding:
    if "xtables-monitor" in facts.tools:
        return Finding("nft trace reader", "ok", "xtables-monitor --trace prints nf_tables trace events")
    if "nft" in facts.tools:
        return Finding(
            "nft trace reader",
            "warn",
            "xtables-monitor is missing; nft monitor trace can read the events",
            "apt install iptables (for xtables-monitor)",
        )
    return Finding(
        "nft trace reader",
        "fail",
        "neither xtables-monitor nor nft is installed: nf_tables trace events have no reader",
        "apt install iptables nftables",
    )


def _bridge_checks(facts: HostFacts) -> list[Finding]:
    if not facts.bridges:
        return [Finding("bridges", "ok", "no Linux bridge in this namespace")]
    bridges = ", ".join(facts.bridges)
    findings = []
    for family, calls in facts.bridge_calls.items():
        knob = f"net.bridge.{BRIDGE_KNOBS[family]}"
        if calls is None:
            findings.append(
                Finding(
                    "br_netfilter",
                    "warn",
                    f"br_netfilter is not loaded: {family} traffic between ports of {bridges} never crosses iptables",
                    f"modprobe br_netfilter && sysctl -w {knob}=1",
                    family,
                )
            )
        elif calls == 0:
            findings.append(
                Finding(
                    "br_netfilter",
                    "warn",
                    f"{knob}=0: {family} traffic between ports of {bridges} never crosses iptables",
                    f"sysctl -w {knob}=1",
                    family,
                )
            )
    return findings or [Finding("br_netfilter", "ok", f"bridged traffic on {bridges} crosses iptables")]


# Native nftables tables of container engines whose forward rules accept their containers' traffic.
CONTAINER_TABLES = {"docker-bridges": "Docker's", "netavark": "netavark's (Podman)"}
# Processes of rootless Podman's networking: its containers live in a namespace of their own.
ROOTLESS_NETWORKING = frozenset({"rootlessport", "slirp4netns", "pasta"})


def _forward_policy_trap(usage: BackendUsage, bridges: Iterable[str]) -> list[Finding]:
    """iptables' FORWARD policy DROP beside a container engine's nftables accepts: the drop still wins.

    Every base chain on a hook gets its say, in priority order: an accept
    ends the packet's walk through that chain only, and a drop in any chain
    ends the packet.  So iptables' filter FORWARD at policy DROP (ufw,
    firewalld's iptables backend, an admin, Docker's own iptables backend
    before a switch) drops what `ip docker-bridges` or `inet netavark`
    accepted.
    """
    engines = [
        f"{CONTAINER_TABLES[name]} ({table})"
        for table in usage.nft_native_tables
        if (name := table.split()[-1]) in CONTAINER_TABLES
    ]
    if not usage.forward_drop or not engines:
        return []
    chains = ", ".join(f"the filter FORWARD of {tool.removesuffix('-save')}" for tool in usage.forward_drop)
    ports = " ".join(bridges) or "<bridge>"
    return [
        Finding(
            "forward policy",
            "warn",
            f"{chains} has policy DROP while {' and '.join(engines)} nftables rules accept containers' traffic: "
            "each base chain on the forward hook gets its say and a drop in any one wins, so forwarded container "
            "traffic is dropped there after it was accepted (a trace shows the accept, then `policy drop`)",
            f"accept the containers' bridges there too (iptables -I FORWARD -i BRIDGE -j ACCEPT; iptables -I FORWARD "
            f"-o BRIDGE -j ACCEPT, for each of: {ports}), or set that policy to ACCEPT if nothing else relies on it",
        )
    ]


def _rootless_podman(facts: HostFacts) -> list[Finding]:
    """Rootless Podman running: its rules and its containers' traffic are in its rootless network namespace."""
    running = sorted(ROOTLESS_NETWORKING & facts.processes)
    if not running:
        return []
    here = "Podman" in (*facts.usage.legacy_owners, *facts.usage.nft_owners)
    return [
        Finding(
            "rootless Podman",
            "info" if here else "warn",
            f"rootless Podman is running ({', '.join(running)}): its networks' rules (netavark) and its containers' "
            "packets are in its rootless network namespace, not in this one"
            + ("; netavark's rules are here, so this may be that namespace" if here else ""),
            "run tracelog there, as the user who runs the containers: podman unshare --rootless-netns tracelog "
            "doctor (then enable, watch, parse the same way; legacy TRACE lines from that namespace need "
            "sysctl -w net.netfilter.nf_log_all_netns=1 on the host, nft monitor trace works inside it)",
        )
    ]


# -- where to read --------------------------------------------------------------------------------------


def _reader_findings(facts: HostFacts, choice: Choice) -> list[Finding]:
    sources = trace_sources(facts, choice)
    findings = [Finding("trace readers", "ok", f"{source.command()} shows {source.shows}") for source in sources]
    if len(sources) > 1:
        split = split_trace(facts, choice)
        findings.append(
            Finding(
                "trace readers",
                "warn" if split else "info",
                f"a traced packet's steps are {'split between' if split else 'spread over'} two readers, "
                f"{sources[0].reader} and {sources[1].reader}, and tracelog shows the part each one read as a "
                "packet of its own",
                "read both, each with its own tracelog parse"
                + ("; or keep every rule in one backend" if split else ""),
            )
        )
    return findings


def tracing_warnings(facts: HostFacts, backend: str, families: Iterable[Family]) -> list[str]:
    """What `enable` and `watch` warn about: what will keep the trace of `families` from showing, with fixes."""
    problems = backend_problems(diagnose(facts, backend), families)
    return [problem.message + (f"; fix: {problem.fix}" if problem.fix else "") for problem in problems]


def backend_problems(findings: Iterable[Finding], families: Iterable[Family]) -> list[Finding]:
    """The findings worth printing when tracing starts: what will keep the trace of `families` from showing."""
    wanted = set(families)
    return [
        finding
        for finding in findings
        if finding.level in ("fail", "warn")
        and finding.check != "privileges"
        and (finding.family is None or finding.family in wanted)
    ]
