"""Damage as pastes do it: real captures elided, redacted, split, quoted and cut, seeded.

People paste TRACE output into issues, chats and mails, and edit it on the
way: runs of fields replaced by `...`, addresses by `x.x.x.x`, blanks slipped
into fields, quote marks and line numbers in front, and monitor excerpts that
start mid-packet.  `damage` applies such edits to the lines of a real capture
with a seeded generator, and keeps, for every damaged line, the number of the
capture's line it came from, so a test can tell where each step went.

`read_paste` reads a damaged capture the way `tracelog parse` does (the line
parser, then the correlator) and says, per original line, what became of it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tracelog.correlate import Correlator
from tracelog.events import SourceLine, TraceEvent
from tracelog.parse import BadLine, Caveat, LineParser, Skip

KINDS = ("elision", "redaction", "whitespace", "quoting", "excerpt")
"""The kinds of damage, each alone; `mixed` applies two or three of them at once."""

YEAR = 2026
# how often a line of the capture is damaged, by the kinds that damage lines one by one
LINE_ODDS = 0.5

ELLIPSES = ("...", "..", "[..]", "…", "[...]")
ADDRESS_TOKENS = ("xxx", "x.x.x.x", "a.b.c.d", "<redacted>", "REDACTED", "***", "[IP]", "X.X.X.X", "<ip>")
MAC_TOKENS = ("xxx", "xx:xx:xx:xx:xx:xx", "<redacted>", "REDACTED", "***", "[MAC]")
QUOTES = ("> ", ">", "- ", "* ", "# ", "// ", "    ", "\t", "| ")
PROMPTS = ("$ ", "# ", "root@vm:~# ", "user@host:~$ ", "[root@fw ~]# ", "~ ❯ ")
PROMPT_COMMANDS = (
    "dmesg | grep TRACE",
    "sudo journalctl -k | grep TRACE",
    "xtables-monitor --trace",
    "nft monitor trace",
)
TRAILERS = ("  # noqa", "  # <- here", " // dropped?", "   <-- this one", "  (truncated)")

# where the fields of each format's lines start
_KERNEL_TAG = re.compile(r"TRACE:[ \t]*(?:raw|mangle|nat|filter|security):\S+:(?:rule|return|policy):\d+[ \t]*")
_XTABLES_PACKET = re.compile(r"[ \t]*PACKET: \d+ [0-9a-f]+ ")
_XTABLES_STEP = re.compile(r"[ \t]*TRACE: \d+ [0-9a-f]+ \S+[ \t]*")
_NFT_PACKET = re.compile(r"trace id [0-9a-f]+ \S+ \S+ \S+ packet: ")
_NFT_RULE = re.compile(r"trace id [0-9a-f]+ \S+ \S+ \S+ rule ")
_JSON_ADDRESS = re.compile(r'("(?:src_ip|dest_ip|ip\.saddr\.str|ip\.daddr\.str)": ")([^"]*)(")')
_JSON_MAC = re.compile(r'("mac\.(?:str|saddr\.str|daddr\.str)": ")([^"]*)(")')
_ADDRESS_KEYS = re.compile(r"(?<![A-Z])(SRC=|DST=|GATEWAY=)([0-9a-fA-F:.]+)")
_MAC_KEYS = re.compile(r"(?<![A-Z])(MAC=|MACSRC=|MACDST=)([0-9a-fA-F:]+)")
_NFT_ADDRESSES = re.compile(r"((?:ip|ip6|icmp) (?:saddr|daddr|gateway) )([0-9a-fA-F:.]+)")
_NFT_MACS = re.compile(r"(ether (?:saddr|daddr) )([0-9a-fA-F:]+)")
_KEY_VALUE = re.compile(r"([A-Z][A-Z0-9_]*)=(\S+)")


@dataclass
class Paste:
    """Damaged lines, each with the 0-based number of the capture line it came from (None: added)."""

    lines: list[str] = field(default_factory=list)
    origins: list[int | None] = field(default_factory=list)

    def add(self, text: str, origin: int | None) -> None:
        self.lines.append(text)
        self.origins.append(origin)


def field_start(text: str) -> int | None:
    """Where the packet fields of a line start (kernel log, LOGEMU, xtables PACKET, nft packet), if it has any."""
    for pattern in (_KERNEL_TAG, _XTABLES_PACKET, _NFT_PACKET):
        match = pattern.search(text) if pattern is _KERNEL_TAG else pattern.match(text)
        if match is not None:
            return match.end()
    return None


def rule_start(text: str) -> int | None:
    """Where the rule text of a monitor's step line starts, if it has one."""
    for pattern in (_XTABLES_STEP, _NFT_RULE):
        match = pattern.match(text)
        if match is not None and match.end() < len(text.rstrip()):
            return match.end()
    return None


# ---- one line at a time ----------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return text.split(" ")


def elide(text: str, rng: random.Random) -> str:
    """A run of fields, one value, or the tail of the fields replaced by an ellipsis."""
    start = field_start(text)
    if start is None:
        start = rule_start(text)
        if start is None:
            return text
    head, words = text[:start], [word for word in _words(text[start:]) if word]
    if not words:
        return text
    ellipsis = rng.choice(ELLIPSES)
    how = rng.choice(("run", "value", "tail", "tail"))
    if how == "value":
        keyed = [index for index, word in enumerate(words) if "=" in word and not word.endswith("=")]
        if keyed:
            index = rng.choice(keyed)
            words[index] = words[index].partition("=")[0] + "=" + rng.choice(("...", "…"))
            return head + " ".join(words)
    if how == "tail":
        keep = rng.randint(1, max(1, min(3, len(words) - 1)))
        return head + " ".join(words[:keep]) + " " + ellipsis
    first = rng.randrange(len(words))
    last = min(len(words), first + rng.randint(1, 5))
    return head + " ".join([*words[:first], ellipsis, *words[last:]])


class Redactor:
    """Addresses and MACs replaced by placeholders, as one person would do it through a whole paste."""

    def __init__(self, rng: random.Random) -> None:
        self.address = rng.choice(ADDRESS_TOKENS)
        self.mac = rng.choice(MAC_TOKENS)
        # some people keep the network and hide the host: 172.18.x.x
        self.keep_network = rng.random() < 0.25

    def _address(self, value: str) -> str:
        if self.keep_network and value.count(".") == 3:
            return ".".join(value.split(".")[:2]) + ".x.x"
        return self.address

    def redact(self, text: str, rng: random.Random) -> str:
        if text.lstrip().startswith("{"):
            text = _JSON_ADDRESS.sub(lambda match: match[1] + self._address(match[2]) + match[3], text)
            return _JSON_MAC.sub(lambda match: match[1] + self.mac + match[3], text)
        which = rng.choice(("addresses", "macs", "both"))
        if which != "macs":
            text = _ADDRESS_KEYS.sub(lambda match: match[1] + self._address(match[2]), text)
            text = _NFT_ADDRESSES.sub(lambda match: match[1] + self._address(match[2]), text)
        if which != "addresses":
            text = _MAC_KEYS.sub(lambda match: match[1] + self.mac, text)
            text = _NFT_MACS.sub(lambda match: match[1] + self.mac, text)
        return text


def split_field(text: str, rng: random.Random) -> str:
    """A blank slipped into one field: its key (`TT L=63`), its value (`TTL=6 3`), or spaces in OPT's bytes."""
    start = field_start(text)
    if start is None:
        return text
    fields = text[start:]
    options = re.search(r"OPT \(([0-9A-Fa-f]{4,})\)", fields)
    if options is not None and rng.random() < 0.2:
        at = options.start(1) + rng.randrange(1, len(options[1]))
        cut = start + at
        return text[:cut] + " " * rng.randint(1, 5) + text[cut:]
    keyed = [match for match in _KEY_VALUE.finditer(fields) if len(match[1]) > 1 or len(match[2]) > 1]
    if not keyed:
        words = list(re.finditer(r"\S{2,}", fields))
        if not words:
            return text
        word = rng.choice(words)
        cut = start + word.start() + rng.randrange(1, len(word[0]))
        return text[:cut] + " " + text[cut:]
    match = rng.choice(keyed)
    in_key = len(match[1]) > 1 and (len(match[2]) < 2 or rng.random() < 0.5)
    if in_key:
        cut = start + match.start(1) + rng.randrange(1, len(match[1]))
    else:
        cut = start + match.start(2) + rng.randrange(1, len(match[2]))
    return text[:cut] + " " + text[cut:]


# ---- a whole capture ---------------------------------------------------------------------------------


def _quoting(lines: Sequence[str], rng: random.Random) -> Paste:
    """One way of quoting for the whole paste, as a person pastes it once."""
    paste = Paste()
    style = rng.choice(("quote", "trailer", "gutter", "bar", "prompt", "grep-H", "grep-n", "grep-Hn"))
    quote, trailer = rng.choice(QUOTES), rng.choice(TRAILERS)
    first = rng.randint(1, 300)
    if style == "prompt":
        paste.add(rng.choice(PROMPTS) + rng.choice(PROMPT_COMMANDS), None)
    for index, text in enumerate(lines):
        number = first + index
        fronts = {
            "quote": quote,
            "gutter": f"{number}: ",
            "bar": f"{number:>5}│ ",
            "grep-H": "/var/log/kern.log:",
            "grep-n": f"{number}:",
            "grep-Hn": f"/var/log/kern.log:{number}:",
        }
        if style == "trailer":
            paste.add(text.rstrip() + trailer if rng.random() < LINE_ODDS else text, index)
        else:
            paste.add(fronts.get(style, "") + text, index)
    return paste


def _excerpt(lines: Sequence[str], rng: random.Random) -> Paste:
    """The capture from a line on: a monitor started late, or a paste trimmed at its start."""
    paste = Paste()
    start = rng.randrange(1, max(2, len(lines) // 2))
    for index in range(start, len(lines)):
        paste.add(lines[index], index)
    return paste


def _line_by_line(lines: Sequence[str], rng: random.Random, damage_line: Callable[[str, random.Random], str]) -> Paste:
    paste = Paste()
    for index, text in enumerate(lines):
        paste.add(damage_line(text, rng) if rng.random() < LINE_ODDS else text, index)
    return paste


def _apply(kind: str, lines: Sequence[str], rng: random.Random) -> Paste:
    if kind == "elision":
        return _line_by_line(lines, rng, elide)
    if kind == "redaction":
        redactor = Redactor(rng)
        return _line_by_line(lines, rng, redactor.redact)
    if kind == "whitespace":
        return _line_by_line(lines, rng, split_field)
    if kind == "quoting":
        return _quoting(lines, rng)
    if kind == "excerpt":
        return _excerpt(lines, rng)
    raise ValueError(kind)


def damage(lines: Sequence[str], kind: str, seed: int) -> Paste:
    """`lines` with one kind of damage (or `mixed`: two or three kinds in turn), reproducibly from `seed`."""
    rng = random.Random(f"{kind}:{seed}")
    kinds = [kind] if kind != "mixed" else rng.sample(KINDS, rng.randint(2, 3))
    # the line-by-line kinds first, then the quoting and the cut (which change the line list)
    kinds.sort(key=lambda name: KINDS.index(name) if name not in ("quoting", "excerpt") else 10 + KINDS.index(name))
    paste = Paste(list(lines), list(range(len(lines))))
    for name in kinds:
        damaged = _apply(name, paste.lines, rng)
        paste = Paste(damaged.lines, [None if at is None else paste.origins[at] for at in damaged.origins])
    return paste


# ---- reading it back ---------------------------------------------------------------------------------


@dataclass
class Reading:
    """What became of each capture line: steps (events), bad lines, and the packets, by capture line."""

    events: dict[int, int] = field(default_factory=dict)
    bad: dict[int, list[BadLine]] = field(default_factory=dict)
    caveats: dict[int, list[str]] = field(default_factory=dict)
    packets: list[list[int]] = field(default_factory=list)
    partial: int = 0


def read_lines(lines: Sequence[str], origins: Sequence[int | None], source: str = "paste") -> Reading:
    """Read lines as `tracelog parse` does; outcomes are counted by the capture line they came from."""
    parser, correlator = LineParser(YEAR), Correlator()
    reading = Reading()
    by_event: dict[int, int] = {}

    def absorb(outcomes: list[object]) -> None:
        for outcome in outcomes:
            if isinstance(outcome, TraceEvent):
                origin = origins[outcome.origin.line - 1]
                if origin is None:
                    raise AssertionError(f"a step from a line the damage added: {outcome.origin.text!r}")
                reading.events[origin] = reading.events.get(origin, 0) + 1
                by_event[id(outcome)] = origin
                if getattr(outcome.header, "partial", None) is not None or outcome.header.elided:
                    reading.partial += 1
                for packet in correlator.feed(outcome):
                    reading.packets.append([by_event.pop(id(step.event)) for step in packet.steps])
            elif isinstance(outcome, BadLine):
                origin = origins[outcome.origin.line - 1]
                reading.bad.setdefault(-1 if origin is None else origin, []).append(outcome)
            elif isinstance(outcome, Caveat):
                origin = origins[outcome.origin.line - 1]
                reading.caveats.setdefault(-1 if origin is None else origin, []).append(outcome.message)
            else:
                assert isinstance(outcome, Skip)

    for number, text in enumerate(lines, 1):
        absorb(list(parser.parse(SourceLine(source, number, text))))
    absorb(list(parser.flush()))
    for packet in correlator.finish():
        reading.packets.append([by_event.pop(id(step.event)) for step in packet.steps])
    return reading


def read_capture(lines: Sequence[str]) -> Reading:
    """The undamaged capture, read the same way: what the damaged one is held against."""
    return read_lines(lines, list(range(len(lines))), "capture")


@dataclass
class Tally:
    """Steps of one damaged paste: how many went in, came out, were listed as bad, or were lost."""

    steps_in: int = 0
    steps_out: int = 0
    listed: int = 0
    lost: int = 0
    merges: int = 0
    partial: int = 0
    tracebacks: int = 0
    packets_in: int = 0
    packets_out: int = 0
    lost_lines: list[int] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.steps_in += other.steps_in
        self.steps_out += other.steps_out
        self.listed += other.listed
        self.lost += other.lost
        self.merges += other.merges
        self.partial += other.partial
        self.packets_in += other.packets_in
        self.packets_out += other.packets_out
        self.lost_lines += other.lost_lines


def tally(capture: Reading, paste: Paste, reading: Reading) -> Tally:
    """Each step line of the capture kept in the paste: out as steps, listed as bad, or lost.

    A merge is a packet of the paste whose steps come from two packets of the
    capture; `packets_in` counts the capture's packets with a step kept.
    """
    kept = {origin for origin in paste.origins if origin is not None}
    result = Tally()
    for line, steps in capture.events.items():
        if line not in kept:
            continue
        result.steps_in += steps
        out = min(steps, reading.events.get(line, 0))
        listed = min(steps - out, len(reading.bad.get(line, [])))
        result.steps_out += out
        result.listed += listed
        if steps - out - listed:
            result.lost += steps - out - listed
            result.lost_lines.append(line)
    packet_of = {line: number for number, packet in enumerate(capture.packets) for line in packet}
    result.merges = sum(len({packet_of.get(line) for line in packet}) > 1 for packet in reading.packets)
    result.partial = reading.partial
    result.packets_in = sum(any(line in kept for line in packet) for packet in capture.packets)
    result.packets_out = len(reading.packets)
    return result


def measure(seeds: int = 5) -> dict[str, Tally]:
    """Per kind of damage, the steps of every sample capture over `seeds` seeds."""
    from tests.samples import trace_samples

    totals = {kind: Tally() for kind in (*KINDS, "mixed")}
    for sample in trace_samples():
        lines = sample.read_text().splitlines()
        capture = read_capture(lines)
        for kind, total in totals.items():
            for seed in range(seeds):
                paste = damage(lines, kind, seed)
                try:
                    total.add(tally(capture, paste, read_lines(paste.lines, paste.origins)))
                except Exception:  # a measure: a traceback is counted, and the run goes on
                    total.tracebacks += 1
    return totals


if __name__ == "__main__":
    import sys

    results = measure(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
    print(
        "| damage | steps in | out | listed as not understood | lost | marked partial | packets in → out | merges |"
        " tracebacks |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for kind, total in results.items():
        shares = [f"{count} ({count / total.steps_in:.1%})" for count in (total.steps_out, total.listed, total.lost)]
        print(
            f"| {kind} | {total.steps_in} | {' | '.join(shares)} | {total.partial} |"
            f" {total.packets_in} → {total.packets_out} | {total.merges} | {total.tracebacks} |"
        )
