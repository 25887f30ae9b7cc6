"""Docker's chains and drop rules: what each is for and why a packet was dropped there.

Two generations of Docker's bridge driver write the rules a trace shows (see
docs/containers.md for where each fact comes from in moby's source):

- the iptables backend: DOCKER-USER, DOCKER-FORWARD (from 28.1 on) with
  DOCKER-CT, DOCKER-BRIDGE and DOCKER-INTERNAL (29), DOCKER, the
  DOCKER-ISOLATION-STAGE-1/2 pair (up to 28), and raw PREROUTING drops of
  packets that address a container directly (from 28 on).  Its rules carry
  no comments: their shape says what they are.
- the nftables backend (29): tables `ip docker-bridges` and `ip6
  docker-bridges`, base chains reaching per-bridge chains
  (`filter-forward-in__<bridge>` …) through verdict maps, and rules whose
  comments say why (`ICC`, `UNPUBLISHED PORT DROP`, `DROP DIRECT ACCESS`).
"""

from __future__ import annotations

from tracelog.chains import ChainMeaning, NativeChain, Reason, table_native_chain
from tracelog.chains.comments import rule_comment

WRITER = "Docker"
NFT_WRITER = "Docker 29 (nftables)"
NFT_TABLE = "docker-bridges"

_IPTABLES_CHAINS = {
    "DOCKER-USER": "the administrator's own rules, run before Docker's in FORWARD",
    "DOCKER-FORWARD": "Docker's FORWARD rules (28.1 on): replies, internal networks, published ports, then each "
    "bridge's traffic between its containers and out of it",
    "DOCKER-CT": "accepts replies (RELATED,ESTABLISHED) on their way into a Docker bridge",
    "DOCKER-BRIDGE": "sends packets bound for a Docker bridge to the DOCKER chain",
    "DOCKER-INTERNAL": "drops traffic into or out of internal networks (29 on)",
    "DOCKER-ISOLATION-STAGE-1": "first stage of the isolation between Docker networks: packets leaving a bridge "
    "for another interface go to stage 2",
    "DOCKER-ISOLATION-STAGE-2": "second stage of the isolation between Docker networks: drops packets bound for "
    "another Docker bridge",
    "DOCKER-INGRESS": "the swarm routing mesh's published ports",
}
_DOCKER_CHAIN = {
    "nat": "destination NAT of published ports to their containers",
    "filter": "accepts published ports into a bridge; from 28 on drops the rest that comes from outside it",
}

# Docker 29's nftables chains: (hook, passes on) of the base chains, then the
# per-bridge regular chains by prefix (reached through verdict maps).
_NFT_BASE_CHAINS = {
    "raw-PREROUTING": NativeChain("PREROUTING", True),
    "nat-PREROUTING": NativeChain("PREROUTING", True),
    "nat-OUTPUT": NativeChain("OUTPUT", True),
    "nat-POSTROUTING": NativeChain("POSTROUTING", True),
    "filter-FORWARD": NativeChain("FORWARD", False),
    "nat-prerouting-and-output": NativeChain(None, True),
}
_NFT_BRIDGE_PREFIXES = {
    "filter-forward-in__": NativeChain(None, False),
    "filter-forward-out__": NativeChain(None, False),
    "nat-postrouting-in__": NativeChain(None, True),
    "nat-postrouting-out__": NativeChain(None, True),
}
_NFT_ROLES = {
    "raw-PREROUTING": "drops packets that address a container directly from outside its bridge, and remote "
    "packets for ports published on loopback",
    "nat-PREROUTING": "sends packets for the host's own addresses to the published-port DNAT rules",
    "nat-OUTPUT": "sends the host's packets for its own addresses to the published-port DNAT rules",
    "nat-POSTROUTING": "sends packets to the masquerade rules of the bridge they come from or go to",
    "filter-FORWARD": "sends each forwarded packet to the chain of the bridge it enters or leaves (verdict maps)",
    "nat-prerouting-and-output": "destination NAT of published ports to their containers",
}
_NFT_BRIDGE_ROLES = {
    "filter-forward-in__": "packets entering the bridge: replies, between its containers (ICC), published ports, "
    "and the drop of the rest",
    "filter-forward-out__": "packets leaving the bridge: replies and outgoing traffic",
    "nat-postrouting-in__": "source NAT of packets entering the bridge (hairpin, from the host)",
    "nat-postrouting-out__": "masquerade of packets leaving the bridge's subnet",
}

# The comments Docker 29's nftables rules carry (and the names this module
# gives the same rules of the iptables backend), with what they mean.
_COMMENTS = {
    "UNPUBLISHED PORT DROP": "the container's port is not published, and traffic from outside its bridge may "
    "reach published ports only",
    "DROP DIRECT ACCESS": "the packet addresses a container directly from outside its bridge: only the host's "
    "published ports lead there",
    "INTERNAL NETWORK INGRESS": "an internal network takes no traffic from outside it",
    "INTERNAL NETWORK EGRESS": "an internal network sends no traffic out of it",
    "DROP REMOTE LOOPBACK": "a port published on a loopback address takes no packets from other hosts",
    "INTER-NETWORK": "Docker isolates its networks from each other: no traffic from one bridge to another",
    "OUTGOING": "traffic from containers out of their bridge is allowed",
    "UNPROTECTED": "the network's gateway mode is nat-unprotected: every port is open from outside",
    "ICMP": "ICMP into a routed network is allowed",
    "ALLOW FW MARK": "the packet carries the firewall mark the network accepts",
    "DNAT": "a published port: the packet is sent on to its container",
    "MASQUERADE": "the container's address is replaced by the host's on the way out",
    "SNAT": "the container's address is replaced by the network's host address on the way out",
}
_ICC = {
    "drop": "containers on this bridge may not talk to each other (inter-container communication is off: "
    "--icc=false or com.docker.network.bridge.enable_icc=false)",
    "accept": "containers on this bridge may talk to each other (inter-container communication)",
}


def native_chain(table: str, chain: str) -> NativeChain | None:
    """The hook and kind of a chain of Docker 29's `docker-bridges` tables; None for any other."""
    return table_native_chain(table, chain, NFT_TABLE, _NFT_BASE_CHAINS, _bridge_native_chain)


def _bridge_native_chain(chain: str) -> NativeChain | None:
    """A per-bridge chain of Docker 29, by its prefix; None for any other name."""
    prefix = _bridge_chain_prefix(chain)
    return _NFT_BRIDGE_PREFIXES[prefix] if prefix else None


def describe_chain(table: str, chain: str) -> ChainMeaning | None:
    """What a Docker chain is for: the iptables backend's in any table, the nftables backend's in docker-bridges."""
    if table == NFT_TABLE:
        prefix = _bridge_chain_prefix(chain)
        if prefix:
            return ChainMeaning(NFT_WRITER, _NFT_BRIDGE_ROLES[prefix], chain.removeprefix(prefix))
        role = _NFT_ROLES.get(chain)
        return ChainMeaning(NFT_WRITER, role) if role else None
    if chain == "DOCKER":
        role = _DOCKER_CHAIN.get(table)
        return ChainMeaning(WRITER, role) if role else None
    role = _IPTABLES_CHAINS.get(chain)
    return ChainMeaning(WRITER, role) if role else None


def _bridge_chain_prefix(chain: str) -> str | None:
    return next((prefix for prefix in _NFT_BRIDGE_PREFIXES if chain.startswith(prefix) and chain != prefix), None)


def verdict_reason(table: str, chain: str, rule: str | None, verdict: str | None) -> Reason | None:
    """Why a Docker rule decided as it did: its comment (nftables backend), or what its shape says it is.

    None for a rule Docker does not write, or one whose reason is not known.
    """
    comment = rule_comment(rule)
    if comment is not None:
        return _reason_of_comment(comment, verdict)
    if rule is None or (verdict or "").lower() != "drop":
        return None
    label = _iptables_drop_label(table, chain, _options(rule))
    return _reason_of_comment(label, verdict) if label else None


def _reason_of_comment(comment: str, verdict: str | None) -> Reason | None:
    if comment == "ICC":
        meaning = _ICC.get((verdict or "").lower())
        return Reason(comment, meaning) if meaning else None
    meaning = _COMMENTS.get(comment) or _COMMENTS.get(comment.removesuffix(" FROM HOST"))
    return Reason(comment, meaning) if meaning else None


Options = dict[str, tuple[str, bool]]
"""An iptables rule's options: `-d` → (`172.18.0.3/32`, negated)."""


def _options(rule: str) -> Options:
    """The single-dash options of an iptables-save rule, each with its value and whether `!` negated it."""
    options: Options = {}
    words = rule.split()
    for index, word in enumerate(words[:-1]):
        if word.startswith("-") and not word.startswith("--"):
            options[word] = (words[index + 1], index > 0 and words[index - 1] == "!")
    return options


def _iptables_drop_label(table: str, chain: str, options: Options) -> str | None:
    """The name of one of Docker's iptables DROP rules, told by where it is and what it matches."""
    if table == "raw" and chain == "PREROUTING":
        return _direct_drop_label(options)
    if table != "filter":
        return None
    if chain in ("DOCKER-INTERNAL", "DOCKER-ISOLATION-STAGE-1"):
        return _internal_drop_label(options)
    return _bridge_drop_label(chain, options)


_BRIDGE_DROPS = {
    "DOCKER-ISOLATION-STAGE-2": "INTER-NETWORK",
    "DOCKER": "UNPUBLISHED PORT DROP",
    "DOCKER-FORWARD": "ICC",
    "FORWARD": "ICC",  # before 28.1, Docker's FORWARD rules were in FORWARD itself
}


def _bridge_drop_label(chain: str, options: Options) -> str | None:
    """Drops of packets bound for a bridge: from another network, from outside to an unpublished port, or ICC."""
    into, out_of = options.get("-o"), options.get("-i")
    if into is None or into[1] or chain not in _BRIDGE_DROPS:
        return None
    shapes = {
        "DOCKER-ISOLATION-STAGE-2": out_of is None,
        "DOCKER": out_of == (into[0], True),
    }
    return _BRIDGE_DROPS[chain] if shapes.get(chain, out_of == into) else None


def _direct_drop_label(options: Options) -> str | None:
    """raw PREROUTING's drops of packets for a container's (or a loopback-published port's) address."""
    out_of = options.get("-i")
    if "-d" not in options or out_of is None or not out_of[1]:
        return None
    return "DROP REMOTE LOOPBACK" if out_of[0] == "lo" else "DROP DIRECT ACCESS"


def _internal_drop_label(options: Options) -> str | None:
    """An internal network's drops: into its bridge from another subnet, or out of it to another."""
    source, destination = options.get("-s"), options.get("-d")
    if "-o" in options and source and source[1]:
        return "INTERNAL NETWORK INGRESS"
    if "-i" in options and destination and destination[1]:
        return "INTERNAL NETWORK EGRESS"
    return None
