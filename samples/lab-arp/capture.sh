#!/bin/bash
# Captures ARP traced in the netdev, bridge and arp families: `nft monitor trace`
# and `xtables-monitor --trace` at once, in network namespaces of their own.
#
#   td-arp-a (10.99.0.2, td-a0) ── td-bra ┐
#                                          td-br0 (bridge, 10.99.0.1) in td-arp-br
#   td-arp-b (10.99.0.3, td-b0) ── td-brb ┘
#
# Run as root from the repository root: bash samples/lab-arp/capture.sh
# It writes samples/lab-arp/{bridge,local,drop}.{nft-monitor,xtables-monitor},
# ruleset.nft (the ruleset while tracing) and meta.json, and deletes its
# namespaces whatever happens.
set -euo pipefail
OUT=samples/lab-arp
BR=td-arp-br
BUSYBOX=/bin/busybox
SETTLE=1

cleanup() {
	for pid in $(jobs -p); do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	for ns in td-arp-a td-arp-b "$BR"; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT

in_br() { ip netns exec "$BR" "$@"; }

build_lab() {
	for ns in td-arp-a td-arp-b "$BR"; do ip netns add "$ns"; done
	ip link add td-a0 netns td-arp-a type veth peer name td-bra netns "$BR"
	ip link add td-b0 netns td-arp-b type veth peer name td-brb netns "$BR"
	ip -n "$BR" link add td-br0 type bridge
	ip -n "$BR" link set td-bra master td-br0
	ip -n "$BR" link set td-brb master td-br0
	for link in lo td-bra td-brb td-br0; do ip -n "$BR" link set "$link" up; done
	ip -n "$BR" addr add 10.99.0.1/24 dev td-br0
	ip -n td-arp-a link set td-a0 address 02:00:0a:63:00:02
	ip -n td-arp-a addr add 10.99.0.2/24 dev td-a0
	ip -n td-arp-b link set td-b0 address 02:00:0a:63:00:03
	ip -n td-arp-b addr add 10.99.0.3/24 dev td-b0
	for ns in td-arp-a td-arp-b; do
		ip -n "$ns" link set lo up
		ip -n "$ns" link set "td-${ns#td-arp-}0" up
	done
}

# Tracing is switched on for ARP entering the bridge ports (netdev ingress) and
# leaving the bridge's own address (arp output); native bridge and arp tables,
# and ebtables-nft / arptables-nft rules, decide.
load_rules() {
	in_br nft -f - <<-'EOF'
		table netdev trace {
			chain trace_ingress {
				type filter hook ingress devices = { "td-bra", "td-brb" } priority -500; policy accept;
				ether type arp counter meta nftrace set 1
			}
		}
		table bridge td_bridge {
			chain prerouting {
				type filter hook prerouting priority -300; policy accept;
				ether type arp counter
			}
			chain forward {
				type filter hook forward priority -300; policy accept;
				arp operation reply counter accept
			}
		}
		table arp td_arp {
			chain input {
				type filter hook input priority -300; policy accept;
				arp operation request counter
			}
			chain trace_output {
				type filter hook output priority -300; policy accept;
				counter meta nftrace set 1
			}
		}
	EOF
	in_br ebtables-nft -A FORWARD -p ARP --arp-ip-dst 10.99.0.9 -j DROP
	in_br ebtables-nft -A FORWARD -p ARP --arp-op Request -j ACCEPT
	in_br arptables-nft -A INPUT -s 10.99.0.0/24 --opcode Request -j ACCEPT
}

# the packets tracing was switched on for: the counters of the nftrace rules
traced() {
	in_br nft -j list ruleset | jq '[.nftables[] | select(.rule) | .rule
		| select(any(.expr[]; .mangle.key.meta.key == "nftrace"))
		| .expr[] | select(.counter) | .counter.packets] | add'
}

run_scenario() {
	local name=$1 description=$2
	shift 2
	ip -n td-arp-a neigh flush all
	ip -n td-arp-b neigh flush all
	ip -n "$BR" neigh flush all
	# (nft 1.0.6 resets named counters only: a scenario's packets are the difference)
	local before
	before=$(traced)
	# not through in_br: $! must be the monitor itself (ip netns exec execs it)
	ip netns exec "$BR" nft monitor trace >"$OUT/$name.nft-monitor" 2>&1 &
	local nft_pid=$!
	ip netns exec "$BR" xtables-monitor --trace >"$OUT/$name.xtables-monitor" 2>&1 &
	local xtables_pid=$!
	sleep "$SETTLE"
	local commands=()
	for command in "$@"; do
		local status=0
		ip netns exec td-arp-a $BUSYBOX $command >/dev/null 2>&1 || status=$?
		commands+=("$(jq -n --arg c "ip netns exec td-arp-a $BUSYBOX $command" --argjson r "$status" '{command: $c, returncode: $r}')")
	done
	sleep "$SETTLE"
	kill "$nft_pid" "$xtables_pid"
	wait "$nft_pid" "$xtables_pid" 2>/dev/null || true
	local packets
	packets=$(($(traced) - before))
	for rendering in nft-monitor xtables-monitor; do
		local monitor="nft monitor trace"
		[ "$rendering" = xtables-monitor ] && monitor="xtables-monitor --trace"
		jq -n --arg d "$description" --arg r "ip netns exec $BR $monitor" --arg s "$name" \
			--argjson lines "$(wc -l <"$OUT/$name.$rendering")" --argjson p "$packets" \
			--argjson c "$(printf '%s\n' "${commands[@]}" | jq -s .)" \
			'{commands: $c, description: $d, lines: $lines, rendering: $r, scenario: $s,
			  trace_counters: {"netdev trace trace_ingress + arp td_arp trace_output": $p}, traced_packets: $p}' \
			>"$OUT/.$name.$rendering.json"
	done
}

build_lab
load_rules
in_br nft list ruleset >"$OUT/ruleset.nft"
run_scenario bridge "a asks for b twice (arping 10.99.0.3): each request is flooded by the bridge, forwarded to td-brb and delivered to the bridge itself (bridge input, then arp input); b's replies are forwarded back to td-bra" \
	"arping -c 2 -w 3 -I td-a0 10.99.0.3"
run_scenario local "a asks for the bridge's own address (arping 10.99.0.1): the request is flooded and delivered locally, the bridge's reply leaves through arp output" \
	"arping -c 1 -w 2 -I td-a0 10.99.0.1"
run_scenario drop "a asks for 10.99.0.9, which ebtables-nft drops in bridge FORWARD; the bridge itself still sees the request (no one answers)" \
	"arping -c 1 -w 2 -I td-a0 10.99.0.9"

files=$(for f in "$OUT"/.*.json; do name=$(basename "$f" .json); jq --arg n "${name#.}" '{($n): .}' "$f"; done | jq -s add)
rm -f "$OUT"/.*.json
jq -n --arg at "$(date -u +%Y-%m-%dT%H:%M:%S+00:00)" --arg kernel "$(uname -r)" \
	--arg nft "$(nft --version)" --arg xt "$(xtables-monitor --version 2>&1 | head -1)" \
	--arg eb "$(ebtables-nft --version)" --arg arpt "$(arptables-nft --version 2>&1 | head -1)" \
	--arg bb "$($BUSYBOX 2>&1 | head -1)" --argjson files "$files" \
	'{backend: "nft (netdev, bridge and arp families; ebtables-nft and arptables-nft)",
	  captured_at: $at, generator: "bash samples/lab-arp/capture.sh", kernel: $kernel,
	  tools: {nft: $nft, "xtables-monitor": $xt, "ebtables-nft": $eb, "arptables-nft": $arpt, busybox: $bb},
	  topology: {
	    "td-arp-a": "client, td-a0 10.99.0.2/24, MAC 02:00:0a:63:00:02",
	    "td-arp-b": "peer, td-b0 10.99.0.3/24, MAC 02:00:0a:63:00:03",
	    "td-arp-br": "bridge td-br0 10.99.0.1/24 with ports td-bra (to a) and td-brb (to b); net.bridge.bridge-nf-call-arptables=1 as the host left it"
	  },
	  notes: ["Both monitors ran at the same time on the same trace events.",
	          "nft monitor (1.0.6) prints of an ARP packet its Ethernet addresses and its operation only; xtables-monitor prints the whole ARP header as NH= bytes (signed chars: ff prints as ffffffff)."],
	  trace_counters_note: "Packets the nftrace rules (netdev trace trace_ingress, arp td_arp trace_output) switched tracing on for during the scenario: their counters read before and after it.",
	  files: ($files + {"ruleset.nft": {content: "nft list ruleset in td-arp-br while tracing (ebtables-nft and arptables-nft rules included)"}})}' \
	>"$OUT/meta.json"
echo "wrote $(ls "$OUT")"
