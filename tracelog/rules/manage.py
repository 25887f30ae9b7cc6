"""Turning tracing on and off: enable, disable, status and expiry over the backends, with reports.

Rules are found again by their comment tag alone and removed by rebuilding
their exact arguments from it, so no state file is needed and nothing
without the tag is ever touched.  Tables and chains tracelog had to create
for its rules go again once they are empty (see each backend).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from tracelog.errors import PermissionDenied, TracelogError, Unavailable
from tracelog.events import Family
from tracelog.names.docker import inspect_container
from tracelog.rules.backends import BACKENDS, FAMILIES, SAVE_TOOLS, BackendName, FoundRule, RuleBackend, saved_rulesets
from tracelog.rules.detect import Choice, Requested, choose_backend, parse_requested
from tracelog.rules.host import HostFacts, Source, has_net_admin, probe_host, trace_sources
from tracelog.rules.legacy import LegacyBackend, has_raw_table
from tracelog.rules.nft import NftBackend
from tracelog.rules.spec import (
    CHAINS,
    TABLE,
    RuleArgs,
    TraceRequest,
    TraceSpec,
    is_tracelog_comment,
    parse_tag,
    plan_specs,
)
from tracelog.state import (
    KEEP_PER_NAMESPACE,
    MAX_AGE,
    SNAPSHOTS,
    list_snapshots,
    namespace_id,
    prune_snapshots,
    save_snapshot,
    state_dir,
)

Action = Literal["added", "present", "renewed", "removed", "kept"]
PROC_STATUS = Path("/proc/self/status")


@dataclass(frozen=True, slots=True)
class Change:
    """What happened to one rule, for the report and for `watch` to undo."""

    action: Action
    backend: BackendName
    family: Family
    chain: str
    what: str
    note: str = ""
    rule: RuleArgs | None = None

    @classmethod
    def of(cls, action: Action, backend: BackendName, rule: RuleArgs, what: str, note: str = "") -> Change:
        return cls(action, backend, rule.family, rule.chain, what, note, rule)

    def line(self) -> str:
        """`added    nft    ipv4 raw PREROUTING tcp to 172.18.0.3 port 80: -p tcp -d 172.18.0.3/32 …`."""
        text = f"{self.action:<8} {self.backend:<6} {self.family} {TABLE} {self.chain:<10} {self.what}"
        if self.rule is not None:
            text += f": {self.rule.match_text()}"
        return text + (f"  ({self.note})" if self.note else "")


@dataclass(frozen=True, slots=True)
class Installed:
    """A rule carrying a tracelog tag; `spec` is None when this version cannot read the tag."""

    backend: BackendName
    found: FoundRule
    spec: TraceSpec | None

    def rule(self) -> RuleArgs | None:
        """The exact rule tracelog wrote for this tag, or None when it cannot have written one here."""
        if self.spec is None or self.spec.family != self.found.family or self.found.chain not in CHAINS:
            return None
        return self.spec.rule(self.found.chain)


@dataclass(frozen=True, slots=True)
class Survey:
    """The TRACE rules of one backend: tracelog's and everybody else's."""

    installed: list[Installed]
    strays: list[FoundRule]


def utc_now() -> datetime:
    """The wall clock in UTC, the time zone of the kernel's time match."""
    return datetime.now(UTC)


def require_net_admin(status: Path | None = None) -> None:
    """Fail early, in one line, where changing the firewall would fail half-way."""
    try:
        text = (status or PROC_STATUS).read_text()
    except OSError:
        return  # no /proc: let the backend say what it thinks
    if not has_net_admin(text):
        raise PermissionDenied("changing the firewall needs root (CAP_NET_ADMIN)", hint="run it with sudo")


def open_backend(name: BackendName) -> RuleBackend:
    """The backend object; `Unavailable` when its library or tools are missing."""
    return LegacyBackend() if name == "legacy" else NftBackend()


def open_backends(requested: Requested) -> tuple[list[RuleBackend], list[str]]:
    """The backends `disable` and `status` look at: the one asked for, or every one that opens.

    The notes say which backend could not be opened and whether that can
    hide tracelog rules (a legacy raw table without python-iptables).
    """
    names: Sequence[BackendName] = BACKENDS if requested == "auto" else (requested,)
    opened: list[RuleBackend] = []
    notes = []
    for name in names:
        try:
            opened.append(open_backend(name))
        except Unavailable as error:
            if requested != "auto":
                raise
            if name == "nft" or any(has_raw_table(family) for family in FAMILIES):
                notes.append(f"not looking at {name}: {error}")
    return opened, notes


def survey(backend: RuleBackend) -> Survey:
    """Every TRACE rule of both families, sorted into tracelog's and the others."""
    installed, strays = [], []
    for family in FAMILIES:
        for found in backend.trace_rules(family):
            if not is_tracelog_comment(found.comment):
                strays.append(found)
                continue
            try:
                spec: TraceSpec | None = parse_tag(found.comment or "")
            except ValueError:
                spec = None
            installed.append(Installed(backend.name, found, spec))
    return Survey(installed, strays)


def add_rules(backend: RuleBackend, specs: Iterable[TraceSpec], *, renew: bool) -> list[Change]:
    """Add each spec's rules unless exactly there; with `renew`, older rules of the same match are replaced.

    Replacing (add the new, then delete the old by exact match) is how a
    second `enable` with another `--for` or `--limit` updates tracing without
    ever doubling it.
    """
    before = survey(backend).installed
    changes: list[Change] = []
    try:
        for spec in specs:
            for rule in spec.rules():
                changes.append(_add_rule(backend, spec, rule, before, renew))
    except TracelogError:
        # Half a trace is worse than none: take back what this run added, then report the failure.
        remove_rules(backend, [(c.rule, c.what) for c in changes if c.action == "added" and c.rule is not None])
        backend.remove_created_tables()
        raise
    return changes


def _add_rule(backend: RuleBackend, spec: TraceSpec, rule: RuleArgs, before: list[Installed], renew: bool) -> Change:
    if not backend.add(rule):
        return Change.of("present", backend.name, rule, spec.describe())
    replaced = []
    for old in _superseded(before, spec, rule) if renew else []:
        if backend.delete(old.rule):
            replaced.append(old)
    note = "; ".join(f"replaces the rule {old.settings}" for old in replaced)
    return Change.of("renewed" if replaced else "added", backend.name, rule, spec.describe(), note)


@dataclass(frozen=True, slots=True)
class _Older:
    rule: RuleArgs
    settings: str


def _superseded(before: Iterable[Installed], spec: TraceSpec, rule: RuleArgs) -> list[_Older]:
    """tracelog's earlier rules for the same match in the same chain, with other settings."""
    older = []
    for item in before:
        old = item.rule()
        if item.spec is None or old is None:
            continue
        if item.spec.key == spec.key and old.chain == rule.chain and old != rule:
            older.append(_Older(old, _settings_words(item.spec)))
    return older


def _settings_words(spec: TraceSpec) -> str:
    """`until 2026-11-28 05:23:55 UTC, limit 10/second`."""
    until = "without expiry" if spec.stops is None else f"until {spec.stops:%Y-%m-%d %H:%M:%S} UTC"
    return f"{until}, {'no limit' if spec.limit is None else f'limit {spec.limit}'}"


def remove_rules(backend: RuleBackend, rules: Iterable[tuple[RuleArgs, str]]) -> list[Change]:
    """Delete exactly these rules; a rule no longer there is reported, not searched for."""
    return [
        Change.of("removed", backend.name, rule, what)
        if backend.delete(rule)
        else Change.of("kept", backend.name, rule, what, "already gone")
        for rule, what in rules
    ]


def remove_expired(backend: RuleBackend, now: datetime) -> list[Change]:
    """Delete tracelog rules whose time match has run out: the kernel stopped them, this tidies up."""
    expired = [item for item in survey(backend).installed if item.spec is not None and item.spec.expired(now)]
    return _remove_installed(backend, expired)


def remove_all(backend: RuleBackend) -> list[Change]:
    """Delete every rule tracelog installed on this backend, each by exact match."""
    return _remove_installed(backend, survey(backend).installed)


def _remove_installed(backend: RuleBackend, items: Iterable[Installed]) -> list[Change]:
    changes = []
    for item in items:
        rule = item.rule()
        if rule is None or item.spec is None:
            found = item.found
            changes.append(
                Change(
                    "kept",
                    item.backend,
                    found.family,
                    found.chain,
                    found.text,
                    "a tag this tracelog did not write here: left alone",
                )
            )
        elif backend.delete(rule):
            changes.append(Change.of("removed", backend.name, rule, item.spec.describe()))
        else:
            changes.append(
                Change.of(
                    "kept", backend.name, rule, item.spec.describe(), "changed since tracelog wrote it: left alone"
                )
            )
    return changes


# -- enable ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class EnableReport:
    """What `tracelog enable` did and where to read the result."""

    choice: Choice
    specs: list[TraceSpec]
    changes: list[Change]
    expired: list[Change] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    snapshot: Path | None = None
    snapshot_problem: str = ""

    def rule_files(self, backend: BackendName) -> list[Path]:
        """The snapshot files of one backend that hold tables, for `tracelog parse --rules`."""
        if self.snapshot is None:
            return []
        files = (self.snapshot / tool for tool in SAVE_TOOLS[backend].values())
        return [path for path in files if path.is_file() and "\n*" in "\n" + path.read_text()]

    @property
    def added(self) -> list[Change]:
        return [change for change in self.changes if change.action == "added"]

    def lines(self) -> list[str]:
        """The `enable` report, in the order someone starting a trace reads it."""
        lines = self._head()
        for source in self.sources:
            lines += [f"read the trace from {source.what}:", f"    {source.command(self.rule_files(source.backend))}"]
            lines += [f"    it shows {source.shows}"] if source.shows else []
        lines += [
            "or enable, read and clean up in one go: tracelog watch (same options)",
            "stop tracing: tracelog disable",
            self._snapshot_line(),
        ]
        return [line for line in lines if line]

    def watch_lines(self) -> list[str]:
        """The same without the reading hints (`watch` reads the trace itself) but for the reader it does not read."""
        others = [source for source in self.sources if source.backend != self.choice.backend]
        lines = [
            f"this watch does not read {source.what}, which shows {source.shows}: "
            f"{source.command(self.rule_files(source.backend))}"
            for source in others
        ]
        return [line for line in [*self._head(), *lines, self._snapshot_line()] if line]

    def _snapshot_line(self) -> str:
        return f"ruleset snapshot: {self.snapshot}" if self.snapshot else f"warning: {self.snapshot_problem}"

    def _head(self) -> list[str]:
        lines = [f"backend: {self.choice.backend}, because {self.choice.reason}"]
        lines += [change.line() for change in [*self.expired, *self.changes]]
        lines.append(_settings(self.specs))
        lines += [f"warning: {warning}" for warning in self.warnings]
        return lines


def _settings(specs: Sequence[TraceSpec]) -> str:
    spec = specs[0]
    until = (
        "until `tracelog disable` (no expiry)"
        if spec.stops is None
        else (f"until {spec.stops:%Y-%m-%d %H:%M:%S} UTC (the kernel stops matching then)")
    )
    limit = "no rate limit" if spec.limit is None else f"at most {spec.limit} per rule"
    return f"tracing {until}, {limit}"


@dataclass(slots=True)
class Plan:
    """Everything decided before the first rule is written: the host, the backend and the specs."""

    facts: HostFacts
    choice: Choice
    backend: RuleBackend
    specs: list[TraceSpec]

    @property
    def families(self) -> set[Family]:
        return {spec.family for spec in self.specs}


def plan_tracing(request: TraceRequest, requested: str, now: datetime) -> Plan:
    """Resolve the container, check the options and privileges, read the host, choose and open the backend."""
    addresses: Sequence[str] = ()
    if request.container is not None:
        addresses = inspect_container(request.container).addresses
    specs = plan_specs(request, now, addresses)
    require_net_admin()
    facts = probe_host()
    choice = choose_backend(facts.usage, parse_requested(requested))
    return Plan(facts, choice, open_backend(choice.backend), specs)


def enable_tracing(plan: Plan, now: datetime, *, renew: bool = True, warnings: Sequence[str] = ()) -> EnableReport:
    """Tidy expired rules, add the plan's rules, snapshot the ruleset, say where to read the trace.

    `warnings`: what the doctor found that will keep this trace from showing.
    """
    expired = remove_expired(plan.backend, now)
    changes = add_rules(plan.backend, plan.specs, renew=renew)
    snapshot, problem = _snapshot(plan.choice, now)
    return EnableReport(
        choice=plan.choice,
        specs=plan.specs,
        changes=changes,
        expired=expired,
        warnings=list(warnings),
        sources=trace_sources(plan.facts, plan.choice, plan.specs[0].family),
        snapshot=snapshot,
        snapshot_problem=problem,
    )


def _snapshot(choice: Choice, now: datetime) -> tuple[Path | None, str]:
    """Save `iptables-save` of the chosen backend (both when both hold rules); a failure only warns."""
    names: list[BackendName] = list(BACKENDS) if choice.both else [choice.backend]
    rulesets = {tool: text for name in names for tool, text in saved_rulesets(name).items()}
    if not rulesets:
        return None, "no iptables-save tool answered: no ruleset snapshot taken"
    try:
        return save_snapshot(rulesets, now), ""
    except TracelogError as error:
        return None, str(error)


# -- status and disable ---------------------------------------------------------------------------------


def status_lines(requested: str, now: datetime) -> list[str]:
    """`tracelog status`: tidy expired rules, then list tracelog's rules with their time left, and the others."""
    require_net_admin()
    backends, notes = open_backends(parse_requested(requested))
    lines = [f"note: {note}" for note in notes]
    mine: list[str] = []
    strays: list[str] = []
    for backend in backends:
        lines += [change.line() for change in remove_expired(backend, now)]
        lines += [change.line() for change in backend.remove_created_tables()]
        found = survey(backend)
        mine += [_installed_line(item, now) for item in found.installed]
        strays += [f"  {rule.backend:<6} {rule.family} {TABLE} {rule.chain:<10} {rule.text}" for rule in found.strays]
    lines += [f"tracelog rules ({len(mine)}):", *mine] if mine else ["no tracelog rules are installed"]
    if strays:
        lines += [f"TRACE rules tracelog did not install, left alone ({len(strays)}):", *strays]
    return lines + snapshot_lines(now)


def snapshot_lines(now: datetime, directory: Path | None = None) -> list[str]:
    """The ruleset snapshots kept, newest last, after pruning; this namespace's marked."""
    prune_snapshots(directory, now)
    where = (directory or state_dir()) / SNAPSHOTS
    problems: list[str] = []
    snapshots = list_snapshots(directory, warn=problems.append)
    kept = f"the newest {KEEP_PER_NAMESPACE} per network namespace are kept, none older than {MAX_AGE.days} days"
    if not snapshots:
        return [*(f"note: {problem}" for problem in problems), f"no ruleset snapshots in {where} ({kept})"]
    here = namespace_id()
    lines = [f"ruleset snapshots in {where} ({len(snapshots)}; {kept}):"]
    for snapshot in snapshots:
        whose = f"this namespace ({here})" if snapshot.namespace == here else snapshot.namespace
        files = ", ".join(snapshot.files) or "no files"
        lines.append(f"  {snapshot.taken:%Y-%m-%d %H:%M:%S} UTC  {whose}  {snapshot.path.name}: {files}")
    return [*(f"note: {problem}" for problem in problems), *lines]


def _installed_line(item: Installed, now: datetime) -> str:
    found, spec = item.found, item.spec
    prefix = f"  {item.backend:<6} {found.family} {TABLE} {found.chain:<10}"
    if item.rule() is None or spec is None:
        return f"{prefix} {found.text}  (a tag this tracelog did not write here: left alone)"
    limit = "no limit" if spec.limit is None else f"limit {spec.limit}"
    return f"{prefix} {spec.describe()}  {limit}  {time_left(spec.until, now)}"


def time_left(until: datetime | None, now: datetime) -> str:
    """`12m 5s left`, `expired`, or `no expiry`."""
    if until is None:
        return "no expiry"
    seconds = int((until - now).total_seconds()) + 1
    if seconds <= 0:
        return "expired"
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{value}{unit}" for value, unit in ((hours, "h"), (minutes, "m"), (seconds, "s")) if value]
    return " ".join(parts) + " left"


def disable_lines(requested: str) -> list[str]:
    """`tracelog disable`: remove every rule tracelog installed, nothing else."""
    require_net_admin()
    backends, notes = open_backends(parse_requested(requested))
    lines = [f"note: {note}" for note in notes]
    changes: list[Change] = []
    for backend in backends:
        mine = remove_all(backend)
        lines += [change.line() for change in mine]
        # Legacy tables cannot go: that is said when tracelog just emptied one (and always by `status`).
        emptied = any(change.action == "removed" for change in mine)
        lines += [table.line() for table in backend.remove_created_tables() if table.action == "removed" or emptied]
        changes += mine
    prune_snapshots()
    removed = sum(change.action == "removed" for change in changes)
    summary = f"removed {removed} tracelog rule{'s' if removed != 1 else ''}" if changes else "no tracelog rules found"
    return [*lines, summary]
