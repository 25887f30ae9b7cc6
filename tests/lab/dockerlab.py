"""Run the Docker bridge scenario (nginx-1 -> nginx-2) and capture real TRACE output.

Everything here touches the host: it needs root, a kernel with br_netfilter, and
Debian's docker.io (see .ci/docker-setup.sh). Regenerate the samples from the
repository root with

    python -m tests.lab.dockerlab --out samples

which rewrites samples/docker-legacy/ and samples/docker-nft/ and leaves the host
firewall, the iptables alternatives and the sysctls it changed as it found them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from tests.lab.capture import fresh_directory, now_iso
from tests.lab.logdaemons import stop_process

Backend = Literal["legacy", "nft"]

DOCKER = "/usr/bin/docker"
BUSYBOX = Path("/bin/busybox")
IMAGE = "tracelog-busybox:latest"
BRIDGE = "docker0"
BRIDGE_CIDR = "172.18.0.1/16"
GATEWAY_IP = "172.18.0.1"
SUBNET = "172.18.0.0/16"
NGINX_1 = "nginx-1"
NGINX_2 = "nginx-2"
NGINX_1_IP = "172.18.0.2"
NGINX_2_IP = "172.18.0.3"
CONTAINERS = (NGINX_1, NGINX_2)
INDEX_HTML = b"<h1>tracelog docker lab</h1>\n"
CONTAINERD_SOCKET = Path("/run/containerd/containerd.sock")
SETTLE_SECONDS = 1.0
# Other tracelog labs on the same host mark the kernel log too; their markers are not
# kernel output and are never kept.
LAB_MARKER = re.compile(r"^\[[ \d.]+\] tracelog-")
VETH_NAME = re.compile(r"\bveth[0-9a-f]+\b")
CAPTURE_ATTEMPTS = 5
RETRY_SECONDS = 10.0

# Raw-table rules that flag packets; the TCP ones stay inside the containers' subnet.
TRACE_RULES: tuple[tuple[str, ...], ...] = (
    ("PREROUTING", "-p", "icmp", "-j", "TRACE"),
    ("OUTPUT", "-p", "icmp", "-j", "TRACE"),
    ("PREROUTING", "-p", "tcp", "-s", SUBNET, "-d", SUBNET, "-j", "TRACE"),
    ("OUTPUT", "-p", "tcp", "-s", SUBNET, "-d", SUBNET, "-j", "TRACE"),
)
DROP_RULE = (
    *("DOCKER-USER", "-s", NGINX_1_IP, "-d", NGINX_2_IP),
    *("-p", "tcp", "--dport", "80", "-j", "DROP"),
)

FIREWALL_DUMPS: dict[str, tuple[str, ...]] = {
    "iptables-legacy": ("iptables-legacy-save",),
    "ip6tables-legacy": ("ip6tables-legacy-save",),
    "iptables-nft": ("iptables-nft-save",),
    "ip6tables-nft": ("ip6tables-nft-save",),
    "nft": ("nft", "list", "ruleset"),
}
LEGACY_TABLE_NAMES = {
    "iptables-legacy": Path("/proc/net/ip_tables_names"),
    "ip6tables-legacy": Path("/proc/net/ip6_tables_names"),
}
ALTERNATIVES = ("iptables", "ip6tables")
# Only the sysctls this lab changes (dockerd turns forwarding on); the others belong
# to whoever set them, other labs on this host included.
SYSCTLS = (
    "net.ipv4.ip_forward",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
)


REQUIRED_TOOLS = (
    *("dockerd", "containerd", DOCKER, str(BUSYBOX), "ip", "sysctl", "dmesg"),
    *("iptables-legacy", "ip6tables-legacy", "iptables-nft", "ip6tables-nft"),
    *("nft", "xtables-monitor", "update-alternatives", "stdbuf"),
)


class DockerUnavailable(RuntimeError):
    """dockerd, containerd or busybox is missing or would not start."""


def run(
    argv: Sequence[str],
    *,
    timeout: float = 60.0,
    check: bool = True,
    stdin: str | None = None,
) -> str:
    """Run a command and return its stdout; with `check`, raise on failure."""
    done = subprocess.run(
        list(argv),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and done.returncode != 0:
        command = " ".join(argv)
        raise RuntimeError(f"{command} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


# --- host firewall ------------------------------------------------------------------


@dataclass(frozen=True)
class Alternative:
    """One Debian alternative: `auto` mode, or a manual choice of `value`."""

    name: str
    auto: bool
    value: str


@dataclass(frozen=True)
class HostFirewall:
    """What the lab may change: ruleset dumps, iptables alternatives, sysctls."""

    dumps: dict[str, str]
    alternatives: tuple[Alternative, ...]
    sysctls: dict[str, str]


def read_alternative(name: str) -> Alternative:
    """Read `update-alternatives --query name`."""
    query = run(["update-alternatives", "--query", name]).splitlines()
    fields = dict(line.split(": ", 1) for line in query if ": " in line)
    return Alternative(name=name, auto=fields["Status"] == "auto", value=fields["Value"])


def save_host_firewall() -> HostFirewall:
    """Snapshot legacy and nft rulesets (IPv4, IPv6), alternatives and sysctls."""
    return HostFirewall(
        dumps={name: run(argv) for name, argv in FIREWALL_DUMPS.items()},
        alternatives=tuple(read_alternative(name) for name in ALTERNATIVES),
        sysctls={key: run(["sysctl", "-n", key]).strip() for key in SYSCTLS},
    )


def set_iptables_backend(backend: Backend) -> None:
    """Point iptables and ip6tables at the legacy or nft binaries (manual mode)."""
    for name in ALTERNATIVES:
        run(["update-alternatives", "--set", name, f"/usr/sbin/{name}-{backend}"])


def empty_legacy_tables(binary: str) -> None:
    """Flush every legacy table that exists and reset policies and counters.

    Built-in legacy tables stay registered once used, so emptying is all one can do.
    """
    names = LEGACY_TABLE_NAMES[binary]
    for table in names.read_text().split() if names.exists() else []:
        run([binary, "-t", table, "-F"])
        run([binary, "-t", table, "-X"])
        for rule in run([binary, "-t", table, "-S"]).splitlines():
            if rule.startswith("-P "):
                run([binary, "-t", table, "-P", rule.split()[1], "ACCEPT"])
        run([binary, "-t", table, "-Z"])


def restore_host_firewall(saved: HostFirewall) -> None:
    """Put back what `save_host_firewall` captured."""
    for binary in LEGACY_TABLE_NAMES:
        empty_legacy_tables(binary)
        if saved.dumps[binary].strip():
            run([f"{binary}-restore"], stdin=saved.dumps[binary])
    # `nft flush ruleset` drops every nft table, those of iptables-nft included.
    run(["nft", "flush", "ruleset"])
    if saved.dumps["nft"].strip():
        run(["nft", "-f", "-"], stdin=saved.dumps["nft"])
    for alt in saved.alternatives:
        if alt.auto:
            run(["update-alternatives", "--auto", alt.name])
        else:
            run(["update-alternatives", "--set", alt.name, alt.value])
    for key, value in saved.sysctls.items():
        run(["sysctl", "-q", "-w", f"{key}={value}"])


_COUNTERS = re.compile(r"\[\d+:\d+\]")


def normalise_dump(text: str) -> str:
    """A ruleset dump without timestamps, counters, and legacy tables left empty.

    An empty legacy table with ACCEPT policies filters like no table at all, and a
    built-in one cannot be unregistered once something used it.
    """
    kept: list[str] = []
    table: list[str] = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        table.append(_COUNTERS.sub("[0:0]", line))
        if line == "COMMIT":
            body = table[1:-1]
            if any(not row.startswith(":") or row.split()[1] != "ACCEPT" for row in body):
                kept.extend(table)
            table = []
    kept.extend(table)
    return "\n".join(kept)


def firewall_differences(before: HostFirewall, after: HostFirewall) -> list[str]:
    """Name every dump, alternative or sysctl that differs between two snapshots."""
    diffs = [name for name in FIREWALL_DUMPS if normalise_dump(before.dumps[name]) != normalise_dump(after.dumps[name])]
    pairs = zip(before.alternatives, after.alternatives, strict=True)
    diffs += [f"alternative {a.name}" for a, b in pairs if a != b]
    diffs += [f"sysctl {k}" for k in SYSCTLS if before.sysctls[k] != after.sysctls[k]]
    return diffs


# --- docker daemon, image, containers -----------------------------------------------


@dataclass
class DockerDaemon:
    """A containerd and a dockerd started by this lab, and where they log."""

    containerd: subprocess.Popen[bytes]
    dockerd: subprocess.Popen[bytes]
    log_dir: Path


def docker(*args: str, timeout: float = 60.0, check: bool = True) -> str:
    """Run the Debian docker client (same API version as the daemon)."""
    return run([DOCKER, *args], timeout=timeout, check=check)


def _docker_answers() -> bool:
    version = [DOCKER, "version"]
    return subprocess.run(version, capture_output=True, timeout=10, check=False).returncode == 0


def _wait_for(ready: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DockerUnavailable(f"{what} exited with {proc.returncode}")
        if ready():
            return
        time.sleep(0.2)
    raise DockerUnavailable(f"{what} not ready after {timeout:.0f}s")


def _start_logged(argv: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)


def require_tools() -> None:
    """Raise DockerUnavailable naming every tool of the lab that is not installed."""
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        names = ", ".join(missing)
        raise DockerUnavailable(f"not installed: {names} (see .ci/docker-setup.sh)")


def start_dockerd(log_dir: Path, timeout: float = 60.0) -> DockerDaemon:
    """Start containerd and dockerd in the background: docker0 172.18.0.1/16, no IPv6.

    Turns on br_netfilter's bridge-nf-call-iptables so that container-to-container
    traffic crosses iptables. Raises DockerUnavailable when a binary is missing, a
    daemon already answers, or a daemon is not up within `timeout` seconds.
    """
    require_tools()
    if _docker_answers():
        raise DockerUnavailable("a docker daemon is already running; not taking it over")
    if shutil.which("modprobe"):
        subprocess.run(["modprobe", "br_netfilter"], capture_output=True, timeout=30, check=False)
    if not Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists():
        raise DockerUnavailable("br_netfilter is not available in this kernel")
    run(["sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1"])
    log_dir.mkdir(parents=True, exist_ok=True)
    containerd = _start_logged(["containerd"], log_dir / "containerd.log")
    try:
        _wait_for(CONTAINERD_SOCKET.exists, containerd, "containerd", timeout)
        dockerd = _start_logged(
            [
                *("dockerd", "--bip", BRIDGE_CIDR, "--ip6tables=false"),
                *("--containerd", str(CONTAINERD_SOCKET)),
            ],
            log_dir / "dockerd.log",
        )
    except BaseException:
        stop_process(containerd, timeout=30.0)
        raise
    daemon = DockerDaemon(containerd=containerd, dockerd=dockerd, log_dir=log_dir)
    try:
        _wait_for(_docker_answers, dockerd, "dockerd", timeout)
    except BaseException:
        stop_dockerd(daemon)
        raise
    return daemon


def stop_dockerd(daemon: DockerDaemon) -> None:
    """Remove the lab's containers, stop dockerd then containerd, delete docker0."""
    if daemon.dockerd.poll() is None:
        docker("rm", "-f", *CONTAINERS, check=False)
    stop_process(daemon.dockerd, timeout=30.0)
    stop_process(daemon.containerd, timeout=30.0)
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        run(["ip", "link", "delete", BRIDGE])


def write_busybox_rootfs(tarball: Path) -> None:
    """A one-binary root filesystem as a tar: busybox-static, its applet links, /www/index.html."""
    applets = run([str(BUSYBOX), "--list"]).split()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "rootfs"
        for sub in ("bin", "etc", "tmp", "www"):
            (root / sub).mkdir(parents=True)
        shutil.copy2(BUSYBOX, root / "bin" / "busybox")
        for applet in applets:
            if applet != "busybox":
                (root / "bin" / applet).symlink_to("busybox")
        (root / "www" / "index.html").write_bytes(INDEX_HTML)
        with tarfile.open(tarball, "w") as tar:
            tar.add(root, arcname=".")


def build_busybox_image(tag: str = IMAGE) -> None:
    """Import the busybox root filesystem as a Docker image."""
    with tempfile.TemporaryDirectory() as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        write_busybox_rootfs(tarball)
        docker("import", "-c", 'CMD ["/bin/sh"]', str(tarball), tag)


def run_containers() -> None:
    """Start nginx-1 and nginx-2 (busybox httpd on :80); nginx-2 publishes 8080:80."""
    httpd = ("busybox", "httpd", "-f", "-p", "80", "-h", "/www")
    docker("run", "-d", "--name", NGINX_1, IMAGE, *httpd)
    docker("run", "-d", "--name", NGINX_2, "-p", "8080:80", IMAGE, *httpd)
    for name, ip in ((NGINX_1, NGINX_1_IP), (NGINX_2, NGINX_2_IP)):
        got = docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", name).strip()
        if got != ip:
            raise RuntimeError(f"{name} got {got}, expected {ip}")


def host_veth(container: str) -> str:
    """The host end of a container's eth0: the link whose ifindex is eth0's iflink."""
    iflink = docker("exec", container, "cat", "/sys/class/net/eth0/iflink")
    for link in json.loads(run(["ip", "-j", "link", "show"])):
        if link["ifindex"] == int(iflink):
            return str(link["ifname"])
    raise RuntimeError(f"no host link with ifindex {iflink.strip()} for {container}")


@contextmanager
def docker_lab(log_dir: Path, backend: Backend) -> Iterator[DockerDaemon]:
    """Docker on the given iptables backend with nginx-1 and nginx-2 running.

    The host firewall is saved first and restored on the way out, also on failure.
    """
    require_tools()
    saved = save_host_firewall()
    daemon: DockerDaemon | None = None
    try:
        set_iptables_backend(backend)
        daemon = start_dockerd(log_dir)
        build_busybox_image()
        run_containers()
        yield daemon
    finally:
        if daemon is not None:
            stop_dockerd(daemon)
        restore_host_firewall(saved)


# --- tracing ------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleCounter:
    """Counters of one raw-table rule, as `iptables -L -v -x -n` shows them."""

    chain: str
    rulenum: int
    pkts: int
    bytes: int
    target: str
    spec: str


def add_trace_rules(iptables: str) -> None:
    """Append the TRACE rules to the raw table."""
    for rule in TRACE_RULES:
        run([iptables, "-t", "raw", "-A", *rule])


def delete_trace_rules(iptables: str) -> None:
    """Delete the TRACE rules (missing ones are ignored)."""
    for rule in TRACE_RULES:
        run([iptables, "-t", "raw", "-D", *rule], check=False)


def parse_trace_counters(listing: str) -> list[RuleCounter]:
    """The TRACE rules' counters from `iptables -t raw -L -v -x -n`."""
    counters: list[RuleCounter] = []
    chain = ""
    rulenum = 0
    for line in listing.splitlines():
        words = line.split()
        if not words or words[0] == "pkts":
            continue
        if words[0] == "Chain":
            chain, rulenum = words[1], 0
            continue
        rulenum += 1
        pkts, size, target, *spec = words
        if target == "TRACE":
            counters.append(RuleCounter(chain, rulenum, int(pkts), int(size), target, " ".join(spec)))
    return counters


def write_kmsg_marker(text: str) -> None:
    """Write one line into the kernel log."""
    with Path("/dev/kmsg").open("w") as kmsg:
        kmsg.write(text + "\n")


@contextmanager
def kernel_log_between_markers(label: str) -> Iterator[list[str]]:
    """Collect the `dmesg` lines printed while the block runs, markers excluded.

    The list is filled in when the block exits.
    """
    token = f"tracelog-dockerlab {label} {uuid.uuid4().hex}"
    lines: list[str] = []
    write_kmsg_marker(f"{token} begin")
    yield lines
    time.sleep(SETTLE_SECONDS)
    write_kmsg_marker(f"{token} end")
    inside = False
    for line in run(["dmesg"]).splitlines():
        if line.endswith(f"{token} begin"):
            inside = True
        elif line.endswith(f"{token} end"):
            break
        elif inside and not LAB_MARKER.match(line):
            lines.append(line)


@contextmanager
def trace_monitors(out_dir: Path, label: str) -> Iterator[list[str]]:
    """Run `xtables-monitor --trace` and `nft monitor trace` into `<label>.*-monitor`.

    Yields the file names. stdbuf keeps the monitors line-buffered so that nothing
    is lost when they are interrupted.
    """
    commands = {
        f"{label}.xtables-monitor": ["stdbuf", "-oL", "xtables-monitor", "--trace"],
        f"{label}.nft-monitor": ["stdbuf", "-oL", "nft", "monitor", "trace"],
    }
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name, argv in commands.items():
            with (out_dir / name).open("wb") as sink:
                procs.append(subprocess.Popen(argv, stdout=sink))
        # The monitors print nothing once subscribed: give them time to get there.
        time.sleep(SETTLE_SECONDS)
        for argv, proc in zip(commands.values(), procs, strict=True):
            if proc.poll() is not None:
                raise RuntimeError(f"{' '.join(argv)} exited early")
        yield list(commands)
        time.sleep(SETTLE_SECONDS)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


# --- scenarios ----------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """Traffic generated inside the containers: argv lists for `docker exec`."""

    name: str
    description: str
    commands: tuple[tuple[str, ...], ...]
    expect_success: bool = True


PING = Scenario(
    "ping",
    "nginx-1 pings nginx-2 twice across docker0 (bridged: PHYSIN/PHYSOUT are veths)",
    ((NGINX_1, "ping", "-c", "2", NGINX_2_IP),),
)
HTTP = Scenario(
    "http",
    "nginx-1 fetches / from nginx-2's busybox httpd: one TCP connection",
    ((NGINX_1, "wget", "-q", "-O-", f"http://{NGINX_2_IP}/"),),
)
# busybox 1.35's `wget -T` segfaults, so the timeout comes from busybox `timeout`.
DROP = Scenario(
    "drop",
    "the same fetch while DOCKER-USER drops nginx-1 -> nginx-2:80; wget gives up after 3 s",
    ((NGINX_1, "timeout", "3", "wget", "-q", "-O-", f"http://{NGINX_2_IP}/"),),
    expect_success=False,
)
PROXY = Scenario(
    "proxy",
    f"nginx-1 fetches / from the port nginx-2 publishes on the docker host "
    f"({GATEWAY_IP}:8080): docker-proxy accepts it and opens a second connection "
    "from the host to nginx-2",
    ((NGINX_1, "wget", "-q", "-O-", f"http://{GATEWAY_IP}:8080/"),),
)


@dataclass
class ScenarioResult:
    """What meta.json records about one scenario."""

    description: str
    commands: list[str]
    exit_codes: list[int]
    trace_counters: list[RuleCounter]
    traced_packets: int
    raw_table_listing: str
    files: list[str] = field(default_factory=list)


def generate_traffic(scenario: Scenario) -> list[int]:
    """Run the scenario's commands; return their exit codes, checking each."""
    codes: list[int] = []
    for argv in scenario.commands:
        done = subprocess.run([DOCKER, "exec", *argv], capture_output=True, timeout=30, check=False)
        if (done.returncode == 0) != scenario.expect_success:
            command = " ".join(argv)
            raise RuntimeError(f"{scenario.name}: {command} exited {done.returncode}")
        codes.append(done.returncode)
    return codes


def foreign_lines(lines: Sequence[str], veths: Collection[str]) -> list[str]:
    """Kernel log lines naming a veth that is not the lab's: another lab's output.

    Labs in other network namespaces on the same host log to the same ring buffer
    (bridge port messages, and TRACE lines when nf_log_all_netns is on).
    """
    return [line for line in lines if not set(VETH_NAME.findall(line)) <= set(veths)]


def _capture_once(scenario: Scenario, out_dir: Path, backend: Backend) -> tuple[list[int], list[str], list[str]]:
    """Exit codes, kernel log lines and monitor files of one run of the traffic."""
    run([f"iptables-{backend}", "-t", "raw", "-Z"])
    monitor_files: list[str] = []
    with kernel_log_between_markers(scenario.name) as kernel_lines:
        if backend == "nft":
            with trace_monitors(out_dir, scenario.name) as monitor_files:
                codes = generate_traffic(scenario)
        else:
            codes = generate_traffic(scenario)
    return codes, kernel_lines, monitor_files


def trace_scenario(scenario: Scenario, out_dir: Path, backend: Backend, veths: Collection[str]) -> ScenarioResult:
    """Zero the raw counters, run the traffic, save what was traced, read counters.

    Writes `<name>.dmesg` when the kernel logged something and, on nft,
    `<name>.xtables-monitor` and `<name>.nft-monitor`. A run whose kernel log holds
    another lab's lines, or (legacy) whose raw-table lines do not match the TRACE
    counters, is done again, up to CAPTURE_ATTEMPTS times.
    """
    iptables = f"iptables-{backend}"
    for attempt in range(1, CAPTURE_ATTEMPTS + 1):
        codes, kernel_lines, files = _capture_once(scenario, out_dir, backend)
        listing = run([iptables, "-t", "raw", "-L", "-v", "-x", "-n"])
        counters = parse_trace_counters(listing)
        traced = sum(c.pkts for c in counters)
        # Each flagged packet leaves raw by its policy: one raw line per packet here.
        raw_lines = sum("TRACE: raw:" in line for line in kernel_lines)
        if not foreign_lines(kernel_lines, veths) and (backend == "nft" or raw_lines == traced):
            break
        if attempt == CAPTURE_ATTEMPTS:
            raise RuntimeError(f"{scenario.name}: kernel log disturbed by another lab")
        print(
            f"dockerlab: {scenario.name}: kernel log disturbed, again in {RETRY_SECONDS:.0f}s",
            file=sys.stderr,
        )
        time.sleep(RETRY_SECONDS)
    if kernel_lines:
        dmesg = f"{scenario.name}.dmesg"
        (out_dir / dmesg).write_text("\n".join(kernel_lines) + "\n")
        files.insert(0, dmesg)
    return ScenarioResult(
        description=scenario.description,
        commands=[f"docker exec {' '.join(argv)}" for argv in scenario.commands],
        exit_codes=codes,
        trace_counters=counters,
        traced_packets=traced,
        raw_table_listing=listing,
        files=files,
    )


# --- sample directories -------------------------------------------------------------


def versions() -> dict[str, str]:
    """Kernel, Docker and firewall tool versions for meta.json."""
    return {
        "kernel": run(["uname", "-r"]).strip(),
        "docker": docker("version", "-f", "{{.Server.Version}}").strip(),
        "containerd": run(["containerd", "--version"]).strip(),
        "iptables": run(["iptables", "--version"]).strip(),
        "nft": run(["nft", "--version"]).strip(),
        "busybox": run([str(BUSYBOX)], check=False).splitlines()[0],
    }


def write_meta(
    out_dir: Path,
    backend: Backend,
    iptables: str,
    results: dict[str, ScenarioResult],
    files: dict[str, str],
) -> None:
    """Write meta.json: versions, containers, TRACE rules, counters, every file."""
    meta = {
        "backend": backend,
        "date": now_iso(),
        "versions": versions(),
        "dockerd": f"dockerd --bip {BRIDGE_CIDR} --ip6tables=false",
        "sysctls": {key: run(["sysctl", "-n", key]).strip() for key in SYSCTLS},
        "containers": {
            name: {"ip": ip, "host_veth": host_veth(name), "image": IMAGE}
            for name, ip in ((NGINX_1, NGINX_1_IP), (NGINX_2, NGINX_2_IP))
        },
        "trace_rules": [f"{iptables} -t raw -A {' '.join(r)}" for r in TRACE_RULES],
        "counters": f"zeroed with `{iptables} -t raw -Z` before each scenario, read "
        f"with `{iptables} -t raw -L -v -x -n` after it",
        "scenarios": {name: asdict(result) for name, result in results.items()},
        "files": files,
    }
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def capture_legacy(out_dir: Path, log_dir: Path) -> None:
    """Docker on iptables-legacy: TRACE lines come through the kernel log."""
    fresh_directory(out_dir)
    iptables = "iptables-legacy"
    drop_rule = " ".join(DROP_RULE)
    files = {
        "iptables-save.txt": "iptables-legacy-save while tracing",
        "iptables-save.drop.txt": f"iptables-legacy-save during drop (-I {drop_rule})",
        "docker-inspect.json": f"docker inspect {NGINX_1} {NGINX_2}",
        "docker-network-inspect.json": "docker network inspect bridge",
        "ip-link.json": "ip -j -d link show (veth peers, ifindexes, bridge ports)",
        "ip-link.txt": "ip -d link show",
    }
    with docker_lab(log_dir, "legacy"):
        saves = {
            "docker-inspect.json": docker("inspect", NGINX_1, NGINX_2),
            "docker-network-inspect.json": docker("network", "inspect", "bridge"),
            "ip-link.json": run(["ip", "-j", "-d", "link", "show"]),
            "ip-link.txt": run(["ip", "-d", "link", "show"]),
        }
        saves["ip-link.json"] = json.dumps(json.loads(saves["ip-link.json"]), indent=2)
        for name, text in saves.items():
            (out_dir / name).write_text(text if text.endswith("\n") else text + "\n")
        veths = [host_veth(name) for name in CONTAINERS]
        add_trace_rules(iptables)
        try:
            (out_dir / "iptables-save.txt").write_text(run(["iptables-legacy-save"]))
            results = {s.name: trace_scenario(s, out_dir, "legacy", veths) for s in (PING, HTTP, PROXY)}
            run([iptables, "-I", *DROP_RULE])
            try:
                drop_save = run(["iptables-legacy-save"])
                (out_dir / "iptables-save.drop.txt").write_text(drop_save)
                results[DROP.name] = trace_scenario(DROP, out_dir, "legacy", veths)
            finally:
                run([iptables, "-D", *DROP_RULE])
        finally:
            delete_trace_rules(iptables)
        for name, result in results.items():
            for file in result.files:
                files[file] = f"dmesg lines of the {name} scenario, between markers"
        write_meta(out_dir, "legacy", iptables, results, files)


def capture_nft(out_dir: Path, log_dir: Path) -> None:
    """Docker on iptables-nft: TRACE events over netlink, read by both monitors."""
    fresh_directory(out_dir)
    iptables = "iptables-nft"
    files = {
        "iptables-save.txt": "iptables-nft-save while tracing",
        "nft-list-ruleset.txt": "nft -a list ruleset while tracing (-a: rule handles, "
        "which xtables-monitor prints in hex)",
    }
    kinds = {
        "dmesg": "dmesg lines of the {}: legacy tables, still registered in the "
        "kernel, log TRACE lines for packets that the nft rule flagged",
        "xtables-monitor": "stdbuf -oL xtables-monitor --trace during the {}",
        "nft-monitor": "stdbuf -oL nft monitor trace during the {} (run together with xtables-monitor)",
    }
    with docker_lab(log_dir, "nft"):
        veths = [host_veth(name) for name in CONTAINERS]
        add_trace_rules(iptables)
        try:
            (out_dir / "iptables-save.txt").write_text(run(["iptables-nft-save"]))
            ruleset = run(["nft", "-a", "list", "ruleset"])
            (out_dir / "nft-list-ruleset.txt").write_text(ruleset)
            results = {s.name: trace_scenario(s, out_dir, "nft", veths) for s in (PING, HTTP, PROXY)}
        finally:
            delete_trace_rules(iptables)
        for name, result in results.items():
            for file in result.files:
                kind = file.rsplit(".", 1)[1]
                files[file] = kinds[kind].format(f"{name} scenario")
        write_meta(out_dir, "nft", iptables, results, files)


def main(argv: Sequence[str] | None = None) -> int:
    """Regenerate samples/docker-legacy and samples/docker-nft (root, docker.io)."""
    parser = argparse.ArgumentParser(prog="python -m tests.lab.dockerlab", description=main.__doc__)
    parser.add_argument("--out", type=Path, default=Path("samples"))
    parser.add_argument(
        "--logs",
        type=Path,
        default=Path(tempfile.gettempdir()) / "tracelog-dockerlab",
        help="where containerd and dockerd write their logs",
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("dockerlab: must run as root", file=sys.stderr)
        return 2
    try:
        require_tools()
        before = save_host_firewall()
        capture_legacy(args.out / "docker-legacy", args.logs / "legacy")
        capture_nft(args.out / "docker-nft", args.logs / "nft")
    except DockerUnavailable as err:
        print(f"dockerlab: {err} (logs in {args.logs})", file=sys.stderr)
        return 3
    diffs = firewall_differences(before, save_host_firewall())
    if diffs:
        print(f"dockerlab: host not restored: {', '.join(diffs)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
