"""Ruleset snapshots (iptables-save output) and what a legacy TRACE step refers to in one.

A legacy step names `table:chain:kind:N`, a position, not a rule.  With the
snapshot taken while tracing, the position becomes the rule text and what it
decided, following the kernel's numbering (docs/netfilter.md, "The legacy line"): a
`return`/`policy` step is either the implicit end of the chain (N = rules + 1)
or an unconditional verdict rule at N.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from lark import Token, Transformer, UnexpectedInput

from tracelog.errors import InputError, UsageError
from tracelog.events import Family, TraceEvent
from tracelog.netfilter import BUILTIN_CHAINS
from tracelog.nft_ruleset import NftRuleset, is_nft_ruleset, parse_nft_ruleset
from tracelog.parse.grammar import load_parser
from tracelog.sources import read_side_file

# Targets after which the packet leaves the table for good.
FINAL_TARGETS = frozenset(
    {"ACCEPT", "DROP", "REJECT", "DNAT", "SNAT", "MASQUERADE", "REDIRECT", "NETMAP", "QUEUE", "NFQUEUE"}
)
# Standard verdicts: what an unconditional rule printed as `return`/`policy` can hold.
_STANDARD = frozenset({"ACCEPT", "DROP", "RETURN", "QUEUE"})
_TARGET_OPTIONS = frozenset({"-j", "--jump", "-g", "--goto"})


def _quote(arg: str) -> str:
    """iptables-save quotes arguments with blanks (comments) in double quotes."""
    if arg and not any(char.isspace() or char == '"' for char in arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class Rule:
    """One `-A CHAIN …` line: its 1-based number in the chain and its arguments."""

    chain: str
    number: int
    args: tuple[str, ...]

    @property
    def text(self) -> str:
        """The rule as iptables-save prints it."""
        return " ".join(_quote(arg) for arg in ("-A", self.chain, *self.args))

    def _target_index(self) -> int | None:
        indexes = [i for i, arg in enumerate(self.args) if arg in _TARGET_OPTIONS and i + 1 < len(self.args)]
        return indexes[-1] if indexes else None

    @property
    def target(self) -> str | None:
        index = self._target_index()
        return None if index is None else self.args[index + 1]

    @property
    def unconditional(self) -> bool:
        """No match at all before the target: what the kernel calls unconditional."""
        return self._target_index() == 0

    def verdict(self, user_chains: Iterable[str]) -> str:
        """What this rule decides when it matches: a target, `JUMP:x`/`GOTO:x`, or CONTINUE."""
        index = self._target_index()
        if index is None:
            return "CONTINUE"
        target = self.args[index + 1]
        if target in user_chains:
            return f"{'GOTO' if self.args[index] in ('-g', '--goto') else 'JUMP'}:{target}"
        return target


@dataclass(frozen=True, slots=True)
class Chain:
    """A chain with its policy (None for user chains) and its rules in order."""

    name: str
    policy: str | None
    rules: tuple[Rule, ...]


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a step refers to: the rule text and verdict, or why the snapshot does not fit."""

    rule: str | None = None
    verdict: str | None = None
    mismatch: str | None = None


@dataclass(frozen=True, slots=True)
class Ruleset:
    """One family's snapshot: table → chain → `Chain`."""

    family: Family | None
    source: str
    tables: Mapping[str, Mapping[str, Chain]]

    def resolve(self, table: str, chain: str, kind: str, number: int) -> Resolution:
        """The rule and verdict behind `table:chain:kind:number`."""
        chains = self.tables.get(table)
        if chains is None:
            return Resolution(mismatch=f"table {table} is not in {self.source}")
        found = chains.get(chain)
        if found is None:
            return Resolution(mismatch=f"chain {table}:{chain} is not in {self.source}")
        rules = found.rules
        if kind == "rule":
            if number > len(rules):
                return Resolution(mismatch=f"{table}:{chain} has {len(rules)} rules in {self.source}, not {number}")
            rule = rules[number - 1]
            if rule.unconditional and rule.target in _STANDARD:
                # the kernel prints such a rule as return/policy, never as rule
                return Resolution(
                    mismatch=f"{table}:{chain} rule {number} in {self.source} would print as "
                    f"{'policy' if chain in BUILTIN_CHAINS else 'return'}: stale snapshot?"
                )
            return Resolution(rule.text, rule.verdict(chains))
        return self._chain_end(found, table, kind, number)

    def _chain_end(self, chain: Chain, table: str, kind: str, number: int) -> Resolution:
        builtin = chain.name in BUILTIN_CHAINS
        if (kind == "policy") != builtin:
            which = "built-in" if builtin else "user"
            return Resolution(mismatch=f"a {kind} step in {which} chain {table}:{chain.name}")
        if number == len(chain.rules) + 1:
            return Resolution(verdict=chain.policy if builtin else "RETURN")
        if number <= len(chain.rules):
            rule = chain.rules[number - 1]
            if rule.unconditional and rule.target in _STANDARD:
                return Resolution(rule.text, rule.target)
        return Resolution(mismatch=f"{table}:{chain.name} {kind} {number} fits no rule in {self.source}")


class _SaveTransformer(Transformer[Token, Any]):
    """Turns one snapshot line into a small tagged tuple."""

    def comment(self, children: list[Token]) -> tuple[str, str]:
        return ("comment", str(children[0]))

    def table(self, children: list[Token]) -> tuple[str, str]:
        return ("table", str(children[0]))

    def chain(self, children: list[Token]) -> tuple[str, str, str]:
        return ("chain", str(children[0]), str(children[1]))

    def rule(self, children: list[Token]) -> tuple[str, str, tuple[str, ...]]:
        words = [child for child in children if child.type != "COUNTERS"]
        args = tuple(_unquoted(word) if word.type == "QUOTED" else str(word) for word in words[1:])
        return ("rule", str(words[0]), args)

    def commit(self, children: list[Token]) -> tuple[str]:
        return ("commit",)


_TRANSFORMER = _SaveTransformer()
_ESCAPED = re.compile(r'\\(["\\])')


def _unquoted(word: str) -> str:
    """An argument iptables-save double-quoted, as the shell reads it: a backslash escapes a quote or a backslash.

    In time linear in its length: shlex builds a word a character at a time,
    which grows with the square of a long comment's length.
    """
    return _ESCAPED.sub(r"\1", word[1:-1])


def _family(comments: list[str], rules: Iterable[Rule]) -> Family | None:
    """ip6tables-save says so in its header; without one, addresses tell."""
    for comment in comments:
        if "ip6tables" in comment:
            return "ipv6"
        if "iptables" in comment:
            return "ipv4"
    for rule in rules:
        for option, value in zip(rule.args, rule.args[1:], strict=False):
            if option in ("-s", "-d", "--source", "--destination"):
                return "ipv6" if ":" in value else "ipv4"
    return None


def parse_ruleset(text: str, source: str) -> Ruleset:
    """Parse one snapshot; a line it cannot read is an `InputError` naming file and line.

    A family without tables (`ip6tables-save` on a host without IPv6 rules
    prints nothing) gives a ruleset without tables.
    """
    parser = load_parser("iptables_save", ("line",), _TRANSFORMER)
    comments: list[str] = []
    tables: dict[str, dict[str, list[Any]]] = {}
    current: dict[str, list[Any]] | None = None
    # lines end at "\n" only: a rule comment may hold any other control character
    for number, ended in enumerate(text.removesuffix("\n").split("\n"), start=1):
        line = ended.removesuffix("\r")
        if not line.strip():
            continue
        try:
            kind, *values = cast(tuple[Any, ...], parser.parse(line))
        except UnexpectedInput as error:
            raise InputError(
                f"{source}:{number}:{error.column}: not an iptables-save line: {line.strip()[:60]}",
                hint="give iptables-save or ip6tables-save output",
            ) from None
        if kind == "comment":
            comments.append(values[0])
        elif kind == "table":
            current = tables.setdefault(values[0], {})
        elif current is None:
            raise InputError(f"{source}:{number}: {kind} line before any *table line")
        elif kind == "chain":
            name, policy = values
            current[name] = [None if policy == "-" else policy]
        elif kind == "rule":
            name, args = values
            if name not in current:
                raise InputError(f"{source}:{number}: rule for undeclared chain {name}")
            current[name].append(Rule(name, len(current[name]), args))
    built = {
        table: {name: Chain(name, entries[0], tuple(entries[1:])) for name, entries in chains.items()}
        for table, chains in tables.items()
    }
    rules = (rule for chains in built.values() for chain in chains.values() for rule in chain.rules)
    return Ruleset(_family(comments, rules), source, built)


@dataclass(frozen=True, slots=True)
class Rulesets:
    """The snapshots of one run: iptables-save ones, at most one per family (one without a family serves both),
    and `nft list ruleset` ones, whose tables explain nft trace steps."""

    by_family: Mapping[Family | None, Ruleset]
    nft: tuple[NftRuleset, ...] = ()

    def annotate(self, event: TraceEvent) -> TraceEvent:
        """Fill a legacy step's rule and verdict from the snapshot of its family, an nft step's rule from an nft one."""
        if event.rulenum is None:
            return self._annotate_nft(event)
        if event.verdict is not None:
            return event
        ruleset = self.by_family.get(event.header.family) or self.by_family.get(None)
        if ruleset is None:
            return event
        found = ruleset.resolve(event.table, event.chain, event.kind, event.rulenum)
        return event._replace(rule=found.rule, verdict=found.verdict, mismatch=found.mismatch)

    def _annotate_nft(self, event: TraceEvent) -> TraceEvent:
        """An nft step's rule with its comment, from the first nft snapshot that holds its table."""
        for ruleset in self.nft:
            if (event.nf_family, event.table) in ruleset.tables:
                return ruleset.annotate(event)
        return event


def read_ruleset(path: str) -> Ruleset:
    """Read one iptables-save snapshot file; one that cannot be read or parsed is an `InputError`."""
    text = read_side_file(path).decode("utf-8", "replace")  # no newline translation: see parse_ruleset
    return parse_ruleset(text, path)


def read_rules_file(path: str) -> Ruleset | NftRuleset:
    """Read one snapshot file of either kind, told by its text: iptables-save or `nft list ruleset` output."""
    text = read_side_file(path).decode("utf-8", "replace")
    return parse_nft_ruleset(text, path) if is_nft_ruleset(text) else parse_ruleset(text, path)


def load_rulesets(paths: Iterable[str]) -> Rulesets:
    """Read snapshot files; two iptables-save ones for the same family is a usage error, one without tables
    names nothing."""
    return gather_rulesets(read_rules_file(path) for path in paths)


def gather_rulesets(rulesets: Iterable[Ruleset | NftRuleset]) -> Rulesets:
    """One run's snapshots: iptables-save ones by family (two for the same family is a usage error), nft ones."""
    by_family: dict[Family | None, Ruleset] = {}
    nft: list[NftRuleset] = []
    for ruleset in rulesets:
        if isinstance(ruleset, NftRuleset):
            nft.append(ruleset)
            continue
        if not ruleset.tables:
            continue
        path = ruleset.source
        if ruleset.family in by_family:
            raise UsageError(
                f"two snapshots for {ruleset.family or 'the same family'}: "
                f"{by_family[ruleset.family].source} and {path}"
            )
        by_family[ruleset.family] = ruleset
    return Rulesets(by_family, tuple(nft))
