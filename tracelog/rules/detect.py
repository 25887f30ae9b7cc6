"""Which iptables backend this network namespace really uses, and the reason, in words."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from tracelog.errors import UsageError
from tracelog.rules.backends import SAVE_TOOLS, BackendName, Probe, read_words, run_probe
from tracelog.rules.spec import TAG_PREFIX

Requested = Literal["auto", "legacy", "nft"]
REQUESTED: tuple[Requested, ...] = get_args(Requested)
LEGACY_TABLE_NAMES = ("proc/net/ip_tables_names", "proc/net/ip6_tables_names")
# Tables iptables-nft (and its arptables/ebtables siblings) create; any other nft table is native nftables.
_XTABLES_NFT_TABLES = {
    f"{family} {name}" for family in ("ip", "ip6") for name in ("raw", "mangle", "nat", "filter", "security")
} | {"arp filter", "bridge filter", "bridge nat", "bridge broute"}


# Whose chains these are, by the prefix of their names in iptables-save (legacy or nft) ...
_CHAIN_OWNERS = (
    ("DOCKER", "Docker"),
    ("KUBE-", "kube-proxy"),
    ("NETAVARK", "Podman"),
    ("cali-", "Calico"),
    ("CILIUM_", "Cilium"),
    ("LIBVIRT_", "libvirt"),
    ("ufw-", "ufw"),
    ("f2b-", "fail2ban"),
)
# ... and by the name of their native nftables table.
_TABLE_OWNERS = {
    "docker-bridges": "Docker",
    "kube-proxy": "kube-proxy",
    "netavark": "Podman",
    "firewalld": "firewalld",
    "fw4": "OpenWrt fw4",
}


@dataclass(frozen=True, slots=True)
class BackendUsage:
    """What each backend holds in this namespace, tracelog's own rules left out.

    `*_owners` name the programs whose chains or tables are in each backend
    (Docker, kube-proxy, …); `nft_tables` lists every nf_tables table.
    """

    legacy_tables: tuple[str, ...] = ()
    legacy_rules: int | None = 0
    nft_rules: int | None = 0
    nft_native_tables: tuple[str, ...] = ()
    iptables_flavour: BackendName | None = None
    nft_tables: tuple[str, ...] = ()
    legacy_owners: tuple[str, ...] = ()
    nft_owners: tuple[str, ...] = ()
    forward_drop: tuple[str, ...] = ()
    """The save tools whose filter FORWARD chain has policy DROP (`iptables-legacy-save`, `ip6tables-nft-save`)."""

    @property
    def legacy_used(self) -> bool:
        return bool(self.legacy_rules)

    @property
    def nft_used(self) -> bool:
        return bool(self.nft_rules) or bool(self.nft_native_tables)

    def tables(self, backend: BackendName) -> tuple[str, ...]:
        """The tables a traced packet can cross in one backend (`ipv4 filter`, `ip filter`, `inet fw4`)."""
        return self.legacy_tables if backend == "legacy" else self.nft_tables

    def rules(self, backend: BackendName) -> int | None:
        return self.legacy_rules if backend == "legacy" else self.nft_rules

    def owners(self, backend: BackendName) -> tuple[str, ...]:
        return self.legacy_owners if backend == "legacy" else self.nft_owners

    def used(self, backend: BackendName) -> bool:
        return self.legacy_used if backend == "legacy" else self.nft_used

    def describe(self) -> str:
        """`legacy: 12 rules; nf_tables: 3 rules, native tables inet fw4` for people."""
        legacy = (
            "no tables"
            if not self.legacy_tables
            else (
                "tables present, rules unreadable (iptables-legacy-save missing or refused)"
                if self.legacy_rules is None
                else _count(self.legacy_rules)
            )
        )
        nft = "unreadable (iptables-nft-save missing or refused)" if self.nft_rules is None else _count(self.nft_rules)
        if self.nft_native_tables:
            nft += f", native tables {', '.join(self.nft_native_tables)}"
        return f"legacy: {legacy}; nf_tables: {nft}"


@dataclass(frozen=True, slots=True)
class Choice:
    """The backend tracelog will use and why; `both` when the other backend holds rules too."""

    backend: BackendName
    reason: str
    both: bool = False


def _count(rules: int) -> str:
    return f"{rules} rule{'s' if rules != 1 else ''}"


def count_rules(saved: str) -> int:
    """Rules and non-ACCEPT built-in policies in `iptables-save` text, tracelog's own not counted."""
    lines = saved.splitlines()
    rules = sum(1 for line in lines if line.startswith("-A ") and not _tagged(line))
    policies = sum(1 for line in lines if line.startswith(":") and line.split()[1:2] not in (["ACCEPT"], ["-"]))
    return rules + policies


def _tagged(line: str) -> bool:
    return f'--comment "{TAG_PREFIX}' in line or f"--comment {TAG_PREFIX}" in line


def chain_owners(saved: str) -> tuple[str, ...]:
    """The programs whose chains `iptables-save` text declares (`:DOCKER-USER - [0:0]` → Docker), in order."""
    chains = (line[1:].split()[0] for line in saved.splitlines() if line.startswith(":") and len(line) > 1)
    owners = [owner for chain in chains for prefix, owner in _CHAIN_OWNERS if chain.startswith(prefix)]
    return tuple(dict.fromkeys(owners))


def table_owners(tables: tuple[str, ...]) -> tuple[str, ...]:
    """The programs known by their native nftables table (`ip docker-bridges` → Docker)."""
    owners = [_TABLE_OWNERS[table.split()[-1]] for table in tables if table.split()[-1] in _TABLE_OWNERS]
    return tuple(dict.fromkeys(owners))


def all_tables(listing: str) -> tuple[str, ...]:
    """Every table `nft list tables` names, `ip filter`, `inet fw4`, …"""
    return tuple(line.removeprefix("table ").strip() for line in listing.splitlines() if line.startswith("table "))


def saved_tables(saved: str, family: str) -> tuple[str, ...]:
    """The tables `iptables-nft-save` printed (`*filter` → `ip filter`); it prints only tables that exist."""
    return tuple(f"{family} {line[1:].strip()}" for line in saved.splitlines() if line.startswith("*"))


def native_tables(listing: str) -> tuple[str, ...]:
    """nft tables from `nft list tables` that iptables-nft did not create."""
    tables = (line.removeprefix("table ").strip() for line in listing.splitlines() if line.startswith("table "))
    return tuple(table for table in tables if table not in _XTABLES_NFT_TABLES)


def iptables_flavour(version: str | None) -> BackendName | None:
    """`iptables v1.8.9 (nf_tables)` → nft; `(legacy)`, or no suffix before 1.8, → legacy."""
    if version is None or not version.startswith("iptables v"):
        return None
    return "nft" if "(nf_tables)" in version else "legacy"


def probe_usage(probe: Probe = run_probe, root: Path = Path("/")) -> BackendUsage:
    """Read both backends with their save tools; nothing is loaded or created by looking."""
    legacy_tables = tuple(
        f"{'ipv4' if 'ip_' in name else 'ipv6'} {table}"
        for name in LEGACY_TABLE_NAMES
        for table in read_words(root / name)
    )
    legacy_rules: int | None = 0
    legacy_saved: list[str | None] = []
    if legacy_tables:
        legacy_saved = [probe([tool]) for tool in SAVE_TOOLS["legacy"].values()]
        legacy_rules = None if None in legacy_saved else sum(count_rules(text or "") for text in legacy_saved)
    nft_saved = [probe([tool]) for tool in SAVE_TOOLS["nft"].values()]
    listing = probe(["nft", "list", "tables"])
    nft_tables = (
        all_tables(listing)
        if listing is not None
        else tuple(
            table
            for family, text in zip(("ip", "ip6"), nft_saved, strict=True)
            for table in saved_tables(text or "", family)
        )
    )
    native = native_tables(listing or "")
    return BackendUsage(
        legacy_tables=legacy_tables,
        legacy_rules=legacy_rules,
        nft_rules=None if None in nft_saved else sum(count_rules(text or "") for text in nft_saved),
        nft_native_tables=native,
        iptables_flavour=iptables_flavour(probe(["iptables", "-V"])),
        nft_tables=nft_tables,
        legacy_owners=chain_owners("\n".join(text or "" for text in legacy_saved)),
        nft_owners=tuple(
            dict.fromkeys(chain_owners("\n".join(text or "" for text in nft_saved)) + table_owners(native))
        ),
        forward_drop=tuple(
            tool
            for tools, saved in ((SAVE_TOOLS["legacy"], legacy_saved), (SAVE_TOOLS["nft"], nft_saved))
            for tool, text in zip(tools.values(), saved, strict=False)
            if forward_policy(text or "") == "DROP"
        ),
    )


def forward_policy(saved: str) -> str | None:
    """The policy of the filter table's FORWARD chain in `iptables-save` text; None without that table."""
    table = ""
    for line in saved.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif table == "filter" and line.startswith(":FORWARD "):
            return line.split()[1]
    return None


def parse_requested(text: str) -> Requested:
    """`--backend`: auto, legacy or nft."""
    for name in REQUESTED:
        if text == name:
            return name
    raise UsageError(f"unknown backend {text!r}", hint="auto, legacy or nft")


def choose_backend(usage: BackendUsage, requested: Requested = "auto") -> Choice:
    """Follow the backend that holds the rules; with both or neither, follow what `iptables` runs."""
    both = usage.legacy_used and usage.nft_used
    if requested != "auto":
        return Choice(requested, f"--backend {requested} asked for ({usage.describe()})", both)
    if usage.legacy_used and not usage.nft_used:
        return Choice("legacy", f"only the legacy tables hold rules ({usage.describe()})")
    if usage.nft_used and not usage.legacy_used:
        return Choice("nft", f"only nf_tables holds rules ({usage.describe()})")
    flavour = usage.iptables_flavour
    held = "both backends hold rules" if both else "neither backend holds rules"
    if flavour is None:
        return Choice(
            "nft", f"{held} and `iptables` says nothing; nf_tables is today's default ({usage.describe()})", both
        )
    name = "nf_tables" if flavour == "nft" else "legacy"
    return Choice(flavour, f"{held}; following `iptables`, which is {name} ({usage.describe()})", both)
