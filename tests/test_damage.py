"""Every step in, every step out: the real captures damaged as pastes damage them (see tests/damage.py).

Each TRACE step line of a capture must come out as a step of some packet,
or be listed as a line not understood, with its place and a reason; never a
traceback.  Steps read from damaged text say so (`Header.partial`).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.damage import KINDS, Reading, damage, elide, read_capture, read_lines, split_field, tally
from tests.samples import SAMPLES, trace_samples
from tracelog.events import SourceLine, TraceEvent
from tracelog.parse import BadLine, Caveat, LineParser, Skip, partial_line

SAMPLE_IDS = [str(path.relative_to(SAMPLES)) for path in trace_samples()]
ALL_KINDS = (*KINDS, "mixed")
SEEDS = (0, 1)


def capture_lines(sample: Path) -> list[str]:
    return sample.read_text().splitlines()


@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("sample", trace_samples(), ids=SAMPLE_IDS)
def test_every_step_comes_out(sample: Path, kind: str) -> None:
    """Steps out == steps in, for every capture under each kind of damage (nothing listed either, today)."""
    lines = capture_lines(sample)
    capture = read_capture(lines)
    for seed in SEEDS:
        paste = damage(lines, kind, seed)
        reading = read_lines(paste.lines, paste.origins)
        counted = tally(capture, paste, reading)
        lost = [paste.lines[paste.origins.index(line)] for line in counted.lost_lines]
        assert counted.lost == 0, lost
        assert counted.steps_out == counted.steps_in, [bad for bads in reading.bad.values() for bad in bads]


@pytest.mark.parametrize("kind", ["quoting", "whitespace"])
@pytest.mark.parametrize("sample", trace_samples(), ids=SAMPLE_IDS)
def test_packets_are_the_captures_where_the_damage_leaves_them_readable(sample: Path, kind: str) -> None:
    """Quoting and blanks inside fields hide nothing: the packets are the capture's, step for step."""
    lines = capture_lines(sample)
    capture = read_capture(lines)
    for seed in SEEDS:
        paste = damage(lines, kind, seed)
        reading = read_lines(paste.lines, paste.origins)
        assert sorted(map(sorted, reading.packets)) == sorted(map(sorted, capture.packets))


def merges(kind: str) -> int:
    """Packets read from damaged captures whose steps come from two packets of the capture."""
    found = 0
    for sample in trace_samples():
        lines = capture_lines(sample)
        capture = read_capture(lines)
        for seed in SEEDS:
            paste = damage(lines, kind, seed)
            found += tally(capture, paste, read_lines(paste.lines, paste.origins)).merges
    return found


@pytest.mark.parametrize("kind", ["whitespace", "quoting", "excerpt"])
def test_no_packets_merged_where_nothing_is_hidden(kind: str) -> None:
    assert merges(kind) == 0


@pytest.mark.parametrize("kind", ["elision", "redaction", "mixed"])
def test_no_packets_merged_on_missing_data(kind: str) -> None:
    assert merges(kind) == 0


def readings_by_line(lines: list[str], source: str) -> dict[int, list[object]]:
    """The outcomes of each line, by its 0-based number, as one run reads them."""
    parser = LineParser(year=2026)
    found: dict[int, list[object]] = {}
    for number, text in enumerate(lines, 1):
        for outcome in parser.parse(SourceLine(source, number, text)):
            origin = getattr(outcome, "origin", None)
            found.setdefault(origin.line - 1 if origin else number - 1, []).append(outcome)
    return found


def without_extra(event: TraceEvent, origin: SourceLine) -> TraceEvent:
    """A step but for where it was read from and the fields tracelog does not read (`Header.extra`)."""
    return event._replace(header=event.header._replace(extra=()), origin=origin)


@pytest.mark.parametrize("kind", ["elision", "redaction", "whitespace"])
@pytest.mark.parametrize("sample", trace_samples(), ids=SAMPLE_IDS)
def test_a_step_read_otherwise_than_undamaged_says_it_is_partial(sample: Path, kind: str) -> None:
    """A step without `partial` is the very step the undamaged capture gives, but for fields tracelog does not read.

    (Blanks slipped into ulogd JSON keys tracelog keeps aside, in `extra`, are
    left as they are.)
    """
    lines = capture_lines(sample)
    undamaged = readings_by_line(lines, "capture")
    for seed in SEEDS:
        paste = damage(lines, kind, seed)
        for at, outcomes in readings_by_line(paste.lines, "paste").items():
            origin = paste.origins[at]
            before = [o for o in undamaged.get(origin, []) if isinstance(o, TraceEvent)] if origin is not None else []
            for event in outcomes:
                if isinstance(event, TraceEvent) and event.header.partial is None:
                    here = event.origin
                    assert without_extra(event, here) in [without_extra(b, here) for b in before], paste.lines[at]


@pytest.mark.parametrize("sample", trace_samples(), ids=SAMPLE_IDS)
def test_undamaged_captures_have_no_partial_step(sample: Path) -> None:
    steps = [o for outcomes in readings_by_line(capture_lines(sample), "c").values() for o in outcomes]
    assert not [o for o in steps if isinstance(o, TraceEvent) and o.header.partial is not None]


def test_strict_reports_a_partial_step_as_a_line_not_read_fully() -> None:
    line = capture_lines(SAMPLES / "docker-legacy/ping.dmesg")[0].replace("SRC=172.18.0.2", "SRC=x.x.x.x")
    (event,) = [o for o in LineParser(2026).parse(SourceLine("f.log", 3, line)) if isinstance(o, TraceEvent)]
    bad = partial_line(event)
    assert bad.location == f"f.log:3:{line.index('x.x.x.x') + 1}"
    assert bad.reason.startswith("not read fully: values redacted")
    assert bad.with_caret().splitlines()[1].index("^") == line.index("x.x.x.x")


def never_raises(reading: Reading) -> None:
    for bads in reading.bad.values():
        for bad in bads:
            assert isinstance(bad, BadLine)
            assert bad.reason
            assert bad.location.startswith(f"{bad.origin.source}:{bad.origin.line}")


@settings(max_examples=150, deadline=None)
@given(
    sample=st.sampled_from(trace_samples()),
    kind=st.sampled_from(ALL_KINDS),
    seed=st.integers(0, 10_000),
)
def test_any_seed_of_any_damage_keeps_every_step(sample: Path, kind: str, seed: int) -> None:
    lines = capture_lines(sample)
    paste = damage(lines, kind, seed)
    reading = read_lines(paste.lines, paste.origins)
    never_raises(reading)
    counted = tally(read_capture(lines), paste, reading)
    assert counted.lost == 0


@settings(max_examples=300, deadline=None)
@given(
    sample=st.sampled_from(trace_samples()),
    line=st.integers(0, 10_000),
    seed=st.integers(0, 10_000),
    damages=st.lists(st.sampled_from(["elide", "split"]), min_size=1, max_size=4),
)
def test_a_line_damaged_many_times_over_is_a_step_or_listed(
    sample: Path, line: int, seed: int, damages: list[str]
) -> None:
    """Elisions and blanks piled on one line: its step still comes out, or the line is listed; never a traceback."""
    lines = capture_lines(sample)
    undamaged = readings_by_line(lines, "capture")
    steps = [at for at, outcomes in undamaged.items() if any(isinstance(o, TraceEvent) for o in outcomes)]
    at = steps[line % len(steps)]
    rng = random.Random(seed)
    text = lines[at]
    for how in damages:
        text = elide(text, rng) if how == "elide" else split_field(text, rng)
    # the monitors' step lines need the packet line before them
    context = lines[:at]
    parser = LineParser(year=2026)
    for number, before in enumerate(context, 1):
        parser.parse(SourceLine("p", number, before))
    outcomes = [*parser.parse(SourceLine("p", at + 1, text)), *parser.flush()]
    assert all(isinstance(o, TraceEvent | BadLine | Caveat | Skip) for o in outcomes)
    assert any(isinstance(o, TraceEvent | BadLine) for o in outcomes), (text, outcomes)


# Renderings of the captures by other tools (jq, fold, tshark, nftrace): every step comes out of them too.
RENDERINGS = sorted(
    [
        *SAMPLES.glob("lab-tshark/*.tshark"),
        *SAMPLES.glob("nftrace/*.nftrace"),
        *(path for path in SAMPLES.glob("ulogd-jq/*") if path.name != "meta.json"),
    ]
)


@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("rendering", RENDERINGS, ids=[str(path.relative_to(SAMPLES)) for path in RENDERINGS])
def test_every_step_of_a_rendering_comes_out_and_none_is_merged(rendering: Path, kind: str) -> None:
    lines = capture_lines(rendering)
    capture = read_capture(lines)
    assert capture.events
    for seed in SEEDS:
        paste = damage(lines, kind, seed)
        counted = tally(capture, paste, read_lines(paste.lines, paste.origins))
        assert (counted.lost, counted.listed, counted.merges) == (0, 0, 0)
        assert counted.steps_out == counted.steps_in
