"""A packet's steps and ending in the words and order of the terminal timeline, as parts a page can style.

The terminal timeline (`tracelog.render`) lays these out as columns; the
page and the SVG show the same cells, so a person moving between them reads
the same thing (a test holds them to the timeline's text).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from tracelog.netfilter import NAT_TARGETS
from tracelog.record import Record
from tracelog.wording import decided_by, endpoint, position, rule_args

DONE_BY = {"ACCEPT": "ACCEPTED", "DROP": "DROPPED", "REJECT": "REJECTED", "QUEUE": "QUEUED", "NFQUEUE": "QUEUED"}


@dataclass(frozen=True, slots=True)
class StepRow:
    """One step as the timeline shows it.

    `changes` are the runs of the changes column, each with its kind
    (`interface`, `nat`, `ttl`); `decision_kind` is `mismatch` (the ruleset
    snapshot does not fit), `note` (a policy or a chain's end, in italics) or
    empty for rule text.
    """

    number: int
    elapsed: str
    hook: str | None
    hook_shown: str
    place: str
    position: str
    changes: tuple[tuple[str, str], ...]
    decision: str
    decision_kind: str


def _interface(step: Record, direction: str) -> str | None:
    """`docker0 [bridge] (veth1e06770 [nginx-1])`: the interface, its bridge port, their names."""
    name = _named(step[direction], step.get(f"{direction}_name"))
    port = _named(step[f"phys{direction}"], step.get(f"phys{direction}_name"))
    if port and name:
        return f"{name} ({port})"
    return port or name


def _named(interface: str | None, name: str | None) -> str | None:
    return f"{interface} [{name}]" if interface and name else interface


@functools.lru_cache(maxsize=1 << 10)
def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def elapsed(step: Record, start: float | str | None) -> str:
    """`+0.032ms` since the packet's first step, from kernel uptime or a wall clock finer than a second."""
    time, base = step["time"], start
    if isinstance(time, str) and isinstance(base, str) and "." in time and "." in base:
        time, base = _seconds(time), _seconds(base)
    if isinstance(time, float) and isinstance(base, float):
        return f"+{(time - base) * 1000:.3f}ms"
    return ""


def _changes(step: Record, previous: Record | None, rewrites: list[Record]) -> tuple[tuple[str, str], ...]:
    runs = []
    if step["in"] and (previous is None or (step["in"], step["physin"]) != (previous["in"], previous["physin"])):
        runs.append((f"in {_interface(step, 'in')}", "interface"))
    if step["out"] and (previous is None or (step["out"], step["physout"]) != (previous["out"], previous["physout"])):
        runs.append((f"out {_interface(step, 'out')}", "interface"))
    for rewrite in rewrites:
        runs.append((f"NAT {rewrite['field']} {rewrite['from']} → {rewrite['to']}", "nat"))
    if previous is not None and step["ttl"] is not None and previous["ttl"] not in (None, step["ttl"]):
        runs.append((f"ttl {previous['ttl']} → {step['ttl']}", "ttl"))
    return tuple(runs)


def _decision(step: Record) -> tuple[str, str]:
    if step["mismatch"]:
        return f"? {step['mismatch']}", "mismatch"
    if step["rule"]:
        return rule_args(step), ""
    if step["verdict"] and step["kind"] == "policy":
        return f"policy {step['verdict']}", "note"
    if step["verdict"] and step["kind"] == "return":
        return "end of chain, back to the caller", "note"
    return "", ""


def step_rows(record: Record) -> Iterator[StepRow]:
    """Each step's row: time, hook (when it changes), table:chain, position, changes, decision."""
    rewrites: dict[int, list[Record]] = {}
    for rewrite in record["rewrites"]:
        rewrites.setdefault(rewrite["step"], []).append(rewrite)
    previous: Record | None = None
    start = record["steps"][0]["time"] if record["steps"] else None
    for number, step in enumerate(record["steps"], start=1):
        hook = step["hook"] if previous is None or step["hook"] != previous["hook"] else ""
        decision, kind = _decision(step)
        yield StepRow(
            number=number,
            elapsed=elapsed(step, start),
            hook=step["hook"],
            hook_shown=hook or "",
            place=f"{step['table']}:{step['chain']}",
            position=position(step),
            changes=_changes(step, previous, rewrites.get(number, [])),
            decision=decision,
            decision_kind=kind,
        )
        previous = step


def ending(record: Record) -> tuple[str, str]:
    """The timeline's last line in two parts: `DROPPED` and ` by filter DOCKER-USER rule 1: …`.

    The first part is empty when the trace names no verdict (`last seen at …`).
    """
    verdict = record["verdict"]
    if verdict:
        step = record["steps"][record["verdict_step"] - 1]
        return DONE_BY.get(verdict, str(verdict)), f" by {decided_by(step)}"
    last = record["steps"][-1]
    where = f"{last['hook'] or '?'} {last['table']}:{last['chain']} {position(last)}"
    unknown = "verdict unknown: the trace does not say"
    if all(step["verdict"] is None for step in record["steps"]):
        unknown = "verdict unknown: give --rules to name rules and verdicts"
    return "", f"last seen at {where} ({unknown})"


def ending_text(record: Record) -> str:
    """`DROPPED by filter DOCKER-USER rule 1: -s … -j DROP`, or `last seen at …`."""
    label, rest = ending(record)
    return label + rest


def nat_rewrites(record: Record) -> list[str]:
    """Each NAT rewrite as one phrase with its whole ends and where it happened.

    `dst 192.0.2.1:8080 → 172.18.0.3:80 by nat:DOCKER rule 2 (step 3)`: the
    timeline marks the step that first shows the new value; the rule whose
    target rewrote it is the step before, when the trace shows one.
    """
    steps = record["steps"]
    phrases = []
    for number in sorted({rewrite["step"] for rewrite in record["rewrites"]}):
        if not 2 <= number <= len(steps):
            continue
        before, after = steps[number - 2], steps[number - 1]
        fields = {rewrite["field"] for rewrite in record["rewrites"] if rewrite["step"] == number}
        ends = [
            f"{side} {endpoint(before[side], before[port], None)} → {endpoint(after[side], after[port], None)}"
            for side, port in (("src", "sport"), ("dst", "dport"))
            if fields & {side, port}
        ]
        if before["verdict"] in NAT_TARGETS:
            where = f"by {before['table']}:{before['chain']} {position(before)} (step {number - 1})"
        else:
            where = f"between steps {number - 1} and {number}"
        phrases.append(f"{', '.join(ends)} {where}")
    return phrases
