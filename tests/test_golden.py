"""Rendered output pinned by golden files (tests/golden/).

A change in output is a reviewed diff: regenerate on purpose with
`TRACELOG_UPDATE_GOLDEN=1 pytest tests/test_golden.py` and read the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import RunCli
from tests.samples import SAMPLES

GOLDEN = Path(__file__).parent / "golden"
# after the sample and the format: ruleset snapshots, and `names:` files (the lab's kubectl output)
KUBECTL = tuple(f"names:k8s-legacy/kubectl-{kind}.json" for kind in ("pods", "svc", "endpointslices"))
CASES: list[tuple[str, ...]] = [
    ("docker-legacy/ping.dmesg", "table"),
    ("docker-legacy/drop.dmesg", "table", "docker-legacy/iptables-save.drop.txt"),
    ("lab-legacy/dnat.dmesg", "table", "lab-legacy/ruleset.iptables-save"),
    ("lab-legacy/drop.dmesg", "jsonl", "lab-legacy/ruleset-drop.iptables-save"),
    ("lab-legacy/dnat.dmesg", "table"),
    ("lab-legacy/udp-closed.dmesg", "table"),
    ("lab-legacy/ipv6-ping.dmesg", "table"),
    ("docker-legacy/ping.dmesg", "jsonl"),
    ("lab-legacy/dnat.dmesg", "jsonl"),
    ("lab-legacy/udp-closed.dmesg", "csv"),
    ("lab-nft/dnat.nft-monitor", "table"),
    ("lab-nft/native.nft-monitor", "table"),
    ("docker-nft/ping.xtables-monitor", "jsonl"),
    ("lab-ulogd/ulogd.json", "table"),
    *(
        (sample, output, "k8s-legacy/iptables-save.txt", *KUBECTL)
        for sample, output in (("k8s-legacy/no-endpoints.dmesg", "table"), ("k8s-legacy/nodeport.dmesg", "jsonl"))
    ),
    ("k8s-nftables/clusterip.handles.nft-monitor", "table", "k8s-nftables/nft-list-ruleset.txt", *KUBECTL),
    ("docker29-nft/icc.nft-monitor", "table", "names:docker-legacy/docker-network-inspect.json"),
    ("netavark-nft/published.nft-monitor", "table", "names:netavark-nft/podman-network-inspect.json"),
    ("lab-arp/local.xtables-monitor", "table"),
    ("lab-arp/local.xtables-monitor", "jsonl"),
    ("lab-arp/bridge.nft-monitor", "table"),
    ("nftrace/ping-drop.nftrace", "table"),
    ("nftrace/exchange.nftrace", "jsonl"),
]


@pytest.mark.parametrize("case", CASES, ids=["-".join(case) for case in CASES])
def test_output_matches_golden_file(case: tuple[str, ...], run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    sample, output, *given = case
    monkeypatch.chdir(SAMPLES.parent)  # sources are printed as given: keep them relative
    names = [path.removeprefix("names:") for path in given if path.startswith("names:")]
    rules = [path for path in given if not path.startswith("names:")]
    options = [
        *(option for snapshot in rules for option in ("--rules", f"samples/{snapshot}")),
        *(option for path in names for option in ("--names", f"samples/{path}")),
    ]
    run = run_cli("parse", "--format", output, *options, f"samples/{sample}")
    suffix = (".rules" if rules else "") + (".names" if names else "")
    golden = GOLDEN / f"{sample.replace('/', '__')}{suffix}.{output}"
    if os.environ.get("TRACELOG_UPDATE_GOLDEN"):
        golden.write_text(run.stdout)
    assert run.stdout == golden.read_text()
