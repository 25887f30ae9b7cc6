"""What netfilter's fixed order lets the correlator infer from a chain's name alone."""

from __future__ import annotations

import pytest

from tracelog import netfilter


@pytest.mark.parametrize(
    ("chain", "hook"),
    [
        ("PREROUTING", "PREROUTING"),
        ("trace_output", "OUTPUT"),  # words joined by underscores
        ("dstnat", "PREROUTING"),  # fw4
        ("filter-prerouting", "PREROUTING"),  # kube-proxy's nftables mode joins them by dashes
        ("filter-output-post-dnat", "OUTPUT"),
        ("nat-postrouting", "POSTROUTING"),
        ("services", None),  # a regular chain: its hook is its caller's
        ("service-SUSTUHLJ-default/web/tcp/http", None),
    ],
)
def test_a_native_chain_named_after_its_hook_says_it(chain: str, hook: str | None) -> None:
    assert netfilter.hook_of_chain(chain) == hook
