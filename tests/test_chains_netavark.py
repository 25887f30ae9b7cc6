"""netavark's chains and their Podman networks, read from the real captures (samples/podman-legacy, netavark-nft)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.conftest import RunCli
from tests.samples import SAMPLES
from tracelog.chains import netavark
from tracelog.names import load_names

PODMAN = SAMPLES / "podman-legacy"
NFT = SAMPLES / "netavark-nft"


def network_ids(path: Path) -> Mapping[str, str]:
    """network id → name, as `--names` reads them from `podman network inspect` output."""
    return load_names([path]).network_ids


def chains_of_save(save: str) -> list[tuple[str, str]]:
    """(table, chain) of every chain an iptables-save text declares."""
    found, table = [], ""
    for line in save.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":"):
            found.append((table, line[1:].split()[0]))
    return found


def test_the_iptables_drivers_network_chains_are_named_after_the_network() -> None:
    """netavark 1.4 named tpnet's chains NETAVARK-<hash> and NETAVARK-DN-<hash>: the hash of `tpnet`."""
    networks = network_ids(PODMAN / "podman-network-inspect.json")
    assert list(networks.values()) == ["tpnet"]
    chains = {chain: table for table, chain in chains_of_save((PODMAN / "iptables-save.txt").read_text())}
    digest = netavark.network_hash("tpnet")
    assert f"NETAVARK-{digest}" in chains
    assert f"NETAVARK-DN-{digest}" in chains
    for chain in (f"NETAVARK-{digest}", f"NETAVARK-DN-{digest}"):
        meaning = netavark.describe_chain(chains[chain], chain, networks)
        assert meaning is not None
        assert (meaning.writer, meaning.network) == ("netavark", "tpnet")
    assert netavark.chain_network(f"NETAVARK-{digest}", {}) is None


def test_every_netavark_chain_of_the_podman_capture_is_described() -> None:
    networks = network_ids(PODMAN / "podman-network-inspect.json")
    for table, chain in chains_of_save((PODMAN / "iptables-save.txt").read_text()):
        if chain.startswith("NETAVARK"):
            assert netavark.describe_chain(table, chain, networks) is not None, chain
    assert netavark.describe_chain("filter", "FORWARD", networks) is None


def test_the_published_port_comment_names_network_and_container(run_cli: RunCli) -> None:
    containers = {item["Id"]: item["Name"] for item in json.loads((PODMAN / "podman-inspect.json").read_text())}
    records = run_cli(
        "parse", "-f", "jsonl", "--rules", str(PODMAN / "iptables-save.txt"), str(PODMAN / "published.dmesg")
    ).records()
    dnat = [s for s in records[0]["steps"] if s["chain"] == "NETAVARK-HOSTPORT-DNAT"]
    assert len(dnat) == 1
    found = netavark.dnat_comment(dnat[0]["rule"])
    assert found is not None
    assert found.network == "tpnet"
    assert containers[found.container_id] == "web-2"
    assert netavark.dnat_comment("-j NETAVARK-HOSTPORT-MASQ") is None


def test_the_nft_drivers_subnet_chains_name_their_network(run_cli: RunCli) -> None:
    networks = network_ids(NFT / "podman-network-inspect.json")
    records = run_cli("parse", "-f", "jsonl", str(NFT / "published.nft-monitor")).records()
    chains = {s["chain"] for r in records for s in r["steps"] if s["table"] == "netavark"}
    subnet_chains = sorted(c for c in chains if c.startswith("nv_"))
    assert subnet_chains
    for chain in subnet_chains:
        meaning = netavark.describe_chain("netavark", chain, networks)
        assert meaning is not None
        assert meaning.network == "tpnet"
        assert "10.89.0.0/24" in meaning.role
    assert records[0]["endpoint"] == "10.89.0.3:80"  # one packet across the DNAT in the nv_…_dnat chain


def test_every_netavark_chain_of_the_nft_captures_is_described_and_has_a_hook(run_cli: RunCli) -> None:
    networks = network_ids(NFT / "podman-network-inspect.json")
    for capture in sorted(NFT.glob("*.nft-monitor")):
        for record in run_cli("parse", "-f", "jsonl", str(capture)).records():
            for step in record["steps"]:
                if step["table"] == "netavark":
                    assert netavark.describe_chain("netavark", step["chain"], networks) is not None
                    assert step["hook"] is not None, step


def test_the_isolation_drop_is_named(run_cli: RunCli) -> None:
    records = run_cli("parse", "-f", "jsonl", str(NFT / "isolated.nft-monitor")).records()
    assert records
    for record in records:
        step = record["steps"][record["verdict_step"] - 1]
        assert (record["verdict"], step["chain"]) == ("DROP", "NETAVARK-ISOLATION-2")
        reason = netavark.verdict_reason(step["table"], step["chain"], step["rule"], step["verdict"])
        assert reason is not None
        assert reason.label == "ISOLATION"


def test_accepts_have_no_drop_reason(run_cli: RunCli) -> None:
    records = run_cli("parse", "-f", "jsonl", str(NFT / "ping.nft-monitor")).records()
    for record in records:
        step = record["steps"][record["verdict_step"] - 1]
        assert (record["verdict"], step["table"], step["chain"]) == ("ACCEPT", "netavark", "FORWARD")
        assert netavark.verdict_reason(step["table"], step["chain"], step["rule"], step["verdict"]) is None


def test_an_invalid_packet_drop_is_named() -> None:
    reason = netavark.verdict_reason("netavark", "FORWARD", "ct state invalid drop", "DROP")
    assert reason is not None
    assert reason.label == "INVALID"


@pytest.mark.parametrize(
    ("chain", "expected"),
    [
        ("nv_2f259bab_10_88_0_0_nm16", netavark.SubnetChain("2f259bab", "10.88.0.0/16", False)),
        ("nv_d7322dfb_10_89_2_0_nm24_dnat", netavark.SubnetChain("d7322dfb", "10.89.2.0/24", True)),
        ("nv_2f259bab_fd00-0-0-1--_nm64", netavark.SubnetChain("2f259bab", "fd00:0:0:1::/64", False)),
        ("nv_2f259bab_garbage", None),
        ("NETAVARK-ISOLATION-1", None),
    ],
)
def test_subnet_chain_names(chain: str, expected: netavark.SubnetChain | None) -> None:
    assert netavark.subnet_chain(chain) == expected


def test_the_default_podman_network_is_known_by_its_well_known_id() -> None:
    networks = {"2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9": "podman"}
    assert netavark.chain_network("nv_2f259bab_10_88_0_0_nm16", networks) == "podman"
    assert netavark.chain_network("nv_deadbeef_10_88_0_0_nm16", networks) is None
    meaning = netavark.describe_chain("netavark", "nv_deadbeef_10_88_0_0_nm16", networks)
    assert meaning is not None
    assert meaning.network == "network deadbeef…"
