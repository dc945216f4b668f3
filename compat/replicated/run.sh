#!/usr/bin/env bash
# A replicated shard with real clients, unchanged, called by compat/run (not meant to be run alone). compat/run
# starts three Rill nodes with `--cluster-enabled yes --cluster-raft yes` and makes them one shard of a leader and
# two replicas with `rill cluster create --replicas 2`; this runs Watermill redisstream over a go-redis
# UniversalClient (go/failover_test.go, the versions compat/watermill pins) while the leader is SIGKILLed.
#
# In:  RILL_CLUSTER ("host:port host:port host:port"), RESULTS (a file to append "name passed failed" lines to),
#      LOGDIR.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${RILL_CLUSTER:?}" "${RESULTS:?}" "${LOGDIR:?}"
status=0
if command -v go >/dev/null; then
	json="$LOGDIR/replicated-go.json"
	(cd "$here/go" && GOFLAGS=-mod=readonly GOTOOLCHAIN=local go test -count=1 -v -json ./... >"$json" 2>"$LOGDIR/replicated-go.err") || status=1
	echo "watermill-failover $(python3 "$here/../lib/gotest_count.py" "$json")" >>"$RESULTS"
else
	echo "replicated: go is not installed; Watermill failover not run" >&2
	echo "watermill-failover 0 1" >>"$RESULTS"
	status=1
fi
exit $status
