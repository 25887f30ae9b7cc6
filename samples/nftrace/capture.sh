#!/bin/bash
# Captures what nftrace (github.com/eiginn/nftrace) prints while it traces
# real traffic: iptables-legacy TRACE records read from nfnetlink_log group 0,
# each printed as "<packet hash> <prefix> <rule text>", then its
# "Aggregated packets:" section (one line a packet hash) when it times out.
#
#   tln-b (10.77.0.2 fd77::2, tln-b0) ── tln-a0 (10.77.0.1 fd77::1) in tln-a
#
# nftrace runs in tln-a, where the kernel's log backend for IPv4 and IPv6 is
# nfnetlink_log (net.netfilter.nf_log.2 and .10 are per namespace). It finds
# iptables through PATH (go-iptables), so it is run with a PATH whose
# iptables/ip6tables are iptables-legacy/ip6tables-legacy; the machine's
# iptables alternative is left alone. Each .nftrace file is nftrace's stdout
# and stderr together (2>&1), as a terminal shows them.
#
# Run as root from the repository root, with nftrace built by build.sh:
#   NFTRACE=/path/to/nftrace bash samples/nftrace/capture.sh
# It writes the .nftrace files, iptables-save.txt / ip6tables-save.txt (the
# rulesets while nftrace traced, its TRACE rules included) and meta.json, and
# deletes its namespaces whatever happens.
set -euo pipefail
OUT=samples/nftrace
A=tln-a
B=tln-b
NFTRACE=$(realpath "${NFTRACE:-$(command -v nftrace)}")
BUSYBOX=/bin/busybox
PYTHON=/usr/bin/python3
TIMEOUT=10 # nftrace -t: long enough for its start-up and every command
SETTLE=2   # seconds nftrace needs to insert its rules and open the socket
SHIM=$(mktemp -d)
ln -s /usr/sbin/iptables-legacy "$SHIM/iptables"
ln -s /usr/sbin/ip6tables-legacy "$SHIM/ip6tables"

cleanup() {
	for pid in $(jobs -p); do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	for ns in "$A" "$B"; do ip netns del "$ns" 2>/dev/null || true; done
	rm -rf "$SHIM"
}
trap cleanup EXIT

ip netns add "$A"
ip netns add "$B"
ip link add tln-a0 netns "$A" type veth peer name tln-b0 netns "$B"
ip -n "$A" addr add 10.77.0.1/24 dev tln-a0
ip -n "$A" addr add fd77::1/64 dev tln-a0 nodad
ip -n "$B" addr add 10.77.0.2/24 dev tln-b0
ip -n "$B" addr add fd77::2/64 dev tln-b0 nodad
for ns in "$A" "$B"; do ip -n "$ns" link set lo up; done
ip -n "$A" link set tln-a0 up
ip -n "$B" link set tln-b0 up

modprobe nfnetlink_log 2>/dev/null || true # built in on some kernels
ip netns exec "$A" sysctl -q -w net.netfilter.nf_log.2=nfnetlink_log net.netfilter.nf_log.10=nfnetlink_log
ip netns exec "$A" iptables-legacy-restore <<-'RULES'
	*raw
	:PREROUTING ACCEPT [0:0]
	:OUTPUT ACCEPT [0:0]
	COMMIT
	*mangle
	:PREROUTING ACCEPT [0:0]
	:INPUT ACCEPT [0:0]
	:FORWARD ACCEPT [0:0]
	:OUTPUT ACCEPT [0:0]
	:POSTROUTING ACCEPT [0:0]
	-A PREROUTING -p udp -j MARK --set-xmark 0x7/0xffffffff
	COMMIT
	*nat
	:PREROUTING ACCEPT [0:0]
	:INPUT ACCEPT [0:0]
	:OUTPUT ACCEPT [0:0]
	:POSTROUTING ACCEPT [0:0]
	-A PREROUTING -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.77.0.1:9000
	COMMIT
	*filter
	:INPUT ACCEPT [0:0]
	:FORWARD DROP [0:0]
	:OUTPUT ACCEPT [0:0]
	:CHECKS - [0:0]
	-A INPUT -j CHECKS
	-A INPUT -p icmp -m icmp --icmp-type 8 -m comment --comment "allow \"ping\" – café" -j ACCEPT
	-A INPUT -p tcp -m tcp --dport 9 -j REJECT --reject-with tcp-reset
	-A INPUT -p udp -m udp --dport 7 -j DROP
	-A INPUT -p tcp -m tcp --dport 9000 -j ACCEPT
	-A CHECKS -s 10.77.0.99/32 -j DROP
	-A CHECKS -p udp -m udp --dport 5000 -j RETURN
	-A CHECKS -p tcp -m tcp --dport 22 -j DROP
	-A OUTPUT -p tcp -m tcp --sport 9000 -j ACCEPT
	COMMIT
RULES
ip netns exec "$A" ip6tables-legacy-restore <<-'RULES'
	*raw
	:PREROUTING ACCEPT [0:0]
	:OUTPUT ACCEPT [0:0]
	COMMIT
	*filter
	:INPUT ACCEPT [0:0]
	:FORWARD DROP [0:0]
	:OUTPUT ACCEPT [0:0]
	:CHECKS - [0:0]
	-A INPUT -j CHECKS
	-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j ACCEPT
	-A INPUT -p tcp -m tcp --dport 9 -j REJECT --reject-with tcp-reset
	-A CHECKS -s fd77::99/128 -j DROP
	COMMIT
RULES

in_a() { ip netns exec "$A" env PATH="$SHIM:$PATH" "$@"; }
in_b() { ip netns exec "$B" "$@"; }

# The UDP echo server in tln-a answers one datagram; the client in tln-b sends one.
udp_echo_server='import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("10.77.0.1", 5000)); s.settimeout(6); data, peer = s.recvfrom(100); s.sendto(b"pong\n", peer)'
udp_client() { # ADDRESS PORT: send "ping", wait a second for an answer
	printf 'import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.settimeout(1)\ns.sendto(b"ping\\n", ("%s", %s))\ntry:\n    s.recv(100)\nexcept socket.timeout:\n    raise SystemExit(1)\n' "$1" "$2"
}

quote_args() { # ARG...: the words as a shell line, the ones with spaces in single quotes
	local word words=()
	for word; do
		if [[ $word == *" "* ]]; then words+=("'$word'"); else words+=("$word"); fi
	done
	echo "${words[*]}"
}

trace_counters() { # IPTABLES: what the TRACE rules of raw PREROUTING and OUTPUT counted, as JSON
	local chain count
	for chain in PREROUTING OUTPUT; do
		count=$(in_a "$1" -t raw -L "$chain" -v -x -n | awk '$3 == "TRACE" { sum += $1 } END { print sum + 0 }')
		jq -n --arg c "raw:$chain" --argjson n "$count" '{($c): $n}'
	done | jq -s add
}

declare -A RUNS=()  # file -> JSON of its commands
scenario() {        # FILE DESCRIPTION SAVE NFTRACE-ARGS... -- COMMAND...; each COMMAND one shell word list in tln-b
	local file=$1 description=$2 save=$3
	shift 3
	local args=()
	while [ "$1" != -- ]; do args+=("$1"); shift; done
	shift
	in_a "$NFTRACE" -t "$TIMEOUT" "${args[@]}" >"$OUT/$file" 2>&1 &
	local pid=$! started
	started=$(date +%s%N)
	sleep "$SETTLE"
	in_a "$save" >"$SHIM/$file.save"
	local commands=() command status
	for command in "$@"; do
		status=0
		eval "$command" </dev/null >/dev/null 2>&1 || status=$?
		commands+=("$(jq -n --arg c "$command" --argjson r "$status" '{command: $c, returncode: $r}')")
	done
	# Read the counters half a second before nftrace's timeout (it runs from
	# after its start-up) deletes its rules, so that late packets such as
	# IPv6 neighbour reachability probes are counted too.
	sleep "$(awk -v t="$TIMEOUT" -v s="$started" -v n="$(date +%s%N)" 'BEGIN { w = t - 0.5 - (n - s) / 1e9; print (w > 0 ? w : 0) }')"
	local counters
	counters=$(trace_counters "${save%-save}")
	local rc=0
	wait "$pid" || rc=$?
	RUNS[$file]=$(jq -n --arg d "$description" --arg a "$(quote_args nftrace -t "$TIMEOUT" "${args[@]}")" --argjson rc "$rc" \
		--arg save "$save" --argjson lines "$(wc -l <"$OUT/$file")" --argjson commands "$(printf '%s\n' "${commands[@]}" | jq -s .)" --argjson counters "$counters" \
		'{description: $d, nftrace: $a, nftrace_returncode: $rc, ruleset: $save, lines: $lines, commands: $commands,
		  trace_counters: $counters, traced_packets: ($counters | add)}')
}

scenario ping-drop.nftrace \
	"ping (ICMP echo through filter INPUT's commented ACCEPT), a TCP connection to port 9 REJECTed with a reset (the RST is traced in OUTPUT), a UDP datagram to port 7 DROPped (mangle MARKs it first)" \
	iptables-legacy-save -p'-s 10.77.0.2' -o'-d 10.77.0.2' -- \
	"in_b $BUSYBOX ping -c 2 -W 1 10.77.0.1" \
	"in_b $BUSYBOX nc -w 1 10.77.0.1 9" \
	"in_b $PYTHON -c \"\$(udp_client 10.77.0.1 7)\""

in_a $BUSYBOX sh -c "echo world | $BUSYBOX timeout 7 $BUSYBOX nc -l -p 9000" >/dev/null 2>&1 &
in_a $PYTHON -c "$udp_echo_server" >/dev/null 2>&1 &
scenario exchange.nftrace \
	"a TCP exchange (hello/world) to 10.77.0.1:8080, DNATed in nat PREROUTING to 10.77.0.1:9000 where busybox nc listens; then a UDP exchange (ping/pong) with a Python echo server on port 5000, which filter CHECKS RETURNs" \
	iptables-legacy-save -p'-s 10.77.0.2' -o'-d 10.77.0.2' -- \
	"echo hello | in_b $BUSYBOX timeout 3 $BUSYBOX nc 10.77.0.1 8080" \
	"in_b $PYTHON -c \"\$(udp_client 10.77.0.1 5000)\""
wait

# The same TRACE rules as -p/-o insert, put there by hand this time: nftrace
# then only says it assumes them, and -v prints gopacket's packet dumps.
in_a iptables-legacy -t raw -I PREROUTING 1 -s 10.77.0.2 -j TRACE
in_a iptables-legacy -t raw -I OUTPUT 1 -d 10.77.0.2 -j TRACE
scenario ping-verbose.nftrace \
	"one ping with TRACE rules inserted by hand (no -p/-o) and -v: the Aggregated section holds gopacket's multi-line packet dumps" \
	iptables-legacy-save -v -- \
	"in_b $BUSYBOX ping -c 1 -W 1 10.77.0.1"
in_a iptables-legacy -t raw -D PREROUTING -s 10.77.0.2 -j TRACE
in_a iptables-legacy -t raw -D OUTPUT -d 10.77.0.2 -j TRACE

scenario ipv6-ping-reject.nftrace \
	"IPv6 (-6): neighbour discovery, ping -6, and a TCP connection to port 9 REJECTed with a reset" \
	ip6tables-legacy-save -6 -p'-s fd77::2' -o'-d fd77::2' -- \
	"in_b $BUSYBOX ping -6 -c 2 -W 1 fd77::1" \
	"in_b $BUSYBOX nc -w 1 fd77::1 9"

# Every IPv4 run traced the same ruleset (the TRACE rules of -p/-o or the hand-made ones).
without_counters() { grep -v '^#' "$1" | sed 's/ \[[0-9]*:[0-9]*\]$//'; } # dated comments and chain counters differ

for file in exchange.nftrace ping-verbose.nftrace; do
	cmp <(without_counters "$SHIM/ping-drop.nftrace.save") <(without_counters "$SHIM/$file.save")
done
cp "$SHIM/ping-drop.nftrace.save" "$OUT/iptables-save.txt"
cp "$SHIM/ipv6-ping-reject.nftrace.save" "$OUT/ip6tables-save.txt"

runs=$(for file in "${!RUNS[@]}"; do jq -n --arg f "$file" --argjson r "${RUNS[$file]}" '{($f): $r}'; done | jq -s add)
jq -n --arg at "$(date -u +%Y-%m-%dT%H:%M:%S+00:00)" --arg kernel "$(uname -r)" \
	--arg nftrace "$("$NFTRACE" --version 2>&1)" --arg ipt "$(iptables-legacy --version)" \
	--arg bb "$($BUSYBOX 2>&1 | head -1)" --argjson runs "$runs" \
	'{backend: "legacy + nfnetlink_log (net.netfilter.nf_log.2 and .10 in tln-a), read by nftrace from NFLOG group 0",
	  captured_at: $at, generator: "NFTRACE=/path/to/nftrace bash samples/nftrace/capture.sh", kernel: $kernel,
	  tools: {nftrace: {version: $nftrace, repository: "github.com/eiginn/nftrace",
	                    commit: "64732646712ced0dcca7aa05a18b5bbfb2c19ef2",
	                    build: "bash samples/nftrace/build.sh GIT_DIR OUT: Go 1.19 (Debian 12 golang-go), the upstream vendor tree with golang.org/x/{sys,net,sync} from the project'"'"'s commit e744fa3 (see build.sh)"},
	          iptables: $ipt, busybox: $bb},
	  topology: {"tln-a": "tln-a0 10.77.0.1/24 fd77::1/64; nftrace runs here (its -p/-o TRACE rules go into raw PREROUTING for the peer and OUTPUT to it)",
	             "tln-b": "tln-b0 10.77.0.2/24 fd77::2/64; the commands run here"},
	  notes: ["Each .nftrace file is nftrace'"'"'s stdout and stderr as one stream (2>&1); stderr lines are Go log lines with a local date and time.",
	          "The Aggregated packets section comes from a Go map: its order is random from run to run.",
	          "In commands, in_b is ip netns exec tln-b, and udp_client ADDRESS PORT is the Python UDP client of capture.sh (it sends ping and waits a second for an answer).",
	          "trace_counters are what the TRACE rules of raw PREROUTING and OUTPUT counted, read half a second before nftrace timed out and deleted its rules: traced_packets is how many packets the kernel traced (a NATed packet is one packet but two hashes)."],
	  files: ($runs + {"iptables-save.txt": {content: "iptables-legacy-save in tln-a while nftrace traced (the same for every IPv4 run)"},
	                   "ip6tables-save.txt": {content: "ip6tables-legacy-save in tln-a while nftrace -6 traced"},
	                   "capture.sh": {content: "this capture"}, "build.sh": {content: "how nftrace was built"}})}' \
	>"$OUT/meta.json"
echo "wrote $(ls "$OUT")"
