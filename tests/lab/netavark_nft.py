"""The nftables ruleset netavark's nftables driver writes for Podman networks, and its capture.

Debian 12's netavark (1.4.0) has only the iptables driver; the nftables one
(default from 1.12 on) is written here as netavark 2.1's src/firewall/nft.rs
writes it: `setup_network` for the table, its base chains, the isolation
chains and each subnet's chains, `setup_port_forward` for published ports.
The networks themselves are real: `podman network create` gives their ids and
bridges, and `podman network inspect` is saved beside the capture (Podman
writes no firewall rules until a container starts, so none are written on the
host). The ruleset is loaded with `nft -f` into a lab host namespace and real
packets are traced through it. Regenerate, as root, from the repository root:

    python -m tests.lab.netavark_nft --out samples/netavark-nft
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Interface
from pathlib import Path

from tests.lab.capture import fresh_directory, now_iso, write_meta
from tests.lab.nftlab import (
    Bridge,
    Endpoint,
    NamespaceLab,
    Scenario,
    Topology,
    Uplink,
    capture,
    connect,
    fetch,
    ping,
    tool_versions,
)

TABLE = "netavark"
MASQUERADE_MARK = "0x00002000"
DNAT_MARK = "0x00001000"


@dataclass(frozen=True)
class PodmanNetwork:
    """A Podman bridge network as netavark sees it: name, id, bridge, subnet, isolate option."""

    name: str
    network_id: str
    bridge: Bridge
    isolate: bool = True

    @property
    def subnet_chain(self) -> str:
        """`nv_<first 8 of the id>_<subnet, . as _ and / as _nm>`, as get_subnet_chain_name spells it."""
        spelt = self.bridge.subnet.replace(".", "_").replace(":", "-").replace("/", "_nm")
        return f"nv_{self.network_id[:8]}_{spelt}"


@dataclass(frozen=True)
class PortForward:
    """`-p host_port:port` of one container on one network."""

    network: PodmanNetwork
    address: str
    port: int
    host_port: int
    proto: str = "tcp"


def netavark_ruleset(networks: Sequence[PodmanNetwork], ports: Sequence[PortForward]) -> str:
    """`table inet netavark` after setup_network for each network and setup_port_forward for each port."""
    isolated = [network for network in networks if network.isolate]
    lines = [
        f"table inet {TABLE} {{",
        "\tchain INPUT {",
        "\t\ttype filter hook input priority filter; policy accept;",
        *(f"\t\tip saddr {n.bridge.subnet} meta l4proto {{ tcp, udp }} th dport 53 accept" for n in networks),
        "\t}",
        "",
        "\tchain FORWARD {",
        "\t\ttype filter hook forward priority filter; policy accept;",
        "\t\tct state invalid drop",
        f"\t\tct mark & {DNAT_MARK} == {DNAT_MARK} accept",
        "\t\tjump NETAVARK-ISOLATION-1",
    ]
    for network in networks:
        lines += [
            f"\t\tip daddr {network.bridge.subnet} ct state established,related accept",
            f"\t\tip saddr {network.bridge.subnet} accept",
        ]
    lines += [
        "\t}",
        "",
        "\tchain POSTROUTING {",
        "\t\ttype nat hook postrouting priority srcnat; policy accept;",
        f"\t\tmeta mark & {MASQUERADE_MARK} == {MASQUERADE_MARK} masquerade",
        *(f"\t\tip saddr {n.bridge.subnet} jump {n.subnet_chain}" for n in networks),
        "\t}",
        "",
        "\tchain PREROUTING {",
        "\t\ttype nat hook prerouting priority dstnat; policy accept;",
        "\t\tfib daddr type local jump NETAVARK-HOSTPORT-DNAT",
        "\t}",
        "",
        "\tchain OUTPUT {",
        # dstnat (-100) by number: nft 1.0.6 takes the name for the prerouting hook only
        "\t\ttype nat hook output priority -100; policy accept;",
        "\t\tfib daddr type local jump NETAVARK-HOSTPORT-DNAT",
        "\t}",
        "",
        "\tchain NETAVARK-HOSTPORT-DNAT {",
        *(f"\t\t{p.proto} dport {p.host_port} jump {p.network.subnet_chain}_dnat" for p in ports),
        "\t}",
        "",
        "\tchain NETAVARK-HOSTPORT-SETMARK {",
        f"\t\tmeta mark set meta mark | {MASQUERADE_MARK}",
        "\t}",
        "",
        "\tchain NETAVARK-ISOLATION-1 {",
        *(f'\t\tiifname "{n.bridge.name}" oifname != "{n.bridge.name}" jump NETAVARK-ISOLATION-2' for n in isolated),
        "\t}",
        "",
        "\tchain NETAVARK-ISOLATION-2 {",
        *(f'\t\toifname "{n.bridge.name}" drop' for n in isolated),
        "\t}",
        "",
        "\tchain NETAVARK-ISOLATION-3 {",
        *(f'\t\toifname "{n.bridge.name}" drop' for n in networks if not n.isolate),
        "\t\tjump NETAVARK-ISOLATION-2",
        "\t}",
    ]
    for network in networks:
        lines += [
            "",
            f"\tchain {network.subnet_chain} {{",
            f"\t\tip daddr {network.bridge.subnet} accept",
            "\t\tip daddr != 224.0.0.0/4 masquerade",
            "\t}",
        ]
    for network in {port.network: None for port in ports}:
        subnet = network.bridge.subnet
        lines += ["", f"\tchain {network.subnet_chain}_dnat {{"]
        for port in (p for p in ports if p.network == network):
            dport = f"{port.proto} dport {port.host_port}"
            lines += [
                f"\t\tip saddr {subnet} {dport} jump NETAVARK-HOSTPORT-SETMARK",
                f"\t\tip saddr 127.0.0.1 {dport} jump NETAVARK-HOSTPORT-SETMARK",
                f"\t\t{dport} ct mark set meta mark | {DNAT_MARK} dnat ip to {port.address}:{port.port}",
            ]
        lines.append("\t}")
    lines.append("}")
    return "\n".join(lines) + "\n"


# --- the lab ------------------------------------------------------------------------

TPNET = ("tpnet", "podman1", "10.89.0.1/24")
TPNET2 = ("tpnet2", "podman2", "10.89.1.1/24")
UPLINK = Uplink("eth0", IPv4Interface("192.0.2.1/24"), "192.0.2.10", "02:00:c0:00:02:0a")


def podman(*args: str) -> str:
    """Run Podman (networks only: no container starts, so netavark writes no rules)."""
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def create_networks() -> str:
    """`podman network create` both isolated lab networks; their `podman network inspect` output."""
    for name, _, gateway in (TPNET, TPNET2):
        subnet = str(IPv4Interface(gateway).network)
        gateway_ip = str(IPv4Interface(gateway).ip)
        podman("network", "create", "--subnet", subnet, "--gateway", gateway_ip, "--opt", "isolate=true", name)
    return podman("network", "inspect", TPNET[0], TPNET2[0])


def remove_networks() -> None:
    """Remove the lab's Podman networks."""
    subprocess.run(["podman", "network", "rm", "-f", TPNET[0], TPNET2[0]], capture_output=True, timeout=60, check=False)


def lab_networks(inspected: Sequence[dict[str, object]]) -> list[PodmanNetwork]:
    """The networks as Podman created them: their real ids and bridges."""
    networks = []
    for item in inspected:
        subnet = item["subnets"][0]  # type: ignore[index]
        gateway = f"{subnet['gateway']}/{subnet['subnet'].split('/')[1]}"
        bridge = Bridge(str(item["network_interface"]), IPv4Interface(gateway))
        networks.append(PodmanNetwork(str(item["name"]), str(item["id"]), bridge))
    return networks


def topology(prefix: str, networks: Sequence[PodmanNetwork]) -> tuple[Topology, dict[str, Endpoint]]:
    """web-1 and web-2 on tpnet (web-2 publishes 8080:80), other-1 on tpnet2, a client behind eth0."""
    tpnet, tpnet2 = networks
    endpoints = {
        "web-1": Endpoint("web-1", tpnet.bridge, "10.89.0.2", "0a:58:0a:59:00:02"),
        "web-2": Endpoint("web-2", tpnet.bridge, "10.89.0.3", "0a:58:0a:59:00:03", httpd=True),
        "other-1": Endpoint("other-1", tpnet2.bridge, "10.89.1.2", "0a:58:0a:59:01:02"),
    }
    lab = Topology(prefix, (tpnet.bridge, tpnet2.bridge), tuple(endpoints.values()), (UPLINK,))
    return lab, endpoints


def scenarios(endpoints: dict[str, Endpoint]) -> tuple[Scenario, ...]:
    """Traffic through netavark's chains: within a network, published, outbound, and an isolation drop."""
    web_2 = endpoints["web-2"].address
    return (
        Scenario(
            "ping",
            "web-1 pings web-2 twice across podman1: accepted by FORWARD's `ip saddr 10.89.0.0/24 accept`",
            (ping("web-1", web_2),),
        ),
        Scenario(
            "published",
            f"ext1 fetches / from the published port {UPLINK.host.ip}:8080: NETAVARK-HOSTPORT-DNAT jumps to tpnet's "
            "_dnat chain, which marks the connection (ct mark 0x1000) and DNATs it to web-2:80; FORWARD accepts it "
            "by that mark",
            (fetch("ext1", str(UPLINK.host.ip), 8080),),
        ),
        Scenario(
            "outgoing",
            "web-1 pings ext1 twice: accepted out of tpnet, masqueraded by tpnet's nv_ chain",
            (ping("web-1", UPLINK.client),),
        ),
        Scenario(
            "isolated",
            "other-1 (tpnet2) connects to web-2:80 (tpnet); both networks were created with isolate=true: "
            "NETAVARK-ISOLATION-2 drops it",
            (connect("other-1", web_2, 80),),
        ),
    )


def capture_sample(out: Path, prefix: str = "tp-nv") -> None:
    """Create the networks, build the lab, trace every scenario into `out`, write meta.json."""
    fresh_directory(out)
    try:
        inspected = create_networks()
    finally:
        remove_networks()
    (out / "podman-network-inspect.json").write_text(inspected)
    networks = lab_networks(json.loads(inspected))
    lab_topology, endpoints = topology(prefix, networks)
    ports = [PortForward(networks[0], endpoints["web-2"].address, 80, 8080)]
    files: dict[str, object] = {
        "podman-network-inspect.json": "podman network inspect tpnet tpnet2, right after podman network create "
        "--subnet SUBNET --gateway GATEWAY --opt isolate=true NAME (both removed again)",
    }
    with NamespaceLab(lab_topology) as lab:
        lab.load(netavark_ruleset(networks, ports))
        lab.reset_tracing()
        (out / "nft-list-ruleset.txt").write_text(lab.ruleset())
        files["nft-list-ruleset.txt"] = f"ip netns exec {lab_topology.host} nft -a list ruleset while tracing"
        for scenario in scenarios(endpoints):
            files[f"{scenario.name}.nft-monitor"] = capture(lab, scenario, out)
    meta = {
        "generator": "python -m tests.lab.netavark_nft (tests/lab/nftlab.py NamespaceLab)",
        "writer": "netavark's nftables driver as netavark 2.1 writes it (src/firewall/nft.rs: setup_network, "
        "setup_port_forward) for the networks podman network create made; web-2 -p 8080:80",
        "captured_at": now_iso(),
        "versions": {**tool_versions(), "podman": podman("version", "--format", "{{.Client.Version}}").strip()},
        "topology": lab_topology.describe(),
        "trace_counters_note": "Packets counted by the counter of each inet tracing trace_* chain (priority -350, "
        "before every other), which sets nftrace for the lab's subnets; the table is created afresh before each "
        "scenario and read with nft -j list table after it.",
        "files": files,
    }
    write_meta(out, meta)


def main(argv: Sequence[str] | None = None) -> int:
    """Regenerate samples/netavark-nft (root, Debian's podman for the networks)."""
    parser = argparse.ArgumentParser(prog="python -m tests.lab.netavark_nft", description=main.__doc__)
    parser.add_argument("--out", type=Path, default=Path("samples/netavark-nft"))
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("netavark_nft: must run as root", file=sys.stderr)
        return 2
    capture_sample(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
