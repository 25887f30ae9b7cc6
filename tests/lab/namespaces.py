"""Network namespaces of the rules lab: a loopback address each, the user's own rules, tracelog run inside.

Each test gets a fresh namespace (`tl-rules-…`, always deleted) that already
holds the user's own raw and filter rules, including a TRACE rule tracelog
did not write.  Traffic is busybox ping to an address on the namespace's
loopback, so nothing leaves it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path

import pytest

from tests.lab import kernlog

REPO = Path(__file__).resolve().parents[2]
BUSYBOX = "/bin/busybox"
TIMEOUT = 60.0
MONITOR_SETTLE = 0.7
_COUNTERS = re.compile(r"\[\d+:\d+\]")
TAGGED_ROW = re.compile(r"^\s*(?P<pkts>\d+)\s+\d+\s+TRACE\b.*/\* tracelog:")

USER_RULES = {
    "ipv4": """\
*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -s 192.0.2.99/32 -p udp -m udp --dport 9 -j CT --notrack
-A PREROUTING -s 192.0.2.98/32 -m comment --comment "ops: trace the lab box" -j TRACE
-A OUTPUT -p tcp -m tcp --dport 9 -m comment --comment "user rule" -j ACCEPT
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:USER-CHAIN - [0:0]
-A INPUT -i lo -j USER-CHAIN
-A INPUT -p tcp -m tcp --dport 22 -j DROP
-A USER-CHAIN -s 127.0.0.0/8 -j RETURN
COMMIT
""",
    "ipv6": """\
*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -s 2001:db8::99/128 -j CT --notrack
-A PREROUTING -s 2001:db8::98/128 -m comment --comment "ops: trace the lab box" -j TRACE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -i lo -j ACCEPT
COMMIT
""",
}


@dataclass
class LabNamespace:
    """A namespace of our own with an IPv4 and an IPv6 address on its loopback."""

    name: str
    state: Path
    ipv4: str
    ipv6: str

    def run(self, *argv: str, check: bool = True, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
        """A command inside the namespace."""
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *argv], capture_output=True, text=True, timeout=timeout, check=check
        )

    def tracelog_argv(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, sys.executable, "-m", "tracelog", *args]

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "TRACELOG_STATE_DIR": str(self.state), **extra}

    def tracelog(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """`python -m tracelog ARGS` inside the namespace, as a user would run it."""
        return subprocess.run(
            self.tracelog_argv(*args),
            capture_output=True,
            text=True,
            cwd=REPO,
            env=self.env(**env),
            timeout=TIMEOUT,
            check=False,
        )

    def address(self, family: str) -> str:
        return self.ipv4 if family == "ipv4" else self.ipv6

    def tool(self, backend: str, family: str, verb: str = "") -> str:
        return f"{'iptables' if family == 'ipv4' else 'ip6tables'}-{backend}" + (f"-{verb}" if verb else "")

    def load_user_rules(self, backend: str) -> None:
        for family, rules in USER_RULES.items():
            subprocess.run(
                ["ip", "netns", "exec", self.name, self.tool(backend, family, "restore")],
                input=rules,
                text=True,
                capture_output=True,
                timeout=TIMEOUT,
                check=True,
            )

    def save(self, backend: str, family: str) -> str:
        """`iptables-save` without its time stamps and counters."""
        text = self.run(self.tool(backend, family, "save")).stdout
        return "\n".join(_COUNTERS.sub("[0:0]", line) for line in text.splitlines() if not line.startswith("#"))

    def tagged_packets(self, backend: str, family: str, chain: str = "OUTPUT") -> int:
        """Packets the kernel counted on tracelog's rules in one raw chain."""
        listing = self.run(self.tool(backend, family), "-t", "raw", "-L", chain, "-v", "-x", "-n").stdout
        return sum(int(row["pkts"]) for line in listing.splitlines() if (row := TAGGED_ROW.match(line)))

    def ping(self, family: str, count: int = 1) -> None:
        flags = ["-6"] if family == "ipv6" else []
        self.run(BUSYBOX, "ping", *flags, "-c", str(count), "-W", "1", self.address(family), timeout=10 + count)


@contextmanager
def lab_namespace(state: Path) -> Iterator[LabNamespace]:
    """A fresh `tl-rules-<hex>` namespace, deleted however the test ends."""
    token = uuid.uuid4().hex[:8]
    octets = int(token[:4], 16)
    namespace = LabNamespace(
        f"tl-rules-{token}",
        state,
        f"10.254.{octets >> 8}.{(octets & 0xFF) | 1}",
        str(ip_address(f"fd00:7a:{token[:4]}:{token[4:]}::1")),
    )
    subprocess.run(["ip", "netns", "add", namespace.name], check=True, timeout=TIMEOUT)
    try:
        namespace.run("ip", "link", "set", "lo", "up")
        namespace.run("ip", "addr", "add", f"{namespace.ipv4}/32", "dev", "lo")
        namespace.run("ip", "-6", "addr", "add", f"{namespace.ipv6}/128", "dev", "lo", "nodad")
        yield namespace
    finally:
        subprocess.run(["ip", "netns", "del", namespace.name], check=False, timeout=TIMEOUT)


def require_backend(backend: str) -> None:
    tools = ["iptables-nft", "ip6tables-nft", "xtables-monitor"] if backend == "nft" else ["iptables-legacy-save"]
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{backend} backend tools missing: {', '.join(missing)}")
    if backend == "legacy":
        pytest.importorskip("iptc", reason="python-iptables is not installed")


def wait_for_rules(ns: LabNamespace, backend: str, timeout: float = 20.0) -> None:
    if not wait_until(lambda: "tracelog:" in ns.save(backend, "ipv4"), timeout):
        pytest.fail(f"no tracelog rule appeared within {timeout:.0f}s")


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return bool(condition())


@contextmanager
def running_watch(
    ns: LabNamespace, argv: list[str], *, output: bool = True, stderr: bool = True
) -> Iterator[subprocess.Popen[str]]:
    """`argv` (a `tracelog watch` in the namespace) running for the block, killed at its end if still running.

    `output`/`stderr`: pipe what it prints (read it with `stop_watch`), else drop it.
    """
    watch = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE if output else subprocess.DEVNULL,
        stderr=subprocess.PIPE if stderr else subprocess.DEVNULL,
        text=True,
        cwd=REPO,
        env=ns.env(),
    )
    try:
        yield watch
    finally:
        if watch.poll() is None:
            watch.kill()
        watch.wait(timeout=10)


def stop_watch(watch: subprocess.Popen[str], stop: signal.Signals = signal.SIGTERM) -> tuple[str, str]:
    """Stop a watch as a user does (SIGTERM, or Ctrl-C's SIGINT); what it printed on stdout and stderr."""
    watch.send_signal(stop)
    return watch.communicate(timeout=20)


def watch_a_ping(
    ns: LabNamespace, backend: str, *options: str, stop: signal.Signals = signal.SIGTERM, backgrounded: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run `tracelog watch icmp --dst <ns>` OPTIONS, ping once, stop it with `stop`; what it printed.

    `backgrounded`: started as a shell starts `cmd &`, with SIGINT ignored.
    """

    argv = ns.tracelog_argv("watch", "icmp", "--dst", ns.ipv4, "--backend", backend, "--idle", "0.3", *options)
    if backgrounded:
        argv = ["bash", "-c", 'trap "" INT; exec "$@"', "watch", *argv]
    with kernlog.nf_log_all_netns(), running_watch(ns, argv) as watch:
        wait_for_rules(ns, backend)
        time.sleep(MONITOR_SETTLE)
        kernlog.ensure_nf_log_all_netns()
        ns.ping("ipv4")
        time.sleep(1.0)
        stdout, stderr = stop_watch(watch, stop)
    return subprocess.CompletedProcess(argv, watch.returncode, stdout, stderr)
