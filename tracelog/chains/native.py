"""The native nf_tables chains of known writers: the hook a base chain runs at, and whether it decides.

An nft trace names a chain but not its hook or type, which the correlator and
the verdict need; for chains of writers tracelog knows (Docker 29's
`docker-bridges`, netavark's `inet netavark`, kube-proxy's `ip kube-proxy`)
their own code says both.
"""

from __future__ import annotations

import functools

from tracelog.chains import NativeChain, docker, kubernetes, netavark


@functools.lru_cache(maxsize=1024)
def native_chain(table: str, chain: str) -> NativeChain | None:
    """What a known writer's native chain is; None for a chain tracelog knows nothing of."""
    return (
        docker.native_chain(table, chain)
        or netavark.native_chain(table, chain)
        or kubernetes.native_chain(table, chain)
    )
