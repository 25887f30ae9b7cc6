"""The legacy backend: TRACE rules through python-iptables (libiptc), the kernel's x_tables interface.

`iptc` is imported here and only here, when the legacy backend is used, so
`tracelog parse` runs on machines without iptables or python-iptables.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import ip_network
from pathlib import Path
from types import ModuleType
from typing import Any

from tracelog.errors import FirewallError, Unavailable
from tracelog.events import Family
from tracelog.rules.backends import FAMILIES, BackendName, FoundRule, TableChange, read_words, refused
from tracelog.rules.spec import PROTOCOL_NUMBER, TABLE, TARGET, RuleArgs

TABLE_NAMES: dict[Family, Path] = {
    "ipv4": Path("/proc/net/ip_tables_names"),
    "ipv6": Path("/proc/net/ip6_tables_names"),
}
LOCK_WAIT = 10.0
LEFT_EMPTY = (
    "empty; a legacy table cannot be removed from one network namespace, so it stays, and prints "
    "its policy lines into kernel-log traces"
)
_ANY = {"0.0.0.0/0.0.0.0", "::/0", None}


def load_iptc() -> ModuleType:
    """python-iptables, or `Unavailable` naming what is missing."""
    try:
        import iptc  # lazily: only the legacy backend needs libiptc
    except Exception as error:  # XTablesError, OSError or AttributeError when libxtables is absent
        raise Unavailable(
            f"the legacy backend needs python-iptables and the iptables libraries ({error})",
            hint="pip install python-iptables; apt install iptables",
        ) from error
    module: ModuleType = iptc
    return module


@contextmanager
def xtables_lock(wait: float = LOCK_WAIT) -> Iterator[None]:
    """Hold the lock every iptables-legacy command takes, so a concurrent `iptables -A` cannot interleave.

    libiptc replaces the whole table on commit; without the lock, Docker
    adding a rule between our read and our commit would lose its rule.
    """
    path = os.environ.get("XTABLES_LOCKFILE", "/run/xtables.lock")
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    except OSError as error:
        raise FirewallError(f"cannot open the xtables lock {path}: {error.strerror}") from error
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise FirewallError(f"another program holds {path}", hint="try again in a moment") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


class LegacyBackend:
    """TRACE rules in the legacy raw tables, written only through libiptc."""

    name: BackendName = "legacy"

    def __init__(self) -> None:
        self._iptc = load_iptc()

    def trace_rules(self, family: Family) -> list[FoundRule]:
        if not has_raw_table(family):
            return []  # opening it would register a new legacy raw table in this namespace
        with self._errors(f"cannot list the legacy {family} {TABLE} table"):
            table = self._table(family)
            return [
                FoundRule("legacy", family, chain.name, _comment(rule), _describe(rule))
                for chain in table.chains
                for rule in chain.rules
                if rule.target is not None and rule.target.name == TARGET
            ]

    def add(self, rule: RuleArgs) -> bool:
        with xtables_lock(), self._errors(f"cannot add the TRACE rule to legacy {TABLE} {rule.chain}"):
            table = self._table(rule.family)
            chain = self._iptc.Chain(table, rule.chain)
            candidate = self._build(rule)
            if any(existing == candidate for existing in chain.rules):
                return False
            chain.append_rule(candidate)
            table.commit()
            return True

    def delete(self, rule: RuleArgs) -> bool:
        if not has_raw_table(rule.family):
            return False
        with xtables_lock(), self._errors(f"cannot delete the TRACE rule from legacy {TABLE} {rule.chain}"):
            table = self._table(rule.family)
            chain = self._iptc.Chain(table, rule.chain)
            candidate = self._build(rule)
            if not any(existing == candidate for existing in chain.rules):
                return False
            chain.delete_rule(candidate)
            table.commit()
            return True

    def remove_created_tables(self) -> list[TableChange]:
        """Nothing can go: say which raw tables are left empty."""
        changes = []
        for family in FAMILIES:
            if not has_raw_table(family):
                continue
            with self._errors(f"cannot list the legacy {family} {TABLE} table"):
                empty = not any(chain.rules for chain in self._table(family).chains)
            if empty:
                changes.append(TableChange("kept", "legacy", family, f"table {TABLE}", LEFT_EMPTY))
        return changes

    def _table(self, family: Family) -> Any:
        """The raw table re-read from the kernel, with changes held until `commit()`."""
        table_class = self._iptc.Table if family == "ipv4" else self._iptc.Table6
        table = table_class(TABLE, autocommit=False)
        table.refresh()
        _pin_table_names(table_class, family)
        return table

    def _build(self, rule: RuleArgs) -> Any:
        built = self._iptc.Rule() if rule.family == "ipv4" else self._iptc.Rule6()
        if rule.protocol is not None:
            built.protocol = PROTOCOL_NUMBER[rule.protocol]
        if rule.src is not None:
            built.src = rule.src
        if rule.dst is not None:
            built.dst = rule.dst
        if rule.in_iface is not None:
            built.in_interface = rule.in_iface
        if rule.out_iface is not None:
            built.out_interface = rule.out_iface
        for match in rule.matches:
            extension = built.create_match(match.name)
            for option, value in match.options:
                extension.set_parameter(option, value)
        built.target = built.create_target(TARGET)
        return built

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """libiptc and libxtables errors as one-line tracelog errors."""
        try:
            yield
        except (self._iptc.IPTCError, self._iptc.xtables.XTablesError, ValueError) as error:
            raise refused(what, str(error)) from error


def _pin_table_names(table_class: Any, family: Family) -> None:
    """Tell python-iptables which legacy tables exist, so it never opens one to find out.

    To build any target that is not ACCEPT/DROP/… (TRACE included) it asks
    every table whether a chain has that name, opening filter, nat, mangle
    and security; opening a legacy table registers it in the namespace.
    Its `existing_table_names` cache answers instead.
    """
    present = set(read_words(TABLE_NAMES[family]))
    table_class.existing_table_names.update({name: name in present for name in table_class.ALL})


def has_raw_table(family: Family, names: dict[Family, Path] = TABLE_NAMES) -> bool:
    """Whether this namespace has a legacy raw table (listing it never creates one)."""
    return TABLE in read_words(names[family])


def _comment(rule: Any) -> str | None:
    for match in rule.matches:
        if match.name == "comment":
            return str(match.comment)
    return None


def _describe(rule: Any) -> str:
    """The rule roughly as `iptables -S` prints it, for reports about rules tracelog did not write."""
    words = []
    if rule.protocol not in ("ip", "0", None):
        words += ["-p", str(rule.protocol)]
    for flag, address in (("-s", rule.src), ("-d", rule.dst)):
        if address not in _ANY:
            words += [flag, str(ip_network(address, strict=False))]
    for flag, iface in (("-i", rule.in_interface), ("-o", rule.out_interface)):
        if iface:
            words += [flag, str(iface)]
    for match in rule.matches:
        words += ["-m", match.name]
        for option, value in match.parameters.items():
            words += [f"--{option}", f'"{value}"' if " " in value else value]
    return " ".join([*words, "-j", TARGET])
