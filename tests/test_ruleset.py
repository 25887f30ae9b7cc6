"""Ruleset snapshots: parsing real iptables-save output and naming what each step refers to."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import RunCli
from tests.samples import SAMPLES
from tracelog.errors import InputError, UsageError
from tracelog.ruleset import Resolution, load_rulesets, parse_ruleset
from tracelog.state import namespace_id

DOCKER = SAMPLES / "docker-legacy/iptables-save.txt"

# (trace sample, snapshots taken while it was traced)
TRACED_WITH_SNAPSHOT = [
    ("docker-legacy/ping.dmesg", ["docker-legacy/iptables-save.txt"]),
    ("docker-legacy/http.dmesg", ["docker-legacy/iptables-save.txt"]),
    ("docker-legacy/proxy.dmesg", ["docker-legacy/iptables-save.txt"]),
    ("docker-legacy/drop.dmesg", ["docker-legacy/iptables-save.drop.txt"]),
    *(
        (f"lab-legacy/{name}", ["lab-legacy/ruleset.iptables-save", "lab-legacy/ruleset.ip6tables-save"])
        for name in ("ping.dmesg", "tcp.dmesg", "udp-closed.dmesg", "dnat.dmesg", "host-ping.dmesg", "ipv6-ping.dmesg")
    ),
    ("lab-legacy/drop.dmesg", ["lab-legacy/ruleset-drop.iptables-save", "lab-legacy/ruleset-drop.ip6tables-save"]),
]


def ruleset(path: Path = DOCKER) -> object:
    return parse_ruleset(path.read_text(), path.name)


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (("filter", "FORWARD", "rule", 1), Resolution("-A FORWARD -j DOCKER-USER", "JUMP:DOCKER-USER")),
        # an unconditional -j RETURN in a user chain prints as `return` at its own position
        (("filter", "DOCKER-USER", "return", 1), Resolution("-A DOCKER-USER -j RETURN", "RETURN")),
        # the implicit end of a user chain is `return` at rules + 1
        (("filter", "DOCKER", "return", 2), Resolution(None, "RETURN")),
        # a built-in chain's policy is `policy` at rules + 1
        (("nat", "POSTROUTING", "policy", 3), Resolution(None, "ACCEPT")),
        (
            ("nat", "DOCKER", "rule", 2),
            Resolution(
                "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.18.0.3:80", "DNAT"
            ),
        ),
    ],
)
def test_steps_resolve_with_the_kernels_numbering(step: tuple[str, str, str, int], expected: Resolution) -> None:
    assert parse_ruleset(DOCKER.read_text(), "s").resolve(*step) == expected


@pytest.mark.parametrize(
    ("step", "why"),
    [
        (("filter", "NOPE", "rule", 1), "chain filter:NOPE is not in s"),
        (("mangle", "FORWARD", "rule", 1), "table mangle is not in s"),
        (("filter", "FORWARD", "rule", 7), "filter:FORWARD has 6 rules in s, not 7"),
        (("filter", "DOCKER", "return", 5), "filter:DOCKER return 5 fits no rule in s"),
        (("filter", "DOCKER", "policy", 2), "a policy step in user chain filter:DOCKER"),
        (("filter", "DOCKER-USER", "rule", 1), "filter:DOCKER-USER rule 1 in s would print as return: stale snapshot?"),
    ],
)
def test_a_snapshot_that_does_not_fit_says_why(step: tuple[str, str, str, int], why: str) -> None:
    assert parse_ruleset(DOCKER.read_text(), "s").resolve(*step) == Resolution(mismatch=why)


@pytest.mark.parametrize(("trace", "snapshots"), TRACED_WITH_SNAPSHOT, ids=[t for t, _ in TRACED_WITH_SNAPSHOT])
def test_every_step_of_every_capture_is_explained_by_its_snapshot(
    trace: str, snapshots: list[str], run_cli: RunCli
) -> None:
    options = [option for snapshot in snapshots for option in ("--rules", str(SAMPLES / snapshot))]
    run = run_cli("parse", "-f", "jsonl", *options, str(SAMPLES / trace))
    assert "ruleset does not fit" not in run.stderr
    steps = [step for record in run.records() for step in record["steps"]]
    assert steps
    assert all(step["verdict"] is not None and step["mismatch"] is None for step in steps)


def test_drops_are_named_with_their_rule(run_cli: RunCli) -> None:
    run = run_cli(
        "parse",
        "-f",
        "jsonl",
        "--rules",
        str(SAMPLES / "docker-legacy/iptables-save.drop.txt"),
        str(SAMPLES / "docker-legacy/drop.dmesg"),
    )
    records = run.records()
    assert len(records) == 3
    for record in records:
        assert (record["verdict"], record["verdict_at"], record["verdict_step"]) == (
            "DROP",
            "filter:DOCKER-USER:rule:1",
            len(record["steps"]),
        )
        assert record["steps"][-1]["rule"] == (
            "-A DOCKER-USER -s 172.18.0.2/32 -d 172.18.0.3/32 -p tcp -m tcp --dport 80 -j DROP"
        )


def test_a_stale_snapshot_is_reported_per_step(run_cli: RunCli) -> None:
    """The drop trace read with the snapshot from before the DROP rule was added."""
    run = run_cli("parse", "-f", "jsonl", "--rules", str(DOCKER), str(SAMPLES / "docker-legacy/drop.dmesg"))
    last_steps = [record["steps"][-1] for record in run.records()]
    assert all("stale snapshot" in step["mismatch"] for step in last_steps)
    assert all(record["verdict"] is None for record in run.records())
    assert "3 lines: ruleset does not fit" in run.stderr


def test_accepts_and_policies_without_a_drop(run_cli: RunCli) -> None:
    ping = str(SAMPLES / "docker-legacy/ping.dmesg")
    records = run_cli("parse", "-f", "jsonl", "--rules", str(DOCKER), ping).records()
    assert [(r["verdict"], r["verdict_at"]) for r in records] == [
        ("ACCEPT", "filter:FORWARD:rule:6"),  # not the nat POSTROUTING policy the packet crossed after it
        ("ACCEPT", "filter:FORWARD:rule:3"),
        ("ACCEPT", "filter:FORWARD:rule:3"),
        ("ACCEPT", "filter:FORWARD:rule:3"),
    ]


def test_counters_comments_and_families() -> None:
    counted = parse_ruleset((SAMPLES / "snapshots/counters.iptables-save").read_text(), "c")
    assert counted.family == "ipv4"
    assert counted.resolve("filter", "INPUT", "rule", 1).rule == (
        '-A INPUT -i lo -m comment --comment "allow loopback, said the admin" -j ACCEPT'
    )
    log = Resolution('-A LOGDROP -j LOG --log-prefix "DROP: "', "LOG")
    assert counted.resolve("filter", "LOGDROP", "rule", 1) == log
    assert counted.resolve("filter", "LOGDROP", "return", 2) == Resolution("-A LOGDROP -j DROP", "DROP")
    v6 = parse_ruleset((SAMPLES / "lab-legacy/ruleset.ip6tables-save").read_text(), "6")
    assert v6.family == "ipv6"
    nft = parse_ruleset((SAMPLES / "docker-nft/iptables-save.txt").read_text(), "n")
    assert nft.family == "ipv4"


def test_bad_snapshots_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("*filter\n:INPUT ACCEPT [0:0]\nthis is not iptables-save\n")
    with pytest.raises(InputError, match=r"bad.txt:3:1: not an iptables-save line"):
        load_rulesets([str(bad)])
    bad.write_text(":INPUT ACCEPT [0:0]\n")
    with pytest.raises(InputError, match=r"bad.txt:1: chain line before any \*table line"):
        load_rulesets([str(bad)])
    bad.write_text("*filter\n-A NOPE -j ACCEPT\n")
    with pytest.raises(InputError, match=r"bad.txt:2: rule for undeclared chain NOPE"):
        load_rulesets([str(bad)])
    bad.write_bytes(b"\x00\xff garbage")
    with pytest.raises(InputError, match=r"bad\.txt:1:"):
        load_rulesets([str(bad)])
    with pytest.raises(InputError, match="cannot read"):
        load_rulesets([str(tmp_path / "missing")])
    with pytest.raises(UsageError, match="two snapshots for ipv4"):
        load_rulesets([str(DOCKER), str(DOCKER)])


def test_bad_snapshot_is_one_line_and_exit_3(run_cli: RunCli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("garbage\n")
    run = run_cli("parse", "--rules", str(bad), str(SAMPLES / "docker-legacy/ping.dmesg"))
    assert run.status == 3
    assert run.stderr.count("\n") == 1


def test_the_snapshot_enable_saved_is_the_default(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = tmp_path / "snapshots" / f"20261128T040000.000000Z-{namespace_id()}"
    taken.mkdir(parents=True)
    (taken / "iptables-legacy-save").write_text((SAMPLES / "docker-legacy/iptables-save.drop.txt").read_text())
    (taken / "iptables-nft-save").write_text("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n")
    monkeypatch.setenv("TRACELOG_STATE_DIR", str(tmp_path))
    # a kernel log numbers the legacy tables' rules: their snapshot is the one used
    run = run_cli("parse", "-f", "jsonl", stdin=(SAMPLES / "docker-legacy/drop.dmesg").read_text())
    assert f"naming rules from the snapshot tracelog enable saved in {taken} (iptables-legacy-save)" in run.stderr
    assert {record["verdict"] for record in run.records()} == {"DROP"}
