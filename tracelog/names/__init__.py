"""Names for what a trace shows as numbers: container addresses, Docker and Podman bridges and host-side veths.

A timeline says `172.18.0.2` and `PHYSIN=veth1e06770`; a reader thinks `nginx-1`.
The names come from `docker inspect` / `docker network inspect` (or `podman
inspect` / `podman network inspect`) files saved while tracing, or live from
the Docker daemon or the Podman service.  Inspect output never names a
container's host-side veth, so only the live daemon (with root, to look inside
the container's network namespace) can name those.  Kubernetes pods, services
and nodes come from `kubectl get … -o json` output, or from kubectl itself
(`tracelog.names.kubectl`).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_interface
from pathlib import Path
from typing import Any, TypedDict

from tracelog.chains.kubernetes import NO_CONTEXT, KubeContext
from tracelog.errors import InputError, UsageError

# The Unix-socket transport and error text of the Engine API client already
# written for `tracelog docker`: one client, not two.
from tracelog.names.docker import (
    DOCKER_SERVICE,
    PODMAN_SERVICE,
    TIMEOUT,
    EngineService,
    container_from_inspect,
    docker_get,
    docker_socket,
    podman_socket,
)
from tracelog.names.kubectl import KUBERNETES, Cluster, ask_kubectl, cluster_from_kubectl, is_kubectl_output
from tracelog.sources import read_side_file

Address = IPv4Address | IPv6Address

INSPECT_HINT = "expected the JSON of docker or podman inspect, docker or podman network inspect, or kubectl get -o json"
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"
# Seconds for `ip link` inside a container's namespace: a local netlink dump.
LINK_TIMEOUT = 10.0
# a step's interfaces, in the order `interface_names` takes them, and the contract fields that name them
STEP_INTERFACES = ("in", "out", "physin", "physout")
STEP_NAME_KEYS = tuple(f"{key}_name" for key in STEP_INTERFACES)


class InterfaceNames(TypedDict):
    """The names of a step's four interfaces, each None when unknown (README, "Output contract")."""

    in_name: str | None
    out_name: str | None
    physin_name: str | None
    physout_name: str | None


@dataclass(frozen=True, slots=True)
class Names:
    """What a timeline may call an address or an interface instead of its number.

    `containers`: address → container name; `networks`: bridge interface
    (`docker0`, `br-<id>`, `podman1`) → network name; `veths`: host-side veth
    → container name; `network_ids`: network id → network name (netavark
    names its chains after the id); `cluster`: what kubectl says of the
    cluster's services and endpoints, to name kube-proxy's chains.
    """

    containers: Mapping[Address, str] = field(default_factory=dict)
    networks: Mapping[str, str] = field(default_factory=dict)
    veths: Mapping[str, str] = field(default_factory=dict)
    network_ids: Mapping[str, str] = field(default_factory=dict)
    cluster: KubeContext = NO_CONTEXT

    def __bool__(self) -> bool:
        return bool(self.containers or self.networks or self.veths or self.network_ids or self.cluster.chains)

    def merge(self, other: Names) -> Names:
        """Both sets of names; `other` wins where they disagree (a later snapshot)."""
        return Names(
            containers={**self.containers, **other.containers},
            networks={**self.networks, **other.networks},
            veths={**self.veths, **other.veths},
            network_ids={**self.network_ids, **other.network_ids},
            cluster=KubeContext(
                chains={**self.cluster.chains, **other.cluster.chains},
                services={**self.cluster.services, **other.cluster.services},
                pods={**self.cluster.pods, **other.cluster.pods},
            ),
        )

    def address(self, text: str | None) -> str | None:
        """The container that owns an address as a record prints it, or None."""
        if text is None or not self.containers:
            return None
        try:
            return self.containers.get(ip_address(text))
        except ValueError:
            return None

    def interface(self, name: str | None) -> str | None:
        """A bridge's network name or a host veth's container name, or None."""
        if name is None:
            return None
        return self.networks.get(name) or self.veths.get(name)


def interface_names(names: Names, interfaces: Iterable[str | None]) -> InterfaceNames:
    """The naming extension of one step (see README, "Output contract"), from its four interfaces.

    `{"in_name", "out_name", "physin_name", "physout_name"}`, each a name or
    None.  Without names this is one shared dict: read it, do not change it.
    """
    if not names:  # the usual case: nothing to look up
        return _NO_INTERFACE_NAMES
    in_name, out_name, physin_name, physout_name = map(names.interface, interfaces)
    return {"in_name": in_name, "out_name": out_name, "physin_name": physin_name, "physout_name": physout_name}


_NO_INTERFACE_NAMES: InterfaceNames = {"in_name": None, "out_name": None, "physin_name": None, "physout_name": None}


# --- inspect files ------------------------------------------------------------


def load_names(paths: Iterable[str | Path]) -> Names:
    """Names from saved `docker`/`podman inspect`, `docker`/`podman network inspect` and `kubectl get … -o json`
    files, later files winning.

    Raises `InputError` naming the file for one that cannot be read, is not
    JSON (with line:column) or is neither inspect nor kubectl output.
    """
    names = Names()
    for path in paths:
        decoded = _read_json(Path(path))
        if is_kubectl_output(decoded):
            names = names.merge(names_from_cluster(cluster_from_kubectl(decoded, str(path))))
        else:
            names = names.merge(names_from_inspect(decoded, str(path)))
    return names


def names_from_cluster(cluster: Cluster) -> Names:
    """Pods and service addresses as `namespace/name`, nodes by name, Calico's interfaces by their pod."""
    return Names(containers=cluster.addresses(), veths=cluster.interfaces(), cluster=cluster.context())


def kubernetes_names() -> Names:
    """Names of the cluster `kubectl` on the PATH answers for; `Unavailable` when it cannot."""
    return names_from_cluster(ask_kubectl())


def _read_json(path: Path) -> Any:
    try:
        text = read_side_file(str(path)).decode()
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not text", hint=INSPECT_HINT) from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"{path}:{error.lineno}:{error.colno}: not JSON: {error.msg}", hint=INSPECT_HINT) from error


def names_from_inspect(objects: Any, source: str) -> Names:
    """Names from decoded inspect output: a list of containers, networks, or both.

    Each object's kind is told by its own keys, because plain `docker inspect`
    mixes kinds when given a container and a network.  `podman inspect`
    prints containers as Docker does; `podman network inspect` prints
    networks in Podman's own shape (lower-case keys, the bridge in
    `network_interface`, no containers).  `source` names the input in errors.
    """
    if not isinstance(objects, list):
        raise InputError(f"{source}: not a list of Docker or Podman objects", hint=INSPECT_HINT)
    names = Names()
    for number, item in enumerate(objects, start=1):
        if _is_container(item):
            read = _container_names
        elif _is_network(item):
            read = _network_names
        elif _is_podman_network(item):
            read = _podman_network_names
        else:
            raise InputError(f"{source}: object {number} is neither a container nor a network", hint=INSPECT_HINT)
        try:
            names = names.merge(read(item))
        # a field missing or of the wrong type, or an address that is not one
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            raise InputError(
                f"{source}: object {number} ({item.get('Name') or item.get('name')}) is malformed: {error}",
                hint=INSPECT_HINT,
            ) from error
    return names


def _is_container(item: Any) -> bool:
    return isinstance(item, dict) and isinstance(item.get("Name"), str) and "NetworkSettings" in item


def _is_network(item: Any) -> bool:
    return isinstance(item, dict) and isinstance(item.get("Name"), str) and "IPAM" in item and "Driver" in item


def _is_podman_network(item: Any) -> bool:
    return isinstance(item, dict) and isinstance(item.get("name"), str) and "network_interface" in item and "id" in item


def container_name(item: Mapping[str, Any]) -> str:
    """A container's name without the `/` the Engine API puts in front of it."""
    return str(item["Name"]).lstrip("/")


def container_addresses(item: Mapping[str, Any]) -> tuple[Address, ...]:
    """A running container's own addresses on every network it is attached to."""
    try:
        found = container_from_inspect(container_name(item), dict(item))
    except UsageError:  # stopped, or sharing another's network: no address of its own to name
        return ()
    return tuple(ip_address(text) for text in found.addresses)


def _container_names(item: Mapping[str, Any]) -> Names:
    return Names(containers=dict.fromkeys(container_addresses(item), container_name(item)))


def _network_names(item: Mapping[str, Any]) -> Names:
    """The bridge interface of a bridge network, and the addresses of the containers it lists."""
    name = str(item["Name"])
    networks = {}
    if item["Driver"] == "bridge":
        # Docker names a user-defined network's bridge after its id unless an option says otherwise.
        options = item.get("Options") or {}
        networks[options.get(BRIDGE_NAME_OPTION) or f"br-{str(item['Id'])[:12]}"] = name
    containers = {
        ip_interface(text).ip: str(endpoint["Name"])
        for endpoint in (item.get("Containers") or {}).values()
        for text in (endpoint.get("IPv4Address"), endpoint.get("IPv6Address"))
        if text
    }
    return Names(containers=containers, networks=networks, network_ids={str(item["Id"]): name})


def _podman_network_names(item: Mapping[str, Any]) -> Names:
    """A Podman network's bridge (none for macvlan and ipvlan) and its id; its containers are not listed."""
    name = str(item["name"])
    bridge = item["network_interface"] if item.get("driver") == "bridge" else None
    networks = {str(bridge): name} if bridge else {}
    return Names(networks=networks, network_ids={str(item["id"]): name})


# --- the live daemon ------------------------------------------------------------


def docker_names(sock: Path | None = None, timeout: float = TIMEOUT) -> Names:
    """Names of the running containers and the networks of the local Docker daemon.

    Host-side veths are named only where the container's network namespace
    can be entered (root); elsewhere they stay unnamed and the rest is still
    returned.  Raises `Unavailable` when the daemon cannot be reached.
    """
    return engine_names(sock or docker_socket(), timeout, DOCKER_SERVICE)


def podman_names(sock: Path | None = None, timeout: float = TIMEOUT) -> Names:
    """Names of the running containers and the networks of the local Podman service (its Docker-compatible API).

    Root's containers at /run/podman/podman.sock, a user's at
    $XDG_RUNTIME_DIR/podman/podman.sock.  Raises `Unavailable` (one line,
    saying how to start the service) when nothing listens there.
    """
    return engine_names(sock or podman_socket(), timeout, PODMAN_SERVICE)


def engine_names(sock: Path, timeout: float, service: EngineService) -> Names:
    """Names from a service that answers the Docker Engine API at `sock`."""
    listed = docker_get("/containers/json", sock, timeout, service) or []
    inspected = [
        item
        for entry in listed
        if (item := docker_get(f"/containers/{entry['Id']}/json", sock, timeout, service)) is not None
    ]
    networks = docker_get(service.networks_path, sock, timeout, service) or []
    names = names_from_inspect([*inspected, *networks], service.name)
    return replace(names, veths=container_veths(inspected))


LIVE_SOURCES = {"docker": docker_names, "podman": podman_names, KUBERNETES: kubernetes_names}
"""The `--names` words that ask a running service rather than name a file."""


# --- host-side veths ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Link:
    """One network interface as `ip -j link` shows it in its namespace.

    `peer` is the ifindex of the other end when that end lives in another
    namespace (a veth's `link_index` with `link_netnsid`), else None.
    """

    ifindex: int
    name: str
    peer: int | None = None


def links_from_ip_json(entries: Iterable[Mapping[str, Any]]) -> list[Link]:
    """The links of decoded `ip -j link show` output."""
    return [
        Link(
            int(entry["ifindex"]),
            str(entry["ifname"]),
            int(entry["link_index"]) if "link_index" in entry and "link_netnsid" in entry else None,
        )
        for entry in entries
    ]


def read_links(netns: str | None = None) -> list[Link] | None:
    """The links of the host, or of the network namespace bound at `netns`; None when they cannot be read.

    Inside a namespace only netlink tells the truth: after `nsenter --net`
    alone, /sys/class/net still shows the host's interfaces (sysfs belongs to
    the mount namespace), so `ip` is run there rather than reading `iflink`.
    """
    argv = ["ip", "-j", "link", "show"]
    if netns is not None:
        argv = ["nsenter", f"--net={netns}", *argv]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=LINK_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return links_from_ip_json(json.loads(done.stdout))


def veth_peers(host: Iterable[Link], inside: Iterable[Link]) -> list[str]:
    """Host interfaces that are the other end of a namespace's interfaces.

    ifindexes are numbered per namespace, so one side's number alone could
    match an unrelated host interface: both ends must name each other.
    """
    by_index = {link.ifindex: link for link in host}
    return [
        by_index[link.peer].name
        for link in inside
        if link.peer in by_index and by_index[link.peer].peer == link.ifindex
    ]


def container_veths(containers: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Host veth → container name for inspected containers with addresses of their own.

    Containers without an address (host network, `container:` mode) share
    another namespace's interfaces, which would name veths after the wrong
    container.
    """
    host = read_links()
    if host is None:
        return {}
    veths: dict[str, str] = {}
    for item in containers:
        sandbox = (item.get("NetworkSettings") or {}).get("SandboxKey")
        if not sandbox or not container_addresses(item):
            continue
        inside = read_links(sandbox)
        veths.update(dict.fromkeys(veth_peers(host, inside or []), container_name(item)))
    return veths
