"""Field texts memoised by shape: the grammar reads each shape once, then values go back in.

The field texts of a log differ from packet to packet mostly in their values
(IP ids, lengths, ports, sequence numbers, TCP option bytes, addresses, MAC
headers).  A `ShapeMemo` takes those values out with a regex, has the grammar
read the rest once with numbered markers where the values were (each kind of
value its own kind of marker: a number, an address, MAC bytes), and notes
which `Header` field each marker landed in; the next text of that shape only
needs its values put back.  Every marker must land in a field: whole, as a
number, an address or as text (the text of a field tracelog does not know
included), or as a number plus a constant the grammar added (IPv6 lengths);
and a second reading with other markers must be what the first predicts.  An
address put back is read as the grammar reads one; a value that is no
address (`SRC=1.2.3.999`) sends its text to the grammar.  A value that ends up anywhere else (transformed,
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

What a memo costs stays bounded whatever the texts hold: a text longer than
`MAX_SHAPED_TEXT` is read by the grammar and kept nowhere, and each memo is
cleared when it would hold more texts or characters than its budget.  A log's
own shapes (a few hundred) are learned the first time they come; past
`EAGER_SHAPES`, a shape is learned the second time a text of its bucket
comes, so that a flood of texts whose shape never comes back (a new interface
name on every line, damage typed by hand) costs one reading by the grammar
each, not the three of learning and using it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Any, Generic, NamedTuple, TypeVar

from tracelog.events import Header, build
from tracelog.parse.fields import ip_address

# Marker `i` of reading `probe` (1 or 2): 98765432, the probe, i, 000.  The
# zeros leave room for a constant the grammar adds to a value (nft's and
# xtables' IPv6 `length` + 40), recognised as marker + offset below 1000.
_MARKER_STEM = "98765432"
_MARKER_SPACING = 1000


def number_marker(probe: int, index: int) -> str:
    """Marker `index` of reading `probe` for a number (decimal digits, so hex digits too)."""
    return f"{_MARKER_STEM}{probe}{index:03d}000"


def ipv4_marker(probe: int, index: int) -> str:
    """Marker `index` of reading `probe` for an IPv4 address, as `ipaddress` spells it."""
    return f"240.{probe}.{index >> 8}.{index & 255}"


def ipv6_marker(probe: int, index: int) -> str:
    """Marker `index` of reading `probe` for an IPv6 address, as `ipaddress` spells it (`::0` it spells `::`)."""
    return f"2001:db8:9876:{probe}::{index + 1:x}"


def mac_marker(probe: int, index: int) -> str:
    """Marker `index` of reading `probe` for MAC header bytes."""
    return f"98:76:54:{probe:02x}:{index >> 8:02x}:{index & 255:02x}"


# what the values of each kind look like (no capturing group: a shape regex has one per value);
# a number has at most 20 digits, as the grammars read one
NUMBER_VALUE = r"\d{1,20}"
IPV4_VALUE = r"\d{1,3}(?:\.\d{1,3}){3}"
IPV6_VALUE = r"[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*"
MAC_VALUE = r"[0-9A-Fa-f]{1,2}(?::[0-9A-Fa-f]{1,2})+"
_MAC_BYTES = re.compile(MAC_VALUE)
VALUE_START = "(?=[0-9A-Fa-f:])"
"""What every value's first character is: put before a values regex's alternatives, it spares them elsewhere."""
# Cheaper regexes a shape's regex matches addresses and MAC bytes with (a
# quarter of a line's matching time, exactly); what they let through that is
# none is refused when it is read (`read_ipv4`, `read_ipv6`, `read_mac`).
_LOOSE_ADDRESS = "[0-9A-Fa-f:.]+"
_LOOSE_MAC = "[0-9A-Fa-f:]+"
_READS_KEPT = 1 << 12
T = TypeVar("T")

MAX_SHAPED_TEXT = 1 << 10
"""The longest field text a memo keeps (real ones: a few hundred characters); a longer one is read every time."""
# What each memo may hold, in characters of its keys: a shape (its regex, its
# template) costs about ten times its text.
_TEXT_CHARACTERS = 1 << 20
_SHAPE_CHARACTERS = 1 << 20
EAGER_SHAPES = 1 << 9
"""Shapes a memo learns at first sight; later ones, at the second."""


_INNER = Header._fields.index("inner")
_EXTRA = Header._fields.index("extra")
# what every kind of value is made of (decimal and hex digits): deleted, they
# leave the same bucket key for all texts of one shape
_VALUE_BYTES = b"0123456789ABCDEFabcdef"
_BUCKET_SIZE = 4


@dataclass(frozen=True, slots=True)
class ValueReader:
    """How a kind of value is read as the grammar reads it (`read`: ValueError for a text it would not read so).

    What it made of the texts it read lately is `kept`, so that a value seen
    before costs a lookup (shapes look there first, without a call).
    """

    read: Callable[[str], Any]
    kept: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __call__(self, text: str) -> Any:
        value = self.kept.get(text)
        if value is None:
            if len(self.kept) >= _READS_KEPT:
                self.kept.clear()
            value = self.kept[text] = self.read(text)
        return value


def _of_version(version: int) -> Callable[[str], Any]:
    def read(text: str) -> Any:
        address = ip_address(text)
        if address.version != version:
            raise ValueError(f"{text!r} is no IPv{version} address")
        return address

    return read


def _mac_bytes(text: str) -> str:
    if _MAC_BYTES.fullmatch(text) is None:
        raise ValueError(f"{text!r} is no MAC header")
    return text


IPV4_READER = ValueReader(_of_version(4))
"""An IPv4 address as the grammar reads one."""
IPV6_READER = ValueReader(_of_version(6))
"""An IPv6 address as the grammar reads one."""
MAC_READER = ValueReader(_mac_bytes)
"""MAC header bytes as the grammar reads them."""


class ValueKind(NamedTuple):
    """A kind of value: the text its match consumes before it (`=` in `ID=4`), a regex for it, its markers.

    A value the grammar keeps as a number or as its text is found in the
    header by its marker; one it turns into something else (an address)
    comes with `read`, which does what the grammar does to it, and `loose`,
    a cheaper regex for shape regexes to match it with, `read` refusing
    what it lets through that `pattern` would not.
    """

    before: str
    pattern: str
    marker: Callable[[int, int], str] = number_marker
    read: ValueReader | None = None
    loose: str | None = None


def address_values(*keys: str) -> str:
    """A values regex's part for the IPv4 and IPv6 addresses after any of `keys` (each a fixed text): two groups."""
    after = "|".join(f"(?<={re.escape(key)})" for key in keys)
    return f"(?:{after})(?:({IPV4_VALUE})|({IPV6_VALUE}))"


def address_kinds(before: str) -> tuple[ValueKind, ValueKind]:
    """The kinds of the two groups of `address_values`, whose matches consume `before` in front of them."""
    return (
        ValueKind(before, IPV4_VALUE, ipv4_marker, IPV4_READER, _LOOSE_ADDRESS),
        ValueKind(before, IPV6_VALUE, ipv6_marker, IPV6_READER, _LOOSE_ADDRESS),
    )


def mac_kind(before: str) -> ValueKind:
    """The kind of MAC header bytes (`02:42:ac:12:00:02:…`), whose matches consume `before` in front of them."""
    return ValueKind(before, MAC_VALUE, mac_marker, MAC_READER, _LOOSE_MAC)


@dataclass(frozen=True, slots=True)
class _Shape:
    """A field text with its values taken out, as the grammar read it.

    `base` holds the `Header` values the grammar made of the text with markers
    for the values; `numbers`, `texts` and `reads` say which header field (by
    position) each value (by its order in the text) goes back into, a number
    with the constant the grammar added to it, a value its kind reads with
    the function given; `extras`, which of the fields tracelog does not know
    (`Header.extra`, by position) takes which value as its text; `inner` is
    the shape of the packet an ICMP error quotes.
    """

    base: tuple[Any, ...]
    numbers: tuple[tuple[int, int, int], ...]
    texts: tuple[tuple[int, int], ...]
    reads: tuple[tuple[int, int, Callable[[str], Any], ValueReader], ...]
    extras: tuple[tuple[int, int], ...]
    inner: _Shape | None

    def header(self, values: tuple[str, ...]) -> Header:
        """The header of a text of this shape with these values; ValueError for a value its kind does not read."""
        fields = list(self.base)
        for field, index, offset in self.numbers:
            fields[field] = int(values[index]) + offset
        for field, index in self.texts:
            fields[field] = values[index]
        for field, index, kept, reader in self.reads:  # a value read before is looked up without a call
            text = values[index]
            fields[field] = kept(text) or reader(text)
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
        put_back = [index for _, index, _ in self.numbers] + [index for _, index, _, _ in self.reads]
        return put_back + [index for _, index in self.texts + self.extras] + inner


Known = tuple[re.Pattern[str], _Shape | None]
"""A shape's regex and how its values go back; None for a shape the grammar reads every time."""


Read = tuple[int, ValueReader]
"""A value's index, and how its kind reads it."""


def _template(header: Header, count: int, markers: dict[str, int], reads: dict[Any, Read]) -> _Shape:
    """Where the `count` markers of reading 1 landed in `header`, whole, plus a constant or as their kind reads them.

    `markers` gives the index of each marker kept as text or a number by its
    spelling, `reads` each of the others by what its kind's `read` makes of it.
    """
    first = int(number_marker(1, 0))
    numbers, texts, read = [], [], []
    for field, value in enumerate(header):
        if type(value) is int and 0 <= value - first < count * _MARKER_SPACING:
            numbers.append((field, *divmod(value - first, _MARKER_SPACING)))
        elif type(value) is str and (index := markers.get(value)) is not None:
            texts.append((field, index))
        elif type(value) in _READ_TYPES and (found := reads.get(value)) is not None:
            index, reader = found
            read.append((field, index, reader.kept.get, reader))
    extras = tuple(
        (pair, index) for pair, (_, text) in enumerate(header.extra) if (index := markers.get(text)) is not None
    )
    inner = _template(header.inner, count, markers, reads) if header.inner is not None else None
    return _Shape(tuple(header), tuple(numbers), tuple(texts), tuple(read), extras, inner)


# what a kind's `read` makes of a value: an address as the grammar reads one (not an unknown one, of a
# subclass), MAC bytes as text
_READ_TYPES = (IPv4Address, IPv6Address, str)


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
        f"{re.escape(kind.before)}({kind.loose or kind.pattern}){re.escape(piece)}"
        for kind, piece in _split_values(parts, kinds)
    )
    return re.compile(re.escape(str(parts[0])) + "".join(values))


K = TypeVar("K")
V = TypeVar("V")


class BoundedMemo(Generic[K, V]):
    """A memo of texts, cleared when it would hold more than `entries` keys or `characters` of them.

    Whatever the input holds, what is kept stays within both bounds; the
    texts that come back often are learned again at once.
    """

    def __init__(self, entries: int, characters: int) -> None:
        self._entries, self._characters = entries, characters
        self._kept: dict[K, V] = {}
        self._size = 0
        self.get = self._kept.get

    def put(self, key: K, value: V, size: int) -> None:
        """Keep `value` for `key`, whose text is `size` characters long."""
        if len(self._kept) >= self._entries or self._size + size > self._characters:
            self._kept.clear()
            self._size = 0
        self._kept[key] = value
        self._size += size


class ShapeMemo:
    """Field text → `Header`, with the grammar (`read`) run once per shape.

    `values` finds the values: each of its groups captures one kind of value,
    and `kinds` gives, per group, its `ValueKind`.  `read` turns a field text into a `Header`, or None when it
    cannot (the caller's own path then reports why).  The same text coming
    back within a packet is answered from a small memo; shapes are few and
    costly to read again, so many more of them are kept.
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
        self._eager = EAGER_SHAPES
        self._headers: BoundedMemo[str, Header] = BoundedMemo(texts_kept, _TEXT_CHARACTERS)
        self._buckets: BoundedMemo[tuple[str, bytes], list[Known]] = BoundedMemo(shapes_kept, _SHAPE_CHARACTERS)

    def header(self, text: str) -> Header | None:
        """The header of a field text: the same text as a step before, or a known shape with new values."""
        header = self._headers.get(text)
        if header is not None:
            return header
        size = len(text)
        if size > MAX_SHAPED_TEXT:
            return self._read(text)
        key = self._bucket_key(text)
        bucket = self._buckets.get(key)
        match, shape = self._match(text, bucket) if bucket else (None, None)
        if bucket is None:
            bucket = []
            self._buckets.put(key, bucket, 2 * size)
            learn = self._eager > 0  # else seen once: learned if its bucket comes back
            self._eager -= learn
        else:
            learn = match is None
        if learn:
            pattern, shape = self._learn(self._values.split(text))
            match = pattern.fullmatch(text)
            bucket.insert(0, (pattern, shape))
            del bucket[_BUCKET_SIZE:]
        try:
            header = self._read(text) if shape is None or match is None else shape.header(match.groups())
        except ValueError:  # a value its kind does not read (an address that is none): the grammar says what it is
            header = self._read(text)
        if header is not None and header.partial is None:
            self._headers.put(text, header, size)
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
        markers = [[kind.marker(probe, index) for index, (kind, _) in enumerate(values)] for probe in (1, 2)]
        verbatim = " ".join([str(parts[0]), *(piece for _, piece in values)])
        if _MARKER_STEM in verbatim or any(marker in verbatim for marker in markers[0] + markers[1]):
            return pattern, None  # a marker-like word outside the values could pass for one
        first, second = (
            self._read(
                str(parts[0])
                + "".join(kind.before + marker + piece for marker, (kind, piece) in zip(spelled, values, strict=True))
            )
            for spelled in markers
        )
        if first is None or second is None or first.partial is not None:
            # a damaged text is read every time: its unknown addresses are its own
            return pattern, None
        spelled: dict[str, int] = {}
        reads: dict[Any, Read] = {}
        for index, (marker, (kind, _)) in enumerate(zip(markers[0], values, strict=True)):
            if kind.read is None:
                spelled[marker] = index
            else:
                reads[kind.read(marker)] = (index, kind.read)
        shape = _template(first, len(values), spelled, reads)
        if sorted(shape.indices()) != list(range(len(values))):
            return pattern, None
        try:
            predicted = shape.header(tuple(markers[1]))
        except ValueError:
            return pattern, None
        return pattern, shape if predicted == second else None
