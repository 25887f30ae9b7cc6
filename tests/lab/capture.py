"""Regenerate the real kernel samples under ``samples/lab-*`` from the namespace lab.

Run from the repository root, as root::

    python -m tests.lab.capture --out samples
    python -m tests.lab.capture --out samples --only legacy

Each backend gets one directory with the captures, the ruleset snapshots and
a ``meta.json`` that records, per file, the traffic that was sent and the
kernel's own TRACE rule counters (the number of packets it traced).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tests.lab import kernlog
from tests.lab.logdaemons import Journald, Rsyslog
from tests.lab.netlab import BRIDGE, UPLINK, DockerLikeLab, Family, NetnsLab, run
from tests.lab.scenarios import (
    SCENARIOS,
    PlayedCommand,
    Scenario,
    apply_rule_changes,
    play_traffic,
    revert_rule_changes,
    scenario_named,
)

Counters = dict[str, dict[str, int]]

# dmesg renderings besides the plain one, each kept for one scenario.
EXTRA_DMESG_RENDERINGS = {"dnat": ("dmesg-T", ["-T"]), "udp-closed": ("dmesg-r", ["-r"])}
ATTEMPTS = 3
# Monitors need a moment to subscribe before traffic starts, and to drain afterwards.
MONITOR_WARMUP = 0.7
MONITOR_DRAIN = 0.7


@dataclass(frozen=True)
class ScenarioRun:
    """One played scenario and what the kernel counted for it."""

    scenario: Scenario
    commands: list[PlayedCommand]
    counters: Counters

    @property
    def traced_packets(self) -> int:
        """Packets that hit a TRACE rule (all families and chains)."""
        return sum(sum(chains.values()) for chains in self.counters.values())

    def describe(self) -> dict[str, Any]:
        """The ``meta.json`` entry shared by every file captured from this run."""
        return {
            "scenario": self.scenario.name,
            "description": self.scenario.description,
            "rule_changes": [asdict(change) for change in self.scenario.rule_changes],
            "commands": [asdict(command) for command in self.commands],
            "trace_counters": self.counters,
            "traced_packets": self.traced_packets,
        }


def lab_counters(lab: DockerLikeLab) -> Counters:
    """TRACE counters keyed ``raw:<chain>`` so they read like the trace lines they explain."""
    return {
        family: {f"raw:{chain}": packets for chain, packets in chains.items()}
        for family, chains in lab.trace_counters().items()
    }


def sum_counters(runs: Sequence[ScenarioRun]) -> Counters:
    """Counters of several runs added up per family and chain."""
    total: Counters = {}
    for scenario_run in runs:
        for family, chains in scenario_run.counters.items():
            for chain, packets in chains.items():
                total.setdefault(family, {}).setdefault(chain, 0)
                total[family][chain] += packets
    return total


def write_lines(path: Path, lines: Sequence[str]) -> int:
    """Write captured lines verbatim; returns the line count for the metadata."""
    path.write_text("".join(line + "\n" for line in lines))
    return len(lines)


# The tools whose output formats the samples record, and how each says its version.
VERSION_COMMANDS = {
    "iptables": ["iptables-legacy", "--version"],
    "nft": ["nft", "--version"],
    "dmesg": ["dmesg", "--version"],
    "rsyslogd": ["rsyslogd", "-v"],
    "journalctl": ["journalctl", "--version"],
    "ulogd": ["ulogd", "--version"],
}


def now_iso() -> str:
    """The capture time, UTC, to the second."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def tool_versions(commands: Mapping[str, Sequence[str]] = VERSION_COMMANDS) -> dict[str, str]:
    """The first line each tool prints about its version (`unknown` when it prints none), for meta.json."""
    versions = {}
    for name, argv in commands.items():
        result = run(argv, check=False)
        text = (result.stdout or result.stderr).strip()
        versions[name] = text.splitlines()[0] if text else "unknown"
    return versions


def base_meta(backend: str) -> dict[str, Any]:
    """Fields common to every sample directory."""
    return {
        "generator": "python -m tests.lab.capture (tests/lab/netlab.py DockerLikeLab)",
        "backend": backend,
        "kernel": platform.release(),
        "captured_at": now_iso(),
        "tools": tool_versions(),
        "topology": {
            "tl-host": f"Docker host: bridge {BRIDGE} 172.18.0.1/16 fd00:18::1/64, uplink {UPLINK} 192.0.2.1/24 "
            "2001:db8::1/64, br_netfilter with bridge-nf-call-iptables=1 and -ip6tables=1",
            "tl-c1": "container nginx-1, eth0 172.18.0.2 fd00:18::2, MAC 02:42:ac:12:00:02",
            "tl-c2": "container nginx-2, eth0 172.18.0.3 fd00:18::3, MAC 02:42:ac:12:00:03, busybox httpd on :80",
            "tl-ext": "external client, eth0 192.0.2.10 2001:db8::10, default route via tl-host",
        },
        "trace_counters_note": "Packets matched by the TRACE rules in raw PREROUTING/OUTPUT of tl-host, zeroed "
        "with -Z before the scenario and read with -L -v -x -n after it. A packet counted once may print "
        "raw lines twice (e.g. when it re-enters PREROUTING).",
        "files": {},
    }


def fresh_directory(path: Path) -> Path:
    """An empty sample directory at `path`: a regeneration leaves nothing of the previous capture behind."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def write_meta(directory: Path, meta: dict[str, Any]) -> None:
    """Write ``meta.json`` with stable key order so regenerations diff cleanly."""
    (directory / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def snapshot_rulesets(lab: DockerLikeLab, directory: Path, suffix: str = "") -> dict[str, str]:
    """Save ``iptables-save``/``ip6tables-save`` output next to the captures."""
    files = {}
    save_tools: tuple[tuple[Family, str], ...] = (("ipv4", "iptables-save"), ("ipv6", "ip6tables-save"))
    for family, stem in save_tools:
        name = f"ruleset{suffix}.{stem}"
        (directory / name).write_text(lab.save(family))
        files[name] = f"{lab.backend.tool(family, 'save')} in tl-host while tracing"
    return files


# -- legacy: kernel log ------------------------------------------------------


def lab_interfaces(lab: DockerLikeLab) -> set[str]:
    """Interface names that can appear in the lab's TRACE lines."""
    return {BRIDGE, UPLINK, "lo", *lab.veths.values()}


def slice_problem(lines: Sequence[str], counters: Counters, interfaces: set[str]) -> str | None:
    """Why a kernel-log slice cannot stand for the scenario alone, or None if it can.

    Other captures on this machine log into the same ring buffer; their lines
    must not leak into ours, and every packet the kernel counted must have
    printed at least its raw-table line.
    """
    if kernlog.foreign_window_touches(lines):
        return "another capture's marker is inside the window"
    foreign = kernlog.foreign_trace_lines(lines, interfaces)
    if foreign:
        return f"{len(foreign)} TRACE lines from interfaces outside the lab"
    raw_lines = sum(1 for line in lines if "TRACE: raw:" in line)
    counted = sum(sum(chains.values()) for chains in counters.values())
    if raw_lines < counted:
        return f"only {raw_lines} raw-table lines for {counted} traced packets (was nf_log_all_netns reset?)"
    return None


def play_legacy_scenario(lab: DockerLikeLab, scenario: Scenario) -> tuple[ScenarioRun, list[str], kernlog.Window]:
    """Play one scenario between kernel-log markers, retrying if another capture interfered."""
    interfaces = lab_interfaces(lab)
    problem = "not played"
    for attempt in range(1, ATTEMPTS + 1):
        kernlog.wait_for_quiet_log()
        kernlog.ensure_nf_log_all_netns()
        apply_rule_changes(lab, scenario)
        try:
            lab.zero_trace_counters()
            window = kernlog.Window.new(scenario.name)
            window.open()
            try:
                commands = play_traffic(lab, scenario)
            finally:
                window.close()
            counters = lab_counters(lab)
        finally:
            revert_rule_changes(lab, scenario)
        lines = kernlog.slice_window(kernlog.read_dmesg(), window)
        scenario_run = ScenarioRun(scenario, commands, counters)
        found = slice_problem(lines, counters, interfaces)
        if found is None:
            return scenario_run, lines, window
        problem = found
        print(f"  {scenario.name}: attempt {attempt} discarded: {problem}", file=sys.stderr)
        time.sleep(2.0 * attempt)
    raise RuntimeError(f"{scenario.name}: no clean capture after {ATTEMPTS} attempts: {problem}")


@contextmanager
def optional_journald(notes: list[str]) -> Iterator[Journald | None]:
    """A private journald if one can run here; otherwise None and a note saying why."""
    if not Journald.available():
        notes.append("systemd-journald is not installed: no journalctl sample")
        yield None
        return
    journald = Journald()
    try:
        journald.start()
    except (RuntimeError, OSError) as error:
        notes.append(f"systemd-journald could not start without systemd as PID 1: {error}")
        yield None
        return
    try:
        yield journald
    finally:
        journald.stop()


def capture_legacy(directory: Path) -> None:
    """Kernel-log samples: one dmesg slice per scenario plus rsyslog/journald renderings of a full run."""
    meta = base_meta("legacy")
    files: dict[str, Any] = meta["files"]
    notes: list[str] = []
    runs: list[ScenarioRun] = []
    with ExitStack() as stack:
        stack.enter_context(kernlog.nf_log_all_netns())
        rsyslog = stack.enter_context(Rsyslog())
        journald = stack.enter_context(optional_journald(notes))
        lab = stack.enter_context(DockerLikeLab("legacy"))
        meta["rsyslog_config"] = rsyslog.config()
        for name, what in snapshot_rulesets(lab, directory).items():
            files[name] = {"content": what}
        run_window = kernlog.Window.new("full-run")
        run_window.open()
        for scenario in SCENARIOS:
            if scenario.rule_changes:
                apply_rule_changes(lab, scenario)
                for name, what in snapshot_rulesets(lab, directory, f"-{scenario.name}").items():
                    files[name] = {"content": f"{what}, during the {scenario.name} scenario"}
                revert_rule_changes(lab, scenario)
            scenario_run, lines, window = play_legacy_scenario(lab, scenario)
            runs.append(scenario_run)
            name = f"{scenario.name}.dmesg"
            files[name] = {
                "rendering": "dmesg (util-linux), sliced between marker records that are left out",
                "lines": write_lines(directory / name, lines),
                **scenario_run.describe(),
            }
            if scenario.name in EXTRA_DMESG_RENDERINGS:
                suffix, flags = EXTRA_DMESG_RENDERINGS[scenario.name]
                rendered = kernlog.slice_window(kernlog.read_dmesg(flags), window)
                extra = f"{scenario.name}.{suffix}"
                files[extra] = {
                    "rendering": f"dmesg {' '.join(flags)}: the same kernel records as {name}",
                    "lines": write_lines(directory / extra, rendered),
                    **scenario_run.describe(),
                }
            print(f"  legacy {scenario.name}: {scenario_run.traced_packets} packets, {len(lines)} lines")
        run_window.close()
        time.sleep(1.0)
        full_run = {
            "scenario": "full-run",
            "description": "every scenario in order, as the kernel log recorded them: other kernel messages "
            "and the per-scenario marker records (tracelog-lab: <scenario> <token> begin/end) stay in",
            "scenarios": [scenario.name for scenario in SCENARIOS],
            "trace_counters": sum_counters(runs),
            "traced_packets": sum(scenario_run.traced_packets for scenario_run in runs),
        }
        rsyslog.stop()
        for style, rendering in (
            ("traditional", "rsyslogd imklog, RSYSLOG_TraditionalFileFormat"),
            ("fileformat", "rsyslogd imklog, RSYSLOG_FileFormat (high precision)"),
        ):
            name = f"rsyslog-{style}.log"
            lines = kernlog.slice_window(rsyslog.read(style), run_window)
            files[name] = {"rendering": rendering, "lines": write_lines(directory / name, lines), **full_run}
        if journald is not None:
            lines = kernlog.slice_window(journald.journalctl("-k", "-o", "short"), run_window)
            files["journalctl.txt"] = {
                "rendering": "journalctl -k -o short, from systemd-journald started by hand (no systemd as PID 1)",
                "lines": write_lines(directory / "journalctl.txt", lines),
                **full_run,
            }
    meta["notes"] = notes
    write_meta(directory, meta)


# -- nft: netlink trace monitors -----------------------------------------------


MONITORS = {
    "xtables-monitor": ["xtables-monitor", "--trace"],
    "nft-monitor": ["nft", "monitor", "trace"],
}


@contextmanager
def run_monitors(
    lab: NetnsLab,
    namespace: str,
    commands: Mapping[str, Sequence[str]],
    outputs: Mapping[str, Path],
    *,
    warmup: float = MONITOR_WARMUP,
    drain: float = MONITOR_DRAIN,
) -> Iterator[dict[str, str]]:
    """Run trace monitors (`commands` by kind) in a lab's namespace for the block, each writing the file of its kind.

    ``stdbuf -oL`` keeps their stdio line-buffered: they are stopped with
    SIGTERM, which would otherwise lose a block-buffered tail. The yielded
    dict is filled on exit with the stderr of any monitor that died early,
    so a truncated sample is recorded as such in ``meta.json``.
    """
    failures: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix=f"{namespace}-monitor-") as workdir, ExitStack() as files:
        running = []
        for kind, path in outputs.items():
            stdout = files.enter_context(path.open("wb"))
            stderr_path = Path(workdir) / f"{kind}.stderr"
            stderr = files.enter_context(stderr_path.open("wb"))
            argv = ["stdbuf", "-oL", *commands[kind]]
            running.append((kind, stderr_path, lab.spawn(namespace, argv, stdout=stdout, stderr=stderr)))
        try:
            time.sleep(warmup)
            yield failures
            time.sleep(drain)
        finally:
            for kind, stderr_path, process in running:
                died = process.poll()
                lab.stop(process)
                if died is not None:
                    failures[kind] = f"exited with {died}: {stderr_path.read_text().strip()}"


def monitors(lab: DockerLikeLab, outputs: Mapping[str, Path]) -> AbstractContextManager[dict[str, str]]:
    """The MONITORS in tl-host, writing to the given files, for the duration of the block (see run_monitors)."""
    return run_monitors(lab, lab.host, MONITORS, outputs)


def count_lines(path: Path) -> int:
    """Number of lines in a capture file."""
    return len(path.read_text().splitlines())


def capture_iptables_nft(directory: Path, meta: dict[str, Any]) -> None:
    """The Docker-like ruleset through iptables-nft, traced with both monitors per scenario."""
    files: dict[str, Any] = meta["files"]
    with DockerLikeLab("nft") as lab:
        for name, what in snapshot_rulesets(lab, directory).items():
            files[name] = {"content": what}
        (directory / "ruleset.nft").write_text(lab.exec(lab.host, ["nft", "list", "ruleset"]).stdout)
        files["ruleset.nft"] = {"content": "nft list ruleset in tl-host (the iptables-nft tables as nft sees them)"}
        for scenario in SCENARIOS:
            outputs = {kind: directory / f"{scenario.name}.{kind}" for kind in MONITORS}
            apply_rule_changes(lab, scenario)
            try:
                lab.zero_trace_counters()
                with monitors(lab, outputs) as failures:
                    commands = play_traffic(lab, scenario)
                counters = lab_counters(lab)
            finally:
                revert_rule_changes(lab, scenario)
            scenario_run = ScenarioRun(scenario, commands, counters)
            for kind, path in outputs.items():
                files[path.name] = {
                    "rendering": f"ip netns exec tl-host {' '.join(MONITORS[kind])}",
                    "lines": count_lines(path),
                    "monitor_failure": failures.get(kind),
                    **scenario_run.describe(),
                }
            print(f"  nft {scenario.name}: {scenario_run.traced_packets} packets")


NATIVE_RULESET = """\
table inet filter {
	chain trace_prerouting {
		type filter hook prerouting priority raw; policy accept;
		ip saddr { 172.18.0.0/16, 192.0.2.0/24 } counter meta nftrace set 1
	}

	chain trace_output {
		type filter hook output priority raw; policy accept;
		ip daddr 172.18.0.0/16 counter meta nftrace set 1
	}

	chain input {
		type filter hook input priority filter; policy accept;
		ct state established,related accept
		iifname "lo" accept
	}

	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		ip saddr 172.18.0.2 ip daddr 172.18.0.3 tcp dport 8080 counter drop
		iifname "docker0" oifname "docker0" tcp dport { 80, 443 } accept
		iifname "docker0" oifname "docker0" ip protocol icmp accept
		iifname "eth0" oifname "docker0" ct status dnat accept
		iifname "docker0" oifname != "docker0" accept
	}

	chain output {
		type filter hook output priority filter; policy accept;
	}
}

table ip nat {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		iifname "eth0" tcp dport 8080 dnat to 172.18.0.3:80
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 172.18.0.0/16 oifname != "docker0" masquerade
	}
}
"""
NATIVE_SCENARIOS = ("ping", "tcp", "dnat", "drop")
_NFT_COUNTER = re.compile(r"counter packets (\d+) bytes \d+ meta nftrace set 1")


def native_trace_counters(lab: DockerLikeLab) -> Counters:
    """Packets the native ruleset's nftrace rules marked, per raw-priority chain."""
    counters: dict[str, int] = {}
    for chain in ("trace_prerouting", "trace_output"):
        listing = lab.exec(lab.host, ["nft", "list", "chain", "inet", "filter", chain]).stdout
        counters[f"inet filter {chain}"] = sum(int(found) for found in _NFT_COUNTER.findall(listing))
    return {"inet": counters}


def capture_native_nft(directory: Path, meta: dict[str, Any]) -> None:
    """A hand-written nft ruleset (no iptables at all) traced with ``nft monitor trace``."""
    files: dict[str, Any] = meta["files"]
    path = directory / "native.nft-monitor"
    with DockerLikeLab("nft", ruleset=False) as lab:
        lab.exec(lab.host, ["nft", "-f", "-"], stdin=NATIVE_RULESET)
        (directory / "native.ruleset.nft").write_text(lab.exec(lab.host, ["nft", "list", "ruleset"]).stdout)
        files["native.ruleset.nft"] = {"content": "nft list ruleset in tl-host before the native capture"}
        commands: list[PlayedCommand] = []
        with monitors(lab, {"nft-monitor": path}) as failures:
            for name in NATIVE_SCENARIOS:
                commands += play_traffic(lab, scenario_named(name))
        counters = native_trace_counters(lab)
    files[path.name] = {
        "rendering": "ip netns exec tl-host nft monitor trace",
        "lines": count_lines(path),
        "monitor_failure": failures.get("nft-monitor"),
        "scenario": "native",
        "description": "native nft ruleset (inet filter, raw-priority nftrace chains, anonymous set "
        "{ 80, 443 }, forward drop rule for c1->c2:8080, ip nat DNAT 8080->172.18.0.3:80); scenarios "
        + ", ".join(NATIVE_SCENARIOS),
        "commands": [asdict(command) for command in commands],
        "trace_counters": counters,
        "traced_packets": sum(counters["inet"].values()),
    }
    print(f"  nft native: {files[path.name]['traced_packets']} packets")


def capture_nft(directory: Path) -> None:
    """Netlink trace samples: iptables-nft (both monitors) and a native nft ruleset."""
    meta = base_meta("nft")
    capture_iptables_nft(directory, meta)
    capture_native_nft(directory, meta)
    conntrack = any("conntrack:" in path.read_text() for path in directory.glob("*.nft-monitor"))
    meta["notes"] = [
        f"nft --version: {meta['tools']['nft']}; 'conntrack:' trace lines present: {conntrack} "
        "(nft monitor prints them from nftables 1.1.4 on)",
        "xtables-monitor and nft monitor ran at the same time on the same trace events.",
    ]
    write_meta(directory, meta)


# -- ulogd: nfnetlink_log -------------------------------------------------------

ULOGD_STACKS = {
    "syslogemu.log": (
        "log1:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,print1:PRINTPKT,emu1:LOGEMU",
        '[emu1]\nfile="{path}"\nsync=1\n',
    ),
    "ulogd.json": (
        "log1:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,mac2str1:HWHDR,json1:JSON",
        '[json1]\nfile="{path}"\nsync=1\n',
    ),
}
ULOGD_SCENARIOS = ("ping", "tcp")


def ulogd_config(stack: str, output_section: str, logfile: Path) -> str:
    """A ulogd.conf with one stack reading NFLOG group 0 (where nfnetlink_log puts TRACE)."""
    plugins = "\n".join(
        f'plugin="{plugin}"'
        # Debian installs plugins under the multiarch directory, e.g. /usr/lib/x86_64-linux-gnu/ulogd.
        for plugin in sorted(Path("/usr/lib").glob("*/ulogd/ulogd_*.so"))
        if plugin.stem.split("_", 2)[-1] in stack_plugins(stack)
    )
    return (
        f'[global]\nlogfile="{logfile}"\nloglevel=3\n{plugins}\nstack={stack}\n\n'
        # unbind=0: ulogd would otherwise unbind the IPv4 logger we just chose.
        "[log1]\ngroup=0\nunbind=0\nbind=1\n\n"
        f"{output_section}"
    )


def stack_plugins(stack: str) -> set[str]:
    """Plugin names (``NFLOG``, ``BASE``, ...) used by a ulogd stack line."""
    return {element.split(":", 1)[1] for element in stack.split(",")}


def capture_ulogd(directory: Path) -> None:
    """ulogd2 samples: legacy TRACE sent to NFLOG group 0 by binding nfnetlink_log in tl-host.

    One NFLOG group can have only one listener, so the text and JSON stacks
    run one after the other, each over its own run of the same scenarios.
    """
    meta = base_meta("legacy+nfnetlink_log")
    files: dict[str, Any] = meta["files"]
    with DockerLikeLab("legacy") as lab:
        lab.exec(lab.host, ["sh", "-c", "echo nfnetlink_log > /proc/sys/net/netfilter/nf_log/2"])
        meta["nf_log"] = lab.exec(lab.host, ["cat", "/proc/net/netfilter/nf_log"]).stdout
        for name, what in snapshot_rulesets(lab, directory).items():
            files[name] = {"content": what}
        for filename, (stack, section) in ULOGD_STACKS.items():
            output = directory / filename
            output.unlink(missing_ok=True)
            with tempfile.TemporaryDirectory(prefix="tl-ulogd-") as workdir:
                config = ulogd_config(stack, section.format(path=output), Path(workdir) / "ulogd.log")
                conf_path = Path(workdir) / "ulogd.conf"
                conf_path.write_text(config)
                runs = run_ulogd(lab, conf_path, Path(workdir) / "ulogd.log")
            files[filename] = {
                "rendering": f"ulogd2 stack {stack}",
                "ulogd_config": config.replace(workdir, "<tmpdir>"),
                "lines": count_lines(output),
                "scenarios": [scenario_run.describe() for scenario_run in runs],
                "trace_counters": sum_counters(runs),
                "traced_packets": sum(scenario_run.traced_packets for scenario_run in runs),
            }
            print(f"  ulogd {filename}: {files[filename]['traced_packets']} packets")
    meta["notes"] = [
        "TRACE through nfnetlink_log needs no nf_log_all_netns: that knob only gates the syslog logger.",
        "Only IPv4 was bound to nfnetlink_log (nf_log/2); the ulogd scenarios are IPv4 only.",
    ]
    write_meta(directory, meta)


def run_ulogd(lab: DockerLikeLab, conf_path: Path, status_log: Path) -> list[ScenarioRun]:
    """Run ulogd in tl-host for the ulogd scenarios and stop it again."""
    ulogd = lab.spawn(lab.host, ["ulogd", "-c", str(conf_path)])
    try:
        time.sleep(1.0)
        if ulogd.poll() is not None:
            status = status_log.read_text() if status_log.exists() else ""
            raise RuntimeError(f"ulogd exited with {ulogd.returncode}: {status}")
        runs = []
        for name in ULOGD_SCENARIOS:
            scenario = scenario_named(name)
            lab.zero_trace_counters()
            commands = play_traffic(lab, scenario)
            runs.append(ScenarioRun(scenario, commands, lab_counters(lab)))
        time.sleep(0.5)
        return runs
    finally:
        lab.stop(ulogd)


# -- command line -----------------------------------------------------------------

CAPTURES: dict[str, Callable[[Path], None]] = {
    "legacy": capture_legacy,
    "nft": capture_nft,
    "ulogd": capture_ulogd,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Capture the requested sample directories (all by default)."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.lab.capture", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("samples"), help="samples directory (default: samples)")
    parser.add_argument("--only", choices=sorted(CAPTURES), action="append", help="capture only this backend")
    args = parser.parse_args(argv)
    for backend in args.only or list(CAPTURES):
        directory = fresh_directory(args.out / f"lab-{backend}")
        print(f"capturing {directory}")
        try:
            CAPTURES[backend](directory)
        except (RuntimeError, LookupError, subprocess.SubprocessError) as error:
            print(f"capture: {backend} failed: {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
