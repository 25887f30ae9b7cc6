"""A Kubernetes-shaped node built from network namespaces, traced in three ways, and the samples taken from it.

The node namespace (`tk-node`) has a `cni0` bridge with the pods of
`tests/lab/k8s_cluster.py` as namespaces on it, an uplink `eth0` to an
"external" namespace (`tk-ext`), and the ruleset kube-proxy, kubelet,
kube-router and the CNI would load, in one of three modes:

- `legacy`: iptables-legacy, TRACE printed to the kernel log;
- `nft`: the same rules through iptables-nft, read with `xtables-monitor
  --trace` and `nft monitor trace`;
- `nftables`: kube-proxy's nftables mode (`nft -f`), the NetworkPolicy and
  forward chains through iptables-nft, read with `nft monitor trace`.

Run from the repository root, as root, to regenerate the samples::

    python -m tests.lab.k8s --out samples
    python -m tests.lab.k8s --out samples --only legacy

Each scenario is checked against the kernel twice: the TRACE rule counters
say how many packets were traced, and the node's conntrack table says which
endpoint each connection got.  Only namespaces this module creates are
touched.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from tests.lab import kernlog
from tests.lab.capture import (
    fresh_directory,
    now_iso,
    run_monitors,
    slice_problem,
    tool_versions,
    write_lines,
    write_meta,
)
from tests.lab.k8s_cluster import (
    BRIDGE,
    CLIENT,
    CLUSTER,
    DB,
    EXTERNAL_IP,
    GATEWAY,
    NODE_IP,
    NODE_NAME,
    UPLINK_PREFIX,
    WEB_1,
    Cluster,
    Pod,
    iptables_ruleset,
    kubectl_endpointslices,
    kubectl_pods,
    kubectl_services,
    nftables_ruleset,
    nftrace_ruleset,
    policy_ruleset,
    trace_ruleset,
)
from tests.lab.netlab import BUSYBOX, NetnsLab, parse_trace_counters, run

Mode = Literal["legacy", "nft", "nftables"]
MODES: tuple[Mode, ...] = ("legacy", "nft", "nftables")
UPLINK = "eth0"
SETTLE_SECONDS = 0.5
MONITOR_WARMUP = 1.5  # a loaded machine can take a second to start a monitor and subscribe
MONITOR_DRAIN = 1.5
# connections to the two-endpoint service until both endpoints were chosen: 1 in 2**19 runs needs more
CLUSTER_IP_ATTEMPTS = 20
ATTEMPTS = 3
_NFT_COUNTER = re.compile(r"counter packets (\d+) bytes \d+ meta nftrace set 1")
# conntrack -L: `tcp 6 118 TIME_WAIT src=… dst=… sport=… dport=… src=… dst=… sport=… dport=… [ASSURED] …`
_TUPLE = re.compile(r"src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+)")


@dataclass(frozen=True)
class Connection:
    """One conntrack entry of the node: the tuple the client sent and where the reply came from."""

    proto: str
    src: str
    dst: str
    sport: int
    dport: int
    reply_src: str
    reply_sport: int

    @property
    def endpoint(self) -> str | None:
        """`ip:port` the connection was DNAT'ed to, or None when its destination was not rewritten."""
        if (self.reply_src, self.reply_sport) == (self.dst, self.dport):
            return None
        return f"{self.reply_src}:{self.reply_sport}"


def parse_conntrack(listing: str) -> list[Connection]:
    """The TCP and UDP entries of `conntrack -L` output."""
    connections = []
    for line in listing.splitlines():
        words = line.split()
        tuples = _TUPLE.findall(line)
        if not words or words[0] not in ("tcp", "udp") or len(tuples) < 2:
            continue
        (src, dst, sport, dport), (reply_src, _, reply_sport, _) = tuples[:2]
        connections.append(Connection(words[0], src, dst, int(sport), int(dport), reply_src, int(reply_sport)))
    return sorted(connections, key=lambda found: (found.src, found.sport))


@dataclass(frozen=True)
class Traffic:
    """One client command, run in a pod's (or the external) namespace."""

    source: str  # a pod's name, or "ext"
    argv: tuple[str, ...]
    may_fail: bool = False


@dataclass(frozen=True)
class Scenario:
    """A named piece of traffic whose trace becomes one sample file per reader.

    `until_endpoints`: repeat the traffic until conntrack shows that many
    different endpoints (statistic mode picks one at random per connection).
    `modes`: where it is played (only nftables mode rejects a cluster IP's
    other ports; elsewhere such a connection would go unanswered).
    """

    name: str
    description: str
    traffic: Traffic
    until_endpoints: int = 0
    modes: tuple[Mode, ...] = ("legacy", "nft", "nftables")


def _wget(url: str) -> tuple[str, ...]:
    return (BUSYBOX, "wget", "-q", "-O", "/dev/null", url)


WEB = CLUSTER.service("web")
EMPTY = CLUSTER.service("empty")
SCENARIOS = (
    Scenario(
        "clusterip",
        f"{CLIENT.key} GETs {WEB.service_port} at {WEB.cluster_ip}:{WEB.port.port} until both endpoints "
        "answered (statistic mode picks one per connection)",
        Traffic(CLIENT.name, _wget(f"http://{WEB.cluster_ip}:{WEB.port.port}/")),
        until_endpoints=2,
    ),
    Scenario(
        "nodeport",
        f"the external client GETs the NodePort {NODE_IP}:{WEB.port.node_port} of {WEB.service_port} "
        "(masquerade-marked in KUBE-EXT, accepted by the mark in KUBE-FORWARD)",
        Traffic("ext", _wget(f"http://{NODE_IP}:{WEB.port.node_port}/")),
        until_endpoints=1,
    ),
    Scenario(
        "no-endpoints",
        f"{CLIENT.key} connects to {EMPTY.service_port} at {EMPTY.cluster_ip}:{EMPTY.port.port}, "
        "which has no endpoints: REJECT",
        Traffic(CLIENT.name, _wget(f"http://{EMPTY.cluster_ip}:{EMPTY.port.port}/"), may_fail=True),
    ),
    Scenario(
        "wrong-port",
        f"{CLIENT.key} connects to port 8080 of {WEB.service_port}'s cluster IP {WEB.cluster_ip}, a port the "
        "service does not have: kube-proxy's cluster-ips-check REJECTs it (a commented rule)",
        Traffic(CLIENT.name, _wget(f"http://{WEB.cluster_ip}:8080/"), may_fail=True),
        modes=("nftables",),
    ),
    Scenario(
        "netpol",
        f"{CLIENT.key} connects to {DB.key} at {DB.ip}:{DB.port}, which the NetworkPolicy db-allow-web "
        "allows only from app=web: kube-router's pod firewall REJECTs it",
        Traffic(CLIENT.name, _wget(f"http://{DB.ip}:{DB.port}/"), may_fail=True),
    ),
    Scenario(
        "pod-to-pod",
        f"{WEB_1.key} GETs {DB.key} at {DB.ip}:{DB.port} across cni0, allowed by db-allow-web",
        Traffic(WEB_1.name, _wget(f"http://{DB.ip}:{DB.port}/")),
    ),
)


@dataclass(frozen=True)
class PlayedCommand:
    command: str
    returncode: int


@dataclass
class ScenarioRun:
    """One played scenario: what ran, and what the kernel counted and tracked meanwhile."""

    scenario: Scenario
    commands: list[PlayedCommand]
    counters: dict[str, dict[str, int]]
    connections: list[Connection] = field(default_factory=list)

    @property
    def traced_packets(self) -> int:
        return sum(sum(chains.values()) for chains in self.counters.values())

    def describe(self) -> dict[str, Any]:
        """The meta.json entry shared by every file captured from this run."""
        return {
            "scenario": self.scenario.name,
            "description": self.scenario.description,
            "commands": [asdict(command) for command in self.commands],
            "trace_counters": self.counters,
            "traced_packets": self.traced_packets,
            "conntrack": [{**asdict(found), "endpoint": found.endpoint} for found in self.connections],
        }


class KubeNodeLab(NetnsLab):
    """The node, its pods and the external client as namespaces `<prefix>-node`, `<prefix>-<pod>`, `<prefix>-ext`.

    `with KubeNodeLab("legacy") as lab:` builds everything and loads the
    ruleset of the mode; leaving the block stops the servers and deletes the
    namespaces, even when building failed half-way.
    """

    def __init__(self, mode: Mode, prefix: str = "tk", cluster: Cluster = CLUSTER) -> None:
        self.mode = mode
        self.prefix = prefix
        self.cluster = cluster
        self.node = f"{prefix}-node"
        self.ext = f"{prefix}-ext"
        super().__init__([self.node, self.ext, *(self.pod_namespace(pod) for pod in cluster.pods)])

    def pod_namespace(self, pod: Pod) -> str:
        """`tk-web-7d4b9c-fghij`: the namespace that plays a pod."""
        return f"{self.prefix}-{pod.name}"

    def namespace_of(self, source: str) -> str:
        return self.ext if source == "ext" else self.pod_namespace(self.cluster.pod(source))

    # -- building ------------------------------------------------------------------

    def _build(self) -> None:
        self.add_namespaces()
        run(["modprobe", "br_netfilter"], check=False)
        node = self.node
        self.exec(node, ["ip", "link", "add", BRIDGE, "address", "0a:58:0a:f4:01:01", "type", "bridge"])
        self.exec(node, ["ip", "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE])
        self.exec(node, ["ip", "link", "set", BRIDGE, "up"])
        self.exec(
            node,
            [
                "sysctl",
                "-q",
                "-w",
                "net.ipv4.ip_forward=1",
                "net.bridge.bridge-nf-call-iptables=1",
                "net.ipv4.conf.all.route_localnet=1",
            ],
        )
        for pod in self.cluster.pods:
            self._attach(pod)
        self.add_veth(node, UPLINK, self.ext, mac="02:00:c6:33:64:02")
        self.exec(node, ["ip", "addr", "add", f"{NODE_IP}/{UPLINK_PREFIX}", "dev", UPLINK])
        self.exec(node, ["ip", "link", "set", UPLINK, "up"])
        self.exec(node, ["ip", "route", "add", "default", "via", EXTERNAL_IP])
        self.exec(self.ext, ["ip", "link", "set", "eth0", "address", "02:00:c6:33:64:0a", "up"])
        self.exec(self.ext, ["ip", "addr", "add", f"{EXTERNAL_IP}/{UPLINK_PREFIX}", "dev", "eth0"])
        self._load_rules()
        self._start_servers()

    def _attach(self, pod: Pod) -> None:
        inside = self.pod_namespace(pod)
        self.add_veth(self.node, pod.veth, inside)
        self.exec(self.node, ["ip", "link", "set", pod.veth, "master", BRIDGE, "up"])
        self.exec(inside, ["ip", "link", "set", "eth0", "address", pod.mac, "up"])
        self.exec(inside, ["ip", "addr", "add", f"{pod.ip}/24", "dev", "eth0"])
        self.exec(inside, ["ip", "route", "add", "default", "via", GATEWAY])

    def _load_rules(self) -> None:
        if self.mode == "nftables":
            self.exec(self.node, ["nft", "-f", "-"], stdin=nftables_ruleset(self.cluster))
            self.exec(self.node, ["iptables-nft-restore"], stdin=policy_ruleset(self.cluster))
            self.exec(self.node, ["nft", "-f", "-"], stdin=nftrace_ruleset())
            return
        self.exec(self.node, [self.iptables_tool("restore")], stdin=iptables_ruleset(self.cluster))
        self.exec(self.node, [self.iptables_tool("restore"), "--noflush"], stdin=trace_ruleset())

    def iptables_tool(self, verb: str = "") -> str:
        """`iptables-legacy-save`, `iptables-nft-restore`, … for this mode's iptables."""
        flavour = "legacy" if self.mode == "legacy" else "nft"
        return f"iptables-{flavour}" + (f"-{verb}" if verb else "")

    def _start_servers(self) -> None:
        workdir = self.make_workdir(f"{self.prefix}-lab-")
        for pod in self.cluster.pods:
            if pod.port is None:
                continue
            docroot = workdir / pod.name
            docroot.mkdir()
            (docroot / "index.html").write_text(f"hello from {pod.key}\n")
            self.spawn(self.pod_namespace(pod), [BUSYBOX, "httpd", "-f", "-p", str(pod.port), "-h", str(docroot)])
            self.wait_for_listener(self.pod_namespace(pod), pod.port)

    # -- the kernel's own accounts -----------------------------------------------------

    def forget_connections(self) -> None:
        """Empty the node's conntrack table, so that it shows one scenario's connections."""
        self.exec(self.node, ["conntrack", "-F"], check=False)

    def trace_counters(self) -> dict[str, dict[str, int]]:
        """Packets the tracing rules matched so far, per chain (the kernel's count; a scenario's is the difference)."""
        if self.mode == "nftables":
            counters = {}
            for chain in ("trace_prerouting", "trace_output"):
                listing = self.exec(self.node, ["nft", "list", "chain", "ip", "trace", chain]).stdout
                counters[f"ip trace {chain}"] = sum(int(found) for found in _NFT_COUNTER.findall(listing))
            return {"ipv4": counters}
        return {
            "ipv4": {
                f"raw:{chain}": parse_trace_counters(
                    self.exec(
                        self.node, [self.iptables_tool(), "-t", "raw", "-L", chain, "-v", "-x", "-n", "--line-numbers"]
                    ).stdout
                )
                for chain in ("PREROUTING", "OUTPUT")
            }
        }

    def connections(self) -> list[Connection]:
        """The node's conntrack table."""
        return parse_conntrack(self.exec(self.node, ["conntrack", "-L"], check=False).stdout)

    def ruleset_files(self) -> dict[str, tuple[str, str]]:
        """The node's rules as a user would save them while tracing: file name → (text, the command that printed it)."""
        saves = {"iptables-save.txt": [self.iptables_tool("save")]}
        if self.mode != "legacy":
            saves["nft-list-ruleset.txt"] = ["nft", "-a", "list", "ruleset"]
        return {
            name: (self.exec(self.node, argv).stdout, f"{' '.join(argv)} in {self.node} while tracing")
            for name, argv in saves.items()
        }

    # -- traffic -----------------------------------------------------------------------

    def play(self, scenario: Scenario) -> ScenarioRun:
        """Send the scenario's traffic, repeating it until enough endpoints answered, and read the kernel's counts."""
        self.forget_connections()
        before = self.trace_counters()
        commands = []
        for _ in range(CLUSTER_IP_ATTEMPTS if scenario.until_endpoints else 1):
            commands.append(self._send(scenario.traffic))
            endpoints = {found.endpoint for found in self.connections() if found.endpoint}
            if len(endpoints) >= scenario.until_endpoints:
                break
        time.sleep(SETTLE_SECONDS)
        after = self.trace_counters()
        counters = {
            family: {chain: packets - before[family][chain] for chain, packets in chains.items()}
            for family, chains in after.items()
        }
        return ScenarioRun(scenario, commands, counters, self.connections())

    def _send(self, traffic: Traffic) -> PlayedCommand:
        argv = ["ip", "netns", "exec", self.namespace_of(traffic.source), *traffic.argv]
        result = run(argv, check=False, timeout=10)
        if result.returncode != 0 and not traffic.may_fail:
            raise RuntimeError(f"{shlex.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
        return PlayedCommand(shlex.join(argv), result.returncode)

    def interfaces(self) -> set[str]:
        """Interface names the node's TRACE lines can show."""
        return {BRIDGE, UPLINK, "lo", *(pod.veth for pod in self.cluster.pods)}


# -- reading the traces -------------------------------------------------------------------

MONITORS: dict[Mode, dict[str, tuple[str, ...]]] = {
    "legacy": {},
    "nft": {"xtables-monitor": ("xtables-monitor", "--trace"), "nft-monitor": ("nft", "monitor", "trace")},
    "nftables": {"nft-monitor": ("nft", "monitor", "trace"), "handles.nft-monitor": ("nft", "-a", "monitor", "trace")},
}


# A monitor whose netlink socket overflowed (a loaded machine) exits with this: the
# kernel dropped events it never read, so the scenario is played again.
OVERFLOW = "No buffer space available"
OVERFLOW_ATTEMPTS = 3


@dataclass(frozen=True)
class Capture:
    """One scenario's run and the trace files it produced: file name → (path, how it was read, monitor failure)."""

    run: ScenarioRun
    files: dict[str, tuple[Path, str, str | None]]


def capture_scenario(lab: KubeNodeLab, scenario: Scenario, directory: Path) -> Capture:
    """Play a scenario and write its traces into `directory`, as the lab's mode reads them."""
    if lab.mode == "legacy":
        return _capture_kernel_log(lab, scenario, directory)
    outputs = {kind: directory / f"{scenario.name}.{kind}" for kind in MONITORS[lab.mode]}
    for _ in range(OVERFLOW_ATTEMPTS):
        with run_monitors(
            lab, lab.node, MONITORS[lab.mode], outputs, warmup=MONITOR_WARMUP, drain=MONITOR_DRAIN
        ) as failures:
            played = lab.play(scenario)
        if not any(OVERFLOW in failure for failure in failures.values()):
            break
    files = {
        path.name: (path, f"ip netns exec {lab.node} {' '.join(MONITORS[lab.mode][kind])}", failures.get(kind))
        for kind, path in outputs.items()
    }
    return Capture(played, files)


@contextmanager
def followed_kernel_log() -> Iterator[Callable[[], list[str]]]:
    """`dmesg -w` running for the block: the lab's bursts outgrow a small ring buffer before a later `dmesg` reads it.

    Yields a function that returns the lines read so far (plain `dmesg` rendering).
    """
    with tempfile.TemporaryFile() as log:
        follower = subprocess.Popen(["dmesg", "-w"], stdout=log, stderr=subprocess.DEVNULL)
        try:
            yield lambda: _read_back(log)
        finally:
            follower.terminate()
            follower.wait(timeout=5)


def _read_back(log: IO[bytes]) -> list[str]:
    log.flush()
    log.seek(0)
    return log.read().decode("utf-8", "replace").splitlines()


def _capture_kernel_log(lab: KubeNodeLab, scenario: Scenario, directory: Path) -> Capture:
    """Play between kernel-log markers and keep the lines in between, retrying when another capture interfered."""
    problem = "not played"
    for attempt in range(1, ATTEMPTS + 1):
        kernlog.wait_for_quiet_log()
        kernlog.ensure_nf_log_all_netns()
        with followed_kernel_log() as read_log:
            time.sleep(MONITOR_WARMUP)
            window = kernlog.Window.new(f"k8s-{scenario.name}")
            window.open()
            try:
                played = lab.play(scenario)
            finally:
                window.close()
            time.sleep(MONITOR_DRAIN)
            lines = kernlog.slice_window(read_log(), window)
        problem = slice_problem(lines, played.counters, lab.interfaces()) or ""
        if not problem:
            path = directory / f"{scenario.name}.dmesg"
            write_lines(path, lines)
            rendering = (
                "dmesg -w (util-linux) running during the scenario, sliced between marker records that are left out"
            )
            return Capture(played, {path.name: (path, rendering, None)})
        print(f"  {scenario.name}: attempt {attempt} discarded: {problem}", file=sys.stderr)
        time.sleep(2.0 * attempt)
    raise RuntimeError(f"{scenario.name}: no clean capture after {ATTEMPTS} attempts: {problem}")


# -- samples --------------------------------------------------------------------------------

SAMPLE_DIRECTORIES: dict[Mode, str] = {"legacy": "k8s-legacy", "nft": "k8s-nft", "nftables": "k8s-nftables"}
KUBECTL_FILES: dict[str, Callable[[Cluster], dict[str, Any]]] = {
    "kubectl-pods.json": kubectl_pods,
    "kubectl-svc.json": kubectl_services,
    "kubectl-endpointslices.json": kubectl_endpointslices,
}


# The tools whose output the samples record, and how each says its version.
VERSION_COMMANDS = {
    "iptables-legacy": ["iptables-legacy", "--version"],
    "iptables-nft": ["iptables-nft", "--version"],
    "nft": ["nft", "--version"],
    "dmesg": ["dmesg", "--version"],
    "conntrack": ["conntrack", "--version"],
}


def topology(lab: KubeNodeLab) -> dict[str, str]:
    """What each namespace of the lab plays, for meta.json."""
    described = {
        lab.node: f"node {NODE_NAME}: bridge {BRIDGE} {GATEWAY}/24 (pod CIDR), uplink {UPLINK} {NODE_IP}/24, "
        "default route via the external client, br_netfilter with bridge-nf-call-iptables=1",
        lab.ext: f"external client {EXTERNAL_IP}/24 on the node's uplink",
    }
    for pod in lab.cluster.pods:
        listens = f", busybox httpd on :{pod.port}" if pod.port else ""
        described[lab.pod_namespace(pod)] = (
            f"pod {pod.key}, eth0 {pod.ip}/24 MAC {pod.mac}, host veth {pod.veth}{listens}"
        )
    return described


def capture_mode(mode: Mode, directory: Path) -> None:
    """Every scenario in one mode, with the rulesets, the kubectl output and a meta.json."""
    meta: dict[str, Any] = {
        "generator": "python -m tests.lab.k8s (tests/lab/k8s.py KubeNodeLab, rules from tests/lab/k8s_cluster.py)",
        "mode": mode,
        "kernel": platform.release(),
        "captured_at": now_iso(),
        "tools": tool_versions(VERSION_COMMANDS),
        "trace_counters_note": "Packets the tracing rules counted (raw-table TRACE rules, or the nftrace rules of "
        "table ip trace), zeroed before each scenario and read after it.",
        "conntrack_note": "The node's conntrack table (conntrack -L) after each scenario, flushed before it: "
        "endpoint is where each connection was DNAT'ed to (its reply's source), null when it was not.",
        "files": {},
    }
    files: dict[str, Any] = meta["files"]
    with ExitStack() as stack:
        if mode == "legacy":
            stack.enter_context(kernlog.nf_log_all_netns())
        lab = stack.enter_context(KubeNodeLab(mode))
        meta["topology"] = topology(lab)
        for name, (text, what) in lab.ruleset_files().items():
            (directory / name).write_text(text)
            files[name] = {"content": what}
        for name, build in KUBECTL_FILES.items():
            (directory / name).write_text(json.dumps(build(lab.cluster), indent=4) + "\n")
            files[name] = {
                "content": f"kubectl get {name.split('-', 1)[1].removesuffix('.json')} -A -o json, "
                "written for the lab's cluster in the API's schema"
            }
        for scenario in (scenario for scenario in SCENARIOS if mode in scenario.modes):
            captured = capture_scenario(lab, scenario, directory)
            for name, (path, rendering, failure) in captured.files.items():
                files[name] = {
                    "rendering": rendering,
                    "lines": len(path.read_text().splitlines()),
                    **({"monitor_failure": failure} if mode != "legacy" else {}),
                    **captured.run.describe(),
                }
            print(
                f"  {mode} {scenario.name}: {captured.run.traced_packets} packets, "
                f"{len(captured.run.connections)} connections"
            )
    write_meta(directory, meta)


def main(argv: Sequence[str] | None = None) -> int:
    """Capture the requested sample directories (all three by default)."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.lab.k8s", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("samples"), help="samples directory (default: samples)")
    parser.add_argument("--only", choices=MODES, action="append", help="capture only this mode")
    args = parser.parse_args(argv)
    for mode in args.only or MODES:
        directory = fresh_directory(args.out / SAMPLE_DIRECTORIES[mode])
        print(f"capturing {directory}")
        try:
            capture_mode(mode, directory)
        except (RuntimeError, LookupError, subprocess.SubprocessError) as error:
            print(f"k8s capture: {mode} failed: {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
