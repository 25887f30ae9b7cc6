"""A running container's addresses, asked of the Docker Engine API over its Unix socket (no SDK)."""

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
TIMEOUT = 10.0


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


def inspect_container(name: str, sock: Path | None = None, timeout: float = TIMEOUT) -> Container:
    """`GET /containers/NAME/json`, reduced to the running container's addresses."""
    path = sock or docker_socket()
    connection = _UnixConnection(path, timeout)
    try:
        connection.request("GET", f"/containers/{quote(name, safe='')}/json")
        response = connection.getresponse()
        body = response.read()
    except PermissionError as error:
        raise PermissionDenied(f"cannot talk to Docker at {path}", hint="run as root or in the docker group") from error
    except OSError as error:
        raise Unavailable(
            f"cannot reach the Docker daemon at {path}: {error.strerror or error}",
            hint="is dockerd running? DOCKER_HOST=unix:///path picks another socket",
        ) from error
    finally:
        connection.close()
    if response.status == 404:
        raise UsageError(f"no container named {name}", hint="see docker ps")
    if response.status != 200:
        raise Unavailable(f"Docker answered {response.status} for container {name}: {_message(body)}")
    return container_from_inspect(name, json.loads(body))


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
