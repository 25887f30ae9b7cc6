"""Analysis with pandas: steps, packets, flows, rule hits and drops, behind declared schemas.

pandas is imported inside the functions that need it, so commands that never
analyse (`tracelog --help`, `tracelog enable`) start fast.  The row builders
are plain functions: the CSV renderer streams them without pandas.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from tracelog.records.packet import TERMINAL_VERDICTS, PacketRecord, deciding_step
from tracelog.wording import decided_by, destination, endpoint, place, plural, position, reason_text

if TYPE_CHECKING:
    import pandas as pd

Row = dict[str, Any]
"""One row of a frame: a step or a packet, by column name."""

STEP_COLUMNS = (
    "packet",
    "step",
    "host",
    "family",
    "proto",
    "hook",
    "table",
    "chain",
    "kind",
    "rulenum",
    "handle",
    "time",
    "src",
    "dst",
    "sport",
    "dport",
    "in",
    "out",
    "physin",
    "physout",
    "rule",
    "verdict",
    "source",
    "line",
)
PACKET_COLUMNS = (
    "packet",
    "flow",
    "host",
    "family",
    "proto",
    "src",
    "dst",
    "sport",
    "dport",
    "src_name",
    "dst_name",
    "first_seen",
    "last_seen",
    "steps",
    "first_hook",
    "last_hook",
    "path",
    "rewrites",
    "verdict",
    "verdict_at",
    "verdict_rule",
    "verdict_by",
    "endpoint",
    "endpoint_name",
    "verdict_place",
    "verdict_reason",
    "service",
)
FLOW_COLUMNS = (
    "flow",
    "host",
    "proto",
    "client",
    "server",
    "packets",
    "requests",
    "replies",
    "path",
    "verdict",
    "verdict_at",
    "verdict_rule",
    "verdict_place",
)
SERVICE_COLUMNS = ("service", "address", "endpoint", "endpoint_name", "flows", "packets")
RULE_COLUMNS = ("table", "chain", "kind", "number", "rule", "verdict", "hits")
DROP_COLUMNS = (
    "verdict",
    "verdict_at",
    "verdict_rule",
    "packets",
    "flows",
    "example",
    "verdict_by",
    "verdict_place",
    "verdict_reason",
)


def step_rows(record: PacketRecord) -> list[Row]:
    """One row per step of a packet record, in `STEP_COLUMNS` order."""
    rows = []
    packet = {"packet": record["packet"], "host": record["host"], "family": record["family"], "proto": record["proto"]}
    for number, step in enumerate(record["steps"], start=1):
        fields: Mapping[str, Any] = step  # the columns it has, read by name
        row: Row = {**packet, **{key: fields[key] for key in STEP_COLUMNS if key in fields}, "step": number}
        rows.append({column: row.get(column) for column in STEP_COLUMNS})
    return rows


def hook_path(record: PacketRecord) -> list[str]:
    """The hooks a packet crossed, each once, in order."""
    path: list[str] = []
    for step in record["steps"]:
        hook = step["hook"]
        if hook and (not path or path[-1] != hook):
            path.append(hook)
    return path


def packet_row(record: PacketRecord) -> Row:
    """One row per packet, in `PACKET_COLUMNS` order."""
    path = hook_path(record)
    fields: Mapping[str, Any] = record  # the columns it has, read by name
    row = {column: fields.get(column) for column in PACKET_COLUMNS}
    decisive = deciding_step(record)
    row.update(
        verdict_rule=decisive["rule"] if decisive else None,
        verdict_by=decided_by(decisive) if decisive else None,
        verdict_place=place(decisive) if decisive else None,
        verdict_reason=reason_text(record),
        steps=len(record["steps"]),
        first_hook=path[0] if path else None,
        last_hook=path[-1] if path else None,
        path=" > ".join(path),
        rewrites="; ".join(f"{r['field']} {r['from']}>{r['to']}@{r['step']}" for r in record["rewrites"]),
    )
    return row


def steps_frame(records: Iterable[PacketRecord]) -> pd.DataFrame:
    """The steps frame: one row per step of every packet."""
    import pandas as pd

    rows = [row for record in records for row in step_rows(record)]
    return pd.DataFrame(rows, columns=list(STEP_COLUMNS))


def packets_frame(records: Iterable[PacketRecord]) -> pd.DataFrame:
    """The packets frame: one row per packet with its path, rewrites and verdict."""
    import pandas as pd

    return pd.DataFrame([packet_row(record) for record in records], columns=list(PACKET_COLUMNS))


@dataclass(slots=True)
class Summary:
    """What `tracelog summary` reports, gathered while packets stream past.

    Only one small row per packet and a counter per rule are kept, never the
    steps themselves, so a summary of a large log stays within memory.
    """

    packets: list[Row] = field(default_factory=list)
    hits: Counter[tuple[str, str, str, str, str, str]] = field(default_factory=Counter)

    def add(self, record: PacketRecord) -> None:
        self.packets.append(packet_row(record))
        for step in record["steps"]:
            number = position(step).removeprefix(f"{step['kind']} ")  # `3`, `handle 17`, or none
            key = (
                step["table"],
                step["chain"],
                step["kind"],
                "" if number == step["kind"] else number,
                step["rule"] or "",
                step["verdict"] or "",
            )
            self.hits[key] += 1

    def packets_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.packets, columns=list(PACKET_COLUMNS))

    def rules_frame(self) -> pd.DataFrame:
        """Hits per rule (or policy, or chain end), most hit first."""
        import pandas as pd

        rows = [(*key, count) for key, count in self.hits.items()]
        frame = pd.DataFrame(rows, columns=list(RULE_COLUMNS))
        return frame.sort_values(["hits", "table", "chain"], ascending=[False, True, True], ignore_index=True)

    def report(self) -> Report:
        """Every table of the summary and its answer, each computed once."""
        packets = self.packets_frame()
        flows, drops, services = _flows(packets), _drops(packets), _services(packets)
        answer = _answer(packets, flows, drops, services)
        return Report(packets, flows, self.rules_frame(), drops, services, answer)


@dataclass(frozen=True, slots=True)
class Report:
    """The summary's tables (packets, flows, rules, drops, services) and its one-paragraph answer."""

    packets: pd.DataFrame
    flows: pd.DataFrame
    rules: pd.DataFrame
    drops: pd.DataFrame
    services: pd.DataFrame
    answer: str

    def tables(self) -> dict[str, pd.DataFrame]:
        return {
            "flows": self.flows,
            "rules": self.rules,
            "drops": self.drops,
            "packets": self.packets,
            "services": self.services,
        }


def _flows(packets: pd.DataFrame) -> pd.DataFrame:
    """One row per flow: who started it, packets each way, the first packet's path, its fate.

    A flow's fate is its first drop or reject if it has one, else what its
    last packet was told.
    """
    import pandas as pd

    if packets.empty:
        return pd.DataFrame(columns=list(FLOW_COLUMNS))
    fate = ["verdict", "verdict_at", "verdict_rule", "verdict_place"]
    first = packets.drop_duplicates("flow").set_index("flow").sort_index()
    decisive = packets.drop_duplicates("flow", keep="last").set_index("flow")[fate].reindex(first.index)
    dropped = packets[packets["verdict"].isin(TERMINAL_VERDICTS)].drop_duplicates("flow").set_index("flow")[fate]
    decisive.loc[dropped.index] = dropped
    by_flow = packets.groupby("flow", sort=True)
    sizes = by_flow.size()
    requests = (packets["src"] == packets["flow"].map(first["src"])).groupby(packets["flow"], sort=True).sum()
    return pd.DataFrame(
        {
            "flow": first.index,
            "host": first["host"].to_numpy(),
            "proto": first["proto"].to_numpy(),
            "client": [endpoint(*ends) for ends in zip(first["src"], first["sport"], first["src_name"], strict=True)],
            "server": [destination(cast(Row, row)) for row in first.to_dict("records")],
            "packets": sizes.to_numpy(),
            "requests": requests.to_numpy(),
            "replies": (sizes - requests).to_numpy(),
            "path": first["path"].to_numpy(),
            **{column: decisive[column].to_numpy() for column in fate},
        },
        columns=list(FLOW_COLUMNS),
    )


def _drops(packets: pd.DataFrame) -> pd.DataFrame:
    """Dropped and rejected packets by the rule that did it, most first."""
    import pandas as pd

    dropped = packets[packets["verdict"].isin(TERMINAL_VERDICTS)]
    if dropped.empty:
        return pd.DataFrame(columns=list(DROP_COLUMNS))
    grouped = dropped.groupby(["verdict", "verdict_at", "verdict_rule"], dropna=False, sort=False)
    frame = grouped.agg(
        packets=("packet", "size"),
        flows=("flow", "nunique"),
        first=("packet", "min"),
        verdict_by=("verdict_by", "first"),
        verdict_place=("verdict_place", "first"),
        verdict_reason=("verdict_reason", "first"),
    )
    frame = frame.reset_index()
    examples = packets.set_index("packet")
    frame["example"] = [
        f"{endpoint(row.src, row.sport, row.src_name)} → {destination(cast(Row, row.to_dict()))}"
        for row in (examples.loc[first] for first in frame["first"])
    ]
    return frame[list(DROP_COLUMNS)].sort_values("packets", ascending=False, ignore_index=True)


def _services(packets: pd.DataFrame) -> pd.DataFrame:
    """Kubernetes services: the connections each took to each endpoint, from the packet that opened each flow."""
    import pandas as pd

    opening = packets.drop_duplicates("flow")
    opening = opening[opening["service"].notna()]
    if opening.empty:
        return pd.DataFrame(columns=list(SERVICE_COLUMNS))
    sizes = packets.groupby("flow").size()
    frame = opening.assign(
        address=[endpoint(dst, dport, None) for dst, dport in zip(opening["dst"], opening["dport"], strict=True)],
        packets=opening["flow"].map(sizes),
    )
    keys = ["service", "address", "endpoint", "endpoint_name"]
    grouped = frame.groupby(keys, dropna=False, sort=True).agg(flows=("flow", "size"), packets=("packets", "sum"))
    return grouped.reset_index()[list(SERVICE_COLUMNS)]


def _service_sentence(service: str, rows: pd.DataFrame) -> str:
    """`default/web:http (10.96.100.10:80): 3 connections, to 10.244.1.11:8080 (default/web-…) 2, …`."""
    ends = zip(rows["endpoint"], rows["endpoint_name"], rows["flows"], strict=True)
    spread = ", ".join(
        f"{endpoint(address, None, name)} {count}" for address, name, count in ends if isinstance(address, str)
    )
    connections = plural(int(rows["flows"].sum()), "connection")
    where = f"to {spread}" if spread else "none reached an endpoint"
    return f"{service} ({rows['address'].iloc[0]}): {connections}, {where}."


def _answer(packets: pd.DataFrame, flows: pd.DataFrame, drops: pd.DataFrame, services: pd.DataFrame) -> str:
    """One paragraph for "why can't A reach B", from what the trace shows and nothing more."""
    if packets.empty:
        return "No traced packet matches."
    sentences = [_drop_sentence(row) for row in drops.itertuples()]
    sentences += [_service_sentence(str(name), rows) for name, rows in services.groupby("service", sort=True)]
    # only TCP and UDP promise an answer; neighbour discovery and the like have none
    unanswered = (flows["replies"] == 0) & flows["proto"].isin(("TCP", "UDP"))
    silent = flows[unanswered & ~flows["verdict"].isin(TERMINAL_VERDICTS)]
    if not silent.empty:
        sentences.append(
            f"{plural(len(silent), 'flow')} got no traced reply: "
            + "; ".join(f"{row.client} → {row.server}" for row in silent.head(3).itertuples())
            + ("" if len(silent) <= 3 else "; …")
            + "."
        )
    unknown = int(packets["verdict"].isna().sum())
    if unknown:
        sentences.append(
            f"For {plural(unknown, 'packet')} the trace shows no verdict (give --rules to name "
            "the rules of a kernel-log trace)."
        )
    accepted = int(packets["verdict"].eq("ACCEPT").sum())
    if not sentences:
        return f"All {plural(len(packets), 'packet')} were accepted; nothing in the trace was dropped."
    if accepted:
        sentences.append(f"{plural(accepted, 'packet')} {'was' if accepted == 1 else 'were'} accepted.")
    return " ".join(sentences)


def _drop_sentence(row: Any) -> str:
    done = "dropped" if row.verdict == "DROP" else "rejected"
    source, target = row.example.split(" → ", 1)
    more = f" (and {plural(int(row.flows) - 1, 'more flow')})" if row.flows > 1 else ""
    were = "was" if row.packets == 1 else "were"
    packets = plural(int(row.packets), "packet")
    why = f" ({row.verdict_reason})" if isinstance(row.verdict_reason, str) else ""
    return f"{packets} from {source} to {target}{more} {were} {done} by {row.verdict_by}{why}."
