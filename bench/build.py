"""Large benchmark inputs made only from the real captures under samples/.

Why copies of real lines: a synthetic generator would benchmark the
generator's idea of a TRACE line.  Here every output line is a captured line
in which only numbers were rewritten: IP ids, ephemeral ports (32768-60999;
service ports such as 80 stay), TCP sequence numbers, ICMP echo ids and
sequences, the uptime stamp and, for the nft formats, the trace id.  Each
copy of a capture gets one bijective mapping per kind of number, applied to
every line of the copy, so the lines of one packet stay one packet and two
copies never look alike.  Copies of different captures run side by side and
their packets interleave whole, ordered by (uptime) time, as on a busy host;
kernel-log stamps stay monotonic.

Usage (from the repository root):
    python -m bench.build kernel --lines 1000000          # writes bench/out/kernel-1000000.dmesg
    python -m bench.build kernel --lines 10000000 --stdout # streams; SIGTERM ends it after a whole line
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import itertools
import json
import os
import random
import re
import signal
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
OUT = ROOT / "bench" / "out"

VERSION = 1  # bump when the output for the same arguments changes, so stale inputs are rebuilt
SEED = 6  # any fixed seed: the same inputs on every run
CONCURRENT = 8  # copies in flight at once: how much traffic interleaves
GAP_US = 2000  # at most this long between one copy ending and the next starting
START_US = 1_000_000_000  # the output's first uptime stamp, 1000 s after boot
NFT_STEP_US = 50  # the monitors print no time: their lines are spaced this far apart for ordering
TRACE_STRIDE = 1 << 12  # trace ids per copy; more than any capture holds

Slot = tuple[str, int]  # (kind of number, its value in the capture)


@dataclass(frozen=True, slots=True)
class Format:
    """A family of captures and how to cut their lines into text and numbers."""

    name: str
    patterns: tuple[str, ...]
    suffix: str
    title: str


FORMATS = {
    "kernel": Format("kernel", ("lab-legacy/*.dmesg", "docker-legacy/*.dmesg"), ".dmesg", "kernel log (dmesg)"),
    "nft": Format("nft", ("lab-nft/*.nft-monitor",), ".nft-monitor", "nft monitor trace"),
    "xtables": Format("xtables", ("lab-nft/*.xtables-monitor",), ".xtables-monitor", "xtables-monitor --trace"),
}


@dataclass(frozen=True, slots=True)
class Line:
    """One captured line cut around the numbers a copy rewrites.

    `literals` has one more piece than `slots`: the text before, between and
    after the numbers.  `key` names the packet within its capture (a trace id,
    or the kernel fields no hook rewrites), used only to cut whole packets.
    """

    time_us: int | None
    literals: tuple[str, ...]
    slots: tuple[Slot, ...]
    key: str


@dataclass(frozen=True, slots=True)
class Capture:
    """One sample file, its lines cut, and where whole packets begin and end."""

    path: Path
    lines: tuple[Line, ...]
    units: tuple[tuple[int, int], ...]
    clock: tuple[int, ...]

    @property
    def name(self) -> str:
        return self.path.relative_to(SAMPLES).as_posix()


# --- cutting captured lines -------------------------------------------------------------

KERNEL_LINE = re.compile(r"\[\s*(\d+)\.(\d{6})\] (TRACE: \S+ .*)")
KERNEL_NUMBER = re.compile(r"(?<![A-Za-z])(PROTO|ID|SEQ|ACK|SPT|DPT)=(\w+)|\[SRC=")
KERNEL_KEY = re.compile(r"(?<![A-Za-z])(PROTO|ID|LEN|SEQ|ACK|WINDOW|TYPE|CODE|FLOWLBL)=(\S+)")
NFT_LINE = re.compile(r"(trace id )([0-9a-f]{8})( .*)")
NFT_NUMBER = re.compile(
    r"\b(ip id|tcp sport|tcp dport|udp sport|udp dport|tcp sequence|tcp ackseq"
    r"|icmp id|icmp sequence|icmpv6 id|icmpv6 sequence) (\d+)\b"
)
XT_LINE = re.compile(r"((?:PACKET| TRACE): \d+ )([0-9a-f]{8})( .*)")
XT_NUMBER = re.compile(r"(?<![A-Z])(ID|SPORT|DPORT)=(\d+)")

NFT_KINDS = {"sport": "port", "dport": "port", "sequence": "seq", "ackseq": "tcpseq", "id": "echoid"}


class Cutter:
    """Cuts the lines of one capture; it numbers the capture's trace ids in order of appearance."""

    def __init__(self) -> None:
        self.traces: dict[str, int] = {}

    def trace(self, ident: str) -> Slot:
        return ("trace", self.traces.setdefault(ident, len(self.traces)))

    def kernel(self, text: str) -> Line:
        """`[  871.984192] TRACE: …`: the stamp, then the numbers, each read in its protocol's context."""
        match = KERNEL_LINE.fullmatch(text)
        if not match:
            raise ValueError(f"not a dmesg TRACE line: {text[:80]!r}")
        body = match.group(3)
        literals, slots = _cut(body, _kernel_numbers(body))
        header = body.split(" [", 1)[0]
        key = " ".join(f"{name}={value}" for name, value in KERNEL_KEY.findall(header))
        return Line(int(match.group(1)) * 1_000_000 + int(match.group(2)), literals, slots, key)

    def nft(self, text: str) -> Line:
        """`trace id f613392f ip raw PREROUTING packet: … ip id 15189 …`: numbers only on packet lines."""
        match = NFT_LINE.fullmatch(text)
        if not match:
            raise ValueError(f"not an nft monitor trace line: {text[:80]!r}")
        rest = match.group(3)
        numbers = [] if " packet: " not in rest else [_nft_number(m) for m in NFT_NUMBER.finditer(rest)]
        literals, slots = _cut(rest, numbers)
        return Line(None, (match.group(1), *literals), (self.trace(match.group(2)), *slots), match.group(2))

    def xtables(self, text: str) -> Line:
        """`PACKET: 2 f613392f … ID=15189 DF SPORT=49550 …` and ` TRACE: 2 f613392f …`."""
        match = XT_LINE.fullmatch(text)
        if not match:
            raise ValueError(f"not an xtables-monitor trace line: {text[:80]!r}")
        rest = match.group(3)
        numbers: list[Number] = []
        if match.group(1).startswith("PACKET"):
            numbers = [
                (m.start(2), m.end(2), "ipid" if m.group(1) == "ID" else "port") for m in XT_NUMBER.finditer(rest)
            ]
        literals, slots = _cut(rest, numbers)
        return Line(None, (match.group(1), *literals), (self.trace(match.group(2)), *slots), match.group(2))


Number = tuple[int, int, str]  # start, end, kind


def _kernel_numbers(body: str) -> list[Number]:
    """The rewritable numbers of a kernel line; `ID=`/`SEQ=` mean different things per protocol.

    After `PROTO=ICMP` (or ICMPv6) `ID=`/`SEQ=` are the echo id and sequence;
    before it, `ID=` is the IP id; after `PROTO=TCP`, `SEQ=`/`ACK=` are
    sequence numbers.  `[SRC=` opens the quoted header of an ICMP error,
    whose numbers belong to the packet it quotes and map the same way.
    """
    numbers: list[Number] = []
    proto = ""
    for match in KERNEL_NUMBER.finditer(body):
        name, value = match.group(1), match.group(2)
        if name is None:
            proto = ""
        elif name == "PROTO":
            proto = value
        elif value.isdigit():
            kind = _kernel_kind(name, proto)
            if kind:
                numbers.append((match.start(2), match.end(2), kind))
    return numbers


def _kernel_kind(name: str, proto: str) -> str:
    echo = proto in ("ICMP", "ICMPv6")
    if name in ("SPT", "DPT"):
        return "port"
    if name == "ID":
        return "echoid" if echo else "ipid"
    if proto == "TCP":
        return "tcpseq"
    return "echoseq" if echo and name == "SEQ" else ""


def _nft_number(match: re.Match[str]) -> Number:
    words = match.group(1).split(" ")
    kind = "ipid" if words == ["ip", "id"] else NFT_KINDS[words[1]]
    if kind == "seq":
        kind = "tcpseq" if words[0] == "tcp" else "echoseq"
    return (match.start(2), match.end(2), kind)


def _cut(text: str, numbers: Sequence[Number]) -> tuple[tuple[str, ...], tuple[Slot, ...]]:
    """Split `text` at `numbers` into literal pieces and slots."""
    literals: list[str] = []
    slots: list[Slot] = []
    position = 0
    for start, end, kind in numbers:
        literals.append(text[position:start])
        slots.append((kind, int(text[start:end])))
        position = end
    literals.append(text[position:])
    return tuple(literals), tuple(slots)


def whole_packets(keys: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """Cut a capture into the shortest runs of lines that hold every line of their keys.

    A packet's lines share a key, so no run splits a packet; packets that
    cannot be told apart (same key) simply share a run.  Runs keep the
    capture's own order, so interleaving runs never reorders one copy.
    """
    last = {key: index for index, key in enumerate(keys)}
    units: list[tuple[int, int]] = []
    start = reach = 0
    for index, key in enumerate(keys):
        reach = max(reach, last[key])
        if index == reach:
            units.append((start, index + 1))
            start = index + 1
    return tuple(units)


@cache
def load(fmt: str, path: Path) -> Capture:
    """Read and cut one capture (cached: the builder reuses it for every copy)."""
    cutter = Cutter()
    cut: Callable[[str], Line] = getattr(cutter, fmt)
    lines = tuple(cut(text) for text in path.read_text().splitlines() if text.strip())
    if len(cutter.traces) >= TRACE_STRIDE:
        raise ValueError(f"{path}: more than {TRACE_STRIDE} trace ids")
    if fmt == "kernel":
        first = lines[0].time_us or 0
        clock = tuple((line.time_us or 0) - first for line in lines)
    else:
        clock = tuple(index * NFT_STEP_US for index in range(len(lines)))
    return Capture(path, lines, whole_packets([line.key for line in lines]), clock)


def sources(fmt: str) -> list[Path]:
    """The sample files one format's inputs are built from."""
    return sorted(path for pattern in FORMATS[fmt].patterns for path in SAMPLES.glob(pattern))


# --- one mapping per copy --------------------------------------------------------------

PORT_LOW, PORT_SPAN = 32768, 61000 - 32768


def _trace_id(index: int, copy: int) -> str:
    """A bijective 32-bit mix of (copy, index): distinct for every copy, and random-looking like nft's."""
    value = (copy * TRACE_STRIDE + index + 1) & 0xFFFFFFFF
    value = (value * 0x9E3779B1) & 0xFFFFFFFF
    value ^= value >> 16
    value = (value * 0x85EBCA6B) & 0xFFFFFFFF
    return f"{value ^ (value >> 13):08x}"


def _port(value: int, copy: int) -> str:
    if not PORT_LOW <= value < PORT_LOW + PORT_SPAN:
        return str(value)
    return str(PORT_LOW + (value - PORT_LOW + copy * 17449) % PORT_SPAN)


# Zero stays zero for IP ids and TCP sequence numbers: there it means "not set"
# (ACK=0 on a SYN, ID=0 on a DF SYN-ACK).  Each shift is a rotation, so a bijection.
SHIFTS: dict[str, Callable[[int, int], str]] = {
    "ipid": lambda value, copy: str(value and (value - 1 + copy * 40503) % 65535 + 1),
    "echoid": lambda value, copy: str((value + copy * 40507) % 65536),
    "echoseq": lambda value, copy: str((value + copy * 10007) % 65536),
    "tcpseq": lambda value, copy: str(value and (value + copy * 2654435761) % (1 << 32)),
    "port": _port,
    "trace": _trace_id,
}


def render(line: Line, copy: int, time_us: int | None) -> str:
    """The captured line with copy `copy`'s numbers and, for kernel logs, the stamp `time_us`."""
    pieces = [line.literals[0]]
    for (kind, value), literal in zip(line.slots, line.literals[1:], strict=True):
        pieces.append(SHIFTS[kind](value, copy))
        pieces.append(literal)
    text = "".join(pieces)
    if time_us is None:
        return text
    seconds, micros = divmod(time_us, 1_000_000)
    return f"[{seconds:5d}.{micros:06d}] {text}"


# --- interleaving copies --------------------------------------------------------------


@dataclass(slots=True)
class _Copy:
    """A copy of a capture in flight: where its time zero landed and which packet run is next."""

    capture: Capture
    number: int
    start: int
    unit: int = 0
    drift: int = 0

    def due(self) -> int:
        return self.start + self.drift + self.capture.clock[self.capture.units[self.unit][0]]


@dataclass
class Plan:
    """What to build, and what was built: the copies of each capture, counted as they start."""

    fmt: str
    lines: int
    concurrent: int = CONCURRENT
    seed: int = SEED
    captures: list[Path] = field(default_factory=list)
    copies: Counter[str] = field(default_factory=Counter)
    written: int = 0

    def schedule(self) -> Iterator[Capture]:
        """Captures in rounds, each round in a new random order, so every capture gets its share."""
        captures = [load(self.fmt, path) for path in (self.captures or sources(self.fmt))]
        rng = random.Random(self.seed)
        while True:
            order = list(captures)
            rng.shuffle(order)
            yield from order


def packets(plan: Plan) -> Iterator[list[str]]:
    """Runs of whole packets, copies interleaved by time, until about `plan.lines` lines.

    A copy starts only while fewer than `plan.lines` lines are planned, and
    always runs to its end, so the result is a little longer than asked and
    every copy is complete.  A run due before the last stamp printed is
    delayed (with the rest of its copy), keeping stamps monotonic and the
    gaps inside a packet exact.
    """
    rng = random.Random(plan.seed + 1)
    schedule = plan.schedule()
    heap: list[tuple[int, int, _Copy]] = []
    order = itertools.count()  # breaks ties between runs due at the same microsecond
    planned = started = 0
    clock = START_US

    def start(at: int) -> None:
        nonlocal planned, started
        capture = next(schedule)
        copy = _Copy(capture, started, at + rng.randint(0, GAP_US))
        plan.copies[capture.name] += 1
        planned += len(capture.lines)
        started += 1
        heapq.heappush(heap, (copy.due(), next(order), copy))

    while len(heap) < plan.concurrent and planned < plan.lines:
        start(clock)
    while heap:
        _, _, copy = heapq.heappop(heap)
        run, clock = _emit(copy, clock)
        plan.written += len(run)
        yield run
        copy.unit += 1
        if copy.unit < len(copy.capture.units):
            heapq.heappush(heap, (copy.due(), next(order), copy))
        elif planned < plan.lines:
            start(clock)


def _emit(copy: _Copy, clock: int) -> tuple[list[str], int]:
    """Render the copy's next run of packets no earlier than `clock`; return it and the new clock."""
    capture = copy.capture
    first, end = capture.units[copy.unit]
    due = copy.due()
    begin = max(due, clock + 1)
    copy.drift += begin - due
    base = capture.clock[first]
    timed = capture.lines[first].time_us is not None
    run = [
        render(capture.lines[index], copy.number, begin + capture.clock[index] - base if timed else None)
        for index in range(first, end)
    ]
    return run, begin + capture.clock[end - 1] - base


def lines(plan: Plan) -> Iterator[str]:
    """The built input, one line at a time (with its newline)."""
    for run in packets(plan):
        for text in run:
            yield text + "\n"


# --- files and manifests --------------------------------------------------------------


def digest(paths: Iterable[Path]) -> str:
    """Of the sample files, so that new captures rebuild the inputs."""
    hasher = hashlib.sha256()
    for path in paths:
        hasher.update(path.name.encode())
        hasher.update(path.read_bytes())
    return hasher.hexdigest()[:16]


@dataclass(frozen=True)
class Manifest:
    """What an input file holds: enough to know the packets to expect and whether it is stale."""

    path: Path
    fmt: str
    requested: int
    lines: int
    copies: dict[str, int]
    sources: str
    version: int = VERSION
    seed: int = SEED

    def to_json(self) -> str:
        fields = {
            "format": self.fmt,
            "requested": self.requested,
            "lines": self.lines,
            "copies": self.copies,
            "sources": self.sources,
            "version": self.version,
            "seed": self.seed,
            "file": self.path.name,
        }
        return json.dumps(fields, indent=2, sort_keys=True) + "\n"

    @classmethod
    def read(cls, path: Path) -> Manifest:
        data = json.loads(path.read_text())
        return cls(
            path.with_name(data["file"]),
            data["format"],
            int(data["requested"]),
            int(data["lines"]),
            {str(name): int(count) for name, count in data["copies"].items()},
            str(data["sources"]),
            int(data["version"]),
            int(data["seed"]),
        )


def input_path(fmt: str, requested: int, out: Path) -> Path:
    return out / f"{fmt}-{requested}{FORMATS[fmt].suffix}"


def build(fmt: str, requested: int, out: Path = OUT) -> Manifest:
    """Write the input file and its manifest (`<file>.json`)."""
    out.mkdir(parents=True, exist_ok=True)
    path = input_path(fmt, requested, out)
    plan = Plan(fmt, requested)
    with path.open("w") as handle:
        handle.writelines(lines(plan))
    manifest = Manifest(path, fmt, requested, plan.written, dict(sorted(plan.copies.items())), digest(sources(fmt)))
    path.with_name(path.name + ".json").write_text(manifest.to_json())
    return manifest


def ensure(fmt: str, requested: int, out: Path = OUT) -> Manifest:
    """The input, built only if it is missing or was built from other samples or another builder."""
    path = input_path(fmt, requested, out)
    meta = path.with_name(path.name + ".json")
    if path.exists() and meta.exists():
        manifest = Manifest.read(meta)
        fresh = (manifest.version, manifest.seed, manifest.sources) == (VERSION, SEED, digest(sources(fmt)))
        if fresh and manifest.requested == requested:
            return manifest
    return build(fmt, requested, out)


# --- streaming --------------------------------------------------------------------------


class _Stop:
    """Set by SIGTERM: the stream ends after the line being written, never inside one."""

    requested = False

    @classmethod
    def handle(cls, signum: int, frame: FrameType | None) -> None:
        del signum, frame
        cls.requested = True


def stream(texts: Iterable[str]) -> int:
    """Write `texts` to stdout as they come; return how many lines went out.

    SIGTERM ends the stream after the current line, so the reader sees whole
    lines and a clean end of file; a reader that goes away ends it too.
    """
    signal.signal(signal.SIGTERM, _Stop.handle)
    written = 0
    try:
        for text in texts:
            if _Stop.requested:
                break
            sys.stdout.write(text)
            written += 1
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
    print(f"bench.build: streamed {written} lines", file=sys.stderr)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Build one input file, or stream it."""
    parser = argparse.ArgumentParser(prog="python -m bench.build", description=__doc__.split("\n\n")[0])
    parser.add_argument("format", choices=sorted(FORMATS))
    parser.add_argument("--lines", type=int, default=1_000_000, help="about this many lines (whole copies)")
    parser.add_argument("--out", type=Path, default=OUT, help="directory for the file and its manifest")
    parser.add_argument("--stdout", action="store_true", help="stream to stdout instead of writing a file")
    args = parser.parse_args(argv)
    if args.stdout:
        stream(lines(Plan(args.format, args.lines)))
        return 0
    manifest = build(args.format, args.lines, args.out)
    print(f"{manifest.path}: {manifest.lines} lines, {sum(manifest.copies.values())} copies of captures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
