"""How packets, ends and steps are put into words, one wording for timelines, summaries and reports."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

Fields = Mapping[str, Any]
"""A packet or step record, or a row of one: read by field name."""


# C0 and C1 controls and DEL, which terminals act on (escape sequences, bell,
# backspace, carriage return), and the bidirectional overrides that reorder
# what a reader sees: shown as `\x1b`, `\u202e`.
TERMINAL_CONTROLS = (*range(0x20), *range(0x7F, 0xA0), 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
_CONTROLS = {code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" for code in TERMINAL_CONTROLS}


def escape_controls(text: str) -> str:
    """Log text made safe for a terminal: every control character written as its escape, visibly.

    Log text is whoever wrote the log's: a host field or a rule comment must
    never clear a screen or set a window title.
    """
    return text if text.isprintable() else text.translate(_CONTROLS)


def escape_cell(value: object) -> object:
    """A table cell for CSV: text with its controls escaped (`escape_controls`), anything else as it is."""
    return escape_controls(value) if isinstance(value, str) else value


def plural(number: int, noun: str) -> str:
    """`1 packet`, `3 packets`."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def endpoint(address: str, port: object, name: object) -> str:
    """`172.18.0.2:56586 (nginx-1)`, `[fd00:18::2]:80`: how timelines and summaries name an end.

    From a record a port is an int or None; from a frame a numpy number, or
    NaN when there is none.
    """
    text = address
    if isinstance(port, numbers.Real) and not math.isnan(float(port)):
        number = int(float(port))
        text = f"[{address}]:{number}" if ":" in address else f"{address}:{number}"
    return f"{text} ({name})" if isinstance(name, str) else text


def destination(packet: Fields) -> str:
    """`192.0.2.1:8080 → 172.18.0.3:80 (nginx-2)`: where a packet was sent, and where NAT sent it on.

    A Kubernetes service is named before its address: `default/web:http
    (10.96.100.10:80) → 10.244.1.11:8080 (default/web-7d4b9c-fghij)`.

    From a record or a frame's row alike (a row's missing values are NaN).
    """
    service = packet.get("service")
    if isinstance(service, str):  # a Kubernetes service port, named as kube-proxy spells it
        addressed = f"{service} ({endpoint(packet['dst'], packet['dport'], None)})"
    else:
        addressed = endpoint(packet["dst"], packet["dport"], packet.get("dst_name"))
    rewritten = packet.get("endpoint")
    if not isinstance(rewritten, str):
        return addressed
    name = packet.get("endpoint_name")
    return f"{addressed} → {rewritten} ({name})" if isinstance(name, str) else f"{addressed} → {rewritten}"


def position(step: Fields) -> str:
    """Where in its chain a step is: `rule 3`, `return 2`, `policy 3`, `handle 24`, or the bare kind.

    Legacy steps number rules from 1; nf_tables steps carry the rule's handle,
    which the trace prints in hex and `nft -a list ruleset` in decimal.
    """
    if step["rulenum"] is not None:
        return f"{step['kind']} {step['rulenum']}"
    if step["handle"] is not None:
        return f"handle {int(step['handle'], 16)}"
    return str(step["kind"])


def rule_args(step: Fields) -> str:
    """The rule text without `-A CHAIN` (or xtables-monitor's `-4 -t TABLE -A CHAIN`), which the step's place names."""
    rule: str = step["rule"] or ""
    append = f"-A {step['chain']} "
    for prefix in (append, f"-4 -t {step['table']} {append}", f"-6 -t {step['table']} {append}"):
        if rule.startswith(prefix):
            return rule[len(prefix) :]
    return rule


def place(step: Fields) -> str:
    """Where a step is, in words: `filter DOCKER-USER rule 1`, `filter FORWARD handle 17`, `the policy of nat OUTPUT`.

    A rule without a number (plain `nft monitor trace` prints no handle) is
    `a rule of filter DOCKER-USER`.
    """
    chain = f"{step['table']} {step['chain']}"
    if step["kind"] == "policy" and not step["rule"]:
        return f"the policy of {chain}"
    where = position(step)
    return f"a rule of {chain}" if where == "rule" else f"{chain} {where}"


def decided_by(step: Fields) -> str:
    """What decided at a step: `filter DOCKER-USER rule 1: -s … -j DROP`, `the policy of filter FORWARD`."""
    return f"{place(step)}: {rule_args(step)}" if step["rule"] else place(step)


def reason_text(packet: Fields) -> str | None:
    """`ICC: containers on this bridge may not talk to each other`: why the deciding rule decided, when known."""
    reason = packet["verdict_reason"]
    return f"{reason['label']}: {reason['meaning']}" if reason else None
