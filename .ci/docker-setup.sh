#!/usr/bin/env bash
# Installs what tests/lab/test_docker.py, tests/lab/test_journey.py and
# `python -m tests.lab.dockerlab` need on Debian 12: Debian's docker.io (dockerd, containerd,
# runc, docker-proxy), both iptables backends with xtables-monitor, nft, busybox-static for
# the local image, and the tools the journey types (bash, tail, dmesg, stdbuf, sysctl).
# The tests start and stop dockerd themselves; this script starts nothing.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends \
  docker.io containerd runc tini \
  iptables nftables iproute2 busybox-static \
  bash kmod procps util-linux coreutils
