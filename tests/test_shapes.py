"""Shape memos: a text matches its shape's regex exactly when splitting it would give that shape, and what it costs."""

from __future__ import annotations

import re
from collections.abc import Callable
from ipaddress import ip_address
from pathlib import Path

import pytest

from tests.samples import SAMPLES, kernel_log_samples
from tests.test_parse_kernel import shifted
from tracelog.events import Header
from tracelog.parse.kernel import FIELD_VALUE_KINDS, FIELD_VALUES, MARK, grammar_header
from tracelog.parse.shapes import EAGER_SHAPES, MAX_SHAPED_TEXT, ShapeMemo, ValueKind, shape_pattern


def field_texts(sample: Path) -> list[str]:
    """The text after each record's tag: where the values are."""
    texts = []
    for line in sample.read_text().splitlines():
        if MARK in line:
            _, _, after = line.partition(MARK)
            texts.append(after.strip().partition(" ")[2])
    return texts


def pieces(text: str) -> list[str | None]:
    return FIELD_VALUES.split(text)[:: len(FIELD_VALUE_KINDS) + 1]


def values(text: str) -> tuple[str, ...]:
    stride = len(FIELD_VALUE_KINDS) + 1
    return tuple(value for index, value in enumerate(FIELD_VALUES.split(text)) if index % stride and value is not None)


@pytest.mark.parametrize("sample", kernel_log_samples(), ids=lambda path: str(path.relative_to(SAMPLES)))
def test_shape_regexes_match_the_texts_the_split_gives_their_pieces(sample: Path) -> None:
    texts = field_texts(sample)
    learned = [(text, shape_pattern(FIELD_VALUES.split(text), FIELD_VALUE_KINDS)) for text in texts]
    others = [*texts, *map(shifted, texts), "IN=eth0 OUT= LEN=60x", "TYPE=8 CODE=0 ID=12 SEQ=1"]
    for text, pattern in learned:
        for other in others:
            match = pattern.fullmatch(other)
            assert (match is not None) == (pieces(other) == pieces(text)), (text, other)
            if match is not None:
                assert match.groups() == values(other)


def test_an_icmp_type_stays_in_the_shape() -> None:
    pattern = shape_pattern(FIELD_VALUES.split("PROTO=ICMP TYPE=8 CODE=0 ID=12 SEQ=1"), FIELD_VALUE_KINDS)
    assert pattern.fullmatch("PROTO=ICMP TYPE=8 CODE=0 ID=99 SEQ=7") is not None
    assert pattern.fullmatch("PROTO=ICMP TYPE=0 CODE=0 ID=12 SEQ=1") is None


def counting_memo(
    length: Callable[[int], int],
    ttl: Callable[[int], int | None] = lambda _: None,
) -> tuple[ShapeMemo, list[str]]:
    """A memo over `LEN=<n> …` texts whose reader makes the header's length `length(n)` and TTL `ttl(n)`."""
    read: list[str] = []

    def reader(text: str) -> Header:
        read.append(text)
        number = int(text.split(maxsplit=1)[0].removeprefix("LEN="))
        return Header(
            "ipv6", ip_address("fd00::1"), ip_address("fd00::2"), "TCP", length=length(number), ttl=ttl(number)
        )

    return ShapeMemo(re.compile(r"=(\d+)(?![^ \t])"), (ValueKind("=", r"\d+"),), reader), read


def test_a_constant_the_reader_adds_goes_back_with_the_value() -> None:
    """nft's `ip6 length` is the payload: the reader adds the 40-byte header, and so must the shape."""
    memo, read = counting_memo(lambda number: number + 40)
    for number in (60, 1280, 7):
        header = memo.header(f"LEN={number} PROTO=TCP")
        assert header is not None
        assert header.length == number + 40
    assert len(read) == 2  # the two readings that taught the shape, then none


def test_a_value_the_reader_transforms_otherwise_is_read_every_time() -> None:
    memo, read = counting_memo(lambda number: number * 2)
    for number in (60, 1280, 7):
        header = memo.header(f"LEN={number} PROTO=TCP")
        assert header is not None
        assert header.length == number * 2
    assert len(read) == 2 + 3


def test_a_value_also_used_otherwise_is_read_every_time() -> None:
    """The first reading alone sees the length land; the second shows the TTL moved with it."""
    memo, read = counting_memo(lambda number: number, ttl=lambda number: number % 256)
    for number in (60, 1280, 7):
        header = memo.header(f"LEN={number} PROTO=TCP")
        assert header is not None
        assert (header.length, header.ttl) == (number, number % 256)
    assert len(read) == 2 + 3


def test_a_value_kept_as_an_unknown_field_goes_back_as_its_text() -> None:
    """nft prints `icmp id` for ICMP errors too, where tracelog keeps it among the unknown fields."""
    read: list[str] = []

    def reader(text: str) -> Header:
        read.append(text)
        return Header(
            "ipv4",
            ip_address("10.0.0.1"),
            ip_address("10.0.0.2"),
            "ICMP",
            extra=(("icmp type", "destination-unreachable"), ("icmp id", text.rsplit(maxsplit=1)[-1])),
        )

    memo = ShapeMemo(re.compile(r" (\d+)(?![^ \t])"), (ValueKind(" ", r"\d+"),), reader)
    for number in (7, 65535, 3):
        header = memo.header(f"icmp type destination-unreachable icmp id {number}")
        assert header is not None
        assert header.extra == (("icmp type", "destination-unreachable"), ("icmp id", str(number)))
    assert len(read) == 2


def counting_grammar() -> tuple[ShapeMemo, list[str]]:
    """The kernel log's memo, over the grammar, counting what the grammar reads."""
    read: list[str] = []

    def reader(text: str) -> Header | None:
        read.append(text)
        return grammar_header(text)

    return ShapeMemo(FIELD_VALUES, FIELD_VALUE_KINDS, reader), read


def scanned(text: str, number: int) -> str:
    """A capture's field text as a scan shows it: each address and MAC header new (the inner packet's too)."""
    octets = f"{number >> 8 & 255}.{number & 255}"
    text = re.sub(r"(?<=DST=)\d+\.\d+\.\d+\.\d+", f"10.9.{octets}", text)
    text = re.sub(r"(?<=SRC=)\d+\.\d+\.\d+\.\d+", f"192.168.{octets}", text)
    text = re.sub(
        r"(?<=DST=)[0-9a-f]{4}:\S+", f"2001:0db8:0000:0000:0000:0000:{number >> 8:04x}:{number & 255:04x}", text
    )
    return re.sub(
        r"(?<=MAC=)\S+", f"02:42:ac:12:{number >> 8 & 255:02x}:{number & 255:02x}:02:42:ac:12:00:02:08:00", text
    )


@pytest.mark.parametrize(
    ("sample", "mac"),
    [
        ("lab-legacy/tcp.dmesg", True),
        ("lab-legacy/ipv6-ping.dmesg", True),
        ("lab-legacy/ipv6-ping.dmesg", False),  # an address the first value
        ("lab-legacy/udp-closed.dmesg", True),
    ],
)
def test_a_scan_is_read_by_the_grammar_once_per_shape(sample: str, mac: bool) -> None:
    """A scanner sends each packet to a new address: addresses and MAC headers are values, not shape.

    Reading 300 such lines costs the grammar what reading one shape costs
    (twice, to learn it), and every header is the grammar's.
    """
    texts = field_texts(SAMPLES / sample)
    text = next(text for text in texts if "[SRC=" in text) if "udp-closed" in sample else texts[0]
    text = text if mac else re.sub(r"MAC=\S+ ", "", text)
    memo, read = counting_grammar()
    for number in range(300):
        scan = scanned(text, number)
        assert memo.header(scan) == grammar_header(scan)
    assert len(read) == 2


def test_a_value_that_is_no_address_is_read_as_the_grammar_reads_it() -> None:
    text = field_texts(SAMPLES / "lab-legacy/tcp.dmesg")[0]
    memo, _ = counting_grammar()
    for number in range(3):
        memo.header(scanned(text, number))
    for address in ("10.1.2.999", "010.1.2.3", "1.2.3.4"):
        damaged = re.sub(r"(?<=SRC=)\S+", address, text)
        header = memo.header(damaged)
        assert repr(header) == repr(grammar_header(damaged))  # an unknown address equals only itself
        assert header is not None
        assert (header.partial is None) == (address == "1.2.3.4")


def test_a_shape_that_never_comes_back_is_read_once() -> None:
    """A new interface name on every line: past a log's own shapes, each text costs one reading, not three."""
    text = field_texts(SAMPLES / "lab-legacy/tcp.dmesg")[0]
    memo, read = counting_grammar()
    for number in range(EAGER_SHAPES + 100):
        unique = text.replace("PHYSIN=vethb99e073", f"PHYSIN=veth{number:x}z", 1)
        assert memo.header(unique) == grammar_header(unique)
    assert len(read) == 2 * EAGER_SHAPES + 100


def test_a_long_text_is_read_every_time_and_kept_nowhere() -> None:
    text = field_texts(SAMPLES / "lab-legacy/tcp.dmesg")[0].replace("IN=docker0", "IN=" + "d" * MAX_SHAPED_TEXT, 1)
    memo, read = counting_grammar()
    for _ in range(3):
        assert memo.header(text) == grammar_header(text)
    assert len(read) == 3
