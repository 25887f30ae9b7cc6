"""TRACE rules without root: spec → exact iptables arguments, tags, parsing, backend choice, enable/disable logic.

The backends are replaced by an in-memory one that compares rules exactly,
the way `iptables -C`/`-D` and libiptc do, so the orchestration is tested
without touching a kernel.  CLI error paths run in-process.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from ipaddress import ip_network
from pathlib import Path
from socketserver import ThreadingUnixStreamServer
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import RunCli
from tests.samples import SAMPLES
from tracelog import cli
from tracelog.errors import ExitStatus, Unavailable, UsageError
from tracelog.events import Family
from tracelog.names.docker import container_from_inspect, inspect_container
from tracelog.rules import manage
from tracelog.rules.backends import BackendName, FoundRule, TableChange
from tracelog.rules.detect import BackendUsage, Choice, choose_backend, count_rules, iptables_flavour, native_tables
from tracelog.rules.host import Source
from tracelog.rules.nft import read_trace_rule
from tracelog.rules.spec import (
    DEFAULT_DURATION,
    DEFAULT_RATE,
    Proto,
    Rate,
    RuleArgs,
    TraceRequest,
    TraceSpec,
    expiry,
    parse_duration,
    parse_rate,
    parse_tag,
    plan_specs,
)
from tracelog.state import namespace_id, save_snapshot

NOW = datetime(2026, 11, 28, 4, 0, 0, 250000, tzinfo=UTC)
UNTIL = datetime(2026, 11, 28, 5, 0, 1, tzinfo=UTC)
TAG = "tracelog:1,fam=4,proto=icmp,dst=172.18.0.3,limit=10/second,until=20261128T050001Z"
FULL_CAPS = "Name:\tpython\nCapEff:\t000001ffffffffff\n"
NO_CAPS = "Name:\tpython\nCapEff:\t0000000000000000\n"


# -- spec → exact rule arguments ------------------------------------------------------------------------


def test_icmp_to_an_address_gives_the_exact_rules_for_both_chains() -> None:
    spec = TraceSpec("icmp", dst=ip_network("172.18.0.3"), until=UNTIL)
    tail = [
        "-m",
        "comment",
        "--comment",
        TAG,
        "-m",
        "time",
        "--datestop",
        "2026-11-28T05:00:01",
        "-m",
        "limit",
        "--limit",
        "10/second",
        "--limit-burst",
        "10",
        "-j",
        "TRACE",
    ]
    prerouting, output = spec.rules()
    assert prerouting.argv() == ["-p", "icmp", "-d", "172.18.0.3/32", *tail]
    assert output.argv() == ["-p", "icmp", "-d", "172.18.0.3/32", *tail]
    assert output.command("iptables-nft", "-C")[:5] == ["iptables-nft", "-t", "raw", "-C", "OUTPUT"]


def test_interface_is_the_input_in_prerouting_and_the_output_in_output() -> None:
    spec = TraceSpec("tcp", "ipv6", src=ip_network("fd00:18::2"), sport=1234, dport=80, iface="docker0", limit=None)
    prerouting, output = spec.rules()
    assert prerouting.argv() == [
        "-p",
        "tcp",
        "-s",
        "fd00:18::2/128",
        "-i",
        "docker0",
        "-m",
        "tcp",
        "--sport",
        "1234",
        "--dport",
        "80",
        "-m",
        "comment",
        "--comment",
        "tracelog:1,fam=6,proto=tcp,src=fd00:18::2,sport=1234,dport=80,iface=docker0,limit=none",
        "-j",
        "TRACE",
    ]
    assert output.in_iface is None
    assert output.out_iface == "docker0"
    assert output.argv()[4:6] == ["-o", "docker0"]


def test_all_protocols_and_icmpv6_use_iptables_names() -> None:
    assert TraceSpec("all").rule("OUTPUT").protocol is None
    assert TraceSpec("all").rule("OUTPUT").argv()[:2] == ["-m", "comment"]
    assert TraceSpec("icmpv6", "ipv6").rule("OUTPUT").argv()[:2] == ["-p", "ipv6-icmp"]


def test_networks_keep_their_prefix() -> None:
    spec = TraceSpec("udp", src=ip_network("10.0.0.0/8"), dport=53)
    assert spec.rule("PREROUTING").src == "10.0.0.0/8"
    assert "src=10.0.0.0/8" in spec.tag()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (lambda: TraceSpec("icmp", "ipv6"), "icmp does not exist in ipv6"),
        (lambda: TraceSpec("icmpv6"), "icmpv6 does not exist in ipv4"),
        (lambda: TraceSpec("icmp", dport=80), "ports need tcp or udp"),
        (lambda: TraceSpec("tcp", dport=70000), "bad port 70000"),
        (lambda: TraceSpec("tcp", src=ip_network("fd00::1")), "fd00::1/128 is not an ipv4 address"),
        (lambda: TraceSpec("tcp", iface="a name with spaces"), "bad interface name"),
    ],
)
def test_impossible_specs_are_usage_errors(spec: Any, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        spec()


# -- the tag ----------------------------------------------------------------------------------------


def test_tag_holds_the_whole_spec() -> None:
    spec = TraceSpec("icmp", dst=ip_network("172.18.0.3"), until=UNTIL)
    assert spec.tag() == TAG
    assert parse_tag(TAG) == spec
    assert parse_tag(TAG).rules() == spec.rules()


addresses_v4 = st.ip_addresses(v=4).map(ip_network)
addresses_v6 = st.ip_addresses(v=6).map(ip_network)


@st.composite
def trace_specs(draw: st.DrawFn) -> TraceSpec:
    family: Family = draw(st.sampled_from(["ipv4", "ipv6"]))
    proto: Proto = draw(st.sampled_from(["tcp", "udp", "all", "icmp" if family == "ipv4" else "icmpv6"]))
    addresses = addresses_v4 if family == "ipv4" else addresses_v6
    ports = st.none() | st.integers(1, 65535) if proto in ("tcp", "udp") else st.none()
    seconds = draw(st.none() | st.integers(1, 10**8))
    return TraceSpec(
        proto=proto,
        family=family,
        src=draw(st.none() | addresses),
        dst=draw(st.none() | addresses),
        sport=draw(ports),
        dport=draw(ports),
        iface=draw(st.none() | st.from_regex(r"[a-z][a-z0-9.+-]{0,14}", fullmatch=True)),
        limit=draw(st.none() | st.builds(Rate, st.integers(1, 10000), st.sampled_from(["second", "minute", "hour"]))),
        until=None if seconds is None else datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds),
        container=draw(st.none() | st.from_regex(r"[a-z][a-z0-9_.-]{0,31}", fullmatch=True)),
    )


@given(spec=trace_specs())
def test_every_spec_survives_its_tag(spec: TraceSpec) -> None:
    tag = spec.tag()
    back = parse_tag(tag)
    assert back == spec
    assert back.container == spec.container
    assert back.rules() == spec.rules()
    assert len(tag) <= 255  # the kernel's comment match keeps 256 bytes with the NUL


def test_the_longest_tag_fits_the_kernels_comment() -> None:
    widest = ip_network("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120")
    spec = TraceSpec(
        "tcp",
        "ipv6",
        src=widest,
        dst=widest,
        sport=65535,
        dport=65535,
        iface="x" * 15,
        limit=Rate(10000, "second"),
        until=UNTIL,
        container="c" * 32,
    )
    assert len(spec.tag()) <= 255
    [labelled, _] = plan_specs(TraceRequest("tcp", ipv6=True, container="n" * 64), NOW, ("fd00::3",))
    assert labelled.container == "n" * 32


@pytest.mark.parametrize(
    "comment",
    [
        "tracelog:2,fam=4,proto=icmp,limit=none",
        "tracelog:1,fam=4,proto=icmp",
        "tracelog:1,fam=4,proto=icmp,limit=none,colour=blue",
        "tracelog:1,fam=5,proto=icmp,limit=none",
        "tracelog:1,fam=4,proto=icmp,limit=none,dport=80",
        "tracelog:1,fam=4,proto=icmp,limit=none,src=not-an-address",
        "tracelog:1,fam=4,proto=icmp,limit=none,noequals",
        "a user's own comment",
    ],
)
def test_tags_tracelog_did_not_write_are_rejected(comment: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011  # every reason is the same answer: not ours
        parse_tag(comment)


# -- durations, rates, expiry -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("5m", 300), ("2h", 7200), ("1h30m", 5400), ("1d", 86400), (" 2S ", 2)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "0", "0s", "5x", "m5", "1.5h", "-3s", "5 m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(UsageError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("10/second", Rate(10, "second")),
        ("10/s", Rate(10, "second")),
        ("5/min", Rate(5, "minute")),
        ("100/hours", Rate(100, "hour")),
        ("1/d", Rate(1, "day")),
        ("None", None),
    ],
)
def test_rates(text: str, rate: Rate | None) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["10", "0/s", "10001/s", "10/fortnight", "ten/s", "/s"])
def test_bad_rates(text: str) -> None:
    with pytest.raises(UsageError):
        parse_rate(text)


def test_defaults_are_documented_values() -> None:
    assert DEFAULT_DURATION == "1h"
    assert (DEFAULT_RATE.count, DEFAULT_RATE.unit) == (10, "second")
    assert DEFAULT_RATE.burst == 10
    for command in (cli.enable, cli.watch):
        parameters = inspect.signature(command).parameters
        assert (parameters["duration"].default, parameters["limit"].default) == (DEFAULT_DURATION, str(DEFAULT_RATE))


def test_expiry_is_the_last_whole_second_the_duration_reaches_into() -> None:
    """The time match includes its stop second: 2 s from 04:00:00.25 end at 04:00:03, so 04:00:02 is the last."""
    assert expiry(NOW, timedelta(seconds=2)) == datetime(2026, 11, 28, 4, 0, 2, tzinfo=UTC)
    stops = TraceSpec("icmp", until=expiry(NOW, timedelta(seconds=2))).stops
    assert stops == datetime(2026, 11, 28, 4, 0, 3, tzinfo=UTC)
    assert expiry(NOW.replace(microsecond=0), timedelta(seconds=2)) == datetime(2026, 11, 28, 4, 0, 1, tzinfo=UTC)
    assert expiry(NOW, None) is None
    with pytest.raises(UsageError, match="2038"):
        expiry(NOW, timedelta(days=365 * 20))


def test_a_rule_expires_after_its_last_matching_second() -> None:
    spec = TraceSpec("icmp", until=UNTIL)
    assert not spec.expired(UNTIL)
    assert not spec.expired(UNTIL + timedelta(milliseconds=999))
    assert spec.expired(UNTIL + timedelta(seconds=1))
    assert not TraceSpec("icmp").expired(NOW + timedelta(days=9999))


# -- requests → specs -------------------------------------------------------------------------------


def test_family_follows_the_request() -> None:
    assert TraceRequest("tcp").family == "ipv4"
    assert TraceRequest("tcp", ipv6=True).family == "ipv6"
    assert TraceRequest("icmpv6").family == "ipv6"
    assert TraceRequest("tcp", dst="fd00::1").family == "ipv6"


def test_request_becomes_one_spec_with_expiry_and_limit() -> None:
    [spec] = plan_specs(TraceRequest("tcp", dst="172.18.0.3", dport=80, duration="10m", limit="5/s"), NOW)
    assert spec == TraceSpec(
        "tcp",
        dst=ip_network("172.18.0.3"),
        dport=80,
        limit=Rate(5, "second"),
        until=datetime(2026, 11, 28, 4, 10, tzinfo=UTC),
    )  # matching through 04:10:00.999


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (TraceRequest("icmp", dst="fd00::1"), "icmp does not exist in ipv6"),
        (TraceRequest("tcp", src="172.18.0.2", dst="fd00::1"), "is not an ipv6 address"),
        (TraceRequest("tcp", dst="nginx-2"), "is not an address or network"),
        (TraceRequest("udp", duration="forever"), "bad duration"),
        (TraceRequest("sctp"), "unknown protocol"),
    ],
)
def test_bad_requests(request_: TraceRequest, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        plan_specs(request_, NOW)


def test_container_is_traced_both_ways_unless_one_side_is_given() -> None:
    addresses = ("172.18.0.3", "fd00:18::3")
    both = plan_specs(TraceRequest("icmp", container="nginx-2"), NOW, addresses)
    assert [(str(spec.src), str(spec.dst)) for spec in both] == [("None", "172.18.0.3/32"), ("172.18.0.3/32", "None")]
    assert all(spec.container == "nginx-2" for spec in both)
    [to_it] = plan_specs(TraceRequest("tcp", src="172.18.0.2", dport=80, container="nginx-2"), NOW, addresses)
    assert str(to_it.dst) == "172.18.0.3/32"
    [v6] = plan_specs(TraceRequest("icmpv6", dst="fd00:18::2", container="nginx-2"), NOW, addresses)
    assert str(v6.src) == "fd00:18::3/128"


def test_container_ports_are_mirrored_from_it() -> None:
    """`--dport 80` towards the server is `--sport 80` on its replies: both halves of the conversation."""
    to_it, from_it = plan_specs(TraceRequest("tcp", dport=80, container="nginx-2"), NOW, ("172.18.0.3",))
    assert (str(to_it.dst), to_it.sport, to_it.dport) == ("172.18.0.3/32", None, 80)
    assert (str(from_it.src), from_it.sport, from_it.dport) == ("172.18.0.3/32", 80, None)
    assert [rule.argv()[:8] for rule in (to_it.rule("PREROUTING"), from_it.rule("PREROUTING"))] == [
        ["-p", "tcp", "-d", "172.18.0.3/32", "-m", "tcp", "--dport", "80"],
        ["-p", "tcp", "-s", "172.18.0.3/32", "-m", "tcp", "--sport", "80"],
    ]
    to_it, from_it = plan_specs(TraceRequest("udp", sport=5353, dport=53, container="dns"), NOW, ("172.18.0.4",))
    assert (to_it.sport, to_it.dport, from_it.sport, from_it.dport) == (5353, 53, 53, 5353)
    assert from_it.describe() == "udp from 172.18.0.4 port 53 to any port 5353 (container dns)"
    # A side given: one direction only, the ports as written.
    [from_web] = plan_specs(TraceRequest("tcp", dst="10.0.0.5", dport=443, container="web"), NOW, ("172.18.0.5",))
    assert (str(from_web.src), str(from_web.dst), from_web.sport, from_web.dport) == (
        "172.18.0.5/32",
        "10.0.0.5/32",
        None,
        443,
    )


def test_enable_reports_the_match_of_each_rule_it_installed() -> None:
    backend = MemoryBackend()
    specs = plan_specs(TraceRequest("tcp", dport=80, container="nginx-2"), NOW, ("172.18.0.3",))
    lines = [change.line() for change in manage.add_rules(backend, specs, renew=True)]
    assert lines == [
        "added    nft    ipv4 raw PREROUTING tcp to 172.18.0.3 port 80 (container nginx-2): "
        "-p tcp -d 172.18.0.3/32 -m tcp --dport 80",
        "added    nft    ipv4 raw OUTPUT     tcp to 172.18.0.3 port 80 (container nginx-2): "
        "-p tcp -d 172.18.0.3/32 -m tcp --dport 80",
        "added    nft    ipv4 raw PREROUTING tcp from 172.18.0.3 port 80 (container nginx-2): "
        "-p tcp -s 172.18.0.3/32 -m tcp --sport 80",
        "added    nft    ipv4 raw OUTPUT     tcp from 172.18.0.3 port 80 (container nginx-2): "
        "-p tcp -s 172.18.0.3/32 -m tcp --sport 80",
    ]
    assert (
        manage.add_rules(backend, [TraceSpec("icmp", iface="eth0")], renew=True)[0]
        .line()
        .endswith("icmp on eth0: -p icmp -i eth0")
    )


def test_container_without_the_family_or_a_free_side_is_refused() -> None:
    with pytest.raises(UsageError, match="has no ipv6 address"):
        plan_specs(TraceRequest("tcp", ipv6=True, container="web"), NOW, ("172.18.0.3",))
    with pytest.raises(UsageError, match="needs --src or --dst to be free"):
        plan_specs(TraceRequest("tcp", src="10.0.0.1", dst="10.0.0.2", container="web"), NOW, ("172.18.0.3",))


# -- backend detection ------------------------------------------------------------------------------


SAVED = """\
# Generated by iptables-save v1.8.9 on Sat Nov 28 04:13:12 2026
*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p icmp -m comment --comment "tracelog:1,fam=4,proto=icmp,limit=none" -j TRACE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:DOCKER - [0:0]
-A FORWARD -j DOCKER
COMMIT
"""


def test_count_rules_leaves_tracelog_out_and_counts_closed_policies() -> None:
    assert count_rules(SAVED) == 2
    assert count_rules("") == 0


def test_native_tables_and_flavour() -> None:
    assert native_tables("table ip filter\ntable inet fw4\ntable ip6 raw\ntable bridge filter\n") == ("inet fw4",)
    assert iptables_flavour("iptables v1.8.9 (nf_tables)") == "nft"
    assert iptables_flavour("iptables v1.8.9 (legacy)") == "legacy"
    assert iptables_flavour("iptables v1.6.1") == "legacy"
    assert iptables_flavour(None) is None


@pytest.mark.parametrize(
    ("usage", "requested", "backend", "both"),
    [
        (BackendUsage(("ipv4 filter",), 5, 0), "auto", "legacy", False),
        (BackendUsage((), 0, 3), "auto", "nft", False),
        (BackendUsage((), 0, 0, ("inet fw4",)), "auto", "nft", False),
        (BackendUsage(("ipv4 filter",), 5, 3, (), "legacy"), "auto", "legacy", True),
        (BackendUsage(("ipv4 filter",), 5, 3, (), "nft"), "auto", "nft", True),
        (BackendUsage((), 0, 0, (), "legacy"), "auto", "legacy", False),
        (BackendUsage((), 0, 0, (), None), "auto", "nft", False),
        (BackendUsage((), 0, 3), "legacy", "legacy", False),
    ],
)
def test_backend_follows_the_rules(usage: BackendUsage, requested: Any, backend: str, both: bool) -> None:
    choice = choose_backend(usage, requested)
    assert (choice.backend, choice.both) == (backend, both)
    assert choice.reason


def test_nft_save_lines_become_found_rules() -> None:
    line = f'-A OUTPUT -d 172.18.0.3/32 -p icmp -m comment --comment "{TAG}" -j TRACE'
    assert read_trace_rule("ipv4", line) == FoundRule(
        "nft", "ipv4", "OUTPUT", TAG, f'-d 172.18.0.3/32 -p icmp -m comment --comment "{TAG}" -j TRACE'
    )
    assert read_trace_rule("ipv4", "-A OUTPUT -j ACCEPT") is None
    assert read_trace_rule("ipv4", ":OUTPUT ACCEPT [0:0]") is None


# -- enable, disable, expiry over an in-memory backend ----------------------------------------------


class MemoryBackend:
    """Rules compared whole, like `iptables -C`/`-D`: a changed rule is a different rule."""

    def __init__(self, name: BackendName = "nft") -> None:
        self.name = name
        self.rules: list[RuleArgs | FoundRule] = []
        self.chains: set[tuple[Family, str]] = set()  # chains that exist
        self.created: set[tuple[Family, str]] = set()  # ... and those tracelog made

    def remove_created_tables(self) -> list[TableChange]:
        """Like nf_tables: a chain tracelog made goes when no rule is left in it."""
        gone = []
        for family, chain in sorted(self.created):
            if not any(rule.family == family and rule.chain == chain for rule in self.rules):
                self.created.discard((family, chain))
                self.chains.discard((family, chain))
                gone.append(TableChange("removed", self.name, family, f"chain raw {chain}", "made for tracelog"))
        return gone

    def trace_rules(self, family: Family) -> list[FoundRule]:
        return [self._found(rule) for rule in self.rules if rule.family == family]

    def _found(self, rule: RuleArgs | FoundRule) -> FoundRule:
        if isinstance(rule, FoundRule):
            return rule
        return FoundRule(self.name, rule.family, rule.chain, rule.comment, " ".join(rule.argv()))

    def add(self, rule: RuleArgs) -> bool:
        if rule in self.rules:
            return False
        if (rule.family, rule.chain) not in self.chains:
            self.chains.add((rule.family, rule.chain))
            self.created.add((rule.family, rule.chain))
        self.rules.append(rule)
        return True

    def delete(self, rule: RuleArgs) -> bool:
        if rule not in self.rules:
            return False
        self.rules.remove(rule)
        return True


def test_enabling_twice_adds_nothing() -> None:
    backend = MemoryBackend()
    spec = TraceSpec("icmp", dst=ip_network("172.18.0.3"))
    assert [c.action for c in manage.add_rules(backend, [spec], renew=True)] == ["added", "added"]
    assert [c.action for c in manage.add_rules(backend, [spec], renew=True)] == ["present", "present"]
    assert backend.rules == list(spec.rules())


def test_enabling_with_new_settings_replaces_the_old_rules() -> None:
    backend = MemoryBackend()
    old = TraceSpec("icmp", dst=ip_network("172.18.0.3"), until=UNTIL)
    new = replace(old, until=UNTIL + timedelta(hours=1), limit=Rate(1, "second"))
    manage.add_rules(backend, [old], renew=True)
    changes = manage.add_rules(backend, [new], renew=True)
    assert [c.action for c in changes] == ["renewed", "renewed"]
    assert "until 2026-11-28 05:00:02 UTC, limit 10/second" in changes[0].note  # the end of UNTIL
    assert backend.rules == list(new.rules())


def test_watch_adds_beside_an_existing_rule_instead_of_replacing_it() -> None:
    backend = MemoryBackend()
    old = TraceSpec("icmp", until=UNTIL)
    manage.add_rules(backend, [old], renew=True)
    manage.add_rules(backend, [replace(old, until=UNTIL + timedelta(minutes=1))], renew=False)
    assert len(backend.rules) == 4


class FailingBackend(MemoryBackend):
    def add(self, rule: RuleArgs) -> bool:
        if rule.chain == "OUTPUT":
            raise Unavailable("refused")
        return super().add(rule)


def test_a_failed_enable_takes_back_what_it_added() -> None:
    backend = FailingBackend()
    with pytest.raises(Unavailable):
        manage.add_rules(backend, [TraceSpec("icmp")], renew=True)
    assert backend.rules == []
    assert backend.chains == set()  # the chain made for the first rule went with it


def test_enable_names_every_reader_and_what_it_shows() -> None:
    kernel_log = Source("the kernel ring buffer", "dmesg -w", "legacy", "the steps in the legacy tables ipv4 filter")
    monitor = Source(
        "nf_tables trace events (netlink)",
        "stdbuf -oL xtables-monitor --trace",
        "nft",
        "the steps in the nf_tables tables ip raw",
    )
    report = manage.EnableReport(Choice("nft", "asked"), [TraceSpec("icmp")], [], sources=[kernel_log, monitor])
    lines = report.lines()
    assert lines[lines.index("read the trace from the kernel ring buffer:") :][:6] == [
        "read the trace from the kernel ring buffer:",
        "    dmesg -w | tracelog parse",
        "    it shows the steps in the legacy tables ipv4 filter",
        "read the trace from nf_tables trace events (netlink):",
        "    stdbuf -oL xtables-monitor --trace | tracelog parse",
        "    it shows the steps in the nf_tables tables ip raw",
    ]
    assert (
        "this watch does not read the kernel ring buffer, which shows the steps in the legacy tables ipv4 "
        "filter: dmesg -w | tracelog parse"
    ) in report.watch_lines()


@pytest.fixture
def memory_backends(caps: Path, monkeypatch: pytest.MonkeyPatch) -> list[MemoryBackend]:
    """`disable` and `status` over in-memory backends: an nft one where tracelog makes its chains, a legacy one."""
    backends = [MemoryBackend("nft"), MemoryBackend("legacy")]
    monkeypatch.setattr(manage, "open_backends", lambda requested: (backends, []))
    return backends


def test_disable_removes_the_chains_tracelog_made_once_empty(memory_backends: list[MemoryBackend]) -> None:
    nft, legacy = memory_backends
    manage.add_rules(nft, [TraceSpec("icmp")], renew=True)
    legacy.chains |= {("ipv4", "PREROUTING"), ("ipv4", "OUTPUT")}  # the user's: never made by tracelog
    manage.add_rules(legacy, [TraceSpec("tcp", dport=80)], renew=True)
    lines = manage.disable_lines("auto")
    assert lines[-1] == "removed 4 tracelog rules"
    assert [line for line in lines if "chain raw" in line] == [
        "removed  nft    ipv4 chain raw OUTPUT  (made for tracelog)",
        "removed  nft    ipv4 chain raw PREROUTING  (made for tracelog)",
    ]
    assert nft.chains == set()
    assert legacy.chains == {("ipv4", "PREROUTING"), ("ipv4", "OUTPUT")}
    assert manage.disable_lines("auto") == ["no tracelog rules found"]


def test_a_made_chain_holding_another_rule_stays(memory_backends: list[MemoryBackend]) -> None:
    nft, _ = memory_backends
    manage.add_rules(nft, [TraceSpec("icmp")], renew=True)
    nft.rules.append(FoundRule("nft", "ipv4", "OUTPUT", None, "-j CT --notrack"))
    assert [line for line in manage.disable_lines("auto") if "chain raw" in line] == [
        "removed  nft    ipv4 chain raw PREROUTING  (made for tracelog)"
    ]
    assert nft.chains == {("ipv4", "OUTPUT")}


def test_status_lists_the_snapshots_kept(
    memory_backends: list[MemoryBackend], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACELOG_STATE_DIR", str(tmp_path))
    lines = manage.status_lines("auto", NOW)
    assert lines[-1] == (
        f"no ruleset snapshots in {tmp_path}/snapshots "
        "(the newest 10 per network namespace are kept, none older than 7 days)"
    )
    for minutes in range(12):
        save_snapshot({"iptables-nft-save": "*raw\nCOMMIT\n"}, NOW + timedelta(minutes=minutes), tmp_path)
    (tmp_path / "snapshots" / f"20261101T000000.000000Z-{namespace_id()}").mkdir()  # older than 7 days
    lines = manage.status_lines("auto", NOW + timedelta(minutes=12))
    listed = lines[
        lines.index(
            f"ruleset snapshots in {tmp_path}/snapshots (10; the newest 10 per network "
            "namespace are kept, none older than 7 days):"
        )
        + 1 :
    ]
    assert len(listed) == 10
    assert listed[-1] == (
        f"  2026-11-28 04:11:00 UTC  this namespace ({namespace_id()})  "
        f"20261128T041100.250000Z-{namespace_id()}: iptables-nft-save"
    )


def test_disable_removes_tracelog_rules_only_and_keeps_changed_ones() -> None:
    backend = MemoryBackend("legacy")
    stray = FoundRule("legacy", "ipv4", "PREROUTING", None, "-p icmp -j TRACE")
    changed = FoundRule("legacy", "ipv4", "OUTPUT", TAG, f"-p icmp --comment {TAG} -j TRACE")
    foreign = FoundRule("legacy", "ipv4", "OUTPUT", "tracelog:9,future", "-j TRACE")
    backend.rules += [stray, changed, foreign]
    spec = TraceSpec("tcp", dport=80)
    manage.add_rules(backend, [spec], renew=True)
    changes = manage.remove_all(backend)
    assert sorted(c.action for c in changes) == ["kept", "kept", "removed", "removed"]
    assert backend.rules == [stray, changed, foreign]
    assert {c.note for c in changes if c.action == "kept"} == {
        "changed since tracelog wrote it: left alone",
        "a tag this tracelog did not write here: left alone",
    }


def test_expired_rules_are_removed_and_live_ones_kept() -> None:
    backend = MemoryBackend()
    live, dead = TraceSpec("icmp", until=UNTIL), TraceSpec("tcp", until=NOW.replace(microsecond=0))
    manage.add_rules(backend, [live, dead], renew=True)
    removed = manage.remove_expired(backend, NOW + timedelta(seconds=5))
    assert [(c.action, c.what) for c in removed] == [("removed", "tcp"), ("removed", "tcp")]
    assert backend.rules == list(live.rules())


def test_survey_sorts_rules_into_tracelogs_and_strays() -> None:
    backend = MemoryBackend()
    backend.rules.append(FoundRule("nft", "ipv6", "PREROUTING", "user", "-j TRACE"))
    manage.add_rules(backend, [TraceSpec("icmpv6", "ipv6")], renew=True)
    found = manage.survey(backend)
    assert [item.spec for item in found.installed] == [TraceSpec("icmpv6", "ipv6")] * 2
    assert [rule.comment for rule in found.strays] == ["user"]


SECOND = NOW.replace(microsecond=0)


@pytest.mark.parametrize(
    ("until", "left"),
    [
        (None, "no expiry"),
        (SECOND - timedelta(seconds=1), "expired"),
        (SECOND, "1s left"),
        (SECOND + timedelta(seconds=58), "59s left"),
        (SECOND + timedelta(hours=1, seconds=3), "1h 4s left"),
        (SECOND + timedelta(minutes=12, seconds=-1), "12m left"),
    ],
)
def test_time_left_counts_the_last_matching_second(until: datetime | None, left: str) -> None:
    assert manage.time_left(until, SECOND) == left


# -- the Docker Engine API --------------------------------------------------------------------------


INSPECT = json.loads((SAMPLES / "docker-legacy/docker-inspect.json").read_text())


def test_container_addresses_come_from_its_networks() -> None:
    assert container_from_inspect("nginx-1", INSPECT[0]).addresses == ("172.18.0.2",)
    dual = {
        **INSPECT[1],
        "NetworkSettings": {"Networks": {"web": {"IPAddress": "172.19.0.5", "GlobalIPv6Address": "fd00:19::5"}}},
    }
    assert container_from_inspect("nginx-2", dual).addresses == ("172.19.0.5", "fd00:19::5")


def test_containers_that_cannot_be_traced_by_address() -> None:
    with pytest.raises(UsageError, match="is not running"):
        container_from_inspect("web", {**INSPECT[0], "State": {"Running": False}})
    with pytest.raises(UsageError, match="shares the host's network"):
        container_from_inspect(
            "web",
            {
                "State": {"Running": True},
                "NetworkSettings": {"Networks": {"host": {}}},
                "HostConfig": {"NetworkMode": "host"},
            },
        )


class _FakeDocker(BaseHTTPRequestHandler):
    """`GET /containers/NAME/json` answered from the real inspect sample."""

    def do_GET(self) -> None:
        by_name = {item["Name"].lstrip("/"): item for item in INSPECT}
        name = self.path.removeprefix("/containers/").removesuffix("/json")
        found = by_name.get(name)
        body = json.dumps(found if found else {"message": f"No such container: {name}"}).encode()
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def address_string(self) -> str:
        return "unix"


@pytest.fixture
def docker_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "docker.sock"
    server = ThreadingUnixStreamServer(str(path), _FakeDocker)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    try:
        yield path
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_inspect_over_the_unix_socket(docker_socket: Path) -> None:
    assert inspect_container("nginx-2").addresses == ("172.18.0.3",)
    with pytest.raises(UsageError, match="no container named nginx-3"):
        inspect_container("nginx-3")


def test_docker_not_running(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="cannot reach the Docker daemon"):
        inspect_container("nginx-1", tmp_path / "missing.sock")


# -- CLI error paths: one line on stderr and a named exit code --------------------------------------


@pytest.fixture
def caps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake /proc/self/status; tests write the capabilities they want."""
    status = tmp_path / "status"
    status.write_text(FULL_CAPS)
    monkeypatch.setattr(manage, "PROC_STATUS", status)
    return status


@pytest.mark.parametrize("args", [["enable", "icmp"], ["watch", "tcp", "--dport", "80"], ["status"], ["disable"]])
def test_without_cap_net_admin(run_cli: RunCli, caps: Path, args: list[str]) -> None:
    caps.write_text(NO_CAPS)
    run = run_cli(*args)
    assert run.status == ExitStatus.PERMISSION
    assert int(ExitStatus.PERMISSION) == 5
    assert run.stderr == "tracelog: changing the firewall needs root (CAP_NET_ADMIN) (run it with sudo)\n"
    assert run.stdout == ""


def test_legacy_backend_without_python_iptables(run_cli: RunCli, caps: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "iptc", None)  # `import iptc` now raises ImportError
    run = run_cli("enable", "icmp", "--backend", "legacy")
    assert run.status == ExitStatus.UNAVAILABLE
    assert int(ExitStatus.UNAVAILABLE) == 6
    assert run.stderr.startswith("tracelog: the legacy backend needs python-iptables")
    assert run.stderr.count("\n") == 1


def test_nft_backend_without_iptables_tools(
    run_cli: RunCli, caps: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    run = run_cli("enable", "icmp", "--backend", "nft")
    assert run.status == ExitStatus.UNAVAILABLE
    assert run.stderr.startswith("tracelog: the nft backend needs iptables-nft, ip6tables-nft")
    assert run.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["enable", "icmp", "--dport", "80"], "tracelog: ports need tcp or udp (tracelog enable tcp --dport 80)\n"),
        (["enable", "icmp", "-6"], "tracelog: icmp does not exist in ipv6 (icmp is IPv4, icmpv6 is IPv6 (-6))\n"),
        (["watch", "udp", "--for", "soon"], "tracelog: bad duration 'soon' (like 30s, 5m, 1h30m, or none)\n"),
    ],
)
def test_bad_options_are_usage_errors(run_cli: RunCli, caps: Path, args: list[str], message: str) -> None:
    run = run_cli(*args)
    assert run.status == ExitStatus.USAGE
    assert run.stderr == message


def test_missing_docker_is_unavailable(
    run_cli: RunCli, caps: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    run = run_cli("enable", "icmp", "--container", "nginx-1")
    assert run.status == ExitStatus.UNAVAILABLE
    assert run.stderr.startswith(f"tracelog: cannot reach the Docker daemon at {tmp_path}/none.sock")


def test_parse_runs_without_python_iptables() -> None:
    """`import iptc` is blocked; parse still works and nothing imported the rules machinery."""
    code = (
        "import sys; sys.modules['iptc'] = None\n"
        "from tracelog.cli import main\n"
        f"status = main(['parse', '-f', 'jsonl', {str(SAMPLES / 'docker-legacy/ping.dmesg')!r}])\n"
        "assert not any(name.split('.')[:2] == ['tracelog', 'rules'] for name in sys.modules), 'rules imported'\n"
        "sys.exit(status)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 4
