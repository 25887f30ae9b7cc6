"""The Kubernetes-shaped lab, live: each mode's traces read back as the kernel counted and tracked them.

For each mode (iptables-legacy, iptables-nft, kube-proxy's nftables mode)
the node is built in namespaces of its own (`tkt-…`), every scenario is
played and read with the mode's reader, and tracelog must find the packets
the TRACE rules counted, the endpoint the node's conntrack gave each
connection, and why the refused ones were refused.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

import tracelog
from tests.lab import kernlog
from tests.lab.k8s import SCENARIOS, Capture, KubeNodeLab, Mode, capture_scenario
from tests.lab.k8s_cluster import CLUSTER, kubectl_endpointslices, kubectl_pods, kubectl_services
from tracelog.chains.kubernetes import decode_record
from tracelog.names import read_links, veth_peers
from tracelog.names.kubectl import read_kubectl_files
from tracelog.records.packet import PacketRecord

pytestmark = [pytest.mark.lab, pytest.mark.root_only]

TOOLS = {
    "legacy": ("iptables-legacy-restore", "conntrack"),
    "nft": ("iptables-nft-restore", "xtables-monitor", "nft", "conntrack"),
    "nftables": ("iptables-nft-restore", "nft", "conntrack"),
}
REFUSALS = {
    "no-endpoints": "default/empty:http has no endpoints",
    "netpol": "no NetworkPolicy allows it to default/db-0",
    "wrong-port": "the cluster IP has no service on this port",
}
CONTEXT = read_kubectl_files(
    (build(CLUSTER), build.__name__) for build in (kubectl_pods, kubectl_services, kubectl_endpointslices)
).context()


@pytest.fixture(params=["legacy", "nft", "nftables"])
def lab(request: pytest.FixtureRequest) -> Iterator[KubeNodeLab]:
    mode: Mode = request.param
    missing = [tool for tool in TOOLS[mode] if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{mode} mode needs {', '.join(missing)}")
    with ExitStack() as stack:
        if mode == "legacy":
            stack.enter_context(kernlog.nf_log_all_netns())
        yield stack.enter_context(KubeNodeLab(mode, prefix="tkt"))


def read(capture: Capture, rules: list[str]) -> dict[str, list[PacketRecord]]:
    """Each trace file of a capture read by tracelog, by file name."""
    return {name: list(tracelog.read_packets([str(path)], rules=rules)) for name, (path, _, _) in capture.files.items()}


def saved_rules(lab: KubeNodeLab, directory: Path) -> list[str]:
    """The snapshot a user gives with the mode's trace: iptables-save of a legacy node, nft's of nftables mode."""
    wanted = {"legacy": "iptables-save.txt", "nftables": "nft-list-ruleset.txt"}.get(lab.mode)
    saved = []
    for name, (text, _) in lab.ruleset_files().items():
        if name == wanted:
            (directory / name).write_text(text)
            saved.append(str(directory / name))
    return saved


def test_every_scenario_reads_back_as_the_kernel_saw_it(lab: KubeNodeLab, tmp_path: Path) -> None:
    rules = saved_rules(lab, tmp_path)
    for scenario in (scenario for scenario in SCENARIOS if lab.mode in scenario.modes):
        capture = capture_scenario(lab, scenario, tmp_path)
        assert capture.run.traced_packets > 0, scenario.name
        for name, packets in read(capture, rules).items():
            assert capture.files[name][2] is None, f"{name}: the monitor died: {capture.files[name][2]}"
            assert len(packets) == capture.run.traced_packets, name
            openings = [packet for packet in packets if packet["tcp_flags"] == ["SYN"]]
            for connection in capture.run.connections:
                sent = (connection.src, connection.sport, connection.dst, connection.dport)
                found = [
                    packet
                    for packet in openings
                    if (packet["src"], packet["sport"], packet["dst"], packet["dport"]) == sent
                ]
                assert found, (name, connection)
                assert {decode_record(packet, CONTEXT).endpoint for packet in found} == {connection.endpoint}
            if scenario.name in REFUSALS:
                assert openings, name
                assert {decode_record(packet, CONTEXT).refusal for packet in openings} == {REFUSALS[scenario.name]}
        if scenario.name == "clusterip":
            assert {connection.endpoint for connection in capture.run.connections} == {
                "10.244.1.11:8080",
                "10.244.1.12:8080",
            }
        json.dumps(capture.run.describe())  # what meta.json gets is plain JSON


@pytest.mark.parametrize("lab", ["nft"], indirect=True)
def test_cni0_veths_are_named_by_their_peers_in_the_pods(lab: KubeNodeLab) -> None:
    """kubectl never names a bridge CNI's veth; the node does, through the pod's end of the pair."""
    node = read_links(f"/run/netns/{lab.node}")
    assert node is not None
    for pod in lab.cluster.pods:
        inside = read_links(f"/run/netns/{lab.pod_namespace(pod)}")
        assert veth_peers(node, inside or []) == [pod.veth]
