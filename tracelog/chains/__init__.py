"""What the chains, comments and marks of well-known rule writers mean.

Docker, Podman's netavark and Kubernetes' kube-proxy write rules whose chain
names and comments carry meaning: the network a chain serves, the service
and endpoint a DNAT rule leads to, why a drop rule drops.  Each module here
reads one writer's conventions; none changes what the parsers read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple


class NativeChain(NamedTuple):
    """What a known writer's native nf_tables chain is, beyond its name.

    `hook`: the netfilter hook a base chain is registered at (None for a
    regular chain, which runs where its caller does); `passes_on`: whether
    an accept there only hands the packet on (a nat chain, or one at raw
    priority) rather than deciding its fate.
    """

    hook: str | None
    passes_on: bool


def table_native_chain(
    table: str,
    chain: str,
    writer_table: str,
    base_chains: Mapping[str, NativeChain],
    regular_chain: Callable[[str], NativeChain | None],
) -> NativeChain | None:
    """A chain of a writer's own table: a base chain from the writer's list, any other as `regular_chain` reads its
    name; None in any other table."""
    if table != writer_table:
        return None
    return base_chains.get(chain) or regular_chain(chain)


@dataclass(frozen=True, slots=True)
class ChainMeaning:
    """What a chain is for, in a reader's words.

    `writer`: who writes it (`Docker`, `Docker 29 (nftables)`, `netavark`);
    `role`: one sentence saying what it does; `network`: the container
    network it serves, when its name says (a bridge, or a Podman network's
    name), else None.
    """

    writer: str
    role: str
    network: str | None = None


class Reason(NamedTuple):
    """Why a writer's rule decided: its `label` (the rule's comment, or the writer's own name for the rule) and
    what that means."""

    label: str
    meaning: str
