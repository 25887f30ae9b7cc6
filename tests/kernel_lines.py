"""Render a `Header` the way the kernel packet logger prints it (nf_log_syslog.c).

Only the tests use this: it lets hypothesis generate lines the grammar has
never seen and check that parsing gives the header back.
"""

from __future__ import annotations

from tracelog.events import Header


def _ipv4(h: Header) -> list[str]:
    parts = [
        f"SRC={h.src}",
        f"DST={h.dst}",
        f"LEN={h.length}",
        f"TOS=0x{h.tos:02X}",
        f"PREC=0x{h.prec:02X}",
        f"TTL={h.ttl}",
        f"ID={h.ip_id}",
        *h.ip_flags,
    ]
    if h.frag is not None:
        parts.append(h.frag)
    if h.ip_options is not None:
        parts.append(f"OPT ({h.ip_options})")
    return parts


def _ipv6(h: Header) -> list[str]:
    return [
        f"SRC={h.src.exploded}",
        f"DST={h.dst.exploded}",
        f"LEN={h.length}",
        f"TC={h.tc}",
        f"HOPLIMIT={h.ttl}",
        f"FLOWLBL={h.flowlabel}",
    ]


def _transport(h: Header) -> list[str]:
    parts = [f"PROTO={h.proto}"]
    if h.proto == "TCP":
        parts += [
            f"SPT={h.sport}",
            f"DPT={h.dport}",
            f"SEQ={h.tcp_seq}",
            f"ACK={h.tcp_ack}",
            f"WINDOW={h.tcp_window}",
            f"RES=0x{h.tcp_res:02x}",
            *h.tcp_flags,
            f"URGP={h.tcp_urgp}",
        ]
        if h.tcp_options is not None:
            parts.append(f"OPT ({h.tcp_options})")
    elif h.proto == "UDP":
        parts += [f"SPT={h.sport}", f"DPT={h.dport}", f"LEN={h.udp_length}"]
    elif h.proto in ("ICMP", "ICMPv6"):
        parts += [f"TYPE={h.icmp_type}", f"CODE={h.icmp_code}"]
        if h.icmp_id is not None:
            parts += [f"ID={h.icmp_id}", f"SEQ={h.icmp_seq}"]
        if h.inner is not None:
            parts.append("[" + " ".join(render_fields(h.inner)) + " ]")
        if h.icmp_mtu is not None:
            parts.append(f"MTU={h.icmp_mtu}")
    return parts


def render_fields(h: Header) -> list[str]:
    """The fields of one header in the kernel's order."""
    parts = []
    if h.in_iface is not None or h.out_iface is not None:
        parts += [f"IN={h.in_iface or ''}", f"OUT={h.out_iface or ''}"]
        parts += [f"{key}={value}" for key, value in (("PHYSIN", h.physin), ("PHYSOUT", h.physout)) if value]
        if h.mac is not None:
            parts.append(f"MAC={h.mac}")
    parts += _ipv4(h) if h.family == "ipv4" else _ipv6(h)
    parts += _transport(h)
    if h.uid is not None:
        parts += [f"UID={h.uid}", f"GID={h.gid}"]
    if h.mark is not None:
        parts.append(f"MARK=0x{h.mark:x}")
    return parts


def render_line(prefix: str, tag: str, h: Header) -> str:
    """A whole kernel-log TRACE line: `<prefix>TRACE: <tag> <fields> `."""
    return f"{prefix}TRACE: {tag} " + " ".join(render_fields(h)) + " "
