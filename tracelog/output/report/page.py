"""The report page: one self-contained HTML file with the summary on top and every packet's path below.

The page is written in one pass over the records, in bounded memory: each
packet is encoded as it comes (a compact JSON array whose repeated texts,
such as rule text and diagrams, are stored once in a table of strings) into
a spool file, while `Summary` collects the summary's small per-packet rows.
At the end the head, the answer and the summary tables are written as plain
HTML, then the spooled packets, then the script that draws them.  The spool
costs one sequential copy, and buys a page in reading order: the summary is
HTML that reads, prints and opens without the script, and nothing has to be
moved into place at load.

The script draws packets only as they are scrolled to, so a page of tens of
thousands of packets opens in seconds; nothing is loaded from outside (a
Content-Security-Policy forbids it, with the inline script and style allowed
by their hashes only).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import shutil
import tempfile
from collections.abc import Iterable
from functools import cache
from html import escape
from importlib import resources
from typing import IO, TYPE_CHECKING, Any, TextIO

from tracelog import __version__
from tracelog.analyse import Summary
from tracelog.output.redact import Redactor
from tracelog.output.report.diagram import base_defs, packet_diagram
from tracelog.output.timeline import describe, ending, nat_rewrites, timeline_rows
from tracelog.records.packet import TERMINAL_VERDICTS, PacketRecord, step_names
from tracelog.ruleset import FINAL_TARGETS
from tracelog.wording import escape_controls, plural

if TYPE_CHECKING:
    import pandas as pd

CHUNK_PACKETS = 256
SPOOL_IN_MEMORY = 4 << 20
STRINGS_REMEMBERED = 1 << 17  # past this many distinct texts, new ones are stored again when repeated
SUMMARY_ROWS = 20
_CHANGE_KINDS = {"interface": 0, "nat": 1, "ttl": 2}
_DECISION_KINDS = {"": 0, "mismatch": 1, "note": 2}
# the columns `tracelog summary` prints, in its order
_FLOW_COLUMNS = ["flow", "proto", "client", "server", "requests", "replies", "path", "verdict", "verdict_place"]
_DROP_COLUMNS = ["packets", "flows", "verdict", "verdict_place", "verdict_rule", "example"]
_RULE_COLUMNS = ["hits", "table", "chain", "kind", "number", "verdict", "rule"]
_NUMERIC = frozenset({"flow", "requests", "replies", "packets", "flows", "hits", "number"})
_MONOSPACE = frozenset({"rule", "verdict_rule", "path"})


def safe_text(text: str) -> str:
    """Log text as a page may hold it: controls shown as escapes, and nothing a UTF-8 file cannot carry."""
    text = escape_controls(text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, from a names file or a caller's record
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _script_json(value: object) -> str:
    """JSON for a `<script type="application/json">`: no `<` that could end the element or open a comment."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class _Strings:
    """The page's table of texts: each text once, referred to by its index."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.count = 0
        self.fresh: list[str] = []

    def ref(self, text: str) -> int:
        found = self.index.get(text)
        if found is not None:
            return found
        number = self.count
        self.count += 1
        self.fresh.append(safe_text(text))
        if len(self.index) < STRINGS_REMEMBERED:
            self.index[text] = number
        return number

    def take_fresh(self) -> list[str]:
        fresh, self.fresh = self.fresh, []
        return fresh


class _PacketEncoder:
    """Packets as the page's script reads them: arrays of numbers and references into the strings."""

    def __init__(self) -> None:
        self.strings = _Strings()
        self.flow_clients: dict[int, str] = {}
        self.first_drops: dict[str, int] = {}

    def encode(self, record: PacketRecord) -> list[Any]:
        ref = self.strings.ref
        client = self.flow_clients.setdefault(record["flow"], record["src"])
        if record["verdict_at"] and record["verdict_at"] not in self.first_drops:
            self.first_drops[record["verdict_at"]] = record["packet"]
        label, rest = ending(record)
        names = {record["src_name"], record["dst_name"], record["endpoint_name"]}
        addresses = {record["src"], record["dst"]}
        steps = []
        for row, step in zip(timeline_rows(record), record["steps"], strict=True):
            names.update(step_names(step))
            addresses.update((step["src"], step["dst"]))
            changes = [value for text, kind in row.changes for value in (ref(text), _CHANGE_KINDS[kind])]
            steps.append(
                [
                    row.elapsed.removeprefix("+").removesuffix("ms"),
                    ref(row.hook or ""),
                    ref(row.place),
                    ref(row.position),
                    changes,
                    ref(row.decision) if row.decision else -1,
                    _DECISION_KINDS[row.decision_kind],
                ]
            )
        verdict = record["verdict"]
        return [
            record["packet"],
            record["flow"],
            0 if record["src"] == client else 1,
            safe_text(describe(record)),
            ref(record["host"]) if record["host"] else -1,
            safe_text(verdict) if verdict else None,
            record["verdict_step"] or 0,
            ref(label),
            ref(rest),
            ref(packet_diagram(record)),
            sorted(ref(name) for name in names if isinstance(name, str)),
            sorted(ref(address) for address in addresses if isinstance(address, str)),
            steps,
            [ref(phrase) for phrase in nat_rewrites(record)],
        ]


@cache
def _asset(name: str) -> str:
    return resources.files("tracelog.output.report").joinpath(name).read_text(encoding="utf-8")


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def _cell(value: object) -> str:
    """A summary cell: pandas' missing values empty, numpy numbers as plain numbers."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    item = getattr(value, "item", None)
    if callable(item):
        value = item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _verdict_look(verdict: str) -> str:
    """The look of a verdict: dropped, accepted, another final verdict (NAT, a queue), or passing on (a jump)."""
    if verdict in TERMINAL_VERDICTS:
        return "v-drop"
    if verdict == "ACCEPT":
        return "v-accept"
    return "v-final" if verdict in FINAL_TARGETS else "v-pass"


def _table(
    caption: str, frame: pd.DataFrame, columns: list[str], links: dict[str, str], table_id: str, first: dict[str, int]
) -> str:
    """One summary table, its first rows, with links to the flows and packets they name."""
    head = "".join(f'<th scope="col">{escape(column.replace("_", " "))}</th>' for column in columns)
    rows = []
    for record in frame.head(SUMMARY_ROWS).to_dict("records"):
        cells = []
        for column in columns:
            text = escape(safe_text(_cell(record.get(column))))
            classes = " ".join(name for name, on in (("num", column in _NUMERIC), ("mono", column in _MONOSPACE)) if on)
            if column in links and text:
                target = links[column].format(text=text, first=first.get(str(record.get("verdict_at")), ""))
                text = f'<a href="{target}">{text}</a>'
            if column == "verdict" and text:
                text = f'<span class="verdict {_verdict_look(str(record.get(column)))}">{text}</span>'
            cells.append(f'<td class="{classes}">{text}</td>' if classes else f"<td>{text}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    more = len(frame) - SUMMARY_ROWS
    note = f'<p class="more-rows">and {plural(more, "more row")}</p>' if more > 0 else ""
    return (
        f'<div class="table-wrap"><table class="summary" id="{table_id}"><caption>{escape(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>{note}"
    )


def _summary_html(summary: Summary, encoder: _PacketEncoder) -> tuple[str, list[list[Any]]]:
    """The answer and the summary tables as HTML, and each flow's heading for the script."""
    report = summary.report()
    first = encoder.first_drops
    tables = [
        _table("Flows", report.flows, _FLOW_COLUMNS, {"flow": "#flow-{text}"}, "flows", first),
    ]
    if not report.drops.empty:
        first_links = {"packets": "#packet-{first}"}
        tables.append(_table("Drops by rule", report.drops, _DROP_COLUMNS, first_links, "drops", first))
    tables.append(_table("Rules hit most", report.rules, _RULE_COLUMNS, {}, "rules", first))
    packets = len(report.packets)
    flows = len(report.flows)
    dropped = int(report.packets["verdict"].isin(("DROP", "REJECT")).sum()) if packets else 0
    facts = f"{plural(packets, 'packet')} in {plural(flows, 'flow')}, {dropped} dropped or rejected"
    html = (
        '<section id="answer" aria-labelledby="answer-title"><h2 id="answer-title">What the trace shows</h2>'
        f'<p class="answer">{escape(safe_text(report.answer))}</p><p class="facts">{escape(facts)}</p></section>'
        '<section id="summary" aria-labelledby="summary-title"><h2 id="summary-title">Summary</h2>'
        f"{''.join(tables)}</section>"
    )
    flow_heads = [
        [
            _plain_int(row["flow"]),
            safe_text(_cell(row["proto"])),
            safe_text(_cell(row["client"])),
            safe_text(_cell(row["server"])),
            _plain_int(row["requests"]),
            _plain_int(row["replies"]),
            safe_text(_cell(row["verdict"])),
        ]
        for row in report.flows.to_dict("records")
    ]
    return html, flow_heads


def _plain_int(value: object) -> int:
    return int(_cell(value) or 0)


_FILTERS = """
<form id="filters" class="filters" role="search" aria-label="Filter packets">
<label>Container<select id="f-name"><option value="">any</option></select></label>
<label>Address<input id="f-address" type="search" placeholder="all or part of one" autocomplete="off"></label>
<label>Verdict<select id="f-verdict"><option value="">any</option></select></label>
<label>Chain<select id="f-chain"><option value="">any</option></select></label>
<label class="wide">Rule text<input id="f-rule" type="search" placeholder="e.g. --dport 80 -j DROP"
 autocomplete="off"></label>
<label class="check"><input id="f-flows" type="checkbox" checked> Side by side per flow</label>
<label class="check"><input id="f-diagrams" type="checkbox" checked> Diagrams</label>
<output id="f-count" aria-live="polite"></output>
</form>
<p class="keys">Keys: <kbd>j</kbd> / <kbd>k</kbd> next / previous packet, <kbd>/</kbd> search rule text,
<kbd>Esc</kbd> leave a field.</p>
"""


def write_page(
    records: Iterable[PacketRecord],
    out: TextIO,
    *,
    title: str = "tracelog report",
    redact: bool = False,
    redactor: Redactor | None = None,
) -> None:
    """Write the report page of `records` (packet records, as `tracelog.read_packets` yields them) to `out`.

    `redact` replaces addresses, MACs, host and container names as
    `tracelog.output.redact` describes (the title too), with `redactor` if
    given (one that knows the names beforehand).
    """
    if redact:
        redactor = redactor or Redactor()
        title = redactor.text(title)
    summary = Summary()
    encoder = _PacketEncoder()
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY, mode="w+", encoding="utf-8") as spool:
        batch: list[list[Any]] = []
        for record in records:
            shown = redactor.record(record) if redact and redactor else record
            summary.add(shown)
            batch.append(encoder.encode(shown))
            if len(batch) >= CHUNK_PACKETS:
                _write_chunk(spool, encoder.strings.take_fresh(), batch)
                batch = []
        if batch or encoder.strings.fresh:
            _write_chunk(spool, encoder.strings.take_fresh(), batch)
        summary_html, flow_heads = _summary_html(summary, encoder)
        _write_head(out, safe_text(title), len(summary.packets), len(flow_heads), redact)
        out.write(summary_html)
        out.write(
            '<section id="packets" aria-labelledby="packets-title"><h2 id="packets-title">Packets</h2>'
            f"{_FILTERS}"
            '<div id="list"></div><div id="more" class="more"><button type="button" id="more-button">'
            "Show more packets</button></div>"
            "<noscript><p>The packets are drawn by this page's own script, which is turned off. "
            "The summary above reads without it.</p></noscript></section></main>"
        )
        out.write(f'<svg class="hooks defs" aria-hidden="true" focusable="false">{base_defs()}</svg>')
        spool.seek(0)
        shutil.copyfileobj(spool, out)
    out.write(f'<script type="application/json" class="tl-data">{_script_json({"flows": flow_heads})}</script>\n')
    out.write(f"<script>{_asset('page.js')}</script>\n</body>\n</html>\n")
    out.flush()


def _write_chunk(spool: IO[str], strings: list[str], packets: list[list[Any]]) -> None:
    spool.write(f'<script type="application/json" class="tl-data">{_script_json({"s": strings, "p": packets})}')
    spool.write("</script>\n")


def _write_head(out: TextIO, title: str, packets: int, flows: int, redact: bool) -> None:
    style, script = _asset("page.css"), _asset("page.js")
    policy = (
        f"default-src 'none'; style-src {_hash(style)}; script-src {_hash(script)}; img-src data:;"
        " base-uri 'none'; form-action 'none'"
    )
    made = f"{plural(packets, 'packet')} in {plural(flows, 'flow')} · tracelog {__version__}"
    if redact:
        made += " · redacted: addresses, MACs, host and container names replaced"
    out.write(
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light">'
        '<link rel="icon" href="data:,">'
        f"<title>{escape(title)}</title><style>{style}</style></head>\n"
        '<body><a class="skip" href="#packets">Skip to the packets</a>'
        f'<header class="page-head"><h1>{escape(title)}</h1><p class="made">{escape(made)}</p></header>'
        "<main>"
    )
