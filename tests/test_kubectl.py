"""Names from kubectl output: the lab cluster's saved lists, and `--names kubernetes` asking a kubectl on the PATH."""

from __future__ import annotations

import json
import re
import stat
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunCli
from tests.samples import SAMPLES
from tracelog.chains.kubernetes import NamedChain, ServiceAddress, ServicePort
from tracelog.errors import InputError, Unavailable
from tracelog.names import LIVE_SOURCES, Names, load_names
from tracelog.names.kubectl import ask_kubectl, cluster_from_kubectl, read_kubectl_files
from tracelog.ruleset import parse_ruleset

K8S = SAMPLES / "k8s-legacy"
PODS, SERVICES, SLICES = (K8S / f"kubectl-{kind}.json" for kind in ("pods", "svc", "endpointslices"))
WEB = ServicePort("default", "web", "http")
POD_NAMES = {
    ip_address("10.244.1.10"): "default/client-5f6d7-klmno",
    ip_address("10.244.1.11"): "default/web-7d4b9c-fghij",
    ip_address("10.244.1.12"): "default/web-7d4b9c-xzvbn",
    ip_address("10.244.1.13"): "default/db-0",
}
NODE = {ip_address("198.51.100.2"): "node-1"}
SERVICE_NAMES = {
    ip_address("10.96.0.1"): "default/kubernetes",
    ip_address("10.96.100.10"): "default/web",
    ip_address("10.96.100.20"): "default/empty",
}


def decoded(path: Path) -> Any:
    return json.loads(path.read_text())


def test_pods_are_named_namespace_name_and_a_host_network_pod_names_its_node() -> None:
    names = load_names([PODS])
    assert names.containers == {**POD_NAMES, **NODE}  # kube-proxy-x7k2p runs with the node's address
    assert names.veths["cali9ae1fe16e6f"] == "default/db-0"  # Calico's interface for default/db-0


def test_services_name_their_addresses_and_slices_their_pods() -> None:
    assert load_names([SERVICES]).containers == SERVICE_NAMES
    slices = load_names([SLICES]).containers
    assert slices == {address: POD_NAMES[address] for address in (ip_address("10.244.1.11"), ip_address("10.244.1.12"))}


def test_the_three_lists_together_name_pods_services_and_the_node() -> None:
    assert load_names([PODS, SERVICES, SLICES]).containers == {**POD_NAMES, **SERVICE_NAMES, **NODE}


def test_kube_proxys_chains_are_computed_from_services_and_slices() -> None:
    """Every KUBE-SVC/KUBE-EXT/KUBE-SEP chain of the lab's snapshot is one kubectl's lists compute."""
    context = read_kubectl_files((decoded(path), path.name) for path in (PODS, SERVICES, SLICES)).context()
    snapshot = parse_ruleset((K8S / "iptables-save.txt").read_text(), "iptables-save.txt")
    in_snapshot = {
        chain for chain in snapshot.tables["nat"] if chain.startswith(("KUBE-SVC-", "KUBE-EXT-", "KUBE-SEP-"))
    }
    assert in_snapshot
    assert in_snapshot <= set(context.chains)
    assert context.chains["KUBE-SEP-ELX6N4Z5RGB67TLC"] == NamedChain("endpoint", WEB, "10.244.1.11:8080")
    assert context.services[ServiceAddress("198.51.100.2", "tcp", 30080)] == WEB  # the node port on the node
    assert context.services[ServiceAddress("10.96.100.20", "tcp", 80)] == ServicePort("default", "empty", "http")
    assert context.pods["10.244.1.13"] == "default/db-0"


def test_one_object_and_other_kinds_are_read_too() -> None:
    pod = decoded(PODS)["items"][0]
    assert load_names([]) == Names()
    assert cluster_from_kubectl(pod, "one").pods[0].key == "default/client-5f6d7-klmno"
    other = {"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "ConfigMap"}]}
    assert cluster_from_kubectl(other, "cm").addresses() == {}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"apiVersion": "v1", "kind": "List", "items": {}}, "a List without items"),
        (
            {"apiVersion": "v1", "kind": "List", "items": [{"kind": "Pod", "status": {"podIP": "10.0.0.1"}}]},
            "object 1 (Pod /?) is malformed",
        ),
        (
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p", "namespace": "n"},
                "status": {"podIP": "not-an-address"},
            },
            "object 1 (Pod n/p) is malformed",
        ),
    ],
)
def test_malformed_kubectl_output_is_an_input_error_naming_the_object(
    content: object, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(InputError, match=re.escape(message)):
        load_names([path])


def fake_kubectl(directory: Path, script: str) -> None:
    """A `kubectl` on a PATH of its own that runs `script` (sh)."""
    directory.mkdir(exist_ok=True)
    path = directory / "kubectl"
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_kubernetes_asks_kubectl_for_pods_services_and_slices(fake_tools: Path, tmp_path: Path) -> None:
    items = [item for path in (PODS, SERVICES, SLICES) for item in decoded(path)["items"]]
    answer = tmp_path / "answer.json"
    answer.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    fake_kubectl(fake_tools, f'echo "$@" > {tmp_path}/argv; cat {answer}')
    assert LIVE_SOURCES["kubernetes"]().containers == {**POD_NAMES, **SERVICE_NAMES, **NODE}
    assert (tmp_path / "argv").read_text().split() == [
        "get",
        "pods,services,endpointslices",
        "--all-namespaces",
        "--output=json",
    ]


@pytest.mark.parametrize(
    ("script", "message"),
    [
        (None, "kubectl is not on the PATH"),
        ("echo 'error: You must be logged in to the server (Unauthorized)' >&2; exit 1", "kubectl failed: error: You"),
        ("echo not json", "kubectl printed no JSON"),
        ("sleep 5", "kubectl did not answer within 0 s"),
    ],
)
def test_a_kubectl_that_cannot_answer_is_one_line(fake_tools: Path, script: str | None, message: str) -> None:
    if script is not None:
        fake_kubectl(fake_tools, script)
    with pytest.raises(Unavailable, match=message) as raised:
        ask_kubectl(timeout=0.3)
    assert "\n" not in str(raised.value)


def test_parse_names_pods_from_kubectl_files(run_cli: RunCli) -> None:
    names = [f"--names={path}" for path in (PODS, SERVICES, SLICES)]
    run = run_cli("parse", "-f", "jsonl", *names, str(K8S / "nodeport.dmesg"))
    assert run.status == 0, run.stderr
    first = run.records()[0]
    assert (first["src"], first["dst"], first["dst_name"]) == ("198.51.100.10", "198.51.100.2", "node-1")
    assert first["endpoint_name"] in ("default/web-7d4b9c-fghij", "default/web-7d4b9c-xzvbn")


def test_parse_names_kubernetes_without_kubectl_is_one_line_and_status_6(fake_tools: Path, run_cli: RunCli) -> None:
    run = run_cli("parse", "--names", "kubernetes", str(K8S / "nodeport.dmesg"))
    assert run.status == 6
    assert run.stderr.strip().splitlines() == [
        "tracelog: kubectl is not on the PATH (install kubectl or give saved kubectl -o json output)"
    ]
