"""The README's journey on a real host: a plain install, commands typed as written, what they print.

A user clones the repository, runs `pip install .` in a fresh virtual
environment, then types the README's commands into a shell: pipelines such as
`dmesg | tracelog parse`, live readers such as `tail -f /var/log/syslog |
tracelog parse` in a terminal, stopped with Ctrl-C.  This module does the same
for tests: `Shell` runs a command line through `bash -c` with the installed
`tracelog` (by absolute path), `LiveCommand` keeps one running on a pseudo
terminal, `SyslogFiles` plays rsyslog (the kernel log written to files in the
RFC 3164 and RFC 3339 formats Debian's rsyslog uses), and the rest reads what
came out: timelines from a terminal, TRACE rule counters, rulesets compared
without their counters.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType

from tests.lab import dockerlab

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
# A wide terminal, so that rich lays a timeline's rule column out on one line.
TERMINAL_COLUMNS = 400
TERMINAL_ROWS = 50
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_TYPED_TRACELOG = re.compile(r"(^|\|\s*)(?:sudo\s+)?tracelog(?=\s)")


# --- the plain install --------------------------------------------------------------


def plain_install(venv: Path) -> Path:
    """`python3 -m venv VENV && VENV/bin/pip install .` in the repository; returns VENV/bin/tracelog.

    No extras, not editable: what the README's first command installs.  pip
    reads this machine's index configuration (pip.conf, PIP_* variables) as a
    user's pip would.
    """
    subprocess.run(["python3", "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
    done = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "."],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pip install . exited {done.returncode}: {done.stderr.strip()}")
    return venv / "bin" / "tracelog"


def readme_commands() -> set[str]:
    """Every command line shown in the README's console blocks, comments cut off."""
    commands: set[str] = set()
    for block in re.findall(r"```console\n(.*?)\n```", README.read_text(), flags=re.DOTALL):
        for line in block.splitlines():
            command = line.split("  #", 1)[0].strip()
            if command:
                commands.add(command)
    return commands


# --- commands as typed --------------------------------------------------------------


@dataclass(frozen=True)
class Typed:
    """One command line as the user typed it, and what it gave back."""

    command: str
    status: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"$ {self.command}\n[exit {self.status}]\n{self.stdout}{self.stderr}"


class Shell:
    """Runs command lines through bash as a root user would type them, `tracelog` being the installed one."""

    def __init__(self, tracelog: Path, state_dir: Path) -> None:
        self.tracelog = tracelog
        self.env = {**os.environ, "TRACELOG_STATE_DIR": str(state_dir)}

    def resolve(self, command: str) -> str:
        """The command line bash runs: `tracelog` by its absolute path, `sudo` dropped (we are root)."""
        return _TYPED_TRACELOG.sub(lambda match: match.group(1) + str(self.tracelog), command)

    def run(self, command: str, *, timeout: float = 120.0, cwd: Path = REPO) -> Typed:
        """Run one command line to its end."""
        done = subprocess.run(
            ["bash", "-c", self.resolve(command)],
            cwd=cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Typed(command, done.returncode, done.stdout, done.stderr)

    def live(self, command: str) -> LiveCommand:
        """Start a command line on a terminal of its own, as a user leaves `… | tracelog parse` running."""
        return LiveCommand(command, self.resolve(command), self.env)


class LiveCommand:
    """A command line running on a pseudo terminal (stdout) with stderr kept apart, until Ctrl-C."""

    def __init__(self, command: str, resolved: str, env: Mapping[str, str]) -> None:
        self.command = command
        leader, follower = os.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", TERMINAL_ROWS, TERMINAL_COLUMNS, 0, 0))
        self._process = subprocess.Popen(
            ["bash", "-c", resolved],
            cwd=REPO,
            env={**env, "TERM": "xterm", "COLUMNS": str(TERMINAL_COLUMNS)},
            stdin=subprocess.DEVNULL,
            stdout=follower,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        os.close(follower)
        self._terminal = leader
        self._lock = threading.Lock()
        self._out = bytearray()
        self._err = bytearray()
        self._readers = [
            threading.Thread(target=self._read_terminal, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_terminal(self) -> None:
        while True:
            try:
                chunk = os.read(self._terminal, 65536)
            except OSError:  # EIO once every writer has gone
                break
            if not chunk:
                break
            with self._lock:
                self._out += chunk
        os.close(self._terminal)

    def _read_stderr(self) -> None:
        assert self._process.stderr is not None
        stderr = self._process.stderr.fileno()
        while chunk := os.read(stderr, 65536):
            with self._lock:
                self._err += chunk
        self._process.stderr.close()

    def screen(self) -> str:
        """What the terminal showed so far, colours and carriage returns removed."""
        with self._lock:
            text = self._out.decode(errors="replace")
        return _ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "")

    def running(self) -> bool:
        """Whether the command line is still going."""
        return self._process.poll() is None

    def wait_for(self, shown: Callable[[str], bool], timeout: float) -> bool:
        """Wait until the screen satisfies `shown` while the command still runs; False at the deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if shown(self.screen()):
                return self.running()
            if not self.running():
                return False
            time.sleep(0.1)
        return False

    def interrupt(self, timeout: float = 15.0) -> Typed:
        """Ctrl-C: SIGINT to the terminal's foreground process group; SIGKILL if it has not ended by `timeout`."""
        status: int
        if self.running():
            os.killpg(self._process.pid, signal.SIGINT)
        try:
            status = self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=10)
            status = -int(signal.SIGKILL)
        for reader in self._readers:
            reader.join(timeout=10)
        with self._lock:
            stderr = self._err.decode(errors="replace")
        return Typed(self.command, status, self.screen(), stderr)


# --- the kernel log in files, as rsyslog writes it ----------------------------------


class SyslogFiles:
    """The kernel's messages from now on, written as Debian's rsyslog writes them (imklog input).

    `syslog` holds RSYSLOG_TraditionalFileFormat lines (RFC 3164: `Nov 28
    04:09:01 host kernel: [  72.839502] TRACE: …`), `kern.log` the
    RSYSLOG_FileFormat ones (RFC 3339, microseconds: `2026-11-28T04:09:01.123456+00:00
    host kernel: [  72.839502] TRACE: …`).  Records come from /dev/kmsg, which
    every reader sees whole (a second rsyslogd would share /proc/kmsg with
    any other); each line is flushed as it is written, for `tail -f`.

    TRACE lines that `keep` refuses are left out: other labs on this host log
    theirs from other network namespaces (they turn nf_log_all_netns on),
    which a host with the default nf_log_all_netns=0 never does.
    """

    def __init__(self, directory: Path, keep: Callable[[str], bool] = lambda line: True) -> None:
        self._keep = keep
        self.syslog = directory / "syslog"
        self.kern_log = directory / "kern.log"
        self._host = socket.gethostname().split(".")[0]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._kmsg = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        os.lseek(self._kmsg, 0, os.SEEK_END)
        self.syslog.touch()
        self.kern_log.touch()

    def _follow(self) -> None:
        with self.syslog.open("a") as traditional, self.kern_log.open("a") as precise:
            while not self._stop.is_set():
                ready, _, _ = select.select([self._kmsg], [], [], 0.1)
                if not ready:
                    continue
                try:
                    record = os.read(self._kmsg, 16384).decode(errors="replace")
                except OSError as error:
                    if error.errno in (errno.EAGAIN, errno.EPIPE):  # EPIPE: records overwritten meanwhile
                        continue
                    raise
                line = kernel_line(record)
                if line is None or ("TRACE: " in line and not self._keep(line)):
                    continue
                now = datetime.now().astimezone()
                traditional.write(f"{now.strftime('%b %e %H:%M:%S')} {self._host} kernel: {line}\n")
                precise.write(f"{now.isoformat(timespec='microseconds')} {self._host} kernel: {line}\n")
                traditional.flush()
                precise.flush()

    def __enter__(self) -> SyslogFiles:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        time.sleep(0.5)  # what the kernel logged last is still on its way
        self._stop.set()
        self._thread.join(timeout=10)
        os.close(self._kmsg)


def kernel_line(record: str) -> str | None:
    """A /dev/kmsg record of the kernel facility as imklog passes it on: `[uptime] message`, else None."""
    prefix, _, rest = record.partition(";")
    fields = prefix.split(",")
    if len(fields) < 3 or not fields[0].isdigit() or int(fields[0]) >> 3 != 0:
        return None
    micros = int(fields[2])
    message = rest.split("\n", 1)[0]
    return f"[{micros // 1_000_000:5d}.{micros % 1_000_000:06d}] {message}"


# --- what a terminal showed ---------------------------------------------------------

_ENDING = re.compile(r"^(?:[A-Z]+ by |last seen at )")


@dataclass(frozen=True)
class Timeline:
    """One packet as the table output shows it: title, step rows, ending line."""

    title: str
    steps: tuple[str, ...]
    ending: str

    @property
    def text(self) -> str:
        return "\n".join((self.title, *self.steps, self.ending))


def timelines(screen: str) -> list[Timeline]:
    """The complete timelines in table output (a title `#N …`, step rows, an ending line)."""
    found: list[Timeline] = []
    title: str | None = None
    steps: list[str] = []
    for line in screen.splitlines():
        if re.match(r"#\d+ ", line):
            title, steps = line, []
        elif title is not None and _ENDING.match(line):
            found.append(Timeline(title, tuple(steps), line))
            title = None
        elif title is not None and line.strip():
            steps.append(line)
    return found


# --- the kernel's side: TRACE counters, rulesets ------------------------------------

_SAVED_RULE = re.compile(r"^\[(?P<pkts>\d+):\d+\] -A (?P<chain>\S+) (?P<args>.*)$")
_TAG = re.compile(r'tracelog:[^" ]*')
_MATCH_KEYS = ("src", "dst", "sport", "dport", "iface")


def traced_packets(backend: dockerlab.Backend) -> int:
    """How many packets tracelog's TRACE rules flagged, from `iptables-save -c -t raw` of the backend.

    A packet can match several tracelog rules of one chain (`icmp` and `icmp
    --container …`); where a rule of a protocol matches every packet of it,
    its counter is the chain's count for that protocol, else the rules' sum.
    """
    counts: dict[tuple[str, str], list[tuple[bool, int]]] = {}
    save = dockerlab.run([f"iptables-{backend}-save", "-c", "-t", "raw"])
    for line in save.splitlines():
        saved = _SAVED_RULE.match(line)
        tag = _TAG.search(line)
        if saved is None or tag is None or not saved["args"].endswith("-j TRACE"):
            continue
        fields = dict(item.split("=", 1) for item in tag.group(0).split(",") if "=" in item)
        matches_all = not any(key in fields for key in _MATCH_KEYS)
        counts.setdefault((saved["chain"], fields.get("proto", "all")), []).append((matches_all, int(saved["pkts"])))
    total = 0
    for rules in counts.values():
        of_all = [pkts for matches_all, pkts in rules if matches_all]
        total += max(of_all) if of_all else sum(pkts for _, pkts in rules)
    return total


_NFT_COUNTER = re.compile(r"counter packets \d+ bytes \d+")
RULESET_DUMPS = ("iptables-legacy", "ip6tables-legacy", "iptables-nft", "ip6tables-nft", "nft")


def rulesets() -> dict[str, str]:
    """Each backend's ruleset, counters and comments aside; legacy tables left empty count as none.

    A built-in legacy table cannot be unregistered once used, and one with no
    rules and ACCEPT policies filters like no table at all.
    """
    dumps: dict[str, str] = {}
    for name in RULESET_DUMPS:
        text = dockerlab.run(dockerlab.FIREWALL_DUMPS[name])
        if name == "nft":
            dumps[name] = _NFT_COUNTER.sub("counter", text)
        elif "legacy" in name:
            dumps[name] = dockerlab.normalise_dump(text)
        else:
            lines = (re.sub(r"\[\d+:\d+\]", "[0:0]", line) for line in text.splitlines())
            dumps[name] = "\n".join(line for line in lines if not line.startswith("#"))
    return dumps


def ruleset_changes(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, list[str]]:
    """For each dump that changed, the lines it lost (`-`) and gained (`+`)."""
    changes: dict[str, list[str]] = {}
    for name in before:
        old, new = before[name].splitlines(), after[name].splitlines()
        if old != new:
            changes[name] = [f"- {line}" for line in old if line not in new]
            changes[name] += [f"+ {line}" for line in new if line not in old]
    return changes


def kernel_trace_lines(lines: Iterable[str], veths: Iterable[str]) -> list[str]:
    """The TRACE lines among kernel log lines that name one of the lab's veths."""
    names = tuple(veths)
    return [line for line in lines if "TRACE: " in line and any(name in line for name in names)]


def echo(text: str) -> None:
    """Progress for a person watching `pytest -s`."""
    print(f"journey: {text}", file=sys.stderr, flush=True)


# --- the journey --------------------------------------------------------------------

DOCTOR = "sudo tracelog doctor"
ENABLES = (
    "sudo tracelog enable icmp",
    "sudo tracelog enable icmp --container nginx-2",
    "sudo tracelog enable tcp --container nginx-2 --dport 80 --for 10m",
)
STATUS = "sudo tracelog status"
DISABLE = "sudo tracelog disable"
DMESG = "dmesg | tracelog parse"
DMESG_JSONL = "dmesg | tracelog parse --format jsonl"
TAIL_SYSLOG = "tail -f /var/log/syslog | tracelog parse"
TAIL_KERN_LOG = "tail -f /var/log/kern.log | tracelog parse"
SUMMARY_KERN_LOG = "tracelog summary /var/log/kern.log"
NAMES_KERN_LOG = "tracelog parse --names docker /var/log/kern.log"
XTABLES_MONITOR = "xtables-monitor --trace | tracelog parse"
NFT_MONITOR = "nft monitor trace | tracelog parse"
# The same events, saved by a monitor running beside the one the user watches.
XTABLES_FILE = "xtables-monitor.log"
NFT_FILE = "nft-monitor.log"
XTABLES_JSONL = f"tracelog parse --format jsonl {XTABLES_FILE}"
NFT_JSONL = f"tracelog parse --format jsonl {NFT_FILE}"
SUMMARY_XTABLES = f"tracelog summary {XTABLES_FILE}"
SUMMARY_NFT = f"tracelog summary {NFT_FILE}"
NAMES_XTABLES = f"tracelog parse --names docker {XTABLES_FILE}"
WATCH = "sudo tracelog watch icmp --container nginx-2"
WATCH_DROPS = "sudo tracelog watch icmp --container nginx-2 --verdict DROP -f jsonl"
# A capture from another host, read here after `enable` saved this host's snapshot.
FOREIGN_SAMPLE = "tracelog parse --format jsonl samples/docker-legacy/drop.dmesg"

LIVE_READERS: dict[dockerlab.Backend, tuple[str, ...]] = {
    "legacy": (TAIL_SYSLOG, TAIL_KERN_LOG),
    "nft": (XTABLES_MONITOR, NFT_MONITOR),
}
OFFLINE_READERS: dict[dockerlab.Backend, tuple[str, ...]] = {
    "legacy": (DMESG, DMESG_JSONL, SUMMARY_KERN_LOG, NAMES_KERN_LOG, FOREIGN_SAMPLE),
    "nft": (DMESG, XTABLES_JSONL, NFT_JSONL, SUMMARY_XTABLES, SUMMARY_NFT, NAMES_XTABLES),
}
# Run after `disable`, one at a time, each with its own traffic.
WATCHES = (WATCH, WATCH_DROPS)

# nginx-2's pings to nginx-1 are dropped in DOCKER-USER; nginx-1's pings to nginx-2, and
# nginx-2's replies to them, pass.
BLOCK_RULE = (
    *("DOCKER-USER", "-s", dockerlab.NGINX_2_IP, "-d", dockerlab.NGINX_1_IP),
    *("-p", "icmp", "--icmp-type", "echo-request", "-j", "DROP"),
)


def ping(source: str, destination: str, count: int, *, answered: bool) -> None:
    """`ping -c COUNT` from a container's network namespace, as the first process of a new PID namespace.

    busybox ping uses its PID as the ICMP echo id, so the pings of both
    containers carry id 1 (as `docker exec … ping` in two fresh containers
    often do): nginx-2's request to nginx-1 differs from nginx-2's replies to
    nginx-1 by its type alone.
    """
    pid = dockerlab.docker("inspect", "-f", "{{.State.Pid}}", source).strip()
    argv = [
        *("nsenter", "--target", pid, "--net", "--", "unshare", "--pid", "--fork"),
        *(str(dockerlab.BUSYBOX), "ping", "-c", str(count), "-W", "1", destination),
    ]
    done = subprocess.run(argv, capture_output=True, timeout=30, check=False)
    if (done.returncode == 0) != answered:
        raise RuntimeError(f"{source}: ping {destination} exited {done.returncode}: {done.stderr.decode().strip()}")


def ping_each_way() -> None:
    """nginx-1 pings nginx-2 twice (answered); nginx-2 pings nginx-1 once (dropped in DOCKER-USER)."""
    ping(dockerlab.NGINX_1, dockerlab.NGINX_2_IP, 2, answered=True)
    ping(dockerlab.NGINX_2, dockerlab.NGINX_1_IP, 1, answered=False)


def all_traffic() -> None:
    """The pings each way and nginx-1's HTTP fetch from nginx-2."""
    ping_each_way()
    dockerlab.generate_traffic(dockerlab.HTTP)


LIVE_DEADLINE = 20.0
MONITOR_START = 1.0
WATCH_START = 20.0


@dataclass
class Journey:
    """Everything one backend's journey printed, for the tests to judge."""

    backend: dockerlab.Backend
    veths: tuple[str, ...]
    doctor: Typed
    enables: list[Typed]
    snapshots: list[str]
    traced: int
    watched: dict[str, int]
    kernel_lines: list[str]
    readers: dict[str, Typed]
    seen_live: dict[str, bool]
    status: Typed
    disable: Typed
    changes: dict[str, list[str]]
    mixed_doctors: dict[str, Typed]

    def mine(self, timeline: Timeline) -> bool:
        """Whether a timeline is a packet of this lab's containers (not another lab's on this host)."""
        return is_lab_packet(timeline, self.backend, self.veths)

    def traced_for(self, command: str) -> int:
        """How many packets the kernel traced while `command` read: a `watch` traces on its own."""
        return self.watched.get(command, self.traced)


def is_lab_packet(timeline: Timeline, backend: dockerlab.Backend, veths: Iterable[str]) -> bool:
    """Whether a timeline is a packet between the lab's containers.

    Kernel-log traces name the containers' veths (other labs on this host may
    use the same addresses); nf_tables traces come from this network
    namespace only but name no veth.
    """
    if any(name in timeline.text for name in veths):
        return True
    lab_addresses = dockerlab.NGINX_1_IP in timeline.title and dockerlab.NGINX_2_IP in timeline.title
    return backend == "nft" and lab_addresses


def _snapshot_paths(enables: Iterable[Typed]) -> list[str]:
    return [
        line.split(":", 1)[1].strip()
        for typed in enables
        for line in typed.stdout.splitlines()
        if line.startswith("ruleset snapshot:")
    ]


def _mixed_backend_doctors(shell: Shell) -> dict[str, Typed]:
    """The doctor on a Docker-on-legacy host whose `iptables` is nf_tables, then with rules in both."""
    found: dict[str, Typed] = {}
    dockerlab.set_iptables_backend("nft")
    try:
        found["docker on legacy, iptables on nf_tables"] = shell.run(DOCTOR)
        other = ("INPUT", "-s", "192.0.2.99/32", "-j", "ACCEPT")
        dockerlab.run(["iptables-nft", "-A", *other])
        try:
            found["rules in legacy and in nf_tables"] = shell.run(DOCTOR)
        finally:
            dockerlab.run(["iptables-nft", "-D", *other])
    finally:
        dockerlab.set_iptables_backend("legacy")
    return found


def _tracing(backend: dockerlab.Backend) -> bool:
    return "tracelog:" in dockerlab.run([f"iptables-{backend}-save", "-t", "raw"])


def _watch(command: str, backend: dockerlab.Backend, shell: Shell, veths: tuple[str, ...]) -> tuple[Typed, bool, int]:
    """`tracelog watch …` on a terminal while the containers ping: what it showed, live or not, packets traced."""
    watch = shell.live(command)
    traced, seen = 0, False
    try:
        deadline = time.monotonic() + WATCH_START
        while not _tracing(backend) and watch.running() and time.monotonic() < deadline:
            time.sleep(0.2)
        if _tracing(backend):
            ping_each_way()
            traced = traced_packets(backend)
            if command == WATCH:
                seen = watch.wait_for(
                    lambda screen: sum(is_lab_packet(t, backend, veths) for t in timelines(screen)) >= max(traced, 1),
                    LIVE_DEADLINE,
                )
            else:
                seen = watch.wait_for(lambda screen: bool(re.search(r'"verdict":\s*"DROP"', screen)), LIVE_DEADLINE)
    finally:
        typed = watch.interrupt()
    return typed, seen, traced


def walk(backend: dockerlab.Backend, shell: Shell, workdir: Path) -> Journey:
    """The README's journey on the Docker lab of `backend` (running): doctor to disable, every reader.

    Commands run as typed; only file names are this run's (`/var/log/kern.log`
    is the file `SyslogFiles` writes).  Failures of tracelog are recorded, not
    raised: the tests judge them.
    """
    iptables = f"iptables-{backend}"
    veths = tuple(dockerlab.host_veth(name) for name in dockerlab.CONTAINERS)
    dockerlab.run([iptables, "-I", *BLOCK_RULE])
    before = rulesets()
    doctor = shell.run(DOCTOR)
    enables = [shell.run(command) for command in ENABLES]
    echo(f"{backend}: enabled ({', '.join(str(typed.status) for typed in enables)})")
    files = {
        "/var/log/syslog": str(workdir / "syslog"),
        "/var/log/kern.log": str(workdir / "kern.log"),
        XTABLES_FILE: str(workdir / f"{backend}.xtables-monitor"),
        NFT_FILE: str(workdir / f"{backend}.nft-monitor"),
    }

    def typed(command: str) -> str:
        for name, path in files.items():
            command = command.replace(name, path)
        return command

    readers: dict[str, Typed] = {}
    seen_live: dict[str, bool] = {}
    with ExitStack() as readers_running:
        if backend == "legacy":
            readers_running.enter_context(SyslogFiles(workdir, keep=lambda line: any(name in line for name in veths)))
        else:
            readers_running.enter_context(dockerlab.trace_monitors(workdir, backend))
        live = {command: shell.live(typed(command)) for command in LIVE_READERS[backend]}
        try:
            time.sleep(MONITOR_START)
            # Another lab on this host may have put its own value back since dockerd started.
            dockerlab.run(["sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1"])
            with dockerlab.kernel_log_between_markers(f"journey-{backend}") as kernel_log:
                all_traffic()
            traced = traced_packets(backend)
            echo(f"{backend}: traffic done, {traced} packets traced")

            def complete(screen: str) -> bool:
                return sum(is_lab_packet(shown, backend, veths) for shown in timelines(screen)) >= max(traced, 1)

            for command, reader in live.items():
                seen_live[command] = reader.wait_for(complete, LIVE_DEADLINE)
        finally:
            for command, reader in live.items():
                readers[command] = reader.interrupt()
    echo(f"{backend}: live readers done")
    for command in OFFLINE_READERS[backend]:
        readers[command] = shell.run(typed(command))
    status = shell.run(STATUS)
    disable = shell.run(DISABLE)
    watched: dict[str, int] = {}
    for command in WATCHES:
        readers[command], seen_live[command], watched[command] = _watch(command, backend, shell, veths)
    echo(f"{backend}: watched")
    changes = ruleset_changes(before, rulesets())
    mixed = _mixed_backend_doctors(shell) if backend == "legacy" else {}
    echo(f"{backend}: done")
    return Journey(
        backend=backend,
        veths=veths,
        doctor=doctor,
        enables=enables,
        snapshots=_snapshot_paths(enables),
        traced=traced,
        watched=watched,
        kernel_lines=kernel_trace_lines(kernel_log, veths),
        readers=readers,
        seen_live=seen_live,
        status=status,
        disable=disable,
        changes=changes,
        mixed_doctors=mixed,
    )
