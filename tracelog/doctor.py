"""Why a trace may show nothing: facts read from a host (or a fake /proc tree), and findings with fixes.

`probe_host` only reads; `diagnose` and `trace_sources` are pure functions of
the facts, so every check is tested on fake trees without root.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from tracelog.errors import Unavailable
from tracelog.events import Family
from tracelog.rules.backends import BACKENDS, SAVE_TOOLS, BackendName, Probe, run_probe
from tracelog.rules.detect import BackendUsage, Choice, choose_backend, parse_requested, probe_usage
from tracelog.rules.legacy import load_iptc

Level = Literal["ok", "info", "warn", "fail"]
NFPROTO: dict[Family, int] = {"ipv4": 2, "ipv6": 10}
ALL_NETNS_KNOB = "proc/sys/net/netfilter/nf_log_all_netns"
BRIDGE_KNOBS: dict[Family, str] = {"ipv4": "bridge-nf-call-iptables", "ipv6": "bridge-nf-call-ip6tables"}
CAP_NET_ADMIN = 12
SYSLOG_DAEMONS = ("rsyslogd", "syslog-ng", "syslogd")
JOURNALD = "systemd-journal"  # /proc/PID/comm is cut at 15 characters
LOG_FILES = ("var/log/kern.log", "var/log/syslog", "var/log/messages")
DEFAULT_ULOGD_FILE = "/var/log/ulog/syslogemu.log"
_TOOL_DIRS = ("usr/local/sbin", "usr/local/bin", "usr/sbin", "usr/bin", "sbin", "bin")
_XTABLES_DIRS = ("usr/lib/*/xtables", "usr/lib/xtables", "usr/lib64/xtables", "lib/*/xtables", "usr/local/lib/xtables")
TOOLS = ("xtables-monitor", "nft", "iptables-nft", "stdbuf", "iptables-legacy-save")


@dataclass(frozen=True, slots=True)
class NfLog:
    """One family's line of /proc/net/netfilter/nf_log: the bound logger and the registered ones."""

    bound: str | None
    available: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HostFacts:
    """Everything the checks look at, read once."""

    net_admin: bool
    usage: BackendUsage
    in_init_netns: bool | None = None
    netns_name: str | None = None
    nf_log_all_netns: int | None = None
    nf_log: dict[Family, NfLog] = field(default_factory=dict)
    bridges: tuple[str, ...] = ()
    bridge_calls: dict[Family, int | None] = field(default_factory=dict)
    trace_module: bool | None = None
    trace_extension: bool | None = None
    legacy_library: str | None = None
    tools: frozenset[str] = frozenset()
    processes: frozenset[str] = frozenset()
    log_files: tuple[str, ...] = ()
    ulogd_file: str = DEFAULT_ULOGD_FILE


@dataclass(frozen=True, slots=True)
class Finding:
    """One check's verdict, and the command that fixes it when there is one."""

    check: str
    level: Level
    message: str
    fix: str | None = None
    family: Family | None = None


@dataclass(frozen=True, slots=True)
class Source:
    """Where this host puts one backend's trace output, the command that reads it, and which steps it gets."""

    what: str
    reader: str
    backend: BackendName
    shows: str = ""

    def command(self, rules: Iterable[Path] = ()) -> str:
        """`dmesg -w | tracelog parse --rules SNAPSHOT`: snapshots turn legacy rule numbers into rules."""
        return " ".join([self.reader, "| tracelog parse", *(f"--rules {path}" for path in rules)])


# -- probing --------------------------------------------------------------------------------------------


def probe_host(
    root: Path = Path("/"),
    probe: Probe = run_probe,
    legacy_library: Callable[[], str | None] | None = None,
) -> HostFacts:
    """Read the facts from `root` (a real host is `/`); `probe` runs the few read-only tools needed."""
    in_init = _in_init_netns(root)
    return HostFacts(
        net_admin=has_net_admin(_read(root / "proc/self/status") or ""),
        usage=probe_usage(probe, root),
        in_init_netns=in_init,
        netns_name=_netns_name(root),
        nf_log_all_netns=_nf_log_all_netns(root, probe, in_init),
        nf_log=parse_nf_log(_read(root / "proc/net/netfilter/nf_log") or ""),
        bridges=tuple(sorted(path.parent.name for path in (root / "sys/class/net").glob("*/bridge"))),
        bridge_calls={family: _read_int(root / "proc/sys/net/bridge" / BRIDGE_KNOBS[family]) for family in NFPROTO},
        trace_module=_trace_module(root),
        trace_extension=_trace_extension(root),
        legacy_library=(legacy_library or _legacy_library_problem)(),
        tools=frozenset(tool for tool in TOOLS if _which(tool, root)),
        processes=frozenset(_processes(root)),
        log_files=tuple("/" + name for name in LOG_FILES if (root / name).is_file()),
        ulogd_file=ulogd_log_file(_read(root / "etc/ulogd.conf") or ""),
    )


def has_net_admin(status: str) -> bool:
    """Whether /proc/self/status grants CAP_NET_ADMIN, which every rule change needs."""
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> CAP_NET_ADMIN & 1)
    return False


def parse_nf_log(text: str) -> dict[Family, NfLog]:
    """`2 nf_log_ipv4 (nf_log_ipv4,nfnetlink_log)` per family; NONE is no logger bound."""
    found: dict[Family, NfLog] = {}
    numbers = {number: family for family, number in NFPROTO.items()}
    for line in text.splitlines():
        words = line.split(None, 2)
        if len(words) < 2 or not words[0].isdigit() or int(words[0]) not in numbers:
            continue
        available = tuple(name for name in words[2].strip("()").split(",") if name) if len(words) > 2 else ()
        found[numbers[int(words[0])]] = NfLog(None if words[1] == "NONE" else words[1], available)
    return found


def ulogd_log_file(conf: str) -> str:
    """The LOGEMU output file of ulogd.conf (`[emu1]` `file="…"`), where nfnetlink_log TRACE lines land."""
    section = ""
    for raw in conf.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif section.startswith("emu") and line.startswith("file") and "=" in line:
            return line.split("=", 1)[1].strip().strip('"')
    return DEFAULT_ULOGD_FILE


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _read_int(path: Path) -> int | None:
    text = _read(path)
    return int(text) if text is not None and text.strip().lstrip("-").isdigit() else None


def _in_init_netns(root: Path) -> bool | None:
    """The kernel gives only the initial namespace the nf_log_all_netns knob; else compare namespace links."""
    if (root / ALL_NETNS_KNOB).exists():
        return True
    if (root / "proc/sys/net/netfilter/nf_log").is_dir():
        return False
    reference = _init_netns_link(root)
    if reference is None:
        return None
    try:
        return os.readlink(root / "proc/self/ns/net") == os.readlink(reference)
    except OSError:
        return None


def _init_netns_link(root: Path) -> Path | None:
    """A readable ns/net link of the initial namespace: kthreadd's (always there), else PID 1's."""
    for pid in ("2", "1"):
        if pid == "2" and (_read(root / "proc/2/comm") or "").strip() != "kthreadd":
            continue  # in a PID namespace, PID 2 is just some process
        link = root / "proc" / pid / "ns/net"
        try:
            os.readlink(link)
        except OSError:
            continue
        return link
    return None


def _netns_name(root: Path) -> str | None:
    """The `ip netns` name of this namespace, so printed commands can be run from outside it."""
    try:
        ours = os.stat(root / "proc/self/ns/net")
        named = list((root / "run/netns").iterdir())
    except OSError:
        return None
    for entry in named:
        try:
            theirs = entry.stat()
        except OSError:
            continue
        if (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino):
            return entry.name
    return None


def _nf_log_all_netns(root: Path, probe: Probe, in_init: bool | None) -> int | None:
    """The knob lives only in the initial namespace; from another one it is read there with nsenter."""
    local = _read_int(root / ALL_NETNS_KNOB)
    reference = _init_netns_link(root)
    if local is not None or in_init or reference is None:
        return local
    text = probe(["nsenter", f"--net={reference}", "cat", f"/{ALL_NETNS_KNOB}"])
    return int(text) if text is not None and text.strip().isdigit() else None


def _trace_module(root: Path) -> bool | None:
    """xt_TRACE loaded, built in or installed as a module; None when the module tree is not visible."""
    if "TRACE" in (_read(root / "proc/net/ip_tables_targets") or "").split():
        return True
    release = (_read(root / "proc/sys/kernel/osrelease") or "").strip()
    modules = root / "lib/modules" / release
    if not release or not modules.is_dir():
        return None
    lists = (_read(modules / name) or "" for name in ("modules.dep", "modules.builtin"))
    return any("/xt_TRACE.ko" in text for text in lists)


def _trace_extension(root: Path) -> bool | None:
    """libxt_TRACE.so: iptables (both flavours) and python-iptables cannot parse `-j TRACE` without it.

    `$XTABLES_LIBDIR`, when set, is the only directory iptables looks in.
    """
    configured = os.environ.get("XTABLES_LIBDIR") if root == Path("/") else None
    if configured:
        return any((Path(directory) / "libxt_TRACE.so").exists() for directory in configured.split(":"))
    if any(next(root.glob(f"{directory}/libxt_TRACE.so"), None) is not None for directory in _XTABLES_DIRS):
        return True
    return False if any(next(root.glob(directory), None) is not None for directory in _XTABLES_DIRS) else None


def _legacy_library_problem() -> str | None:
    try:
        load_iptc()
    except Unavailable as error:
        return str(error)
    return None


def _which(tool: str, root: Path) -> bool:
    if root == Path("/") and shutil.which(tool):
        return True
    return any((root / directory / tool).is_file() for directory in _TOOL_DIRS)


def _processes(root: Path) -> Iterable[str]:
    for comm in (root / "proc").glob("[0-9]*/comm"):
        text = _read(comm)
        if text:
            yield text.strip()


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
            f"{_chains_of(owners)} are in the {_TABLE_WORDS[other]}, while `iptables` runs {runs}: "
            f"`iptables -L` and `iptables-save` do not show them, {shown_by} does",
        )
    ]


_TABLE_WORDS: dict[BackendName, str] = {"legacy": "legacy tables", "nft": "nf_tables tables"}


def _chains_of(owners: Sequence[str]) -> str:
    """`Docker's chains`, `the chains of Docker and kube-proxy`."""
    if len(owners) == 1:
        return f"{owners[0]}'s chains"
    return f"the chains of {', '.join(owners[:-1])} and {owners[-1]}"


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
    whose = f", {_chains_of(usage.legacy_owners)} among them," if usage.legacy_owners else ""
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


# -- where to read --------------------------------------------------------------------------------------


def trace_sources(facts: HostFacts, choice: Choice, family: Family = "ipv4") -> list[Source]:
    """Where this host puts each part of a trace: the chosen backend's reader, then the other's if it gets steps.

    `-j TRACE` only flags the packet; every table it then crosses reports
    it, each through its own backend: legacy tables print to the kernel log,
    nf_tables sends netlink events.  So the other backend's reader gets steps
    too whenever that backend has tables here, rules or not.
    """
    other: BackendName = "nft" if choice.backend == "legacy" else "legacy"
    backends = [choice.backend] + ([other] if facts.usage.tables(other) or choice.both else [])
    sources = []
    for backend in sorted(backends, key=BACKENDS.index):
        source = _legacy_source(facts, family) if backend == "legacy" else _nft_source(facts)
        sources.append(replace(source, shows=_shown_steps(facts.usage, backend, backend == choice.backend, family)))
    return sources


def _nft_source(facts: HostFacts) -> Source:
    inside = f"ip netns exec {facts.netns_name} " if facts.netns_name and facts.in_init_netns is False else ""
    reader = "stdbuf -oL xtables-monitor --trace" if "xtables-monitor" in facts.tools else "nft monitor trace"
    return Source("nf_tables trace events (netlink)", inside + reader, "nft")


def _shown_steps(usage: BackendUsage, backend: BackendName, traced_here: bool, family: Family) -> str:
    """`the steps in the legacy tables ipv4 filter, ipv4 nat (Docker's chains)`, or why there are only policies."""
    tables = list(usage.tables(backend))
    raw = f"{family} raw" if backend == "legacy" else f"{'ip' if family == 'ipv4' else 'ip6'} raw"
    if traced_here and raw not in tables:
        tables.append(raw)  # where tracelog puts its TRACE rules
    names = ", ".join(tables) or "none yet"
    owners = f" ({_chains_of(usage.owners(backend))})" if usage.owners(backend) else ""
    steps = f"the steps in the {_TABLE_WORDS[backend]} {names}{owners}"
    if usage.rules(backend) == 0:
        held = "tracelog's TRACE rules" if traced_here else "no rules"
        steps += f"; they hold {held}, so mostly their policy steps"
    return steps


def split_trace(facts: HostFacts, choice: Choice) -> bool:
    """Whether the rules that decide a packet's fate are in the backend whose reader tracelog does not print first."""
    other: BackendName = "nft" if choice.backend == "legacy" else "legacy"
    return facts.usage.used(other)


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


def _legacy_source(facts: HostFacts, family: Family) -> Source:
    entry = facts.nf_log.get(family)
    if entry is not None and entry.bound == "nfnetlink_log":
        return Source(
            "ulogd (nf_log is nfnetlink_log: TRACE goes to NFLOG group 0)", f"tail -f {facts.ulogd_file}", "legacy"
        )
    daemons = sorted(set(SYSLOG_DAEMONS) & facts.processes)
    if daemons and facts.log_files:
        return Source(
            f"the kernel log, written to {facts.log_files[0]} by {daemons[0]}",
            f"tail -f {facts.log_files[0]}",
            "legacy",
        )
    if JOURNALD in facts.processes:
        return Source("the kernel log, kept by the journal", "journalctl -k -f", "legacy")
    return Source("the kernel ring buffer (no syslog daemon writes it to a file)", "dmesg -w", "legacy")


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
