"""A Docker-like host built from network namespaces, with TRACE rules in its raw table.

Everything here shells out to ``ip``, ``sysctl`` and the iptables tools so the
kernel, not Python, decides what gets traced. Only namespaces this module
creates are touched: the initial namespace's firewall is never changed.
``NetnsLab`` here is what every namespace lab (this one, tests/lab/nftlab.py,
tests/lab/k8s.py) shares: creating its namespaces, running things in them,
deleting them.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Literal, Self

BackendName = Literal["legacy", "nft"]
Family = Literal["ipv4", "ipv6"]

BUSYBOX = "/bin/busybox"

# Addresses mirror Docker's defaults for a user-chosen 172.18.0.0/16 bridge.
BRIDGE = "docker0"
BRIDGE_V4 = "172.18.0.1"
BRIDGE_V6 = "fd00:18::1"
SUBNET_V4 = "172.18.0.0/16"
SUBNET_V6 = "fd00:18::/64"
# The "outside world" is TEST-NET-1 and the documentation IPv6 prefix, which
# can never collide with a real destination.
UPLINK = "eth0"
UPLINK_V4 = "192.0.2.1"
UPLINK_V6 = "2001:db8::1"
EXT_V4 = "192.0.2.10"
EXT_V6 = "2001:db8::10"
EXT_SUBNET_V4 = "192.0.2.0/24"
PUBLISHED_PORT = 8080
# Rate-limit TRACE as one would on a busy host; the lab's traffic stays far below it.
TRACE_LIMIT = "-m limit --limit 100/sec --limit-burst 200"


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout: float = 20.0,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command and capture its text output; a hung tool fails fast instead of hanging CI."""
    return subprocess.run(
        list(argv),
        input=stdin,
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
    )


@dataclass(frozen=True)
class Backend:
    """The iptables flavour installed in the lab's host namespace.

    Legacy tables print TRACE through the kernel log; nft-backed tables
    send trace events over netlink instead, so captures differ per backend.
    """

    name: BackendName

    def tool(self, family: Family, verb: str = "") -> str:
        """Name of a tool such as ``ip6tables-nft-restore`` for this backend."""
        base = "iptables" if family == "ipv4" else "ip6tables"
        return f"{base}-{self.name}" + (f"-{verb}" if verb else "")


@dataclass(frozen=True)
class Container:
    """One "container": a namespace whose eth0 is a veth port on docker0."""

    role: str
    name: str
    ipv4: str
    ipv6: str

    @property
    def mac(self) -> str:
        """Docker derives a container's MAC from its IPv4 address (02:42 + the 4 octets)."""
        octets = (int(part) for part in self.ipv4.split("."))
        return "02:42:" + ":".join(f"{octet:02x}" for octet in octets)


def docker_veth_name(seed: str) -> str:
    """A stable Docker-style host-side veth name (``veth`` + 7 hex digits).

    Docker picks random suffixes; a hash keeps interface names identical across
    captures so samples can be regenerated without spurious diffs.
    """
    return "veth" + hashlib.sha1(seed.encode()).hexdigest()[:7]


def docker_ruleset(family: Family, containers: Sequence[Container]) -> str:
    """The filter and nat tables Docker (20.10 to 27) installs for one bridge and one published port.

    Modelled on ``iptables-save`` of a Docker host running ``-p 8080:80`` for
    the second container; the IPv6 variant is what Docker writes with
    ``ip6tables: true``.
    """
    web = containers[1]
    if family == "ipv4":
        subnet, web_addr, dnat_to = SUBNET_V4, f"{web.ipv4}/32", f"{web.ipv4}:80"
        loopback = "127.0.0.0/8"
    else:
        subnet, web_addr, dnat_to = SUBNET_V6, f"{web.ipv6}/128", f"[{web.ipv6}]:80"
        loopback = "::1/128"
    return f"""\
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d {loopback} -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s {subnet} ! -o {BRIDGE} -j MASQUERADE
-A POSTROUTING -s {web_addr} -d {web_addr} -p tcp -m tcp --dport 80 -j MASQUERADE
-A DOCKER -i {BRIDGE} -j RETURN
-A DOCKER ! -i {BRIDGE} -p tcp -m tcp --dport {PUBLISHED_PORT} -j DNAT --to-destination {dnat_to}
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-ISOLATION-STAGE-2 - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o {BRIDGE} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o {BRIDGE} -j DOCKER
-A FORWARD -i {BRIDGE} ! -o {BRIDGE} -j ACCEPT
-A FORWARD -i {BRIDGE} -o {BRIDGE} -j ACCEPT
-A DOCKER -d {web_addr} ! -i {BRIDGE} -o {BRIDGE} -p tcp -m tcp --dport 80 -j ACCEPT
-A DOCKER-ISOLATION-STAGE-1 -i {BRIDGE} ! -o {BRIDGE} -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-ISOLATION-STAGE-2 -o {BRIDGE} -j DROP
-A DOCKER-ISOLATION-STAGE-2 -j RETURN
-A DOCKER-USER -j RETURN
COMMIT
"""


def trace_ruleset(family: Family) -> str:
    """raw-table TRACE rules that select only the lab's own traffic.

    Anything from the container subnet or the external segment, and anything
    the host sends into the container subnet. IPv6 uses no ``icmp6`` match:
    xtables-monitor 1.8.9 cannot print rules that use it ("match extension not
    found") and exits, so neighbour discovery is traced along with the pings.
    """
    if family == "ipv4":
        rules = [
            f"-A PREROUTING -s {SUBNET_V4} {TRACE_LIMIT} -j TRACE",
            f"-A PREROUTING -s {EXT_SUBNET_V4} {TRACE_LIMIT} -j TRACE",
            f"-A OUTPUT -d {SUBNET_V4} {TRACE_LIMIT} -j TRACE",
        ]
    else:
        rules = [
            f"-A PREROUTING -s {SUBNET_V6} {TRACE_LIMIT} -j TRACE",
            f"-A OUTPUT -d {SUBNET_V6} {TRACE_LIMIT} -j TRACE",
        ]
    lines = [
        "*raw",
        ":PREROUTING ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        *rules,
        "COMMIT",
        "",
    ]
    return "\n".join(lines)


_COUNTER_ROW = re.compile(r"^\s*(?P<num>\d+)\s+(?P<pkts>\d+)\s+\d+\s+(?P<target>\S+)")


def parse_trace_counters(listing: str) -> int:
    """Sum the packet counters of TRACE rules in ``iptables -L CHAIN -v -x -n --line-numbers`` output."""
    total = 0
    for line in listing.splitlines():
        row = _COUNTER_ROW.match(line)
        if row and row["target"] == "TRACE":
            total += int(row["pkts"])
    return total


class NetnsLab:
    """`with` a lab: `_build` on entry (deleting what it built when it fails), leaving stops and deletes everything.

    A lab names its namespaces up front; its `_build` creates them with
    `add_namespaces` and builds the rest.
    """

    def __init__(self, namespaces: Sequence[str]) -> None:
        self.namespaces = list(namespaces)
        self._processes: list[subprocess.Popen[bytes]] = []
        self._workdir: Path | None = None

    def __enter__(self) -> Self:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _build(self) -> None:
        """Create the namespaces and what lives in them; each lab says what."""
        raise NotImplementedError

    @staticmethod
    def ns_argv(namespace: str, argv: Sequence[str]) -> list[str]:
        """Prefix `argv` so it runs inside `namespace`."""
        return ["ip", "netns", "exec", namespace, *argv]

    def close(self) -> None:
        """Stop the lab's processes, delete its namespaces and its scratch directory; safe to call twice."""
        for process in list(self._processes):
            self.stop(process)
        for namespace in self.namespaces:
            run(["ip", "netns", "del", namespace], check=False)
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def add_namespaces(self) -> None:
        """Create the lab's namespaces with `lo` up; refuse when one of them exists already."""
        clashes = sorted(set(run(["ip", "netns", "list"]).stdout.split()) & set(self.namespaces))
        if clashes:
            raise RuntimeError(f"namespaces already exist: {clashes} (delete them with 'ip netns del')")
        for namespace in self.namespaces:
            run(["ip", "netns", "add", namespace])
            run(self.ns_argv(namespace, ["ip", "link", "set", "lo", "up"]))

    def add_veth(self, namespace: str, name: str, peer_namespace: str, *, mac: str | None = None) -> None:
        """A veth pair: `name` (with `mac`, if given) in `namespace`, its peer `eth0` in `peer_namespace`."""
        address = ["address", mac] if mac else []
        link = ["ip", "link", "add", name, *address, "type", "veth", "peer", "name", "eth0", "netns", peer_namespace]
        run(self.ns_argv(namespace, link))

    def make_workdir(self, prefix: str) -> Path:
        """A scratch directory (web servers' document roots), removed when the lab closes."""
        self._workdir = Path(tempfile.mkdtemp(prefix=prefix))
        return self._workdir

    def exec(
        self,
        namespace: str,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 20.0,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside one of the lab's namespaces."""
        return run(self.ns_argv(namespace, argv), check=check, timeout=timeout, stdin=stdin)

    def spawn(
        self,
        namespace: str,
        argv: Sequence[str],
        *,
        stdout: IO[bytes] | int = subprocess.DEVNULL,
        stderr: IO[bytes] | int = subprocess.DEVNULL,
    ) -> subprocess.Popen[bytes]:
        """Start a long-running process in a namespace; `close()` stops it."""
        process = subprocess.Popen(self.ns_argv(namespace, argv), stdout=stdout, stderr=stderr)
        self._processes.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes], timeout: float = 5.0) -> int:
        """Terminate a process started with `spawn` (SIGKILL when it will not go) and wait for it."""
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process in self._processes:
            self._processes.remove(process)
        return process.returncode

    def wait_for_listener(self, namespace: str, port: int, timeout: float = 5.0) -> None:
        """Return once something listens on TCP `port` in `namespace`; fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if run(self.ns_argv(namespace, ["ss", "-Htln", f"sport = :{port}"])).stdout.strip():
                return
            time.sleep(0.05)
        raise RuntimeError(f"nothing listens on port {port} in {namespace}")


class DockerLikeLab(NetnsLab):
    """Namespaces ``<prefix>-host``, ``-c1``, ``-c2`` and ``-ext`` wired like a Docker host.

    ``with DockerLikeLab(backend="legacy") as lab:`` builds the topology, loads
    the Docker-like ruleset plus TRACE rules, and starts an HTTP server in c2;
    leaving the block kills every process it started and deletes the
    namespaces, even when building failed half-way.
    """

    def __init__(
        self,
        backend: BackendName = "legacy",
        prefix: str = "tl",
        *,
        ruleset: bool = True,
    ) -> None:
        self.backend = Backend(backend)
        self.prefix = prefix
        self.load_iptables = ruleset
        self.host = f"{prefix}-host"
        self.ext = f"{prefix}-ext"
        self.c1 = Container("nginx-1", f"{prefix}-c1", "172.18.0.2", "fd00:18::2")
        self.c2 = Container("nginx-2", f"{prefix}-c2", "172.18.0.3", "fd00:18::3")
        super().__init__([self.host, self.c1.name, self.c2.name, self.ext])
        self.veths = {c.name: docker_veth_name(f"{prefix}/{c.role}") for c in self.containers}

    @property
    def containers(self) -> tuple[Container, Container]:
        """Both containers, c1 (client) first, c2 (published web server) second."""
        return (self.c1, self.c2)

    # -- firewall ------------------------------------------------------------

    def iptables(self, family: Family, *args: str, check: bool = True) -> str:
        """Run this backend's ``iptables``/``ip6tables`` in the host namespace."""
        return self.exec(self.host, [self.backend.tool(family), *args], check=check).stdout

    def restore(self, family: Family, ruleset: str, *, noflush: bool = False) -> None:
        """Load a ruleset with ``iptables-restore``, as Docker and admins do."""
        argv = [self.backend.tool(family, "restore")] + (["--noflush"] if noflush else [])
        run(self.ns_argv(self.host, argv), stdin=ruleset)

    def save(self, family: Family) -> str:
        """The host namespace's ruleset as ``iptables-save`` prints it."""
        return self.exec(self.host, [self.backend.tool(family, "save")]).stdout

    def zero_trace_counters(self) -> None:
        """Reset raw-table counters so the next reading counts one scenario's packets."""
        for family in ("ipv4", "ipv6"):
            self.iptables(family, "-t", "raw", "-Z")

    def trace_counters(self) -> dict[str, dict[str, int]]:
        """Packets each raw chain's TRACE rules matched, per family: the kernel's own count."""
        counters: dict[str, dict[str, int]] = {}
        for family in ("ipv4", "ipv6"):
            counters[family] = {
                chain: parse_trace_counters(
                    self.iptables(
                        family,
                        "-t",
                        "raw",
                        "-L",
                        chain,
                        "-v",
                        "-x",
                        "-n",
                        "--line-numbers",
                    )
                )
                for chain in ("PREROUTING", "OUTPUT")
            }
        return counters

    # -- building ------------------------------------------------------------

    def _build(self) -> None:
        self.add_namespaces()
        self._build_host()
        for container in self.containers:
            self._build_container(container)
        self._build_external()
        if self.load_iptables:
            for family in ("ipv4", "ipv6"):
                self.restore(family, docker_ruleset(family, self.containers))
                self.restore(family, trace_ruleset(family), noflush=True)
        self._start_web_server()

    def _sysctl(self, namespace: str, *settings: str) -> None:
        self.exec(namespace, ["sysctl", "-q", "-w", *settings])

    def _build_host(self) -> None:
        host = self.host
        # br_netfilter may be built in; the sysctls below fail loudly if it is missing.
        run(["modprobe", "br_netfilter"], check=False)
        self.exec(
            host,
            [
                "ip",
                "link",
                "add",
                BRIDGE,
                "address",
                "02:42:5e:18:00:01",
                "type",
                "bridge",
            ],
        )
        self.exec(host, ["ip", "addr", "add", f"{BRIDGE_V4}/16", "dev", BRIDGE])
        self.exec(host, ["ip", "addr", "add", f"{BRIDGE_V6}/64", "dev", BRIDGE, "nodad"])
        self.exec(host, ["ip", "link", "set", BRIDGE, "up"])
        self._sysctl(
            host,
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
            "net.bridge.bridge-nf-call-iptables=1",
            "net.bridge.bridge-nf-call-ip6tables=1",
        )

    def _build_container(self, container: Container) -> None:
        host_end = self.veths[container.name]
        self.add_veth(self.host, host_end, container.name)
        self.exec(self.host, ["ip", "link", "set", host_end, "master", BRIDGE, "up"])
        inside = container.name
        self.exec(inside, ["ip", "link", "set", "eth0", "address", container.mac, "up"])
        self.exec(inside, ["ip", "addr", "add", f"{container.ipv4}/16", "dev", "eth0"])
        self.exec(
            inside,
            ["ip", "addr", "add", f"{container.ipv6}/64", "dev", "eth0", "nodad"],
        )
        self.exec(inside, ["ip", "route", "add", "default", "via", BRIDGE_V4])
        self.exec(inside, ["ip", "-6", "route", "add", "default", "via", BRIDGE_V6])

    def _build_external(self) -> None:
        self.add_veth(self.host, UPLINK, self.ext, mac="02:00:c0:00:02:01")
        self.exec(self.host, ["ip", "addr", "add", f"{UPLINK_V4}/24", "dev", UPLINK])
        self.exec(self.host, ["ip", "addr", "add", f"{UPLINK_V6}/64", "dev", UPLINK, "nodad"])
        self.exec(self.host, ["ip", "link", "set", UPLINK, "up"])
        self.exec(
            self.ext,
            ["ip", "link", "set", "eth0", "address", "02:00:c0:00:02:0a", "up"],
        )
        self.exec(self.ext, ["ip", "addr", "add", f"{EXT_V4}/24", "dev", "eth0"])
        self.exec(self.ext, ["ip", "addr", "add", f"{EXT_V6}/64", "dev", "eth0", "nodad"])
        self.exec(self.ext, ["ip", "route", "add", "default", "via", UPLINK_V4])
        self.exec(self.ext, ["ip", "-6", "route", "add", "default", "via", UPLINK_V6])

    def _start_web_server(self) -> None:
        docroot = self.make_workdir(f"{self.prefix}-lab-") / "www"
        docroot.mkdir()
        (docroot / "index.html").write_text("hello from nginx-2\n")
        self.spawn(self.c2.name, [BUSYBOX, "httpd", "-f", "-p", "80", "-h", str(docroot)])
        self.wait_for_listener(self.c2.name, 80)
