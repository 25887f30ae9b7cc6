"""A container host of our own in network namespaces, for rulesets that native nftables writers load.

Docker 29's nftables backend and netavark's nftables driver are not installable
here, so their rulesets (tests/lab/docker29.py, tests/lab/netavark_nft.py) are
loaded with `nft -f` into a host namespace with real bridges, veths and
"containers" (namespaces), and the kernel traces real packets through them.
Only namespaces this module creates are touched.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from ipaddress import IPv4Interface
from pathlib import Path
from typing import IO, Any

from tests.lab.netlab import BUSYBOX, NetnsLab, docker_veth_name, run

TRACE_TABLE = "tracing"
# Before every writer's chain, raw priority (-300) included, so a raw drop is traced too.
TRACE_PRIORITY = -350
MONITOR_WARMUP = 0.7
MONITOR_DRAIN = 0.7
HTTP_PORT = 80


@dataclass(frozen=True)
class Bridge:
    """A container network's bridge on the host: its name and the gateway address with prefix."""

    name: str
    gateway: IPv4Interface

    @property
    def subnet(self) -> str:
        """The network's subnet, `10.89.0.0/24`."""
        return str(self.gateway.network)


@dataclass(frozen=True)
class Endpoint:
    """A container: a namespace whose eth0 is a veth port on one bridge; `httpd` serves :80."""

    name: str
    bridge: Bridge
    address: str
    mac: str
    httpd: bool = False

    @property
    def interface(self) -> IPv4Interface:
        """The container's address with its network's prefix length."""
        return IPv4Interface(f"{self.address}/{self.bridge.gateway.network.prefixlen}")


@dataclass(frozen=True)
class Uplink:
    """An outside client behind a host interface: the host's address there and the client's."""

    interface: str
    host: IPv4Interface
    client: str
    client_mac: str

    @property
    def subnet(self) -> str:
        """The uplink's subnet, `192.0.2.0/24`."""
        return str(self.host.network)


@dataclass(frozen=True)
class Topology:
    """Bridges, containers and outside clients of one lab; namespaces are named `<prefix>-<role>`."""

    prefix: str
    bridges: tuple[Bridge, ...]
    endpoints: tuple[Endpoint, ...]
    uplinks: tuple[Uplink, ...]

    @property
    def host(self) -> str:
        """The host namespace: bridges, uplinks and the ruleset live here."""
        return f"{self.prefix}-host"

    def namespace(self, role: str) -> str:
        """The namespace of a container or client role (`c1`, `ext`, …) or of `host`."""
        return self.host if role == "host" else f"{self.prefix}-{role}"

    def veth(self, endpoint: Endpoint) -> str:
        """The host end of a container's eth0, named the way Docker names it."""
        return docker_veth_name(f"{self.prefix}/{endpoint.name}")

    def traced_subnets(self) -> list[str]:
        """Every subnet of the lab: the trace rules select these and nothing else."""
        return [bridge.subnet for bridge in self.bridges] + [uplink.subnet for uplink in self.uplinks]

    def describe(self) -> dict[str, str]:
        """Each namespace and what it holds, for meta.json."""
        bridges = ", ".join(f"bridge {b.name} {b.gateway}" for b in self.bridges)
        uplinks = ", ".join(f"uplink {u.interface} {u.host}" for u in self.uplinks)
        described = {
            self.host: f"container host: {bridges}, {uplinks}, ip_forward=1, br_netfilter bridge-nf-call-iptables=1"
        }
        for endpoint in self.endpoints:
            serves = f", busybox httpd on :{HTTP_PORT}" if endpoint.httpd else ""
            described[self.namespace(endpoint.name)] = (
                f"container {endpoint.name}: eth0 {endpoint.interface} MAC {endpoint.mac} on {endpoint.bridge.name}"
                f" (host end {self.veth(endpoint)}){serves}"
            )
        for number, uplink in enumerate(self.uplinks, start=1):
            described[self.namespace(f"ext{number}")] = (
                f"outside client: eth0 {uplink.client} behind the host's {uplink.interface}, default route via it"
            )
        return described


def trace_ruleset(topology: Topology) -> str:
    """The lab's own table: chains before every other that switch nftrace on for the lab's traffic."""
    subnets = ", ".join(topology.traced_subnets())
    return f"""\
table inet {TRACE_TABLE} {{
	chain trace_prerouting {{
		type filter hook prerouting priority {TRACE_PRIORITY}; policy accept;
		ip saddr {{ {subnets} }} counter meta nftrace set 1
	}}

	chain trace_output {{
		type filter hook output priority {TRACE_PRIORITY}; policy accept;
		ip daddr {{ {subnets} }} counter meta nftrace set 1
	}}
}}
"""


def counted_packets(listing: dict[str, Any]) -> dict[str, int]:
    """Packets counted by each trace chain in `nft -j list table` output: the kernel's own count."""
    counts: dict[str, int] = {}
    for item in listing["nftables"]:
        rule = item.get("rule")
        if rule is None:
            continue
        for statement in rule["expr"]:
            if "counter" in statement:
                key = f"{rule['family']} {rule['table']} {rule['chain']}"
                counts[key] = counts.get(key, 0) + int(statement["counter"]["packets"])
    return counts


class NamespaceLab(NetnsLab):
    """`with NamespaceLab(topology) as lab:` builds the namespaces, links and httpd; leaving deletes them."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        roles = [endpoint.name for endpoint in topology.endpoints]
        roles += [f"ext{number}" for number in range(1, len(topology.uplinks) + 1)]
        super().__init__([topology.host, *(topology.namespace(role) for role in roles)])

    def exec(
        self, role: str, argv: Sequence[str], *, check: bool = True, timeout: float = 20.0, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in the namespace of `role` (`host`, a container's name, `ext1`, …)."""
        return super().exec(self.topology.namespace(role), argv, check=check, timeout=timeout, stdin=stdin)

    def spawn(
        self,
        role: str,
        argv: Sequence[str],
        *,
        stdout: IO[bytes] | int = subprocess.DEVNULL,
        stderr: IO[bytes] | int = subprocess.DEVNULL,
    ) -> subprocess.Popen[bytes]:
        """Start a long-running process in the namespace of `role`; `close()` stops it."""
        return super().spawn(self.topology.namespace(role), argv, stdout=stdout, stderr=stderr)

    def load(self, ruleset: str) -> None:
        """Load an nft ruleset into the host namespace, as the rule writer would."""
        self.exec("host", ["nft", "-f", "-"], stdin=ruleset)

    def reset_tracing(self) -> None:
        """Replace the trace table, so its counters count one scenario from zero."""
        self.exec("host", ["nft", "delete", "table", "inet", TRACE_TABLE], check=False)
        self.load(trace_ruleset(self.topology))

    def trace_counters(self) -> dict[str, int]:
        """Packets each trace chain flagged since `reset_tracing`."""
        listing = self.exec("host", ["nft", "-j", "list", "table", "inet", TRACE_TABLE]).stdout
        return counted_packets(json.loads(listing))

    def ruleset(self) -> str:
        """`nft -a list ruleset` of the host namespace."""
        return self.exec("host", ["nft", "-a", "list", "ruleset"]).stdout

    @contextmanager
    def monitor(self, sink: Path) -> Iterator[None]:
        """`nft -a monitor trace` in the host namespace into `sink` while the block runs."""
        with sink.open("wb") as out:
            process = self.spawn("host", ["stdbuf", "-oL", "nft", "-a", "monitor", "trace"], stdout=out)
            time.sleep(MONITOR_WARMUP)
            if process.poll() is not None:
                raise RuntimeError("nft monitor trace exited early")
            try:
                yield
                time.sleep(MONITOR_DRAIN)
            finally:
                process.send_signal(signal.SIGINT)
                self.stop(process)

    def _build(self) -> None:
        self.add_namespaces()
        run(["modprobe", "br_netfilter"], check=False)
        self.exec("host", ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.bridge.bridge-nf-call-iptables=1"])
        for bridge in self.topology.bridges:
            self._add_bridge(bridge)
        for endpoint in self.topology.endpoints:
            self._add_endpoint(endpoint)
        for number, uplink in enumerate(self.topology.uplinks, start=1):
            self._add_uplink(f"ext{number}", uplink)
        self._start_httpd()

    def _add_bridge(self, bridge: Bridge) -> None:
        self.exec("host", ["ip", "link", "add", bridge.name, "type", "bridge"])
        self.exec("host", ["ip", "addr", "add", str(bridge.gateway), "dev", bridge.name])
        self.exec("host", ["ip", "link", "set", bridge.name, "up"])

    def _add_endpoint(self, endpoint: Endpoint) -> None:
        veth = self.topology.veth(endpoint)
        inside = self.topology.namespace(endpoint.name)
        self.add_veth(self.topology.host, veth, inside)
        self.exec("host", ["ip", "link", "set", veth, "master", endpoint.bridge.name, "up"])
        self.exec(endpoint.name, ["ip", "link", "set", "eth0", "address", endpoint.mac, "up"])
        self.exec(endpoint.name, ["ip", "addr", "add", str(endpoint.interface), "dev", "eth0"])
        self.exec(endpoint.name, ["ip", "route", "add", "default", "via", str(endpoint.bridge.gateway.ip)])

    def _add_uplink(self, role: str, uplink: Uplink) -> None:
        inside = self.topology.namespace(role)
        self.add_veth(self.topology.host, uplink.interface, inside)
        self.exec("host", ["ip", "addr", "add", str(uplink.host), "dev", uplink.interface])
        self.exec("host", ["ip", "link", "set", uplink.interface, "up"])
        client = f"{uplink.client}/{uplink.host.network.prefixlen}"
        self.exec(role, ["ip", "link", "set", "eth0", "address", uplink.client_mac, "up"])
        self.exec(role, ["ip", "addr", "add", client, "dev", "eth0"])
        self.exec(role, ["ip", "route", "add", "default", "via", str(uplink.host.ip)])

    def _start_httpd(self) -> None:
        workdir = self.make_workdir(f"{self.topology.prefix}-lab-")
        (workdir / "index.html").write_text("hello from the lab\n")
        for endpoint in self.topology.endpoints:
            if endpoint.httpd:
                self.spawn(endpoint.name, [BUSYBOX, "httpd", "-f", "-p", str(HTTP_PORT), "-h", str(workdir)])
                self.wait_for_listener(self.topology.namespace(endpoint.name), HTTP_PORT)


# --- scenarios ----------------------------------------------------------------------


@dataclass(frozen=True)
class Traffic:
    """One client command run in a role's namespace; `may_fail` when failing is the point (a drop)."""

    role: str
    argv: tuple[str, ...]
    may_fail: bool = False


@dataclass(frozen=True)
class Scenario:
    """Traffic whose trace becomes one sample file; `setup` is nft run in the host before it, undone after."""

    name: str
    description: str
    traffic: tuple[Traffic, ...]
    setup: tuple[tuple[str, ...], ...] = field(default=())
    undo: tuple[tuple[str, ...], ...] = field(default=())


def ping(role: str, address: str, *, may_fail: bool = False) -> Traffic:
    """Two pings from `role` to `address`, giving up after 2 s each."""
    return Traffic(role, (BUSYBOX, "ping", "-c", "2", "-W", "2", address), may_fail)


def fetch(role: str, address: str, port: int = HTTP_PORT) -> Traffic:
    """One HTTP GET from `role`."""
    return Traffic(role, (BUSYBOX, "wget", "-q", "-O", "/dev/null", f"http://{address}:{port}/"))


def connect(role: str, address: str, port: int) -> Traffic:
    """A TCP connection attempt that a drop makes `nc` give up on after 2 s."""
    return Traffic(role, (BUSYBOX, "nc", "-w", "2", address, str(port)), may_fail=True)


def play(lab: NamespaceLab, scenario: Scenario) -> list[dict[str, object]]:
    """Run a scenario's commands; each that fails (or succeeds) against expectation raises."""
    played: list[dict[str, object]] = []
    for traffic in scenario.traffic:
        done = lab.exec(traffic.role, traffic.argv, check=False, stdin="")
        if done.returncode != 0 and not traffic.may_fail:
            raise RuntimeError(f"{scenario.name}: {' '.join(traffic.argv)} exited {done.returncode}: {done.stderr}")
        if done.returncode == 0 and traffic.may_fail:
            raise RuntimeError(f"{scenario.name}: {' '.join(traffic.argv)} succeeded, but should have been dropped")
        namespace = lab.topology.namespace(traffic.role)
        played.append({"command": f"ip netns exec {namespace} {' '.join(traffic.argv)}", "returncode": done.returncode})
    return played


def capture(lab: NamespaceLab, scenario: Scenario, directory: Path) -> dict[str, object]:
    """Trace one scenario into `<name>.nft-monitor`; returns its meta.json entry with the kernel's counters."""
    name = f"{scenario.name}.nft-monitor"
    lab.reset_tracing()
    for argv in scenario.setup:
        lab.exec("host", argv)
    try:
        with lab.monitor(directory / name):
            commands = play(lab, scenario)
        counters = lab.trace_counters()
    finally:
        for argv in scenario.undo:
            lab.exec("host", argv)
    return {
        "scenario": scenario.name,
        "description": scenario.description,
        "setup": [" ".join(argv) for argv in scenario.setup],
        "commands": commands,
        "rendering": f"ip netns exec {lab.topology.host} stdbuf -oL nft -a monitor trace",
        "trace_counters": counters,
        "traced_packets": sum(counters.values()),
    }


def tool_versions() -> dict[str, str]:
    """Kernel, nft and busybox versions for meta.json."""
    return {
        "kernel": run(["uname", "-r"]).stdout.strip(),
        "nft": run(["nft", "--version"]).stdout.strip(),
        "iptables": run(["iptables-nft", "--version"]).stdout.strip(),
        "busybox": run([BUSYBOX], check=False).stdout.splitlines()[0],
    }
