"""Flows on real captures: one connection, echo exchanges, DNAT, ICMP errors, a mixed run, expiry, bounds."""

from __future__ import annotations

import gc
import re
import tracemalloc
from collections import defaultdict

import pytest

from tests.conftest import RunCli
from tests.samples import SAMPLES
from tracelog.correlate import Packet
from tracelog.pipeline import ParseOptions, RunStats, trace_packets
from tracelog.records.flows import DEFAULT_IDLE, HOST_CHARACTERS, KEYS_KEPT, KEYS_PER_FLOW, FlowTracker, assign_flows
from tracelog.records.packet import PacketRecord, StepRecord, packet_record

Record = PacketRecord


def packets(*names: str) -> list[Packet]:
    return list(trace_packets([str(SAMPLES / name) for name in names], ParseOptions(year=2026), RunStats()))


def records(*names: str) -> list[Record]:
    """The contract records of real captures, read in one run."""
    return [packet_record(packet) for packet in packets(*names)]


def flow_ids(found: list[Record], idle: int = DEFAULT_IDLE) -> list[int]:
    return [flow for flow, _ in assign_flows(found, idle)]


def test_one_tcp_connection_is_one_flow() -> None:
    found = records("lab-legacy/tcp.dmesg")
    assert len(found) == 12
    assert flow_ids(found) == [1] * 12


def test_two_echo_exchanges_with_one_identifier_are_one_flow() -> None:
    found = records("lab-legacy/ping.dmesg")
    assert [record["icmp_type"] for record in found] == [8, 0, 8, 0]
    assert flow_ids(found) == [1] * 4


def test_dnat_connection_and_its_replies_are_one_flow() -> None:
    """Requests reach 192.0.2.1:8080 and leave DNAT'ed; replies come from 172.18.0.3:80."""
    found = records("lab-legacy/dnat.dmesg")
    requests = [record for record in found if record["dst"] == "192.0.2.1"]
    replies = [record for record in found if record["src"] == "172.18.0.3"]
    assert len(requests) + len(replies) == len(found) == 13
    assert {(step["dst"], step["dport"]) for step in requests[0]["steps"]} == {("192.0.2.1", 8080), ("172.18.0.3", 80)}
    assert flow_ids(found) == [1] * 13


def test_port_unreachable_joins_the_datagram_flow() -> None:
    found = records("lab-legacy/udp-closed.dmesg")
    assert flow_ids(found) == [1, 1]


def test_pings_with_different_identifiers_are_different_flows() -> None:
    """Two captures of c1 pinging c2 (echo ids 20412 and 30574), read as one log."""
    found = records("lab-legacy/ping.dmesg", "lab-legacy/kmsg.txt")
    assert [record["icmp_id"] for record in found] == [20412] * 4 + [30574] * 4
    assert flow_ids(found) == [1] * 4 + [2] * 4


def test_jsonl_records_carry_their_flow(run_cli: RunCli) -> None:
    run = run_cli("parse", "-f", "jsonl", str(SAMPLES / "lab-legacy/udp-closed.dmesg"))
    datagram, error = run.records()
    assert datagram["flow"] == error["flow"] == 1
    assert error["inner"] == {
        "src": datagram["src"],
        "dst": datagram["dst"],
        "proto": "UDP",
        "sport": datagram["sport"],
        "dport": datagram["dport"],
        "icmp_type": None,
        "icmp_id": None,
    }


def test_loopback_dnat_is_seen_through_both_ways() -> None:
    """Two pings of 127.0.0.1, then an HTTP GET to :8081 that nat OUTPUT DNATs to :8080.

    Requests show port 8081 then 8080; replies leave with 8080 and come back
    in with 8081: every step's ports count, not only the first's.
    """
    assert flow_ids(records("lab-legacy/loopback.dmesg")) == [1] * 4 + [2] * 13


def test_docker_proxy_relays_two_connections() -> None:
    """nginx-1 → 172.18.0.1:8080 (docker-proxy), and docker-proxy's own connection to nginx-2:80.

    The proxy copies bytes in user space; no NAT joins the two, so neither
    can a trace.
    """
    found = records("docker-legacy/proxy.dmesg")
    by_flow = defaultdict(set)
    for flow, record in assign_flows(found):
        by_flow[flow].add(frozenset({(record["src"], record["sport"]), (record["dst"], record["dport"])}))
    assert by_flow == {
        1: {frozenset({("172.18.0.2", 41982), ("172.18.0.1", 8080)})},
        2: {frozenset({("172.18.0.1", 41494), ("172.18.0.3", 80)})},
    }


# Flows per scenario of the mixed run (each scenario between its marker lines).
MIXED_RUN_FLOWS = {
    # c1 pings c2 twice with one echo identifier: requests and replies of both exchanges
    "ping": 1,
    # handshake, request, response and close of one connection, both directions
    "tcp": 1,
    # the datagram, and the port unreachable that quotes it
    "udp-closed": 1,
    # requests to 192.0.2.1:8080 leave DNAT'ed to 172.18.0.3:80, where the replies come from
    "dnat": 1,
    # the host pings c1 twice with one echo identifier
    "host-ping": 1,
    # c1's neighbour solicitation (to c2's solicited-node group) and c2's advertisement are no
    # query and reply (different types, no identifier; conntrack does not pair them either),
    # then the two echo exchanges with one identifier: 3
    "ipv6-ping": 3,
    # the SYN of one connection and its two retransmissions, all dropped
    "drop": 1,
}
MARKER = re.compile(r"tracelog-lab: (?P<scenario>[\w-]+) \w+ begin")


def flows_per_scenario(found: list[Record]) -> dict[str, set[int]]:
    """The flow ids of each scenario of the mixed run, told by the marker line before its packets."""
    log = SAMPLES / "lab-legacy/rsyslog-traditional.log"
    begins = [
        (number, match["scenario"])
        for number, line in enumerate(log.read_text().splitlines(), start=1)
        if (match := MARKER.search(line))
    ]
    assert [scenario for _, scenario in begins] == list(MIXED_RUN_FLOWS)
    flows = defaultdict(set)
    for flow, record in assign_flows(found):
        line = record["steps"][0]["line"]
        scenario = next(scenario for number, scenario in reversed(begins) if number < line)
        flows[scenario].add(flow)
    return flows


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        pytest.param(scenario, count) if scenario == "udp-closed" else (scenario, count)
        for scenario, count in MIXED_RUN_FLOWS.items()
    ],
)
def test_mixed_run_flows_per_scenario(scenario: str, expected: int) -> None:
    assert len(flows_per_scenario(records("lab-legacy/rsyslog-traditional.log"))[scenario]) == expected


def test_no_flow_spans_two_scenarios_of_the_mixed_run() -> None:
    flows = flows_per_scenario(records("lab-legacy/rsyslog-traditional.log"))
    assert {scenario: len(ids) for scenario, ids in flows.items()} == MIXED_RUN_FLOWS
    every = [flow for ids in flows.values() for flow in ids]
    assert sorted(every) == list(range(1, len(every) + 1))  # no flow spans two scenarios


def test_a_flow_idle_for_longer_than_the_gap_is_over() -> None:
    """The same ping read again after the 12 packets of a TCP connection: 13 packets later."""
    found = records("lab-legacy/ping.dmesg", "lab-legacy/tcp.dmesg", "lab-legacy/ping.dmesg")
    assert flow_ids(found, idle=13) == [1] * 4 + [2] * 12 + [1] * 4
    assert flow_ids(found, idle=12) == [1] * 4 + [2] * 12 + [3] * 4


def test_flows_leave_memory_once_idle() -> None:
    tracker = FlowTracker(idle=3)
    peak = 0
    for record in records("lab-legacy/rsyslog-traditional.log"):
        tracker.assign(record)
        peak = max(peak, tracker.live_flows)
    assert peak <= 4


def mirrored(record: Record) -> Record:
    """The same packet sent the other way: what the other end's own ping looks like."""
    steps: list[StepRecord] = [{**step, "src": step["dst"], "dst": step["src"]} for step in record["steps"]]
    return {**record, "src": record["dst"], "dst": record["src"], "steps": steps}


def test_two_ends_pinging_each_other_with_one_identifier_are_two_flows() -> None:
    """busybox pings from two fresh containers often share an identifier: an echo request is never a reply."""
    request, reply = records("lab-legacy/ping.dmesg")[:2]
    assert (request["icmp_type"], reply["icmp_type"]) == (8, 0)
    found = [request, mirrored(request), reply, mirrored(reply)]
    assert flow_ids(found) == [1, 2, 1, 2]


def rewritten(record: Record, number: int, sights: int = 2) -> Record:
    """A captured packet whose later steps show it sent on to new addresses, as NAT to a new backend would."""
    first, *_, last = record["steps"]
    moved: list[StepRecord] = [
        {**last, "dst": f"10.{number >> 8 & 255}.{number & 255}.{step}"} for step in range(sights - 1)
    ]
    return {**record, "steps": [first, *moved]}


def from_port(record: Record, port: int) -> Record:
    """The packet sent from another source port: a flow of its own."""
    return {**record, "sport": port, "steps": [{**step, "sport": port} for step in record["steps"]]}


def test_a_flow_whose_packets_each_bring_new_keys_keeps_its_latest_keys() -> None:
    """Each packet shares its first step with the flow and is rewritten to a new address: one flow, bounded memory.

    What the tracker holds after 20,000 such packets is what it held after 10,000.
    """
    record = records("lab-legacy/tcp.dmesg")[0]
    tracker = FlowTracker()
    flows, kept = set(), []
    gc.collect()
    tracemalloc.start()
    try:
        for start in (0, 10_000):
            flows |= {tracker.assign(rewritten(record, number)) for number in range(start, start + 10_000)}
            gc.collect()
            kept.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    assert flows == {1}
    assert tracker.live_keys <= KEYS_PER_FLOW
    assert kept[1] < kept[0] + (1 << 18), kept


def test_all_flows_together_keep_a_bounded_number_of_keys() -> None:
    """Many live flows, each known by as many keys as a flow may have: the least recent are over early."""
    record = records("lab-legacy/tcp.dmesg")[0]
    tracker = FlowTracker()
    flows = KEYS_KEPT // KEYS_PER_FLOW + 100
    for number in range(flows):
        tracker.assign(rewritten(from_port(record, number), number, sights=KEYS_PER_FLOW))
        assert tracker.live_keys <= KEYS_KEPT + KEYS_PER_FLOW
    assert tracker.live_flows < flows


def test_flows_from_hosts_with_long_names_stay_bounded() -> None:
    """A syslog host field is whatever the log says: flows from hosts named with 60,000 characters each."""
    record = records("lab-legacy/tcp.dmesg")[0]
    tracker = FlowTracker()
    for number in range(600):
        tracker.assign({**record, "host": f"host-{number}".ljust(60_000, "x")})
    assert tracker.live_flows * 60_000 <= HOST_CHARACTERS + 60_000
