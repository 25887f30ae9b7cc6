"""kube-proxy's chain names and comments, read the way kube-proxy writes them (docs/kubernetes.md)."""

from __future__ import annotations

import pytest

from tracelog.chains.kubernetes import (
    NftablesChain,
    ServicePort,
    decode_nftables_chain,
    iptables_endpoint_chain,
    iptables_hash,
    nftables_chain,
    parse_service_port,
)

# upstream's own expectations (pkg/proxy/iptables/proxier_test.go, pkg/proxy/nftables/proxier_test.go)
SVC1 = ServicePort("ns1", "svc1", "p80")


def test_iptables_chain_names_are_upstreams() -> None:
    assert f"KUBE-SVC-{iptables_hash(SVC1, 'tcp')}" == "KUBE-SVC-XPGD46QRK7WJZT7O"
    assert iptables_hash(SVC1, "TCP") == iptables_hash(SVC1, "tcp")  # the protocol is hashed lower-case
    assert iptables_endpoint_chain(SVC1, "tcp", "10.180.0.1:80") == "KUBE-SEP-SXIVWICOYRO3J4NJ"


def test_nftables_chain_names_are_upstreams() -> None:
    assert nftables_chain("service", SVC1, "tcp") == "service-ULMVA6XW-ns1/svc1/tcp/p80"
    assert (
        nftables_chain("endpoint", SVC1, "tcp", "10.180.0.1:80") == "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"
    )
    assert nftables_chain("external", ServicePort("ns2", "svc2", "p80"), "tcp") == "external-42NFTM6N-ns2/svc2/tcp/p80"


@pytest.mark.parametrize(
    ("chain", "decoded"),
    [
        ("service-ULMVA6XW-ns1/svc1/tcp/p80", NftablesChain("service", SVC1, "tcp", None)),
        ("endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80", NftablesChain("endpoint", SVC1, "tcp", "10.180.0.1:80")),
        (
            "external-42NFTM6N-ns2/svc2/tcp/p80",
            NftablesChain("external", ServicePort("ns2", "svc2", "p80"), "tcp", None),
        ),
    ],
)
def test_an_nftables_chain_name_says_its_service_and_endpoint(chain: str, decoded: NftablesChain) -> None:
    assert decode_nftables_chain(chain) == decoded


def test_an_ipv6_endpoint_is_spelt_with_dots_in_a_chain_name() -> None:
    chain = nftables_chain("endpoint", SVC1, "tcp", "[fd00:10::1]:80")
    assert chain.endswith("__fd00.10..1/80")
    assert decode_nftables_chain(chain) == NftablesChain("endpoint", SVC1, "tcp", "[fd00:10::1]:80")


@pytest.mark.parametrize(
    "chain",
    [
        "service-ULMVA6XX-ns1/svc1/tcp/p80",  # the hash is not the name's
        "services",
        "filter-prerouting",
        "service-endpoints-check",
        "KUBE-SVC-XPGD46QRK7WJZT7O",
        "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1",  # cut short: no port
    ],
)
def test_other_chains_are_not_taken_for_kube_proxys(chain: str) -> None:
    assert decode_nftables_chain(chain) is None


@pytest.mark.parametrize(
    ("text", "service"),
    [
        ("default/web:http", ServicePort("default", "web", "http")),
        ("kube-system/kube-dns:dns-tcp", ServicePort("kube-system", "kube-dns", "dns-tcp")),
        ("default/web", ServicePort("default", "web", "")),
        ("kubernetes service portals", None),
        ("default/Web:http", None),
        ("/web:http", None),
    ],
)
def test_a_service_port_is_spelt_namespace_name_port(text: str, service: ServicePort | None) -> None:
    assert parse_service_port(text) == service
    if service is not None:
        assert str(service) == text
