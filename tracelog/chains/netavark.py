"""netavark's chains (Podman's network backend): which Podman network each serves, and why it dropped.

netavark names its per-network chains after the network, not its bridge (see
docs/containers.md for where each fact comes from in netavark's source):

- iptables driver (Podman 4, netavark 1.x): `NETAVARK-<hash>` (masquerade)
  and `NETAVARK-DN-<hash>` (published ports) in nat, where `<hash>` is the
  first 13 hex digits, upper case, of the SHA-512 of the network's name;
  NETAVARK_FORWARD, NETAVARK_INPUT, NETAVARK_ISOLATION_1/2/3 in filter;
  NETAVARK-HOSTPORT-DNAT/-SETMARK/-MASQ shared by all networks.
- nftables driver (default from netavark 1.12 on): table `inet netavark`
  with base chains named after their hooks, NETAVARK-HOSTPORT-DNAT,
  NETAVARK-HOSTPORT-SETMARK, NETAVARK-ISOLATION-1/2/3, and per subnet
  `nv_<first 8 of the network id>_<subnet>` (masquerade) and `…_dnat`
  (published ports), the subnet spelt `10_88_0_0_nm16`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from ipaddress import ip_network
from typing import NamedTuple

from tracelog.chains import ChainMeaning, NativeChain, Reason, table_native_chain
from tracelog.chains.comments import rule_comment

WRITER = "netavark"
NFT_TABLE = "netavark"
HASH_LENGTH = 13
ID_LENGTH = 8
SUBNET_PREFIX = "nv_"
DNAT_SUFFIX = "_dnat"
HASH_PREFIX = "NETAVARK-"
DNAT_HASH_PREFIX = "NETAVARK-DN-"

# the base chains of `inet netavark` are named after their hooks, as iptables' built-in chains are
_HOOK_CHAINS = frozenset({"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"})
_SHARED_CHAINS = {
    "NETAVARK_FORWARD": "accepts the forwarded traffic of netavark's networks: replies into a subnet, anything "
    "out of one",
    "NETAVARK_INPUT": "accepts DNS queries (aardvark-dns) from netavark's networks to the host",
    "NETAVARK-HOSTPORT-DNAT": "sends packets for published ports (and DNS on a moved port) to their network's "
    "DNAT chain",
    "NETAVARK-HOSTPORT-SETMARK": "marks published-port traffic from the network itself or from localhost (0x2000) "
    "for masquerading",
    "NETAVARK-HOSTPORT-MASQ": "masquerades packets marked 0x2000 by NETAVARK-HOSTPORT-SETMARK",
    "NETAVARK_ISOLATION_1": "first stage of the isolation of networks created with isolate=true",
    "NETAVARK_ISOLATION_2": "drops packets bound for an isolated network's bridge from another bridge",
    "NETAVARK_ISOLATION_3": "strict isolation (isolate=strict): drops packets from one bridge to any other",
    "NETAVARK-ISOLATION-1": "first stage of the isolation of networks created with isolate=true",
    "NETAVARK-ISOLATION-2": "drops packets bound for an isolated network's bridge from another bridge",
    "NETAVARK-ISOLATION-3": "strict isolation (isolate=strict), and drops into non-isolated networks' bridges "
    "from isolated ones",
    "INPUT": "netavark's input hook: DNS (aardvark-dns) from its networks",
    "FORWARD": "netavark's forward hook: invalid packets dropped, published ports and its networks' traffic "
    "accepted, isolation",
    "PREROUTING": "netavark's prerouting hook: packets for the host's addresses to the published-port DNAT",
    "OUTPUT": "netavark's output hook: the host's packets for its own addresses to the published-port DNAT",
    "POSTROUTING": "netavark's postrouting hook: marked packets and each network's outbound traffic masqueraded",
}
_NFT_BASE_CHAINS = {
    "INPUT": NativeChain("INPUT", False),
    "FORWARD": NativeChain("FORWARD", False),
    "PREROUTING": NativeChain("PREROUTING", True),
    "OUTPUT": NativeChain("OUTPUT", True),
    "POSTROUTING": NativeChain("POSTROUTING", True),
    "NETAVARK-HOSTPORT-DNAT": NativeChain(None, True),
    "NETAVARK-HOSTPORT-SETMARK": NativeChain(None, True),
}
_ISOLATION_DROP = Reason(
    "ISOLATION", "the network was created with isolate=true: other netavark networks cannot reach its bridge"
)
_INVALID_DROP = Reason("INVALID", "conntrack holds the packet invalid (not part of any connection it knows)")


class SubnetChain(NamedTuple):
    """What an nftables per-subnet chain's name says: the network id's start, the subnet, and whether it is DNAT."""

    network_id: str
    subnet: str
    dnat: bool


def network_hash(name: str) -> str:
    """The hash netavark's iptables driver names a network's chains with: SHA-512 of the name, 13 hex, upper case."""
    return hashlib.sha512(name.encode()).hexdigest()[:HASH_LENGTH].upper()


def subnet_chain(chain: str) -> SubnetChain | None:
    """Read `nv_2f259bab_10_88_0_0_nm16[_dnat]`; None for any other name."""
    if not chain.startswith(SUBNET_PREFIX):
        return None
    network_id, _, spelt = chain.removeprefix(SUBNET_PREFIX).partition("_")
    dnat = spelt.endswith(DNAT_SUFFIX)
    address, _, length = spelt.removesuffix(DNAT_SUFFIX).rpartition("_nm")
    # IPv6 has its colons as dashes, IPv4 its dots as underscores
    text = address.replace("-", ":") if "-" in address else address.replace("_", ".")
    try:
        subnet = str(ip_network(f"{text}/{length}"))
    except ValueError:
        return None
    return SubnetChain(network_id, subnet, dnat)


def chain_network(chain: str, networks: Mapping[str, str]) -> str | None:
    """The name of the Podman network a netavark chain serves, given network id → name; None when not known."""
    found = subnet_chain(chain)
    if found is not None:
        return next((name for net_id, name in networks.items() if net_id.startswith(found.network_id)), None)
    if chain.startswith(HASH_PREFIX):
        digest = chain.removeprefix(DNAT_HASH_PREFIX).removeprefix(HASH_PREFIX)
        return next((name for name in networks.values() if network_hash(name) == digest), None)
    return None


def native_chain(table: str, chain: str) -> NativeChain | None:
    """The hook and kind of a chain of netavark's `inet netavark` table; None for any other."""
    return table_native_chain(table, chain, NFT_TABLE, _NFT_BASE_CHAINS, _regular_native_chain)


def _regular_native_chain(chain: str) -> NativeChain | None:
    """An isolation or per-network chain of netavark's table; None for any other name."""
    if chain.startswith("NETAVARK-ISOLATION-"):
        return NativeChain(None, False)
    return NativeChain(None, True) if subnet_chain(chain) else None


def describe_chain(table: str, chain: str, networks: Mapping[str, str]) -> ChainMeaning | None:
    """What a netavark chain is for, and the Podman network it serves where its name says (`networks`: id → name)."""
    if table == NFT_TABLE or chain.startswith(("NETAVARK", SUBNET_PREFIX)):
        role = _SHARED_CHAINS.get(chain) if table == NFT_TABLE or chain not in _HOOK_CHAINS else None
        if role is not None:
            return ChainMeaning(WRITER, role)
        network = chain_network(chain, networks)
        found = subnet_chain(chain)
        if found is not None:
            what = "destination NAT of the published ports" if found.dnat else "masquerade of the outbound traffic"
            return ChainMeaning(WRITER, f"{what} of subnet {found.subnet}", network or _unknown(found.network_id))
        if chain.startswith(DNAT_HASH_PREFIX):
            return ChainMeaning(WRITER, "destination NAT of a network's published ports", network)
        if chain.startswith(HASH_PREFIX):
            return ChainMeaning(WRITER, "masquerade of a network's traffic leaving its subnet", network)
    return None


def _unknown(network_id: str) -> str:
    return f"network {network_id}…"


class DnatComment(NamedTuple):
    """What the comment netavark's iptables driver puts on a published-port jump names."""

    network: str
    container_id: str


def dnat_comment(rule: str | None) -> DnatComment | None:
    """`dnat name: tpnet id: <container id>` read from a rule's comment; None for any other rule."""
    words = (rule_comment(rule) or "").split()
    if len(words) == 5 and words[0:2] == ["dnat", "name:"] and words[3] == "id:":
        return DnatComment(words[2], words[4])
    return None


def verdict_reason(table: str, chain: str, rule: str | None, verdict: str | None) -> Reason | None:
    """Why one of netavark's rules dropped a packet: isolation, or conntrack's invalid state."""
    if (verdict or "").lower() != "drop" or rule is None:
        return None
    if "ISOLATION" in chain:
        return _ISOLATION_DROP
    if table == NFT_TABLE and chain == "FORWARD" and "ct state invalid" in rule:
        return _INVALID_DROP
    return None
