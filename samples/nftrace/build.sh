#!/bin/bash
# Builds nftrace (github.com/eiginn/nftrace, cmd/nftrace) offline with the Go
# toolchain Debian 12 ships (golang-go, Go 1.19), from a git clone of it.
#
#   bash samples/nftrace/build.sh GIT_DIR OUT_BINARY
#
# GIT_DIR is a clone (bare or not) of github.com/eiginn/nftrace holding the
# commits below. The upstream tree vendors every dependency, but its go.mod
# asks for Go 1.24 and its vendored golang.org/x/{sys,net,sync} use the
# standard library of Go 1.21+ (package slices, context.WithCancelCause).
# So: the go line (and the go lines of vendor/modules.txt) are lowered to
# 1.19, and those three x/ modules are taken from the vendor tree of the
# project's own last Go 1.19 commit (x/sys v0.5.0, x/net v0.7.0, x/sync
# v0.1.0). nftrace's own code (cmd/nftrace, nftrace.go, pktdump/) and every
# other vendored module (go-nflog v2.1.0, gopacket v1.3.1, go-iptables
# v0.8.0, mdlayher/netlink v1.7.2, mdlayher/socket v0.5.1, kingpin v2.4.0)
# are the upstream commit's, unchanged.
set -euo pipefail
GIT_DIR=$1
OUT=$(realpath -m "$2")
COMMIT=64732646712ced0dcca7aa05a18b5bbfb2c19ef2 # "Pull in new x/net", 2025-06-24 (v0.1.6-2-g6473264)
GO119=e744fa3                                   # "Handle dependabot alerts for x/net", last go 1.19 go.mod
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

git --git-dir="$GIT_DIR" archive "$COMMIT" | tar -x -C "$WORK"
mkdir "$WORK/old"
git --git-dir="$GIT_DIR" archive "$GO119" vendor/golang.org/x/sys vendor/golang.org/x/net vendor/golang.org/x/sync |
	tar -x -C "$WORK/old"
cd "$WORK"
sed -i 's/^go 1\.24\.0$/go 1.19/; /^toolchain /d' go.mod
sed -i 's/^\(## explicit; go \)1\.2[0-9]\(\.[0-9]*\)*$/\11.19/' vendor/modules.txt
for module in sys net sync; do
	rm -rf "vendor/golang.org/x/$module"
	cp -r "old/vendor/golang.org/x/$module" "vendor/golang.org/x/$module"
done
version=$(git --git-dir="$GIT_DIR" describe --tags --always "$COMMIT")
GOFLAGS=-mod=vendor GOPROXY=off GOTOOLCHAIN=local GOCACHE="$WORK/gocache" GOPATH="$WORK/gopath" \
	go build -o "$OUT" -ldflags="-X 'github.com/eiginn/nftrace.BuildVersion=$version'" ./cmd/nftrace
echo "built $OUT ($version, $(go version))"
