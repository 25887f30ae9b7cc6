"""Why a known writer's rule decided a packet's fate: each writer's reading of its own rules, in one place."""

from __future__ import annotations

import functools

from tracelog.chains import Reason, docker, kubernetes, netavark


@functools.lru_cache(maxsize=1024)
def verdict_reason(table: str, chain: str, rule: str | None, verdict: str | None) -> Reason | None:
    """The reason a rule of Docker, netavark, kube-proxy or kube-router gives for its verdict; None for a rule no
    known writer explains."""
    return (
        docker.verdict_reason(table, chain, rule, verdict)
        or netavark.verdict_reason(table, chain, rule, verdict)
        or kubernetes.verdict_reason(table, chain, rule, verdict)
    )
