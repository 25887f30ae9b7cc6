"""The Kubernetes lab's captures (samples/k8s-*): what tracelog reads of them against what the kernel recorded.

Each capture's meta.json holds the kernel's TRACE counters and the node's
conntrack table after the scenario; each sample directory the node's
rulesets and the cluster as kubectl prints it.  Every packet is counted,
every connection is found with the endpoint conntrack gave it, and every
refused one says why.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest

import tracelog
from tests.samples import SAMPLES, traced_packets
from tracelog.chains.kubernetes import KubeContext, ServicePort, decode_record, services_without_endpoints
from tracelog.names.kubectl import read_kubectl_files
from tracelog.nft_ruleset import parse_nft_ruleset
from tracelog.output.timeline import timeline_rows
from tracelog.records.packet import PacketRecord

KUBECTL = ("kubectl-pods.json", "kubectl-svc.json", "kubectl-endpointslices.json")
WEB = ServicePort("default", "web", "http")
CLIENTS = {"10.244.1.10": "default/client-5f6d7-klmno"}
WEB_PODS = {"10.244.1.11": "default/web-7d4b9c-fghij", "10.244.1.12": "default/web-7d4b9c-xzvbn"}
# each capture, and the snapshot a user would give with it: the iptables-save of a legacy node, the nft
# ruleset of a node in nftables mode; xtables-monitor prints the rules itself, nft monitor of iptables-nft
# rules prints them without comments, so the chains are named from kubectl
CAPTURES = [
    *((path, "iptables-save.txt") for path in sorted(SAMPLES.glob("k8s-legacy/*.dmesg"))),
    *((path, None) for path in sorted(SAMPLES.glob("k8s-nft/*-monitor"))),
    *((path, "nft-list-ruleset.txt") for path in sorted(SAMPLES.glob("k8s-nftables/*.nft-monitor"))),
]
IDS = [str(path.relative_to(SAMPLES)) for path, _ in CAPTURES]


def captures_of(*scenarios: str) -> list[Any]:
    """The captures of some scenarios (`clusterip` for `clusterip.handles.nft-monitor`), as named parameters."""
    return [
        pytest.param(path, snapshot, id=str(path.relative_to(SAMPLES)))
        for path, snapshot in CAPTURES
        if path.name.split(".")[0] in scenarios
    ]


@cache
def context(directory: Path) -> KubeContext:
    """The cluster kubectl printed for the lab, and for nftables mode the services its maps name."""
    cluster = read_kubectl_files((json.loads((directory / name).read_text()), name) for name in KUBECTL)
    return cluster.context()


def meta(capture: Path) -> dict[str, Any]:
    entry: dict[str, Any] = json.loads((capture.parent / "meta.json").read_text())["files"][capture.name]
    return entry


def records(capture: Path, snapshot: str | None, names: bool = True) -> list[PacketRecord]:
    rules = [str(capture.parent / snapshot)] if snapshot else []
    kubectl = [str(capture.parent / name) for name in KUBECTL] if names else []
    return list(tracelog.read_packets([str(capture)], rules=rules, names=kubectl))


def openings(packets: list[PacketRecord]) -> list[PacketRecord]:
    """The packets that open a TCP connection (SYN without ACK), retransmissions included."""
    return [packet for packet in packets if packet["tcp_flags"] == ["SYN"]]


@pytest.mark.parametrize(("capture", "snapshot"), CAPTURES, ids=IDS)
def test_packets_are_the_kernels(capture: Path, snapshot: str | None) -> None:
    packets = records(capture, snapshot)
    assert len(packets) == traced_packets(capture) == meta(capture)["traced_packets"]
    assert all(step["mismatch"] is None for packet in packets for step in packet["steps"])


@pytest.mark.parametrize(("capture", "snapshot"), CAPTURES, ids=IDS)
def test_each_connection_has_the_endpoint_conntrack_gave_it(capture: Path, snapshot: str | None) -> None:
    packets = records(capture, snapshot)
    connections = meta(capture)["conntrack"]
    assert len(openings(packets)) >= len(connections)
    for connection in connections:
        tuple_ = (connection["src"], connection["sport"], connection["dst"], connection["dport"])
        opening = [
            packet
            for packet in openings(packets)
            if (packet["src"], packet["sport"], packet["dst"], packet["dport"]) == tuple_
        ]
        assert opening, connection
        endpoint = connection["endpoint"]
        for packet in opening:
            decoded = decode_record(packet, context(capture.parent))
            assert packet["endpoint"] == decoded.endpoint == endpoint
            if endpoint is not None:
                assert decoded.service == WEB
                assert packet["service"] == str(WEB) == "default/web:http"
                assert packet["endpoint_name"] == WEB_PODS[endpoint.rpartition(":")[0]]
                assert packet["src_name"] == CLIENTS.get(packet["src"])  # a pod, or the outside for a NodePort


@pytest.mark.parametrize(("capture", "snapshot"), captures_of("clusterip"))
def test_statistic_mode_spread_the_connections_over_both_endpoints(capture: Path, snapshot: str | None) -> None:
    endpoints = Counter(connection["endpoint"] for connection in meta(capture)["conntrack"])
    assert set(endpoints) == {f"{address}:8080" for address in WEB_PODS}
    decoded = Counter(
        decode_record(packet, context(capture.parent)).endpoint for packet in openings(records(capture, snapshot))
    )
    assert decoded == endpoints


@pytest.mark.parametrize(("capture", "snapshot"), captures_of("clusterip"))
def test_the_summary_gives_each_services_spread_over_its_endpoints(capture: Path, snapshot: str | None) -> None:
    """The services table and the answer count the connections each endpoint got, as conntrack does."""
    rules = [str(capture.parent / snapshot)] if snapshot else []
    report = tracelog.summarise([str(capture)], rules=rules, names=[str(capture.parent / name) for name in KUBECTL])
    endpoints = Counter(connection["endpoint"] for connection in meta(capture)["conntrack"])
    services = report.services
    assert set(services["service"]) == {"default/web:http"}
    assert dict(zip(services["endpoint"], services["flows"], strict=True)) == endpoints
    spread = ", ".join(
        f"{address} ({WEB_PODS[address.split(':')[0]]}) {count}" for address, count in sorted(endpoints.items())
    )
    assert f"default/web:http (10.96.100.10:80): {sum(endpoints.values())} connections, to {spread}." in report.answer


REFUSALS = {
    "no-endpoints": "default/empty:http has no endpoints",
    "netpol": "no NetworkPolicy allows it to default/db-0",
    "wrong-port": "the cluster IP has no service on this port",
}
LABELS = {"no-endpoints": "no endpoints", "netpol": "NetworkPolicy", "wrong-port": "no such service port"}


@pytest.mark.parametrize(("capture", "snapshot"), captures_of(*REFUSALS))
def test_a_refused_connection_says_why(capture: Path, snapshot: str | None) -> None:
    refused = openings(records(capture, snapshot))
    assert refused
    expected = REFUSALS[capture.name.split(".")[0]]
    for packet in refused:
        assert packet["verdict"] in ("REJECT", "DROP")  # nft traces print a reject's verdict as drop
        assert decode_record(packet, context(capture.parent)).refusal == expected
        reason = packet["verdict_reason"]  # the contract's, without kubectl's names
        assert reason is not None
        assert reason["label"] == LABELS[capture.name.split(".")[0]]


def test_nftables_mode_names_a_service_without_endpoints_by_its_map_element_alone() -> None:
    """Without kubectl: the comment of kube-proxy's no-endpoint-services element names it."""
    directory = SAMPLES / "k8s-nftables"
    ruleset = parse_nft_ruleset((directory / "nft-list-ruleset.txt").read_text(), "nft-list-ruleset.txt")
    comments = ruleset.element_comments("ip", "kube-proxy", "no-endpoint-services")
    maps = KubeContext(services=services_without_endpoints(comments))
    for packet in openings(records(directory / "no-endpoints.nft-monitor", None, names=False)):
        assert decode_record(packet, maps).refusal == "default/empty:http has no endpoints"


@pytest.mark.parametrize(("capture", "snapshot"), captures_of("nodeport"))
def test_a_nodeport_connection_is_masqueraded_and_says_why(capture: Path, snapshot: str | None) -> None:
    for packet in openings(records(capture, snapshot)):
        decoded = decode_record(packet, context(capture.parent))
        assert decoded.service == WEB
        assert decoded.masquerade is not None
        assert "replies come back through this node" in decoded.masquerade
        assert packet["src"] == "198.51.100.10"
        assert packet["dst_name"] == "node-1"
        assert packet["masquerade"] == decoded.masquerade
        rows = timeline_rows(packet)
        marked = [packet["steps"][row.number - 1]["chain"] for row in rows if decoded.masquerade in row.decision]
        assert marked in (["KUBE-MARK-MASQ"], ["mark-for-masquerade"])  # said where the mark is set


@pytest.mark.parametrize(
    "capture", [SAMPLES / "k8s-legacy/pod-to-pod.dmesg", SAMPLES / "k8s-nft/pod-to-pod.xtables-monitor"], ids=str
)
def test_an_allowed_pod_to_pod_connection_names_its_policy(capture: Path) -> None:
    snapshot = "iptables-save.txt" if capture.suffix == ".dmesg" else None
    packets = openings(records(capture, snapshot))
    assert packets
    for packet in packets:
        assert (packet["src_name"], packet["dst_name"]) == ("default/web-7d4b9c-fghij", "default/db-0")
        assert decode_record(packet, context(capture.parent)).policy == "allowed by NetworkPolicy default/db-allow-web"
