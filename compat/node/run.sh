#!/usr/bin/env bash
# ioredis against Rill, called by compat/run (not meant to be run alone). Installs exactly package-lock.json
# (npm ci) and runs node's test runner.
#
# In:  RILL_HOST, RILL_PORT, RESULTS (a file to append "name passed failed" lines to), LOGDIR.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
: "${RILL_HOST:?}" "${RILL_PORT:?}" "${RESULTS:?}" "${LOGDIR:?}"

npm ci --no-audit --no-fund --loglevel=error >"$LOGDIR/node-install.log" 2>&1 || {
	cat "$LOGDIR/node-install.log" >&2
	exit 1
}
echo "node: ioredis $(node -p 'require("./node_modules/ioredis/package.json").version')" >&2
status=0
node --test --test-concurrency=1 --test-reporter=tap test/ >"$LOGDIR/node.tap" 2>&1 || status=$?
grep -E '^not ok' "$LOGDIR/node.tap" >&2 || true
pass="$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$LOGDIR/node.tap" | tail -1)"
fail="$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$LOGDIR/node.tap" | tail -1)"
echo "ioredis ${pass:-0} ${fail:-1}" >>"$RESULTS"
exit $status
