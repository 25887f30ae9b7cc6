"""The typed event builders take exactly their record's fields, in order, with their types."""

from __future__ import annotations

from typing import Any, get_args, get_type_hints

import pytest

from tracelog import events


@pytest.mark.parametrize(
    ("record", "fields"),
    [
        (events.SourceLine, events.SourceLineFields),
        (events.Stamp, events.StampFields),
        (events.TraceEvent, events.TraceEventFields),
    ],
)
def test_each_builders_tuple_is_its_records_fields(record: type[Any], fields: Any) -> None:
    assert get_args(fields) == tuple(get_type_hints(record).values())
    assert len(get_args(fields)) == len(record._fields)


def test_a_built_event_is_the_constructors() -> None:
    origin = events.new_source_line(events.SourceLine, ("kern.log", 3, "text"))
    stamp = events.new_stamp(events.Stamp, (12.5, None, False))
    header = events.Header("ipv4", events.unknown_address("ipv4"), events.unknown_address("ipv4"), "TCP")
    fields: events.TraceEventFields = (
        "raw",
        "PREROUTING",
        "rule",
        header,
        1,
        None,
        None,
        stamp,
        None,
        None,
        None,
        None,
        None,
        origin,
    )
    assert events.new_event(events.TraceEvent, fields) == events.TraceEvent(
        "raw", "PREROUTING", "rule", header, 1, stamp=stamp, origin=origin
    )
    assert origin == events.SourceLine("kern.log", 3, "text")
    assert stamp == events.Stamp(12.5)
