#!/usr/bin/env bash
# Rill's broker policies (issue #16) with real clients, unchanged; called by compat/run (not meant to be run
# alone). redis-py (from compat/python's requirements, in compat/python/.venv) shows age-based retention trimming
# while consumers read (test_retention.py); Watermill redisstream (go/, the versions compat/watermill pins) shows a
# poison message dead-lettered after MAXDELIVER deliveries while the other messages flow (go/deadletter_test.go).
#
# In:  RILL_HOST, RILL_PORT, RILL_ADDR, RESULTS (a file to append "name passed failed" lines to), LOGDIR.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pydir="$here/../python"
: "${RILL_HOST:?}" "${RILL_PORT:?}" "${RESULTS:?}" "${LOGDIR:?}"
status=0

# ---- redis-py: retention
py=python3
if [ -x "$pydir/.venv/bin/python" ] || python3 -m venv "$pydir/.venv" >/dev/null 2>&1; then
	py="$pydir/.venv/bin/python"
	"$py" -m pip install -q --disable-pip-version-check -r "$pydir/requirements.txt"
else
	python3 -m pip install -q --disable-pip-version-check --user -r "$pydir/requirements.txt"
fi
xml="$LOGDIR/policies-py-junit.xml"
rm -f "$xml"
(cd "$here" && "$py" -m pytest -p no:cacheprovider -q -rfE --junitxml="$xml" test_retention.py) \
	>"$LOGDIR/policies-py.log" 2>&1 || status=$?
grep -E '^(FAILED|ERROR)' "$LOGDIR/policies-py.log" >&2 || true
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
echo "retention-redis-py $counts" >>"$RESULTS"

# ---- Watermill: dead-lettering
if command -v go >/dev/null; then
	json="$LOGDIR/policies-go.json"
	(cd "$here/go" && GOFLAGS=-mod=readonly GOTOOLCHAIN=local go test -count=1 -v -json ./... >"$json" 2>"$LOGDIR/policies-go.err") || status=1
	echo "deadletter-watermill $(python3 "$here/../lib/gotest_count.py" "$json")" >>"$RESULTS"
else
	echo "policies: go is not installed; Watermill dead-lettering not run" >&2
	echo "deadletter-watermill 0 1" >>"$RESULTS"
	status=1
fi

exit $status
