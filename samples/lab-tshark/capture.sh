#!/bin/bash
# Captures legacy TRACE records handed to nfnetlink_log (NFLOG group 0) with
# `tshark -i nflog`, in network namespaces of their own, and renders them as
# people paste them: tshark's fields (`-T fields -e nflog.prefix -e ip`) and
# its packet tree (`-V`).
#
#   td-nflog-peer (10.98.0.2 fd98::2, td-nf1) ── td-nf0 (10.98.0.1 fd98::1) in td-nflog
#
# In td-nflog the kernel's log backend for IPv4 and IPv6 is nfnetlink_log
# (net.netfilter.nf_log.2 and .10, per namespace), so the TRACE records of
# iptables-legacy's `-j TRACE` go to NFLOG group 0 instead of the kernel log.
#
# Run as root from the repository root: bash samples/lab-tshark/capture.sh
# It writes samples/lab-tshark/nflog.pcapng (what tshark captured), the
# renderings, ruleset.iptables-save / ruleset.ip6tables-save and meta.json,
# and deletes its namespaces whatever happens.
set -euo pipefail
OUT=samples/lab-tshark
NS=td-nflog
PEER=td-nflog-peer
BUSYBOX=/bin/busybox
SETTLE=2

cleanup() {
	for pid in $(jobs -p); do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	for ns in "$NS" "$PEER"; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT

ip netns add "$NS"
ip netns add "$PEER"
ip link add td-nf0 netns "$NS" type veth peer name td-nf1 netns "$PEER"
ip -n "$NS" addr add 10.98.0.1/24 dev td-nf0
ip -n "$NS" addr add fd98::1/64 dev td-nf0 nodad
ip -n "$PEER" addr add 10.98.0.2/24 dev td-nf1
ip -n "$PEER" addr add fd98::2/64 dev td-nf1 nodad
for ns in "$NS" "$PEER"; do ip -n "$ns" link set lo up; done
ip -n "$NS" link set td-nf0 up
ip -n "$PEER" link set td-nf1 up

ip netns exec "$NS" sysctl -q -w net.netfilter.nf_log.2=nfnetlink_log net.netfilter.nf_log.10=nfnetlink_log
ip netns exec "$NS" iptables-legacy-restore <<-'EOF'
	*raw
	:PREROUTING ACCEPT [0:0]
	:OUTPUT ACCEPT [0:0]
	-A PREROUTING -s 10.98.0.2/32 -j TRACE
	-A OUTPUT -d 10.98.0.2/32 -j TRACE
	COMMIT
	*filter
	:INPUT ACCEPT [0:0]
	:FORWARD DROP [0:0]
	:OUTPUT ACCEPT [0:0]
	-A INPUT -p icmp -m icmp --icmp-type 8 -j ACCEPT
	-A INPUT -p tcp -m tcp --dport 9 -j REJECT --reject-with tcp-reset
	COMMIT
EOF
ip netns exec "$NS" ip6tables-legacy-restore <<-'EOF'
	*raw
	:PREROUTING ACCEPT [0:0]
	:OUTPUT ACCEPT [0:0]
	-A PREROUTING -s fd98::2/128 -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j TRACE
	-A OUTPUT -d fd98::2/128 -p ipv6-icmp -m icmp6 --icmpv6-type 129 -j TRACE
	COMMIT
EOF
ip netns exec "$NS" iptables-legacy-save >"$OUT/ruleset.iptables-save"
ip netns exec "$NS" ip6tables-legacy-save >"$OUT/ruleset.ip6tables-save"

ip netns exec "$NS" tshark -q -i nflog -w "$OUT/nflog.pcapng" 2>/dev/null &
tshark_pid=$!
sleep "$SETTLE"
commands=(
	"ping -c 2 -W 1 10.98.0.1"
	"nc -w 1 10.98.0.1 9"
	"ping -6 -c 1 -W 1 fd98::1"
)
statuses=()
for command in "${commands[@]}"; do
	status=0
	ip netns exec "$PEER" $BUSYBOX $command </dev/null >/dev/null 2>&1 || status=$?
	statuses+=("$status")
done
sleep "$SETTLE"
kill -INT "$tshark_pid"
wait "$tshark_pid" || true

traced() {
	ip netns exec "$NS" "$1" -t raw -L -v -x -n | awk '$3 == "TRACE" { sum += $1 } END { print sum + 0 }'
}
ipv4=$(traced iptables-legacy)
ipv6=$(traced ip6tables-legacy)

pcap="$OUT/nflog.pcapng"
tshark -r "$pcap" -T fields -e nflog.prefix -e ip -e ipv6 >"$OUT/prefix-ip.tshark" 2>/dev/null
tshark -r "$pcap" -T fields -e nflog.prefix -e ip.src -e ip.dst -e ipv6.src -e ipv6.dst >"$OUT/prefix-addresses.tshark" 2>/dev/null
tshark -r "$pcap" -V >"$OUT/verbose.tshark" 2>/dev/null

run_list=$(for at in "${!commands[@]}"; do
	jq -n --arg c "ip netns exec $PEER $BUSYBOX ${commands[$at]}" --argjson r "${statuses[$at]}" '{command: $c, returncode: $r}'
done | jq -s .)
render() {
	jq -n --arg r "$1" --arg d "$2" --argjson lines "$(wc -l <"$OUT/$3")" '{rendering: $r, description: $d, lines: $lines}'
}
jq -n --arg at "$(date -u +%Y-%m-%dT%H:%M:%S+00:00)" --arg kernel "$(uname -r)" \
	--arg tshark "$(tshark --version 2>/dev/null | head -1)" --arg ipt "$(iptables-legacy --version)" \
	--arg bb "$($BUSYBOX 2>&1 | head -1)" --argjson commands "$run_list" \
	--argjson ipv4 "$ipv4" --argjson ipv6 "$ipv6" \
	--argjson fields "$(render "tshark -r nflog.pcapng -T fields -e nflog.prefix -e ip -e ipv6" "one line a record: the prefix, then the IP header's summary (tab-separated; the other family's column empty)" prefix-ip.tshark)" \
	--argjson addresses "$(render "tshark -r nflog.pcapng -T fields -e nflog.prefix -e ip.src -e ip.dst -e ipv6.src -e ipv6.dst" "one line a record: the prefix, then the addresses" prefix-addresses.tshark)" \
	--argjson verbose "$(render "tshark -r nflog.pcapng -V" "the packet tree of every record: its prefix and its headers on lines of their own" verbose.tshark)" \
	'{backend: "legacy + nfnetlink_log (net.netfilter.nf_log.2 and .10 in the namespace), captured with tshark -i nflog",
	  captured_at: $at, generator: "bash samples/lab-tshark/capture.sh", kernel: $kernel,
	  tools: {tshark: $tshark, iptables: $ipt, busybox: $bb},
	  topology: {"td-nflog": "td-nf0 10.98.0.1/24 fd98::1/64, TRACE in raw PREROUTING (from the peer) and OUTPUT (to it)",
	             "td-nflog-peer": "td-nf1 10.98.0.2/24 fd98::2/64"},
	  commands: $commands,
	  trace_counters: {ipv4: $ipv4, ipv6: $ipv6}, traced_packets: ($ipv4 + $ipv6),
	  trace_counters_note: "Packets the TRACE rules of raw PREROUTING and OUTPUT matched (iptables-legacy -t raw -L -v -x -n after the scenario).",
	  files: {"nflog.pcapng": {content: "what tshark -q -i nflog -w captured in td-nflog"},
	          "prefix-ip.tshark": $fields, "prefix-addresses.tshark": $addresses, "verbose.tshark": $verbose,
	          "ruleset.iptables-save": {content: "iptables-legacy-save in td-nflog while tracing"},
	          "ruleset.ip6tables-save": {content: "ip6tables-legacy-save in td-nflog while tracing"}}}' \
	>"$OUT/meta.json"
echo "wrote $(ls "$OUT")"
