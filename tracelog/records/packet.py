"""The `--format jsonl` contract: one plain dict per packet.

Other tools read these records, so fields are only ever added, never renamed
or removed.  The analysis frames and every output start from them.  A record
is made wherever its packet is found (`named_record`); its packet and flow
numbers, which depend on every packet before it, come in packet order
(`tracelog.records.numbering`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import TypedDict

from tracelog.chains import docker, netavark
from tracelog.chains.comments import rule_comment
from tracelog.chains.kubernetes import crosses_kube_proxy, decode_record
from tracelog.chains.reasons import verdict_reason
from tracelog.correlate import Packet, Step
from tracelog.events import Address, Header, Partial, Stamp, TraceEvent
from tracelog.names import InterfaceNames, Names, interface_names
from tracelog.netfilter import NAT_TARGETS, packet_verdict, passes_packet_on
from tracelog.parse import rule_protocol
from tracelog.ruleset import FINAL_TARGETS
from tracelog.wording import endpoint

TERMINAL_VERDICTS = frozenset({"DROP", "REJECT"})
UNKNOWN_PROTOCOL = "?"
"""`proto` when neither the trace nor a matched rule says which protocol a packet has."""
_PORT_FIELDS = frozenset({"sport", "dport"})
NO_NAMES = Names()

PartialRecord = dict[str, list[str]]
"""What of a text was elided, redacted, repaired, unreadable or guessed: field names by kind."""

HeaderFields = TypedDict(
    "HeaderFields",
    {
        "src": str,
        "dst": str,
        "sport": int | None,
        "dport": int | None,
        "icmp_id": int | None,
        "in": str | None,
        "out": str | None,
        "physin": str | None,
        "physout": str | None,
        "ttl": int | None,
    },
)
"""What a step record shows of its packet's header."""


class StepNotes(InterfaceNames):
    """What a step record says last: its interfaces' names, what of its text was damaged, its rule's comment,
    and the container network its chain serves (Docker's per-bridge chains, netavark's per-network ones)."""

    partial: PartialRecord | None
    comment: str | None
    network: str | None


class StepRecord(HeaderFields, StepNotes):
    """One step of a packet, as the JSON contract has it (README, "Output contract")."""

    table: str
    chain: str
    kind: str
    rulenum: int | None
    handle: str | None
    nf_family: str | None
    hook: str | None
    time: str | float | None
    source: str
    line: int
    rule: str | None
    verdict: str | None
    mismatch: str | None


RewriteRecord = TypedDict("RewriteRecord", {"step": int, "field": str, "from": str | int, "to": str | int})
"""A field NAT changed, and the first step (1-based) showing the new value; ports are ints."""


class InnerRecord(TypedDict):
    """The packet an ICMP error quotes, as far as the kernel printed it."""

    src: str
    dst: str
    proto: str | None
    sport: int | None
    dport: int | None
    icmp_type: int | None
    icmp_id: int | None


class ArpRecord(TypedDict):
    """An ARP packet's operation (1 request, 2 reply) and the hardware addresses of its sender and target."""

    op: int
    sender_mac: str | None
    target_mac: str | None


class PacketRecord(TypedDict):
    """One packet, as `--format jsonl` prints it: the contract other tools read (README, "Output contract")."""

    packet: int
    trace_id: str | None
    host: str | None
    family: str
    proto: str
    src: str
    dst: str
    sport: int | None
    dport: int | None
    icmp_type: int | None
    icmp_code: int | None
    icmp_id: int | None
    tcp_flags: list[str]
    inner: InnerRecord | None
    arp: ArpRecord | None
    first_seen: str | float | None
    last_seen: str | float | None
    steps: list[StepRecord]
    rewrites: list[RewriteRecord]
    verdict: str | None
    verdict_at: str | None
    verdict_step: int | None
    endpoint: str | None
    partial: PartialRecord | None
    flow: int
    src_name: str | None
    dst_name: str | None
    endpoint_name: str | None
    verdict_reason: ReasonRecord | None
    service: str | None
    masquerade: str | None


class ReasonRecord(TypedDict):
    """Why the deciding rule decided, as the writer of the rule (Docker, netavark, kube-proxy) means it."""

    label: str
    meaning: str


def stamp_value(stamp: Stamp) -> str | float | None:
    """A time as the log gave it: ISO-8601 when it has a full date, else uptime seconds."""
    if stamp.wallclock is not None and not stamp.assumed_year:
        return stamp.wallclock.isoformat()
    if stamp.uptime is not None:
        return stamp.uptime
    return stamp.wallclock.isoformat() if stamp.wallclock is not None else None


def step_name(event: TraceEvent) -> str:
    """`filter:DOCKER-USER:rule:1`: table, chain, kind and rule number or handle when known."""
    number = event.rulenum if event.handle is None else event.handle
    name = f"{event.table}:{event.chain}:{event.kind}"
    return name if number is None else f"{name}:{number}"


@functools.lru_cache(maxsize=1 << 12)
def address_text(address: Address) -> str:
    """An address as records print it, remembered: `str` of one costs a microsecond, a packet needs several."""
    return str(address)


def header_fields(header: Header) -> HeaderFields:
    """What a step record shows of its header: addresses, ports, interfaces, TTL."""
    return {
        "src": address_text(header.src),
        "dst": address_text(header.dst),
        "sport": header.sport,
        "dport": header.dport,
        "icmp_id": header.icmp_id,
        "in": header.in_iface,
        "out": header.out_iface,
        "physin": header.physin,
        "physout": header.physout,
        "ttl": header.ttl,
    }


def step_records(steps: Iterable[Step], names: Names = NO_NAMES) -> list[StepRecord]:
    """The step records of one packet, with the names known for their interfaces.

    The steps of a packet at one hook usually share one `Header` object (the
    parsers reuse the header of an identical field text), so each header's
    part of the record is made once.
    """
    shown: dict[int, tuple[HeaderFields, InterfaceNames, PartialRecord | None]] = {}
    records: list[StepRecord] = []
    for event, hook in steps:
        # one unpacking instead of a dozen attribute lookups, on a path run for every step
        table, chain, kind, header, rulenum, handle, _, stamp, _, rule, verdict, mismatch, nf_family, origin = event
        parts = shown.get(id(header))
        if parts is None:
            interfaces = (header.in_iface, header.out_iface, header.physin, header.physout)
            named = interface_names(names, interfaces)
            parts = shown[id(header)] = header_fields(header), named, partial_record(header.partial)
        fields, after, partial = parts
        source, line, _ = origin
        records.append(
            {
                "table": table,
                "chain": chain,
                "kind": kind,
                "rulenum": rulenum,
                "handle": handle,
                "nf_family": nf_family,
                "hook": hook,
                "time": stamp.uptime if stamp.wallclock is None else stamp_value(stamp),  # no call for dmesg's stamps
                **fields,
                "source": source,
                "line": line,
                "rule": rule,
                "verdict": verdict,
                "mismatch": mismatch,
                **after,
                "partial": partial,
                "comment": rule_comment(rule),
                "network": chain_network(table, chain, names) if names else None,
            }
        )
    return records


def chain_network(table: str, chain: str, names: Names) -> str | None:
    """The container network a Docker or netavark chain serves (its bridge's or its id's network), from `names`."""
    meaning = docker.describe_chain(table, chain) or netavark.describe_chain(table, chain, names.network_ids)
    if meaning is None or meaning.network is None:
        return None
    return names.networks.get(meaning.network, meaning.network)


def partial_record(partial: Partial | None) -> dict[str, list[str]] | None:
    """What of a step's (or packet's) text was elided, redacted, repaired, unreadable or guessed; None when whole."""
    return None if partial is None else {kind: list(fields) for kind, fields in partial._asdict().items()}


def packet_partial(packet: Packet) -> Partial | None:
    """Every step's damage notes and the grouping's in one, each field once (None when all was read whole)."""
    found = [step.event.header.partial for step in packet.steps if step.event.header.partial is not None]
    if packet.partial is not None:
        found.append(packet.partial)
    return functools.reduce(Partial.merge, found) if found else None


def _field_value(field: str, text: str) -> str | int:
    """A rewritten field's value as the record's own field has it: ports are ints."""
    return int(text) if field in _PORT_FIELDS else text


def nat_destination(dst: str, dport: int | None, rewrites: Iterable[RewriteRecord]) -> tuple[str, int | None] | None:
    """Where NAT sent a packet (address, port), or None when its destination was never rewritten."""
    rewritten = False
    for rewrite in rewrites:
        if rewrite["field"] == "dst":
            dst, rewritten = str(rewrite["to"]), True
        elif rewrite["field"] == "dport":
            dport, rewritten = int(rewrite["to"]), True
    return (dst, dport) if rewritten else None


def matched_protocol(packet: Packet) -> str:
    """The protocol a rule the packet matched pins (`-p icmp`), for a source that does not print it.

    xtables-monitor prints no protocol for ICMP; a matched rule's `-p` tells
    it (see `tracelog.parse.rule_protocol`), else it stays unknown.
    """
    found = (rule_protocol(step.event.rule) for step in packet.steps)
    return next((proto for proto in found if proto is not None), UNKNOWN_PROTOCOL)


def inner_record(inner: Header | None) -> InnerRecord | None:
    """The packet an ICMP error quotes, as far as the kernel printed it."""
    if inner is None:
        return None
    return {
        "src": address_text(inner.src),
        "dst": address_text(inner.dst),
        "proto": inner.proto,
        "sport": inner.sport,
        "dport": inner.dport,
        "icmp_type": inner.icmp_type,
        "icmp_id": inner.icmp_id,
    }


def arp_record(header: Header) -> ArpRecord | None:
    """An ARP packet's operation and the hardware addresses of its sender and target; None for any other packet."""
    if header.arp_op is None:
        return None
    return {"op": header.arp_op, "sender_mac": header.arp_sender_mac, "target_mac": header.arp_target_mac}


def final_verdict(packet: Packet) -> tuple[str | None, str | None, int | None]:
    """The packet's fate and the step that decided it, when the trace says so.

    A DROP or REJECT ends the packet wherever it is.  Otherwise the last
    final verdict of a filtering chain decides (an ACCEPT, or its policy):
    raw, mangle and nat chains and NAT targets only pass the packet on, so
    they decide only when nothing else did and the trace ends there.  A
    trace that simply stops, or
    steps without verdicts (a kernel log without a ruleset snapshot), give
    None: unknown, never a guess.
    """
    events = [step.event for step in packet.steps]
    index = next((at for at, event in enumerate(events) if event.verdict in TERMINAL_VERDICTS), None)
    if index is None:
        deciding = [at for at, event in enumerate(events) if event.verdict in FINAL_TARGETS and _decides(event)]
        index = deciding[-1] if deciding else len(events) - 1
    if events[index].verdict not in FINAL_TARGETS:
        return None, None, None
    event = events[index]
    return packet_verdict(event.verdict, event.rule), step_name(event), index + 1


def reason_record(packet: Packet, verdict_step: int | None) -> ReasonRecord | None:
    """Why the deciding step's rule decided, when a known writer's rule says so (its comment or its shape)."""
    if verdict_step is None:
        return None
    event = packet.steps[verdict_step - 1].event
    reason = verdict_reason(event.table, event.chain, event.rule, event.verdict)
    return None if reason is None else {"label": reason.label, "meaning": reason.meaning}


def deciding_step(record: PacketRecord) -> StepRecord | None:
    """The step whose verdict decided the packet's fate, or None when the trace does not say."""
    number = record["verdict_step"]
    return record["steps"][number - 1] if number else None


def step_names(step: StepRecord) -> tuple[str | None, ...]:
    """The names of a step's four interfaces (`in_name`, `out_name`, `physin_name`, `physout_name`)."""
    return step["in_name"], step["out_name"], step["physin_name"], step["physout_name"]


def _decides(event: TraceEvent) -> bool:
    """Whether a step's final verdict is a decision, not a rewrite or a table passing the packet on."""
    return event.verdict not in NAT_TARGETS and not passes_packet_on(event.table, event.chain)


def named_record(packet: Packet, names: Names = NO_NAMES) -> PacketRecord:
    """A packet's contract record with every name it can have, its `flow` left for `number_packets` to give.

    Needs nothing of the packets before it, so a worker reading part of a big
    file makes it (see `tracelog.parallel`).
    """
    record = packet_record(packet, names)
    record["src_name"], record["dst_name"] = names.address(record["src"]), names.address(record["dst"])
    destination = record["endpoint"] and nat_destination(record["dst"], record["dport"], record["rewrites"])
    record["endpoint_name"] = names.address(destination[0]) if destination else None
    if any(crosses_kube_proxy(step["table"], step["chain"]) for step in record["steps"]):
        decoded = decode_record(record, names.cluster)
        record["service"] = None if decoded.service is None else str(decoded.service)
        record["masquerade"] = decoded.masquerade
    return record


def packet_record(packet: Packet, names: Names = NO_NAMES) -> PacketRecord:
    """The JSON contract record of one packet (see README, "Output contract"), its flow and address names left None."""
    first, last = packet.first, packet.last
    header = packet.header
    verdict, verdict_at, verdict_step = final_verdict(packet)
    rewrites: list[RewriteRecord] = [
        {
            "step": rewrite.step,
            "field": rewrite.field,
            "from": _field_value(rewrite.field, rewrite.old),
            "to": _field_value(rewrite.field, rewrite.new),
        }
        for rewrite in packet.rewrites
    ]
    destination = nat_destination(address_text(header.dst), header.dport, rewrites)
    return {
        "packet": packet.number,
        "trace_id": first.trace_id,
        "host": first.host,
        "family": header.family,
        "proto": header.proto if header.proto != UNKNOWN_PROTOCOL else matched_protocol(packet),
        "src": address_text(header.src),
        "dst": address_text(header.dst),
        "sport": header.sport,
        "dport": header.dport,
        "icmp_type": header.icmp_type,
        "icmp_code": header.icmp_code,
        "icmp_id": header.icmp_id,
        "tcp_flags": list(header.tcp_flags),
        "inner": inner_record(header.inner),
        "arp": arp_record(header),
        "first_seen": stamp_value(first.stamp),
        "last_seen": stamp_value(last.stamp),
        "steps": step_records(packet.steps, names),
        "rewrites": rewrites,
        "verdict": verdict,
        "verdict_at": verdict_at,
        "verdict_step": verdict_step,
        "endpoint": None if destination is None else endpoint(*destination, None),
        "partial": partial_record(packet_partial(packet)),
        "flow": 0,  # numbered in packet order (`tracelog.records.numbering`)
        "src_name": None,
        "dst_name": None,
        "endpoint_name": None,
        "verdict_reason": reason_record(packet, verdict_step),
        "service": None,
        "masquerade": None,
    }
