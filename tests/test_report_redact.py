"""Redaction: addresses, MACs, host and container names replaced consistently, everything else kept."""

from __future__ import annotations

import copy
import io
import ipaddress
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import pytest

from tests.samples import SAMPLES, trace_samples
from tests.test_report import sample_name, sample_records
from tracelog.names import load_names
from tracelog.output.report import Redactor, redact_records, write_page
from tracelog.records.packet import PacketRecord

Record = PacketRecord
_KEPT_V4 = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("224.0.0.0/4"))


def _addresses(value: Any, key: str = "") -> Iterator[str]:
    """Every address a record holds in its fields, at any depth."""
    if isinstance(value, dict):
        for name, item in value.items():
            yield from _addresses(item, name)
    elif isinstance(value, list):
        for item in value:
            yield from _addresses(item, key)
    elif isinstance(value, str) and key in ("src", "dst", "from", "to"):
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return
        yield value


def _private(address: str) -> bool:
    parsed = ipaddress.ip_address(address)
    if isinstance(parsed, ipaddress.IPv4Address):
        return not any(parsed in network for network in _KEPT_V4)
    return not (parsed.is_loopback or parsed.is_unspecified or (parsed.is_multicast and "ff02::1:ff" not in address))


def _mentions(text: str, value: str) -> bool:
    """Whether `value` stands in `text` as a whole token (an address inside a longer one does not count)."""
    return re.search(f"(?<![0-9A-Za-z:.-]){re.escape(value)}(?![0-9A-Za-z:-]|\\.[0-9])", text) is not None


@pytest.mark.parametrize("sample", trace_samples(), ids=sample_name)
def test_no_address_or_name_survives(sample: Path) -> None:
    records = sample_records(sample)
    redacted = json.dumps(list(redact_records(records)))
    for address in {address for record in records for address in _addresses(record)}:
        if _private(address):
            assert not _mentions(redacted, address), address
    names = {
        name
        for record in records
        for name in (record["src_name"], record["dst_name"], record["endpoint_name"], record["host"])
        if name
    }
    for name in names:
        assert not _mentions(redacted, name), name


@pytest.mark.parametrize("sample", trace_samples(), ids=sample_name)
def test_rules_chains_verdicts_and_shape_are_kept(sample: Path) -> None:
    records = sample_records(sample)
    for record, redacted in zip(records, redact_records(records), strict=True):
        assert redacted.keys() == record.keys()
        for key in ("packet", "flow", "proto", "family", "verdict_step", "sport", "dport"):
            assert redacted[key] == record[key]
        original: Mapping[str, Any] = record
        shown_record: Mapping[str, Any] = redacted
        for key in ("verdict", "verdict_at"):
            assert shown_record[key] == original[key] or _holds_address(original[key])
        for step, shown in zip(record["steps"], redacted["steps"], strict=True):
            before: Mapping[str, Any] = step  # compared field by field
            after: Mapping[str, Any] = shown
            for key in ("table", "kind", "rulenum", "handle", "hook", "in", "out", "line"):
                assert after[key] == before[key]
            # kept unless they hold an address (kube-proxy's nftables chains are named after endpoints)
            for key in ("chain", "verdict", "rule"):
                assert after[key] == before[key] or _holds_address(before[key])


def _holds_address(text: str | None) -> bool:
    return text is not None and re.search(r"\d+\.\d+\.\d+\.\d+|[0-9a-f]*:[0-9a-f:]*:", text) is not None


def test_one_value_one_token_in_fields_and_rule_text_alike() -> None:
    records = sample_records(SAMPLES / "docker-legacy/drop.dmesg")
    first, *others = list(redact_records(records))
    assert (first["src"], first["dst"]) == ("10.1.0.2", "10.1.0.3")
    assert (first["src_name"], first["dst_name"]) == ("container-1", "container-2")
    assert all((other["src"], other["dst_name"]) == ("10.1.0.2", "container-2") for other in others)
    assert first["steps"][-1]["rule"] == "-A DOCKER-USER -s 10.1.0.2/32 -d 10.1.0.3/32 -p tcp -m tcp --dport 80 -j DROP"
    assert first["steps"][0]["source"] == "input-1"


def test_a_subnet_keeps_its_shape() -> None:
    redactor = Redactor()
    assert redactor.text("-s 172.18.0.0/16 -d 172.18.5.7") == "-s 10.1.0.0/16 -d 10.1.5.7"
    assert redactor.text("192.0.2.1:8080 and 192.0.2.77") == "10.2.2.1:8080 and 10.2.2.77"
    assert redactor.text("172.19.0.2") == "10.3.0.2"
    assert redactor.text("172.18.0.2") == "10.1.0.2"
    assert redactor.text("127.0.0.1 0.0.0.0/0 255.255.255.255 224.0.0.251") == (
        "127.0.0.1 0.0.0.0/0 255.255.255.255 224.0.0.251"
    )


def test_ipv6_macs_and_embedded_addresses() -> None:
    redactor = Redactor()
    assert redactor.text("fd00:18::2 [fd00:18::3]:80 fd00:18::/64") == "fd00:1::2 [fd00:1::3]:80 fd00:1::/64"
    # an EUI-64 interface identifier carries a MAC: it is replaced, the link-local prefix kept
    assert redactor.text("fe80::42:acff:fe12:3") == "fe80::a:0:0:1"
    assert redactor.text("2001:db8::42:acff:fe12:3") == "fd00:2::a:0:0:1"
    assert redactor.text("ff02::1:ff12:3 ff02::1 ::1 ::") == "ff02::1:ff00:1 ff02::1 ::1 ::"
    assert redactor.text("::ffff:172.18.0.2") == "::ffff:10.1.0.2"
    assert redactor.text("MAC=02:42:ac:12:00:03:02:42:ac:12:00:02:08:00") == (
        "MAC=02:00:00:00:00:01:02:00:00:00:00:02:08:00"
    )
    assert redactor.text("--mac-source 02:42:AC:12:00:02") == "--mac-source 02:00:00:00:00:02"
    assert redactor.text("at 04:09:01, 1.2.3") == "at 04:09:01, 1.2.3"


def test_more_networks_than_the_space_holds_never_share_a_token() -> None:
    redactor = Redactor()
    tokens = {redactor.text(f"{first}.{second}.0.1") for first in range(1, 20) for second in range(256)}
    assert len(tokens) == 19 * 256
    assert "ipv4-4097.0.1" in tokens


def test_names_are_replaced_in_free_text_too() -> None:
    records = copy.deepcopy(sample_records(SAMPLES / "docker-legacy/drop.dmesg"))
    last = records[0]["steps"][-1]
    last["rule"] = f'{last["rule"]} -m comment --comment "nginx-2 is private"'
    records[0]["host"] = "db-prod-1"
    shown = list(redact_records(records))
    assert str(shown[0]["steps"][-1]["rule"]).endswith('--comment "container-2 is private"')
    assert shown[0]["host"] == "host-1"
    assert Redactor(names=["nginx-9"]).text("to nginx-9, not nginx-90") == "to container-1, not nginx-90"
    assert Redactor().name("bridge", "network") == "bridge"


def test_records_are_copied_not_changed() -> None:
    records = sample_records(SAMPLES / "lab-legacy/dnat.dmesg")
    before = copy.deepcopy(records)
    shown = list(redact_records(records))
    assert records == before
    assert shown[0]["rewrites"] == [
        {"step": 4, "field": "dst", "from": "10.1.2.1", "to": "10.2.0.3"},
        {"step": 4, "field": "dport", "from": 8080, "to": 80},
    ]
    assert shown[0]["endpoint"] == "10.2.0.3:80"
    assert shown[0]["endpoint_name"] == "container-1"


def test_a_redacted_page_names_nothing_of_the_original() -> None:
    records = sample_records(SAMPLES / "lab-legacy/dnat.dmesg")
    out = io.StringIO()
    write_page(records, out, title="dnat from 192.0.2.1", redact=True)
    page = out.getvalue()
    for secret in ("nginx", "172.18.", "192.0.2.", "samples/lab-legacy"):
        assert secret not in page
    assert "10.1.2.1:8080 → 10.2.0.3:80 (container-1)" in page
    assert "redacted" in page


def test_names_given_beforehand_are_known_in_text_before_any_record() -> None:
    names = load_names([SAMPLES / "docker-legacy/docker-inspect.json"])
    redactor = Redactor.from_names(names)
    assert redactor.text('--comment "nginx-1 and nginx-2"') == '--comment "container-1 and container-2"'


def test_an_address_in_a_chain_name_is_replaced_wherever_the_chain_is_named() -> None:
    """kube-proxy's nftables mode names a chain after its endpoint; the chain must not give the address away."""
    chain = "endpoint-7FUMELAF-default/web/tcp/http__10.244.1.11/8080"
    step = {"chain": chain, "verdict": f"GOTO:{chain}"}
    record = {"src": "10.244.1.10", "verdict_at": f"kube-proxy:{chain}:rule:0x40", "steps": [step]}
    (redacted,) = redact_records([cast(PacketRecord, record)])
    shown: Mapping[str, Any] = redacted
    redacted_chain = "endpoint-7FUMELAF-default/web/tcp/http__10.1.1.11/8080"
    assert shown["src"] == "10.1.1.10"
    assert shown["verdict_at"] == f"kube-proxy:{redacted_chain}:rule:0x40"
    assert shown["steps"] == [{"chain": redacted_chain, "verdict": f"GOTO:{redacted_chain}"}]
