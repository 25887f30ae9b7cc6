"""Field texts memoised by shape: the grammar reads each shape once, then values go back in.

The field texts of a log differ from packet to packet mostly in their values
(IP ids, lengths, ports, sequence numbers, TCP option bytes).  A `ShapeMemo`
takes those values out with a regex, has the grammar read the rest once with
numbered markers where the values were, and notes which `Header` field each
marker landed in; the next text of that shape only needs its values put back.
Every marker must land in a field: whole, as a number or as text (the text of
a field tracelog does not know included), or as a number plus a constant the
grammar added (IPv6 lengths); and a second reading with other markers must be
what the first predicts.  A value that ends up anywhere else (transformed,
used twice, an interface called `7`) makes the shape one the grammar reads
every time, as does a text damaged by hand (a header with `partial`): each
line of it gets addresses of its own, equal to no other line's.

Splitting a text with the values regex costs far more than matching it
against one shape's own regex (its pieces verbatim, a group per value), so
known shapes are found without a split: texts are bucketed by what comes
before their first value and by their text without decimal and hex digits,
and the bucket's shape regexes are tried.  A text that matches one has
exactly the pieces the split would give (the pieces are the same strings, and
a value's delimiter and neighbours decide whether the split takes it);
anything else is split.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tracelog.events import Header, build

# Marker `i` of reading `probe` (1 or 2): 98765432, the probe, i, 000.  The
# zeros leave room for a constant the grammar adds to a value (nft's and
# xtables' IPv6 `length` + 40), recognised as marker + offset below 1000.
_MARKER_STEM = "98765432"
_MARKER_SPACING = 1000


def _marker(probe: int, index: int) -> str:
    return f"{_MARKER_STEM}{probe}{index:03d}000"


_INNER = Header._fields.index("inner")
_EXTRA = Header._fields.index("extra")
# what every kind of value is made of (decimal and hex digits): deleted, they
# leave the same bucket key for all texts of one shape
_VALUE_BYTES = b"0123456789ABCDEFabcdef"
_BUCKET_SIZE = 4

ValueKind = tuple[str, str]
"""The text a value's match consumes before it (`=` in `ID=4`) and a regex for the value itself."""


@dataclass(frozen=True, slots=True)
class _Shape:
    """A field text with its values taken out, as the grammar read it.

    `base` holds the `Header` values the grammar made of the text with markers
    for the values; `numbers` and `texts` say which header field (by position)
    each value (by its order in the text) goes back into, a number with the
    constant the grammar added to it; `extras`, which of the fields tracelog
    does not know (`Header.extra`, by position) takes which value as its text;
    `inner` is the shape of the packet an ICMP error quotes.
    """

    base: tuple[Any, ...]
    numbers: tuple[tuple[int, int, int], ...]
    texts: tuple[tuple[int, int], ...]
    extras: tuple[tuple[int, int], ...]
    inner: _Shape | None

    def header(self, values: tuple[str, ...]) -> Header:
        fields = list(self.base)
        for field, index, offset in self.numbers:
            fields[field] = int(values[index]) + offset
        for field, index in self.texts:
            fields[field] = values[index]
        if self.extras:
            extra = list(fields[_EXTRA])
            for pair, index in self.extras:
                extra[pair] = (extra[pair][0], values[index])
            fields[_EXTRA] = tuple(extra)
        if self.inner is not None:
            fields[_INNER] = self.inner.header(values)
        return build(Header, fields)

    def indices(self) -> list[int]:
        """Which values this shape puts back, by order (inner packet included)."""
        inner = self.inner.indices() if self.inner is not None else []
        put_back = [index for _, index, _ in self.numbers] + [index for _, index in self.texts + self.extras]
        return put_back + inner


Known = tuple[re.Pattern[str], _Shape | None]
"""A shape's regex and how its values go back; None for a shape the grammar reads every time."""


def _template(header: Header, count: int) -> _Shape:
    """Where the `count` markers of reading 1 landed in `header`, whole or plus a constant."""
    first = int(_marker(1, 0))

    def marker_index(text: str) -> int | None:
        if not (text.startswith(_MARKER_STEM + "1") and text.isdecimal()):
            return None
        index, rest = divmod(int(text) - first, _MARKER_SPACING)
        return index if not rest and 0 <= index < count else None

    numbers, texts = [], []
    for field, value in enumerate(header):
        if type(value) is int and 0 <= value - first < count * _MARKER_SPACING:
            numbers.append((field, *divmod(value - first, _MARKER_SPACING)))
        elif type(value) is str and (index := marker_index(value)) is not None:
            texts.append((field, index))
    extras = tuple(
        (pair, index) for pair, (_, text) in enumerate(header.extra) if (index := marker_index(text)) is not None
    )
    inner = _template(header.inner, count) if header.inner is not None else None
    return _Shape(tuple(header), tuple(numbers), tuple(texts), extras, inner)


def _split_values(parts: list[str | None], kinds: tuple[ValueKind, ...]) -> list[tuple[ValueKind, str]]:
    """Per value of a split text (`re.split` with one group per kind): its kind and the piece after it."""
    width = len(kinds)
    return [
        (
            next(kind for kind, value in zip(kinds, parts[start : start + width], strict=True) if value is not None),
            str(parts[start + width]),
        )
        for start in range(1, len(parts), width + 1)
    ]


def shape_pattern(parts: list[str | None], kinds: tuple[ValueKind, ...]) -> re.Pattern[str]:
    """The regex of a split text's shape: its pieces verbatim, each value a group of its kind."""
    values = (
        f"{re.escape(delimiter)}({value}){re.escape(piece)}"
        for (delimiter, value), piece in _split_values(parts, kinds)
    )
    return re.compile(re.escape(str(parts[0])) + "".join(values))


def _remember(memo: dict[Any, Any], limit: int, key: Any, value: Any) -> None:
    if len(memo) >= limit:
        memo.clear()
    memo[key] = value


class ShapeMemo:
    """Field text → `Header`, with the grammar (`read`) run once per shape.

    `values` finds the values: each of its groups captures one kind of value,
    and `kinds` gives, per group, the text its match consumed before the value
    (`=` in `ID=4`), which goes back in front of a marker, and a regex for the
    value.  `read` turns a field text into a `Header`, or None when it cannot
    (the caller's own path then reports why).  The same text coming back
    within a packet is answered from a small memo; shapes are few and costly
    to read again, so many more of them are kept.
    """

    def __init__(
        self,
        values: re.Pattern[str],
        kinds: tuple[ValueKind, ...],
        read: Callable[[str], Header | None],
        texts_kept: int = 1 << 12,
        shapes_kept: int = 1 << 14,
    ) -> None:
        self._values, self._kinds, self._read = values, kinds, read
        self._texts_kept, self._shapes_kept = texts_kept, shapes_kept
        self._headers: dict[str, Header] = {}
        self._buckets: dict[tuple[str, bytes], list[Known]] = {}

    def header(self, text: str) -> Header | None:
        """The header of a field text: the same text as a step before, or a known shape with new values."""
        header = self._headers.get(text)
        if header is not None:
            return header
        key = self._bucket_key(text)
        bucket = self._buckets.get(key)
        match, shape = self._match(text, bucket) if bucket else (None, None)
        if match is None:
            pattern, shape = self._learn(self._values.split(text))
            match = pattern.fullmatch(text)
            if bucket is None:
                bucket = []
                _remember(self._buckets, self._shapes_kept, key, bucket)
            bucket.insert(0, (pattern, shape))
            del bucket[_BUCKET_SIZE:]
        header = self._read(text) if shape is None or match is None else shape.header(match.groups())
        if header is not None and header.partial is None:
            _remember(self._headers, self._texts_kept, text, header)
        return header

    def _bucket_key(self, text: str) -> tuple[str, bytes]:
        """What every text of a shape shares: the text before its first value, and the text without values."""
        first = self._values.search(text)
        head = text if first is None else text[: first.start()]
        return head, text.encode(errors="surrogatepass").translate(None, _VALUE_BYTES)

    @staticmethod
    def _match(text: str, bucket: list[Known]) -> tuple[re.Match[str] | None, _Shape | None]:
        for pattern, shape in bucket:
            match = pattern.fullmatch(text)
            if match is not None:
                return match, shape
        return None, None

    def _learn(self, parts: list[str | None]) -> Known:
        """The regex and shape of a split text; no shape where a value does not go back cleanly.

        The grammar reads the text twice, with two sets of markers for the
        values: the shape learned from the first must predict the second.
        """
        pattern = shape_pattern(parts, self._kinds)
        values = _split_values(parts, self._kinds)
        if any(_MARKER_STEM in piece for piece in [str(parts[0]), *(piece for _, piece in values)]):
            return pattern, None  # a marker-like word outside the values could pass for one
        first, second = (
            self._read(
                str(parts[0])
                + "".join(
                    delimiter + _marker(probe, index) + piece for index, ((delimiter, _), piece) in enumerate(values)
                )
            )
            for probe in (1, 2)
        )
        if first is None or second is None or first.partial is not None:
            # a damaged text is read every time: its unknown addresses are its own
            return pattern, None
        shape = _template(first, len(values))
        if sorted(shape.indices()) != list(range(len(values))):
            return pattern, None
        predicted = shape.header(tuple(_marker(2, index) for index in range(len(values))))
        return pattern, shape if predicted == second else None
