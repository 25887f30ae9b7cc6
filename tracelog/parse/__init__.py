"""The parse layer: log lines → `TraceEvent`s (and skips, caveats, bad lines)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from tracelog.events import SourceLine
from tracelog.parse.kernel import parse_kernel_line
from tracelog.parse.nftmonitor import NftMonitorParser
from tracelog.parse.outcome import BadLine, Caveat, Outcome, Skip
from tracelog.parse.ulogd import parse_json_line, parse_logemu_line
from tracelog.parse.xtables import XtablesMonitorParser

__all__ = ["BadLine", "Caveat", "LineParser", "Outcome", "Skip"]

# How each format's lines start; anything else is a kernel log line.  One
# anchored match per line, which fails within the first characters of a
# kernel log line (at the `kernel:` tag of a syslog one), so the kernel path
# pays about a microsecond a line for the other formats.
_FORMATS = re.compile(
    r"(?P<nft>trace id )"
    r"|(?P<xtables>[ \t]*(?:PACKET|TRACE): \d+ [0-9a-f]+ )"
    r"|(?P<json>[ \t]*\{)"
    # ulogd LOGEMU: a syslog time and host, then the record, with no program tag
    r"|(?P<logemu>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ TRACE: )"
)

# a key every ulogd JSON record of an NFLOG rule with a prefix has
_ULOGD_JSON = '"oob.prefix"'


class LineParser:
    """Parses the lines of one run, whatever their format, line by line.

    One instance per run, because some formats spread one event over several
    lines (a header line, then step lines that refer to it by trace id).
    Each line's format is recognised from its own start, so one input may
    mix formats (`cat dmesg.log xtables.log | tracelog parse`).  `year`
    completes year-less syslog time stamps.
    """

    def __init__(self, year: int) -> None:
        self._year = year
        self._xtables = XtablesMonitorParser()
        self._nft = NftMonitorParser()

    def parse(self, line: SourceLine) -> Iterator[Outcome]:
        """Parse one line into zero or more outcomes."""
        match = _FORMATS.match(line.text)
        if match is None:
            return parse_kernel_line(line, self._year)
        kind = match.lastgroup
        if kind == "nft":
            return self._nft.parse(line)
        if kind == "xtables":
            return self._xtables.parse(line)
        if kind == "json":
            # other JSON logs (journalctl -o json) stay with the kernel parser, as before
            return parse_json_line(line) if _ULOGD_JSON in line.text else parse_kernel_line(line, self._year)
        return parse_logemu_line(line, self._year)
