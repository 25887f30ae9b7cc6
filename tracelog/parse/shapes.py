"""Field texts memoised by shape: the grammar reads each shape once, then values go back in.

The field texts of a log differ from packet to packet mostly in their values
(IP ids, lengths, ports, sequence numbers, TCP option bytes).  A `ShapeMemo`
takes those values out with a regex, has the grammar read the rest once with
numbered markers where the values were, and notes which `Header` field each
marker landed in; the next text of that shape only needs its values put back.
Every marker must land whole in exactly one field, as a number or as text: a
value that ends up anywhere else (in an unknown field, changed by a rewrite,
an interface called `7`) makes the shape one the grammar reads every time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tracelog.events import Header, build

_MARKER = "987654321{:06d}"
_MARKER_STEM = _MARKER[:9]
_INNER = Header._fields.index("inner")


@dataclass(frozen=True, slots=True)
class _Shape:
    """A field text with its values taken out, as the grammar read it.

    `base` holds the `Header` values the grammar made of the text with markers
    for the values; `numbers` and `texts` say which header field (by position)
    each value (by its index in the split) goes back into; `inner` is the
    shape of the packet an ICMP error quotes.
    """

    base: tuple[Any, ...]
    numbers: tuple[tuple[int, int], ...]
    texts: tuple[tuple[int, int], ...]
    inner: _Shape | None

    def header(self, parts: list[str]) -> Header:
        values = list(self.base)
        for field, index in self.numbers:
            values[field] = int(parts[index])
        for field, index in self.texts:
            values[field] = parts[index]
        if self.inner is not None:
            values[_INNER] = self.inner.header(parts)
        return build(Header, values)

    def indices(self) -> list[int]:
        """Where the values this shape puts back are, in the split (inner packet included)."""
        inner = self.inner.indices() if self.inner is not None else []
        return [index for _, index in self.numbers + self.texts] + inner


def _template(header: Header, markers: dict[str, int]) -> _Shape:
    numbers = tuple((field, markers[str(value)]) for field, value in enumerate(header)
                    if type(value) is int and str(value) in markers)
    texts = tuple((field, markers[value]) for field, value in enumerate(header)
                  if type(value) is str and value in markers)
    inner = _template(header.inner, markers) if header.inner is not None else None
    return _Shape(tuple(header), numbers, texts, inner)


def _remember(memo: dict[Any, Any], limit: int, key: Any, value: Any) -> None:
    if len(memo) >= limit:
        memo.clear()
    memo[key] = value


class ShapeMemo:
    """Field text → `Header`, with the grammar (`read`) run once per shape.

    `values` finds the values: each of its groups captures one kind of value,
    and `delimiters` gives, per group, the text its match consumed before the
    value (`=` in `ID=4`), which goes back in front of a marker.  `read`
    turns a field text into a `Header`, or None when it cannot (the caller's
    own path then reports why).  The same text coming back within a packet
    is answered from a small memo; shapes are few and costly to read again,
    so many more of them are kept.
    """

    def __init__(
        self,
        values: re.Pattern[str],
        delimiters: tuple[str, ...],
        read: Callable[[str], Header | None],
        texts_kept: int = 1 << 12,
        shapes_kept: int = 1 << 14,
    ) -> None:
        self._values, self._delimiters, self._read = values, delimiters, read
        self._stride = values.groups + 1
        self._texts_kept, self._shapes_kept = texts_kept, shapes_kept
        self._headers: dict[str, Header] = {}
        self._shapes: dict[tuple[str, ...], _Shape | None] = {}

    def header(self, text: str) -> Header | None:
        """The header of a field text: the same text as a step before, or a known shape with new values."""
        header = self._headers.get(text)
        if header is not None:
            return header
        parts = self._values.split(text)
        pieces = tuple(parts[:: self._stride])
        try:
            shape = self._shapes[pieces]
        except KeyError:
            shape = self._learn(parts)
            _remember(self._shapes, self._shapes_kept, pieces, shape)
        header = self._read(text) if shape is None else shape.header(parts)
        if header is not None:
            _remember(self._headers, self._texts_kept, text, header)
        return header

    def _learn(self, parts: list[str]) -> _Shape | None:
        """The shape of a split text; None where a value does not go back cleanly."""
        if any(_MARKER_STEM in piece for piece in parts[:: self._stride]):
            return None  # a marker-like word outside the values could pass for one
        markers: dict[str, int] = {}
        text = parts[0]
        for start in range(1, len(parts), self._stride):
            group = next(group for group in range(self._stride - 1) if parts[start + group] is not None)
            markers[_MARKER.format(start + group)] = start + group
            text += self._delimiters[group] + _MARKER.format(start + group) + parts[start + self._stride - 1]
        header = self._read(text)
        if header is None:
            return None
        shape = _template(header, markers)
        return shape if sorted(shape.indices()) == list(markers.values()) else None
