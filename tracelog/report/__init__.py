"""`tracelog report`: one self-contained HTML page showing where each packet went, and its pieces.

    import sys, tracelog
    from tracelog.report import write_page
    with open("trace.html", "w", encoding="utf-8") as out:
        write_page(tracelog.read_packets(["kern.log"], rules=["iptables-save.txt"]), out, title="kern.log")

`packet_svg(record)` is one packet's hook diagram as a standalone SVG, and
`redact_records` replaces addresses, MACs and names in any stream of records.
"""

from __future__ import annotations

from tracelog.report.diagram import packet_svg
from tracelog.report.page import write_page
from tracelog.report.redact import Redactor, redact_records

__all__ = ["Redactor", "packet_svg", "redact_records", "write_page"]
