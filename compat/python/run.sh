#!/usr/bin/env bash
# redis-py against Rill, called by compat/run (not meant to be run alone). Installs requirements.txt into
# compat/python/.venv (or, where venv is unavailable, with pip --user) and runs pytest.
#
# In:  RILL_HOST, RILL_PORT, RESULTS (a file to append "name passed failed" lines to), LOGDIR.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
: "${RILL_HOST:?}" "${RILL_PORT:?}" "${RESULTS:?}" "${LOGDIR:?}"

py=python3
if [ -x .venv/bin/python ] || python3 -m venv .venv >/dev/null 2>&1; then
	py="$here/.venv/bin/python"
	"$py" -m pip install -q --disable-pip-version-check -r requirements.txt
else
	echo "python: venv unavailable, installing with pip --user" >&2
	python3 -m pip install -q --disable-pip-version-check --user -r requirements.txt
fi
echo "python: redis-py $("$py" -c 'import redis; print(redis.__version__)')" >&2

xml="$LOGDIR/python-junit.xml"
rm -f "$xml"
status=0
"$py" -m pytest -p no:cacheprovider -q -rfE --junitxml="$xml" . >"$LOGDIR/python.log" 2>&1 || status=$?
tail -n 30 "$LOGDIR/python.log" | grep -E '^(FAILED|ERROR)' >&2 || true
counts="$("$py" - "$xml" <<'PYEOF'
import sys
import xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print("0 1")  # pytest died before writing its report
    sys.exit(0)
suites = [root] if root.tag == "testsuite" else list(root)
tests = sum(int(s.get("tests", 0)) for s in suites)
bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
print(tests - bad - skipped, bad)
PYEOF
)"
echo "redis-py $counts" >>"$RESULTS"
exit $status
