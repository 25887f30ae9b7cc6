"""tshark's renderings of TRACE records it decoded from NFLOG (samples/lab-tshark, captured with `tshark -i nflog`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunCli
from tests.outcomes import outcomes
from tests.samples import SAMPLES
from tracelog.events import Partial, TraceEvent
from tracelog.parse.tshark import ADDRESSES_ONLY, TREE_FIELDS, TREE_LINES

TSHARK = SAMPLES / "lab-tshark"
FIELDS_RENDERINGS = ["prefix-ip.tshark", "prefix-addresses.tshark"]
RENDERINGS = [*FIELDS_RENDERINGS, "verbose.tshark"]
# what the fields renderings do not show of a packet: all of the kernel logger's fields but its addresses
NOT_SHOWN = {
    "ipv4": ["in_iface", "out_iface", "length", "tos", "prec", "ttl", "ip_id", "proto"],
    "ipv6": ["in_iface", "out_iface", "length", "tc", "ttl", "flowlabel", "proto"],
}


def records(path: Path, run_cli: RunCli, *options: str) -> list[dict[str, Any]]:
    run = run_cli("parse", "--format", "jsonl", *options, str(path))
    assert run.status == 0, run.stderr
    assert (TREE_FIELDS if path.name == "verbose.tshark" else ADDRESSES_ONLY) in run.stderr
    found: list[dict[str, Any]] = run.records()
    return found


def prefixes(path: Path) -> list[tuple[int, str]]:
    """The TRACE tag of every record, with its line: the test's own reading of the file."""
    found = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if "TRACE: " in line:
            found.append((number, line[line.index("TRACE: ") + 7 :].split()[0]))
    return found


@pytest.mark.parametrize("name", RENDERINGS)
def test_every_record_is_a_step_with_its_chain_path(name: str, run_cli: RunCli) -> None:
    found = records(TSHARK / name, run_cli)
    steps = sorted((step for record in found for step in record["steps"]), key=lambda step: int(step["line"]))
    tags = [f"{step['table']}:{step['chain']}:{step['kind']}:{step['rulenum']}" for step in steps]
    assert [(step["line"], tag) for step, tag in zip(steps, tags, strict=True)] == prefixes(TSHARK / name)


@pytest.mark.parametrize("name", FIELDS_RENDERINGS)
def test_a_fields_rendering_shows_the_addresses_alone(name: str, run_cli: RunCli) -> None:
    found = records(TSHARK / name, run_cli)
    # nothing tshark shows tells one flow's packets apart: each step is a packet of its own
    assert all(len(record["steps"]) == 1 for record in found)
    assert sorted({(record["family"], record["src"], record["dst"]) for record in found}) == [
        ("ipv4", "10.98.0.1", "10.98.0.2"),
        ("ipv4", "10.98.0.2", "10.98.0.1"),
        ("ipv6", "fd98::1", "fd98::2"),
        ("ipv6", "fd98::2", "fd98::1"),
    ]
    for record in found:
        assert record["partial"]["elided"] == NOT_SHOWN[record["family"]]


def test_the_rulesets_name_rules_and_verdicts(run_cli: RunCli) -> None:
    rules = ("--rules", str(TSHARK / "ruleset.iptables-save"), "--rules", str(TSHARK / "ruleset.ip6tables-save"))
    found = records(TSHARK / "prefix-ip.tshark", run_cli, *rules)
    steps = [(record["steps"][0]["chain"], record["verdict"]) for record in found if record["src"] == "10.98.0.2"]
    assert [verdict for chain, verdict in steps if chain == "INPUT"] == ["ACCEPT", "ACCEPT", "REJECT"]


def test_a_tree_prefix_without_an_ip_header_is_a_step_with_its_addresses_unknown() -> None:
    lines = (TSHARK / "verbose.tshark").read_text().splitlines()
    second_frame = next(at for at, line in enumerate(lines) if line.startswith("Frame 2:"))
    without_ip = [line for line in lines[:second_frame] if not line.startswith("Internet Protocol")]
    found = outcomes([*without_ip, *lines[second_frame:]])
    first, second = [outcome for outcome in found if isinstance(outcome, TraceEvent)][:2]
    assert (first.origin.line, str(first.header.src)) == (prefixes(TSHARK / "verbose.tshark")[0][0], "?")
    unknown = ["in_iface", "out_iface", "src", "dst", *NOT_SHOWN["ipv4"][2:]]
    assert first.header.partial == Partial(elided=tuple(unknown), guessed=("family",))
    assert str(second.header.src) == "10.98.0.2"


def test_a_prefix_left_waiting_at_the_end_is_released() -> None:
    lines = (TSHARK / "verbose.tshark").read_text().splitlines()
    prefix = next(at for at, line in enumerate(lines) if "Prefix: TRACE:" in line)
    (*_, event) = outcomes(lines[: prefix + 1])
    assert isinstance(event, TraceEvent)
    assert (event.table, event.chain, event.kind, event.rulenum) == ("raw", "PREROUTING", "policy", 2)


def test_a_tree_groups_its_records_into_the_packets_the_kernel_traced(run_cli: RunCli) -> None:
    """The `-V` tree shows the header fields the kernel logger prints: its steps group as the kernel's packets."""
    found = records(TSHARK / "verbose.tshark", run_cli)
    assert len(found) == json.loads((TSHARK / "meta.json").read_text())["traced_packets"]
    assert sum(len(record["steps"]) for record in found) == len(prefixes(TSHARK / "verbose.tshark"))
    # every step of a packet shows its TTL, and the packets differ by IP id or echo sequence number
    assert {step["ttl"] for record in found for step in record["steps"]} == {64}
    echoes = [(record["family"], record["icmp_type"], record["icmp_id"]) for record in found if record["icmp_id"]]
    assert sorted(echoes) == [("ipv4", 0, 14033)] * 2 + [("ipv4", 8, 14033)] * 2 + [("ipv6", 128, 0x370A)] + [
        ("ipv6", 129, 0x370A)
    ]
    flags = [(record["sport"], record["dport"], record["tcp_flags"]) for record in found if record["proto"] == "TCP"]
    assert flags == [(38588, 9, ["SYN"]), (9, 38588, ["ACK", "RST"])]
    assert all(record["first_seen"] is not None for record in found)
    # of what the kernel logger prints, the tree lacks the interfaces' names only
    assert all(record["partial"]["elided"] == ["in_iface", "out_iface"] for record in found)


def test_a_frame_reads_its_fields_for_a_bounded_number_of_lines() -> None:
    """Past `TREE_LINES` lines of one frame, no field is looked for: its step keeps what came before."""
    lines = (TSHARK / "verbose.tshark").read_text().splitlines()
    second_frame = next(at for at, line in enumerate(lines) if line.startswith("Frame 2:"))
    ip_header = next(at for at, line in enumerate(lines) if line.startswith("Internet Protocol"))
    filler = lines[ip_header + 1 : ip_header + 2] * TREE_LINES  # `    0100 .... = Version: 4`, read by no one
    assert "Version: 4" in filler[0]
    (first,) = [
        o
        for o in outcomes([*lines[: ip_header + 1], *filler, *lines[ip_header + 1 : second_frame]])
        if isinstance(o, TraceEvent)
    ]
    assert str(first.header.src) == "10.98.0.2"
    assert first.header.ttl is None  # its line came after the bound
    (whole,) = [o for o in outcomes(lines[:second_frame]) if isinstance(o, TraceEvent)]
    assert whole.header.ttl == 64


@pytest.mark.parametrize(
    ("field", "damaged"),
    [
        ("Epoch Time:", "    Epoch Time: 99999999999999999999.0 seconds"),  # past any clock
        ("Epoch Time:", "    Epoch Time: 300000000000.0 seconds"),  # past year 9999
        ("Protocol:", "    Protocol: A" + " " * 30_000 + "x"),  # a name whose number never comes
    ],
)
def test_a_tree_field_no_clock_or_number_holds_is_left_unread(field: str, damaged: str) -> None:
    """A frame's field that cannot be a value (damaged, or hostile) leaves it unknown: no traceback, no long wait."""
    lines = (TSHARK / "verbose.tshark").read_text().splitlines()
    second_frame = next(at for at, line in enumerate(lines) if line.startswith("Frame 2:"))
    frame = lines[:second_frame]
    at = next(index for index, line in enumerate(frame) if line.lstrip().startswith(field))
    frame[at] = damaged
    (step,) = [o for o in outcomes(frame) if isinstance(o, TraceEvent)]
    assert step.header.ttl == 64  # the frame's other fields are read
