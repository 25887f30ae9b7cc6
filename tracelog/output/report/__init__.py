"""`tracelog report`: one self-contained HTML page showing where each packet went, and its pieces.

    import sys, tracelog
    from tracelog.output.report import write_page
    with open("trace.html", "w", encoding="utf-8") as out:
        write_page(tracelog.read_packets(["kern.log"], rules=["iptables-save.txt"]), out, title="kern.log")

`packet_svg(record)` is one packet's hook diagram as a standalone SVG, and
`redact_records` replaces addresses, MACs and names in any stream of records.
`report_target` and `write_report` are what the `report` command writes with:
to stdout or to a file renamed into place once whole.
"""

from __future__ import annotations

from tracelog.output.redact import Redactor, redact_records
from tracelog.output.report.diagram import packet_svg
from tracelog.output.report.output import report_target, write_report
from tracelog.output.report.page import write_page

__all__ = ["Redactor", "packet_svg", "redact_records", "report_target", "write_page", "write_report"]
