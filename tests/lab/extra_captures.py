"""Real kernel-log samples the scenario captures (``tests/lab/capture.py``) do not cover.

Run from the repository root, as root::

    python -m tests.lab.extra_captures --out samples
    python -m tests.lab.extra_captures --out samples --only loopback

* ``lookalikes``: ``samples/lookalikes/``: lines that must not be taken for
  TRACE events (``-j LOG`` with a ``DOCKER-DROP:`` prefix, ``-j LOG`` with a
  ``TRACE:`` prefix, ebtables log lines prefixed ``TRACE: eb:``, and the
  ``x_tables`` complaint about a TRACE target outside the raw table) mixed
  with the real TRACE lines of the same packets.
* ``kmsg``: ``samples/lab-legacy/kmsg.txt``: raw ``/dev/kmsg`` records of a
  bridged ping.
* ``loopback``: ``samples/lab-legacy/loopback.dmesg``: a namespace talking to
  itself over ``lo`` with a nat OUTPUT DNAT, so each packet crosses raw twice.

Only namespaces created here are touched. Every captured line comes from the
kernel: windows are cut between unique marker records (``kernlog.Window``),
and a window is captured again when another capture's lines leaked into it.
The two ``lab-legacy`` files are added to that directory's ``meta.json``;
``python -m tests.lab.capture --only legacy`` recreates the directory and
drops them, so run this module after it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.lab import kernlog
from tests.lab.capture import (
    ATTEMPTS,
    ScenarioRun,
    fresh_directory,
    lab_counters,
    lab_interfaces,
    now_iso,
    slice_problem,
    tool_versions,
    write_lines,
    write_meta,
)
from tests.lab.logdaemons import Rsyslog
from tests.lab.netlab import BUSYBOX, DockerLikeLab, parse_trace_counters, run
from tests.lab.scenarios import PlayedCommand, Scenario, Traffic, play_traffic, scenario_named

GENERATOR = "python -m tests.lab.extra_captures"
LOOKALIKE_PREFIX = "tlx"
KMSG_PREFIX = "tlk"
LOOPBACK_NS = "tlx-lo"

C1_V4 = "172.18.0.2"
C2_V4 = "172.18.0.3"
DROPPED_PORT = "8080"

# A user's LOG rules in DOCKER-USER, in chain order (positions 1..3; Docker's -j RETURN stays last).
DOCKER_USER_RULES: tuple[tuple[str, ...], ...] = (
    ("-p", "icmp", "-m", "icmp", "--icmp-type", "8", "-j", "LOG", "--log-prefix", "TRACE: "),
    (
        "-s",
        f"{C1_V4}/32",
        "-d",
        f"{C2_V4}/32",
        "-p",
        "tcp",
        "-m",
        "tcp",
        "--dport",
        DROPPED_PORT,
        "-j",
        "LOG",
        "--log-prefix",
        "DOCKER-DROP: ",
    ),
    ("-s", f"{C1_V4}/32", "-d", f"{C2_V4}/32", "-p", "tcp", "-m", "tcp", "--dport", DROPPED_PORT, "-j", "DROP"),
)
# ebtables rule on the bridge: logs the bridged ICMP frames with a prefix that imitates TRACE.
EBTABLES_RULE: tuple[str, ...] = (
    "-A",
    "FORWARD",
    "-p",
    "IPv4",
    "--ip-proto",
    "icmp",
    "--log-level",
    "warning",
    "--log-prefix",
    "TRACE: eb:",
    "--log-ip",
    "-j",
    "ACCEPT",
)
# A TRACE target outside the raw table: the kernel refuses it and says why in the kernel log.
MISPLACED_TRACE: tuple[tuple[str, ...], ...] = (
    ("iptables-legacy", "-t", "filter", "-A", "INPUT", "-j", "TRACE"),
    ("ip6tables-legacy", "-t", "filter", "-A", "INPUT", "-j", "TRACE"),
)
LOOKALIKE_SCENARIO = Scenario(
    "lookalikes",
    "c1 pings c2 once across docker0 (LOG 'TRACE: ' on the echo request, ebtables log 'TRACE: eb:' on both "
    "frames), then connects to c2:8080, which DOCKER-USER logs with 'DOCKER-DROP: ' and drops (nc -w 2: the "
    "SYN and one retransmission)",
    (
        Traffic("c1", (BUSYBOX, "ping", "-c", "1", "-W", "2", C2_V4)),
        Traffic("c1", (BUSYBOX, "nc", "-w", "2", C2_V4, DROPPED_PORT), may_fail=True, timeout=8.0),
    ),
)

_XT_COMPLAINT = "x_tables: "
_IFACE_FIELD = re.compile(r"\b(?:IN|OUT|PHYSIN|PHYSOUT)=(\S*)")
_LOG_ROW = re.compile(r'^\s*(?P<pkts>\d+)\s+\d+\s+LOG\b.*prefix "(?P<prefix>[^"]*)"')
_NFT_LOG_COUNTER = re.compile(r'log prefix "(?P<prefix>[^"]*)".*counter packets (?P<pkts>\d+)')
_LAB_WINDOW = re.compile(
    re.escape(kernlog.MARKER_TAG) + r" (?P<name>\S+) (?P<run>[0-9a-f]{32}) (?P<edge>begin|end)\s*$"
)

Counters = dict[str, dict[str, int]]


# -- shared helpers ----------------------------------------------------------------


def open_lab_windows(lines: Sequence[str]) -> set[str]:
    """Windows with the lab's own marker tag that began but have not ended.

    ``kernlog.wait_for_quiet_log`` only waits for other tags; a ``tests.lab.capture``
    run uses the same tag as this module, so its windows are checked here.
    """
    opened: set[str] = set()
    for line in lines:
        found = _LAB_WINDOW.search(line)
        if not found:
            continue
        if found["edge"] == "begin":
            opened.add(found["run"])
        else:
            opened.discard(found["run"])
    return opened


def wait_until_no_capture_runs(timeout: float = 60.0) -> None:
    """Wait until no marked capture window (any tag) is open, so ours does not overlap one.

    A window left open by a crashed run would block forever; after ``timeout``
    we go ahead and rely on the checks of the slice.
    """
    kernlog.wait_for_quiet_log(timeout)
    deadline = time.monotonic() + timeout
    while open_lab_windows(kernlog.read_dmesg()) and time.monotonic() < deadline:
        time.sleep(0.5)


def interfaces_named(line: str) -> set[str]:
    """Non-empty ``IN=``/``OUT=``/``PHYSIN=``/``PHYSOUT=`` values of a kernel log line."""
    return {name for name in _IFACE_FIELD.findall(line) if name}


def shell(argv: Sequence[str]) -> str:
    """A command as one would type it."""
    return shlex.join(argv)


def add_to_meta(directory: Path, entries: dict[str, Any]) -> None:
    """Add file entries to an existing ``meta.json`` (or start one), keeping everything else."""
    path = directory / "meta.json"
    meta: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"files": {}}
    meta.setdefault("files", {}).update(entries)
    write_meta(directory, meta)


def capture_context() -> dict[str, str]:
    """Where and when a file was captured, for its own ``meta.json`` entry."""
    return {"generator": GENERATOR, "kernel": platform.release(), "captured_at": now_iso()}


@dataclass
class CommandLog:
    """Commands run to prepare a capture, with their outcome, for ``meta.json``."""

    entries: list[dict[str, Any]] = field(default_factory=list)

    def run(self, argv: Sequence[str], *, check: bool = True, stdin: str | None = None) -> str:
        """Run and record one command; returns its stdout."""
        result = run(argv, check=check, stdin=stdin)
        entry: dict[str, Any] = {"command": shell(argv), "returncode": result.returncode}
        if stdin is not None:
            entry["stdin"] = stdin
        if result.returncode != 0 and result.stderr.strip():
            entry["stderr"] = result.stderr.strip()
        self.entries.append(entry)
        return result.stdout


# -- 1. look-alikes ------------------------------------------------------------------


@dataclass(frozen=True)
class LookalikeCounts:
    """What the kernel counted during one look-alike window: the expected number of each kind of line."""

    trace: Counters
    log_rules: dict[str, int]
    ebtables_log: dict[str, int]

    def expected_lines(self) -> dict[str, int]:
        """Lines of each look-alike kind the window must hold (one per matched packet)."""
        return {
            "log-docker-drop": self.log_rules.get("DOCKER-DROP: ", 0),
            "log-trace-prefix": self.log_rules.get("TRACE: ", 0),
            "ebtables-trace-prefix": self.ebtables_log.get("TRACE: eb:", 0),
            "x_tables-complaint": len(MISPLACED_TRACE),
        }


def classify_lookalike_line(line: str) -> str:
    """The kind of a line in the look-alike window; ``other`` means it does not belong there.

    This only sorts the capture for checking and for ``meta.json``; it is not
    a parser: it knows which prefixes this module's own rules use.
    """
    if _XT_COMPLAINT in line:
        return "x_tables-complaint"
    if "DOCKER-DROP: " in line:
        return "log-docker-drop"
    if "TRACE: eb:" in line:
        return "ebtables-trace-prefix"
    if "TRACE: IN=" in line:
        return "log-trace-prefix"
    if re.search(r"TRACE: [a-z]+:[^ :]+:(?:rule|return|policy):\d+ ", line):
        return "trace"
    return "other"


def lookalike_problem(lines: Sequence[str], counts: LookalikeCounts, interfaces: set[str]) -> str | None:
    """Why a look-alike window does not hold exactly this capture's lines, or None."""
    problem = slice_problem(lines, counts.trace, interfaces)
    if problem:
        return problem
    kinds = [classify_lookalike_line(line) for line in lines]
    strangers = [line for line, kind in zip(lines, kinds, strict=True) if kind == "other"]
    if strangers:
        return f"{len(strangers)} unrelated kernel lines, first: {strangers[0]!r}"
    outsiders = [line for line in lines if interfaces_named(line) - interfaces]
    if outsiders:
        return f"{len(outsiders)} lines name interfaces outside the lab"
    for kind, expected in counts.expected_lines().items():
        if kinds.count(kind) != expected:
            return f"{kinds.count(kind)} {kind} lines, the counters say {expected}"
    return None


def log_rule_counters(lab: DockerLikeLab) -> dict[str, int]:
    """Packets each ``-j LOG`` rule of DOCKER-USER matched, keyed by its prefix."""
    listing = lab.iptables("ipv4", "-t", "filter", "-L", "DOCKER-USER", "-v", "-x", "-n")
    counters: dict[str, int] = {}
    for line in listing.splitlines():
        row = _LOG_ROW.match(line)
        if row:
            counters[row["prefix"]] = counters.get(row["prefix"], 0) + int(row["pkts"])
    return counters


def ebtables_log_counters(lab: DockerLikeLab) -> dict[str, int]:
    """Packets the ebtables log rule matched, read from the nft rule it became."""
    listing = lab.exec(lab.host, ["nft", "list", "chain", "bridge", "filter", "FORWARD"]).stdout
    return {found["prefix"]: int(found["pkts"]) for found in _NFT_LOG_COUNTER.finditer(listing)}


def zero_lookalike_counters(lab: DockerLikeLab) -> None:
    """Reset every counter the look-alike checks read."""
    lab.zero_trace_counters()
    lab.iptables("ipv4", "-t", "filter", "-Z", "DOCKER-USER")
    lab.exec(lab.host, ["ebtables-nft", "-Z", "FORWARD"])


def prepare_lookalike_lab(lab: DockerLikeLab, log: CommandLog) -> None:
    """Add the user's LOG rules to DOCKER-USER and the ebtables log rule on the bridge."""
    for position, spec in enumerate(DOCKER_USER_RULES, start=1):
        log.run(lab.ns_argv(lab.host, ["iptables-legacy", "-t", "filter", "-I", "DOCKER-USER", str(position), *spec]))
    log.run(lab.ns_argv(lab.host, ["ebtables-nft", *EBTABLES_RULE]))


def provoke_misplaced_trace(lab: DockerLikeLab) -> list[PlayedCommand]:
    """Ask for TRACE in the filter table: the kernel rejects it with an ``x_tables:`` line naming TRACE."""
    played = []
    for argv in MISPLACED_TRACE:
        result = lab.exec(lab.host, list(argv), check=False)
        if result.returncode == 0:
            raise RuntimeError(f"{shell(argv)} was accepted; the kernel should refuse TRACE outside raw")
        played.append(PlayedCommand(shell(lab.ns_argv(lab.host, argv)), result.returncode))
    return played


def play_lookalikes(lab: DockerLikeLab) -> tuple[list[str], kernlog.Window, list[PlayedCommand], LookalikeCounts]:
    """One look-alike window, captured again while another capture's lines leak into it."""
    interfaces = lab_interfaces(lab)
    problem = "not played"
    for attempt in range(1, ATTEMPTS + 1):
        wait_until_no_capture_runs()
        kernlog.ensure_nf_log_all_netns()
        zero_lookalike_counters(lab)
        window = kernlog.Window.new(LOOKALIKE_SCENARIO.name)
        window.open()
        try:
            commands = play_traffic(lab, LOOKALIKE_SCENARIO)
            commands += provoke_misplaced_trace(lab)
        finally:
            window.close()
        counts = LookalikeCounts(lab_counters(lab), log_rule_counters(lab), ebtables_log_counters(lab))
        lines = kernlog.slice_window(kernlog.read_dmesg(), window)
        found = lookalike_problem(lines, counts, interfaces)
        if found is None:
            return lines, window, commands, counts
        problem = found
        print(f"  lookalikes: attempt {attempt} discarded: {problem}", file=sys.stderr)
        time.sleep(2.0 * attempt)
    raise RuntimeError(f"lookalikes: no clean capture after {ATTEMPTS} attempts: {problem}")


LINE_KINDS = {
    "trace": "real legacy TRACE events: 'TRACE: <table>:<chain>:<rule|return|policy>:<n> IN=…'",
    "log-docker-drop": "-j LOG --log-prefix 'DOCKER-DROP: ' in filter DOCKER-USER, for the TRACEd SYNs "
    "that the next rule drops: 'DOCKER-DROP: IN=docker0 OUT=docker0 PHYSIN=… SRC=…' (same fields as TRACE)",
    "log-trace-prefix": "-j LOG --log-prefix 'TRACE: ' in filter DOCKER-USER for the TRACEd echo request: "
    "'TRACE: IN=docker0 …', a user prefix imitating TRACE (no <table>:<chain>:<kind>:<n> tag)",
    "ebtables-trace-prefix": "ebtables-nft log rule with --log-prefix 'TRACE: eb:' on the bridge: "
    "'TRACE: eb: IN=<port> OUT=<port> MAC source = … MAC dest = … proto = 0x0800 IP SRC=… IP DST=…, IP tos=…, "
    "IP proto=1' (ebt_log format; IN/OUT are bridge ports)",
    "x_tables-complaint": "the kernel's own printk refusing a TRACE target in the filter table: "
    "'x_tables: ip_tables: TRACE target: only valid in raw table, not filter' (ip6_tables for IPv6)",
}


def lookalike_topology() -> dict[str, str]:
    """The look-alike lab: the Docker-like lab under the ``tlx`` prefix."""
    prefix = LOOKALIKE_PREFIX
    return {
        f"{prefix}-host": "Docker host: bridge docker0 172.18.0.1/16, uplink eth0 192.0.2.1/24, br_netfilter "
        "with bridge-nf-call-iptables=1; iptables-legacy Docker-like ruleset plus raw TRACE rules "
        "(tests/lab/netlab.py) and the LOG/ebtables rules listed in setup_commands",
        f"{prefix}-c1": "container nginx-1, eth0 172.18.0.2, MAC 02:42:ac:12:00:02",
        f"{prefix}-c2": "container nginx-2, eth0 172.18.0.3, MAC 02:42:ac:12:00:03, busybox httpd on :80",
        f"{prefix}-ext": "external client 192.0.2.10 (idle here)",
    }


def kernel_log_readers() -> list[str]:
    """Other processes that may drain ``/proc/kmsg`` (and so steal records from our rsyslogd)."""
    readers = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        name = Path(argv[0].decode(errors="replace")).name if argv and argv[0] else ""
        if name in {"rsyslogd", "klogd", "syslogd"}:
            readers.append(f"{cmdline.parent.name}:{name}")
    return readers


def capture_lookalikes(directory: Path) -> None:
    """``samples/lookalikes``: look-alike lines mixed with real TRACE lines, as dmesg and rsyslog render them."""
    notes: list[str] = []
    files: dict[str, Any] = {}
    setup = CommandLog()
    busy_readers = kernel_log_readers()
    with ExitStack() as stack:
        stack.enter_context(kernlog.nf_log_all_netns())
        rsyslog = None if busy_readers else stack.enter_context(Rsyslog())
        lab = stack.enter_context(DockerLikeLab("legacy", prefix=LOOKALIKE_PREFIX))
        prepare_lookalike_lab(lab, setup)
        (directory / "ruleset.iptables-save").write_text(lab.save("ipv4"))
        files["ruleset.iptables-save"] = {"content": f"iptables-legacy-save in {lab.host} while capturing"}
        (directory / "ruleset.nft").write_text(lab.exec(lab.host, ["nft", "list", "ruleset"]).stdout)
        files["ruleset.nft"] = {
            "content": f"nft list ruleset in {lab.host} before the window: the bridge filter table ebtables-nft made"
        }
        lines, window, commands, counts = play_lookalikes(lab)
        netlink = lab.exec(lab.host, ["nft", "--debug=netlink", "list", "ruleset"]).stdout
        nf_log = lab.exec(lab.host, ["cat", "/proc/net/netfilter/nf_log"]).stdout
        kinds = [classify_lookalike_line(line) for line in lines]
        shared = {
            "scenario": LOOKALIKE_SCENARIO.name,
            "description": LOOKALIKE_SCENARIO.description
            + "; then iptables-legacy and ip6tables-legacy are asked for -j TRACE in the filter table, which "
            "the kernel refuses",
            "commands": [asdict(command) for command in commands],
            "trace_counters": counts.trace,
            "traced_packets": sum(sum(chains.values()) for chains in counts.trace.values()),
            "log_rule_counters": counts.log_rules,
            "ebtables_log_counters": counts.ebtables_log,
            "line_kinds": {kind: kinds.count(kind) for kind in LINE_KINDS},
        }
        files["mixed.dmesg"] = {
            "rendering": "dmesg (util-linux), sliced between marker records that are left out",
            "lines": write_lines(directory / "mixed.dmesg", lines),
            **shared,
        }
        print(f"  lookalikes: {shared['traced_packets']} traced packets, {len(lines)} lines {shared['line_kinds']}")
        rsyslog_config = None
        if rsyslog is None:
            notes.append(f"no rsyslog renderings: other kernel-log readers were running ({', '.join(busy_readers)})")
        else:
            time.sleep(1.0)
            rsyslog_config = rsyslog.config()
            rsyslog.stop()
            for style, rendering in (
                ("traditional", "rsyslogd imklog, RSYSLOG_TraditionalFileFormat"),
                ("fileformat", "rsyslogd imklog, RSYSLOG_FileFormat (high precision)"),
            ):
                rendered = kernlog.slice_window(rsyslog.read(style), window)
                if len(rendered) != len(lines):
                    notes.append(f"rsyslog {style}: {len(rendered)} lines for {len(lines)} kernel records; not kept")
                    continue
                name = f"rsyslog-{style}.log"
                files[name] = {
                    "rendering": f"{rendering}: the same kernel records as mixed.dmesg",
                    "lines": write_lines(directory / name, rendered),
                    **shared,
                }
    meta: dict[str, Any] = {
        "description": "Kernel-log lines that are NOT TRACE events, mixed with the real TRACE lines of the same "
        "packets, so a parser has to tell them apart. Every line comes from the kernel.",
        **capture_context(),
        "backend": "legacy (iptables-legacy for TRACE/LOG) + ebtables-nft (bridge log)",
        "tools": {
            **tool_versions(),
            "ebtables": run(["ebtables-nft", "--version"]).stdout.strip(),
            "ebtables-legacy": shutil.which("ebtables-legacy") or "not installed",
        },
        "topology": lookalike_topology(),
        "setup_commands": setup.entries,
        "nf_log": nf_log,
        "ruleset_netlink": netlink,
        "line_kinds": LINE_KINDS,
        "trace_counters_note": "trace_counters: packets matched by the raw PREROUTING/OUTPUT TRACE rules of "
        f"{LOOKALIKE_PREFIX}-host; log_rule_counters: packets matched by each -j LOG rule of DOCKER-USER (one "
        "LOG line each); ebtables_log_counters: packets matched by the ebtables log rule (one line each). All "
        "zeroed before the window and read after it.",
        "rsyslog_config": rsyslog_config,
        "notes": [
            "ebtables-legacy is not installed here; the ebtables log rule was added with ebtables-nft "
            "(nf_tables). nft list ruleset shows it as a native 'log prefix ... flags ether' statement, but the "
            "kernel runs the xtables 'log' target through nft_compat (see ruleset_netlink), i.e. the kernel's "
            "ebt_log, hence the ebt_log line format ('MAC source = ...') rather than nf_log_syslog's bridge format, "
            "although nf_log for family 7 is nf_log_bridge (see nf_log). ebtables-legacy uses the same kernel "
            "target.",
            "The kernel has no loadable modules (CONFIG_MODULES is not set), so no module load/unload messages "
            "could be provoked. The only kernel printk naming TRACE that could be provoked harmlessly is the "
            "x_tables refusal; it reads 'TRACE target:', not 'TRACE:'. No kernel line with the literal "
            "'TRACE:' other than the trace itself was found.",
            *notes,
        ],
        "files": files,
    }
    write_meta(directory, meta)


# -- 2. raw /dev/kmsg ---------------------------------------------------------------


class KmsgReader:
    """``/dev/kmsg`` opened non-blocking and positioned at its end: yields the records logged after opening."""

    def __init__(self) -> None:
        self._fd: int | None = None
        self.lost = 0

    def __enter__(self) -> KmsgReader:
        self._fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        os.lseek(self._fd, 0, os.SEEK_END)
        return self

    def read_new(self) -> list[str]:
        """Every record logged since the last read, as text lines (continuation lines included).

        Each ``read`` returns one record; ``EPIPE`` means records were overwritten
        before we read them (counted in ``lost``); ``EAGAIN`` means we are done.
        """
        if self._fd is None:
            raise RuntimeError("KmsgReader is not open")
        records: list[bytes] = []
        while True:
            try:
                record = os.read(self._fd, 16384)
            except BlockingIOError:
                break
            except BrokenPipeError:
                self.lost += 1
                continue
            if not record:
                break
            records.append(record)
        return b"".join(records).decode("utf-8", errors="surrogateescape").splitlines()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def kmsg_message(record: str) -> str:
    """The text of a ``prio,seq,usec,flags;text`` record."""
    return record.split(";", 1)[1] if ";" in record else record


def dmesg_message(line: str) -> str:
    """The text of a ``[  123.456789] text`` dmesg line."""
    return line.split("] ", 1)[1] if line.startswith("[") and "] " in line else line


def capture_kmsg(directory: Path) -> dict[str, Any]:
    """``kmsg.txt``: the raw ``/dev/kmsg`` records of the lab's bridged ping; returns its meta entry."""
    scenario = scenario_named("ping")
    with kernlog.nf_log_all_netns(), DockerLikeLab("legacy", prefix=KMSG_PREFIX) as lab:
        interfaces = lab_interfaces(lab)
        problem = "not played"
        for attempt in range(1, ATTEMPTS + 1):
            wait_until_no_capture_runs()
            kernlog.ensure_nf_log_all_netns()
            lab.zero_trace_counters()
            window = kernlog.Window.new("kmsg")
            with KmsgReader() as kmsg:
                window.open()
                try:
                    commands = play_traffic(lab, scenario)
                finally:
                    window.close()
                records = kmsg.read_new()
                lost = kmsg.lost
            counters = lab_counters(lab)
            lines = kernlog.slice_window([r for r in records if not r.startswith(" ")], window)
            dmesg = kernlog.slice_window(kernlog.read_dmesg(), window)
            problem = slice_problem(lines, counters, interfaces) or ""
            if lost:
                problem = f"{lost} records overwritten before they were read"
            elif [kmsg_message(line) for line in lines] != [dmesg_message(line) for line in dmesg]:
                problem = "the kmsg records and dmesg's rendering of the same window differ"
            elif any("TRACE: " not in line for line in lines):
                problem = "non-TRACE records in the window"
            if not problem:
                scenario_run = ScenarioRun(scenario, commands, counters)
                print(f"  kmsg: {scenario_run.traced_packets} packets, {len(lines)} records")
                return {
                    "rendering": "raw /dev/kmsg records ('<prio>,<seq>,<usec>,<flags>;<text>'), read non-blocking "
                    "after lseek(SEEK_END), sliced between marker records that are left out; continuation "
                    "lines (starting with a space) dropped",
                    "lines": write_lines(directory / "kmsg.txt", lines),
                    "continuation_lines_dropped": sum(1 for r in records if r.startswith(" ")),
                    "namespaces": f"{KMSG_PREFIX}-host, {KMSG_PREFIX}-c1, {KMSG_PREFIX}-c2, {KMSG_PREFIX}-ext: the "
                    "topology above under another prefix, so the host-side veth names differ from ping.dmesg",
                    **scenario_run.describe(),
                    **capture_context(),
                }
            print(f"  kmsg: attempt {attempt} discarded: {problem}", file=sys.stderr)
            time.sleep(2.0 * attempt)
    raise RuntimeError(f"kmsg: no clean capture after {ATTEMPTS} attempts: {problem}")


# -- 3. loopback ------------------------------------------------------------------------

LOOPBACK_HTTP_PORT = 8080
LOOPBACK_DNAT_PORT = 8081
LOOPBACK_DNAT = (
    f"-A OUTPUT -d 127.0.0.1/32 -p tcp -m tcp --dport {LOOPBACK_DNAT_PORT} "
    f"-j DNAT --to-destination 127.0.0.1:{LOOPBACK_HTTP_PORT}"
)
LOOPBACK_RULESET = f"""\
*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -i lo -j TRACE
-A OUTPUT -o lo -j TRACE
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
{LOOPBACK_DNAT}
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
COMMIT
"""
LOOPBACK_TRAFFIC: tuple[tuple[str, ...], ...] = (
    (BUSYBOX, "ping", "-c", "2", "-W", "2", "127.0.0.1"),
    (BUSYBOX, "wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{LOOPBACK_DNAT_PORT}/"),
)


class LoopbackNamespace:
    """One namespace with only ``lo`` up, the loopback ruleset and busybox httpd on 127.0.0.1.

    Leaving the ``with`` block stops httpd and deletes the namespace, even when building failed.
    """

    def __init__(self, name: str = LOOPBACK_NS) -> None:
        self.name = name
        self.setup = CommandLog()
        self._httpd: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None

    def argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def __enter__(self) -> LoopbackNamespace:
        if self.name in run(["ip", "netns", "list"]).stdout.split():
            raise RuntimeError(f"namespace {self.name} already exists (delete it with 'ip netns del')")
        try:
            self.setup.run(["ip", "netns", "add", self.name])
            self.setup.run(self.argv(["ip", "link", "set", "lo", "up"]))
            self.setup.run(self.argv(["iptables-legacy-restore"]), stdin=LOOPBACK_RULESET)
            self._workdir = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
            (self._workdir / "index.html").write_text("hello over lo\n")
            httpd = [BUSYBOX, "httpd", "-f", "-p", f"127.0.0.1:{LOOPBACK_HTTP_PORT}", "-h", str(self._workdir)]
            self.setup.entries.append({"command": shell(self.argv(httpd)) + " &", "returncode": None})
            self._httpd = subprocess.Popen(self.argv(httpd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self._wait_for_listener()
        except BaseException:
            self.close()
            raise
        return self

    def _wait_for_listener(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if run(self.argv(["ss", "-Htln", f"sport = :{LOOPBACK_HTTP_PORT}"])).stdout.strip():
                return
            time.sleep(0.05)
        raise RuntimeError(f"httpd does not listen on 127.0.0.1:{LOOPBACK_HTTP_PORT} in {self.name}")

    def trace_counters(self) -> dict[str, int]:
        """Packets the TRACE rule of raw OUTPUT and of raw PREROUTING matched."""
        return {
            f"raw:{chain}": parse_trace_counters(
                run(self.argv(["iptables-legacy", "-t", "raw", "-L", chain, "-v", "-x", "-n", "--line-numbers"])).stdout
            )
            for chain in ("OUTPUT", "PREROUTING")
        }

    def close(self) -> None:
        """Stop httpd and delete the namespace; safe to call more than once."""
        if self._httpd is not None:
            if self._httpd.poll() is None:
                self._httpd.terminate()
                try:
                    self._httpd.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self._httpd.kill()
                    self._httpd.wait()
            self._httpd = None
        run(["ip", "netns", "del", self.name], check=False)
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def loopback_problem(lines: Sequence[str], counters: dict[str, int]) -> str | None:
    """Why a loopback window does not hold exactly this namespace's trace, or None."""
    if kernlog.foreign_window_touches(lines):
        return "another capture's marker is inside the window"
    if any("TRACE: " not in line for line in lines):
        return "non-TRACE lines in the window"
    if any(interfaces_named(line) - {"lo"} for line in lines):
        return "TRACE lines from interfaces other than lo"
    first_lines = sum(1 for line in lines if "TRACE: raw:OUTPUT:" in line)
    if first_lines != counters["raw:OUTPUT"] or counters["raw:OUTPUT"] != counters["raw:PREROUTING"]:
        return f"{first_lines} raw:OUTPUT lines for counters {counters}"
    return None


def capture_loopback(directory: Path) -> dict[str, Any]:
    """``loopback.dmesg``: ping and HTTP (through a nat OUTPUT DNAT) to 127.0.0.1; returns its meta entry."""
    with kernlog.nf_log_all_netns(), LoopbackNamespace() as namespace:
        ruleset = run(namespace.argv(["iptables-legacy-save"])).stdout
        problem = "not played"
        for attempt in range(1, ATTEMPTS + 1):
            wait_until_no_capture_runs()
            kernlog.ensure_nf_log_all_netns()
            run(namespace.argv(["iptables-legacy", "-t", "raw", "-Z"]))
            window = kernlog.Window.new("loopback")
            window.open()
            try:
                commands = []
                for argv in LOOPBACK_TRAFFIC:
                    result = run(namespace.argv(argv), timeout=10.0)
                    commands.append(PlayedCommand(shell(namespace.argv(argv)), result.returncode))
                time.sleep(0.5)
            finally:
                window.close()
            counters = namespace.trace_counters()
            lines = kernlog.slice_window(kernlog.read_dmesg(), window)
            found = loopback_problem(lines, counters)
            if found is None:
                print(f"  loopback: {counters['raw:OUTPUT']} packets, {len(lines)} lines")
                return {
                    "scenario": "loopback",
                    "description": f"namespace {namespace.name} (only lo) pings 127.0.0.1 twice, then fetches "
                    f"http://127.0.0.1:{LOOPBACK_DNAT_PORT}/, which nat OUTPUT DNATs to busybox httpd on "
                    f"127.0.0.1:{LOOPBACK_HTTP_PORT}. Each packet crosses the tables twice: raw OUTPUT and filter "
                    "OUTPUT (plus nat OUTPUT and nat POSTROUTING for a connection's first packet) with OUT=lo, then "
                    "raw PREROUTING and filter INPUT with IN=lo; nat PREROUTING/INPUT never print (the connection "
                    "is confirmed by then). Client packets print DPT=8081 in raw:OUTPUT and DPT=8080 from the "
                    "next line on; server replies leave with SPT=8080 and come back in with SPT=8081: conntrack "
                    "undoes the DNAT on the way out without printing a nat line.",
                    "rendering": "dmesg (util-linux), sliced between marker records that are left out",
                    "lines": write_lines(directory / "loopback.dmesg", lines),
                    "namespace": namespace.name,
                    "setup_commands": namespace.setup.entries,
                    "ruleset": ruleset,
                    "route_localnet": "not set: the DNAT to 127.0.0.1 worked without net.ipv4.conf.all.route_localnet",
                    "commands": [asdict(command) for command in commands],
                    "trace_counters": {"ipv4": counters},
                    "traced_packets": counters["raw:OUTPUT"],
                    "trace_counters_note": "Every loopback packet hits both TRACE rules: raw OUTPUT (-o lo) on "
                    "the way out and raw PREROUTING (-i lo) on the way back in, so the two counters are equal "
                    "and the number of packets is the raw:OUTPUT counter, not the sum. The OUTPUT rule sets "
                    "the trace flag, so its own match is not printed (raw:OUTPUT:policy:2 is the first line), "
                    "while on the way in the flag is already set and both raw:PREROUTING:rule:1 and "
                    "raw:PREROUTING:policy:2 are printed.",
                    **capture_context(),
                }
            problem = found
            print(f"  loopback: attempt {attempt} discarded: {problem}", file=sys.stderr)
            time.sleep(2.0 * attempt)
    raise RuntimeError(f"loopback: no clean capture after {ATTEMPTS} attempts: {problem}")


# -- command line ------------------------------------------------------------------------


def run_lookalikes(out: Path) -> None:
    """Recreate ``<out>/lookalikes``."""
    capture_lookalikes(fresh_directory(out / "lookalikes"))


def run_lab_legacy_extra(capture: Callable[[Path], dict[str, Any]], name: str) -> Callable[[Path], None]:
    """A capture that adds one file and its entry to ``<out>/lab-legacy``."""

    def run_it(out: Path) -> None:
        directory = out / "lab-legacy"
        directory.mkdir(parents=True, exist_ok=True)
        add_to_meta(directory, {name: capture(directory)})

    return run_it


CAPTURES: dict[str, Callable[[Path], None]] = {
    "lookalikes": run_lookalikes,
    "kmsg": run_lab_legacy_extra(capture_kmsg, "kmsg.txt"),
    "loopback": run_lab_legacy_extra(capture_loopback, "loopback.dmesg"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Capture the requested extra samples (all by default)."""
    parser = argparse.ArgumentParser(
        prog=GENERATOR, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("samples"), help="samples directory (default: samples)")
    parser.add_argument("--only", choices=sorted(CAPTURES), action="append", help="capture only this sample set")
    args = parser.parse_args(argv)
    for name in args.only or list(CAPTURES):
        print(f"capturing {name}")
        try:
            CAPTURES[name](args.out)
        except (RuntimeError, LookupError, subprocess.SubprocessError) as error:
            print(f"extra_captures: {name} failed: {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
