"""Which packet records a user asked to see: `--src`, `--dst`, `--proto`, `--port`, `--verdict`, `--chain`, `--name`.

Filters look at every step, not only the first, so a packet is found by the
address it had before or after NAT.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from tracelog.errors import UsageError
from tracelog.records.packet import PacketRecord, step_names

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_network(text: str) -> Network:
    """An address or a network (`172.18.0.2`, `172.18.0.0/16`, `fd00:18::/64`)."""
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise UsageError(f"not an address or network: {text}") from None


def _in(address: str | None, network: Network) -> bool:
    """Whether an address lies in `network`; an address a paste hid (`x.x.x.x`, `?`) lies in none."""
    if address is None:
        return False
    try:
        return ipaddress.ip_address(address) in network
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class PacketFilter:
    """All given conditions must hold; an unset one holds for every packet."""

    src: Network | None = None
    dst: Network | None = None
    proto: str | None = None
    port: int | None = None
    verdict: str | None = None
    chain: str | None = None
    name: str | None = None

    def __bool__(self) -> bool:
        return any(
            value is not None
            for value in (self.src, self.dst, self.proto, self.port, self.verdict, self.chain, self.name)
        )

    def matches(self, record: PacketRecord) -> bool:
        steps = record["steps"]
        checks = (
            self.src is None or any(_in(step["src"], self.src) for step in steps),
            self.dst is None or any(_in(step["dst"], self.dst) for step in steps),
            self.proto is None or record["proto"].lower() == self.proto.lower(),
            self.port is None or any(self.port in (step["sport"], step["dport"]) for step in steps),
            self.verdict is None or (record["verdict"] or "unknown").lower() == self.verdict.lower(),
            self.chain is None
            or any(self.chain in (step["chain"], f"{step['table']}:{step['chain']}") for step in steps),
            self.name is None or self.name in _names(record),
        )
        return all(checks)


def _names(record: PacketRecord) -> set[str]:
    found = {record["src_name"], record["dst_name"]}
    for step in record["steps"]:
        found.update(step_names(step))
    return {name for name in found if name}
