#!/usr/bin/env bash
# Rill seen by Prometheus tooling, called by compat/run (not meant to be run alone):
#   (a) oliver006/redis_exporter (the Go module pinned in go.mod as a `tool`, built here unchanged) scrapes Rill's
#       INFO, CONFIG, CLIENT LIST and streams (-check-streams): it must report redis_up 1, no scrape error, log no
#       error or warning, and export the streams' and commands' values Rill holds;
#   (b) Rill's own Prometheus endpoint (--metrics-port, RILL_METRICS_PORT) parsed by the strict OpenMetrics parser of
#       the Prometheus Python client (requirements.txt), its values checked against what redis-cli reads.
#
# In:  RILL_HOST, RILL_PORT, RILL_METRICS_PORT, RESULTS (a file to append "name passed failed" lines to), LOGDIR.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
: "${RILL_HOST:?}" "${RILL_PORT:?}" "${RILL_METRICS_PORT:?}" "${RESULTS:?}" "${LOGDIR:?}"
export GOFLAGS=-mod=readonly
export GOTOOLCHAIN=local

work="$(mktemp -d)"
exporter_pid=""
cleanup() {
	[ -z "$exporter_pid" ] || kill "$exporter_pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

py=python3
if [ -x .venv/bin/python ] || python3 -m venv .venv >/dev/null 2>&1; then
	py="$here/.venv/bin/python"
	"$py" -m pip install -q --disable-pip-version-check -r requirements.txt
else
	echo "metrics: venv unavailable, installing with pip --user" >&2
	python3 -m pip install -q --disable-pip-version-check --user -r requirements.txt
fi

echo "metrics: building redis_exporter $(go list -m -f '{{.Version}}' github.com/oliver006/redis_exporter)" >&2
go build -o "$work/redis_exporter" github.com/oliver006/redis_exporter 2>"$LOGDIR/redis_exporter-build.log" || {
	tail -n 20 "$LOGDIR/redis_exporter-build.log" >&2
	echo "redis_exporter-build 0 1" >>"$RESULTS"
	exit 1
}

# Data for both: two streams, a group with a consumer holding 3 of 5 entries.
cli() { redis-cli -h "$RILL_HOST" -p "$RILL_PORT" "$@"; }
for i in 1 2 3 4 5; do cli XADD orders '*' n "$i" >/dev/null; done
cli XADD audit '*' n 1 >/dev/null
cli XGROUP CREATE orders billing 0 >/dev/null
cli XREADGROUP GROUP billing alice COUNT 3 STREAMS orders '>' >/dev/null

# (a) redis_exporter.
exporter_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$work/redis_exporter" -redis.addr "redis://$RILL_HOST:$RILL_PORT" -web.listen-address "127.0.0.1:$exporter_port" \
	-check-streams 'orders*' >"$LOGDIR/redis_exporter.log" 2>&1 &
exporter_pid=$!
scraped=""
for _ in $(seq 1 100); do
	if curl -sf "http://127.0.0.1:$exporter_port/metrics" >"$work/exporter.txt" 2>/dev/null; then
		scraped=1
		break
	fi
	sleep 0.1
done
[ -n "$scraped" ] || {
	tail -n 20 "$LOGDIR/redis_exporter.log" >&2
	echo "redis_exporter-scrape 0 1" >>"$RESULTS"
	exit 1
}
cp "$work/exporter.txt" "$LOGDIR/redis_exporter-metrics.txt"

status=0
"$py" - "$work/exporter.txt" "$LOGDIR/redis_exporter.log" >>"$RESULTS" <<'PYEOF' || status=1
import re, sys
from prometheus_client.parser import text_string_to_metric_families

text = open(sys.argv[1]).read()
log = open(sys.argv[2]).read()
samples = {}
for fam in text_string_to_metric_families(text):
    for s in fam.samples:
        samples.setdefault(s.name, []).append(s)

def value(name, **labels):
    for s in samples.get(name, []):
        if all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return None

checks = [
    ("redis_up is 1", value("redis_up") == 1),
    ("no scrape error", value("redis_exporter_last_scrape_error") == 0
        and all(s.labels.get("err", "") == "" for s in samples.get("redis_exporter_last_scrape_error", []))),
    ("no error or warning logged", not re.search(r"level=(error|warning|fatal)", log)),
    ("version from INFO server", any(s.labels.get("redis_version") for s in samples.get("redis_instance_info", []))),
    ("stream length", value("redis_stream_length", stream="orders") == 5),
    ("group pending", value("redis_stream_group_messages_pending", stream="orders", group="billing") == 3),
    ("consumer pending", value("redis_stream_group_consumer_messages_pending", stream="orders", group="billing", consumer="alice") == 3),
    ("commandstats", (value("redis_commands_total", cmd="xadd") or 0) >= 6),
    ("connected clients", (value("redis_connected_clients") or 0) >= 1),
    ("keyspace", value("redis_db_keys", db="db0") == 2),
]
failed = 0
for name, ok in checks:
    if not ok:
        failed += 1
        print(f"metrics: redis_exporter check failed: {name}", file=sys.stderr)
print(f"redis_exporter {len(checks) - failed} {failed}")
sys.exit(1 if failed else 0)
PYEOF

# (b) Rill's endpoint, parsed strictly.
curl -sf -D "$work/headers.txt" "http://$RILL_HOST:$RILL_METRICS_PORT/metrics" >"$work/rill.txt" || {
	echo "openmetrics-scrape 0 1" >>"$RESULTS"
	exit 1
}
cp "$work/rill.txt" "$LOGDIR/rill-metrics.txt"
"$py" - "$work/rill.txt" "$work/headers.txt" >>"$RESULTS" <<'PYEOF' || status=1
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families

text = open(sys.argv[1]).read()
headers = open(sys.argv[2]).read().lower()
checks = []
try:
    families = {f.name: f for f in text_string_to_metric_families(text)}
    checks.append(("strict OpenMetrics parse", True))
except Exception as e:  # the parser raises ValueError on any violation
    print(f"metrics: OpenMetrics parse failed: {e}", file=sys.stderr)
    families = {}
    checks.append(("strict OpenMetrics parse", False))

def value(fam, sample, **labels):
    f = families.get(fam)
    for s in (f.samples if f else []):
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return None

checks += [
    ("content type", "content-type: application/openmetrics-text" in headers),
    ("stream length", value("rill_stream_length", "rill_stream_length", stream="orders") == 5),
    ("group pending", value("rill_group_pending", "rill_group_pending", stream="orders", group="billing") == 3),
    ("group lag", value("rill_group_lag", "rill_group_lag", stream="orders", group="billing") == 2),
    ("consumer pending", value("rill_consumer_pending", "rill_consumer_pending", stream="orders", group="billing", consumer="alice") == 3),
    ("xadd counter", value("rill_commands", "rill_commands_total", cmd="xadd") == 6),
    ("xadd latency histogram", value("rill_command_duration_seconds", "rill_command_duration_seconds_count", cmd="xadd") == 6),
    ("fsync histogram", families.get("rill_log_fsync_duration_seconds") is not None
        and families["rill_log_fsync_duration_seconds"].type == "histogram"),
    ("streams", value("rill_streams", "rill_streams") == 2),
]
failed = 0
for name, ok in checks:
    if not ok:
        failed += 1
        print(f"metrics: endpoint check failed: {name}", file=sys.stderr)
print(f"openmetrics {len(checks) - failed} {failed}")
sys.exit(1 if failed else 0)
PYEOF
exit $status
