"""The traffic each lab scenario sends, and how to play it against a running lab."""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field
from typing import Literal

from tests.lab.netlab import (
    BUSYBOX,
    PUBLISHED_PORT,
    UPLINK_V4,
    DockerLikeLab,
    Family,
    run,
)

Role = Literal["host", "c1", "c2", "ext"]

# Packets still in flight (FIN/ACK, a late ICMP error) must reach the log
# before the scenario's end marker; the lab's round trips take microseconds.
SETTLE_SECONDS = 0.5


@dataclass(frozen=True)
class Traffic:
    """One client command; ``may_fail`` marks commands whose failure is the point (drops, refusals)."""

    role: Role
    argv: tuple[str, ...]
    may_fail: bool = False
    timeout: float = 10.0


@dataclass(frozen=True)
class RuleChange:
    """A rule inserted at the top of a chain for one scenario only, then deleted again."""

    family: Family
    table: str
    chain: str
    spec: tuple[str, ...]


@dataclass(frozen=True)
class Scenario:
    """A named piece of traffic whose TRACE output becomes one sample file."""

    name: str
    description: str
    traffic: tuple[Traffic, ...]
    rule_changes: tuple[RuleChange, ...] = field(default=())


@dataclass(frozen=True)
class PlayedCommand:
    """What actually ran, for the sample's ``meta.json``."""

    command: str
    returncode: int


def namespace_of(lab: DockerLikeLab, role: Role) -> str:
    """The lab namespace that plays ``role``."""
    return {"host": lab.host, "c1": lab.c1.name, "c2": lab.c2.name, "ext": lab.ext}[role]


C2_V4 = "172.18.0.3"
C2_V6 = "fd00:18::3"
C1_V4 = "172.18.0.2"

SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "ping",
        "c1 pings c2 twice across docker0 (bridged, seen through br_netfilter)",
        (Traffic("c1", (BUSYBOX, "ping", "-c", "2", "-W", "2", C2_V4)),),
    ),
    Scenario(
        "tcp",
        "one HTTP GET from c1 to busybox httpd on c2:80 (bridged TCP: handshake, request, response, close)",
        (Traffic("c1", (BUSYBOX, "wget", "-q", "-O", "/dev/null", f"http://{C2_V4}/")),),
    ),
    Scenario(
        "udp-closed",
        "one UDP datagram from c1 to a closed port on c2; c2 answers ICMP port unreachable",
        (Traffic("c1", ("bash", "-c", f"echo probe >/dev/udp/{C2_V4}/33434")),),
    ),
    Scenario(
        "dnat",
        f"HTTP GET from ext to the published port {UPLINK_V4}:{PUBLISHED_PORT}, DNATed to {C2_V4}:80",
        (
            Traffic(
                "ext",
                (
                    BUSYBOX,
                    "wget",
                    "-q",
                    "-O",
                    "/dev/null",
                    f"http://{UPLINK_V4}:{PUBLISHED_PORT}/",
                ),
            ),
        ),
    ),
    Scenario(
        "host-ping",
        "the Docker host itself pings c1 twice (raw OUTPUT, then the replies in PREROUTING/INPUT)",
        (Traffic("host", (BUSYBOX, "ping", "-c", "2", "-W", "2", C1_V4)),),
    ),
    Scenario(
        "ipv6-ping",
        "c1 pings c2 twice over IPv6 (bridged, ip6tables through br_netfilter)",
        (Traffic("c1", (BUSYBOX, "ping6", "-c", "2", "-W", "2", C2_V6)),),
    ),
    Scenario(
        "drop",
        "c1 connects to c2:8080 while DOCKER-USER drops it; the SYN is retransmitted until nc gives up after 3 s",
        (
            Traffic(
                "c1",
                (BUSYBOX, "nc", "-w", "3", C2_V4, "8080"),
                may_fail=True,
                timeout=8.0,
            ),
        ),
        (
            RuleChange(
                "ipv4",
                "filter",
                "DOCKER-USER",
                (
                    "-s",
                    f"{C1_V4}/32",
                    "-d",
                    f"{C2_V4}/32",
                    "-p",
                    "tcp",
                    "--dport",
                    "8080",
                    "-j",
                    "DROP",
                ),
            ),
        ),
    ),
)


def scenario_named(name: str) -> Scenario:
    """Look a scenario up by its sample name."""
    for scenario in SCENARIOS:
        if scenario.name == name:
            return scenario
    raise KeyError(name)


def apply_rule_changes(lab: DockerLikeLab, scenario: Scenario) -> None:
    """Insert the scenario's extra rules at position 1 of their chains."""
    for change in scenario.rule_changes:
        lab.iptables(change.family, "-t", change.table, "-I", change.chain, "1", *change.spec)


def revert_rule_changes(lab: DockerLikeLab, scenario: Scenario) -> None:
    """Delete the rules ``apply_rule_changes`` inserted."""
    for change in scenario.rule_changes:
        lab.iptables(change.family, "-t", change.table, "-D", change.chain, *change.spec)


def play_traffic(lab: DockerLikeLab, scenario: Scenario) -> list[PlayedCommand]:
    """Send the scenario's traffic (rules must already be in place) and let stragglers arrive."""
    played = []
    for traffic in scenario.traffic:
        argv = lab.ns_argv(namespace_of(lab, traffic.role), traffic.argv)
        result = run(argv, check=False, timeout=traffic.timeout)
        if result.returncode != 0 and not traffic.may_fail:
            raise RuntimeError(f"{shlex.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
        played.append(PlayedCommand(shlex.join(argv), result.returncode))
    time.sleep(SETTLE_SECONDS)
    return played
