"""Root only: the Docker 29 and netavark rulesets replayed in namespaces of the test's own, traced and read back.

The same generators and lab made samples/docker29-nft and samples/netavark-nft;
here one drop of each is traced again, and tracelog must find the packets the
kernel counted and name the drop's reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunCli
from tests.lab import docker29, netavark_nft
from tests.lab.nftlab import NamespaceLab, capture
from tests.samples import SAMPLES
from tracelog.chains import Reason, docker, netavark

pytestmark = [pytest.mark.lab, pytest.mark.root_only]

VerdictReason = Callable[[str, str, str | None, str | None], Reason | None]


def read_back(run_cli: RunCli, path: Path) -> list[dict[str, Any]]:
    run = run_cli("parse", "-f", "jsonl", str(path))
    assert run.status == 0, run.stderr
    return run.records()


def deciding_labels(records: list[dict[str, Any]], verdict_reason: VerdictReason) -> list[str | None]:
    """The writer's label for the rule that decided each record, None where the writer gives no reason."""
    labels = []
    for record in records:
        step = record["steps"][record["verdict_step"] - 1]
        reason = verdict_reason(step["table"], step["chain"], step["rule"], step["verdict"])
        labels.append(reason.label if reason else None)
    return labels


def test_docker29_icc_drop(tmp_path: Path, run_cli: RunCli) -> None:
    icc = next(scenario for scenario in docker29.SCENARIOS if scenario.name == "icc")
    with NamespaceLab(docker29.topology("tp-t29")) as lab:
        lab.load(docker29.docker29_ruleset(docker29.CONFIG))
        entry = capture(lab, icc, tmp_path)
    records = read_back(run_cli, tmp_path / "icc.nft-monitor")
    assert len(records) == entry["traced_packets"] == 2
    assert deciding_labels(records, docker.verdict_reason) == ["ICC", "ICC"]


def test_netavark_isolation_drop(tmp_path: Path, run_cli: RunCli) -> None:
    """The networks of the sample (their ids, bridges, subnets) stand in for podman network create."""
    inspected = json.loads((SAMPLES / "netavark-nft" / "podman-network-inspect.json").read_text())
    networks = netavark_nft.lab_networks(inspected)
    topology, endpoints = netavark_nft.topology("tp-tnv", networks)
    isolated = next(scenario for scenario in netavark_nft.scenarios(endpoints) if scenario.name == "isolated")
    ports = [netavark_nft.PortForward(networks[0], endpoints["web-2"].address, 80, 8080)]
    with NamespaceLab(topology) as lab:
        lab.load(netavark_nft.netavark_ruleset(networks, ports))
        entry = capture(lab, isolated, tmp_path)
    records = read_back(run_cli, tmp_path / "isolated.nft-monitor")
    assert len(records) == entry["traced_packets"] == 2
    assert deciding_labels(records, netavark.verdict_reason) == ["ISOLATION", "ISOLATION"]
