"""TRACE rules: what to install (`spec`), where (`detect`), how (`legacy`, `nft`, `nfnetlink`), when (`manage`, `live`).

Nothing here is imported by `tracelog parse`, and python-iptables only by the
legacy backend, so reading logs works on machines without iptables.
"""
