"""How an output format takes packet records: prepared where they are made, finished with their numbers.

A big file is read by several processes (`tracelog.parallel`): each prepares
the output of the packets it finds, and only the packet and flow numbers wait
for the one process that sees every packet in order
(`tracelog.records.numbering`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, NamedTuple, TextIO, TypeVar

from tracelog.records.numbering import keep_record, number_record
from tracelog.records.packet import PacketRecord

T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True, slots=True)
class Format(Generic[T, U]):
    """An output's two halves: `prepare` a record where it is made, `finish` it with its packet and flow numbers."""

    prepare: Callable[[PacketRecord], T]
    finish: Callable[[T, int, int], U]


class UnnumberedText(NamedTuple):
    """A packet's text but for its packet and flow numbers: the text before, between and after them."""

    before: str
    between: str
    after: str

    def finish(self, packet: int, flow: int) -> str:
        """The whole text, with the numbers in their places."""
        return f"{self.before}{packet}{self.between}{flow}{self.after}"


RECORDS: Format[PacketRecord, PacketRecord] = Format(keep_record, number_record)
"""Whole records, for the outputs that take them as they are (and for `tracelog.read_packets`)."""


def write_texts(texts: Iterable[str], out: TextIO) -> None:
    """Write each packet's text as it comes, flushed so that live readers see it at once."""
    for text in texts:
        out.write(text)
        out.flush()
