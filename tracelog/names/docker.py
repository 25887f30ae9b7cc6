"""A running container's addresses, asked of the Docker Engine API over its Unix socket (no SDK).

The Podman service speaks the same API (its Docker-compatible endpoints), so
one client serves both; only how errors name the service differs.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tracelog.errors import PermissionDenied, Unavailable, UsageError

DEFAULT_SOCKET = Path("/var/run/docker.sock")
PODMAN_ROOT_SOCKET = Path("/run/podman/podman.sock")
TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class EngineService:
    """A local service that answers the Docker Engine API, as errors name it and say how to reach it."""

    name: str
    short: str
    start_hint: str
    permission_hint: str
    networks_path: str = "/networks"


DOCKER_SERVICE = EngineService(
    "the Docker daemon",
    "Docker",
    "is dockerd running? DOCKER_HOST=unix:///path picks another socket",
    "run as root or in the docker group",
)
PODMAN_SERVICE = EngineService(
    "the Podman service",
    "Podman",
    "start it: systemctl start podman.socket, or podman system service --time=0 &; "
    "CONTAINER_HOST=unix:///path picks another socket",
    "run as the user whose containers these are (root's are at /run/podman/podman.sock)",
    # Podman's own list: its Docker-compatible /networks renames the default
    # network `bridge` and leaves the bridge interface out
    "/v4.0.0/libpod/networks/json",
)


class _UnixConnection(http.client.HTTPConnection):
    """HTTP/1.1 to a Unix socket: the transport the Docker CLI uses locally."""

    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self._path))
        except OSError:
            sock.close()
            raise
        self.sock = sock


@dataclass(frozen=True, slots=True)
class Container:
    """What tracing needs of a container: its name and every address it has on its networks."""

    name: str
    addresses: tuple[str, ...]


def docker_socket() -> Path:
    """`$DOCKER_HOST` when it names a Unix socket, else /var/run/docker.sock."""
    host = os.environ.get("DOCKER_HOST", "")
    if not host:
        return DEFAULT_SOCKET
    if not host.startswith("unix://"):
        raise Unavailable(f"DOCKER_HOST={host} is not a Unix socket", hint="tracelog only talks to a local dockerd")
    return Path(host.removeprefix("unix://"))


def podman_socket() -> Path:
    """`$CONTAINER_HOST` when it names a Unix socket, else root's or this user's Podman socket.

    Rootful Podman listens at /run/podman/podman.sock; rootless Podman at
    $XDG_RUNTIME_DIR/podman/podman.sock.
    """
    host = os.environ.get("CONTAINER_HOST", "")
    if host:
        if not host.startswith("unix://"):
            raise Unavailable(
                f"CONTAINER_HOST={host} is not a Unix socket", hint="tracelog only talks to a local Podman"
            )
        return Path(host.removeprefix("unix://"))
    if os.geteuid() == 0:
        return PODMAN_ROOT_SOCKET
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.geteuid()}"
    return Path(runtime) / "podman" / "podman.sock"


def inspect_container(name: str, sock: Path | None = None, timeout: float = TIMEOUT) -> Container:
    """`GET /containers/NAME/json`, reduced to the running container's addresses."""
    found = docker_get(f"/containers/{quote(name, safe='')}/json", sock, timeout)
    if found is None:
        raise UsageError(f"no container named {name}", hint="see docker ps")
    return container_from_inspect(name, found)


def docker_get(
    api_path: str, sock: Path | None = None, timeout: float = TIMEOUT, service: EngineService = DOCKER_SERVICE
) -> Any:
    """GET an Engine API path and decode its JSON; None when the service says it does not exist (404).

    The one request tracelog makes of Docker (or of Podman, `service`).  A
    404 is how a container that went away between listing and inspecting
    shows up: not an error for a snapshot of names.
    """
    path = sock or docker_socket()
    connection = _UnixConnection(path, timeout)
    try:
        connection.request("GET", api_path)
        response = connection.getresponse()
        body = response.read()
    except PermissionError as error:
        raise PermissionDenied(f"cannot talk to {service.short} at {path}", hint=service.permission_hint) from error
    except (OSError, http.client.HTTPException) as error:
        reason = getattr(error, "strerror", None) or error
        raise Unavailable(f"cannot reach {service.name} at {path}: {reason}", hint=service.start_hint) from error
    finally:
        connection.close()
    if response.status == 404:
        return None
    if response.status != 200:
        raise Unavailable(f"{service.short} answered {response.status} to GET {api_path}: {_message(body)}")
    try:
        return json.loads(body)
    except ValueError as error:
        raise Unavailable(f"{service.short} answered GET {api_path} with something that is not JSON") from error


def _message(body: bytes) -> str:
    try:
        return str(json.loads(body).get("message", "")) or body.decode(errors="replace")
    except ValueError:
        return body.decode(errors="replace")


def container_from_inspect(name: str, inspect: dict[str, Any]) -> Container:
    """The addresses of one `docker inspect` object; errors say why a container cannot be traced by address."""
    if not inspect.get("State", {}).get("Running"):
        raise UsageError(f"container {name} is not running", hint=f"docker start {name}")
    settings = inspect.get("NetworkSettings") or {}
    endpoints = [settings, *(settings.get("Networks") or {}).values()]
    addresses: list[str] = []
    for endpoint in endpoints:
        for key in ("IPAddress", "GlobalIPv6Address"):
            text = endpoint.get(key) or ""
            if text and text not in addresses:
                ip_address(text)  # a malformed answer fails here, not in iptables
                addresses.append(text)
    if not addresses:
        mode = (inspect.get("HostConfig") or {}).get("NetworkMode", "")
        hint = "it shares the host's network: trace by port instead" if mode == "host" else f"network mode {mode!r}"
        raise UsageError(f"container {name} has no address of its own", hint=hint)
    return Container(name, tuple(addresses))
