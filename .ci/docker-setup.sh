#!/usr/bin/env bash
# Installs what tests/lab/test_docker.py, tests/lab/test_journey.py and
# `python -m tests.lab.dockerlab` need on Debian 12: Debian's docker.io (dockerd, containerd,
# runc, docker-proxy), both iptables backends with xtables-monitor, nft, busybox-static for
# the local image, and the tools the journey types (tail, dmesg, stdbuf, sysctl).
# The tests start and stop dockerd themselves; this script starts nothing.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# On a machine run by systemd, installing docker.io would start containerd and dockerd, with
# their own bridge and firewall rules: the labs then skip rather than take over a daemon.  A
# policy-rc.d keeps package scripts from starting services while this install runs.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi

apt-get update -q
apt-get install -y -q --no-install-recommends \
  docker.io containerd runc tini \
  iptables nftables iproute2 busybox-static \
  kmod procps util-linux coreutils
