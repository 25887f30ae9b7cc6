"""The interface both rule backends share, and the read-only tools both are inspected with."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from tracelog.errors import FirewallError, PermissionDenied, TracelogError
from tracelog.events import Family
from tracelog.rules.spec import RuleArgs

BackendName = Literal["legacy", "nft"]
BACKENDS: tuple[BackendName, ...] = ("legacy", "nft")
FAMILIES: tuple[Family, ...] = ("ipv4", "ipv6")
SAVE_TOOLS: dict[BackendName, dict[Family, str]] = {
    "legacy": {"ipv4": "iptables-legacy-save", "ipv6": "ip6tables-legacy-save"},
    "nft": {"ipv4": "iptables-nft-save", "ipv6": "ip6tables-nft-save"},
}
TOOL_TIMEOUT = 30.0

Probe = Callable[[Sequence[str]], str | None]
"""Runs a read-only command: its stdout, or None when it is missing or fails."""


@dataclass(frozen=True, slots=True)
class FoundRule:
    """A TRACE rule found in a raw table, whoever installed it."""

    backend: BackendName
    family: Family
    chain: str
    comment: str | None
    text: str


@dataclass(frozen=True, slots=True)
class TableChange:
    """A table or base chain tracelog caused to exist: removed once empty again, or why it stays."""

    action: Literal["removed", "kept"]
    backend: BackendName
    family: Family
    what: str
    note: str = ""

    def line(self) -> str:
        """`removed  nft    ipv4 chain ip raw OUTPUT  (tracelog created it; empty again)`."""
        text = f"{self.action:<8} {self.backend:<6} {self.family} {self.what}"
        return text + (f"  ({self.note})" if self.note else "")


class RuleBackend(Protocol):
    """Installs and removes single TRACE rules by exact match; never anything else."""

    name: BackendName

    def trace_rules(self, family: Family) -> list[FoundRule]:
        """Every TRACE rule of the family's raw table, tracelog's and others'."""

    def add(self, rule: RuleArgs) -> bool:
        """Append `rule` unless exactly that rule is there already; whether it was added."""

    def delete(self, rule: RuleArgs) -> bool:
        """Delete one rule equal to `rule`; False when there is none (nothing else is touched)."""

    def remove_created_tables(self) -> list[TableChange]:
        """Remove the raw tables and chains tracelog created that are empty again; say what has to stay."""


def read_words(path: Path) -> list[str]:
    """The words of a /proc listing (the legacy tables a family has), none when it cannot be read."""
    try:
        return path.read_text().split()
    except OSError:
        return []


def run_probe(argv: Sequence[str]) -> str | None:
    """The default `Probe`: run a read-only tool with a timeout."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def saved_rulesets(backend: BackendName, probe: Probe = run_probe) -> dict[str, str]:
    """`iptables-save` of both families for one backend, keyed by tool; missing tools are left out."""
    saved = {}
    for tool in SAVE_TOOLS[backend].values():
        text = probe([tool])
        if text is not None:
            saved[tool] = text
    return saved


def refused(what: str, message: str) -> TracelogError:
    """The error for a refused rule change, `PermissionDenied` when the kernel said so."""
    first = message.strip().splitlines()[0] if message.strip() else "no reason given"
    if "ermission denied" in message or "must be root" in message:
        return PermissionDenied(f"{what}: {first}", hint="run as root, or with CAP_NET_ADMIN")
    return FirewallError(f"{what}: {first}")
