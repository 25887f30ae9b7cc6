"""kube-proxy's chain names and comments, read the way kube-proxy writes them (docs/kubernetes.md)."""

from __future__ import annotations

import re

import pytest

from tracelog.chains import ChainMeaning, NativeChain, Reason
from tracelog.chains.comments import rule_comment
from tracelog.chains.kubernetes import (
    KubeContext,
    NamedChain,
    NftablesChain,
    RuleStep,
    ServiceAddress,
    ServicePort,
    decode_nftables_chain,
    decode_packet,
    decode_record,
    decode_step,
    describe_chain,
    dnat_target,
    iptables_endpoint_chain,
    iptables_hash,
    native_chain,
    nftables_chain,
    parse_service_port,
    services_without_endpoints,
    verdict_reason,
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


# --- rules and comments ----------------------------------------------------------------------------

WEB = ServicePort("default", "web", "http")
SVC = f"KUBE-SVC-{iptables_hash(WEB, 'tcp')}"
EXT = f"KUBE-EXT-{iptables_hash(WEB, 'tcp')}"
SEP = iptables_endpoint_chain(WEB, "tcp", "10.244.1.11:8080")


@pytest.mark.parametrize(
    ("rule", "comment"),
    [
        (
            '-A KUBE-SERVICES -d 10.96.100.10/32 -p tcp -m comment --comment "default/web:http cluster IP" -j X',
            "default/web:http cluster IP",
        ),
        (
            "-A KUBE-NODEPORTS -p tcp -m comment --comment default/web:http -m tcp --dport 30080 -j X",
            "default/web:http",
        ),
        ('-m comment --comment "say \\"hi\\"" -m comment --comment cali:abc -j DROP', 'say "hi"'),
        (
            'ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"',
            "Reject traffic to invalid ports of ClusterIPs",
        ),
        ("meta l4proto tcp dnat to 10.244.1.11:8080", None),
        (None, None),
    ],
)
def test_a_rules_comment_is_read_as_iptables_and_nft_print_it(rule: str | None, comment: str | None) -> None:
    assert rule_comment(rule) == comment


@pytest.mark.parametrize(
    ("rule", "target"),
    [
        (
            "-A KUBE-SEP-X -p tcp -m comment --comment default/web:http -m tcp "
            "-j DNAT --to-destination 10.244.1.11:8080",
            "10.244.1.11:8080",
        ),
        ("meta l4proto tcp dnat to 10.244.1.11:8080", "10.244.1.11:8080"),
        ("meta l4proto tcp dnat ip6 to [fd00::1]:80", "[fd00::1]:80"),
        ("-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000", None),
    ],
)
def test_a_dnat_rules_target_is_its_endpoint(rule: str, target: str | None) -> None:
    assert dnat_target(rule) == target


@pytest.mark.parametrize(
    ("comment", "role", "service", "endpoint", "text"),
    [
        ("default/web:http cluster IP", "service", WEB, None, "default/web:http"),
        ("default/web:http", "service", WEB, None, "default/web:http"),
        (
            "default/web:http -> 10.244.1.12:8080",
            "endpoint",
            WEB,
            "10.244.1.12:8080",
            "default/web:http chose endpoint 10.244.1.12:8080",
        ),
        (
            "default/empty:http has no endpoints",
            "refusal",
            ServicePort("default", "empty", "http"),
            None,
            "default/empty:http has no endpoints",
        ),
        (
            "default/web:http has no local endpoints",
            "refusal",
            WEB,
            None,
            "default/web:http has no endpoints on this node",
        ),
        ("masquerade traffic for default/web:http external destinations", "mark", WEB, None, None),
        ("kubernetes forwarding rules", "forward", None, None, None),
        ("kubernetes service traffic requiring SNAT", "masquerade", None, None, None),
        ("block incoming localnet connections", "refusal", None, None, None),
        (
            "rule to REJECT traffic destined for POD name:db-0 namespace: default",
            "refusal",
            None,
            None,
            "no NetworkPolicy allows it to default/db-0",
        ),
        (
            "rule to ACCEPT traffic from source pods to dest pods selected by policy name db-allow-web "
            "namespace default",
            "allow",
            None,
            None,
            "allowed by NetworkPolicy default/db-allow-web",
        ),
        ("run through nw policy db-allow-web", "policy", None, None, "NetworkPolicy db-allow-web"),
        (
            "Reject traffic to invalid ports of ClusterIPs",
            "refusal",
            None,
            None,
            "the cluster IP has no service on this port",
        ),
    ],
)
def test_kube_proxys_and_kube_routers_comments_say_what_a_rule_does(
    comment: str, role: str, service: ServicePort | None, endpoint: str | None, text: str | None
) -> None:
    meaning = decode_step(RuleStep("nat", "X", f'-A X -m comment --comment "{comment}" -j ACCEPT', "ACCEPT"))
    assert meaning is not None
    assert (meaning.role, meaning.service, meaning.endpoint) == (role, service, endpoint)
    if text is not None:
        assert meaning.text == text


def test_steps_of_other_rule_writers_mean_nothing_here() -> None:
    assert decode_step(RuleStep("filter", "DOCKER-USER", "-A DOCKER-USER -j RETURN", "RETURN")) is None
    assert (
        decode_step(RuleStep("filter", "FORWARD", '-A FORWARD -m comment --comment "my own rule" -j ACCEPT', "ACCEPT"))
        is None
    )


def iptables_nodeport_steps() -> list[RuleStep]:
    """A NodePort SYN through kube-proxy's iptables rules, as xtables-monitor prints them (upstream's comments)."""
    return [
        RuleStep(
            "nat",
            "PREROUTING",
            '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
            "JUMP:KUBE-SERVICES",
        ),
        RuleStep(
            "nat",
            "KUBE-SERVICES",
            "-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS",
            "JUMP:KUBE-NODEPORTS",
        ),
        RuleStep(
            "nat",
            "KUBE-NODEPORTS",
            f"-A KUBE-NODEPORTS -p tcp -m comment --comment default/web:http -m tcp --dport 30080 -j {EXT}",
            f"JUMP:{EXT}",
        ),
        RuleStep(
            "nat",
            EXT,
            f'-A {EXT} -m comment --comment "masquerade traffic for default/web:http external destinations" '
            "-j KUBE-MARK-MASQ",
            "JUMP:KUBE-MARK-MASQ",
        ),
        RuleStep("nat", "KUBE-MARK-MASQ", "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000", "CONTINUE"),
        RuleStep("nat", EXT, f"-A {EXT} -j {SVC}", f"JUMP:{SVC}"),
        RuleStep(
            "nat",
            SVC,
            f'-A {SVC} -m comment --comment "default/web:http -> 10.244.1.11:8080" '
            f"-m statistic --mode random --probability 0.50000000000 -j {SEP}",
            f"JUMP:{SEP}",
        ),
        RuleStep(
            "nat",
            SEP,
            f"-A {SEP} -p tcp -m comment --comment default/web:http -m tcp -j DNAT --to-destination 10.244.1.11:8080",
            "ACCEPT",
        ),
        RuleStep(
            "filter",
            "KUBE-FORWARD",
            '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT',
            "ACCEPT",
        ),
        RuleStep(
            "nat",
            "KUBE-POSTROUTING",
            '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" '
            "-j MASQUERADE --random-fully",
            "ACCEPT",
        ),
    ]


def test_a_nodeport_packet_names_its_service_endpoint_and_masquerade() -> None:
    decoded = decode_packet(iptables_nodeport_steps())
    assert (decoded.service, decoded.endpoint, decoded.refusal) == (WEB, "10.244.1.11:8080", None)
    assert (
        decoded.masquerade
        == "traffic to default/web:http from outside is masqueraded, so that replies come back through this node"
    )
    roles = [meaning.role if meaning else None for meaning in decoded.steps]
    assert roles == [None, None, "service", "mark", "mark", None, "endpoint", "dnat", "forward", "masquerade"]


def test_without_comments_the_chains_named_from_kubectl_say_the_same() -> None:
    """nft monitor prints iptables-nft rules without their comments; kubectl's services name the chains."""
    bare = [step._replace(rule=rule_without_comment(step.rule)) for step in iptables_nodeport_steps()]
    context = KubeContext(
        chains={
            EXT: NamedChain("external", WEB),
            SVC: NamedChain("service", WEB),
            SEP: NamedChain("endpoint", WEB, "10.244.1.11:8080"),
        }
    )
    decoded = decode_packet(bare, context)
    assert (decoded.service, decoded.endpoint) == (WEB, "10.244.1.11:8080")
    assert (
        decoded.masquerade == "marked 0x4000 for masquerading: external traffic to a service is masqueraded, "
        "so that replies come back through this node"
    )
    assert decode_packet(bare).service is None  # neither comment nor kubectl: the chain names say nothing


def rule_without_comment(rule: str | None) -> str | None:
    return None if rule is None else re.sub(r' -m comment --comment ("[^"]*"|\S+)', "", rule)


@pytest.mark.parametrize(
    ("caller", "reason"),
    [
        (
            RuleStep(
                "nat",
                SVC,
                f'-A {SVC} -m comment --comment "default/web:http cluster IP" ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ',
                "JUMP:KUBE-MARK-MASQ",
            ),
            "traffic to default/web:http's cluster IP from outside the pod network",
        ),
        (
            RuleStep(
                "nat",
                SEP,
                f"-A {SEP} -s 10.244.1.11/32 -m comment --comment default/web:http -j KUBE-MARK-MASQ",
                "JUMP:KUBE-MARK-MASQ",
            ),
            "the endpoint connects to itself through its service (hairpin), so its source must change",
        ),
        (
            RuleStep(
                "kube-proxy",
                "service-SUSTUHLJ-default/web/tcp/http",
                "ip daddr 10.96.100.10 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade",
                "JUMP:mark-for-masquerade",
            ),
            "traffic to default/web:http's cluster IP from outside the pod network",
        ),
    ],
)
def test_the_rule_that_marks_for_masquerading_says_why(caller: RuleStep, reason: str) -> None:
    marking = RuleStep(
        "kube-proxy" if caller.table == "kube-proxy" else "nat",
        "mark-for-masquerade" if caller.table == "kube-proxy" else "KUBE-MARK-MASQ",
        "meta mark set meta mark | 0x00004000",
        "CONTINUE",
    )
    assert decode_packet([caller, marking]).masquerade == f"marked 0x4000 for masquerading: {reason}"


def test_nftables_mode_is_named_by_its_chains_and_its_maps_comments() -> None:
    service_chain = nftables_chain("service", WEB, "tcp")
    endpoint_chain = nftables_chain("endpoint", WEB, "tcp", "10.244.1.12:8080")
    steps = [
        RuleStep(
            "kube-proxy", "services", "ip daddr . meta l4proto . th dport vmap @service-ips", f"GOTO:{service_chain}"
        ),
        RuleStep(
            "kube-proxy",
            service_chain,
            f"numgen random mod 2 vmap {{ 0 : goto x, 1 : goto {endpoint_chain} }}",
            f"GOTO:{endpoint_chain}",
        ),
        RuleStep("kube-proxy", endpoint_chain, "meta l4proto tcp dnat to 10.244.1.12:8080", "ACCEPT"),
    ]
    decoded = decode_packet(steps)
    assert (decoded.service, decoded.endpoint) == (WEB, "10.244.1.12:8080")
    empty = ServicePort("default", "empty", "http")
    rejected = [
        RuleStep(
            "kube-proxy",
            "service-endpoints-check",
            "ip daddr . meta l4proto . th dport vmap @no-endpoint-services",
            "GOTO:reject-chain",
        ),
        RuleStep("kube-proxy", "reject-chain", "reject", "DROP"),
    ]
    addressed = ServiceAddress("10.96.100.20", "tcp", 80)
    context = KubeContext(services=services_without_endpoints({"10.96.100.20 . tcp . 80": "default/empty:http"}))
    assert decode_packet(rejected, context, addressed)[:4] == (empty, None, None, "default/empty:http has no endpoints")
    assert decode_packet(rejected, addressed=addressed).refusal == "the service at 10.96.100.20:80 has no endpoints"


def test_an_nft_reject_is_told_from_a_drop_by_its_rule() -> None:
    """nft traces print a REJECT's verdict as drop: kube-proxy drops only where a service has no endpoints here."""
    addressed = ServiceAddress("10.96.100.20", "tcp", 80)
    rejected = RuleStep(
        "filter", "KUBE-SERVICES", "meta l4proto tcp ip daddr 10.96.100.20 tcp dport 80 counter reject", "DROP"
    )
    dropped = rejected._replace(rule="meta l4proto tcp ip daddr 10.96.100.20 tcp dport 80 counter drop")
    assert decode_packet([rejected], addressed=addressed).refusal == "the service at 10.96.100.20:80 has no endpoints"
    assert (
        decode_packet([dropped], addressed=addressed).refusal
        == "the service at 10.96.100.20:80 has no endpoints on this node"
    )


def test_a_record_is_decoded_from_its_steps_and_destination() -> None:
    record = {
        "dst": "10.96.100.20",
        "dport": 80,
        "proto": "TCP",
        "steps": [
            {
                "table": "filter",
                "chain": "KUBE-SERVICES",
                "rule": '-A KUBE-SERVICES -m comment --comment "default/empty:http has no endpoints" -j REJECT',
                "verdict": "REJECT",
            }
        ],
    }
    assert decode_record(record).refusal == "default/empty:http has no endpoints"


@pytest.mark.parametrize(
    ("chain", "known"),
    [
        ("filter-forward", NativeChain("FORWARD", False)),
        ("nat-prerouting", NativeChain("PREROUTING", True)),
        ("filter-output-post-dnat", NativeChain("OUTPUT", False)),
        ("services", NativeChain(None, True)),
        ("service-SUSTUHLJ-default/web/tcp/http", NativeChain(None, True)),
        ("reject-chain", NativeChain(None, False)),
        ("my-own-chain", None),
    ],
)
def test_kube_proxys_native_chains_say_their_hook_and_kind(chain: str, known: NativeChain | None) -> None:
    assert native_chain("kube-proxy", chain) == known
    assert native_chain("filter", chain) is None  # only in kube-proxy's own table


def test_kube_proxys_chains_are_described_with_their_service() -> None:
    endpoint = nftables_chain("endpoint", WEB, "tcp", "10.244.1.11:8080")
    assert describe_chain("kube-proxy", endpoint) == ChainMeaning(
        "kube-proxy", "DNATs to one endpoint of default/web:http (10.244.1.11:8080)"
    )
    context = KubeContext(chains={EXT: NamedChain("external", WEB)})
    assert describe_chain("nat", EXT, context) == ChainMeaning(
        "kube-proxy", "takes external traffic (node port, external or load-balancer IP) to default/web:http"
    )
    assert describe_chain("nat", EXT) is None  # a hash alone names nothing
    assert describe_chain("filter", "KUBE-POD-FW-GXXSWJVCUKLVD6EF") is not None
    assert describe_chain("filter", "DOCKER-USER") is None


def test_a_refusals_reason_is_labelled_and_says_what_it_means() -> None:
    rule = '-A KUBE-SERVICES -m comment --comment "default/empty:http has no endpoints" -j REJECT'
    assert verdict_reason("filter", "KUBE-SERVICES", rule, "REJECT") == Reason(
        "no endpoints", "default/empty:http has no endpoints"
    )
    refused = (
        '-A KUBE-POD-FW-X -m comment --comment "rule to REJECT traffic destined for POD name:db-0 namespace: default" '
        "-j REJECT"
    )
    assert verdict_reason("filter", "KUBE-POD-FW-X", refused, "REJECT") == Reason(
        "NetworkPolicy", "no NetworkPolicy allows it to default/db-0"
    )
    marked = '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT'
    assert verdict_reason("filter", "KUBE-FORWARD", marked, "ACCEPT") is None  # an accept gives no reason
    meaning = decode_step(RuleStep("filter", "KUBE-FORWARD", marked, "ACCEPT"))
    assert meaning is not None
    assert meaning.label == "masquerade mark"
    assert (
        verdict_reason("nat", "KUBE-MARK-MASQ", "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000", "CONTINUE")
        is None
    )
    assert verdict_reason("filter", "DOCKER-USER", "-A DOCKER-USER -j DROP", "DROP") is None


@pytest.mark.parametrize(
    ("step", "refusal"),
    [
        (
            RuleStep("kube-proxy", "cluster-ips-check", "ip daddr @cluster-ips reject", "DROP"),
            "the cluster IP has no service on this port",
        ),
        (
            RuleStep("kube-proxy", "cluster-ips-check", "ip daddr 10.96.0.0/16 drop", "DROP"),
            "no service has this cluster IP",
        ),
        (
            RuleStep("filter", "KUBE-FORWARD", "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP", "DROP"),
            "dropped: conntrack finds it INVALID (kube-proxy's KUBE-FORWARD)",
        ),
        (
            RuleStep(
                "kube-proxy", nftables_chain("firewall", WEB, "tcp"), "ip saddr != { 203.0.113.0/25 } drop", "DROP"
            ),
            "default/web:http does not accept this source (loadBalancerSourceRanges)",
        ),
        (RuleStep("filter", "DOCKER-USER", "-A DOCKER-USER -j DROP", "DROP"), None),
    ],
)
def test_a_refusal_without_comment_is_told_by_its_chain(step: RuleStep, refusal: str | None) -> None:
    assert decode_packet([step]).refusal == refusal
