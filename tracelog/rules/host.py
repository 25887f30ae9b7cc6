"""What a host is like for tracing, read once: privileges, backends, loggers, tools, and where its trace goes.

`probe_host` only reads (a real host, or a fake /proc tree in the tests);
`trace_sources` is a pure function of its facts.  Both `tracelog enable`
and `tracelog doctor` start from these facts.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from tracelog.errors import Unavailable
from tracelog.events import Family
from tracelog.rules.backends import BACKENDS, BackendName, Probe, run_probe
from tracelog.rules.detect import BackendUsage, Choice, probe_usage
from tracelog.rules.legacy import load_iptc

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
class Source:
    """Where this host puts one backend's trace output, the command that reads it, and which steps it gets."""

    what: str
    reader: str
    backend: BackendName
    shows: str = ""

    def command(self, rules: Iterable[Path] = ()) -> str:
        """`dmesg -w | tracelog parse --rules SNAPSHOT`: snapshots turn legacy rule numbers into rules."""
        return " ".join([self.reader, "| tracelog parse", *(f"--rules {path}" for path in rules)])


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
    owners = f" ({chains_of(usage.owners(backend))})" if usage.owners(backend) else ""
    steps = f"the steps in the {TABLE_WORDS[backend]} {names}{owners}"
    if usage.rules(backend) == 0:
        held = "tracelog's TRACE rules" if traced_here else "no rules"
        steps += f"; they hold {held}, so mostly their policy steps"
    if backend == "nft" and not traced_here:
        # nf_tables emits trace events behind a kernel-wide switch that only its own rules setting
        # nftrace turn on: a packet a legacy TRACE rule flagged is not reported while none exists.
        steps += (
            "; nf_tables reports them only while an nftables rule that sets nftrace exists on this host "
            "(the kernel's trace switch: `tracelog enable --backend nft` adds one)"
        )
    return steps


def split_trace(facts: HostFacts, choice: Choice) -> bool:
    """Whether the rules that decide a packet's fate are in the backend whose reader tracelog does not print first."""
    other: BackendName = "nft" if choice.backend == "legacy" else "legacy"
    return facts.usage.used(other)


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


TABLE_WORDS: dict[BackendName, str] = {"legacy": "legacy tables", "nft": "nf_tables tables"}


def chains_of(owners: Sequence[str]) -> str:
    """`Docker's chains`, `the chains of Docker and kube-proxy`."""
    if len(owners) == 1:
        return f"{owners[0]}'s chains"
    return f"the chains of {', '.join(owners[:-1])} and {owners[-1]}"
