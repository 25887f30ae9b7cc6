"""A packet's timeline in words: its title, a row per step and its ending, as parts each output styles.

The terminal (`tracelog.output.text`) lays the rows out as columns, the report
(`tracelog.output.report`) as a page and an SVG: one wording, so a person moving
between them reads the same thing.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from tracelog.chains.kubernetes import MARK_CHAINS
from tracelog.netfilter import NAT_TARGETS
from tracelog.records.packet import UNKNOWN_PROTOCOL, PacketRecord, RewriteRecord, StepRecord, deciding_step
from tracelog.wording import decided_by, destination, endpoint, position, reason_text, rule_args

_ICMP_TYPES = {
    "ICMP": {
        0: "echo-reply",
        3: "unreachable",
        4: "source-quench",
        5: "redirect",
        8: "echo-request",
        11: "time-exceeded",
        12: "parameter-problem",
    },
    "ICMPv6": {
        1: "unreachable",
        2: "packet-too-big",
        3: "time-exceeded",
        4: "parameter-problem",
        128: "echo-request",
        129: "echo-reply",
        133: "router-solicitation",
        134: "router-advert",
        135: "neighbour-solicitation",
        136: "neighbour-advert",
    },
}


_UNREACHABLE: dict[str, dict[int | None, str]] = {
    "ICMP": {
        0: "net",
        1: "host",
        2: "protocol",
        3: "port",
        4: "fragmentation-needed",
        9: "net-prohibited",
        10: "host-prohibited",
        13: "admin-prohibited",
    },
    "ICMPv6": {0: "no-route", 1: "admin-prohibited", 3: "address", 4: "port"},
}
_TCP_FLAG_ORDER = ("SYN", "ACK", "FIN", "RST", "PSH", "URG", "ECE", "CWR")
_ARP_OPERATIONS = {1: "request", 2: "reply", 3: "rarp-request", 4: "rarp-reply", 8: "inarp-request", 9: "inarp-reply"}


DONE_BY = {"ACCEPT": "ACCEPTED", "DROP": "DROPPED", "REJECT": "REJECTED", "QUEUE": "QUEUED", "NFQUEUE": "QUEUED"}


class StepRow(NamedTuple):
    """One step as the timeline shows it (a named tuple: one is made for every step of every packet shown).

    `changes` are the runs of the changes column, each with its kind
    (`interface`, `nat`, `ttl`); `decision_kind` is `mismatch` (the ruleset
    snapshot does not fit), `note` (a policy or a chain's end, in italics) or
    empty for rule text.
    """

    number: int
    elapsed: str
    hook: str | None
    hook_shown: str
    place: str
    position: str
    changes: tuple[tuple[str, str], ...]
    decision: str
    decision_kind: str


def _interface(step: StepRecord, direction: str) -> str | None:
    """`docker0 [bridge] (veth1e06770 [nginx-1])`: the interface, its bridge port, their names."""
    fields: Mapping[str, Any] = step  # `in` or `out`: read by name
    name = _named(fields[direction], fields[f"{direction}_name"])
    port = _named(fields[f"phys{direction}"], fields[f"phys{direction}_name"])
    if port and name:
        return f"{name} ({port})"
    return port or name


def _named(interface: str | None, name: str | None) -> str | None:
    return f"{interface} [{name}]" if interface and name else interface


def _side(step: StepRecord, direction: str) -> str | None:
    """The bridge port if there is one, else the interface, with its name."""
    fields: Mapping[str, Any] = step  # `in` or `out`: read by name
    port = fields[f"phys{direction}"]
    if port:
        return _named(port, fields[f"phys{direction}_name"])
    return _named(fields[direction], fields[f"{direction}_name"])


def describe(record: PacketRecord) -> str:
    """`ICMP echo-request 172.18.0.2 → 172.18.0.3  in veth1 → out veth2`."""
    proto, icmp_type = record["proto"], record["icmp_type"]
    what = ",".join(flag for flag in _TCP_FLAG_ORDER if flag in record["tcp_flags"])
    if proto == UNKNOWN_PROTOCOL:
        proto = "(protocol not shown)"
    elif (arp := record["arp"]) is not None:
        what = _ARP_OPERATIONS.get(arp["op"], f"operation {arp['op']}")
    elif proto in _ICMP_TYPES and icmp_type is not None:
        what = _ICMP_TYPES[proto].get(icmp_type, f"type {icmp_type}")
        if what == "unreachable":
            code = record["icmp_code"]
            what = f"{_UNREACHABLE[proto].get(code, f'code-{code}')}-unreachable"
    title = f"{proto} {what}".strip()
    route = f"{endpoint(record['src'], record['sport'], record['src_name'])} → {destination(record)}"
    steps = record["steps"]
    ins = next((_side(s, "in") for s in steps if s["physin"] or s["in"]), None)
    outs = next((_side(s, "out") for s in reversed(steps) if s["physout"] or s["out"]), None)
    hops = "  ".join(part for part in (f"in {ins}" if ins else "", f"out {outs}" if outs else "") if part)
    return f"{title} {route}" + (f"  {hops.replace('  ', ' → ')}" if hops else "")


@functools.lru_cache(maxsize=1 << 10)
def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def elapsed(step: StepRecord, start: float | str | None) -> str:
    """`+0.032ms` since the packet's first step, from kernel uptime or a wall clock finer than a second."""
    time, base = step["time"], start
    if isinstance(time, str) and isinstance(base, str) and "." in time and "." in base:
        time, base = _seconds(time), _seconds(base)
    if isinstance(time, float) and isinstance(base, float):
        return f"+{(time - base) * 1000:.3f}ms"
    return ""


def _changes(
    step: StepRecord, previous: StepRecord | None, rewrites: Iterable[RewriteRecord]
) -> tuple[tuple[str, str], ...]:
    runs = []
    if step["in"] and (previous is None or (step["in"], step["physin"]) != (previous["in"], previous["physin"])):
        runs.append((f"in {_interface(step, 'in')}", "interface"))
    if step["out"] and (previous is None or (step["out"], step["physout"]) != (previous["out"], previous["physout"])):
        runs.append((f"out {_interface(step, 'out')}", "interface"))
    for rewrite in rewrites:
        runs.append((f"NAT {rewrite['field']} {rewrite['from']} → {rewrite['to']}", "nat"))
    if previous is not None and step["ttl"] is not None and previous["ttl"] not in (None, step["ttl"]):
        runs.append((f"ttl {previous['ttl']} → {step['ttl']}", "ttl"))
    return tuple(runs)


def _decision(step: StepRecord, masquerade: str | None) -> tuple[str, str]:
    if step["mismatch"]:
        return f"? {step['mismatch']}", "mismatch"
    if step["rule"] and masquerade and step["kind"] == "rule" and step["chain"] in MARK_CHAINS:
        return f"{rule_args(step)} — {masquerade}", ""  # where kube-proxy sets its 0x4000 mark
    if step["rule"]:
        return rule_args(step), ""
    if step["verdict"] and step["kind"] == "policy":
        return f"policy {step['verdict']}", "note"
    if step["verdict"] and step["kind"] == "return":
        return "end of chain, back to the caller", "note"
    return "", ""


def timeline_rows(record: PacketRecord) -> Iterator[StepRow]:
    """Each step's row: time, hook (when it changes), table:chain, position, changes, decision."""
    rewrites: dict[int, list[RewriteRecord]] = {}
    for rewrite in record["rewrites"]:
        rewrites.setdefault(rewrite["step"], []).append(rewrite)
    previous: StepRecord | None = None
    start = record["steps"][0]["time"] if record["steps"] else None
    for number, step in enumerate(record["steps"], start=1):
        hook = step["hook"] if previous is None or step["hook"] != previous["hook"] else ""
        decision, kind = _decision(step, record["masquerade"])
        yield StepRow(
            number,
            elapsed(step, start),
            step["hook"],
            hook or "",
            f"{step['table']}:{step['chain']}" + (f" [{step['network']}]" if step["network"] else ""),
            position(step),
            _changes(step, previous, rewrites.get(number, ())),
            decision,
            kind,
        )
        previous = step


def partial_note(record: PacketRecord) -> str:
    """`  partial: redacted src; elided MAC, TTL`: what of a packet's text was not read whole, or nothing."""
    partial = record["partial"]
    if not partial:
        return ""
    kinds = [f"{kind} {', '.join(fields)}" for kind, fields in partial.items() if fields]
    return f"  partial: {'; '.join(kinds)}"


def ending(record: PacketRecord) -> tuple[str, str]:
    """The timeline's last line in two parts: `DROPPED` and ` by filter DOCKER-USER rule 1: …`.

    The first part is empty when the trace names no verdict (`last seen at …`).
    """
    verdict, step, reason = record["verdict"], deciding_step(record), reason_text(record)
    if verdict and step:
        why = f" — {reason}" if reason else ""
        return DONE_BY.get(verdict, str(verdict)), f" by {decided_by(step)}{why}"
    last = record["steps"][-1]
    where = f"{last['hook'] or '?'} {last['table']}:{last['chain']} {position(last)}"
    unknown = "verdict unknown: the trace does not say"
    if all(step["verdict"] is None for step in record["steps"]):
        unknown = "verdict unknown: give --rules to name rules and verdicts"
    return "", f"last seen at {where} ({unknown})"


def ending_text(record: PacketRecord) -> str:
    """`DROPPED by filter DOCKER-USER rule 1: -s … -j DROP`, or `last seen at …`."""
    label, rest = ending(record)
    return label + rest


def nat_rewrites(record: PacketRecord) -> list[str]:
    """Each NAT rewrite as one phrase with its whole ends and where it happened.

    `dst 192.0.2.1:8080 → 172.18.0.3:80 by nat:DOCKER rule 2 (step 3)`: the
    timeline marks the step that first shows the new value; the rule whose
    target rewrote it is the step before, when the trace shows one.
    """
    steps = record["steps"]
    phrases = []
    for number in sorted({rewrite["step"] for rewrite in record["rewrites"]}):
        if not 2 <= number <= len(steps):
            continue
        before, after = steps[number - 2], steps[number - 1]
        fields = {rewrite["field"] for rewrite in record["rewrites"] if rewrite["step"] == number}
        was: Mapping[str, Any] = before  # the source's or destination's fields, read by name
        now: Mapping[str, Any] = after
        ends = [
            f"{side} {endpoint(was[side], was[port], None)} → {endpoint(now[side], now[port], None)}"
            for side, port in (("src", "sport"), ("dst", "dport"))
            if fields & {side, port}
        ]
        if before["verdict"] in NAT_TARGETS:
            where = f"by {before['table']}:{before['chain']} {position(before)} (step {number - 1})"
        else:
            where = f"between steps {number - 1} and {number}"
        phrases.append(f"{', '.join(ends)} {where}")
    return phrases
