#!/usr/bin/env bash
# Watermill redisstream against Rill, called by compat/run (not meant to be run alone).
#
# Runs, for each go-redis version (the one Watermill pins: go.mod; the newest v9: go.newest.mod) and each RESP version:
#   (a) Watermill redisstream's own pkg/redisstream tests, copied from the Go module cache into a temporary module
#       (the module cache is read-only and stays untouched), against the Rill listening on 127.0.0.1:6379;
#   (b) our scenarios (scenarios_test.go) against the Rill at $RILL_ADDR.
# The RESP2 runs of (a) add `Protocol: 2` to the copy's client options: the only change made to upstream code.
#
# In:  RILL_ADDR, RILL_BIN, RESULTS (a file to append "name passed failed" lines to), LOGDIR.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
: "${RILL_ADDR:?}" "${RILL_BIN:?}" "${RESULTS:?}" "${LOGDIR:?}"
export GOFLAGS=-mod=readonly
export GOTOOLCHAIN=local

pinned_module() {
	# The watermill-redisstream version is the one our go.mod requires; its directory in the module cache.
	local version
	version="$(go list -m -f '{{.Version}}' github.com/ThreeDotsLabs/watermill-redisstream)"
	go mod download github.com/ThreeDotsLabs/watermill-redisstream@"$version" >/dev/null
	go list -m -f '{{.Dir}}' github.com/ThreeDotsLabs/watermill-redisstream
}

echo "watermill: downloading modules" >&2
go mod download
go mod download -modfile=go.newest.mod
upstream_dir="$(pinned_module)"
echo "watermill: upstream tests from $upstream_dir" >&2

work="$(mktemp -d)"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

# One temporary module per go-redis flavour and protocol, holding a writable copy of the upstream package.
make_upstream_copy() {
	local modfile="$1" sumfile="$2" proto="$3" dest="$4"
	mkdir -p "$dest"
	cp "$upstream_dir"/pkg/redisstream/*.go "$dest"/
	chmod -R u+w "$dest"
	sed -e 's#^module .*#module rillcompat/upstream#' "$modfile" >"$dest/go.mod"
	cp "$sumfile" "$dest/go.sum"
	if [ "$proto" = 2 ]; then
		# Upstream's only client constructor: pin RESP2 there.
		grep -q 'Addr:        "127.0.0.1:6379",' "$dest/pubsub_test.go" || {
			echo "watermill: upstream pubsub_test.go changed shape; cannot select RESP2" >&2
			return 1
		}
		sed -i 's#Addr:        "127.0.0.1:6379",#Addr: "127.0.0.1:6379", Protocol: 2,#' "$dest/pubsub_test.go"
	fi
}

count() { python3 "$here/../lib/gotest_count.py" "$@"; }

status=0
for flavour in pinned newest; do
	if [ "$flavour" = pinned ]; then modfile=go.mod sumfile=go.sum; else modfile=go.newest.mod sumfile=go.newest.sum; fi
	goredis="$(go list -modfile="$modfile" -m -f '{{.Version}}' github.com/redis/go-redis/v9)"
	for proto in 3 2; do
		name="upstream/go-redis-$goredis/resp$proto"
		dest="$work/$flavour-$proto"
		make_upstream_copy "$modfile" "$sumfile" "$proto" "$dest"
		log="$LOGDIR/watermill-${flavour}-resp$proto-upstream.json"
		echo "watermill: $name" >&2
		(cd "$dest" && go test -count=1 -timeout 240s -json ./... >"$log" 2>&1) || status=1
		echo "$name $(count "$log")" >>"$RESULTS"

		name="scenarios/go-redis-$goredis/resp$proto"
		log="$LOGDIR/watermill-${flavour}-resp$proto-scenarios.json"
		echo "watermill: $name" >&2
		RILL_PROTOCOL=$proto go test -modfile="$modfile" -count=1 -timeout 240s -json ./... >"$log" 2>&1 || status=1
		echo "$name $(count "$log")" >>"$RESULTS"
	done
done
exit $status
