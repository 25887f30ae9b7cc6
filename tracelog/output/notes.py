"""What a run says on stderr when it ends: lines read, packets found, what was skipped and not understood."""

from __future__ import annotations

from tracelog.pipeline import RunStats
from tracelog.wording import plural


def summary_lines(stats: RunStats, sources: int) -> list[str]:
    """The run summary for stderr: what was read, understood, skipped and not understood."""
    skipped = ", ".join(f"{count} {skip.value}" for skip, count in stats.skipped.items())
    lines = [
        f"tracelog: {plural(stats.lines, 'line')} from {plural(sources, 'input')}: "
        f"{plural(stats.events, 'TRACE event')} in {plural(stats.packets, 'packet')}"
        + (f"; skipped {skipped}" if skipped else "")
    ]
    for message, count in stats.caveats.items():
        lines.append(f"tracelog: note: {plural(count, 'line')}: {message} (first at {stats.caveat_examples[message]})")
    lines.extend(f"tracelog: {problem}" for problem in stats.unreadable)
    if stats.bad:
        lines.append(f"tracelog: {plural(stats.bad, 'TRACE line')} not understood:")
        lines.extend(f"  {bad.location}: {bad.reason}" for bad in stats.bad_examples)
        if stats.bad > len(stats.bad_examples):
            lines.append(f"  ... and {stats.bad - len(stats.bad_examples)} more")
    return lines
