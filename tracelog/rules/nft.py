"""The nft backend: TRACE rules through `iptables-nft`/`ip6tables-nft` with exact `-C`, `-A` and `-D`.

iptables-nft turns `-j TRACE` into `meta nftrace set 1` and the comment
into the rule's user data, and compares both in `-C`/`-D`: a rule is only
ever deleted when every byte of it is the one tracelog wrote.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Sequence

from tracelog.errors import FirewallError, Unavailable
from tracelog.events import Family
from tracelog.rules.backends import SAVE_TOOLS, TOOL_TIMEOUT, BackendName, FoundRule, refused
from tracelog.rules.spec import TABLE, TARGET, RuleArgs

TOOLS: dict[Family, str] = {"ipv4": "iptables-nft", "ipv6": "ip6tables-nft"}
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
        return [rule for line in done.stdout.splitlines() if (rule := _trace_rule(family, line)) is not None]

    def add(self, rule: RuleArgs) -> bool:
        if self._exists(rule):
            return False
        self._change(rule, "-A", f"cannot add the TRACE rule to nft {TABLE} {rule.chain}")
        return True

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


def _trace_rule(family: Family, line: str) -> FoundRule | None:
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
