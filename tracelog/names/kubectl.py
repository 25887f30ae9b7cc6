"""Names from a Kubernetes cluster: pods, services, endpoints and nodes as `kubectl get … -o json` lists them.

`kubectl get pods -A -o json`, `kubectl get svc -A -o json` and `kubectl get
endpointslices -A -o json` print a v1 `List` of objects (docs/kubernetes.md
names the fields read).  From them tracelog names pod addresses
`namespace/name`, service addresses `namespace/name`, node addresses by the
node's name, Calico's host interfaces by their pod, and computes the names
of kube-proxy's iptables chains (`KUBE-SVC-…`, `KUBE-SEP-…`), so that a
trace without rule comments still says which service and endpoint it went
through.  A cni0 bridge's veths are named by the node only (through their
peers in the pods' namespaces), never by kubectl.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from tracelog.chains.kubernetes import (
    IPTABLES_SERVICE_PREFIXES,
    KubeContext,
    NamedChain,
    ServiceAddress,
    ServicePort,
    iptables_endpoint_chain,
    iptables_hash,
)
from tracelog.errors import InputError, Unavailable

Address = IPv4Address | IPv6Address
KUBECTL_HINT = "expected kubectl get pods, svc or endpointslices -A -o json output"
KUBERNETES = "kubernetes"
"""The `--names` word that asks the cluster through `kubectl`."""
KUBECTL_TIMEOUT = 30.0
KUBECTL_ARGV = ("kubectl", "get", "pods,services,endpointslices", "--all-namespaces", "--output=json")
# Calico's host-side interface of a pod: its prefix and the first 11 hex digits of SHA-1 of `namespace.pod`
CALICO_PREFIX = "cali"
_CALICO_DIGITS = 11
_KINDS = frozenset({"Pod", "Service", "EndpointSlice"})


@dataclass(frozen=True, slots=True)
class Pod:
    """A pod with an address of its own (host-network pods have the node's)."""

    namespace: str
    name: str
    node: str | None
    addresses: tuple[Address, ...]

    @property
    def key(self) -> str:
        """`namespace/name`: how tracelog names a pod."""
        return f"{self.namespace}/{self.name}"

    @property
    def calico_interface(self) -> str:
        """The host-side interface Calico gives this pod (`cali` + 11 hex digits)."""
        digest = hashlib.sha1(f"{self.namespace}.{self.name}".encode()).hexdigest()
        return CALICO_PREFIX + digest[:_CALICO_DIGITS]


@dataclass(frozen=True, slots=True)
class Service:
    """One port of a service and every address it takes traffic on."""

    port: ServicePort
    protocol: str
    number: int
    node_port: int | None
    addresses: tuple[Address, ...]  # cluster IPs, external IPs, load-balancer IPs


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One endpoint of a service port as an EndpointSlice lists it, with its pod when the slice names it."""

    service: str  # namespace/name of the service
    port_name: str
    protocol: str
    address: Address
    port: int
    pod: str | None

    @property
    def text(self) -> str:
        """`ip:port`, as kube-proxy writes it (`[ip]:port` for IPv6)."""
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Cluster:
    """What kubectl output says of a cluster: pods, nodes' addresses, service ports and endpoints."""

    pods: tuple[Pod, ...] = ()
    nodes: Mapping[Address, str] = field(default_factory=dict)
    services: tuple[Service, ...] = ()
    endpoints: tuple[Endpoint, ...] = ()

    def merge(self, other: Cluster) -> Cluster:
        """Both clusters' objects; `other`'s node names win."""
        return Cluster(
            (*self.pods, *other.pods),
            {**self.nodes, **other.nodes},
            (*self.services, *other.services),
            (*self.endpoints, *other.endpoints),
        )

    def addresses(self) -> dict[Address, str]:
        """Address → name: pods as `namespace/name`, service addresses as `namespace/name`, nodes by name."""
        named: dict[Address, str] = {}
        for service in self.services:
            named.update(dict.fromkeys(service.addresses, f"{service.port.namespace}/{service.port.name}"))
        named.update({endpoint.address: endpoint.pod for endpoint in self.endpoints if endpoint.pod})
        for pod in self.pods:
            named.update(dict.fromkeys(pod.addresses, pod.key))
        named.update(self.nodes)
        return named

    def interfaces(self) -> dict[str, str]:
        """Calico host interface → pod, for every pod with an address of its own."""
        return {pod.calico_interface: pod.key for pod in self.pods}

    def context(self) -> KubeContext:
        """What the trace decoder needs: kube-proxy's chain names, service addresses and pods."""
        return KubeContext(chains=self._chains(), services=self._service_addresses(), pods=self._pod_names())

    def _chains(self) -> dict[str, NamedChain]:
        chains: dict[str, NamedChain] = {}
        for service in self.services:
            digest = iptables_hash(service.port, service.protocol)
            for prefix, role in IPTABLES_SERVICE_PREFIXES.items():
                chains[prefix + digest] = NamedChain(role, service.port)
        for endpoint, port in self._endpoint_ports():
            chain = iptables_endpoint_chain(port, endpoint.protocol, endpoint.text)
            chains[chain] = NamedChain("endpoint", port, endpoint.text)
        return chains

    def _endpoint_ports(self) -> Iterator[tuple[Endpoint, ServicePort]]:
        """Each endpoint with the service port it serves (the slice's port of the same name)."""
        for endpoint in self.endpoints:
            namespace, _, name = endpoint.service.partition("/")
            yield endpoint, ServicePort(namespace, name, endpoint.port_name)

    def _service_addresses(self) -> dict[ServiceAddress, ServicePort]:
        found: dict[ServiceAddress, ServicePort] = {}
        for service in self.services:
            for address in service.addresses:
                found[ServiceAddress(str(address), service.protocol, service.number)] = service.port
            if service.node_port is not None:
                for node in self.nodes:
                    found[ServiceAddress(str(node), service.protocol, service.node_port)] = service.port
        return found

    def _pod_names(self) -> dict[str, str]:
        return {str(address): pod.key for pod in self.pods for address in pod.addresses}


# --- reading kubectl output ---------------------------------------------------------------------


def is_kubectl_output(decoded: Any) -> bool:
    """Whether decoded JSON is what `kubectl get … -o json` prints: a List of objects, or one object."""
    return isinstance(decoded, dict) and isinstance(decoded.get("apiVersion"), str) and "kind" in decoded


def cluster_from_kubectl(decoded: Any, source: str) -> Cluster:
    """The pods, nodes, services and endpoints of decoded kubectl output; other kinds of object are passed over.

    Raises `InputError` naming `source` and the object for an object whose
    fields are missing or of the wrong type.
    """
    if not is_kubectl_output(decoded):
        raise InputError(f"{source}: not kubectl JSON output", hint=KUBECTL_HINT)
    items = decoded.get("items") if decoded["kind"] == "List" or decoded["kind"].endswith("List") else [decoded]
    if not isinstance(items, list):
        raise InputError(f"{source}: a List without items", hint=KUBECTL_HINT)
    cluster = Cluster()
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict) or item.get("kind") not in _KINDS:
            continue
        try:
            cluster = cluster.merge(_read_object(item))
        # a field missing or of the wrong type, or an address that is not one
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            raise InputError(f"{source}: object {number} ({_object_name(item)}) is malformed: {error}") from error
    return cluster


def _object_name(item: Mapping[str, Any]) -> str:
    metadata = item.get("metadata") or {}
    return f"{item.get('kind')} {metadata.get('namespace', '')}/{metadata.get('name', '?')}"


def _read_object(item: Mapping[str, Any]) -> Cluster:
    kind = item["kind"]
    if kind == "Pod":
        return _read_pod(item)
    if kind == "Service":
        return Cluster(services=tuple(_read_service(item)))
    return Cluster(endpoints=tuple(_read_slice(item)))


def _read_pod(item: Mapping[str, Any]) -> Cluster:
    """A pod, and the node it runs on with the node's addresses (a host-network pod names only its node)."""
    metadata, spec, status = item["metadata"], item.get("spec") or {}, item.get("status") or {}
    node = spec.get("nodeName")
    host_ips = [entry["ip"] for entry in status.get("hostIPs") or []] or [status.get("hostIP")]
    nodes = {ip_address(text): str(node) for text in host_ips if text and node}
    if spec.get("hostNetwork"):
        return Cluster(nodes=nodes)
    pod_ips = [entry["ip"] for entry in status.get("podIPs") or []] or [status.get("podIP")]
    addresses = tuple(ip_address(text) for text in pod_ips if text)
    pod = Pod(str(metadata["namespace"]), str(metadata["name"]), node, addresses)
    return Cluster(pods=(pod,) if addresses else (), nodes=nodes)


def _read_service(item: Mapping[str, Any]) -> Iterator[Service]:
    """Each port of a service, with the cluster, external and load-balancer addresses it answers on."""
    metadata, spec = item["metadata"], item["spec"]
    cluster_ips = spec.get("clusterIPs") or [spec.get("clusterIP")]
    ingress = ((item.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    texts = [*cluster_ips, *(spec.get("externalIPs") or []), *(entry.get("ip") for entry in ingress)]
    addresses = tuple(ip_address(text) for text in texts if text and text != "None")
    for port in spec.get("ports") or []:
        name = ServicePort(str(metadata["namespace"]), str(metadata["name"]), str(port.get("name") or ""))
        node_port = port.get("nodePort")
        protocol = str(port.get("protocol", "TCP")).lower()
        yield Service(name, protocol, int(port["port"]), int(node_port) if node_port else None, addresses)


def _read_slice(item: Mapping[str, Any]) -> Iterator[Endpoint]:
    """Each address and port of an EndpointSlice (discovery.k8s.io/v1), with the pod it names."""
    metadata = item["metadata"]
    service = (metadata.get("labels") or {}).get("kubernetes.io/service-name")
    if not service:
        return
    key = f"{metadata['namespace']}/{service}"
    for endpoint in item.get("endpoints") or []:
        target = endpoint.get("targetRef") or {}
        pod = f"{target['namespace']}/{target['name']}" if target.get("kind") == "Pod" else None
        for port in item.get("ports") or []:
            protocol = str(port.get("protocol", "TCP")).lower()
            for text in endpoint["addresses"]:
                yield Endpoint(key, str(port.get("name") or ""), protocol, ip_address(text), int(port["port"]), pod)


def read_kubectl_files(decoded_files: Iterable[tuple[Any, str]]) -> Cluster:
    """One cluster from several decoded kubectl outputs (pods, services, endpointslices), with their sources."""
    cluster = Cluster()
    for decoded, source in decoded_files:
        cluster = cluster.merge(cluster_from_kubectl(decoded, source))
    return cluster


# --- asking the cluster ---------------------------------------------------------------------------


def ask_kubectl(timeout: float = KUBECTL_TIMEOUT) -> Cluster:
    """The cluster `kubectl` on the PATH answers for: its pods, services and endpoint slices.

    Raises `Unavailable` with one line saying why when kubectl is missing,
    fails (no cluster, no credentials) or does not answer in time.
    """
    if shutil.which(KUBECTL_ARGV[0]) is None:
        raise Unavailable("kubectl is not on the PATH", hint="install kubectl or give saved kubectl -o json output")
    try:
        done = subprocess.run(KUBECTL_ARGV, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as error:
        raise Unavailable(f"kubectl did not answer within {timeout:.0f} s") from error
    except OSError as error:
        raise Unavailable(f"kubectl could not run: {error.strerror}") from error
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise Unavailable(f"kubectl failed: {reason}", hint="check the kubeconfig and the cluster")
    try:
        decoded = json.loads(done.stdout)
    except json.JSONDecodeError as error:
        raise Unavailable(f"kubectl printed no JSON: {error.msg}") from error
    return cluster_from_kubectl(decoded, "kubectl")
