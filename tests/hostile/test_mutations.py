"""Hypothesis beyond random bytes: real TRACE lines mutated as hostile input mutates them, read end to end.

A stretch of a real capture (any format) has some of its step lines mutated:
a field duplicated, a field blown up (past the line limit too), control
characters put in, the tag damaged, the line cut in half.  Read from a file
as `tracelog parse` reads it, every line that is still a TRACE line (its
format's mark intact) comes out as a step of a packet or is listed as not
understood, never silently dropped; the CLI ends with a documented exit
status and no traceback, in bounded time.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import RunCli
from tests.samples import SAMPLES, trace_samples
from tracelog.errors import ExitStatus
from tracelog.events import SourceLine, TraceEvent
from tracelog.parse import BadLine, Caveat, LineParser, Outcome, Skip
from tracelog.pipeline import LONG_LINE_SKIPPED, PacketBuilder, ParseOptions, RunStats
from tracelog.sources import read_lines

WINDOW = 24  # lines of a capture read at once: the packet lines a monitor's steps need come with them
CONTROL = ["\x00", "\x07", "\x08", "\x0b", "\x0c", "\r", "\x1b", "\x1b[2J", "\x1b]0;t\x07", "\x7f", "\x9b", "\u202e"]
LENGTHS = [300, 5_000, 70_000]  # the last one past the line limit (64 KiB)

# Each format's mark (what makes a line a TRACE line of that format) and its tag (what says which
# table, chain and rule): the first group.  The monitors' lines are known by their start.
# (a line cut short, or mutated before, may have less of them)
_XTABLES = re.compile(r"[ \t]*TRACE: ?(\S*(?: +\S+){0,2})")
_NFT = re.compile(r"trace id ?(\S*(?: +\S+){0,3})")
_JSON = re.compile(r'"oob\.prefix"(?:: ?"(?:TRACE: ?)?([^"]*))?')
# (the kernel's tag: all before the first field, a blank a mutation put in it included)
_KERNEL = re.compile(r"TRACE:[ \t]*(.*?)(?=[ \t]+[A-Z][A-Z0-9]*=|[ \t]*$)")


@dataclass(frozen=True)
class Marks:
    """A step line's mark: what a character put strictly between `breaks` breaks; `tag`, the tag's span.

    `keep` is where the line may be cut and stay a TRACE line.
    """

    breaks: tuple[int, int]
    tag: tuple[int, int]
    keep: int


def marks(text: str, sample: Path) -> Marks:
    """The marks of a step line of `sample`'s format (a line mutated already included)."""
    monitor = {".xtables-monitor": _XTABLES, ".nft-monitor": _NFT}.get(sample.suffix)
    if monitor is not None:
        found = monitor.match(text)
        assert found is not None, text
        return Marks((-1, found.start(1)), found.span(1), found.start(1))
    if sample.suffix == ".json":
        found = _JSON.search(text)
        assert found is not None, text
        key = found.start() + len('"oob.prefix"')
        tag = found.span(1) if found[1] is not None else (key, key)
        return Marks((found.start(), tag[0]), tag, key)
    found = _KERNEL.search(text)
    assert found is not None, text
    return Marks((found.start(), found.start() + len("TRACE:")), found.span(1), found.start(1))


@cache
def capture(sample: Path) -> tuple[list[str], list[int]]:
    """A capture's lines, and the indices of those that are steps (their undamaged reading is an event)."""
    lines = sample.read_text(encoding="utf-8").splitlines()
    parser = LineParser(2026)
    steps = {
        outcome.origin.line - 1
        for number, text in enumerate(lines, 1)
        for outcome in [*parser.parse(SourceLine("capture", number, text))]
        if isinstance(outcome, TraceEvent)
    }
    return lines, sorted(steps)


Mutation = Callable[[str, Marks, int, int], tuple[str, str]]
"""A mutation of a step line: its text, marks, a place and a choice → the text, and what it did to the line.

`fields`: the line is still a TRACE line; `tag`: its tag was damaged (one
damage leaves it a TRACE line, shaped like one; more may leave none of its
shape, a look-alike); `mark`: its mark is gone, it is no TRACE line.
"""


def _word_after_tag(text: str, marks: Marks, place: int) -> tuple[int, int] | None:
    """A word after the tag (a field), if the line has any left (a line cut in its tag has none)."""
    after = marks.tag[1]
    words = [found.span() for found in re.finditer(r"\S+", text[after:])]
    if not words:
        return None
    start, end = words[place % len(words)]
    return after + start, after + end


def _effect(marks: Marks, at: int) -> str:
    """What an edit at `at` does: breaks the mark, damages the tag, or leaves both."""
    if marks.breaks[0] < at < marks.breaks[1]:
        return "mark"
    return "tag" if marks.breaks[1] <= at < max(marks.tag[1], marks.tag[0] + 1) else "fields"


def duplicate_field(text: str, marks: Marks, place: int, choice: int) -> tuple[str, str]:
    word = _word_after_tag(text, marks, place)
    if word is None:
        return text, "fields"
    start, end = word
    return f"{text[:end]} {text[start:end]}{text[end:]}", "fields"


def lengthen_field(text: str, marks: Marks, place: int, choice: int) -> tuple[str, str]:
    word = _word_after_tag(text, marks, place)
    if word is None:
        return text, "fields"
    end = word[1]
    filler = text[end - 1] if text[end - 1].isalnum() else "7"
    return text[:end] + filler * LENGTHS[choice % len(LENGTHS)] + text[end:], "fields"


def put_control(text: str, marks: Marks, place: int, choice: int) -> tuple[str, str]:
    at = place % (len(text) + 1)
    return text[:at] + CONTROL[choice % len(CONTROL)] + text[at:], _effect(marks, at)


def damage_tag(text: str, marks: Marks, place: int, choice: int) -> tuple[str, str]:
    start, end = marks.tag
    at = start + place % max(end - start, 1)
    return text[:at] + "\x00 z:"[choice % 4] + text[at + 1 :], "tag"


def cut(text: str, marks: Marks, place: int, choice: int) -> tuple[str, str]:
    at = place % (len(text) + 1)
    return text[:at], "mark" if at < marks.keep else _effect(marks, at)


MUTATIONS: dict[str, Mutation] = {
    "duplicate": duplicate_field,
    "lengthen": lengthen_field,
    "control": put_control,
    "tag": damage_tag,
    "cut": cut,
}


Edits = tuple[tuple[int, tuple[tuple[str, int, int], ...]], ...]
"""Per line of a stretch (its index): the mutations, each with its place and choice."""


@st.composite
def stretch_edits(draw: st.DrawFn) -> tuple[Path, int, Edits]:
    """A capture, where a stretch of it starts, and mutations of some of its step lines (drawn small: no text)."""
    sample = draw(st.sampled_from(trace_samples()))
    lines, steps = capture(sample)
    start = draw(st.integers(0, max(len(lines) - WINDOW, 0)))
    candidates = [index - start for index in steps if start <= index < start + WINDOW]
    if not candidates:
        return sample, start, ()
    mutation = st.tuples(st.sampled_from(sorted(MUTATIONS)), st.integers(0, 1 << 16), st.integers(0, 64))
    edited = draw(st.lists(st.sampled_from(candidates), min_size=1, max_size=4, unique=True))
    return sample, start, tuple((at, tuple(draw(st.lists(mutation, min_size=1, max_size=3)))) for at in edited)


def mutated(sample: Path, start: int, edits: Edits) -> tuple[list[str], set[int]]:
    """The stretch with its edits made; the 1-based numbers of the lines still TRACE lines.

    A line stays one while its mark is whole and its tag was damaged once at most.
    """
    stretch = capture(sample)[0][start : start + WINDOW]
    still_trace = set()
    for at, mutations in edits:
        text, effects = stretch[at], []
        for name, place, choice in mutations:
            if "mark" not in effects:
                text, effect = MUTATIONS[name](text, marks(text, sample), place, choice)
                effects.append(effect)
        stretch[at] = text.replace("\n", " ")
        if "mark" not in effects and effects.count("tag") <= 1:
            still_trace.add(at + 1)
    return stretch, still_trace


def read_as_parse_does(path: Path) -> tuple[set[int], set[int], set[int]]:
    """The lines that became steps of packets, those not understood, and those too long to read (noted)."""
    builder, stats = PacketBuilder(ParseOptions(year=2026)), RunStats()
    bad: set[int] = set()
    noted: set[int] = set()
    packets = []

    def note(outcomes: list[Outcome]) -> list[Outcome]:
        for outcome in outcomes:
            if isinstance(outcome, BadLine):
                bad.add(outcome.origin.line)
            elif isinstance(outcome, Caveat) and outcome.message == LONG_LINE_SKIPPED:
                noted.add(outcome.origin.line)
        return outcomes

    for line in read_lines(str(path)):
        packets += builder.feed_parsed(note(builder.read(line)), stats)
    packets += builder.absorb(note(builder.parser.flush()), stats)  # a cut line held to the end
    packets += builder.finish(stats)
    stepped = {step.event.origin.line for packet in packets for step in packet.steps}
    return stepped, bad, noted


@settings(
    max_examples=120,
    derandomize=True,  # the same examples every run: a gap it finds is pinned and fixed, not met at random
    deadline=timedelta(seconds=20),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(edits=stretch_edits())
def test_a_mutated_trace_line_is_a_step_or_listed_and_the_cli_ends_cleanly(
    run_cli: RunCli, edits: tuple[Path, int, Edits]
) -> None:
    lines, still_trace = mutated(*edits)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "mutated.log"
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8", errors="surrogateescape")
        stepped, bad, noted = read_as_parse_does(path)
        lost = {number: lines[number - 1][:300] for number in still_trace - stepped - bad - noted}
        assert not lost, lost
        for options in ([], ["--strict"]):
            run = run_cli("parse", "--format", "jsonl", *options, str(path))
            assert run.status in (ExitStatus.OK, ExitStatus.BAD_LINES), run.stderr
            assert "Traceback" not in run.stderr
            assert run.status == ExitStatus.BAD_LINES or not bad - stepped


# ---- what the property found, pinned -------------------------------------------------------------------


def read_outcomes(lines: list[str]) -> list[object]:
    parser = LineParser(2026)
    found: list[object] = [
        outcome for number, text in enumerate(lines, 1) for outcome in parser.parse(SourceLine("m", number, text))
    ]
    return found + parser.flush()


LONG_NUMBER = "7" * 5_000  # past the 4,300 digits Python converts to an int


@pytest.mark.parametrize(
    ("sample", "number"),
    [
        ("lab-legacy/tcp.dmesg", "LEN=60"),
        ("lab-legacy/tcp.dmesg", "policy:3"),
        ("lab-nft/dnat.xtables-monitor", "LEN=60"),
        ("lab-nft/dnat.nft-monitor", "ip length 60"),
        ("lab-ulogd/syslogemu.log", "LEN=84"),
        ("lab-ulogd/ulogd.json", '"raw.pktlen": 84'),
    ],
)
def test_a_number_of_thousands_of_digits_is_no_traceback(sample: str, number: str) -> None:
    """Any field or tag of a real line, its number blown to 5,000 digits: unreadable or a bad line, never an error."""
    lines = (SAMPLES / sample).read_text().splitlines()[:12]
    at = next(index for index, line in enumerate(lines) if number in line)
    lines[at] = lines[at].replace(number, number[:-2] + LONG_NUMBER, 1)
    outcomes = read_outcomes(lines)
    assert all(isinstance(outcome, TraceEvent | BadLine | Caveat | Skip) for outcome in outcomes)


def test_a_port_a_damaged_step_does_not_show_is_no_rewrite(run_cli: RunCli, tmp_path: Path) -> None:
    """A NUL in a step's `DPT=` leaves its port unknown: the packet's record is built, with no rewrite to none."""
    lines = (SAMPLES / "lab-legacy/loopback.dmesg").read_text().splitlines()
    at = next(index for index, line in enumerate(lines) if "nat:OUTPUT:rule:1" in line and " DPT=" in line) + 1
    lines[at] = lines[at].replace(" DPT=", " D\x00PT=", 1)
    path = tmp_path / "damaged.dmesg"
    path.write_text("\n".join(lines) + "\n")
    run = run_cli("parse", "--format", "jsonl", str(path))
    assert run.status == ExitStatus.OK, run.stderr
    assert all(rewrite["to"] is not None for record in run.records() for rewrite in record["rewrites"])


def test_a_line_cut_in_its_tag_continues_into_no_line_of_its_own() -> None:
    """A step cut after its mark is a line ending early; the monitor's packet line after it is still read."""
    lines = (SAMPLES / "docker-nft/ping.xtables-monitor").read_text().splitlines()[:6]
    lines[2] = " TRACE: "
    outcomes = read_outcomes(lines)
    bad = [outcome for outcome in outcomes if isinstance(outcome, BadLine)]
    assert [(outcome.origin.line, outcome.reason) for outcome in bad] == [(3, "line ends early")]
    assert Skip.LOOKALIKE not in outcomes
    steps = {outcome.origin.line for outcome in outcomes if isinstance(outcome, TraceEvent)}
    assert steps == {number for number, line in enumerate(lines, 1) if line.startswith(" TRACE: 2 ")}


def test_a_line_with_a_trace_mark_continues_no_wrapped_record() -> None:
    """A kernel record cut after its tag, then a step with a control character after its mark: two lines, read apart."""
    lines = (SAMPLES / "docker-legacy/drop.dmesg").read_text().splitlines()[:6]
    lines[2] = lines[2][: lines[2].index(":rule:") + len(":rule:1")]
    lines[3] = lines[3].replace("TRACE: ", "TRACE:\x00 ", 1)
    outcomes = read_outcomes(lines)
    assert [outcome.origin.line for outcome in outcomes if isinstance(outcome, BadLine)] == [4]
    (cut,) = [outcome for outcome in outcomes if isinstance(outcome, TraceEvent) and outcome.origin.line == 3]
    assert cut.origin.text == lines[2]  # read as far as it goes, alone


def test_a_monitor_policy_step_with_a_damaged_family_is_listed() -> None:
    """xtables-monitor's `policy:ACCEPT` tag, its family number damaged by a control character: not a look-alike."""
    lines = (SAMPLES / "lab-arp/bridge.xtables-monitor").read_text().splitlines()[:4]
    lines[2] = lines[2].replace("TRACE: 5 ", "TRACE: \x005 ", 1)
    assert "policy:ACCEPT" in lines[2]
    outcomes = read_outcomes(lines)
    assert [outcome.origin.line for outcome in outcomes if isinstance(outcome, BadLine)] == [3]
    assert Skip.LOOKALIKE not in outcomes


def test_a_monitor_step_cut_in_its_trace_id_then_a_control_character_is_listed() -> None:
    """` TRACE: 2 9fe9ba\\x00`: cut inside the trace id, a NUL after it; a line ending early, not a look-alike."""
    lines = (SAMPLES / "docker-nft/http.xtables-monitor").read_text().splitlines()[:4]
    at = next(index for index, line in enumerate(lines) if line.startswith(" TRACE: "))
    lines[at] = lines[at][: len(" TRACE: 2 ") + 6] + "\x00"
    outcomes = read_outcomes(lines)
    assert [outcome.origin.line for outcome in outcomes if isinstance(outcome, BadLine)] == [at + 1]
    assert Skip.LOOKALIKE not in outcomes


@pytest.mark.parametrize(
    "cut",
    [
        lambda line: " TRACE: \x0b" + line[len(" TRACE: ")],  # ` TRACE: \x0b2`: a control before the family
        lambda line: line[: len(" TRACE: 2")] + "\x0b " + line[len(" TRACE: 2 ")],  # ` TRACE: 2\x0b 6`: after it
        lambda line: " TRACE: \x0b" + line[len(" TRACE: ") : line.index(":", len(" TRACE: ")) - 1],  # then the tag
        lambda line: line[: len(" TRACE: 2")] + "\x1b[2J",  # ` TRACE: 2\x1b[2J`: a terminal's sequence
        lambda line: line[: len(" TRACE: 2")] + "\x9b",  # ` TRACE: 2\x9b`: a C1 control
    ],
)
def test_a_monitor_step_with_a_control_in_its_start_then_cut_is_listed(cut: Callable[[str], str]) -> None:
    """A control character among the mark, the family and the trace id, the line cut there: a line ending early."""
    lines = (SAMPLES / "k8s-nft/clusterip.xtables-monitor").read_text().splitlines()[:6]
    at = next(index for index, line in enumerate(lines) if line.startswith(" TRACE: "))
    lines[at] = cut(lines[at])
    outcomes = read_outcomes(lines)
    assert [outcome.origin.line for outcome in outcomes if isinstance(outcome, BadLine)] == [at + 1]
    assert Skip.LOOKALIKE not in outcomes
