"""What parsing one line can give besides an event: a skip, a caveat, a bad line."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from tracelog.events import SourceLine, TraceEvent


class Skip(enum.Enum):
    """A line that is not a TRACE event; counted, never reported as a step."""

    OTHER = "other"
    LOOKALIKE = "lookalike"
    # a traced packet that is not IPv4 or IPv6 (ARP in arp, bridge or netdev tables)
    NON_IP = "non-IP"


@dataclass(frozen=True, slots=True)
class Caveat:
    """A line that was understood, with something the user should know."""

    origin: SourceLine
    message: str


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that looked like a TRACE event but could not be parsed."""

    origin: SourceLine
    column: int | None
    reason: str

    @property
    def location(self) -> str:
        where = f"{self.origin.source}:{self.origin.line}"
        return f"{where}:{self.column}" if self.column else where

    def with_caret(self) -> str:
        """The line with a caret under the column where parsing stopped."""
        if self.column is None:
            return self.origin.text
        return f"{self.origin.text}\n{' ' * (self.column - 1)}^"


Outcome = TraceEvent | Skip | Caveat | BadLine
