"""Ruleset snapshots as `nft -a list ruleset` prints them, and what an nft trace step refers to in one.

`nft monitor trace` names a rule by its handle (under `nft -a`) and prints
its statements, but, up to nftables 1.0.x, not its comment.  The snapshot
has both: a step gets the rule text with its comment from the rule of the
same handle, or, without a handle, from the one rule of its chain that reads
alike.  The elements of sets and maps are kept with their comments, which is
where kube-proxy's nftables mode names a service without endpoints.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

from lark import Token, Transformer, UnexpectedInput

from tracelog.errors import InputError
from tracelog.events import TraceEvent
from tracelog.parse.grammar import load_parser
from tracelog.parse.nftmonitor import stateless_rule

NFT_HINT = "give nft list ruleset output (nft -a list ruleset for handles)"
# a rule's comment, as nft prints it last: `… comment "text"`
_COMMENT = re.compile(r'\s+comment\s+"[^"\\]*(?:\\.[^"\\]*)*"$')
# xtables-monitor steps carry iptables syntax, which an nft snapshot does not explain
_IPTABLES_SYNTAX = ("-4 ", "-6 ", "-A ")


class NftRule(NamedTuple):
    """One rule of a chain: its handle (`nft -a`) and its text, without live state or handle."""

    handle: int | None
    text: str

    @property
    def statements(self) -> str:
        """The rule without its comment: what `nft monitor trace` prints of it."""
        return _COMMENT.sub("", self.text)


class NftElement(NamedTuple):
    """One element of a set or map: its key, its value (maps) and its comment, as printed."""

    key: str
    value: str | None = None
    comment: str | None = None


class NftChain(NamedTuple):
    """A chain with its rules in order."""

    name: str
    rules: tuple[NftRule, ...]


class NftSet(NamedTuple):
    """A named set or map and its elements."""

    name: str
    kind: str
    elements: tuple[NftElement, ...]


class NftTable(NamedTuple):
    """One table: its family, name, chains and sets by name."""

    family: str
    name: str
    chains: Mapping[str, NftChain]
    sets: Mapping[str, NftSet]


@dataclass(frozen=True, slots=True)
class NftRuleset:
    """One `nft list ruleset` snapshot: (family, table name) → `NftTable`."""

    source: str
    tables: Mapping[tuple[str, str], NftTable]

    def element_comments(self, family: str, table: str, name: str) -> dict[str, str]:
        """Key → comment of the elements of one set or map that carry a comment."""
        found = self.tables.get((family, table))
        elements = found.sets[name].elements if found is not None and name in found.sets else ()
        return {element.key: element.comment for element in elements if element.comment is not None}

    def annotate(self, event: TraceEvent) -> TraceEvent:
        """An nft trace step with its rule as the snapshot has it (comment included), or a mismatch saying why not.

        Steps read from xtables-monitor (iptables syntax) and steps the
        snapshot has no table for are left as they are.
        """
        if event.nf_family is None or event.kind != "rule" or (event.rule or "").startswith(_IPTABLES_SYNTAX):
            return event
        table = self.tables.get((event.nf_family, event.table))
        if table is None:
            return event
        chain = table.chains.get(event.chain)
        if chain is None:
            return event._replace(
                mismatch=f"chain {event.nf_family} {event.table} {event.chain} is not in {self.source}"
            )
        if event.handle is not None:
            return self._by_handle(event, chain, int(event.handle, 0))
        alike = [rule for rule in chain.rules if rule.statements == event.rule]
        return event._replace(rule=alike[0].text) if len(alike) == 1 else event

    def _by_handle(self, event: TraceEvent, chain: NftChain, handle: int) -> TraceEvent:
        rule = next((rule for rule in chain.rules if rule.handle == handle), None)
        where = f"{event.nf_family} {event.table} {chain.name}"
        if rule is None:
            return event._replace(mismatch=f"{where} has no rule with handle {handle} in {self.source}")
        if event.rule is not None and event.rule != rule.statements:
            return event._replace(mismatch=f"rule handle {handle} of {where} reads otherwise in {self.source}")
        return event._replace(rule=rule.text)


def is_nft_ruleset(text: str) -> bool:
    """Whether snapshot text is `nft list ruleset` output: its first line that says something opens a table."""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return stripped.startswith("table ")
    return False


class _RulesetTransformer(Transformer[Token, Any]):
    """Turns one line into a small tagged tuple."""

    def top(self, children: list[Token]) -> tuple[str, str, str]:
        return ("table", str(children[1]), str(children[2]))

    def table_line(self, children: list[Any]) -> tuple[Any, ...]:
        return children[0] if isinstance(children[0], tuple) else _token_line(children[0])

    def block(self, children: list[Token]) -> tuple[str, str, str]:
        return ("block", str(children[0]), _name(children[1]))

    def chain_line(self, children: list[Any]) -> tuple[Any, ...]:
        return children[0] if isinstance(children[0], tuple) else _token_line(children[0])

    def rule(self, children: list[Token]) -> tuple[str, int | None, str]:
        handle = int(children[1].split()[-1]) if len(children) > 1 else None
        return ("rule", handle, stateless_rule(str(children[0])).strip())

    def set_line(self, children: list[Any]) -> tuple[Any, ...]:
        return children[0] if isinstance(children[0], tuple) else _token_line(children[0])

    def elements(self, children: list[NftElement]) -> tuple[str, tuple[NftElement, ...]]:
        return ("elements", tuple(children))

    def element(self, children: list[tuple[str, str]]) -> NftElement:
        parts = dict(children)
        return NftElement(parts["key"], parts.get("value"), parts.get("comment"))

    def key(self, children: list[Token]) -> tuple[str, str]:
        return ("key", " ".join(children))

    def value(self, children: list[Token]) -> tuple[str, str]:
        return ("value", " ".join(children))

    def element_comment(self, children: list[Token]) -> tuple[str, str]:
        return ("comment", _unquote(str(children[1])))

    def other_line(self, children: list[Token]) -> tuple[str, ...]:
        return _token_line(children[0])


def _token_line(token: Token) -> tuple[str, ...]:
    """A line that is one terminal: a block's end, a comment, a property."""
    if token.type == "CLOSE":
        return ("close",)
    return ("other", str(token))


def _name(token: Token) -> str:
    text = str(token)
    return text[1:-1] if text.startswith('"') else text


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


_TRANSFORMER = _RulesetTransformer()


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Each line with its 1-based number; an `elements = {` list wrapped over several lines as one line."""
    pending: tuple[int, str] | None = None
    for number, ended in enumerate(text.removesuffix("\n").split("\n"), start=1):
        line = ended.removesuffix("\r").strip()
        if pending is not None:
            pending = (pending[0], f"{pending[1]} {line}")
        elif line.startswith("elements"):
            pending = (number, line)
        elif line:
            yield number, line
        if pending is not None and _braces_closed(pending[1]):
            yield pending
            pending = None
    if pending is not None:
        yield pending


def _braces_closed(text: str) -> bool:
    """Whether every `{` outside quotes has its `}`."""
    depth = 0
    for piece in re.sub(r'"[^"\\]*(?:\\.[^"\\]*)*"', "", text):
        depth += piece == "{"
        depth -= piece == "}"
    return depth <= 0


@dataclass
class _Reading:
    """The tables read so far, and the table and block open at this line with what they hold yet."""

    tables: dict[tuple[str, str], NftTable]
    table: tuple[str, str] | None = None
    chains: dict[str, NftChain] | None = None
    sets: dict[str, NftSet] | None = None
    block: tuple[str, str] | None = None  # kind, name
    rules: list[NftRule] | None = None
    elements: list[NftElement] | None = None


_STARTS = ("top", "table_line", "chain_line", "set_line", "other_line")
_START = {"top": "top", "table": "table_line", "chain": "chain_line", "set": "set_line", "map": "set_line"}


def parse_nft_ruleset(text: str, source: str) -> NftRuleset:
    """Parse one `nft list ruleset` snapshot; a line it cannot read is an `InputError` naming file, line and column."""
    parser = load_parser("nft_ruleset", _STARTS, _TRANSFORMER)
    reading = _Reading({})
    for number, line in logical_lines(text):
        if line.startswith("#"):
            continue
        context = "top" if reading.table is None else "table" if reading.block is None else reading.block[0]
        try:
            tagged = cast(tuple[Any, ...], parser.parse(line, start=_START.get(context, "other_line")))
        except UnexpectedInput as error:
            raise InputError(
                f"{source}:{number}:{error.column}: not an nft list ruleset line: {line[:60]}", hint=NFT_HINT
            ) from None
        _read_line(reading, tagged)
    if reading.table is not None:
        raise InputError(f"{source}: ends inside table {' '.join(reading.table)}", hint=NFT_HINT)
    return NftRuleset(source, reading.tables)


def _read_line(reading: _Reading, tagged: tuple[Any, ...]) -> None:
    kind = tagged[0]
    if kind == "table":
        reading.table, reading.chains, reading.sets = (tagged[1], tagged[2]), {}, {}
    elif kind == "block":
        reading.block, reading.rules, reading.elements = (tagged[1], tagged[2]), [], []
    elif kind == "rule" and reading.rules is not None:
        reading.rules.append(NftRule(tagged[1], tagged[2]))
    elif kind == "elements" and reading.elements is not None:
        reading.elements.extend(tagged[1])
    elif kind == "close":
        _close(reading)


def _close(reading: _Reading) -> None:
    """A `}`: the end of the open block, or of the table."""
    if reading.block is None:
        if reading.table is not None:
            family, name = reading.table
            reading.tables[reading.table] = NftTable(family, name, reading.chains or {}, reading.sets or {})
        reading.table = None
        return
    kind, name = reading.block
    if kind == "chain" and reading.chains is not None:
        reading.chains[name] = NftChain(name, tuple(reading.rules or ()))
    elif kind in ("set", "map") and reading.sets is not None:
        reading.sets[name] = NftSet(name, kind, tuple(reading.elements or ()))
    reading.block, reading.rules, reading.elements = None, None, None
