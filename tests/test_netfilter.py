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


@pytest.mark.parametrize(
    ("chain", "family", "hook"),
    [
        ("trace_ingress", "netdev", "INGRESS"),  # the netdev family's hooks
        ("egress", "netdev", "EGRESS"),
        ("egress_policy", "inet", None),  # elsewhere the words name a user chain
        ("ingress-allow", None, None),
        ("input", "netdev", None),  # a netdev chain hooks nothing else
    ],
)
def test_only_a_netdev_chain_says_ingress_or_egress(chain: str, family: str | None, hook: str | None) -> None:
    assert netfilter.hook_of_chain(chain, family) == hook


@pytest.mark.parametrize(
    ("before", "after", "later"),
    [
        ("INGRESS", "PREROUTING", True),  # netdev ingress runs before any family's PREROUTING
        ("INGRESS", "INPUT", True),  # an ARP frame: the arp family has no PREROUTING
        ("PREROUTING", "INGRESS", False),
        ("POSTROUTING", "EGRESS", True),
        ("EGRESS", "POSTROUTING", False),
    ],
)
def test_the_netdev_hooks_stand_around_the_others(before: str, after: str, later: bool) -> None:
    assert netfilter.is_later_hook(before, after) is later
