#!/usr/bin/env bash
# Cluster mode with real clients, unchanged, called by compat/run (not meant to be run alone). compat/run starts
# three Rill nodes with `--cluster-enabled yes` and makes them one cluster with `rill cluster create`; this runs:
#   (a) redis-cli: `-c` follows MOVED for stream commands across the nodes, a plain call shows the MOVED error,
#       and `redis-cli --cluster check` accepts the cluster;
#   (b) redis-py RedisCluster (test_cluster.py), with compat/python's requirements and virtualenv;
#   (c) go-redis ClusterClient (go/cluster_test.go), the same producing and consuming while `rill cluster reshard`
#       moves their slot away and back (go/reshard_test.go, RILL_BIN), and Watermill redisstream over a
#       UniversalClient given the three addresses (go/watermill_test.go), at the versions compat/watermill pins;
#   (d) ioredis Cluster (ioredis.test.mjs), the version compat/node pins.
#
# In:  RILL_CLUSTER ("host:port host:port host:port"), RESULTS (a file to append "name passed failed" lines to),
#      LOGDIR.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${RILL_CLUSTER:?}" "${RESULTS:?}" "${LOGDIR:?}"
read -r -a nodes <<<"$RILL_CLUSTER"
status=0

# ------------------------------------------------------------------ (a) redis-cli
log="$LOGDIR/cluster-cli.log"
: >"$log"
passed=0 failed=0
check() {
	local name="$1" expected="$2" actual="$3"
	if [ "$expected" == "$actual" ]; then
		passed=$((passed + 1))
		echo "ok   $name" >>"$log"
	else
		failed=$((failed + 1))
		{
			echo "FAIL $name"
			diff <(printf '%s\n' "$expected") <(printf '%s\n' "$actual") | sed 's/^/     /' || true
		} >>"$log"
		echo "cluster: FAIL $name (see $log)" >&2
	fi
}
host0="${nodes[0]%:*}" port0="${nodes[0]##*:}"
cli0() { redis-cli -h "$host0" -p "$port0" "$@"; }
prefix="compat:cluster:$$:$RANDOM"
owners=""
for i in $(seq 0 29); do
	k="$prefix:$i"
	check "-c XADD $i" "1-1" "$(cli0 -c XADD "$k" 1-1 f v 2>&1)"
	check "-c XGROUP CREATE $i" "OK" "$(cli0 -c XGROUP CREATE "$k" g 0 2>&1)"
	check "-c XREADGROUP $i" "$(printf '%s\n' "$k" 1-1 f v)" "$(cli0 -c XREADGROUP GROUP g c STREAMS "$k" '>' 2>&1)"
	check "-c XACK $i" "1" "$(cli0 -c XACK "$k" g 1-1 2>&1)"
	slot="$(cli0 CLUSTER KEYSLOT "$k")"
	# Which node serves the key, from CLUSTER SLOTS (start, end, ip, port, id per line).
	owner="$(cli0 CLUSTER SLOTS | paste -d' ' - - - - - - | awk -v s="$slot" '$1 <= s && s <= $2 { print $3 ":" $4 }')"
	owners="$owners $owner"
	check "owner of $i holds it" "1" "$(redis-cli -h "${owner%:*}" -p "${owner##*:}" XLEN "$k" 2>&1)"
	if [ "$owner" != "${nodes[0]}" ]; then
		check "plain call on the wrong node gets MOVED ($i)" "MOVED $slot $owner" "$(cli0 XLEN "$k" 2>&1)"
	fi
done
distinct="$(tr ' ' '\n' <<<"$owners" | sed '/^$/d' | sort -u | wc -l)"
check "30 keys reach all 3 nodes" "3" "$distinct"
cluster_check="$(redis-cli --cluster check "${nodes[0]}" 2>&1 | sed 's/\x1b\[[0-9;]*m//g')"
echo "$cluster_check" >>"$log"
check "redis-cli --cluster check: slots agree" "1" "$(grep -c '^\[OK\] All nodes agree about slots configuration.' <<<"$cluster_check")"
check "redis-cli --cluster check: coverage" "1" "$(grep -c '^\[OK\] All 16384 slots covered.' <<<"$cluster_check")"
echo "redis-cli-c $passed $failed" >>"$RESULTS"
[ "$failed" = 0 ] || status=1

# ------------------------------------------------------------------ (b) redis-py RedisCluster
py=python3
venv="$here/../python/.venv"
if [ -x "$venv/bin/python" ] || python3 -m venv "$venv" >/dev/null 2>&1; then
	py="$venv/bin/python"
	"$py" -m pip install -q --disable-pip-version-check -r "$here/../python/requirements.txt"
else
	python3 -m pip install -q --disable-pip-version-check --user -r "$here/../python/requirements.txt"
fi
xml="$LOGDIR/cluster-python-junit.xml"
rm -f "$xml"
(cd "$here" && "$py" -m pytest -p no:cacheprovider -q -rfE --junitxml="$xml" test_cluster.py) \
	>"$LOGDIR/cluster-python.log" 2>&1 || status=1
counts="$("$py" - "$xml" <<'PYEOF'
import sys
import xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print("0 1")
    sys.exit(0)
suites = [root] if root.tag == "testsuite" else list(root)
tests = sum(int(s.get("tests", 0)) for s in suites)
bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
print(tests - bad - skipped, bad)
PYEOF
)"
echo "redis-py-cluster $counts" >>"$RESULTS"

# ------------------------------------------------------------------ (c) go-redis ClusterClient
if command -v go >/dev/null; then
	json="$LOGDIR/cluster-go.json"
	(cd "$here/go" && GOFLAGS=-mod=readonly GOTOOLCHAIN=local go test -count=1 -json ./... >"$json" 2>"$LOGDIR/cluster-go.err") || status=1
	echo "go-redis-cluster $(python3 "$here/../lib/gotest_count.py" "$json")" >>"$RESULTS"
else
	echo "cluster: go is not installed; go-redis ClusterClient not run" >&2
	echo "go-redis-cluster 0 1" >>"$RESULTS"
	status=1
fi
# ------------------------------------------------------------------ (d) ioredis Cluster
if command -v npm >/dev/null; then
	(cd "$here/../node" && npm ci --no-audit --no-fund --loglevel=error) >"$LOGDIR/cluster-node-install.log" 2>&1 || {
		cat "$LOGDIR/cluster-node-install.log" >&2
		status=1
	}
	tap="$LOGDIR/cluster-ioredis.tap"
	(cd "$here" && node --test --test-concurrency=1 --test-reporter=tap ioredis.test.mjs) >"$tap" 2>&1 || status=1
	grep -E '^not ok' "$tap" >&2 || true
	pass="$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$tap" | tail -1)"
	fail="$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$tap" | tail -1)"
	echo "ioredis-cluster ${pass:-0} ${fail:-1}" >>"$RESULTS"
else
	echo "cluster: npm is not installed; ioredis Cluster not run" >&2
	echo "ioredis-cluster 0 1" >>"$RESULTS"
	status=1
fi
exit $status
