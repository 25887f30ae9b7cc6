"""Shape regexes: a text matches its shape's regex exactly when splitting it would give that shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.samples import SAMPLES, kernel_log_samples
from tests.test_parse_kernel import shifted
from tracelog.parse.kernel import FIELD_VALUE_KINDS, FIELD_VALUES, MARK
from tracelog.parse.shapes import shape_pattern


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
