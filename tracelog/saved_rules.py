"""Which rules name a trace's legacy steps: `--rules`, or the snapshot `tracelog enable` saved where it fits.

A saved snapshot is only a help.  One that is empty, damaged or unreadable
is passed over; an offline file is named from the newest snapshot taken
before the file was last written, and only when it explains every legacy
step of the file's first lines (every chain the trace names is there, every
rule number within its chain).  A live stream is read on the host that saved it,
so there it is used as it is, and a step it does not fit says so.  Either
way one line on stderr says which snapshot was used, or why none was.
"""

from __future__ import annotations

import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path

from tracelog.errors import InputError, UsageError
from tracelog.events import TraceEvent
from tracelog.parse import LineParser
from tracelog.ruleset import Rulesets, gather_rulesets, load_rulesets, read_ruleset
from tracelog.sources import STDIN, read_lines
from tracelog.state import latest_snapshot

FIT_LINES = 5_000
"""How many lines of each offline file are read to see whether a saved snapshot explains them."""


@dataclass(frozen=True, slots=True)
class RulesChoice:
    """The rulesets that name a run's steps (None: none), and the line that says where they come from."""

    rulesets: Rulesets | None
    note: str | None = None


def choose_rules(rules: Sequence[str], inputs: Sequence[str], year: int, *, live: bool = False) -> RulesChoice:
    """The rules `--rules` names, else the saved snapshot where it fits `inputs` (`live`: a stream of lines)."""
    if rules:
        given = load_rulesets(rules)
        return RulesChoice(given if given.by_family else None)
    return _saved_rules(inputs, year, live)


def _saved_rules(inputs: Sequence[str], year: int, live: bool) -> RulesChoice:
    """The snapshot `tracelog enable` saved, where it fits `inputs`, and the line that says so."""
    problems: list[str] = []
    offline = [name for name in inputs if _is_regular_file(name)]
    written = None if live or len(offline) != len(inputs) else _last_written(offline)
    files = latest_snapshot(warn=problems.append, before=None if written is None else written[1])
    if not files:
        if written is not None and latest_snapshot():
            why = f"it was taken after {written[0]} was last written"
            return RulesChoice(None, f"not naming rules from the snapshot tracelog enable saved: {why}")
        return RulesChoice(None, f"not naming rules: {'; '.join(problems)}" if problems else None)
    where = f"the snapshot tracelog enable saved in {files[0].parent}"
    rulesets, unread = _read_snapshot(files)
    problems += unread
    if not rulesets.by_family:
        why = "; ".join(problems) or "it holds no rules"
        return RulesChoice(None, f"not naming rules from {where}: {why} (--rules names them)")
    if written is not None:
        needed, mismatch = _misfit(rulesets, offline, year)
        if not needed:
            return RulesChoice(None)
        if mismatch:
            anyway = " ".join(f"--rules {ruleset.source}" for ruleset in rulesets.by_family.values())
            return RulesChoice(None, f"not naming rules from {where}: {mismatch} ({anyway} names them anyway)")
    skipped = f"; {'; '.join(problems)}" if problems else ""  # each says what it skipped
    used = ", ".join(ruleset.source.rsplit("/", 1)[-1] for ruleset in rulesets.by_family.values())
    return RulesChoice(rulesets, f"naming rules from {where} ({used}){skipped} (--rules chooses another)")


def _read_snapshot(files: Iterable[Path]) -> tuple[Rulesets, list[str]]:
    """The snapshot's readable rulesets, and one phrase for each file passed over."""
    read, problems = [], []
    for path in files:
        try:
            read.append(read_ruleset(str(path)))
        except InputError as error:
            problems.append(str(error))
    try:
        return gather_rulesets(read), problems
    except UsageError as error:
        return Rulesets({}), [*problems, str(error)]


def _is_regular_file(name: str) -> bool:
    """Whether an input is a file read to its end (not stdin, a pipe or `<(command)`, which run live)."""
    try:
        return name != STDIN and stat.S_ISREG(Path(name).stat().st_mode)
    except OSError:
        return False


def _last_written(inputs: Sequence[str]) -> tuple[str, datetime] | None:
    """The input written last, and when: a snapshot taken after that cannot be the one of its trace."""
    try:
        written = {name: Path(name).stat().st_mtime for name in inputs}
    except OSError:
        return None  # gone since: the run itself says so
    newest = max(written, key=written.__getitem__)
    return newest, datetime.fromtimestamp(written[newest], UTC)


def _misfit(rulesets: Rulesets, inputs: Iterable[str], year: int) -> tuple[bool, str | None]:
    """Whether the inputs' first lines have legacy steps, and why the rulesets do not explain one, if so.

    A trace without legacy steps (nft traces name their own rules) needs no
    snapshot at all.
    """
    parser = LineParser(year)
    needed = False
    for name in inputs:
        try:
            for line in islice(read_lines(name), FIT_LINES):
                for outcome in parser.parse(line):
                    if not isinstance(outcome, TraceEvent) or outcome.rulenum is None or outcome.verdict is not None:
                        continue
                    needed = True
                    mismatch = rulesets.annotate(outcome).mismatch
                    if mismatch:
                        origin = outcome.origin
                        return True, f"it does not fit this trace ({origin.source}:{origin.line}: {mismatch})"
        except InputError:
            continue  # the run itself reports what cannot be read
    return needed, None
