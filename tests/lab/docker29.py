"""The nftables ruleset Docker 29's nftables firewall backend writes for one bridge network, and its capture.

Docker 29 (`dockerd --firewall-backend=nftables`) cannot be installed here, so
the ruleset is written as moby's bridge driver writes it
(daemon/libnetwork/drivers/bridge/internal/nftabler: nftabler.go for the base
chains and verdict maps, network.go for the per-bridge chains, port.go for
published ports, endpoint.go for the direct-access drops; the shape matches
its testdata/TestNftabler goldens), loaded with `nft -f` into a lab host
namespace, and real packets are traced through it. Regenerate the sample, as
root, from the repository root:

    python -m tests.lab.docker29 --out samples/docker29-nft
"""

from __future__ import annotations

import argparse
import os
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

TABLE = "docker-bridges"


@dataclass(frozen=True)
class PublishedPort:
    """`-p host_port:port/proto` of one container, on every host address."""

    address: str
    port: int
    host_port: int
    proto: str = "tcp"


@dataclass(frozen=True)
class BridgeConfig:
    """What decides a bridge network's rules: daemon `--icc`, and the network's trusted host interfaces."""

    bridge: Bridge
    containers: tuple[str, ...]
    published: tuple[PublishedPort, ...]
    icc: bool = True
    trusted_interfaces: tuple[str, ...] = ()


def base_table(family: str, vmap_elements: dict[str, str]) -> list[str]:
    """The table, its four verdict maps and its base chains, as nftabler.go creates them at daemon start."""
    loopback = "127.0.0.0/8" if family == "ip" else "::1"
    lines = [f"table {family} {TABLE} {{"]
    for vmap in (
        "filter-forward-in-jumps",
        "filter-forward-out-jumps",
        "nat-postrouting-in-jumps",
        "nat-postrouting-out-jumps",
    ):
        lines += [f"\tmap {vmap} {{", "\t\ttype ifname : verdict"]
        if vmap in vmap_elements:
            lines.append(f"\t\telements = {{ {vmap_elements[vmap]} }}")
        lines += ["\t}", ""]
    lines += [
        "\tchain filter-FORWARD {",
        "\t\ttype filter hook forward priority filter; policy accept;",
        "\t\toifname vmap @filter-forward-in-jumps",
        "\t\tiifname vmap @filter-forward-out-jumps",
        "\t}",
        "",
        "\tchain nat-OUTPUT {",
        # dstnat (-100) by number: nft 1.0.6 takes the name for the prerouting hook only
        "\t\ttype nat hook output priority -100; policy accept;",
        f"\t\t{family} daddr != {loopback} fib daddr type local counter jump nat-prerouting-and-output",
        "\t}",
        "",
        "\tchain nat-POSTROUTING {",
        "\t\ttype nat hook postrouting priority srcnat; policy accept;",
        "\t\tiifname vmap @nat-postrouting-out-jumps",
        "\t\toifname vmap @nat-postrouting-in-jumps",
        "\t}",
        "",
        "\tchain nat-PREROUTING {",
        "\t\ttype nat hook prerouting priority dstnat; policy accept;",
        "\t\tfib daddr type local counter jump nat-prerouting-and-output",
        "\t}",
        "",
    ]
    return lines


def docker29_ruleset(config: BridgeConfig) -> str:
    """`ip docker-bridges` with one bridge network and its containers, and the empty `ip6 docker-bridges`.

    Defaults as a plain `dockerd --firewall-backend=nftables`: gateway mode
    nat, userland proxy on (no hairpin NAT), masquerade on, IPv6 off for the
    network (the ip6 table holds only the base chains).
    """
    bridge = config.bridge.name
    elements = {
        "filter-forward-in-jumps": f'"{bridge}" : jump filter-forward-in__{bridge}',
        "filter-forward-out-jumps": f'"{bridge}" : jump filter-forward-out__{bridge}',
        "nat-postrouting-in-jumps": f'"{bridge}" : jump nat-postrouting-in__{bridge}',
        "nat-postrouting-out-jumps": f'"{bridge}" : jump nat-postrouting-out__{bridge}',
    }
    icc = "accept" if config.icc else "drop"
    trusted = ", ".join(f'"{name}"' for name in (bridge, *config.trusted_interfaces))
    not_from = f"{{ {trusted} }}" if config.trusted_interfaces else f'"{bridge}"'
    published = [
        f'\t\tiifname != "{bridge}" {port.proto} dport {port.host_port} counter'
        f' dnat to {port.address}:{port.port} comment "DNAT"'
        for port in config.published
    ]
    accepted = [
        f"\t\tip daddr {port.address} {port.proto} dport {port.port} counter accept" for port in config.published
    ]
    direct = [
        f'\t\tip daddr {address} iifname != {not_from} counter drop comment "DROP DIRECT ACCESS"'
        for address in config.containers
    ]
    lines = base_table("ip", elements)
    lines += ["\tchain nat-prerouting-and-output {", *published, "\t}", ""]
    lines += [
        "\tchain raw-PREROUTING {",
        "\t\ttype filter hook prerouting priority raw; policy accept;",
        *direct,
        "\t}",
        "",
    ]
    lines += [
        f"\tchain filter-forward-in__{bridge} {{",
        "\t\tct state established,related counter accept",
        f'\t\tiifname "{bridge}" counter {icc} comment "ICC"',
        *accepted,
        '\t\tcounter drop comment "UNPUBLISHED PORT DROP"',
        "\t}",
        "",
        f"\tchain filter-forward-out__{bridge} {{",
        "\t\tct state established,related counter accept",
        '\t\tcounter accept comment "OUTGOING"',
        "\t}",
        "",
        f"\tchain nat-postrouting-in__{bridge} {{",
        "\t}",
        "",
        f"\tchain nat-postrouting-out__{bridge} {{",
        f'\t\toifname != "{bridge}" ip saddr {config.bridge.subnet} counter masquerade comment "MASQUERADE"',
        "\t}",
        "}",
    ]
    lines += base_table("ip6", {})
    lines += [
        "\tchain nat-prerouting-and-output {",
        "\t}",
        "",
        "\tchain raw-PREROUTING {",
        "\t\ttype filter hook prerouting priority raw; policy accept;",
        "\t}",
        "}",
    ]
    return "\n".join(lines) + "\n"


# --- the lab ------------------------------------------------------------------------

DOCKER0 = Bridge("docker0", IPv4Interface("172.18.0.1/16"))
NGINX_1 = Endpoint("nginx-1", DOCKER0, "172.18.0.2", "02:42:ac:12:00:02", httpd=True)
NGINX_2 = Endpoint("nginx-2", DOCKER0, "172.18.0.3", "02:42:ac:12:00:03", httpd=True)
UPLINK = Uplink("eth0", IPv4Interface("192.0.2.1/24"), "192.0.2.10", "02:00:c0:00:02:0a")
TRUSTED = Uplink("eth1", IPv4Interface("198.51.100.1/24"), "198.51.100.10", "02:00:c6:33:64:0a")
PUBLISHED = PublishedPort(NGINX_2.address, 80, 8080)
CONFIG = BridgeConfig(
    DOCKER0,
    containers=(NGINX_1.address, NGINX_2.address),
    published=(PUBLISHED,),
    icc=False,
    trusted_interfaces=(TRUSTED.interface,),
)


def topology(prefix: str) -> Topology:
    """docker0 with nginx-1 and nginx-2, a client behind eth0 and one behind the trusted eth1."""
    return Topology(prefix, (DOCKER0,), (NGINX_1, NGINX_2), (UPLINK, TRUSTED))


# A host firewall that was there before dockerd started (ufw, firewalld's iptables
# backend, an admin's `iptables -P FORWARD DROP`): its base chain registered first.
FORWARD_DROP = ("iptables-nft", "-P", "FORWARD", "DROP")

SCENARIOS = (
    Scenario(
        "published",
        f"ext1 fetches / from the published port {UPLINK.host.ip}:{PUBLISHED.host_port}: DNAT to "
        f"{NGINX_2.address}:80, accepted by the per-port rule of filter-forward-in__docker0",
        (fetch("ext1", str(UPLINK.host.ip), PUBLISHED.host_port),),
    ),
    Scenario(
        "outgoing",
        "nginx-1 pings ext1 twice: accepted by filter-forward-out__docker0 (OUTGOING), masqueraded",
        (ping("nginx-1", UPLINK.client),),
    ),
    Scenario(
        "icc",
        "nginx-1 pings nginx-2 twice across docker0 while the daemon runs with --icc=false: dropped by ICC",
        (ping("nginx-1", NGINX_2.address, may_fail=True),),
    ),
    Scenario(
        "direct",
        f"ext1 connects to {NGINX_2.address}:80 directly, not through the published port: dropped in "
        "raw-PREROUTING by DROP DIRECT ACCESS",
        (connect("ext1", NGINX_2.address, 80),),
    ),
    Scenario(
        "unpublished",
        f"ext2, behind the network's trusted host interface {TRUSTED.interface}, connects to {NGINX_2.address}:81, "
        "a port nginx-2 does not publish: dropped by UNPUBLISHED PORT DROP",
        (connect("ext2", NGINX_2.address, 81),),
    ),
    Scenario(
        "forward-policy",
        f"ext1 fetches / from {UPLINK.host.ip}:{PUBLISHED.host_port} again while iptables-nft's filter FORWARD has "
        "policy DROP, set before Docker's tables were loaded: docker-bridges accepts, then iptables' base chain on the "
        "same forward hook drops",
        (connect("ext1", str(UPLINK.host.ip), PUBLISHED.host_port),),
    ),
)


def capture_sample(out: Path, prefix: str = "tp-d29") -> None:
    """Build the lab, load the ruleset, trace every scenario into `out`, write meta.json."""
    fresh_directory(out)
    lab_topology = topology(prefix)
    ruleset = docker29_ruleset(CONFIG)
    files: dict[str, object] = {}
    with NamespaceLab(lab_topology) as lab:
        lab.load(ruleset)
        lab.reset_tracing()
        (out / "nft-list-ruleset.txt").write_text(lab.ruleset())
        files["nft-list-ruleset.txt"] = f"ip netns exec {lab_topology.host} nft -a list ruleset while tracing"
        *plain, trap = SCENARIOS
        for scenario in plain:
            files[f"{scenario.name}.nft-monitor"] = capture(lab, scenario, out)
        # Docker's tables go and come back after the host firewall's, as after a reboot.
        for family in ("ip", "ip6"):
            lab.exec("host", ["nft", "delete", "table", family, TABLE])
        lab.exec("host", FORWARD_DROP)
        lab.load(ruleset)
        lab.reset_tracing()
        (out / "nft-list-ruleset.forward-policy.txt").write_text(lab.ruleset())
        files["nft-list-ruleset.forward-policy.txt"] = (
            f"nft -a list ruleset of the forward-policy scenario: `{' '.join(FORWARD_DROP)}` ran first, then "
            "docker-bridges was loaded again"
        )
        files[f"{trap.name}.nft-monitor"] = capture(lab, trap, out)
    meta = {
        "generator": "python -m tests.lab.docker29 (tests/lab/nftlab.py NamespaceLab)",
        "writer": "Docker 29 --firewall-backend=nftables, as moby's bridge driver writes it "
        "(daemon/libnetwork/drivers/bridge/internal/nftabler); daemon --icc=false, network option "
        f"com.docker.network.bridge.trusted_host_interfaces={TRUSTED.interface}, nginx-2 -p 8080:80",
        "captured_at": now_iso(),
        "versions": tool_versions(),
        "topology": lab_topology.describe(),
        "trace_counters_note": "Packets counted by the counter of each inet tracing trace_* chain (priority -350, "
        "before raw), which sets nftrace for the lab's subnets; the table is created afresh before each scenario "
        "and read with nft -j list table after it.",
        "files": files,
    }
    write_meta(out, meta)


def main(argv: Sequence[str] | None = None) -> int:
    """Regenerate samples/docker29-nft (root)."""
    parser = argparse.ArgumentParser(prog="python -m tests.lab.docker29", description=main.__doc__)
    parser.add_argument("--out", type=Path, default=Path("samples/docker29-nft"))
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("docker29: must run as root", file=sys.stderr)
        return 2
    capture_sample(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
