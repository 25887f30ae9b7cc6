"""nf_tables over netlink without a kernel: the bytes tracelog sends, and reading the kernel's answers.

The kernel side (creating marked tables, refusing to delete non-empty ones)
runs in tests/lab/test_rules_lab.py.
"""

from __future__ import annotations

import socket
import struct

import pytest

from tracelog.rules import nfnetlink
from tracelog.rules.nfnetlink import (
    NFTA_CHAIN_HANDLE,
    NFTA_CHAIN_HOOK,
    NFTA_CHAIN_NAME,
    NFTA_CHAIN_TABLE,
    NFTA_CHAIN_USE,
    NFTA_CHAIN_USERDATA,
    NFTA_TABLE_HANDLE,
    NFTA_TABLE_NAME,
    NFTA_TABLE_USE,
    NFTA_TABLE_USERDATA,
    NLA_F_NESTED,
    NfChain,
    NfTable,
    attribute,
    batch,
    be32,
    be64,
    chain_from,
    comment_of,
    comment_userdata,
    message,
    replies,
    string,
    table_from,
)


def test_attributes_are_padded_to_four_bytes() -> None:
    assert attribute(NFTA_TABLE_NAME, string("raw")) == struct.pack("=HH", 8, 1) + b"raw\0"
    assert attribute(NFTA_TABLE_NAME, string("filter")) == struct.pack("=HH", 11, 1) + b"filter\0" + b"\0"
    assert nfnetlink.attributes(attribute(1, b"ab") + attribute(3, be32(7))) == {1: b"ab", 3: be32(7)}


def test_comments_are_libnftnl_user_data() -> None:
    """Type 0, the length with the NUL, the text with its NUL: what `nft list ruleset` prints as `comment "…"`."""
    assert comment_userdata("tracelog: x") == b"\x00\x0ctracelog: x\x00"
    assert comment_of(comment_userdata("tracelog: x")) == "tracelog: x"
    assert comment_of(b"\x01\x02ab" + comment_userdata("second")) == "second"  # other user data before it
    assert comment_of(None) is None
    assert comment_of(b"\x00\x40short") == "short"  # a length past the end is cut, not trusted
    with pytest.raises(ValueError, match="longer than 254"):
        comment_userdata("x" * 255)


def test_a_change_is_one_transaction() -> None:
    inner = message(nfnetlink.nft_type(nfnetlink.NFT_MSG_DELTABLE), 0x105, 11, socket.AF_INET)
    sent = batch(10, inner)
    messages = list(replies(sent))
    assert [(kind, seq) for kind, _flags, seq, _ in messages] == [(0x10, 10), (0x0A02, 11), (0x11, 12)]
    family, version, res_id = struct.unpack_from("=BBH", messages[0][3])
    assert (family, version, socket.ntohs(res_id)) == (socket.AF_UNSPEC, 0, nfnetlink.NFNL_SUBSYS_NFTABLES)
    assert messages[1][1] == 0x105  # NLM_F_REQUEST | NLM_F_ACK | NLM_F_NONREC


def test_tables_and_chains_from_dump_messages() -> None:
    body = (
        attribute(NFTA_TABLE_NAME, string("raw"))
        + attribute(NFTA_TABLE_HANDLE, be64(3))
        + attribute(NFTA_TABLE_USE, be32(2))
        + attribute(NFTA_TABLE_USERDATA, comment_userdata("tracelog: y"))
    )
    assert table_from("ipv4", body) == NfTable("ipv4", "raw", 3, 2, "tracelog: y")
    hook = attribute(1, be32(0)) + attribute(2, be32(-300))
    chain = (
        attribute(NFTA_CHAIN_TABLE, string("raw"))
        + attribute(NFTA_CHAIN_HANDLE, be64(9))
        + attribute(NFTA_CHAIN_NAME, string("PREROUTING"))
        + attribute(NFTA_CHAIN_HOOK | NLA_F_NESTED, hook)
        + attribute(NFTA_CHAIN_USE, be32(0))
        + attribute(NFTA_CHAIN_USERDATA, comment_userdata("tracelog: z"))
    )
    assert chain_from("ipv6", chain) == NfChain("ipv6", "raw", "PREROUTING", 9, 0, True, "tracelog: z")
    user_chain = attribute(NFTA_CHAIN_TABLE, string("filter")) + attribute(NFTA_CHAIN_NAME, string("DOCKER"))
    assert chain_from("ipv4", user_chain) == NfChain("ipv4", "filter", "DOCKER", 0, 0, False, None)


def test_truncated_answers_are_read_as_far_as_they_go() -> None:
    whole = attribute(NFTA_TABLE_NAME, string("raw")) + attribute(NFTA_TABLE_USE, be32(1))
    assert nfnetlink.attributes(whole[:-2]) == {NFTA_TABLE_NAME: b"raw\0"}
    assert list(replies(message(1, 0, 1, 2)[:10])) == []
