"""Run real Podman (Debian 12: podman 4.3.1, netavark 1.4.0's iptables driver) and capture TRACE output.

Two containers, web-1 and web-2 (busybox httpd, web-2 publishes 8080:80), on a
Podman network `tpnet` (bridge podman1, 10.89.0.0/24), traced in the host's
legacy tables through the kernel log, the way tests/lab/dockerlab.py captures
Docker. netavark calls `iptables` from the PATH: a directory of links to the
-legacy tools in front of it puts its rules in the legacy tables without
touching the host's iptables alternative. Regenerate, as root, from the
repository root:

    python -m tests.lab.podmanlab --out samples/podman-legacy

Everything the lab made is removed afterwards: containers, the network, the
image, the rules netavark leaves behind on purpose (its chains and the jumps
to them), the sysctl it turned on.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from tests.lab.capture import fresh_directory, now_iso
from tests.lab.dockerlab import (
    BUSYBOX,
    Scenario,
    ScenarioResult,
    kernel_log_between_markers,
    parse_trace_counters,
    run,
    write_busybox_rootfs,
)

PODMAN = "podman"
IMAGE = "localhost/tracelog-busybox:latest"
NETWORK = "tpnet"
BRIDGE = "podman1"
SUBNET = "10.89.0.0/24"
GATEWAY = "10.89.0.1"
WEB_1, WEB_1_IP = "web-1", "10.89.0.2"
WEB_2, WEB_2_IP = "web-2", "10.89.0.3"
CONTAINERS = (WEB_1, WEB_2)
# This VM grants root no CAP_SYS_RESOURCE, and runc sets the container's
# limits from outside (prlimit): only limits below the host's go through.
ULIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")
LEGACY_TOOLS = ("iptables", "ip6tables", "iptables-save", "ip6tables-save", "iptables-restore", "ip6tables-restore")
TRACE_RULES: tuple[tuple[str, ...], ...] = (
    ("PREROUTING", "-p", "icmp", "-s", SUBNET, "-j", "TRACE"),
    ("PREROUTING", "-p", "tcp", "-s", SUBNET, "-j", "TRACE"),
    ("OUTPUT", "-p", "tcp", "-d", SUBNET, "-j", "TRACE"),
)
SYSCTLS = ("net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables")
NETAVARK_PREFIXES = ("NETAVARK", "netavark")


def legacy_path(directory: Path) -> dict[str, str]:
    """An environment whose PATH finds the -legacy iptables tools under their plain names first."""
    for tool in LEGACY_TOOLS:
        (directory / tool).symlink_to(shutil.which(tool.replace("tables", "tables-legacy", 1)) or tool)
    return {**os.environ, "PATH": f"{directory}:{os.environ['PATH']}"}


def podman(env: dict[str, str], *args: str, check: bool = True, timeout: float = 120.0) -> str:
    """Run podman (and through it netavark) with the legacy PATH."""
    done = subprocess.run([PODMAN, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


# --- what netavark leaves behind --------------------------------------------------


def netavark_leftovers(save: str) -> list[tuple[str, list[str]]]:
    """`iptables -t TABLE` argument lists that delete netavark's rules and chains from `iptables-save` text.

    Rules in built-in chains that jump to netavark's chains go first, then its
    chains are flushed and deleted; nothing else is touched.
    """
    deletions: list[tuple[str, list[str]]] = []
    chains: list[tuple[str, str]] = []
    table = ""
    for line in save.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":") and line[1:].startswith(NETAVARK_PREFIXES):
            chains.append((table, line[1:].split()[0]))
        elif line.startswith("-A ") and " -j NETAVARK" in line and not line.split()[1].startswith(NETAVARK_PREFIXES):
            deletions.append((table, ["-D", *split_rule(line[3:])]))
    deletions += [(table, ["-F", chain]) for table, chain in chains]
    deletions += [(table, ["-X", chain]) for table, chain in chains]
    return deletions


def split_rule(text: str) -> list[str]:
    """The arguments of an `iptables-save` rule, its quoted comments kept whole."""
    return shlex.split(text)


def remove_netavark_rules() -> None:
    """Delete what netavark leaves in the legacy tables after its last network is gone."""
    for table, args in netavark_leftovers(run(["iptables-legacy-save"])):
        run(["iptables-legacy", "-t", table, *args])


# --- the lab ------------------------------------------------------------------------


@contextmanager
def podman_lab(env: dict[str, str]) -> Iterator[None]:
    """tpnet with web-1 and web-2 running; everything removed again on the way out, also on failure."""
    sysctls = {key: run(["sysctl", "-n", key]).strip() for key in SYSCTLS}
    try:
        run(["sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1"])
        with tempfile.TemporaryDirectory() as tmp:
            tarball = Path(tmp) / "rootfs.tar"
            write_busybox_rootfs(tarball)
            podman(env, "import", "-c", 'CMD ["/bin/sh"]', str(tarball), IMAGE)
        podman(env, "network", "create", "--subnet", SUBNET, "--gateway", GATEWAY, NETWORK)
        httpd = ("busybox", "httpd", "-f", "-p", "80", "-h", "/www")
        # busybox ping opens a raw socket; Podman's default capabilities leave NET_RAW out
        common = ("run", "-d", "--runtime", "runc", "--cap-add", "NET_RAW", *ULIMITS, "--network", NETWORK)
        podman(env, *common, "--name", WEB_1, "--ip", WEB_1_IP, IMAGE, *httpd)
        podman(env, *common, "--name", WEB_2, "--ip", WEB_2_IP, "-p", "8080:80", IMAGE, *httpd)
        yield
    finally:
        podman(env, "rm", "-f", "-t", "0", *CONTAINERS, check=False)
        podman(env, "network", "rm", "-f", NETWORK, check=False)
        podman(env, "rmi", "-f", IMAGE, check=False)
        remove_netavark_rules()
        for key, value in sysctls.items():
            run(["sysctl", "-q", "-w", f"{key}={value}"])


def host_veth(env: dict[str, str], container: str) -> str:
    """The host end of a container's eth0: the link whose ifindex is eth0's iflink."""
    iflink = int(podman(env, "exec", container, "cat", "/sys/class/net/eth0/iflink"))
    for link in json.loads(run(["ip", "-j", "link", "show"])):
        if link["ifindex"] == iflink:
            return str(link["ifname"])
    raise RuntimeError(f"no host link with ifindex {iflink} for {container}")


def trace_scenario(env: dict[str, str], scenario: Scenario, out: Path) -> ScenarioResult:
    """Zero the raw counters, run the traffic between kernel-log markers, save the lines, read the counters."""
    run(["iptables-legacy", "-t", "raw", "-Z"])
    codes: list[int] = []
    with kernel_log_between_markers(scenario.name) as lines:
        for role, *argv in scenario.commands:
            argv_run = argv if role == "host" else [PODMAN, "exec", role, *argv]
            done = subprocess.run(argv_run, env=env, capture_output=True, timeout=30, check=False)
            if (done.returncode == 0) != scenario.expect_success:
                raise RuntimeError(f"{scenario.name}: {' '.join(argv_run)} exited {done.returncode}")
            codes.append(done.returncode)
    listing = run(["iptables-legacy", "-t", "raw", "-L", "-v", "-x", "-n"])
    counters = parse_trace_counters(listing)
    traced = sum(counter.pkts for counter in counters)
    raw_lines = sum("TRACE: raw:" in line for line in lines)
    if raw_lines != traced:
        raise RuntimeError(f"{scenario.name}: {raw_lines} raw-table lines for {traced} traced packets")
    name = f"{scenario.name}.dmesg"
    (out / name).write_text("\n".join(lines) + "\n")
    commands = [
        " ".join(argv) if role == "host" else f"podman exec {role} {' '.join(argv)}"
        for role, *argv in scenario.commands
    ]
    return ScenarioResult(scenario.description, commands, codes, counters, traced, listing, [name])


SCENARIOS = (
    Scenario(
        "ping",
        "web-1 pings web-2 twice across podman1 (bridged: PHYSIN/PHYSOUT are veths)",
        ((WEB_1, "ping", "-c", "2", WEB_2_IP),),
    ),
    Scenario(
        "http",
        "web-1 fetches / from web-2's busybox httpd: one TCP connection across podman1",
        ((WEB_1, "wget", "-q", "-O-", f"http://{WEB_2_IP}/"),),
    ),
    Scenario(
        "published",
        f"web-1 fetches / from the port web-2 publishes on the host ({GATEWAY}:8080): netavark's "
        "NETAVARK-HOSTPORT-DNAT sends it to web-2:80, NETAVARK-HOSTPORT-SETMARK marks it for masquerading",
        ((WEB_1, "wget", "-q", "-O-", f"http://{GATEWAY}:8080/"),),
    ),
    Scenario(
        "host",
        "the host fetches / from web-2 directly (raw OUTPUT, then the replies in PREROUTING/INPUT)",
        (("host", BUSYBOX.as_posix(), "wget", "-q", "-O-", f"http://{WEB_2_IP}/"),),
    ),
)


def versions(env: dict[str, str]) -> dict[str, str]:
    """Kernel, Podman, netavark, runc and iptables versions for meta.json."""
    return {
        "kernel": run(["uname", "-r"]).strip(),
        "podman": podman(env, "version", "--format", "{{.Client.Version}}").strip(),
        "netavark": run(["/usr/lib/podman/netavark", "--version"]).strip(),
        "runc": run(["runc", "--version"]).splitlines()[0],
        "iptables": run(["iptables-legacy", "--version"]).strip(),
        "busybox": run([BUSYBOX.as_posix()], check=False).splitlines()[0],
    }


def capture_sample(out: Path) -> None:
    """Run the lab, trace every scenario into `out`, save inspect output and rules, write meta.json."""
    fresh_directory(out)
    with tempfile.TemporaryDirectory() as tools:
        env = legacy_path(Path(tools))
        with podman_lab(env):
            saves = {
                "podman-inspect.json": podman(env, "inspect", *CONTAINERS),
                "podman-network-inspect.json": podman(env, "network", "inspect", NETWORK),
                "ip-link.json": json.dumps(json.loads(run(["ip", "-j", "-d", "link", "show"])), indent=2),
            }
            for name, text in saves.items():
                (out / name).write_text(text if text.endswith("\n") else text + "\n")
            veths = {name: host_veth(env, name) for name in CONTAINERS}
            for rule in TRACE_RULES:
                run(["iptables-legacy", "-t", "raw", "-A", *rule])
            try:
                (out / "iptables-save.txt").write_text(run(["iptables-legacy-save"]))
                results = {scenario.name: trace_scenario(env, scenario, out) for scenario in SCENARIOS}
            finally:
                for rule in TRACE_RULES:
                    run(["iptables-legacy", "-t", "raw", "-D", *rule], check=False)
            meta = {
                "backend": "legacy",
                "date": now_iso(),
                "versions": versions(env),
                "network": f"podman network create --subnet {SUBNET} --gateway {GATEWAY} {NETWORK} (bridge {BRIDGE})",
                "containers": {
                    WEB_1: {"ip": WEB_1_IP, "host_veth": veths[WEB_1], "image": IMAGE},
                    WEB_2: {"ip": WEB_2_IP, "host_veth": veths[WEB_2], "image": IMAGE, "publish": "8080:80"},
                },
                "run": f"podman run -d --runtime runc --cap-add NET_RAW {' '.join(ULIMITS)} --network {NETWORK} "
                "--ip IP [-p 8080:80] IMAGE busybox httpd -f -p 80 -h /www (limits below the host's: this VM's "
                "root lacks CAP_SYS_RESOURCE, and runc sets them from outside the container)",
                "iptables": "netavark ran with a PATH whose iptables* are links to the -legacy tools; the host's "
                "alternative (iptables-nft) was not changed",
                "trace_rules": [f"iptables-legacy -t raw -A {' '.join(rule)}" for rule in TRACE_RULES],
                "counters": "zeroed with `iptables-legacy -t raw -Z` before each scenario, read with "
                "`iptables-legacy -t raw -L -v -x -n` after it",
                "scenarios": {name: asdict(result) for name, result in results.items()},
                "files": {
                    "podman-inspect.json": f"podman inspect {WEB_1} {WEB_2}",
                    "podman-network-inspect.json": f"podman network inspect {NETWORK}",
                    "ip-link.json": "ip -j -d link show (veth peers, ifindexes, bridge ports)",
                    "iptables-save.txt": "iptables-legacy-save while tracing",
                    **{f"{name}.dmesg": f"dmesg lines of the {name} scenario, between markers" for name in results},
                },
            }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Regenerate samples/podman-legacy (root, Debian's podman)."""
    parser = argparse.ArgumentParser(prog="python -m tests.lab.podmanlab", description=main.__doc__)
    parser.add_argument("--out", type=Path, default=Path("samples/podman-legacy"))
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("podmanlab: must run as root", file=sys.stderr)
        return 2
    if shutil.which(PODMAN) is None:
        print("podmanlab: podman is not installed (apt-get install podman)", file=sys.stderr)
        return 3
    capture_sample(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
