"""Names from the real Docker lab's inspect files, their errors, and the daemon client without a daemon."""

from __future__ import annotations

import http.server
import json
import re
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import ip_address
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.conftest import RunCli
from tests.samples import SAMPLES
from tracelog.errors import InputError, Unavailable
from tracelog.names import (
    STEP_NAME_KEYS,
    Link,
    Names,
    docker_names,
    interface_names,
    links_from_ip_json,
    load_names,
    names_from_inspect,
    podman_names,
    veth_peers,
)
from tracelog.names.docker import podman_socket
from tracelog.pipeline import ParseOptions, RunStats, trace_packets
from tracelog.records.numbering import packet_records
from tracelog.records.packet import step_names

DOCKER = SAMPLES / "docker-legacy"
CONTAINERS = DOCKER / "docker-inspect.json"
NETWORKS = DOCKER / "docker-network-inspect.json"
META = json.loads((DOCKER / "meta.json").read_text())
# Ground truth: which host veth is which container's, as the lab found it.
LAB_VETHS = {entry["host_veth"]: name for name, entry in META["containers"].items()}
LAB_ADDRESSES = {ip_address(entry["ip"]): name for name, entry in META["containers"].items()}
BRIDGE_ID = json.loads(NETWORKS.read_text())[0]["Id"]
BRIDGE_NAMES = Names(containers=LAB_ADDRESSES, networks={"docker0": "bridge"}, network_ids={BRIDGE_ID: "bridge"})
PODMAN = SAMPLES / "podman-legacy"
PODMAN_META = json.loads((PODMAN / "meta.json").read_text())


def test_container_inspect_names_addresses() -> None:
    assert load_names([CONTAINERS]) == Names(containers=LAB_ADDRESSES)


def test_network_inspect_names_the_bridge_its_id_and_its_containers() -> None:
    assert load_names([NETWORKS]) == BRIDGE_NAMES


def test_several_files_add_up() -> None:
    names = load_names([str(CONTAINERS), NETWORKS])
    assert names == BRIDGE_NAMES


def test_podman_inspect_names_addresses() -> None:
    """`podman inspect` prints containers as Docker does: the addresses of the real Podman lab's containers."""
    expected = {ip_address(entry["ip"]): name for name, entry in PODMAN_META["containers"].items()}
    assert load_names([PODMAN / "podman-inspect.json"]) == Names(containers=expected)


def test_podman_network_inspect_names_the_bridge_and_the_id() -> None:
    """Podman's own network shape: lower-case keys, the bridge in network_interface, no containers."""
    (network,) = json.loads((PODMAN / "podman-network-inspect.json").read_text())
    names = load_names([PODMAN / "podman-network-inspect.json"])
    assert names == Names(networks={"podman1": "tpnet"}, network_ids={network["id"]: "tpnet"})


def test_a_podman_network_without_a_bridge_names_only_its_id() -> None:
    (network,) = json.loads((PODMAN / "podman-network-inspect.json").read_text())
    network["driver"] = "macvlan"
    assert names_from_inspect([network], "macvlan") == Names(network_ids={network["id"]: "tpnet"})


def test_podman_files_name_a_podman_trace(run_cli: RunCli) -> None:
    names = ("--names", str(PODMAN / "podman-inspect.json"), "--names", str(PODMAN / "podman-network-inspect.json"))
    request = run_cli("parse", "-f", "jsonl", *names, str(PODMAN / "ping.dmesg")).records()[0]
    assert (request["src_name"], request["dst_name"]) == ("web-1", "web-2")
    assert {step["in_name"] for step in request["steps"] if step["in"]} == {"tpnet"}


def test_each_object_is_told_apart_in_one_list() -> None:
    """Plain `docker inspect nginx-1 bridge` answers with a container and a network in one list."""
    mixed = [*json.loads(CONTAINERS.read_text()), *json.loads(NETWORKS.read_text())]
    assert names_from_inspect(mixed, "mixed") == load_names([CONTAINERS, NETWORKS])


def test_a_network_without_a_bridge_option_uses_dockers_default_name() -> None:
    (network,) = json.loads(NETWORKS.read_text())
    del network["Options"]["com.docker.network.bridge.name"]
    assert names_from_inspect([network], "user-defined").networks == {"br-71f4deccbf61": "bridge"}


def test_a_stopped_container_has_no_address_to_name() -> None:
    container = json.loads(CONTAINERS.read_text())[0]
    container["State"]["Running"] = False
    assert names_from_inspect([container], "stopped") == Names()


def test_text_that_is_not_json_is_an_input_error_with_its_position(tmp_path: Path) -> None:
    cut = tmp_path / "cut.json"
    cut.write_text(CONTAINERS.read_text()[:200])
    with pytest.raises(InputError, match=rf"^{re.escape(str(cut))}:\d+:\d+: not JSON: ") as caught:
        load_names([cut])
    assert "docker or podman inspect" in str(caught.value)


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        ("ip-link.json", "object 1 is neither a container nor a network"),
        ("meta.json", "not a list of Docker or Podman objects"),
    ],
)
def test_other_json_is_an_input_error_naming_the_file(sample: str, message: str) -> None:
    with pytest.raises(InputError, match=re.escape(f"{DOCKER / sample}: {message}")):
        load_names([DOCKER / sample])


def test_a_malformed_address_is_an_input_error_naming_the_object() -> None:
    containers = json.loads(CONTAINERS.read_text())
    containers[1]["NetworkSettings"]["IPAddress"] = "172.18.0.300"
    with pytest.raises(InputError, match=r"^edited: object 2 \(/nginx-2\) is malformed: "):
        names_from_inspect(containers, "edited")


def test_a_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^cannot read .*absent\.json: No such file"):
        load_names([tmp_path / "absent.json"])


def test_records_name_addresses_bridges_and_veths() -> None:
    """nginx-1 pings nginx-2 across docker0; the veths come from the lab's ground truth."""
    names = load_names([CONTAINERS, NETWORKS]).merge(Names(veths=LAB_VETHS))
    packets = trace_packets([str(DOCKER / "ping.dmesg")], ParseOptions(year=2026), RunStats())
    first = next(packet_records(packets, names))
    assert (first["src_name"], first["dst_name"]) == ("nginx-1", "nginx-2")
    named = [dict(zip(STEP_NAME_KEYS, step_names(step), strict=True)) for step in first["steps"]]
    assert named[0] == {"in_name": "bridge", "out_name": None, "physin_name": "nginx-1", "physout_name": None}
    forward = next(found for found, step in zip(named, first["steps"], strict=True) if step["out"])
    assert forward == {"in_name": "bridge", "out_name": "bridge", "physin_name": "nginx-1", "physout_name": "nginx-2"}


def test_unknown_addresses_and_interfaces_have_no_name() -> None:
    packets = trace_packets([str(SAMPLES / "lab-legacy/dnat.dmesg")], ParseOptions(year=2026), RunStats())
    first = next(packet_records(packets, load_names([CONTAINERS])))
    assert (first["src_name"], first["dst_name"]) == (None, None)
    assert {name for step in first["steps"] for name in step_names(step)} == {None}


def test_interface_names_follow_the_step_interfaces_in_order() -> None:
    names = Names(networks={"docker0": "bridge"}, veths={"veth1": "nginx-1"})
    assert interface_names(names, ("docker0", None, "veth1", "eth9")) == {
        "in_name": "bridge",
        "out_name": None,
        "physin_name": "nginx-1",
        "physout_name": None,
    }
    assert interface_names(Names(), ("docker0", None, "veth1", None)) == dict.fromkeys(STEP_NAME_KEYS)


# --- host-side veths, offline ------------------------------------------------------


HOST_LINKS = links_from_ip_json(json.loads((DOCKER / "ip-link.json").read_text()))


def test_host_links_know_the_other_end_of_each_veth() -> None:
    peers = {link.name: link.peer for link in HOST_LINKS}
    assert peers == {"lo": None, "ifb0": None, "ifb1": None, "eth0": None, "docker0": None,
                     "veth1e06770": 31, "veth1332838": 33}  # fmt: skip


def test_a_veth_is_named_when_both_ends_name_each_other() -> None:
    """ip-link.txt shows `veth1e06770@if31`: inside nginx-1, eth0 is ifindex 31 and its peer is 32."""
    assert veth_peers(HOST_LINKS, [Link(1, "lo"), Link(31, "eth0", peer=32)]) == ["veth1e06770"]
    # ifindexes are per namespace: another namespace's eth0 33 pointing at 32 is not veth1e06770's end
    assert veth_peers(HOST_LINKS, [Link(33, "eth0", peer=32)]) == []


# --- the daemon client ----------------------------------------------------------------


def test_no_daemon_is_one_unavailable_error(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match=r"^cannot reach the Docker daemon at .*docker.sock: No such file"):
        docker_names(tmp_path / "docker.sock")


def test_a_docker_host_that_is_not_a_unix_socket_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
    with pytest.raises(Unavailable, match="not a Unix socket"):
        docker_names()


class _StandIn(http.server.BaseHTTPRequestHandler):
    """Answers the Engine API paths `docker_names` asks for with the lab's saved inspect output."""

    answers: ClassVar[dict[str, Any]] = {}

    def do_GET(self) -> None:
        found = self.answers.get(self.path)
        body = json.dumps(found if found is not None else {"message": "No such container"}).encode()
        self.send_response(200 if found is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads answers, not access logs."""


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self) -> tuple[Any, Any]:
        # http.server wants a (host, port) client address; a Unix socket has none
        request, _ = super().get_request()
        return request, ("local", 0)


@contextmanager
def serving(answers: dict[str, Any], path: Path) -> Iterator[Path]:
    """A Unix socket at `path` answering the Engine API paths in `answers` (404 for any other)."""
    _StandIn.answers = answers
    server = _UnixHTTPServer(str(path), _StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def stand_in_daemon(tmp_path: Path) -> Iterator[Path]:
    """A Unix socket serving the saved containers and networks; a third listed container is gone (404)."""
    containers = json.loads(CONTAINERS.read_text())
    listed = [{"Id": item["Id"]} for item in containers] + [{"Id": "gone"}]
    answers = {
        "/containers/json": listed,
        "/networks": json.loads(NETWORKS.read_text()),
        **{f"/containers/{item['Id']}/json": item for item in containers},
    }
    with serving(answers, tmp_path / "docker.sock") as path:
        yield path


def test_docker_names_reads_containers_and_networks_from_the_daemon(stand_in_daemon: Path) -> None:
    """The saved sandboxes do not exist here, so no veth can be named, and that is not an error."""
    assert docker_names(stand_in_daemon) == BRIDGE_NAMES


@pytest.fixture
def stand_in_podman(tmp_path: Path) -> Iterator[Path]:
    """A Unix socket answering as the Podman service does: containers Docker's way, networks Podman's way."""
    containers = json.loads((PODMAN / "podman-inspect.json").read_text())
    answers = {
        "/containers/json": [{"Id": item["Id"]} for item in containers],
        "/v4.0.0/libpod/networks/json": json.loads((PODMAN / "podman-network-inspect.json").read_text()),
        **{f"/containers/{item['Id']}/json": item for item in containers},
    }
    with serving(answers, tmp_path / "podman.sock") as path:
        yield path


def test_podman_names_reads_containers_and_networks_from_the_service(stand_in_podman: Path) -> None:
    expected = load_names([PODMAN / "podman-inspect.json", PODMAN / "podman-network-inspect.json"])
    assert podman_names(stand_in_podman) == expected
    assert expected.networks == {"podman1": "tpnet"}


def test_names_podman_asks_the_service(stand_in_podman: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--names podman` names a Podman trace as the saved inspect files do."""
    monkeypatch.setenv("CONTAINER_HOST", f"unix://{stand_in_podman}")
    trace = str(PODMAN / "ping.dmesg")
    files = ("--names", str(PODMAN / "podman-inspect.json"), "--names", str(PODMAN / "podman-network-inspect.json"))
    assert run_cli("parse", "-f", "jsonl", "--names", "podman", trace).records() == (
        run_cli("parse", "-f", "jsonl", *files, trace).records()
    )


def test_no_podman_service_is_one_unavailable_error_saying_how_to_start_it(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match=r"^cannot reach the Podman service at .*podman.sock: No such file") as caught:
        podman_names(tmp_path / "podman.sock")
    assert "podman system service" in str(caught.value.hint)


def test_the_podman_socket_is_roots_or_the_users(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CONTAINER_HOST", raising=False)
    monkeypatch.setattr("os.geteuid", lambda: 0)
    assert podman_socket() == Path("/run/podman/podman.sock")
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert podman_socket() == tmp_path / "podman" / "podman.sock"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert podman_socket() == Path("/run/user/1000/podman/podman.sock")
    monkeypatch.setenv("CONTAINER_HOST", f"unix://{tmp_path}/other.sock")
    assert podman_socket() == tmp_path / "other.sock"
    monkeypatch.setenv("CONTAINER_HOST", "ssh://core@host/run/podman/podman.sock")
    with pytest.raises(Unavailable, match="not a Unix socket"):
        podman_socket()


def test_parse_names_containers_and_bridge_in_the_contract(run_cli: RunCli) -> None:
    inspect = SAMPLES / "docker-legacy"
    run = run_cli(
        "parse",
        "-f",
        "jsonl",
        "--names",
        str(inspect / "docker-inspect.json"),
        "--names",
        str(inspect / "docker-network-inspect.json"),
        str(inspect / "ping.dmesg"),
    )
    request = run.records()[0]
    assert (request["src_name"], request["dst_name"]) == ("nginx-1", "nginx-2")
    assert {step["in_name"] for step in request["steps"] if step["in"]} == {"bridge"}
    assert all(step["physin_name"] is None for step in request["steps"])  # veths need the live daemon


def test_names_are_null_when_unknown(run_cli: RunCli) -> None:
    record = run_cli("parse", "-f", "jsonl", str(SAMPLES / "docker-legacy/ping.dmesg")).records()[0]
    assert record["src_name"] is record["dst_name"] is None
    assert set(record["steps"][0]) >= {"in_name", "out_name", "physin_name", "physout_name"}


def test_names_from_an_absent_daemon_is_one_line(
    run_cli: RunCli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no.sock'}")
    run = run_cli("parse", "--names", "docker", str(SAMPLES / "docker-legacy/ping.dmesg"))
    assert run.status == 6
    assert run.stderr.count("\n") == 1
