"""Shape regexes: a text matches its shape's regex exactly when splitting it would give that shape."""

from __future__ import annotations

import re
from collections.abc import Callable
from ipaddress import ip_address
from pathlib import Path

import pytest

from tests.samples import SAMPLES, kernel_log_samples
from tests.test_parse_kernel import shifted
from tracelog.events import Header
from tracelog.parse.kernel import FIELD_VALUE_KINDS, FIELD_VALUES, MARK
from tracelog.parse.shapes import ShapeMemo, shape_pattern


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

    return ShapeMemo(re.compile(r"=(\d+)(?![^ \t])"), (("=", r"\d+"),), reader), read


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

    memo = ShapeMemo(re.compile(r" (\d+)(?![^ \t])"), ((" ", r"\d+"),), reader)
    for number in (7, 65535):
        header = memo.header(f"icmp type destination-unreachable icmp id {number}")
        assert header is not None
        assert header.extra == (("icmp type", "destination-unreachable"), ("icmp id", str(number)))
    assert len(read) == 2
