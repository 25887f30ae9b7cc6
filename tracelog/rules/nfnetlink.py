"""nf_tables tables and base chains over netlink: listed with their comments, created marked, deleted only when empty.

iptables-nft creates `table ip raw` and a base chain on its first rule and
never removes them.  tracelog creates them itself first, each with a comment
saying it did, so that a later run, even after a crash, knows which ones are
its own; it deletes one only while it is empty, with `NLM_F_NONREC`, which
makes the kernel refuse (EBUSY) a table or chain that holds anything, in the
same transaction as the deletion.  No `nft` binary is needed.

Message layouts: `include/uapi/linux/netfilter/nf_tables.h`; comments are
libnftnl user data (`NFTNL_UDATA_TABLE_COMMENT`/`NFTNL_UDATA_CHAIN_COMMENT`,
type 0, the string with its NUL), as `nft` writes and prints them.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from tracelog.events import Family

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFNL_MSG_BATCH_BEGIN = 0x10
NFNL_MSG_BATCH_END = 0x11
NFT_MSG_NEWTABLE, NFT_MSG_GETTABLE, NFT_MSG_DELTABLE = 0, 1, 2
NFT_MSG_NEWCHAIN, NFT_MSG_GETCHAIN, NFT_MSG_DELCHAIN = 3, 4, 5
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP = 0x300
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
NLM_F_NONREC = 0x100  # on a deletion: refuse (EBUSY) what is not empty, instead of deleting its contents
NFTA_TABLE_NAME, NFTA_TABLE_USE, NFTA_TABLE_HANDLE, NFTA_TABLE_USERDATA = 1, 3, 4, 6
NFTA_CHAIN_TABLE, NFTA_CHAIN_HANDLE, NFTA_CHAIN_NAME, NFTA_CHAIN_HOOK = 1, 2, 3, 4
NFTA_CHAIN_POLICY, NFTA_CHAIN_USE, NFTA_CHAIN_TYPE, NFTA_CHAIN_USERDATA = 5, 6, 7, 12
NFTA_HOOK_HOOKNUM, NFTA_HOOK_PRIORITY = 1, 2
NLA_F_NESTED = 0x8000
NLA_TYPE_MASK = 0x3FFF
UDATA_COMMENT = 0
NF_ACCEPT = 1
NFPROTO: dict[Family, int] = {"ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}
NFT_FAMILY_NAME: dict[Family, str] = {"ipv4": "ip", "ipv6": "ip6"}
HOOKS = {"PREROUTING": 0, "INPUT": 1, "FORWARD": 2, "OUTPUT": 3, "POSTROUTING": 4}
RAW_PRIORITY = -300  # NF_IP_PRI_RAW and NF_IP6_PRI_RAW: where iptables-nft hooks the raw table
COMMENT_MAX = 255
TIMEOUT = 10.0
_HEADER = struct.Struct("=IHHII")
_NFGENMSG = struct.Struct("=BBH")
_ATTR = struct.Struct("=HH")


class NetlinkError(OSError):
    """The kernel refused a request (`errno` says why) or did not answer."""


@dataclass(frozen=True, slots=True)
class NfTable:
    """One nf_tables table: `use` counts what it holds (chains, sets, objects)."""

    family: Family
    name: str
    handle: int
    use: int
    comment: str | None


@dataclass(frozen=True, slots=True)
class NfChain:
    """One chain: `use` counts its rules and the jumps to it; a base chain has a hook."""

    family: Family
    table: str
    name: str
    handle: int
    use: int
    base: bool
    comment: str | None


# -- encoding ---------------------------------------------------------------------------------------


def attribute(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    length = _ATTR.size + len(payload)
    return _ATTR.pack(length, kind) + payload + b"\0" * (-length % 4)


def string(text: str) -> bytes:
    return text.encode() + b"\0"


def be32(value: int) -> bytes:
    return struct.pack(">i", value) if value < 0 else struct.pack(">I", value)


def be64(value: int) -> bytes:
    return struct.pack(">Q", value)


def comment_userdata(comment: str) -> bytes:
    """A comment as libnftnl user data: type 0, length, the string with its NUL."""
    data = string(comment)
    if len(data) > COMMENT_MAX:
        raise ValueError(f"comment longer than {COMMENT_MAX - 1} bytes")
    return bytes([UDATA_COMMENT, len(data)]) + data


def message(kind: int, flags: int, seq: int, family: int, payload: bytes = b"", res_id: int = 0) -> bytes:
    """One nfnetlink message: netlink header, nfgenmsg (family, version 0, resource id), attributes."""
    body = _NFGENMSG.pack(family, 0, socket.htons(res_id)) + payload
    return _HEADER.pack(_HEADER.size + len(body), kind, flags, seq, 0) + body


def nft_type(command: int) -> int:
    return NFNL_SUBSYS_NFTABLES << 8 | command


def batch(seq: int, *messages: bytes) -> bytes:
    """Messages wrapped in one nf_tables transaction: all of them happen, or none."""
    begin = message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq, socket.AF_UNSPEC, res_id=NFNL_SUBSYS_NFTABLES)
    end = message(
        NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq + len(messages) + 1, socket.AF_UNSPEC, res_id=NFNL_SUBSYS_NFTABLES
    )
    return begin + b"".join(messages) + end


# -- decoding ---------------------------------------------------------------------------------------


def attributes(data: bytes) -> dict[int, bytes]:
    """The attributes of one message body (after nfgenmsg), by type; nested ones keep their raw bytes."""
    found: dict[int, bytes] = {}
    offset = 0
    while offset + _ATTR.size <= len(data):
        length, kind = _ATTR.unpack_from(data, offset)
        if length < _ATTR.size or offset + length > len(data):
            break
        found[kind & NLA_TYPE_MASK] = data[offset + _ATTR.size : offset + length]
        offset += length + (-length % 4)
    return found


def comment_of(userdata: bytes | None) -> str | None:
    """The comment in libnftnl user data, or None."""
    offset = 0
    while userdata is not None and offset + 2 <= len(userdata):
        kind, length = userdata[offset], userdata[offset + 1]
        value = userdata[offset + 2 : offset + 2 + length]
        if kind == UDATA_COMMENT:
            return value.split(b"\0", 1)[0].decode(errors="replace")
        offset += 2 + length
    return None


def _text(value: bytes | None) -> str:
    return (value or b"").split(b"\0", 1)[0].decode(errors="replace")


def _number(value: bytes | None) -> int:
    if not value:
        return 0
    return int.from_bytes(value, "big")


def table_from(family: Family, body: bytes) -> NfTable:
    found = attributes(body)
    return NfTable(
        family,
        _text(found.get(NFTA_TABLE_NAME)),
        _number(found.get(NFTA_TABLE_HANDLE)),
        _number(found.get(NFTA_TABLE_USE)),
        comment_of(found.get(NFTA_TABLE_USERDATA)),
    )


def chain_from(family: Family, body: bytes) -> NfChain:
    found = attributes(body)
    return NfChain(
        family,
        _text(found.get(NFTA_CHAIN_TABLE)),
        _text(found.get(NFTA_CHAIN_NAME)),
        _number(found.get(NFTA_CHAIN_HANDLE)),
        _number(found.get(NFTA_CHAIN_USE)),
        NFTA_CHAIN_HOOK in found,
        comment_of(found.get(NFTA_CHAIN_USERDATA)),
    )


def replies(data: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    """(type, flags, seq, payload after the netlink header) of each message in one datagram."""
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, kind, flags, seq, _pid = _HEADER.unpack_from(data, offset)
        if length < _HEADER.size:
            return
        yield kind, flags, seq, data[offset + _HEADER.size : offset + length]
        offset += length + (-length % 4)


# -- the socket ---------------------------------------------------------------------------------------


class Nftables:
    """A NETLINK_NETFILTER socket in the current network namespace; needs CAP_NET_ADMIN."""

    def __init__(self, timeout: float = TIMEOUT) -> None:
        try:
            self._socket = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
            self._socket.settimeout(timeout)
            self._socket.bind((0, 0))
        except OSError as error:
            raise NetlinkError(error.errno, f"cannot open a netfilter netlink socket: {error.strerror}") from error
        self._seq = int.from_bytes(os.urandom(2), "big")

    def close(self) -> None:
        self._socket.close()

    def __enter__(self) -> Nftables:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def tables(self, family: Family) -> list[NfTable]:
        return [table_from(family, body) for body in self._dump(NFT_MSG_GETTABLE, family)]

    def chains(self, family: Family, table: str) -> list[NfChain]:
        chains = (chain_from(family, body) for body in self._dump(NFT_MSG_GETCHAIN, family))
        return [chain for chain in chains if chain.table == table]

    def create_table(self, family: Family, name: str, comment: str) -> bool:
        """Create the table with the comment; False when it already exists (it is then not ours)."""
        payload = attribute(NFTA_TABLE_NAME, string(name)) + attribute(NFTA_TABLE_USERDATA, comment_userdata(comment))
        return self._change(NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_EXCL, family, payload, errno.EEXIST)

    def create_base_chain(self, family: Family, table: str, name: str, priority: int, comment: str) -> bool:
        """Create a filter base chain hooked like iptables-nft's, policy accept; False when it exists already."""
        hook = attribute(NFTA_HOOK_HOOKNUM, be32(HOOKS[name])) + attribute(NFTA_HOOK_PRIORITY, be32(priority))
        payload = b"".join(
            (
                attribute(NFTA_CHAIN_TABLE, string(table)),
                attribute(NFTA_CHAIN_NAME, string(name)),
                attribute(NFTA_CHAIN_HOOK | NLA_F_NESTED, hook),
                attribute(NFTA_CHAIN_POLICY, be32(NF_ACCEPT)),
                attribute(NFTA_CHAIN_TYPE, string("filter")),
                attribute(NFTA_CHAIN_USERDATA, comment_userdata(comment)),
            )
        )
        return self._change(NFT_MSG_NEWCHAIN, NLM_F_CREATE | NLM_F_EXCL, family, payload, errno.EEXIST)

    def delete_empty_chain(self, chain: NfChain) -> bool:
        """Delete the chain by handle unless it holds a rule or is jumped to; False when it does or is gone."""
        payload = attribute(NFTA_CHAIN_TABLE, string(chain.table)) + attribute(NFTA_CHAIN_HANDLE, be64(chain.handle))
        return self._change(NFT_MSG_DELCHAIN, NLM_F_NONREC, chain.family, payload, errno.EBUSY, errno.ENOENT)

    def delete_empty_table(self, table: NfTable) -> bool:
        """Delete the table by handle unless it holds anything; False when it does or is gone."""
        payload = attribute(NFTA_TABLE_HANDLE, be64(table.handle))
        return self._change(NFT_MSG_DELTABLE, NLM_F_NONREC, table.family, payload, errno.EBUSY, errno.ENOENT)

    def _next_seq(self, count: int = 1) -> int:
        seq = self._seq
        self._seq = (self._seq + count) & 0xFFFFFFFF
        return seq

    def _change(self, command: int, flags: int, family: Family, payload: bytes, *refusals: int) -> bool:
        """Send one change in its own transaction; True when done, False for an expected refusal."""
        seq = self._next_seq(3)
        request = message(nft_type(command), NLM_F_REQUEST | NLM_F_ACK | flags, seq + 1, NFPROTO[family], payload)
        self._send(batch(seq, request))
        code = self._ack(seq + 1, range(seq, seq + 3))
        if code == 0:
            return True
        if code in refusals:
            return False
        raise NetlinkError(code, f"nf_tables refused the change: {os.strerror(code)}")

    def _dump(self, command: int, family: Family) -> Iterator[bytes]:
        seq = self._next_seq()
        self._send(message(nft_type(command), NLM_F_REQUEST | NLM_F_DUMP, seq, NFPROTO[family]))
        while True:
            for kind, _flags, reply_seq, payload in replies(self._receive()):
                if reply_seq != seq:
                    continue
                if kind == NLMSG_DONE:
                    return
                if kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0]
                    raise NetlinkError(code, f"nf_tables refused to list: {os.strerror(code)}")
                yield payload[_NFGENMSG.size :]

    def _ack(self, seq: int, batch_seqs: range) -> int:
        """The errno the kernel answered for message `seq` (0 for success), or for its batch when that failed."""
        while True:
            for kind, _flags, reply_seq, payload in replies(self._receive()):
                if kind != NLMSG_ERROR or reply_seq not in batch_seqs:
                    continue
                code = -int(struct.unpack_from("=i", payload)[0])
                if reply_seq == seq or code:
                    return code

    def _send(self, data: bytes) -> None:
        try:
            self._socket.send(data)
        except OSError as error:
            raise NetlinkError(error.errno, f"cannot talk to nf_tables: {error.strerror}") from error

    def _receive(self) -> bytes:
        try:
            return self._socket.recv(1 << 20)
        except TimeoutError as error:
            raise NetlinkError(errno.ETIMEDOUT, "nf_tables did not answer") from error
        except OSError as error:
            raise NetlinkError(error.errno, f"cannot talk to nf_tables: {error.strerror}") from error
