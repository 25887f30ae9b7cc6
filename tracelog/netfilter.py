"""What netfilter itself fixes: hooks, the order tables run in, where NAT rewrites.

The correlator relies on these facts to decide whether a step can belong to a
packet already seen (docs/netfilter.md says where they come from).
"""

from __future__ import annotations

import re

from tracelog.chains.native import native_chain

PREROUTING = "PREROUTING"
INPUT = "INPUT"
FORWARD = "FORWARD"
OUTPUT = "OUTPUT"
POSTROUTING = "POSTROUTING"
# the netdev family's hooks: before PREROUTING on the way in, after POSTROUTING on the way out
INGRESS = "INGRESS"
EGRESS = "EGRESS"

BUILTIN_CHAINS = frozenset({PREROUTING, INPUT, FORWARD, OUTPUT, POSTROUTING})

# iptables table priorities (include/uapi/linux/netfilter_ipv4.h); nat runs at
# -100 where it rewrites the destination and at +100 where it rewrites the source.
_TABLE_PRIORITY = {"raw": -300, "mangle": -150, "filter": 0, "security": 50}
_DNAT_PRIORITY = -100
_SNAT_PRIORITY = 100
_DNAT_HOOKS = frozenset({PREROUTING, OUTPUT})

# Hooks a packet can reach next.  POSTROUTING → PREROUTING/INPUT is the
# loopback re-entry (OUT=lo, then IN=lo); the correlator checks the interface.
# A hook may be skipped where no chain of the trace's tables hooks in (an ARP
# frame goes from ingress to the arp family's INPUT).
_NEXT_HOOKS: dict[str, frozenset[str]] = {
    INGRESS: frozenset({PREROUTING, INPUT, FORWARD, POSTROUTING, EGRESS}),
    PREROUTING: frozenset({INPUT, FORWARD, POSTROUTING, EGRESS}),
    FORWARD: frozenset({POSTROUTING, EGRESS}),
    OUTPUT: frozenset({POSTROUTING, PREROUTING, INPUT, EGRESS}),
    POSTROUTING: frozenset({PREROUTING, INPUT, EGRESS}),
    INPUT: frozenset(),
    EGRESS: frozenset(),
}
LOOPBACK_HOOKS = frozenset({PREROUTING, INPUT})

# Native nf_tables base chains are named by their authors; these names (and
# fw4's dstnat/srcnat) say their hook.  Their priority is in the ruleset only.
_NATIVE_HOOK_WORDS = {
    "prerouting": PREROUTING,
    "input": INPUT,
    "forward": FORWARD,
    "output": OUTPUT,
    "postrouting": POSTROUTING,
    "dstnat": PREROUTING,
    "srcnat": POSTROUTING,
}
# Only a netdev chain hooks ingress or egress: elsewhere the words name a user chain (`egress_policy`).
_NETDEV_HOOK_WORDS = {"ingress": INGRESS, "egress": EGRESS}


def hook_of_chain(chain: str, nf_family: str | None = None) -> str | None:
    """The hook a chain name implies: iptables built-ins, or a native chain named after its hook."""
    if chain in BUILTIN_CHAINS:
        return chain
    words = _NETDEV_HOOK_WORDS if nf_family == "netdev" else _NATIVE_HOOK_WORDS
    for word in _name_words(chain):
        if word in words:
            return words[word]
    return None


def table_priority(table: str, hook: str) -> int:
    """The priority an iptables `table` runs at in `hook` (nat depends on the hook)."""
    if table == "nat":
        return _DNAT_PRIORITY if hook in _DNAT_HOOKS else _SNAT_PRIORITY
    return _TABLE_PRIORITY.get(table, 0)


def is_later_hook(before: str, after: str) -> bool:
    """Whether a packet at hook `before` can next be seen at hook `after`."""
    return after in _NEXT_HOOKS.get(before, frozenset())


def crosses_dnat(before: tuple[str, int | None], after: tuple[str, int | None]) -> bool:
    """Whether destination NAT ran between two stages of one packet.

    The trace of a nat rule is printed before its target runs, so the new
    destination shows from the first step after the nat table, including the
    reply direction's un-SNAT, which happens there without a nat line.
    """
    hook, priority = before
    if hook not in _DNAT_HOOKS:
        return False
    if priority is None or after[1] is None:  # native tables: NAT may run anywhere in the hook
        return True
    return priority <= _DNAT_PRIORITY and (after[0] != hook or after[1] > _DNAT_PRIORITY)


def crosses_snat(before: tuple[str, int | None], after: tuple[str, int | None]) -> bool:
    """Whether source NAT ran between two stages of one packet.

    It runs at nat POSTROUTING (and nat INPUT, after which nothing prints), so
    only a packet looping back through `lo` is seen again afterwards: the
    reply of a DNAT'ed local connection leaves with the real source port and
    comes back in with the published one, without a nat line.
    """
    return before[0] in (OUTPUT, FORWARD, POSTROUTING) and after[0] in LOOPBACK_HOOKS


# Tables whose ACCEPT (a rule's or the policy's) only hands the packet on to the
# tables after it: raw and mangle mark and tag, nat rewrites addresses.  A DROP
# there still ends the packet.
_PASS_ON_TABLES = frozenset({"raw", "mangle", "nat"})
_IPTABLES_TABLES = frozenset({*_PASS_ON_TABLES, "filter", "security"})
# Native nf_tables chains carry their type (filter, nat, route) in the ruleset
# only; these words in a table's or chain's name (`fw4 dstnat`, Docker's
# `docker-bridges nat-postrouting`, kube-proxy's `nat-prerouting`) say it.
_PASS_ON_WORDS = frozenset({*_PASS_ON_TABLES, "dstnat", "srcnat"})
NAT_TARGETS = frozenset({"DNAT", "SNAT", "MASQUERADE", "REDIRECT", "NETMAP"})


def _name_words(name: str) -> list[str]:
    return name.lower().replace("-", "_").split("_")


def passes_packet_on(table: str, chain: str) -> bool:
    """Whether an accepting step in `table:chain` only passes the packet on, deciding nothing.

    iptables' tables say it by their name (whatever their chains are called);
    a known writer's native chain is what its writer made it; any other
    native chain's type is guessed from the words of its table's and chain's
    names.
    """
    known = native_chain(table, chain)
    if known is not None:
        return known.passes_on
    if table in _IPTABLES_TABLES:
        return table in _PASS_ON_TABLES
    return any(word in _PASS_ON_WORDS for word in (*_name_words(table), *_name_words(chain)))


# A reject statement or target: nf_tables sends the ICMP error or TCP reset and
# then drops, so its trace event says `drop` (nft monitor and xtables-monitor).
_REJECT = re.compile(r"(?:^|\s)(?:reject(?:\s|$)|-j REJECT\b)")


def packet_verdict(verdict: str | None, rule: str | None) -> str | None:
    """A step's verdict as the packet met it: an nf_tables `drop` by a reject rule is a REJECT."""
    if verdict == "DROP" and rule and _REJECT.search(rule):
        return "REJECT"
    return verdict
