"""The real captures under samples/ and what the kernel counted while taking them."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

SAMPLES = Path(__file__).resolve().parent.parent / "samples"

KERNEL_LOG_PATTERNS = ("*.dmesg", "*.dmesg-T", "*.dmesg-r", "rsyslog-*.log", "journalctl.txt", "kmsg.txt")


NETLINK_PATTERNS = ("*.xtables-monitor", "*.nft-monitor", "syslogemu.log", "ulogd.json")


def kernel_log_samples() -> list[Path]:
    """Every legacy kernel-log capture, whatever its rendering."""
    return sorted(path for pattern in KERNEL_LOG_PATTERNS for path in SAMPLES.glob(f"*/{pattern}"))


def trace_samples() -> list[Path]:
    """Every capture of TRACE output in any format: kernel logs, both monitors, ulogd."""
    netlink = [path for pattern in NETLINK_PATTERNS for path in SAMPLES.glob(f"*/{pattern}")]
    return sorted([*kernel_log_samples(), *netlink])


@cache
def _meta(directory: Path) -> dict[str, object]:
    meta: dict[str, object] = json.loads((directory / "meta.json").read_text())
    return meta


def traced_packets(sample: Path) -> int:
    """How many packets the kernel's TRACE rule counters say were traced in `sample`.

    The lab's meta.json describes files directly; the Docker captures' meta.json
    describes scenarios, each listing its files.
    """
    meta = _meta(sample.parent)
    described = meta["files"]
    assert isinstance(described, dict)
    entry = described.get(sample.name)
    if isinstance(entry, dict):
        return int(entry["traced_packets"])
    scenarios = meta["scenarios"]
    assert isinstance(scenarios, dict)
    for scenario in scenarios.values():
        if sample.name in scenario["files"]:
            return int(scenario["traced_packets"])
    raise KeyError(f"{sample} is not described in its meta.json")


def described(sample: Path) -> str:
    """What the sample's meta.json says of the file: its description, or how it was rendered."""
    entry = _meta(sample.parent)["files"]
    assert isinstance(entry, dict)
    found = entry[sample.name]
    return str(found.get("rendering", "")) if isinstance(found, dict) else str(found)


def with_handles(sample: Path) -> bool:
    """Whether an nft monitor capture was taken with `nft -a monitor trace` (rule handles printed)."""
    return " -a monitor trace" in described(sample)
