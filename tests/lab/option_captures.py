"""Capture ``samples/lab-nft-options``: the trace monitors run with the options that change their rule text.

Run from the repository root, as root::

    python -m tests.lab.option_captures --out samples/lab-nft-options

`xtables-monitor -c --trace` prints each rule with its live counters
(``-4 -t raw [2:168] -A PREROUTING …``); `nft -a monitor trace` prints the
rule handles (``… # handle 3 (verdict continue)``) beside the counters nft
read when it started.  Both run at once on one ping between the lab's two
containers, traced by a raw ``-p icmp -j TRACE`` rule as `tracelog enable
icmp` installs one.  A first ping, before the monitors start, leaves the
filter rules' counters above zero, so that the numbers show.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any
from unittest import mock

from tests.lab import capture
from tests.lab.netlab import BUSYBOX, DockerLikeLab
from tests.lab.scenarios import C2_V4, Scenario, Traffic, play_traffic

PREFIX = "tlopt"
OPTIONS = {
    "xtables-monitor": ["xtables-monitor", "-c", "--trace"],
    "nft-monitor": ["nft", "-a", "monitor", "trace"],
}
TRACE_RULE = ["-t", "raw", "-A", "PREROUTING", "-p", "icmp", "-j", "TRACE"]
PING = Scenario(
    "ping",
    "c1 pings c2 twice across docker0 (bridged, seen through br_netfilter), after an untraced first ping",
    (Traffic("c1", (BUSYBOX, "ping", "-c", "2", "-W", "2", C2_V4)),),
)


def trace_icmp_only(lab: DockerLikeLab) -> None:
    """Replace the lab's raw TRACE rules (by source subnet) with one IPv4 rule for ICMP."""
    for family in ("ipv4", "ipv6"):
        lab.iptables(family, "-t", "raw", "-F")
    lab.iptables("ipv4", *TRACE_RULE)


def renamed(value: Any) -> Any:
    """`value` with the lab's namespace names (`tl-host`, …) as this capture's prefix spells them."""
    if isinstance(value, str):
        return re.sub(r"\btl-(host|c1|c2|ext)\b", rf"{PREFIX}-\1", value)
    if isinstance(value, dict):
        return {renamed(key): renamed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [renamed(item) for item in value]
    return value


def capture_options(directory: Path) -> None:
    """Both monitors, with their options, on one traced ping; meta.json says what was run."""
    directory.mkdir(parents=True, exist_ok=True)
    meta = capture.base_meta("nft")
    meta["generator"] = "python -m tests.lab.option_captures (tests/lab/netlab.py DockerLikeLab)"
    meta["trace_rules"] = [f"iptables-nft {' '.join(TRACE_RULE)}"]
    files: dict[str, Any] = meta["files"]
    outputs = {kind: directory / f"ping.{kind}" for kind in OPTIONS}
    with DockerLikeLab("nft", prefix=PREFIX) as lab:
        trace_icmp_only(lab)
        lab.exec(lab.c1.name, [BUSYBOX, "ping", "-c", "1", "-W", "2", C2_V4])
        for name, what in capture.snapshot_rulesets(lab, directory).items():
            files[name] = {"content": what}
        lab.zero_trace_counters()
        # capture.monitors() runs the commands MONITORS names: here, the same monitors with options
        with mock.patch.dict(capture.MONITORS, OPTIONS), capture.monitors(lab, outputs) as failures:
            commands = play_traffic(lab, PING)
        counters = capture.lab_counters(lab)
    scenario_run = capture.ScenarioRun(PING, commands, counters)
    for kind, path in outputs.items():
        files[path.name] = {
            "rendering": f"ip netns exec {PREFIX}-host {' '.join(OPTIONS[kind])}",
            "lines": capture.count_lines(path),
            "monitor_failure": failures.get(kind),
            **scenario_run.describe(),
        }
    meta["notes"] = [
        "xtables-monitor and nft monitor ran at the same time on the same trace events.",
        "xtables-monitor -c fetches each rule as the event arrives: its counters are live. nft monitor prints "
        "rules from the ruleset it read when it started: its counters are those of that moment.",
    ]
    capture.write_meta(directory, renamed(meta))
    print(f"  {scenario_run.traced_packets} packets traced")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("samples/lab-nft-options"))
    arguments = parser.parse_args()
    capture_options(arguments.out)


if __name__ == "__main__":
    main()
