"""What kube-proxy's chains, comments and marks say about a packet: its service, its endpoint, why it was refused.

kube-proxy names its per-service chains after a hash of the service port
(`KUBE-SVC-…`, `KUBE-SEP-…`; in nftables mode `service-<hash>-ns/name/tcp/port`)
and comments its rules with the service port (`"default/web:http cluster
IP"`, `"default/web:http -> 10.244.1.11:8080"`, `"default/empty:http has no
endpoints"`).  docs/kubernetes.md lists the conventions this module reads.
"""

from __future__ import annotations

import base64
import hashlib
import re
from ipaddress import ip_address
from typing import NamedTuple

# iptables mode: prefix → what the chain is for; all but KUBE-SEP hash the service port and protocol only
IPTABLES_SERVICE_PREFIXES = {
    "KUBE-SVC-": "service",
    "KUBE-SVL-": "local",
    "KUBE-EXT-": "external",
    "KUBE-FW-": "firewall",
}
IPTABLES_ENDPOINT_PREFIX = "KUBE-SEP-"
# nftables mode: the same roles, spelt out
NFTABLES_PREFIXES = ("service", "local", "external", "firewall", "endpoint", "affinity")
NFTABLES_TABLE = "kube-proxy"
_ENDPOINT_SEPARATOR = "__"
_DNS_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?", re.ASCII)


class ServicePort(NamedTuple):
    """A service port as kube-proxy names it: `namespace/name:port`, the port being the port's name."""

    namespace: str
    name: str
    port: str = ""

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}:{self.port}" if self.port else f"{self.namespace}/{self.name}"


def parse_service_port(text: str) -> ServicePort | None:
    """`default/web:http` (or `default/web` for an unnamed port) as a `ServicePort`; None for other text."""
    namespace, slash, rest = text.partition("/")
    name, _, port = rest.partition(":")
    if not slash or not namespace or not name or not all(map(_is_dns_label, (namespace, name))):
        return None
    if port and not _is_dns_label(port):
        return None
    return ServicePort(namespace, name, port)


def _is_dns_label(text: str) -> bool:
    """Namespace, service and port names are lower-case DNS labels (letters, digits, dashes)."""
    return _DNS_LABEL.fullmatch(text) is not None


def _base32_sha256(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()


def iptables_hash(service: ServicePort, protocol: str) -> str:
    """The 16 characters `KUBE-SVC-`, `KUBE-SVL-`, `KUBE-EXT-` and `KUBE-FW-` share for one service port."""
    return _base32_sha256(f"{service}{protocol.lower()}")[:16]


def iptables_endpoint_chain(service: ServicePort, protocol: str, endpoint: str) -> str:
    """`KUBE-SEP-<hash>`: the chain that DNATs to `endpoint` (`ip:port`) for one service port."""
    return IPTABLES_ENDPOINT_PREFIX + _base32_sha256(f"{service}{protocol.lower()}{endpoint}")[:16]


def _nftables_base(service: ServicePort, protocol: str, endpoint: str | None = None) -> str:
    """`HASH-ns/name/proto/port` (`…__ip/port` for an endpoint), as kube-proxy's nftables mode builds names."""
    name = f"{service.namespace}/{service.name}/{protocol.lower()}/{service.port}"
    if endpoint is not None:
        address, _, port = endpoint.rpartition(":")
        name += f"{_ENDPOINT_SEPARATOR}{address.strip('[]').replace(':', '.')}/{port}"
    return f"{_base32_sha256(name)[:8]}-{name}"


def nftables_chain(role: str, service: ServicePort, protocol: str, endpoint: str | None = None) -> str:
    """`service-<hash>-ns/name/tcp/port`, `endpoint-<hash>-ns/name/tcp/port__ip/port`, … in table `kube-proxy`."""
    return f"{role}-{_nftables_base(service, protocol, endpoint)}"


class NftablesChain(NamedTuple):
    """What a kube-proxy nftables chain name says: its role, service port, protocol and endpoint."""

    role: str
    service: ServicePort
    protocol: str
    endpoint: str | None


def decode_nftables_chain(chain: str) -> NftablesChain | None:
    """The service (and endpoint) a kube-proxy nftables chain is named after; None for any other name.

    The name's hash must be the hash of the rest, so a chain that only looks
    like one of kube-proxy's is not taken for one.
    """
    role, dash, based = chain.partition("-")
    if not dash or role not in NFTABLES_PREFIXES:
        return None
    digest, dash, name = based.partition("-")
    if not dash or len(digest) != 8 or _base32_sha256(name)[:8] != digest:
        return None
    service_part, separator, endpoint_part = name.partition(_ENDPOINT_SEPARATOR)
    fields = service_part.split("/")
    if len(fields) != 4:
        return None
    namespace, service_name, protocol, port = fields
    endpoint = _endpoint_from_chain(endpoint_part) if separator else None
    if separator and endpoint is None:
        return None
    return NftablesChain(role, ServicePort(namespace, service_name, port), protocol, endpoint)


def _endpoint_from_chain(text: str) -> str | None:
    """`10.180.0.1/80` → `10.180.0.1:80`; an IPv6 address has its colons as dots (`fd00.10..1/80`)."""
    address, slash, port = text.rpartition("/")
    if not slash or not port.isdigit():
        return None
    for candidate in (address, address.replace(".", ":")):
        try:
            parsed = ip_address(candidate)
        except ValueError:
            continue
        return f"[{parsed}]:{port}" if parsed.version == 6 else f"{parsed}:{port}"
    return None
