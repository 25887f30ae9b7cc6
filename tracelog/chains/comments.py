"""The comment a rule carries, as iptables-save and nft print it.

iptables prints `-m comment --comment "two words"` (a single word unquoted);
nft prints `comment "ICC"`, before the handle (`# handle 27`) when there is
one.  Writers put their reason for a rule there.
"""

from __future__ import annotations

import functools
import re

KERNEL_COMMENT_CHARS = 256
"""At least as many characters as a rule's comment holds in the kernel (iptables' comment match keeps 255
bytes, nft's user data fewer; a character is one byte or more): a longer comment is no writer's, only a
paste's."""

# a quoted comment may hold escaped quotes (iptables-save writes \" inside)
_QUOTED = r'"(?P<quoted>[^"\\]*(?:\\.[^"\\]*)*)"'
_IPTABLES = re.compile(rf"(?:^|\s)--comment\s+(?:{_QUOTED}|(?P<bare>\S+))")
_NFT = re.compile(rf"(?:^|\s)comment\s+{_QUOTED}")


@functools.lru_cache(maxsize=4096)
def rule_comment(rule: str | None) -> str | None:
    """The first comment in a rule's text (iptables or nft syntax), unquoted; None without one."""
    if not rule:
        return None
    found = _IPTABLES.search(rule) or _NFT.search(rule)
    if found is None:
        return None
    quoted = found["quoted"]
    return quoted.replace('\\"', '"') if quoted is not None else found["bare"]
