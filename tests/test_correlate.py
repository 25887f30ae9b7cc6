"""Correlation on real captured lines: interleaving, several hosts, bounded memory, order."""

from __future__ import annotations

from itertools import zip_longest
from pathlib import Path

from tests.samples import SAMPLES
from tracelog.correlate import Correlator, Packet, correlate_packets
from tracelog.events import SourceLine, TraceEvent
from tracelog.parse import LineParser

PARSER = LineParser(year=2026)


def events(path: Path, lines: list[str] | None = None) -> list[TraceEvent]:
    texts = lines if lines is not None else path.read_text().splitlines()
    return [
        outcome
        for number, text in enumerate(texts, start=1)
        for outcome in PARSER.parse(SourceLine(path.name, number, text))
        if isinstance(outcome, TraceEvent)
    ]


def step_texts(packets: list[Packet]) -> list[list[str]]:
    return [[step.event.origin.text for step in packet.steps] for packet in packets]


def test_interleaved_captures_give_the_same_packets() -> None:
    """Lines of concurrent packets interleave in a busy log; each packet must stay whole."""
    ping = (SAMPLES / "docker-legacy/ping.dmesg").read_text().splitlines()
    tcp = (SAMPLES / "lab-legacy/tcp.dmesg").read_text().splitlines()
    mixed = [line for pair in zip_longest(ping, tcp) for line in pair if line is not None]
    alone = step_texts(list(correlate_packets(events(Path("p"), ping)))) + step_texts(
        list(correlate_packets(events(Path("t"), tcp))))
    together = step_texts(list(correlate_packets(events(Path("m"), mixed))))
    assert sorted(together) == sorted(alone)


def test_the_same_packets_on_two_hosts_stay_apart() -> None:
    """A log collected from two hosts: identical traffic, told apart by the syslog host field."""
    lines = (SAMPLES / "lab-legacy/rsyslog-traditional.log").read_text().splitlines()
    other = [line.replace(" vm kernel: ", " vm2 kernel: ", 1) for line in lines]
    mixed = [line for pair in zip(lines, other, strict=True) for line in pair]
    packets = list(correlate_packets(events(Path("two-hosts.log"), mixed)))
    assert len(packets) == 2 * 44
    for packet in packets:
        assert len({step.event.host for step in packet.steps}) == 1


def test_packets_leave_memory_once_the_window_passes() -> None:
    correlator = Correlator(window=20)
    emitted = []
    peak = 0
    for event in events(SAMPLES / "lab-legacy/rsyslog-fileformat.log"):
        emitted += correlator.feed(event)
        peak = max(peak, correlator.open_packets)
    assert len(emitted) > 30  # most packets were emitted before the end of input
    assert peak <= 21
    assert len(emitted + correlator.finish()) == 44


def test_packets_are_emitted_in_order_of_first_appearance() -> None:
    ping = events(SAMPLES / "docker-legacy/ping.dmesg")
    correlator = Correlator(window=3)
    numbers = [packet.number for event in ping for packet in correlator.feed(event)]
    numbers += [packet.number for packet in correlator.finish()]
    assert numbers == [1, 2, 3, 4]


def test_a_retransmitted_syn_is_a_new_packet() -> None:
    """Three SYNs to a port DOCKER-USER drops: same ports and sequence, three packets."""
    packets = list(correlate_packets(events(SAMPLES / "lab-legacy/drop.dmesg")))
    assert len(packets) == 3
    assert len({packet.first.header.tcp_seq for packet in packets}) == 1
    assert all(packet.last.chain == "DOCKER-USER" and packet.last.rulenum == 1 for packet in packets)


def test_user_chain_steps_inherit_the_hook_of_their_caller() -> None:
    (first, *_) = correlate_packets(events(SAMPLES / "docker-legacy/ping.dmesg"))
    hooks = {step.event.chain: step.hook for step in first.steps}
    assert hooks["DOCKER-USER"] == hooks["DOCKER"] == "FORWARD"
