"""The Kubernetes lab's cluster, and what its node's rule writers would load for it.

One node, four pods on a `cni0` bridge, three services and one
NetworkPolicy.  From that definition this module writes, following the
layouts docs/kubernetes.md describes:

- kube-proxy's iptables-mode ruleset (`iptables_ruleset`), with kubelet's
  `KUBE-FIREWALL`, kube-router's NetworkPolicy chains and a flannel-style
  forward chain, loaded with `iptables-restore` or `iptables-nft-restore`;
- kube-proxy's nftables-mode table (`nftables_ruleset`), loaded with
  `nft -f`, beside the NetworkPolicy and forward chains (`policy_ruleset`);
- what `kubectl get pods/svc/endpointslices -A -o json` prints for it.

Chain names come from tracelog's own hashing (`tracelog.chains.kubernetes`),
which the unit tests pin to upstream's published test vectors.  Nothing
here needs root; `tests/lab/k8s.py` builds and drives the node.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from tracelog.chains.kubernetes import (
    NFTABLES_TABLE,
    ServicePort,
    iptables_endpoint_chain,
    iptables_hash,
    nftables_chain,
)

NODE_NAME = "node-1"
NODE_IP = "198.51.100.2"  # the node's uplink, on TEST-NET-2
EXTERNAL_IP = "198.51.100.10"  # a client outside the cluster, on the same segment
UPLINK_PREFIX = 24
BRIDGE = "cni0"
GATEWAY = "10.244.1.1"  # cni0's address: the pods' default gateway
POD_CIDR = "10.244.1.0/24"  # this node's share of the cluster CIDR
CLUSTER_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
MASQUERADE_MARK = "0x004000"  # 1 << 14, as kube-proxy formats it (%#08x)
POLICY_MARK = "0x10000/0x10000"  # kube-router's "a policy accepted this" mark
API_SERVER_PORT = 6443
CREATED = "2026-12-01T09:00:00Z"
# kube-router's words, typo included
LOCAL_NODE_COMMENT = "rule to permit the traffic traffic to pods when source is the pod's local node"


@dataclass(frozen=True)
class Pod:
    """A pod: a network namespace whose eth0 is a veth port on cni0."""

    namespace: str
    name: str
    ip: str
    app: str
    port: int | None = None  # what it listens on (busybox httpd), None for a client

    @property
    def key(self) -> str:
        """`namespace/name`, as tracelog names pods."""
        return f"{self.namespace}/{self.name}"

    @property
    def veth(self) -> str:
        """The host-side veth: `veth` + 8 hex digits, as the bridge CNI plugin names them (here stable)."""
        return "veth" + hashlib.sha1(self.key.encode()).hexdigest()[:8]

    @property
    def mac(self) -> str:
        """A stable MAC: 0a:58 and the four address bytes."""
        return "0a:58:" + ":".join(f"{int(octet):02x}" for octet in self.ip.split("."))

    @property
    def uid(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"pod/{self.key}"))


@dataclass(frozen=True)
class Port:
    """One service port: its name, the port, the endpoints' port and, for a NodePort service, the node port."""

    name: str
    port: int
    target_port: int
    protocol: str = "TCP"
    node_port: int | None = None


@dataclass(frozen=True)
class Service:
    """A ClusterIP or NodePort service and the pods (or node addresses) behind it."""

    namespace: str
    name: str
    cluster_ip: str
    port: Port
    app: str | None  # the selector's app label; None for a service without selector
    endpoint_ips: tuple[str, ...] = ()  # endpoints of a service without selector (the API server)

    @property
    def service_port(self) -> ServicePort:
        return ServicePort(self.namespace, self.name, self.port.name)

    @property
    def protocol(self) -> str:
        return self.port.protocol.lower()

    @property
    def type(self) -> str:
        return "NodePort" if self.port.node_port is not None else "ClusterIP"

    def endpoints(self, pods: tuple[Pod, ...]) -> tuple[str, ...]:
        """`ip:port` of each endpoint, in the order kube-proxy lists them (by address)."""
        addresses = [pod.ip for pod in pods if pod.app == self.app] if self.app else list(self.endpoint_ips)
        return tuple(f"{address}:{self.port.target_port}" for address in sorted(addresses, key=_address_key))


def _address_key(address: str) -> tuple[int, ...]:
    return tuple(int(octet) for octet in address.split("."))


@dataclass(frozen=True)
class Policy:
    """A NetworkPolicy that lets only pods of one app reach a pod on one port."""

    namespace: str
    name: str
    target: Pod
    allowed_app: str
    port: int


@dataclass(frozen=True)
class Cluster:
    """The whole lab cluster: one node's pods, the services and the policies."""

    pods: tuple[Pod, ...]
    services: tuple[Service, ...]
    policies: tuple[Policy, ...]

    def pod(self, name: str) -> Pod:
        return next(pod for pod in self.pods if pod.name == name)

    def service(self, name: str) -> Service:
        return next(service for service in self.services if service.name == name)

    def endpoint_pod(self, endpoint: str) -> Pod | None:
        address = endpoint.rpartition(":")[0]
        return next((pod for pod in self.pods if pod.ip == address), None)


CLIENT = Pod("default", "client-5f6d7-klmno", "10.244.1.10", "client")
WEB_1 = Pod("default", "web-7d4b9c-fghij", "10.244.1.11", "web", 8080)
WEB_2 = Pod("default", "web-7d4b9c-xzvbn", "10.244.1.12", "web", 8080)
DB = Pod("default", "db-0", "10.244.1.13", "db", 5432)
CLUSTER = Cluster(
    pods=(CLIENT, WEB_1, WEB_2, DB),
    services=(
        Service("default", "kubernetes", "10.96.0.1", Port("https", 443, API_SERVER_PORT), None, (NODE_IP,)),
        Service("default", "web", "10.96.100.10", Port("http", 80, 8080, node_port=30080), "web"),
        Service("default", "empty", "10.96.100.20", Port("http", 80, 8080), "empty"),
    ),
    policies=(Policy("default", "db-allow-web", DB, "web", 5432),),
)


# -- iptables mode -----------------------------------------------------------------

# kube-proxy's jump rules in the order it prepends them (docs/kubernetes.md): table, from, to, comment, match
_KUBE_PROXY_JUMPS = (
    (
        "filter",
        "INPUT",
        "KUBE-EXTERNAL-SERVICES",
        "kubernetes externally-visible service portals",
        "-m conntrack --ctstate NEW",
    ),
    (
        "filter",
        "FORWARD",
        "KUBE-EXTERNAL-SERVICES",
        "kubernetes externally-visible service portals",
        "-m conntrack --ctstate NEW",
    ),
    ("filter", "INPUT", "KUBE-NODEPORTS", "kubernetes health check service ports", ""),
    ("filter", "FORWARD", "KUBE-SERVICES", "kubernetes service portals", "-m conntrack --ctstate NEW"),
    ("filter", "OUTPUT", "KUBE-SERVICES", "kubernetes service portals", "-m conntrack --ctstate NEW"),
    ("filter", "FORWARD", "KUBE-FORWARD", "kubernetes forwarding rules", ""),
    ("filter", "INPUT", "KUBE-PROXY-FIREWALL", "kubernetes load balancer firewall", "-m conntrack --ctstate NEW"),
    ("filter", "OUTPUT", "KUBE-PROXY-FIREWALL", "kubernetes load balancer firewall", "-m conntrack --ctstate NEW"),
    ("filter", "FORWARD", "KUBE-PROXY-FIREWALL", "kubernetes load balancer firewall", "-m conntrack --ctstate NEW"),
    ("nat", "OUTPUT", "KUBE-SERVICES", "kubernetes service portals", ""),
    ("nat", "PREROUTING", "KUBE-SERVICES", "kubernetes service portals", ""),
    ("nat", "POSTROUTING", "KUBE-POSTROUTING", "kubernetes postrouting rules", ""),
    # kubelet's firewall chain, which kube-proxy also ensures, without a comment
    ("filter", "INPUT", "KUBE-FIREWALL", "", ""),
    ("filter", "OUTPUT", "KUBE-FIREWALL", "", ""),
)
_BUILTIN = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
}
_CANARIES = ("KUBE-KUBELET-CANARY", "KUBE-PROXY-CANARY")


def _q(text: str) -> str:
    """A comment as kube-proxy writes it into restore input: quoted when it has blanks."""
    return f'"{text}"' if " " in text else text


def _comment(text: str) -> str:
    return f"-m comment --comment {_q(text)}"


class _Table:
    """One table of a restore file being assembled: its chains, in order, and their rules."""

    def __init__(self, name: str, policies: dict[str, str] | None = None) -> None:
        self.name = name
        self.policies = policies or {}
        self.chains: dict[str, list[str]] = {chain: [] for chain in _BUILTIN.get(name, ())}

    def chain(self, name: str) -> list[str]:
        return self.chains.setdefault(name, [])

    def append(self, chain: str, rule: str) -> None:
        self.chain(chain).append(rule)

    def prepend(self, chain: str, rule: str) -> None:
        self.chain(chain).insert(0, rule)

    def text(self) -> str:
        builtin = _BUILTIN.get(self.name, ())
        lines = [f"*{self.name}"]
        lines += [
            f":{chain} {self.policies.get(chain, 'ACCEPT') if chain in builtin else '-'} [0:0]" for chain in self.chains
        ]
        lines += [f"-A {chain} {rule}" for chain, rules in self.chains.items() for rule in rules]
        return "\n".join([*lines, "COMMIT", ""])


def _kube_proxy_tables(cluster: Cluster) -> dict[str, _Table]:
    """filter, nat and mangle as kube-proxy (iptables mode) and kubelet leave them."""
    tables = {
        name: _Table(name, {"FORWARD": "DROP"} if name == "filter" else None) for name in ("mangle", "filter", "nat")
    }
    filter_, nat = tables["filter"], tables["nat"]
    tables["mangle"].chain("KUBE-IPTABLES-HINT")
    for table in tables.values():
        for canary in _CANARIES:
            table.chain(canary)
    for chain in ("KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD", "KUBE-NODEPORTS", "KUBE-PROXY-FIREWALL"):
        filter_.chain(chain)
    for chain in ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"):
        nat.chain(chain)
    for table_name, source, target, comment, match in _KUBE_PROXY_JUMPS:
        words = [match, _comment(comment) if comment else "", f"-j {target}"]
        tables[table_name].prepend(source, " ".join(word for word in words if word))
    nat.append("KUBE-POSTROUTING", f"-m mark ! --mark {MASQUERADE_MARK}/{MASQUERADE_MARK} -j RETURN")
    nat.append("KUBE-POSTROUTING", f"-j MARK --xor-mark {MASQUERADE_MARK}")
    nat.append(
        "KUBE-POSTROUTING", f"{_comment('kubernetes service traffic requiring SNAT')} -j MASQUERADE --random-fully"
    )
    nat.append("KUBE-MARK-MASQ", f"-j MARK --or-mark {MASQUERADE_MARK}")
    filter_.append(
        "KUBE-FIREWALL",
        f"{_comment('block incoming localnet connections')} -d 127.0.0.0/8 ! -s 127.0.0.0/8 "
        "-m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP",
    )
    for service in sorted(cluster.services, key=lambda service: str(service.service_port)):
        _add_service(filter_, nat, service, service.endpoints(cluster.pods))
    nat.append(
        "KUBE-SERVICES",
        f"{_comment('kubernetes service nodeports; NOTE: this must be the last rule in this chain')} "
        "-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS",
    )
    filter_.append("KUBE-FORWARD", "-m conntrack --ctstate INVALID -j DROP")
    filter_.append(
        "KUBE-FORWARD",
        f"{_comment('kubernetes forwarding rules')} -m mark --mark {MASQUERADE_MARK}/{MASQUERADE_MARK} -j ACCEPT",
    )
    filter_.append(
        "KUBE-FORWARD",
        f"{_comment('kubernetes forwarding conntrack rule')} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    )
    return tables


def _add_service(filter_: _Table, nat: _Table, service: Service, endpoints: tuple[str, ...]) -> None:
    """One service port's rules, as kube-proxy's syncProxyRules writes them (Cluster traffic policies)."""
    name, proto, port = str(service.service_port), service.protocol, service.port
    match = f"-m {proto} -p {proto} -d {service.cluster_ip} --dport {port.port}"
    if not endpoints:
        filter_.append("KUBE-SERVICES", f"{_comment(f'{name} has no endpoints')} {match} -j REJECT")
        if port.node_port is not None:
            filter_.append(
                "KUBE-EXTERNAL-SERVICES",
                f"{_comment(f'{name} has no endpoints')} -m addrtype --dst-type LOCAL -m {proto} -p {proto} "
                f"--dport {port.node_port} -j REJECT",
            )
        return
    digest = iptables_hash(service.service_port, proto)
    svc, ext = f"KUBE-SVC-{digest}", f"KUBE-EXT-{digest}"
    nat.append("KUBE-SERVICES", f"{_comment(f'{name} cluster IP')} {match} -j {svc}")
    if port.node_port is not None:
        nat.append("KUBE-NODEPORTS", f"{_comment(name)} -m {proto} -p {proto} --dport {port.node_port} -j {ext}")
        nat.append(ext, f"{_comment(f'masquerade traffic for {name} external destinations')} -j KUBE-MARK-MASQ")
        nat.append(ext, f"-j {svc}")
    nat.append(svc, f"{_comment(f'{name} cluster IP')} {match} ! -s {CLUSTER_CIDR} -j KUBE-MARK-MASQ")
    for index, endpoint in enumerate(endpoints):
        sep = iptables_endpoint_chain(service.service_port, proto, endpoint)
        remaining = len(endpoints) - index
        statistic = f" -m statistic --mode random --probability {1.0 / remaining:0.10f}" if remaining > 1 else ""
        nat.append(svc, f"{_comment(f'{name} -> {endpoint}')}{statistic} -j {sep}")
        nat.append(sep, f"{_comment(name)} -s {endpoint.rpartition(':')[0]} -j KUBE-MARK-MASQ")
        nat.append(sep, f"{_comment(name)} -m {proto} -p {proto} -j DNAT --to-destination {endpoint}")


def _policy_rules(filter_: _Table, cluster: Cluster) -> None:
    """kube-router's chains for each policy's target pod, and a flannel-style forward chain for the pod network.

    kube-router matches peers through ipsets; the lab matches their addresses
    with `-s` instead (docs/kubernetes.md).
    """
    for hook in ("INPUT", "FORWARD", "OUTPUT"):
        filter_.chain(f"KUBE-ROUTER-{hook}")
        filter_.prepend(hook, f"{_comment('kube-router netpol - ' + _digest('netpol'))} -j KUBE-ROUTER-{hook}")
    for policy in cluster.policies:
        pod = policy.target
        pod_fw = "KUBE-POD-FW-" + _digest(f"{pod.namespace}{pod.name}v1")
        policy_chain = "KUBE-NWPLCY-" + _digest(f"{policy.namespace}{policy.name}v1IPv4")
        jump = f"rule to jump traffic destined to POD name:{pod.name} namespace: {pod.namespace} to chain {pod_fw}"
        filter_.append(
            "KUBE-ROUTER-FORWARD", f"-m physdev --physdev-is-bridged {_comment(jump)} -d {pod.ip} -j {pod_fw}"
        )
        filter_.append("KUBE-ROUTER-FORWARD", f"{_comment(jump)} -d {pod.ip} -j {pod_fw}")
        filter_.append("KUBE-ROUTER-OUTPUT", f"{_comment(jump)} -d {pod.ip} -j {pod_fw}")
        sources = ",".join(peer.ip for peer in cluster.pods if peer.app == policy.allowed_app)
        accepted = (
            f"rule to ACCEPT traffic from source pods to dest pods selected by policy name {policy.name} "
            f"namespace {policy.namespace}"
        )
        matched = f"{_comment(accepted)} -s {sources} -d {pod.ip} -p tcp -m tcp --dport {policy.port}"
        filter_.append(policy_chain, f"{matched} -j MARK --set-xmark {POLICY_MARK}")
        filter_.append(policy_chain, f"{matched} -m mark --mark {POLICY_MARK} -j RETURN")
        who = f"POD name:{pod.name} namespace: {pod.namespace}"
        unmarked = f"-m mark ! --mark {POLICY_MARK}"
        for rule in (
            f"{_comment('rule for stateful firewall for pod')} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            f"{_comment(LOCAL_NODE_COMMENT)} -m addrtype --src-type LOCAL -d {pod.ip} -j ACCEPT",
            f"{_comment(f'run through nw policy {policy.name}')} -j {policy_chain}",
            f"{_comment(f'rule to log dropped traffic {who}')} {unmarked} -j NFLOG --nflog-group 100",
            f"{_comment(f'rule to REJECT traffic destined for {who}')} {unmarked} -j REJECT",
            "-j MARK --set-mark 0/0x10000",
        ):
            filter_.append(pod_fw, rule)
    filter_.append("FORWARD", f"{_comment('flanneld forward')} -j FLANNEL-FWD")
    filter_.append("FLANNEL-FWD", f"-s {CLUSTER_CIDR} {_comment('flanneld forward')} -j ACCEPT")
    filter_.append("FLANNEL-FWD", f"-d {CLUSTER_CIDR} {_comment('flanneld forward')} -j ACCEPT")


def _digest(text: str) -> str:
    """kube-router's chain hash: base32 of SHA-256, 16 characters (its input holds a sync version, so not names)."""
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def iptables_ruleset(cluster: Cluster = CLUSTER) -> str:
    """iptables-restore input for the whole node in iptables mode: kube-proxy, kubelet, kube-router, CNI."""
    tables = _kube_proxy_tables(cluster)
    _policy_rules(tables["filter"], cluster)
    return "".join(table.text() for table in tables.values())


def policy_ruleset(cluster: Cluster = CLUSTER) -> str:
    """iptables-restore input for what stays in iptables when kube-proxy runs in nftables mode."""
    mangle = _Table("mangle")
    mangle.chain("KUBE-IPTABLES-HINT")
    mangle.chain("KUBE-KUBELET-CANARY")
    filter_ = _Table("filter", {"FORWARD": "DROP"})
    _policy_rules(filter_, cluster)
    return mangle.text() + filter_.text()


def trace_ruleset() -> str:
    """raw-table TRACE rules for the lab's traffic: from pods and the uplink segment, and to pods."""
    return "\n".join(
        [
            "*raw",
            ":PREROUTING ACCEPT [0:0]",
            ":OUTPUT ACCEPT [0:0]",
            f"-A PREROUTING -s {CLUSTER_CIDR} -j TRACE",
            f"-A PREROUTING -s {EXTERNAL_IP}/32 -j TRACE",
            f"-A OUTPUT -d {CLUSTER_CIDR} -j TRACE",
            "COMMIT",
            "",
        ]
    )


# -- nftables mode -----------------------------------------------------------------

# base chains, as `<type>-<hook>` with kube-proxy's priorities (dstnat = -100, srcnat = 100)
_NFT_BASE_CHAINS = (
    ("filter-prerouting", "filter", "prerouting", -110),
    ("filter-input", "filter", "input", -110),
    ("filter-forward", "filter", "forward", -110),
    ("filter-output", "filter", "output", -110),
    ("filter-output-post-dnat", "filter", "output", -90),
    ("nat-prerouting", "nat", "prerouting", -100),
    ("nat-output", "nat", "output", -100),
    ("nat-postrouting", "nat", "postrouting", 100),
)
_NFT_JUMPS = (
    ("filter-input", "nodeport-endpoints-check", "ct state new"),
    ("filter-input", "service-endpoints-check", "ct state new"),
    ("filter-forward", "service-endpoints-check", "ct state new"),
    ("filter-output", "service-endpoints-check", "ct state new"),
    ("filter-prerouting", "firewall-check", "ct state new"),
    ("filter-output", "firewall-check", "ct state new"),
    ("nat-output", "services", ""),
    ("nat-prerouting", "services", ""),
    ("nat-postrouting", "masquerading", ""),
    ("filter-forward", "cluster-ips-check", "ct state new"),
    ("filter-output-post-dnat", "cluster-ips-check", "ct state new"),
)
_NFT_MAPS = (
    (
        "no-endpoint-services",
        "ipv4_addr . inet_proto . inet_service : verdict",
        "vmap to drop or reject packets to services with no endpoints",
    ),
    (
        "no-endpoint-nodeports",
        "inet_proto . inet_service : verdict",
        "vmap to drop or reject packets to service nodeports with no endpoints",
    ),
    (
        "firewall-ips",
        "ipv4_addr . inet_proto . inet_service : verdict",
        "destinations that are subject to LoadBalancerSourceRanges",
    ),
    (
        "service-ips",
        "ipv4_addr . inet_proto . inet_service : verdict",
        "ClusterIP, ExternalIP and LoadBalancer IP traffic",
    ),
    ("service-nodeports", "inet_proto . inet_service : verdict", "NodePort traffic"),
)


def nftables_ruleset(cluster: Cluster = CLUSTER) -> str:
    """`nft -f` input for table `ip kube-proxy` as kube-proxy's nftables mode builds it (node ports on the node IP)."""
    table = f"ip {NFTABLES_TABLE}"
    lines = [f'add table {table} {{ comment "rules for kube-proxy" ; }}']
    for name, kind, hook, priority in _NFT_BASE_CHAINS:
        lines.append(f"add chain {table} {name} {{ type {kind} hook {hook} priority {priority} ; }}")
    for chain in (
        "nodeport-endpoints-check",
        "service-endpoints-check",
        "firewall-check",
        "services",
        "masquerading",
        "cluster-ips-check",
        "mark-for-masquerade",
    ):
        lines.append(f"add chain {table} {chain}")
    for source, target, match in _NFT_JUMPS:
        lines.append(f"add rule {table} {source} {match + ' ' if match else ''}jump {target}")
    lines += [
        f"add rule {table} mark-for-masquerade mark set mark or {MASQUERADE_MARK}",
        f"add rule {table} masquerading mark and {MASQUERADE_MARK} == 0 return",
        f"add rule {table} masquerading mark set mark xor {MASQUERADE_MARK}",
        f"add rule {table} masquerading masquerade fully-random",
        f'add set {table} cluster-ips {{ type ipv4_addr ; comment "Active ClusterIPs" ; }}',
        f"add rule {table} cluster-ips-check ip daddr @cluster-ips reject "
        'comment "Reject traffic to invalid ports of ClusterIPs"',
        f"add rule {table} cluster-ips-check ip daddr {{ {SERVICE_CIDR} }} drop "
        'comment "Drop traffic to unallocated ClusterIPs"',
        f'add set {table} nodeport-ips {{ type ipv4_addr ; comment "IPs that accept NodePort traffic" ; }}',
        f"add element {table} nodeport-ips {{ {NODE_IP} }}",
    ]
    lines += [f'add map {table} {name} {{ type {kind} ; comment "{comment}" ; }}' for name, kind, comment in _NFT_MAPS]
    lines += [
        f'add chain {table} reject-chain {{ comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }}',
        f"add rule {table} reject-chain reject",
        f"add rule {table} service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services",
        f"add rule {table} nodeport-endpoints-check ip daddr @nodeport-ips meta l4proto . th dport "
        "vmap @no-endpoint-nodeports",
        f"add rule {table} firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips",
        f"add rule {table} services ip daddr . meta l4proto . th dport vmap @service-ips",
        f"add rule {table} services ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports",
    ]
    for service in sorted(cluster.services, key=lambda service: str(service.service_port)):
        lines += _nft_service(table, service, service.endpoints(cluster.pods))
    return "\n".join([*lines, ""])


def _nft_service(table: str, service: Service, endpoints: tuple[str, ...]) -> list[str]:
    """One service port's chains and map elements in nftables mode (Cluster traffic policies)."""
    spn, proto, port = service.service_port, service.protocol, service.port
    lines = [f"add element {table} cluster-ips {{ {service.cluster_ip} }}"]
    if not endpoints:
        key = f"{service.cluster_ip} . {proto} . {port.port}"
        lines.append(f'add element {table} no-endpoint-services {{ {key} comment "{spn}" : goto reject-chain }}')
        if port.node_port is not None:
            key = f"{proto} . {port.node_port}"
            lines.append(f'add element {table} no-endpoint-nodeports {{ {key} comment "{spn}" : goto reject-chain }}')
        return lines
    svc = nftables_chain("service", spn, proto)
    chains = [nftables_chain("endpoint", spn, proto, endpoint) for endpoint in endpoints]
    # every chain first, as kube-proxy's transaction does: the vmap below refers to the endpoint chains
    lines += [f"add chain {table} {chain}" for chain in (*chains, svc)]
    lines.append(
        f"add rule {table} {svc} ip daddr {service.cluster_ip} {proto} dport {port.port} "
        f"ip saddr != {CLUSTER_CIDR} jump mark-for-masquerade"
    )
    choices = " , ".join(f"{index} : goto {chain}" for index, chain in enumerate(chains))
    lines.append(f"add rule {table} {svc} numgen random mod {len(chains)} vmap {{ {choices} }}")
    if port.node_port is not None:
        ext = nftables_chain("external", spn, proto)
        lines += [
            f"add chain {table} {ext}",
            f"add rule {table} {ext} jump mark-for-masquerade",
            f"add rule {table} {ext} goto {svc}",
            f"add element {table} service-nodeports {{ {proto} . {port.node_port} : goto {ext} }}",
        ]
    for chain, endpoint in zip(chains, endpoints, strict=True):
        lines += [
            f"add rule {table} {chain} ip saddr {endpoint.rpartition(':')[0]} jump mark-for-masquerade",
            f"add rule {table} {chain} meta l4proto {proto} dnat to {endpoint}",
        ]
    lines.append(f"add element {table} service-ips {{ {service.cluster_ip} . {proto} . {port.port} : goto {svc} }}")
    return lines


def nftrace_ruleset() -> str:
    """A table of the node admin's own that switches nftrace on for the lab's traffic, in raw-priority chains."""
    return f"""\
table ip trace {{
	chain trace_prerouting {{
		type filter hook prerouting priority raw; policy accept;
		ip saddr {{ {CLUSTER_CIDR}, {EXTERNAL_IP} }} counter meta nftrace set 1
	}}

	chain trace_output {{
		type filter hook output priority raw; policy accept;
		ip daddr {CLUSTER_CIDR} counter meta nftrace set 1
	}}
}}
"""


# -- kubectl -o json ---------------------------------------------------------------


def _list(items: list[dict[str, Any]]) -> dict[str, Any]:
    """What `kubectl get … -A -o json` prints: a v1 List of the objects."""
    return {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}


def _uid(kind: str, key: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{kind}/{key}"))


def _pod_object(pod: Pod) -> dict[str, Any]:
    template_hash = pod.name.split("-")[1] if pod.app == "web" else None
    labels = {"app": pod.app, **({"pod-template-hash": template_hash} if template_hash else {})}
    container: dict[str, Any] = {
        "image": "busybox:1.36",
        "imagePullPolicy": "IfNotPresent",
        "name": pod.app,
        "resources": {},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }
    if pod.port is not None:
        container["command"] = ["httpd", "-f", "-p", str(pod.port)]
        container["ports"] = [
            {"containerPort": pod.port, "name": "http" if pod.app == "web" else "postgres", "protocol": "TCP"}
        ]
    else:
        container["command"] = ["sleep", "infinity"]
    return _pod_json(pod.namespace, pod.name, pod.uid, labels, [container], pod.ip, host_network=False)


def _pod_json(
    namespace: str,
    name: str,
    uid: str,
    labels: dict[str, str],
    containers: list[dict[str, Any]],
    ip: str,
    *,
    host_network: bool,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": containers,
        "dnsPolicy": "ClusterFirst",
        "enableServiceLinks": True,
        "nodeName": NODE_NAME,
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
        "serviceAccountName": "default",
        "terminationGracePeriodSeconds": 30,
    }
    if host_network:
        spec["hostNetwork"] = True
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "creationTimestamp": CREATED,
            "labels": labels,
            "name": name,
            "namespace": namespace,
            "resourceVersion": "1042",
            "uid": uid,
        },
        "spec": spec,
        "status": {
            "conditions": [{"lastProbeTime": None, "lastTransitionTime": CREATED, "status": "True", "type": "Ready"}],
            "hostIP": NODE_IP,
            "hostIPs": [{"ip": NODE_IP}],
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "qosClass": "BestEffort",
            "startTime": CREATED,
        },
    }


def kubectl_pods(cluster: Cluster = CLUSTER) -> dict[str, Any]:
    """`kubectl get pods -A -o json`: the lab's pods, and kube-proxy's host-network pod (whose IP is the node's)."""
    kube_proxy = _pod_json(
        "kube-system",
        "kube-proxy-x7k2p",
        _uid("pod", "kube-system/kube-proxy-x7k2p"),
        {"k8s-app": "kube-proxy"},
        [
            {
                "command": ["/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf"],
                "image": "registry.k8s.io/kube-proxy:v1.33.2",
                "name": "kube-proxy",
            }
        ],
        NODE_IP,
        host_network=True,
    )
    return _list([*(_pod_object(pod) for pod in cluster.pods), kube_proxy])


def kubectl_services(cluster: Cluster = CLUSTER) -> dict[str, Any]:
    """`kubectl get svc -A -o json` for the lab's services."""
    items = []
    for service in cluster.services:
        port: dict[str, Any] = {
            "name": service.port.name,
            "port": service.port.port,
            "protocol": service.port.protocol,
            "targetPort": service.port.target_port,
        }
        if service.port.node_port is not None:
            port["nodePort"] = service.port.node_port
        spec: dict[str, Any] = {
            "clusterIP": service.cluster_ip,
            "clusterIPs": [service.cluster_ip],
            "internalTrafficPolicy": "Cluster",
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "ports": [port],
            "sessionAffinity": "None",
            "type": service.type,
        }
        if service.app is not None:
            spec["selector"] = {"app": service.app}
        if service.type == "NodePort":
            spec["externalTrafficPolicy"] = "Cluster"
        key = f"{service.namespace}/{service.name}"
        labels = {"component": "apiserver", "provider": "kubernetes"} if service.app is None else {"app": service.app}
        items.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "creationTimestamp": CREATED,
                    "labels": labels,
                    "name": service.name,
                    "namespace": service.namespace,
                    "resourceVersion": "1100",
                    "uid": _uid("service", key),
                },
                "spec": spec,
                "status": {"loadBalancer": {}},
            }
        )
    return _list(items)


def kubectl_endpointslices(cluster: Cluster = CLUSTER) -> dict[str, Any]:
    """`kubectl get endpointslices -A -o json`: one slice per service (a placeholder without endpoints for `empty`)."""
    items = []
    for service in cluster.services:
        endpoints = []
        for endpoint in service.endpoints(cluster.pods):
            pod = cluster.endpoint_pod(endpoint)
            entry: dict[str, Any] = {
                "addresses": [endpoint.rpartition(":")[0]],
                "conditions": {"ready": True, "serving": True, "terminating": False},
                "nodeName": NODE_NAME,
            }
            if pod is not None:
                entry["targetRef"] = {"kind": "Pod", "name": pod.name, "namespace": pod.namespace, "uid": pod.uid}
            endpoints.append(entry)
        suffix = hashlib.sha1(service.name.encode()).hexdigest()[:5]
        name = service.name if service.app is None else f"{service.name}-{suffix}"
        ports = [{"name": service.port.name, "port": service.port.target_port, "protocol": service.port.protocol}]
        items.append(
            {
                "addressType": "IPv4",
                "apiVersion": "discovery.k8s.io/v1",
                "endpoints": endpoints or None,
                "kind": "EndpointSlice",
                "metadata": {
                    "creationTimestamp": CREATED,
                    "generation": 1,
                    "labels": {
                        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                        "kubernetes.io/service-name": service.name,
                    },
                    "name": name,
                    "namespace": service.namespace,
                    "ownerReferences": [
                        {
                            "apiVersion": "v1",
                            "blockOwnerDeletion": True,
                            "controller": True,
                            "kind": "Service",
                            "name": service.name,
                            "uid": _uid("service", f"{service.namespace}/{service.name}"),
                        }
                    ],
                    "resourceVersion": "1200",
                    "uid": _uid("endpointslice", f"{service.namespace}/{name}"),
                },
                "ports": ports if endpoints else None,
            }
        )
    return _list(items)
