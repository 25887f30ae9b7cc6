"""Reading the lab's TRACE lines back out of the kernel ring buffer.

Legacy TRACE output is ordinary printk text, so a scenario's lines are found
by writing unique marker records to ``/dev/kmsg`` around it and slicing
whatever the kernel logged in between.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.lab.netlab import run

NF_LOG_ALL_NETNS = Path("/proc/sys/net/netfilter/nf_log_all_netns")
MARKER_TAG = "tracelog-lab:"

# Another helper's captures write "<tag> <scenario> <32 hex> begin|end" records.
_FOREIGN_WINDOW = re.compile(r"(?P<tag>tracelog-\S+?):? (?P<name>\S+) (?P<run>[0-9a-f]{32}) (?P<edge>begin|end)\s*$")
_IFACE_FIELD = re.compile(r"\b(?:IN|OUT|PHYSIN|PHYSOUT)=(\S+)")


@contextmanager
def nf_log_all_netns() -> Iterator[None]:
    """Let namespaces other than the initial one log, restoring the previous value afterwards."""
    previous = NF_LOG_ALL_NETNS.read_text().strip()
    NF_LOG_ALL_NETNS.write_text("1\n")
    try:
        yield
    finally:
        NF_LOG_ALL_NETNS.write_text(previous + "\n")


def ensure_nf_log_all_netns() -> None:
    """Re-assert the knob: a concurrent capture restoring its own old value would silence ours."""
    if NF_LOG_ALL_NETNS.read_text().strip() != "1":
        NF_LOG_ALL_NETNS.write_text("1\n")


def write_marker(text: str) -> None:
    """Append one record to the kernel log.

    ``/dev/kmsg`` rate-limits writers per open file, so each marker opens it afresh.
    """
    with open("/dev/kmsg", "w") as kmsg:
        kmsg.write(f"{MARKER_TAG} {text}\n")


@dataclass(frozen=True)
class Window:
    """The pair of marker texts that bracket one scenario in the kernel log."""

    begin: str
    end: str

    @classmethod
    def new(cls, label: str) -> Window:
        """Markers unique to this run, so old windows in the ring buffer never match."""
        token = uuid.uuid4().hex
        return cls(f"{MARKER_TAG} {label} {token} begin", f"{MARKER_TAG} {label} {token} end")

    def open(self) -> None:
        """Write the begin marker."""
        write_marker(self.begin.removeprefix(MARKER_TAG + " "))

    def close(self) -> None:
        """Write the end marker."""
        write_marker(self.end.removeprefix(MARKER_TAG + " "))


def read_dmesg(flags: Sequence[str] = ()) -> list[str]:
    """The whole ring buffer as ``dmesg`` renders it with ``flags`` (e.g. ``-T``, ``-r``)."""
    return run(["dmesg", *flags]).stdout.splitlines()


def slice_window(lines: Sequence[str], window: Window) -> list[str]:
    """The lines strictly between the window's markers (markers excluded)."""
    begin = _index_of(lines, window.begin, 0)
    end = _index_of(lines, window.end, begin + 1)
    return list(lines[begin + 1 : end])


def _index_of(lines: Sequence[str], marker: str, start: int) -> int:
    for index in range(start, len(lines)):
        if lines[index].endswith(marker):
            return index
    raise LookupError(f"marker {marker!r} not in the log (ring buffer wrapped, or the write was rate-limited?)")


def foreign_trace_lines(lines: Sequence[str], interfaces: set[str]) -> list[str]:
    """TRACE lines naming an interface the lab does not have: another capture was running."""
    foreign = []
    for line in lines:
        if "TRACE:" not in line:
            continue
        names = {name for name in _IFACE_FIELD.findall(line) if name}
        if names - interfaces:
            foreign.append(line)
    return foreign


def open_foreign_windows(lines: Sequence[str]) -> set[str]:
    """Capture windows other tools began but have not ended yet."""
    opened: set[str] = set()
    for line in lines:
        found = _FOREIGN_WINDOW.search(line)
        if not found or found["tag"] == MARKER_TAG.rstrip(":"):
            continue
        if found["edge"] == "begin":
            opened.add(found["run"])
        else:
            opened.discard(found["run"])
    return opened


def foreign_window_touches(lines: Sequence[str]) -> bool:
    """True when a slice contains another capture's begin/end marker."""
    return any((found := _FOREIGN_WINDOW.search(line)) and found["tag"] != MARKER_TAG.rstrip(":") for line in lines)


def wait_for_quiet_log(timeout: float = 60.0) -> None:
    """Wait until no other marked capture is in progress, so windows do not interleave."""
    deadline = time.monotonic() + timeout
    while open_foreign_windows(read_dmesg()) and time.monotonic() < deadline:
        time.sleep(0.5)
