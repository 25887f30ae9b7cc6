"""Redaction: packet records with addresses, MACs, host and container names replaced consistently.

The same value always gets the same replacement, so a redacted trace reads
as the original does; rule text, chains, verdicts and interface names are
kept, but for the addresses in them (kube-proxy's nftables mode names chains
after endpoints: `endpoint-…-default/web/tcp/http__10.244.1.11/8080`).  The
scheme:

- IPv4: each /16 gets a /16 of its own in 10.0.0.0/8 in the order the
  networks appear (10.1, 10.2, …; after 255 of them 240.0 up to 254.255);
  the lower two bytes are kept, so every prefix of /16 or longer keeps its
  shape: 172.18.0.2 and 172.18.0.0/16 become 10.1.0.2 and 10.1.0.0/16.  A
  trace with more networks than that gets tokens (`ipv4-4097.0.2`), never a
  shared replacement.  0.0.0.0/8, loopback, multicast and the broadcast
  address stay as they are.
- IPv6: each /48 becomes fd00:N::/48 in order of appearance, the subnet
  (bits 48-63) is kept; interface identifiers below 0x10000 (`::1`, `::2`)
  are kept, others (EUI-64 ones carry a MAC) become `a:0:0:N`; link-local
  fe80::/64 keeps its prefix; ::, ::1 and multicast stay, but the address
  bits a solicited-node group (ff02::1:ffXX:XXXX) carries are replaced;
  IPv4-mapped addresses map their IPv4 part.
- MACs (six colon-separated bytes; longer runs such as the kernel's
  `MAC=` field in six-byte pieces, the rest kept) become 02:00:00:XX:XX:XX.
- Host names become `host-N`, container names `container-N`, network names
  (the names of bridges) `network-N`; Docker's own network names `bridge`,
  `host` and `none` stay.  Known names are replaced inside free text too.
- Input file names become `input-N` (`-`, standard input, stays).
- Any text field, including fields added to the records later, has its
  addresses, MACs and known names replaced.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from typing import Any

from tracelog.names import Names
from tracelog.records.packet import PacketRecord

_ADDRESS_KEYS = frozenset({"src", "dst"})
_NAME_KINDS = {
    "host": "host",
    **dict.fromkeys(("src_name", "dst_name", "endpoint_name", "physin_name", "physout_name"), "container"),
    **dict.fromkeys(("in_name", "out_name"), "network"),
}
# Values that name nothing of the user's: numbers, protocol and netfilter words, interface names.
_KEPT_KEYS = frozenset(
    {
        "family",
        "proto",
        "tcp_flags",
        "first_seen",
        "last_seen",
        "table",
        "kind",
        "handle",
        "hook",
        "time",
        "in",
        "out",
        "physin",
        "physout",
        "nf_family",
        "field",
        "trace_id",
    }
)
_KEPT_NAMES = frozenset({"bridge", "host", "none"})
_KNOWN_NAME_MIN = 2
_TEXT_CACHE = 1 << 16

_MAC = r"(?<![0-9A-Za-z:])[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5,}(?![0-9A-Za-z:])"
_IPV6 = r"(?<![0-9A-Za-z:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{1,4})?(?![0-9A-Za-z:.])"
_IPV4 = r"(?<![0-9A-Za-z.])\d{1,3}(?:\.\d{1,3}){3}(?![0-9A-Za-z]|\.\d)"
_TEXT_PATTERN = re.compile(f"(?P<mac>{_MAC})|(?P<ipv6>{_IPV6})|(?P<ipv4>{_IPV4})")

_V4_KEPT = tuple(ipaddress.ip_network(net) for net in ("0.0.0.0/8", "127.0.0.0/8", "224.0.0.0/4"))
_V4_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
_LINK_LOCAL = ipaddress.IPv6Network("fe80::/64")
_SOLICITED = ipaddress.IPv6Network("ff02::1:ff00:0/104")
_SMALL_IID = 1 << 16
_V4_NETWORKS = 255 + 15 * 256  # 10.1-10.255, then 240.0-254.255


class Redactor:
    """Replaces addresses, MACs and names, the same value by the same token for as long as it lives.

    Its memory grows with the distinct values seen (a few per host), not
    with the packets.  `names` are names known beforehand (from `--names`),
    replaced inside free text even before a record carries them.
    """

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._v4_networks: dict[int, int] = {}
        self._v6_prefixes: dict[int, int] = {}
        self._v6_iids: dict[int, int] = {}
        self._solicited: dict[int, int] = {}
        self._macs: dict[str, str] = {}
        self._names: dict[str, str] = {}
        self._name_counts: dict[str, int] = {}
        self._sources: dict[str, str] = {}
        self._texts: dict[str, str] = {}
        self._name_pattern: re.Pattern[str] | None = None
        for name in names:
            self.name(name, "container")

    @classmethod
    def from_names(cls, names: Names) -> Redactor:
        """A redactor that knows the containers and networks of `--names` before any record names them."""
        redactor = cls()
        for name in sorted({*names.containers.values(), *names.veths.values()}):
            redactor.name(name, "container")
        for name in sorted(set(names.networks.values())):
            redactor.name(name, "network")
        return redactor

    # ---- single values -----------------------------------------------------------------------------

    def address(self, text: str) -> str:
        """An address (or any text holding addresses) with each address replaced."""
        return self.text(text)

    def name(self, name: str, kind: str) -> str:
        """A host, container or network name as `host-1`, `container-2`, `network-1`."""
        if name in _KEPT_NAMES or not name:
            return name
        token = self._names.get(name)
        if token is None:
            count = self._name_counts[kind] = self._name_counts.get(kind, 0) + 1
            token = self._names[name] = f"{kind}-{count}"
            self._name_pattern = None
            self._texts.clear()
        return token

    def source(self, source: str) -> str:
        """An input file's name as `input-N`; `-` (standard input) as it is."""
        if source == "-":
            return source
        return self._sources.setdefault(source, f"input-{len(self._sources) + 1}")

    def text(self, text: str) -> str:
        """Free text (rule text, a note) with its addresses, MACs and known names replaced."""
        done = self._texts.get(text)
        if done is not None:
            return done
        done = _TEXT_PATTERN.sub(self._replace_match, text)
        pattern = self._known_names()
        if pattern is not None:
            done = pattern.sub(lambda match: self._names[match.group(0)], done)
        if len(self._texts) >= _TEXT_CACHE:
            self._texts.clear()
        self._texts[text] = done
        return done

    # ---- records -------------------------------------------------------------------------------------

    def record(self, record: PacketRecord) -> PacketRecord:
        """A redacted copy of a packet record (or any part of one); the original is left as it is.

        The record's names are learnt first, so that its own rule text is
        rid of them too.
        """
        self._learn_names(record)
        redacted: PacketRecord = self._value("", record)
        return redacted

    def _learn_names(self, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                kind = _NAME_KINDS.get(key)
                if kind is not None and isinstance(item, str):
                    self.name(item, kind)
                elif isinstance(item, dict | list):
                    self._learn_names(item)
        elif isinstance(value, list):
            for item in value:
                self._learn_names(item)

    def _value(self, key: str, value: Any) -> Any:
        if isinstance(value, dict):
            if "field" in value and "from" in value:  # a rewrite: ports are kept, addresses replaced
                return {k: self._rewrite_value(value["field"], k, v) for k, v in value.items()}
            return {k: self._value(k, v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._value(key, item) for item in value]
        if not isinstance(value, str):
            return value
        return self._string(key, value)

    def _string(self, key: str, value: str) -> str:
        if key in _KEPT_KEYS:
            return value
        kind = _NAME_KINDS.get(key)
        if kind is not None:
            return self.name(value, kind)
        if key == "source":
            return self.source(value)
        return self.text(value)

    def _rewrite_value(self, field: str, key: str, value: Any) -> Any:
        if key in ("from", "to") and isinstance(value, str):
            return self.address(value) if field in _ADDRESS_KEYS else self.text(value)
        return self._value(key, value)

    # ---- the replacements --------------------------------------------------------------------------

    def _replace_match(self, match: re.Match[str]) -> str:
        found = match.group(0)
        if match.group("mac"):
            return self._mac_run(found)
        if match.group("ipv6"):
            try:
                return self._ipv6(ipaddress.IPv6Address(found))
            except ValueError:
                return found
        octets = [int(part) for part in found.split(".")]
        if any(octet > 255 for octet in octets):
            return found
        return self._ipv4(ipaddress.IPv4Address(bytes(octets)))

    def _ipv4(self, address: ipaddress.IPv4Address) -> str:
        if address == _V4_BROADCAST or any(address in network for network in _V4_KEPT):
            return str(address)
        value = int(address)
        network, low = value >> 16, value & 0xFFFF
        index = self._v4_networks.setdefault(network, len(self._v4_networks) + 1)
        if index > _V4_NETWORKS:
            return f"ipv4-{index}.{low >> 8}.{low & 0xFF}"
        high = (10 << 8) | index if index <= 255 else ((240 << 8) + index - 256)
        return str(ipaddress.IPv4Address((high << 16) | low))

    def _ipv6(self, address: ipaddress.IPv6Address) -> str:
        if address.ipv4_mapped is not None:
            return f"::ffff:{self._ipv4(address.ipv4_mapped)}"
        if address in _SOLICITED:
            low = int(address) & 0xFFFFFF
            index = self._solicited.setdefault(low, len(self._solicited) + 1)
            return str(ipaddress.IPv6Address(int(_SOLICITED.network_address) | (index & 0xFFFFFF)))
        if address.is_unspecified or address.is_loopback or address.is_multicast:
            return str(address)
        value = int(address)
        prefix, subnet, iid = value >> 80, (value >> 64) & 0xFFFF, value & ((1 << 64) - 1)
        if iid >= _SMALL_IID:
            iid = (0xA << 48) | self._v6_iids.setdefault(iid, len(self._v6_iids) + 1)
        if address in _LINK_LOCAL:
            return str(ipaddress.IPv6Address(int(_LINK_LOCAL.network_address) | iid))
        index = self._v6_prefixes.setdefault(prefix, len(self._v6_prefixes) + 1)
        mapped = (0xFD00 << 112) | ((index & 0xFFFF) << 96) | ((index >> 16 & 0xFFFF) << 80) | (subnet << 64) | iid
        return str(ipaddress.IPv6Address(mapped))

    def _mac_run(self, text: str) -> str:
        """Six bytes at a time, each a MAC of its own; what is left over (an ethertype) is kept."""
        pairs = text.split(":")
        whole = len(pairs) - len(pairs) % 6
        macs = [self._mac(":".join(pairs[at : at + 6]).lower()) for at in range(0, whole, 6)]
        return ":".join([*macs, *pairs[whole:]])

    def _mac(self, mac: str) -> str:
        if mac in ("00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff"):
            return mac
        found = self._macs.get(mac)
        if found is None:
            index = len(self._macs) + 1
            found = self._macs[mac] = "02:00:00:" + ":".join(f"{(index >> shift) & 0xFF:02x}" for shift in (16, 8, 0))
        return found

    def _known_names(self) -> re.Pattern[str] | None:
        if self._name_pattern is None and self._names:
            names = sorted((name for name in self._names if len(name) >= _KNOWN_NAME_MIN), key=len, reverse=True)
            if names:
                alternatives = "|".join(map(re.escape, names))
                self._name_pattern = re.compile(f"(?<![\\w.-])(?:{alternatives})(?![\\w.-])")
        return self._name_pattern


def redact_records(records: Iterable[PacketRecord], redactor: Redactor | None = None) -> Iterator[PacketRecord]:
    """Each record redacted (see the module's scheme), one redactor for the whole stream."""
    redactor = redactor or Redactor()
    return map(redactor.record, records)
