"""The hook diagram: netfilter's hooks and tables as SVG, with one packet's path drawn across it.

The picture is the one everybody draws: PREROUTING, the routing decision,
then INPUT to a local process or FORWARD, and OUTPUT from a local process,
both on to POSTROUTING; in each hook the iptables tables in the order the
kernel runs them.  The drawing that never changes is one `<symbol>`
(`base_defs`); a packet's diagram (`packet_diagram`) uses it and draws only
what the packet did on top: the hooks it crossed, the tables it visited with
their step numbers, the edges between them, and the step that decided.  Many
packets take the same path, so the page stores each distinct drawing once.
"""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from html import escape
from typing import Any

from tracelog.analyse import hook_path
from tracelog.netfilter import FORWARD, INPUT, NAT_TARGETS, OUTPUT, POSTROUTING, PREROUTING
from tracelog.output.timeline import describe, ending_text, nat_rewrites, timeline_rows
from tracelog.records.packet import TERMINAL_VERDICTS, PacketRecord, StepRecord
from tracelog.wording import escape_controls

WIDTH = 670
CELL = 18
HEAD = 20
BOX = 120
TOP = 40  # room above for the loopback edge
BOTTOM = 168
EXTRA_ROWS = 2  # tables a hook may show beyond iptables' own (native nf_tables tables), before "+N more"
LABEL_CHARS = 13
TEXT_CHARS = 96  # 11 px monospace across the width
TITLE_CHARS = 80

# The tables of each hook in the order the kernel runs them (their priorities:
# raw -300, mangle -150, nat -100 for the destination, filter 0, security 50,
# nat +100 for the source).
HOOK_TABLES: dict[str, tuple[str, ...]] = {
    PREROUTING: ("raw", "mangle", "nat"),
    INPUT: ("mangle", "filter", "security", "nat"),
    FORWARD: ("mangle", "filter", "security"),
    OUTPUT: ("raw", "mangle", "nat", "filter", "security"),
    POSTROUTING: ("mangle", "nat"),
}
HOOK_PLACES: dict[str, tuple[int, int]] = {
    PREROUTING: (56, TOP),
    FORWARD: (300, TOP),
    POSTROUTING: (484, TOP),
    INPUT: (178, BOTTOM),
    OUTPUT: (484, BOTTOM),
}
_ROUTE = (238, TOP + HEAD // 2)  # the routing decision's centre
_LOCAL = (330, BOTTOM, 100)  # the local process box: x, y, width
_MAIN = TOP + HEAD // 2  # the line the top row's edges run on
_LOW = BOTTOM + HEAD // 2

# Edges as SVG path data, drawn grey in the base and bold where a packet went.
EDGES: dict[str, str] = {
    "in": f"M8 {_MAIN}H{HOOK_PLACES[PREROUTING][0]}",
    "pre-route": f"M{HOOK_PLACES[PREROUTING][0] + BOX} {_MAIN}H{_ROUTE[0] - 34}",
    "route-forward": f"M{_ROUTE[0] + 34} {_MAIN}H{HOOK_PLACES[FORWARD][0]}",
    "route-input": f"M{_ROUTE[0]} {_MAIN + 16}V{BOTTOM}",
    "forward-post": f"M{HOOK_PLACES[FORWARD][0] + BOX} {_MAIN}H{HOOK_PLACES[POSTROUTING][0]}",
    "out": f"M{HOOK_PLACES[POSTROUTING][0] + BOX} {_MAIN}H{WIDTH - 8}",
    "input-local": f"M{HOOK_PLACES[INPUT][0] + BOX} {_LOW}H{_LOCAL[0]}",
    "local-output": f"M{_LOCAL[0] + _LOCAL[2]} {_LOW}H{HOOK_PLACES[OUTPUT][0]}",
    "output-post": f"M{HOOK_PLACES[OUTPUT][0] + BOX // 2} {BOTTOM}V{TOP + HEAD + CELL * len(HOOK_TABLES[POSTROUTING])}",
    "loopback": (
        f"M{HOOK_PLACES[POSTROUTING][0] + BOX // 2} {TOP}V{TOP - 18}H{HOOK_PLACES[PREROUTING][0] + BOX // 2}V{TOP}"
    ),
}
_BASE_EDGES = tuple(edge for edge in EDGES if edge != "loopback")
# Which edges a packet crossed going from one hook to the next.
_HOP_EDGES: dict[tuple[str, str], tuple[str, ...]] = {
    (PREROUTING, INPUT): ("pre-route", "route-input"),
    (PREROUTING, FORWARD): ("pre-route", "route-forward"),
    (PREROUTING, POSTROUTING): ("pre-route", "route-forward", "forward-post"),
    (FORWARD, POSTROUTING): ("forward-post",),
    (OUTPUT, POSTROUTING): ("output-post",),
    (POSTROUTING, PREROUTING): ("loopback",),
    (POSTROUTING, INPUT): ("loopback", "pre-route", "route-input"),
    (OUTPUT, PREROUTING): ("output-post", "loopback"),
    (OUTPUT, INPUT): ("output-post", "loopback", "pre-route", "route-input"),
}
_ENTRY_EDGES = {PREROUTING: ("in",), OUTPUT: ("local-output",)}
_EXIT_EDGES = {POSTROUTING: ("out",), INPUT: ("input-local",)}

FONT = 'font-family="system-ui, -apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif" font-size="11"'
MONO = 'font-family="ui-monospace, DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="11"'
BLUE, RED, GREEN, AMBER = "#1e3a8a", "#b3261e", "#1b6e34", "#7a4f00"
# Presentation attributes, not classes: a `<use>` clone of the base drawing
# is styled by what it carries, and a standalone SVG needs no style sheet.
LOOKS = {
    "head": 'fill="#e7eaf0" stroke="#8a94a6"',
    "head-text": 'fill="#1f2937" font-weight="600" text-anchor="middle"',
    "cell": 'fill="#ffffff" stroke="#c3c9d4"',
    "cell-text": 'fill="#5b6475"',
    "edge": 'fill="none" stroke="#a3abb9" stroke-width="1.5"',
    "route": 'fill="#f4f5f8" stroke="#8a94a6"',
    "note": 'fill="#4b5563" font-style="italic"',
    "head-on": f'fill="{BLUE}" stroke="{BLUE}"',
    "head-text-on": 'fill="#ffffff" font-weight="600" text-anchor="middle"',
    "edge-on": f'fill="none" stroke="{BLUE}" stroke-width="3"',
    "cell-on": f'fill="#dbe7ff" stroke="{BLUE}" stroke-width="1.5"',
    "cell-drop": f'fill="#fde3e1" stroke="{RED}" stroke-width="2"',
    "cell-accept": f'fill="#dcf3e1" stroke="{GREEN}" stroke-width="2"',
    "cell-other": f'fill="#fff1cc" stroke="{AMBER}" stroke-width="2"',
    "label-on": 'fill="#10204a"',
    "steps-on": 'fill="#10204a" text-anchor="end"',
    "steps-drop": f'fill="{RED}" font-weight="700" text-anchor="end"',
    "steps-accept": f'fill="{GREEN}" font-weight="700" text-anchor="end"',
    "steps-other": f'fill="{AMBER}" font-weight="700" text-anchor="end"',
    "drop-mark": f'fill="{RED}" font-weight="700" font-size="14"',
    "end": f'fill="{BLUE}" font-weight="600"',
    "title": 'fill="#111827" font-size="13" font-weight="600"',
    "line": 'fill="#1f2937"',
    "line-drop": f'fill="{RED}" font-weight="700"',
    "line-accept": f'fill="{GREEN}" font-weight="700"',
    "line-other": f'fill="{AMBER}" font-weight="700"',
}


def _text(text: str) -> str:
    """Log text for SVG: controls shown as escapes, markup escaped."""
    return escape(escape_controls(text), quote=True)


def _short(text: str, limit: int = LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _head(hook: str, on: bool) -> str:
    """A hook's header; `on`: the packet crossed the hook."""
    x, y = HOOK_PLACES[hook]
    state = "-on" if on else ""
    return (
        f'<rect {LOOKS["head" + state]} x="{x}" y="{y}" width="{BOX}" height="{HEAD}" rx="3"/>'
        f'<text {LOOKS["head-text" + state]} x="{x + BOX // 2}" y="{y + 14}">{hook}</text>'
    )


def _cells(hook: str) -> Iterator[str]:
    """A hook's table cells, empty."""
    x, y = HOOK_PLACES[hook]
    for row, table in enumerate(HOOK_TABLES[hook]):
        top = y + HEAD + row * CELL
        yield f'<rect {LOOKS["cell"]} x="{x}" y="{top}" width="{BOX}" height="{CELL}"/>'
        yield f'<text {LOOKS["cell-text"]} x="{x + 8}" y="{top + 13}">{table}</text>'


def _base_drawing() -> str:
    parts = [f'<path {LOOKS["edge"]} d="{EDGES[edge]}" marker-end="url(#tl-arrow)"/>' for edge in _BASE_EDGES]
    rx, ry = _ROUTE
    parts.append(f'<path {LOOKS["route"]} d="M{rx - 34} {ry}L{rx} {ry - 16}L{rx + 34} {ry}L{rx} {ry + 16}Z"/>')
    parts.append(f'<text {LOOKS["note"]} x="{rx}" y="{ry + 4}" text-anchor="middle">routing</text>')
    x, y, width = _LOCAL
    parts.append(f'<rect {LOOKS["route"]} x="{x}" y="{y}" width="{width}" height="{HEAD}" rx="10"/>')
    parts.append(f'<text {LOOKS["note"]} x="{x + width // 2}" y="{y + 14}" text-anchor="middle">local process</text>')
    parts.append(f'<text {LOOKS["note"]} x="10" y="{_MAIN - 6}">in</text>')
    parts.append(f'<text {LOOKS["note"]} x="{WIDTH - 10}" y="{_MAIN - 6}" text-anchor="end">out</text>')
    for hook in HOOK_TABLES:
        parts.append(_head(hook, on=False))
        parts.extend(_cells(hook))
    return "".join(parts)


def base_defs() -> str:
    """The `<defs>` every packet diagram of a page uses: arrow heads and the drawing of the hooks."""
    arrows = "".join(
        f'<marker id="{name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="{size}" markerHeight="{size}"'
        f' orient="auto-start-reverse"><path d="M0 0L10 5L0 10z" fill="{colour}"/></marker>'
        for name, size, colour in (("tl-arrow", 7, "#a3abb9"), ("tl-arrow-on", 5, "#1e3a8a"))
    )
    return f'<defs>{arrows}<g id="tl-hooks">{_base_drawing()}</g></defs>'


@dataclass(frozen=True, slots=True)
class Visit:
    """The steps of one packet in one table of one hook (1-based), and what the deciding one decided."""

    hook: str
    table: str
    steps: tuple[int, ...]
    verdict: str | None
    nat: str | None = None


def visits(record: PacketRecord) -> list[Visit]:
    """Where a packet's steps fall on the diagram, in order of first visit; steps without a hook are left out."""
    found: dict[tuple[str, str], list[int]] = {}
    for number, step in enumerate(record["steps"], start=1):
        if step["hook"] in HOOK_TABLES:
            found.setdefault((step["hook"], step["table"]), []).append(number)
    decided = record.get("verdict_step")
    return [
        Visit(
            hook,
            table,
            tuple(steps),
            record["verdict"] if decided in steps else None,
            next(
                (record["steps"][n - 1]["verdict"] for n in steps if record["steps"][n - 1]["verdict"] in NAT_TARGETS),
                None,
            ),
        )
        for (hook, table), steps in found.items()
    ]


def step_ranges(steps: Iterable[int]) -> str:
    """`1`, `2–3`, `4–9,12`: step numbers as short runs."""
    runs: list[list[int]] = []
    for step in steps:
        if runs and step == runs[-1][-1] + 1:
            runs[-1].append(step)
        else:
            runs.append([step])
    return ",".join(str(run[0]) if len(run) == 1 else f"{run[0]}–{run[-1]}" for run in runs)


def _verdict_class(verdict: str) -> str:
    if verdict in TERMINAL_VERDICTS:
        return "drop"
    return "accept" if verdict == "ACCEPT" else "other"


def _edges(record: PacketRecord) -> list[str]:
    """The edges a packet crossed: in, from hook to hook, and out unless it ended inside."""
    path = hook_path(record)
    if not path:
        return []
    edges = list(_ENTRY_EDGES.get(path[0], ()))
    for before, after in itertools.pairwise(path):
        edges.extend(_HOP_EDGES.get((before, after), ()))
    if record["verdict"] not in TERMINAL_VERDICTS:
        edges.extend(_EXIT_EDGES.get(path[-1], ()))
    return list(dict.fromkeys(edges))


def _interface(step: StepRecord, direction: str) -> str | None:
    """`docker0 (veth1e06770)`: a step's interface and, on a bridge, its port."""
    fields: Mapping[str, Any] = step  # `in` or `out`: read by name
    interface: str | None = fields[direction]
    port: str | None = fields[f"phys{direction}"]
    if interface and port:
        return f"{interface} ({port})"
    return interface or port


def _ends(record: PacketRecord, edges: list[str]) -> list[str]:
    """Where the packet came in and went out, over the in and out arrows it crossed."""
    labels = []
    if "in" in edges:
        came = next((_interface(step, "in") for step in record["steps"] if step["in"] or step["physin"]), None)
        if came:
            labels.append(f'<text {LOOKS["end"]} x="8" y="14">in {_text(_short(came, 40))}</text>')
    if "out" in edges:
        went = next(
            (_interface(step, "out") for step in reversed(record["steps"]) if step["out"] or step["physout"]), None
        )
        if went:
            end = f'text-anchor="end" x="{WIDTH - 8}" y="14"'
            labels.append(f"<text {LOOKS['end']} {end}>out {_text(_short(went, 40))}</text>")
    return labels


def _shown_visits(hook: str, at_hook: list[Visit]) -> list[Visit]:
    """A hook's visits as drawn: iptables' tables in their rows, then other tables, the last extra row for the rest."""
    own = [visit for visit in at_hook if visit.table in HOOK_TABLES[hook]]
    extras = [visit for visit in at_hook if visit.table not in HOOK_TABLES[hook]]
    if len(extras) > EXTRA_ROWS:
        rest = extras[EXTRA_ROWS - 1 :]
        steps = tuple(sorted(step for visit in rest for step in visit.steps))
        verdict = next((visit.verdict for visit in rest if visit.verdict), None)
        extras = [*extras[: EXTRA_ROWS - 1], Visit(hook, f"+{len(rest)} more", steps, verdict)]
    return [*own, *extras]


def _overlay(record: PacketRecord) -> tuple[str, int, str]:
    """What one packet adds to the base drawing, the height it needs, and its path in words."""
    found = visits(record)
    edges = _edges(record)
    parts = [f'<path {LOOKS["edge-on"]} d="{EDGES[edge]}" marker-end="url(#tl-arrow-on)"/>' for edge in edges]
    parts.extend(_ends(record, edges))
    height = BOTTOM + HEAD + CELL * len(HOOK_TABLES[OUTPUT]) + 8
    words: list[str] = []
    for hook, tables in HOOK_TABLES.items():
        drawn = _shown_visits(hook, [visit for visit in found if visit.hook == hook])
        if not drawn:
            continue
        x, y = HOOK_PLACES[hook]
        parts.append(_head(hook, on=True))
        extra_rows = [visit.table for visit in drawn if visit.table not in tables]
        height = max(height, y + HEAD + CELL * (len(tables) + len(extra_rows)) + 8)
        spoken = []
        for visit in drawn:
            own = visit.table in tables
            row = tables.index(visit.table) if own else len(tables) + extra_rows.index(visit.table)
            top = y + HEAD + row * CELL
            state = _verdict_class(visit.verdict) if visit.verdict else "on"
            target = visit.verdict or visit.nat
            note = step_ranges(visit.steps) + (f" {target}" if target else "")
            dashed = "" if own else ' stroke-dasharray="3 2"'
            parts.append(
                f'<rect {LOOKS["cell-" + state]}{dashed} x="{x}" y="{top}"'
                f' width="{BOX}" height="{CELL}"><title>{_text(visit.table)}: steps {_text(note)}</title></rect>'
                f'<text {LOOKS["label-on"]} x="{x + 8}" y="{top + 13}">{_text(_short(visit.table))}</text>'
                f"<text {LOOKS['steps-' + ('other' if visit.nat and not visit.verdict else state)]}"
                f' x="{x + BOX - 6}" y="{top + 13}">{_text(_short(note, 16))}</text>'
            )
            if visit.verdict in TERMINAL_VERDICTS:
                parts.append(f'<text {LOOKS["drop-mark"]} x="{x + BOX + 3}" y="{top + 14}">✕</text>')
            spoken.append(f"{visit.table} {note}")
        words.append(f"{hook}: {', '.join(spoken)}")
    return "".join(parts), height, "; ".join(words) or "no hook known"


def packet_diagram(record: PacketRecord) -> str:
    """One packet's diagram for a page that holds `base_defs` once: an `<svg>` using the base drawing.

    Nothing in it is particular to the packet's number, so packets that took
    the same path have the same text.
    """
    overlay, height, words = _overlay(record)
    return (
        f'<svg class="hooks" viewBox="0 0 {WIDTH} {height}" {FONT} role="img"><title>Path: {_text(words)}</title>'
        f'<use href="#tl-hooks"/>{overlay}</svg>'
    )


def _lines(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width, break_on_hyphens=False) or [""]


def _text_lines(record: PacketRecord) -> list[tuple[str, str]]:
    """The steps, NAT rewrites and ending of a standalone diagram, wrapped, each line with its look."""
    lines: list[tuple[str, str]] = [
        (line, "line-other") for phrase in nat_rewrites(record) for line in _lines(f"NAT {phrase}", TEXT_CHARS)
    ]
    decided = record.get("verdict_step")
    verdict = record["verdict"]
    for row in timeline_rows(record):
        place = "  ".join(part for part in (f"{row.number:>2}", row.hook_shown, row.place, row.position) if part)
        changes = " ".join(text for text, _ in row.changes)
        lines.extend((line, "line") for line in _lines(f"{place}  {changes}".rstrip(), TEXT_CHARS))
        look = f"line-{_verdict_class(verdict)}" if verdict and row.number == decided else "line"
        lines.extend((f"      {line}", look) for line in _lines(row.decision, TEXT_CHARS - 6) if row.decision)
    ending_look = f"line-{_verdict_class(verdict)}" if verdict else "line"
    lines.extend((line, ending_look) for line in _lines(ending_text(record), TEXT_CHARS))
    return lines


def packet_svg(record: PacketRecord) -> str:
    """One packet as a standalone SVG document, for docs and chats: its title, the diagram, its steps and its end."""
    overlay, height, words = _overlay(record)
    title = f"#{record['packet']} {describe(record)}  flow {record['flow']}"
    head = _lines(escape_controls(title), TITLE_CHARS)
    body = [f'<text {LOOKS["title"]} x="8" y="{18 + 17 * row}">{_text(line)}</text>' for row, line in enumerate(head)]
    top = 8 + 17 * len(head)
    below = top + height
    lines = _text_lines(record)
    for row, (line, look) in enumerate(lines):
        body.append(
            f'<text {LOOKS[look]} {MONO} xml:space="preserve" x="8" y="{below + 14 * row + 4}">{_text(line)}</text>'
        )
    total = below + 14 * len(lines) + 10
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'
        f' viewBox="0 0 {WIDTH} {total}" width="{WIDTH}" height="{total}" {FONT} role="img">'
        f"<title>Path: {_text(words)}</title>{base_defs()}"
        f'<rect x="0" y="0" width="{WIDTH}" height="{total}" fill="#ffffff"/>'
        f"{''.join(body)}"
        f'<g transform="translate(0 {top})"><use href="#tl-hooks" xlink:href="#tl-hooks"/>{overlay}</g></svg>\n'
    )
