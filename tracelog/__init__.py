"""tracelog: readable netfilter TRACE output, one timeline per packet.

The library's way in is `read_packets` and `summarise` (see `tracelog.reading`); it is
imported on first use, so that `tracelog enable` and `--help` start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tracelog.reading import Reading, read_packets, summarise

__version__ = "0.1.0"
__all__ = ["Reading", "__version__", "read_packets", "summarise"]


def __getattr__(name: str) -> object:
    """`tracelog.read_packets`, `tracelog.summarise` and `tracelog.Reading`, imported when first asked for."""
    if name in ("Reading", "read_packets", "summarise"):
        from tracelog import reading

        return getattr(reading, name)
    raise AttributeError(f"module 'tracelog' has no attribute {name!r}")
