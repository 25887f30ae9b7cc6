"""Correlation on real captured lines: interleaving, several hosts, bounded memory, order."""

from __future__ import annotations

import re
from itertools import zip_longest
from pathlib import Path
from typing import Any

import pytest

from tests.samples import SAMPLES, trace_samples
from tracelog import correlate
from tracelog.correlate import Correlator, Packet, Rewrite, correlate_packets
from tracelog.events import Partial, SourceLine, TraceEvent
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
        list(correlate_packets(events(Path("t"), tcp)))
    )
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


def _interleaved(paths: list[Path]) -> list[TraceEvent]:
    """The events of several captures, their lines interleaved one by one as on a busy host."""
    texts = [path.read_text().splitlines() for path in paths]
    mixed = [line for lines in zip_longest(*texts) for line in lines if line is not None]
    return events(Path("mixed"), mixed)


def _packets_found(found: list[Packet]) -> list[tuple[int, list[str], list[Rewrite]]]:
    return [
        (packet.number, [step.event.origin.text for step in packet.steps], list(packet.rewrites)) for packet in found
    ]


def _correlated(stream: list[TraceEvent], correlator: Correlator) -> list[Packet]:
    return [packet for event in stream for packet in correlator.feed(event)] + correlator.finish()


@pytest.mark.parametrize("window", [40, 400])
@pytest.mark.parametrize("tables", ["all", "raw"])
def test_the_index_finds_what_a_scan_of_every_open_packet_finds(
    window: int, tables: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one identity for all packets of a host and family, steps are looked up among hundreds of packets.

    Every capture interleaved (NAT, loopback, bridges, trace ids reused and
    changing between hooks): the index, used from the first packet, must
    find what trying them all, newest first, finds.  Keeping only the raw
    table's steps makes packets jump from before one NAT to past another
    (raw OUTPUT to raw PREROUTING through `lo`: past both).
    """
    monkeypatch.setattr(correlate, "identity", lambda event: (event.host, event.header.family))
    stream = [event for event in _interleaved(trace_samples()) if tables == "all" or event.table == "raw"]
    scanned = _correlated(stream, Correlator(window, index_from=1 << 30))
    indexed = _correlated(stream, Correlator(window, index_from=1))
    assert len(scanned) > 100
    assert _packets_found(indexed) == _packets_found(scanned)


def test_a_fixed_ip_id_flood_costs_no_more_per_step_than_ordinary_traffic() -> None:
    """A scanner's fixed IP id (zmap's 54321): thousands of one-step packets open at once share an identity.

    Counted in candidates tried, not in seconds: a scan would try every
    open packet for every step (millions here).
    """
    (line, *_) = (SAMPLES / "lab-legacy/tcp.dmesg").read_text().splitlines()
    flood = [
        line.replace("ID=56577", "ID=54321").replace("SPT=33398", f"SPT={1024 + number}") for number in range(20_000)
    ]
    stream = events(Path("flood.dmesg"), flood)
    tried = 0
    fit = correlate._fit

    def counted(packet: Any, event: TraceEvent) -> Any:
        nonlocal tried
        tried += 1
        return fit(packet, event)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(correlate, "_fit", counted)
        found = _correlated(stream, Correlator())
    assert len(found) == len(flood)
    assert tried < len(flood)


def test_the_steps_held_are_bounded_in_lines_and_in_characters_of_long_lines() -> None:
    """A packet that never stops (a rule step repeated, each a step of the last), and ping packets waiting for it.

    Its lines made 2 KiB long (an interface name) count their characters.
    """
    (line, *_) = (SAMPLES / "lab-legacy/tcp.dmesg").read_text().splitlines()
    rule = line.replace("raw:PREROUTING:policy:3", "raw:PREROUTING:rule:1")
    long_rule = rule.replace("IN=docker0", "IN=" + "d" * 2048, 1)
    ping = (SAMPLES / "docker-legacy/ping.dmesg").read_text().splitlines()
    for endless, max_lines, max_chars in ((rule, 500, 1 << 30), (long_rule, 1 << 20, 100_000)):
        lines = [endless, *[endless if number % 2 else ping[number % len(ping)] for number in range(6_000)]]
        correlator = Correlator(window=100, max_lines=max_lines, max_chars=max_chars)
        peak_lines = peak_chars = 0
        found = []
        for event in events(Path("endless.dmesg"), lines):
            found += correlator.feed(event)
            held_lines, held_chars = correlator.held
            peak_lines, peak_chars = max(peak_lines, held_lines), max(peak_chars, held_chars)
        found += correlator.finish()
        assert peak_lines <= max_lines
        assert peak_chars <= max_chars
        assert min(max_lines, max_chars // len(long_rule)) // 2 < max(len(packet.steps) for packet in found)
        assert sum(packet.first.origin.text == endless for packet in found) > 2  # cut


# ---- steps read from damaged text: an unknown field is no evidence either way


def read(lines: list[str]) -> list[Packet]:
    """The packets of some lines, read by a parser of their own (monitors' trace ids are remembered per run)."""
    parser = LineParser(year=2026)
    lines_read = (parser.parse(SourceLine("p", number, text)) for number, text in enumerate(lines, 1))
    found = [outcome for outcomes in lines_read for outcome in outcomes if isinstance(outcome, TraceEvent)]
    return list(correlate_packets(found))


def _packets_of(lines: list[str]) -> list[list[int]]:
    """The packets of some lines, each as the 1-based numbers of its lines."""
    return [[step.event.origin.line for step in packet.steps] for packet in read(lines)]


def _cut_after_interfaces(line: str) -> str:
    """A kernel-log line elided after its interfaces, as pastes do: `IN=lo OUT= ...`."""
    return re.sub(r"(OUT=\S*) .*", r"\1 ...", line)


def test_steps_whose_identity_is_all_elided_are_not_joined_by_hook_order_and_interfaces() -> None:
    """Two loopback packets cut after their interfaces: OUTPUT then PREROUTING through `lo`, fits but proves nothing."""
    lines = (SAMPLES / "lab-legacy/loopback.dmesg").read_text().splitlines()
    output, prerouting = lines[59], lines[66]  # raw:OUTPUT of one packet, raw:PREROUTING of the next
    assert "raw:OUTPUT" in output
    assert "raw:PREROUTING" in prerouting
    assert "ID=8358" in output
    assert "ID=7472" in prerouting
    assert _packets_of([output, prerouting]) == [[1], [2]]
    assert _packets_of([_cut_after_interfaces(output), _cut_after_interfaces(prerouting)]) == [[1], [2]]


def test_a_step_with_an_elided_address_joins_where_its_ip_id_vouches_for_it() -> None:
    """A kernel-log ping whose second line hides its source: the IP id and sequence still make it one packet."""
    lines = (SAMPLES / "docker-legacy/ping.dmesg").read_text().splitlines()[:4]
    lines[1] = lines[1].replace("SRC=172.18.0.2", "SRC=x.x.x.x")
    (packet,) = read(lines)
    assert len(packet.steps) == 4
    assert packet.partial is None  # the IP id vouched: no guess


IPV6_MONITOR = SAMPLES / "lab-nft/ipv6-ping.xtables-monitor"


def _redacted(line: str) -> str:
    return re.sub(r"(SRC|DST)=[0-9a-f:]+", r"\1=xxx", line)


def test_redacted_addresses_alike_do_not_join_packets_of_a_weak_identity() -> None:
    """Two echo requests of one flow (xtables-monitor IPv6: flow label and length, no IP id) redacted alike.

    Only their trace ids tell them apart: the second packet's FORWARD steps
    join its own PREROUTING steps (by trace id, a guess), never the first
    packet, whose FORWARD header reads the same.
    """
    lines = IPV6_MONITOR.read_text().splitlines()[34:61]
    assert lines[0].startswith("PACKET: 10 4cf5c8dc")
    assert lines[21].startswith("PACKET: 10 f2fddf5a IN=docker0 OUT")
    for at in (3, 21):  # the FORWARD packet lines of both
        lines[at] = _redacted(lines[at])
    found = read(lines)
    by_trace = [{step.event.trace_id for step in packet.steps} for packet in found]
    assert by_trace == [{"4cf5c8dc"}, {"588d775c"}, {"f2fddf5a"}]
    assert [packet.partial for packet in found] == [correlate.GUESSED_GROUPING, None, correlate.GUESSED_GROUPING]


def test_a_monitor_excerpt_started_mid_packet_hands_over_to_the_next_packet_line() -> None:
    """Steps seen without their packet line join the steps of the next hook's packet line of the same trace id."""
    lines = (SAMPLES / "lab-nft/dnat.nft-monitor").read_text().splitlines()
    start = next(at for at, line in enumerate(lines) if " packet: " in line) + 1  # the first packet's first step
    packets = read(lines[start:])
    whole = read(lines)
    first = packets[0]
    assert len(first.steps) == len(whole[0].steps)
    assert first.partial == correlate.GUESSED_GROUPING
    assert first.steps[0].event.header.partial == Partial(guessed=("header",))
    assert first.header is first.steps[2].event.header  # the header shown: the first packet line seen
    assert [len(packet.steps) for packet in packets[1:]] == [len(packet.steps) for packet in whole[1:]]


def test_a_reused_trace_id_under_a_new_packet_line_at_the_same_table_is_a_new_packet() -> None:
    """The kernel reuses trace ids: a packet line elided to nothing, then the same id at the same chain again."""
    lines = (SAMPLES / "lab-nft/dnat.xtables-monitor").read_text().splitlines()
    ids = [line.split()[2] for line in lines if line.startswith("PACKET: ")]
    reused = next(trace_id for trace_id in ids if ids.count(trace_id) > 1 and trace_id.startswith("cc"))
    group = [line for line in lines if f" {reused} " in line]
    packet_lines = [at for at, line in enumerate(group) if line.startswith("PACKET: ")]
    first, second = packet_lines[0], packet_lines[1]
    group[first] = group[first].split(" MACSRC=")[0] + " ..."  # every identity field elided
    group[first + 1 : second] = [line.split(":0x")[0] + ":0x1:CONTINUE  ..." for line in group[first + 1 : second]]
    found = read(group)
    assert [len(packet.steps) for packet in found] == [second - first - 1, len(group) - second - 1]


@pytest.mark.parametrize("kind", ["elision", "redaction"])
def test_the_index_finds_what_a_scan_finds_on_damaged_pastes(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """As above, on every capture damaged: packets whose last header hid a field are tried one by one.

    A step that hid a field is looked for among at most `EXAMINED_MAX`
    packets, which every capture interleaved into one identity outgrows: the
    bound is lifted here, as it only cuts a search short.
    """
    from tests.damage import damage

    monkeypatch.setattr(correlate, "identity", lambda event: (event.host, event.header.family))
    monkeypatch.setattr(correlate, "EXAMINED_MAX", 1 << 20)
    pastes = [damage(path.read_text().splitlines(), kind, 0).lines for path in trace_samples()]
    mixed = [line for lines in zip_longest(*pastes) for line in lines if line is not None]
    parser = LineParser(year=2026)
    stream = [
        o for n, t in enumerate(mixed, 1) for o in parser.parse(SourceLine("m", n, t)) if isinstance(o, TraceEvent)
    ]
    scanned = _correlated(stream, Correlator(400, index_from=1 << 30))
    indexed = _correlated(stream, Correlator(400, index_from=1))
    assert sum(event.header.partial is not None for event in stream) > 500
    assert _packets_found(indexed) == _packets_found(scanned)


def test_a_table_that_accepted_a_packet_at_a_hook_sees_no_more_of_it_there() -> None:
    """Two neighbour solicitations alike in every field, their hooks interleaved (nft monitor, real lines).

    The FORWARD steps of the second may not follow those of the first after
    `filter FORWARD` accepted it: each packet crosses FORWARD once.
    """
    lines = (SAMPLES / "lab-nft/ipv6-ping.nft-monitor").read_text().splitlines()[:10]
    assert "nd-neighbor-solicit" in lines[0]
    assert lines[9].endswith("(verdict accept)")
    again = [line.replace("4e5614d4", "4e5614d5").replace("c4325a2e", "c4325a2f") for line in lines]
    found = read([*lines[:3], *again[:3], *lines[3:], *again[3:]])
    assert [len(packet.steps) for packet in found] == [8, 8]
    for packet in found:
        assert [step.event.verdict for step in packet.steps].count("ACCEPT") == 2  # raw's policy, filter's rule


@pytest.mark.parametrize("rendering", ["nft-monitor", "xtables-monitor"])
def test_a_frame_a_bridge_floods_to_its_own_device_stays_one_packet(rendering: str) -> None:
    """An ARP request broadcast through a bridge: forwarded to the other port and handed up to arp INPUT on the bridge.

    Each copy has a trace id of its own, and the bridge device for interface.
    """
    request, reply = read((SAMPLES / f"lab-arp/local.{rendering}").read_text().splitlines())
    hooks = [(step.event.nf_family, step.hook) for step in request.steps]
    assert hooks[-4:] == [("bridge", "FORWARD"), ("arp", "INPUT"), ("arp", "INPUT"), ("arp", "INPUT")]
    assert len({step.event.trace_id for step in request.steps}) == 3
    assert {step.event.header.in_iface for step in request.steps} == {"td-bra", "td-br0"}
    assert [step.event.header.arp_op for step in (request.steps[0], reply.steps[0])] == [1, 2]


def test_arp_requests_and_replies_are_packets_of_their_own() -> None:
    found = read((SAMPLES / "lab-arp/bridge.nft-monitor").read_text().splitlines())
    assert [packet.first.header.arp_op for packet in found] == [1, 2, 1, 2]


def test_steps_at_one_hook_that_hide_only_their_interfaces_join_on_their_identity() -> None:
    """A SYN-ACK's FORWARD steps (IP id 0) with the interfaces redacted: at one hook interfaces are never compared."""
    lines = (SAMPLES / "docker-legacy/http.dmesg").read_text().splitlines()[11:14]
    assert all(" ID=0 DF " in line and (":FORWARD:" in line or ":DOCKER-USER:" in line) for line in lines)
    hidden = [line.replace("IN=docker0 OUT=docker0", "IN=xxx OUT=xxx") for line in lines]
    assert _packets_of(hidden) == [[1, 2, 3]]
    (packet,) = read(hidden)
    assert packet.partial is None  # no guess: nothing the join rests on was hidden
    # across hooks the interfaces are compared: a step that hides them there still needs a field that vouches
    prerouting = (SAMPLES / "docker-legacy/http.dmesg").read_text().splitlines()[10]
    assert "raw:PREROUTING" in prerouting
    assert _packets_of([prerouting.replace("IN=docker0", "IN=xxx"), *hidden]) == [[1], [2, 3, 4]]
