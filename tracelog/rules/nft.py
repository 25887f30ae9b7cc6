"""The nft backend: TRACE rules through `iptables-nft`/`ip6tables-nft` with exact `-C`, `-A` and `-D`.

iptables-nft turns `-j TRACE` into `meta nftrace set 1` and the comment
into the rule's user data, and compares both in `-C`/`-D`: a rule is only
ever deleted when every byte of it is the one tracelog wrote.

Before its first rule, tracelog creates a missing `table ip raw` (`ip6`)
and base chain itself, marked with a comment (iptables-nft would create them
unmarked and leave them for good); `remove_created_tables` deletes what
carries the mark once it is empty again, and nothing else.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Sequence

from tracelog.errors import FirewallError, Unavailable
from tracelog.events import Family
from tracelog.rules.backends import FAMILIES, SAVE_TOOLS, TOOL_TIMEOUT, BackendName, FoundRule, TableChange, refused
from tracelog.rules.nfnetlink import NFT_FAMILY_NAME, RAW_PRIORITY, NetlinkError, Nftables
from tracelog.rules.spec import TABLE, TARGET, RuleArgs

TOOLS: dict[Family, str] = {"ipv4": "iptables-nft", "ipv6": "ip6tables-nft"}
CREATED_MARK = "tracelog:"
TABLE_COMMENT = "tracelog: created for its TRACE rules; tracelog removes it when it is empty again"
CHAIN_COMMENT = "tracelog: created for its TRACE rules; tracelog removes it when it is empty again"
# iptables exits 1 from -C/-D when no rule matches, 2 on bad options and 4 on kernel errors.
_NOT_FOUND = 1


class NftBackend:
    """TRACE rules in the iptables-nft raw tables (`table ip raw`, `table ip6 raw`)."""

    name: BackendName = "nft"

    def __init__(self) -> None:
        missing = [tool for tool in (*TOOLS.values(), *SAVE_TOOLS["nft"].values()) if shutil.which(tool) is None]
        if missing:
            raise Unavailable(f"the nft backend needs {', '.join(missing)}", hint="apt install iptables")

    def trace_rules(self, family: Family) -> list[FoundRule]:
        done = _run([SAVE_TOOLS["nft"][family], "-t", TABLE])
        if done.returncode != 0:
            raise refused(f"cannot list the nft {TABLE} table", done.stderr)
        return [rule for line in done.stdout.splitlines() if (rule := read_trace_rule(family, line)) is not None]

    def add(self, rule: RuleArgs) -> bool:
        if self._exists(rule):
            return False
        create_marked_chain(rule.family, rule.chain)
        self._change(rule, "-A", f"cannot add the TRACE rule to nft {TABLE} {rule.chain}")
        return True

    def remove_created_tables(self) -> list[TableChange]:
        return remove_created_tables()

    def delete(self, rule: RuleArgs) -> bool:
        if not self._exists(rule):
            return False
        self._change(rule, "-D", f"cannot delete the TRACE rule from nft {TABLE} {rule.chain}")
        return True

    def _exists(self, rule: RuleArgs) -> bool:
        done = _run(rule.command(TOOLS[rule.family], "-C"))
        if done.returncode == 0:
            return True
        if done.returncode == _NOT_FOUND:
            return False
        raise refused(f"cannot check nft {TABLE} {rule.chain}", done.stderr)

    @staticmethod
    def _change(rule: RuleArgs, action: str, what: str) -> None:
        done = _run(rule.command(TOOLS[rule.family], action))
        if done.returncode != 0:
            raise refused(what, done.stderr)


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as error:
        raise FirewallError(f"{argv[0]} did not answer within {TOOL_TIMEOUT:.0f}s") from error


def read_trace_rule(family: Family, line: str) -> FoundRule | None:
    """A TRACE rule from one `iptables-save` line, or None for any other line."""
    if not line.startswith("-A "):
        return None
    words = shlex.split(line)
    if _option(words, "-j") != TARGET:
        return None
    return FoundRule("nft", family, words[1], _option(words, "--comment"), line.removeprefix("-A ").split(" ", 1)[1])


def _option(words: list[str], flag: str) -> str | None:
    """The value after `flag` in a tokenised rule."""
    for index, word in enumerate(words[:-1]):
        if word == flag:
            return words[index + 1]
    return None


def create_marked_chain(family: Family, chain: str) -> None:
    """Create the raw table and the base chain, each marked as tracelog's, where they do not exist yet.

    Creating is exclusive: one that appeared meanwhile is someone else's and
    stays unmarked.  Where netlink is refused, iptables-nft creates them
    itself, unmarked, and they stay after tracing.
    """
    try:
        with Nftables() as netlink:
            if not any(table.name == TABLE for table in netlink.tables(family)):
                netlink.create_table(family, TABLE, TABLE_COMMENT)
            if not any(found.name == chain for found in netlink.chains(family, TABLE)):
                netlink.create_base_chain(family, TABLE, chain, RAW_PRIORITY, CHAIN_COMMENT)
    except NetlinkError:
        return


def remove_created_tables() -> list[TableChange]:
    """Delete tracelog's empty raw base chains, then its raw tables if that left them empty.

    The kernel checks emptiness in the deleting transaction (`NLM_F_NONREC`),
    so a rule someone adds meanwhile keeps its chain and table.
    """
    changes = []
    for family in FAMILIES:
        name = f"{NFT_FAMILY_NAME[family]} {TABLE}"
        try:
            with Nftables() as netlink:
                for chain in netlink.chains(family, TABLE):
                    if _marked(chain.comment) and chain.base and chain.use == 0 and netlink.delete_empty_chain(chain):
                        changes.append(_removed(family, f"chain {name} {chain.name}"))
                tables = [table for table in netlink.tables(family) if table.name == TABLE and _marked(table.comment)]
                for table in tables:
                    if table.use == 0 and netlink.delete_empty_table(table):
                        changes.append(_removed(family, f"table {name}"))
        except NetlinkError as error:
            changes.append(
                TableChange("kept", "nft", family, f"table {name}", f"cannot look at nf_tables: {error.strerror}")
            )
    return changes


def _removed(family: Family, what: str) -> TableChange:
    return TableChange("removed", "nft", family, what, "tracelog created it; empty again")


def _marked(comment: str | None) -> bool:
    return comment is not None and comment.startswith(CREATED_MARK)
