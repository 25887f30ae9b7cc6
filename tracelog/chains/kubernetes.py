"""What kube-proxy's chains, comments and marks say about a packet: its service, its endpoint, why it was refused.

kube-proxy names its per-service chains after a hash of the service port
(`KUBE-SVC-…`, `KUBE-SEP-…`; in nftables mode `service-<hash>-ns/name/tcp/port`)
and comments its rules with the service port (`"default/web:http cluster
IP"`, `"default/web:http -> 10.244.1.11:8080"`, `"default/empty:http has no
endpoints"`).  docs/kubernetes.md lists the conventions this module reads.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from ipaddress import ip_address
from typing import Literal, NamedTuple, cast

from tracelog.chains import ChainMeaning, NativeChain, Reason, table_native_chain
from tracelog.chains.comments import KERNEL_COMMENT_CHARS, rule_comment

# iptables mode: prefix → what the chain is for; all but KUBE-SEP hash the service port and protocol only
IPTABLES_SERVICE_PREFIXES = {
    "KUBE-SVC-": "service",
    "KUBE-SVL-": "local",
    "KUBE-EXT-": "external",
    "KUBE-FW-": "firewall",
}
IPTABLES_ENDPOINT_PREFIX = "KUBE-SEP-"
# nftables mode: the same roles, spelt out
NFTABLES_PREFIXES = ("service", "local", "external", "firewall", "endpoint", "affinity")
NFTABLES_TABLE = "kube-proxy"
_ENDPOINT_SEPARATOR = "__"
_DNS_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?", re.ASCII)


class ServicePort(NamedTuple):
    """A service port as kube-proxy names it: `namespace/name:port`, the port being the port's name."""

    namespace: str
    name: str
    port: str = ""

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}:{self.port}" if self.port else f"{self.namespace}/{self.name}"


def parse_service_port(text: str) -> ServicePort | None:
    """`default/web:http` (or `default/web` for an unnamed port) as a `ServicePort`; None for other text."""
    namespace, slash, rest = text.partition("/")
    name, _, port = rest.partition(":")
    if not slash or not namespace or not name or not all(map(_is_dns_label, (namespace, name))):
        return None
    if port and not _is_dns_label(port):
        return None
    return ServicePort(namespace, name, port)


def _is_dns_label(text: str) -> bool:
    """Namespace, service and port names are lower-case DNS labels (letters, digits, dashes)."""
    return _DNS_LABEL.fullmatch(text) is not None


def _base32_sha256(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()


def iptables_hash(service: ServicePort, protocol: str) -> str:
    """The 16 characters `KUBE-SVC-`, `KUBE-SVL-`, `KUBE-EXT-` and `KUBE-FW-` share for one service port."""
    return _base32_sha256(f"{service}{protocol.lower()}")[:16]


def iptables_endpoint_chain(service: ServicePort, protocol: str, endpoint: str) -> str:
    """`KUBE-SEP-<hash>`: the chain that DNATs to `endpoint` (`ip:port`) for one service port."""
    return IPTABLES_ENDPOINT_PREFIX + _base32_sha256(f"{service}{protocol.lower()}{endpoint}")[:16]


def _nftables_base(service: ServicePort, protocol: str, endpoint: str | None = None) -> str:
    """`HASH-ns/name/proto/port` (`…__ip/port` for an endpoint), as kube-proxy's nftables mode builds names."""
    name = f"{service.namespace}/{service.name}/{protocol.lower()}/{service.port}"
    if endpoint is not None:
        address, _, port = endpoint.rpartition(":")
        name += f"{_ENDPOINT_SEPARATOR}{address.strip('[]').replace(':', '.')}/{port}"
    return f"{_base32_sha256(name)[:8]}-{name}"


def nftables_chain(role: str, service: ServicePort, protocol: str, endpoint: str | None = None) -> str:
    """`service-<hash>-ns/name/tcp/port`, `endpoint-<hash>-ns/name/tcp/port__ip/port`, … in table `kube-proxy`."""
    return f"{role}-{_nftables_base(service, protocol, endpoint)}"


class NftablesChain(NamedTuple):
    """What a kube-proxy nftables chain name says: its role, service port, protocol and endpoint."""

    role: str
    service: ServicePort
    protocol: str
    endpoint: str | None


def decode_nftables_chain(chain: str) -> NftablesChain | None:
    """The service (and endpoint) a kube-proxy nftables chain is named after; None for any other name.

    The name's hash must be the hash of the rest, so a chain that only looks
    like one of kube-proxy's is not taken for one.
    """
    role, dash, based = chain.partition("-")
    if not dash or role not in NFTABLES_PREFIXES:
        return None
    digest, dash, name = based.partition("-")
    if not dash or len(digest) != 8 or _base32_sha256(name)[:8] != digest:
        return None
    service_part, separator, endpoint_part = name.partition(_ENDPOINT_SEPARATOR)
    fields = service_part.split("/")
    if len(fields) != 4:
        return None
    namespace, service_name, protocol, port = fields
    endpoint = _endpoint_from_chain(endpoint_part) if separator else None
    if separator and endpoint is None:
        return None
    return NftablesChain(role, ServicePort(namespace, service_name, port), protocol, endpoint)


def _endpoint_from_chain(text: str) -> str | None:
    """`10.180.0.1/80` → `10.180.0.1:80`; an IPv6 address has its colons as dots (`fd00.10..1/80`)."""
    address, slash, port = text.rpartition("/")
    if not slash or not port.isdigit():
        return None
    for candidate in (address, address.replace(".", ":")):
        try:
            parsed = ip_address(candidate)
        except ValueError:
            continue
        return f"[{parsed}]:{port}" if parsed.version == 6 else f"{parsed}:{port}"
    return None


# --- what one step means ----------------------------------------------------------------------

StepRole = Literal[
    "service",  # the packet addressed this service port
    "endpoint",  # the service's rule that chose this endpoint
    "dnat",  # the endpoint's rule that rewrote the destination
    "mark",  # marked 0x4000 for masquerading
    "masquerade",  # source NAT because of the mark
    "unmarked",  # not marked: left without source NAT
    "forward",  # accepted in KUBE-FORWARD because of the mark
    "established",  # accepted as part of a connection already accepted
    "refusal",  # dropped or rejected by a rule kube-proxy or kube-router wrote
    "allow",  # a NetworkPolicy allowed it
    "policy",  # a NetworkPolicy chain deciding nothing yet
]


class RuleStep(NamedTuple):
    """What the decoder reads of one step: where it ran, the rule (as printed or resolved) and its verdict."""

    table: str
    chain: str
    rule: str | None = None
    verdict: str | None = None

    @classmethod
    def from_record(cls, step: Mapping[str, object]) -> RuleStep:
        """The decoder's view of one step of a packet record (`--format jsonl`)."""
        rule, verdict = step.get("rule"), step.get("verdict")
        return cls(
            str(step["table"]),
            str(step["chain"]),
            rule if isinstance(rule, str) else None,
            verdict if isinstance(verdict, str) else None,
        )


class ServiceAddress(NamedTuple):
    """Where a service port takes traffic: a cluster IP, external IP or node IP, the protocol and the port."""

    address: str
    protocol: str
    port: int


class NamedChain(NamedTuple):
    """An iptables chain of kube-proxy's named from outside the trace (the services and endpoints kubectl lists)."""

    role: str  # service, local, external, firewall or endpoint
    service: ServicePort
    endpoint: str | None = None


class KubeContext(NamedTuple):
    """What tracelog knows of the cluster besides the trace, to name what a rule without comment refers to.

    `chains`: kube-proxy's `KUBE-SVC-…`/`KUBE-SEP-…` chains; `services`: the
    service port at an address (from kubectl, or from the comments of
    kube-proxy's nftables maps); `pods`: pod address → `namespace/name`.
    """

    chains: Mapping[str, NamedChain] = {}
    services: Mapping[ServiceAddress, ServicePort] = {}
    pods: Mapping[str, str] = {}


NO_CONTEXT = KubeContext()


class StepMeaning(NamedTuple):
    """What one step means in kube-proxy's (or kube-router's) words: its role, plain text, service and endpoint.

    `label` names a deciding rule in a word or two (`no endpoints`,
    `NetworkPolicy`), as a verdict's reason is labelled.
    """

    role: StepRole
    text: str
    service: ServicePort | None = None
    endpoint: str | None = None
    label: str | None = None


_DNAT = re.compile(r"(?:--to-destination\s+|\bdnat (?:ip6? )?to\s+)(\S+)")


def dnat_target(rule: str | None) -> str | None:
    """Where a DNAT rule sends a packet (`10.244.1.11:8080`), or None for any other rule."""
    found = _DNAT.search(rule or "")
    return found[1] if found else None


# how deciding rules are labelled, and what the ones without a service or pod in them say
_NO_ENDPOINTS, _NO_LOCAL, _SOURCE_RANGES = "no endpoints", "no local endpoints", "loadBalancerSourceRanges"
_MARKED, _ESTABLISHED, _POLICY = "masquerade mark", "established", "NetworkPolicy"
_LOCALNET, _NO_PORT, _UNALLOCATED = "localnet", "no such service port", "unallocated cluster IP"
_MARKED_TEXT = "accepted: kube-proxy marked it for masquerading (0x4000), so it is service traffic"
_ESTABLISHED_TEXT = "accepted: part of an accepted connection"
_LOCALNET_TEXT = "kubelet blocks connections to 127.0.0.0/8 from outside"
_NO_PORT_TEXT = "the cluster IP has no service on this port"
_UNALLOCATED_TEXT = "no service has this cluster IP"
_SERVICE = r"(?P<service>[a-z0-9][-a-z0-9]*/[a-z0-9][-a-z0-9]*(?::[a-z0-9][-a-z0-9]*)?)"
_POD = r"POD name:(?P<pod>\S+) namespace: (?P<namespace>\S+)"


class _Comment(NamedTuple):
    """A comment kube-proxy or kube-router writes, what such a rule does and how to say it."""

    pattern: re.Pattern[str]
    role: StepRole
    text: str
    label: str | None


def _comment(pattern: str, role: StepRole, text: str, label: str | None = None) -> _Comment:
    return _Comment(re.compile(pattern), role, text, label)


# kube-proxy's and kube-router's comments (docs/kubernetes.md), most specific first; text with {service}, {pod}…
_COMMENTS = tuple(
    _comment(*entry)
    for entry in (
        (rf"{_SERVICE} has no endpoints", "refusal", "{service} has no endpoints", _NO_ENDPOINTS),
        (rf"{_SERVICE} has no local endpoints", "refusal", "{service} has no endpoints on this node", _NO_LOCAL),
        (
            rf"{_SERVICE} traffic not accepted by (?P<chain>KUBE-FW-\S+)",
            "refusal",
            "{service} does not accept this source (loadBalancerSourceRanges, {chain})",
            _SOURCE_RANGES,
        ),
        (
            rf"masquerade traffic for {_SERVICE} external destinations",
            "mark",
            "traffic to {service} from outside is masqueraded, so that replies come back through this node",
        ),
        (
            rf"masquerade LOCAL traffic for {_SERVICE} external destinations",
            "mark",
            "this node's own traffic to {service}'s external address is masqueraded",
        ),
        (rf"(?:pod|route LOCAL) traffic for {_SERVICE} external destinations", "service", "{service}"),
        (rf"{_SERVICE} -> (?P<endpoint>\S+)", "endpoint", "{service} chose endpoint {endpoint}"),
        (rf"{_SERVICE} (?P<how>cluster IP|external IP|loadbalancer IP|health check node port)", "service", "{service}"),
        (rf"other traffic to {_SERVICE} will be dropped by KUBE-PROXY-FIREWALL", "service", "{service}"),
        (
            r"kubernetes forwarding rules",
            "forward",
            _MARKED_TEXT,
            _MARKED,
        ),
        (r"kubernetes forwarding conntrack rule", "established", _ESTABLISHED_TEXT, _ESTABLISHED),
        (
            r"kubernetes service traffic requiring SNAT",
            "masquerade",
            "masqueraded: kube-proxy marked it (0x4000), so its source becomes this node's address",
        ),
        (r"block incoming localnet connections", "refusal", _LOCALNET_TEXT, _LOCALNET),
        (r"Reject traffic to invalid ports of ClusterIPs", "refusal", _NO_PORT_TEXT, _NO_PORT),
        (r"Drop traffic to unallocated ClusterIPs", "refusal", _UNALLOCATED_TEXT, _UNALLOCATED),
        (
            rf"rule to REJECT traffic destined for {_POD}",
            "refusal",
            "no NetworkPolicy allows it to {namespace}/{pod}",
            _POLICY,
        ),
        (rf"rule to log dropped traffic {_POD}", "policy", "logged: no NetworkPolicy allowed it to {namespace}/{pod}"),
        (r"run through nw policy (?P<policy>\S+)", "policy", "NetworkPolicy {policy}"),
        (
            r"rule to ACCEPT traffic from .* selected by policy name:? (?P<policy>\S+) namespace (?P<namespace>\S+)",
            "allow",
            "allowed by NetworkPolicy {namespace}/{policy}",
            _POLICY,
        ),
        (r"rule for stateful firewall for pod", "established", _ESTABLISHED_TEXT, _ESTABLISHED),
        (rf"rule to jump traffic (?:destined to|from) {_POD}", "policy", "NetworkPolicy of pod {namespace}/{pod}"),
        (rf"^{_SERVICE}$", "service", "{service}"),
    )
)
_REFUSALS = frozenset({"DROP", "REJECT"})
MARK_CHAINS = frozenset({"KUBE-MARK-MASQ", "mark-for-masquerade"})
_MASQUERADE_CHAINS = frozenset({"KUBE-POSTROUTING", "masquerading"})
_NO_ENDPOINT_CHAINS = frozenset({"service-endpoints-check", "nodeport-endpoints-check"})
_NO_ENDPOINT_FILTERS = frozenset({"KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES"})
_POLICY_PREFIXES = ("KUBE-POD-FW-", "KUBE-NWPLCY-", "KUBE-ROUTER-", "cali-")


def decode_step(
    step: RuleStep, context: KubeContext = NO_CONTEXT, addressed: ServiceAddress | None = None
) -> StepMeaning | None:
    """What one step means for kube-proxy or kube-router, or None for a step of anyone else's.

    `addressed` is where the packet was sent before NAT (its destination,
    protocol and port), to name the service a rule without comment refused.
    """
    comment = rule_comment(step.rule)
    meaning = _from_comment(comment) if comment and len(comment) <= KERNEL_COMMENT_CHARS else None
    if meaning is not None:
        return _with_dnat(meaning, step)
    return _from_rule(step, context, addressed) or _from_chain(step, context)


def _from_comment(comment: str) -> StepMeaning | None:
    for pattern, role, text, label in _COMMENTS:
        found = pattern.search(comment)
        if found is None:
            continue
        words = found.groupdict()
        service = parse_service_port(words["service"]) if "service" in words else None
        if "service" in words and service is None:
            continue
        return StepMeaning(role, text.format(**words), service, words.get("endpoint"), label)
    return None


def _with_dnat(meaning: StepMeaning, step: RuleStep) -> StepMeaning:
    """A commented KUBE-SEP rule that DNATs: the endpoint is its target."""
    target = dnat_target(step.rule)
    if target is None:
        return meaning
    text = f"{meaning.service} sent to endpoint {target}" if meaning.service else f"sent to endpoint {target}"
    return StepMeaning("dnat", text, meaning.service, target)


def _from_rule(step: RuleStep, context: KubeContext, addressed: ServiceAddress | None) -> StepMeaning | None:
    """Meanings the rule's chain, target and verdict carry without a comment (nft monitor prints none)."""
    found = _from_target(step, context)
    if found is not None:
        return found
    if step.verdict in _REFUSALS or step.verdict == "GOTO:reject-chain":
        return _refusal(step, context, addressed)
    chosen = _named_chain(_verdict_chain(step.verdict), context)
    if chosen is None:
        return None
    text = f"{chosen.service} chose endpoint {chosen.endpoint}" if chosen.endpoint else str(chosen.service)
    return StepMeaning("endpoint" if chosen.endpoint else "service", text, chosen.service, chosen.endpoint)


def _from_target(step: RuleStep, context: KubeContext) -> StepMeaning | None:
    """DNAT to an endpoint, the masquerade mark and its use, told by the chain and what the rule does."""
    named = _named_chain(step.chain, context)
    target = dnat_target(step.rule)
    if target is not None and (named is not None or step.chain.startswith(IPTABLES_ENDPOINT_PREFIX)):
        service = named.service if named else None
        text = f"{service} sent to endpoint {target}" if service else f"sent to endpoint {target}"
        return StepMeaning("dnat", text, service, target)
    if step.chain in MARK_CHAINS:
        return StepMeaning("mark", "marked 0x4000: kube-proxy will masquerade it on the way out")
    if step.chain in _MASQUERADE_CHAINS and step.verdict is not None:
        return _masquerading(step)
    if step.chain == "KUBE-FORWARD" and step.verdict == "ACCEPT":
        return _forwarding(step)
    return None


def _masquerading(step: RuleStep) -> StepMeaning | None:
    rule = (step.rule or "").lower()
    if "masquerade" in rule:
        return StepMeaning(
            "masquerade", "masqueraded: kube-proxy marked it (0x4000), so its source becomes this node's address"
        )
    if step.verdict == "RETURN":
        return StepMeaning("unmarked", "not marked for masquerading: its source stays")
    return None


def _forwarding(step: RuleStep) -> StepMeaning | None:
    rule = step.rule or ""
    if "mark" in rule:
        return StepMeaning("forward", _MARKED_TEXT, label=_MARKED)
    if "ESTABLISHED" in rule or "established" in rule:
        return StepMeaning("established", _ESTABLISHED_TEXT, label=_ESTABLISHED)
    return None


def _refusal(step: RuleStep, context: KubeContext, addressed: ServiceAddress | None) -> StepMeaning | None:
    """A DROP or REJECT in a chain kube-proxy or kube-router owns, explained without a comment."""
    if (
        step.chain in _NO_ENDPOINT_CHAINS
        or step.chain == "reject-chain"
        or (step.table == "filter" and step.chain in _NO_ENDPOINT_FILTERS)
    ):
        return _no_endpoints(step, context, addressed)
    if step.chain.startswith(_POLICY_PREFIXES):
        pod = context.pods.get(addressed.address) if addressed else None
        text = f"no NetworkPolicy allows it to {pod or _address_text(addressed, 'the pod it addressed')}"
        return StepMeaning("refusal", text, label=_POLICY)
    if step.chain == "cluster-ips-check":
        return _UNSERVED_PORT if _rejects(step) else _UNALLOCATED_IP
    named = _named_chain(step.chain, context)
    if named is not None and named.role == "firewall":
        text = f"{named.service} does not accept this source (loadBalancerSourceRanges)"
        return StepMeaning("refusal", text, label=_SOURCE_RANGES)
    return _FIXED_REFUSALS.get(step.chain)


def _no_endpoints(step: RuleStep, context: KubeContext, addressed: ServiceAddress | None) -> StepMeaning:
    """kube-proxy rejects where a service has no endpoints, and (iptables mode) drops where it has none here."""
    service = context.services.get(addressed) if addressed else None
    where = str(service) if service else f"the service at {_address_text(addressed)}" if addressed else "its service"
    if step.chain in _NO_ENDPOINT_FILTERS and not _rejects(step):
        return StepMeaning("refusal", f"{where} has no endpoints on this node", service, label=_NO_LOCAL)
    return StepMeaning("refusal", f"{where} has no endpoints", service, label=_NO_ENDPOINTS)


_UNSERVED_PORT = StepMeaning("refusal", _NO_PORT_TEXT, label=_NO_PORT)
_UNALLOCATED_IP = StepMeaning("refusal", _UNALLOCATED_TEXT, label=_UNALLOCATED)
# refusals of kube-proxy's (and kubelet's) fixed iptables chains, told without their comment
_FIXED_REFUSALS = {
    "KUBE-FORWARD": StepMeaning(
        "refusal", "dropped: conntrack finds it INVALID (kube-proxy's KUBE-FORWARD)", label="INVALID"
    ),
    "KUBE-FIREWALL": StepMeaning("refusal", _LOCALNET_TEXT, label=_LOCALNET),
    "KUBE-PROXY-FIREWALL": StepMeaning(
        "refusal", "the service does not accept this source (loadBalancerSourceRanges)", label=_SOURCE_RANGES
    ),
}


def _rejects(step: RuleStep) -> bool:
    """A REJECT rule: nft traces print its verdict as drop, only the rule says `reject`."""
    return step.verdict == "REJECT" or re.search(r"(?:-j REJECT|\breject)\b", step.rule or "") is not None


def _address_text(addressed: ServiceAddress | None, unknown: str = "its destination") -> str:
    if addressed is None:
        return unknown
    address = f"[{addressed.address}]" if ":" in addressed.address else addressed.address
    return f"{address}:{addressed.port}"


def _from_chain(step: RuleStep, context: KubeContext) -> StepMeaning | None:
    """What the chain alone says: a kube-proxy service or endpoint chain, or a NetworkPolicy chain."""
    named = _named_chain(step.chain, context)
    if named is not None:
        role: StepRole = "endpoint" if named.endpoint else "service"
        text = f"{named.service} chose endpoint {named.endpoint}" if named.endpoint else str(named.service)
        return StepMeaning(role, text, named.service, named.endpoint)
    if step.chain.startswith(_POLICY_PREFIXES):
        return StepMeaning("policy", f"NetworkPolicy chain {step.chain}")
    return None


def _verdict_chain(verdict: str | None) -> str:
    """The chain a `JUMP:x`/`GOTO:x` verdict goes to, else an empty name."""
    kind, colon, chain = (verdict or "").partition(":")
    return chain if colon and kind in ("JUMP", "GOTO") else ""


def _named_chain(chain: str, context: KubeContext) -> NamedChain | None:
    """A kube-proxy chain named by the context (iptables mode) or by its own name (nftables mode)."""
    if not chain:
        return None
    named = context.chains.get(chain)
    if named is not None:
        return named
    decoded = decode_nftables_chain(chain)
    return None if decoded is None else NamedChain(decoded.role, decoded.service, decoded.endpoint)


# --- what a packet's steps add up to -----------------------------------------------------------


class KubePacket(NamedTuple):
    """What kube-proxy and kube-router did to one packet, from its steps.

    `service`: the service port it addressed; `endpoint`: where it was DNAT'ed
    (`ip:port`); `masquerade`: why its source was (or will be) replaced by the
    node's address; `refusal`: why a kube rule dropped or rejected it;
    `policy`: the NetworkPolicy that allowed it; `steps`: each step's
    meaning, None for steps of other rule writers.
    """

    service: ServicePort | None
    endpoint: str | None
    masquerade: str | None
    refusal: str | None
    policy: str | None
    steps: tuple[StepMeaning | None, ...]


def crosses_kube_proxy(table: str, chain: str) -> bool:
    """Whether a step ran in a chain kube-proxy writes (iptables mode's KUBE-…, nftables mode's own table)."""
    return table == NFTABLES_TABLE or chain.startswith("KUBE-")


def decode_packet(
    steps: Sequence[RuleStep], context: KubeContext = NO_CONTEXT, addressed: ServiceAddress | None = None
) -> KubePacket:
    """The service, endpoint, masquerading and refusal one packet's steps show."""
    meanings = tuple(decode_step(step, context, addressed) for step in steps)
    service = next((meaning.service for meaning in meanings if meaning and meaning.service), None)
    if service is None and addressed is not None:
        service = context.services.get(addressed)
    dnat = next((meaning.endpoint for meaning in meanings if meaning and meaning.role == "dnat"), None)
    chosen = next((meaning.endpoint for meaning in meanings if meaning and meaning.role == "endpoint"), None)
    refusal = _last_text(meanings, "refusal")
    return KubePacket(
        service, dnat or chosen, _masquerade_reason(steps, meanings), refusal, _last_text(meanings, "allow"), meanings
    )


def _last_text(meanings: Sequence[StepMeaning | None], role: StepRole) -> str | None:
    return next((meaning.text for meaning in reversed(meanings) if meaning and meaning.role == role), None)


def _masquerade_reason(steps: Sequence[RuleStep], meanings: Sequence[StepMeaning | None]) -> str | None:
    """Why the packet was marked 0x4000: the rule that sent it to the marking chain says it."""
    for index, meaning in enumerate(meanings):
        if meaning is None or meaning.role != "mark":
            continue
        if steps[index].chain not in MARK_CHAINS:
            return meaning.text  # the commented rule that marks (KUBE-EXT) says why itself
        caller = _caller(steps, meanings, index)
        return f"marked 0x4000 for masquerading: {caller}" if caller else "marked 0x4000 for masquerading"
    return None


def _caller(steps: Sequence[RuleStep], meanings: Sequence[StepMeaning | None], index: int) -> str | None:
    """Why the rule that jumped to the marking chain at `index` did: its comment's meaning or its match."""
    if index == 0:
        return None
    step, meaning = steps[index - 1], meanings[index - 1]
    if meaning is not None and meaning.role == "mark":
        return meaning.text
    named = _named_chain(step.chain, NO_CONTEXT) or (
        meaning and meaning.service and NamedChain("service", meaning.service)
    )
    if step.chain.startswith("KUBE-EXT-") or (named and named.role == "external"):
        return "external traffic to a service is masqueraded, so that replies come back through this node"
    if step.chain.startswith(IPTABLES_ENDPOINT_PREFIX) or (named and named.role == "endpoint"):
        return "the endpoint connects to itself through its service (hairpin), so its source must change"
    if meaning is not None and meaning.service is not None:
        return f"traffic to {meaning.service}'s cluster IP from outside the pod network"
    return None


def decode_record(packet: Mapping[str, object], context: KubeContext = NO_CONTEXT) -> KubePacket:
    """`decode_packet` for a packet record (`--format jsonl`): its steps, and where it was sent before NAT."""
    port = packet.get("dport")
    addressed = None
    if isinstance(port, int):
        addressed = ServiceAddress(str(packet["dst"]), str(packet["proto"]).lower(), port)
    steps = cast(Sequence[Mapping[str, object]], packet["steps"])
    return decode_packet([RuleStep.from_record(step) for step in steps], context, addressed)


def services_without_endpoints(element_comments: Mapping[str, str]) -> dict[ServiceAddress, ServicePort]:
    """The service ports of `no-endpoint-services` elements (`10.96.100.20 . tcp . 80` → `default/empty:http`).

    In nftables mode these element comments are the only place kube-proxy
    names a service without endpoints; give them as `KubeContext.services`.
    """
    found: dict[ServiceAddress, ServicePort] = {}
    for key, comment in element_comments.items():
        parts = key.split(" . ")
        service = parse_service_port(comment)
        if len(parts) == 3 and parts[2].isdigit() and service is not None:
            found[ServiceAddress(parts[0], parts[1], int(parts[2]))] = service
    return found


# --- the writer's interface shared with tracelog.chains.docker and .netavark ------------------------

WRITER = "kube-proxy"
POLICY_WRITER = "kube-router"
# kube-proxy's nftables base chains (`<type>-<hook>`, later versions add `-pre-dnat`): hook, and whether an
# accept there only passes the packet on (nat); its regular chains run where their caller does
_NFT_BASE_CHAINS = {
    "filter-prerouting": NativeChain("PREROUTING", False),
    "filter-prerouting-pre-dnat": NativeChain("PREROUTING", False),
    "filter-input": NativeChain("INPUT", False),
    "filter-forward": NativeChain("FORWARD", False),
    "filter-output": NativeChain("OUTPUT", False),
    "filter-output-pre-dnat": NativeChain("OUTPUT", False),
    "filter-output-post-dnat": NativeChain("OUTPUT", False),
    "nat-prerouting": NativeChain("PREROUTING", True),
    "nat-output": NativeChain("OUTPUT", True),
    "nat-postrouting": NativeChain("POSTROUTING", True),
}
_NFT_NAT_CHAINS = frozenset({"services", "masquerading", "mark-for-masquerade"})
_NFT_ROLES = {
    "services": "dispatches traffic to cluster, external and load-balancer IPs and node ports to its service",
    "service-endpoints-check": "refuses new connections to services without endpoints",
    "nodeport-endpoints-check": "refuses new connections to node ports of services without endpoints",
    "reject-chain": "rejects traffic to services without endpoints",
    "cluster-ips-check": "refuses traffic to cluster IPs on ports no service has, and to unallocated cluster IPs",
    "firewall-check": "applies loadBalancerSourceRanges",
    "mark-for-masquerade": "marks a packet 0x4000 for masquerading",
    "masquerading": "masquerades packets marked 0x4000 and clears the mark",
}
_IPTABLES_ROLES = {
    "KUBE-SERVICES": "matches service addresses (nat) and refuses services without endpoints (filter)",
    "KUBE-EXTERNAL-SERVICES": "refuses external traffic to services without endpoints",
    "KUBE-NODEPORTS": "matches node ports (nat), accepts health-check node ports (filter)",
    "KUBE-MARK-MASQ": "marks a packet 0x4000 for masquerading in KUBE-POSTROUTING",
    "KUBE-POSTROUTING": "masquerades packets marked 0x4000 and clears the mark",
    "KUBE-FORWARD": "accepts forwarded service traffic (marked 0x4000) and its connections; drops INVALID",
    "KUBE-PROXY-FIREWALL": "drops load-balancer traffic loadBalancerSourceRanges does not allow",
    "KUBE-FIREWALL": "kubelet's: drops connections to 127.0.0.0/8 from outside",
}
_ROLE_WORDS = {
    "service": "dispatches to the endpoints of",
    "local": "dispatches to this node's endpoints of",
    "external": "takes external traffic (node port, external or load-balancer IP) to",
    "firewall": "applies loadBalancerSourceRanges to",
    "endpoint": "DNATs to one endpoint of",
}
_POLICY_ROLES = {
    "KUBE-POD-FW-": "a pod's NetworkPolicy firewall: runs its policies, rejects what none allows",
    "KUBE-NWPLCY-": "one NetworkPolicy's rules: marks what it allows",
    "KUBE-ROUTER-": "kube-router's entry to the pods' NetworkPolicy firewalls",
}


def native_chain(table: str, chain: str) -> NativeChain | None:
    """The hook and kind of a chain of kube-proxy's `kube-proxy` table (nftables mode); None for any other."""
    return table_native_chain(table, chain, NFTABLES_TABLE, _NFT_BASE_CHAINS, _regular_native_chain)


def _regular_native_chain(chain: str) -> NativeChain | None:
    """A nat, service, endpoint or firewall chain of kube-proxy's table; None for any other name."""
    decoded = decode_nftables_chain(chain)
    if chain in _NFT_NAT_CHAINS or (decoded is not None and decoded.role != "firewall"):
        return NativeChain(None, True)
    return NativeChain(None, False) if chain in _NFT_ROLES or decoded is not None else None


def describe_chain(table: str, chain: str, context: KubeContext = NO_CONTEXT) -> ChainMeaning | None:
    """What a kube-proxy (or kube-router) chain is for; per-service chains name their service (and endpoint)."""
    named = _named_chain(chain, context)
    if named is not None:
        endpoint = f" ({named.endpoint})" if named.endpoint else ""
        return ChainMeaning(WRITER, f"{_ROLE_WORDS.get(named.role, 'serves')} {named.service}{endpoint}")
    role = _NFT_ROLES.get(chain) if table == NFTABLES_TABLE else _IPTABLES_ROLES.get(chain)
    if role is not None:
        return ChainMeaning(WRITER, role)
    prefix = next((prefix for prefix in _POLICY_ROLES if chain.startswith(prefix)), None)
    return ChainMeaning(POLICY_WRITER, _POLICY_ROLES[prefix]) if prefix else None


def verdict_reason(table: str, chain: str, rule: str | None, verdict: str | None) -> Reason | None:
    """Why a kube-proxy or kube-router rule refused a packet; None for any other rule (accepts say theirs in
    `decode_step`)."""
    meaning = decode_step(RuleStep(table, chain, rule, verdict))
    if meaning is None or meaning.role != "refusal":
        return None
    return Reason(meaning.label or rule_comment(rule) or chain, meaning.text)
