#!/usr/bin/env bash
# redis-cli against Rill, called by compat/run (not meant to be run alone).
#
# Each check runs the real redis-cli the way a person or a script does (arguments, stdin, -x, -3, --pipe, --scan,
# the interactive prompt under tmux) and compares its output with what it prints against Redis 7.4.
#
# In:  RILL_HOST, RILL_PORT, RESULTS (a file to append "name passed failed" lines to), LOGDIR; RILL_TLS_PORT,
#      RILL_TLS_CA, RILL_TLS_CERT, RILL_TLS_KEY for the TLS checks.
set -euo pipefail
: "${RILL_HOST:?}" "${RILL_PORT:?}" "${RESULTS:?}" "${LOGDIR:?}"

cli() { redis-cli -h "$RILL_HOST" -p "$RILL_PORT" "$@"; }
prefix="compat:cli:$$:$RANDOM"
log="$LOGDIR/cli.log"
: >"$log"
passed=0 failed=0

# check NAME EXPECTED ACTUAL: exact comparison, with a diff in the log on failure.
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
		echo "cli: FAIL $name (see $log)" >&2
	fi
}

# ------------------------------------------------------------------ commands by argument
k="$prefix:args"
check "args: XADD prints the ID" "1-1" "$(cli XADD "$k" 1-1 field value 2>&1)"
check "args: XADD second entry" "1-2" "$(cli XADD "$k" 1-2 other 'two words' 2>&1)"
check "args: XLEN (raw output when piped)" "2" "$(cli XLEN "$k" 2>&1)"
check "args: XRANGE formatted (--no-raw)" '1) 1) "1-1"
   2) 1) "field"
      2) "value"
2) 1) "1-2"
   2) 1) "other"
      2) "two words"' "$(cli --no-raw XRANGE "$k" - + 2>&1)"
check "args: error text" "(error) ERR The ID specified in XADD is equal or smaller than the target stream top item" \
	"$(cli --no-raw XADD "$k" 1-1 f v 2>&1)"
check "args: wrong arity" "(error) ERR wrong number of arguments for 'xadd' command" "$(cli --no-raw XADD "$k" 2>&1)"
check "args: TYPE" "stream" "$(cli TYPE "$k" 2>&1)"
check "args: -x reads the last argument from stdin" "1-3" "$(printf 'line one\nline two' | cli -x XADD "$k" 1-3 payload 2>&1)"
check "args: -x payload kept byte for byte" "$(printf 'line one\nline two')" "$(cli XRANGE "$k" 1-3 1-3 | sed -n '3,4p')"

# ------------------------------------------------------------------ commands from stdin
k="$prefix:stdin"
out="$(printf 'XADD %s 5-1 a 1\nXADD %s 5-2 b 2\nXLEN %s\nXREVRANGE %s + - COUNT 1\n' "$k" "$k" "$k" "$k" | cli 2>&1)"
check "stdin: one reply per line" "5-1
5-2
2
5-2
b
2" "$out"
out="$(printf 'MULTI\nXADD %s 6-1 c 3\nXLEN %s\nEXEC\n' "$k" "$k" | cli --no-raw 2>&1)"
check "stdin: MULTI/EXEC" 'OK
QUEUED
QUEUED
1) "6-1"
2) (integer) 3' "$out"

# ------------------------------------------------------------------ RESP3 (-3)
k="$prefix:resp3"
cli XADD "$k" 7-1 f v >/dev/null
check "-3: XREAD map" '1# "'"$k"'" => 
   1) 1) "7-1"
      2) 1) "f"
         2) "v"' "$(cli -3 --no-raw XREAD STREAMS "$k" 0 2>&1)"
check "-3: XREAD BLOCK timeout is null" "(nil)" "$(cli -3 --no-raw XREAD BLOCK 100 STREAMS "$k" '$' 2>&1)"
check "-3: XINFO STREAM is a map" ' 1# "length" => (integer) 1
 2# "radix-tree-keys" => (integer) 1' "$(cli -3 --no-raw XINFO STREAM "$k" 2>&1 | head -2)"
check "-3: HELLO says proto 3" '3# "proto" => (integer) 3' "$(cli -3 --no-raw HELLO 3 2>&1 | grep '"proto"')"
cli XGROUP CREATE "$k" g 0 >/dev/null
check "-3: XPENDING summary on an empty group" '1) (integer) 0
2) (nil)
3) (nil)
4) (nil)' "$(cli -3 --no-raw XPENDING "$k" g 2>&1)"

# ------------------------------------------------------------------ --pipe mass insert
k="$prefix:pipe"
pipefile="$LOGDIR/cli-pipe.resp"
python3 - "$k" "$pipefile" <<'EOF'
import sys
key, path = sys.argv[1].encode(), sys.argv[2]
def bulk(b): return b"$%d\r\n%s\r\n" % (len(b), b)
with open(path, "wb") as f:
    for i in range(100_000):
        args = [b"XADD", key, b"*", b"n", str(i).encode(), b"payload", b"x" * 32]
        f.write(b"*%d\r\n" % len(args) + b"".join(bulk(a) for a in args))
EOF
start=$(date +%s.%N)
out="$(cli --pipe <"$pipefile" 2>&1 | tail -1)"
secs=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$start" "$(date +%s.%N)")
echo "     --pipe of 100000 XADDs took ${secs}s" >>"$log"
check "--pipe: 100k XADDs acknowledged" "errors: 0, replies: 100000" "$out"
check "--pipe: XLEN afterwards" "100000" "$(cli XLEN "$k" 2>&1)"
check "--pipe: last entry" "99999" "$(cli XREVRANGE "$k" + - COUNT 1 2>&1 | sed -n 3p)"
rm -f "$pipefile"

# ------------------------------------------------------------------ --scan
for i in $(seq 1 60); do printf 'XADD %s:scan:%d * f v\n' "$prefix" "$i"; done | cli >/dev/null
cli SET "$prefix:scan:string" v >/dev/null
check "--scan --pattern finds every key once" "61" "$(cli --scan --pattern "$prefix:scan:*" 2>&1 | sort -u | wc -l)"
check "--scan --pattern: no duplicates" "61" "$(cli --scan --pattern "$prefix:scan:*" 2>&1 | wc -l)"
check "SCAN TYPE stream" "60" "$(
	cursor=0 n=0
	while :; do
		reply="$(cli SCAN "$cursor" MATCH "$prefix:scan:*" COUNT 50 TYPE stream)"
		cursor="$(head -1 <<<"$reply")"
		n=$((n + $(tail -n +2 <<<"$reply" | grep -c . || true)))
		[ "$cursor" = 0 ] && break
	done
	echo "$n"
)"

# ------------------------------------------------------------------ COMMAND DOCS (what interactive hints are built from)
docs_json="$LOGDIR/cli-command-docs.json"
cli --json COMMAND DOCS XADD XRANGE XREVRANGE XREAD XREADGROUP XACK XPENDING XCLAIM XAUTOCLAIM XGROUP XINFO \
	XTRIM XDEL XLEN XSETID >"$docs_json" 2>&1 || true
while read -r verdict name; do
	check "COMMAND DOCS $name" "ok" "$verdict"
done < <(python3 - "$docs_json" <<'EOF'
import json, sys
want = ["xadd", "xrange", "xrevrange", "xread", "xreadgroup", "xack", "xpending", "xclaim", "xautoclaim",
        "xgroup", "xinfo", "xtrim", "xdel", "xlen", "xsetid"]
try:
    docs = json.load(open(sys.argv[1]))
except ValueError as e:
    for name in want:
        print(f"unparsable {name}")
    sys.exit(0)

def arguments_ok(args):
    # redis-cli builds its hints from name/type/token/flags and nested arguments of block/oneof.
    if not isinstance(args, list) or not args:
        return False
    for a in args:
        if not isinstance(a, dict) or "name" not in a or "type" not in a:
            return False
        if a["type"] in ("block", "oneof") and not arguments_ok(a.get("arguments")):
            return False
    return True

def doc_ok(d, container):
    if not all(k in d for k in ("summary", "since", "group")) or d["group"] != "stream":
        return "missing summary/since/group"
    if container:
        subs = d.get("subcommands") or {}
        if not subs:
            return "no subcommands"
        bad = [n for n, s in subs.items() if n not in ("xgroup|help", "xinfo|help") and not arguments_ok(s.get("arguments"))]
        return f"subcommands without arguments: {','.join(sorted(bad))}" if bad else "ok"
    return "ok" if arguments_ok(d.get("arguments")) else "no arguments"

for name in want:
    d = docs.get(name)
    verdict = "absent" if d is None else doc_ok(d, name in ("xgroup", "xinfo"))
    print(f"{verdict.replace(' ', '_')} {name}")
EOF
)

# ------------------------------------------------------------------ subscribe (issue #15)
# subscribe_output NAME PATTERN-COUNT-CHANNEL CMD...: runs `redis-cli CMD...` (SUBSCRIBE or PSUBSCRIBE, which print
# every message until killed) in the background, waits until the server counts its subscription, runs the
# commands given on stdin (one per line) with another redis-cli, and prints what the subscriber printed.
subscribe_output() {
	local out="$LOGDIR/cli-$1.out" pid i
	shift
	cli "$@" >"$out" 2>&1 &
	pid=$!
	for i in $(seq 1 50); do
		if [ "$(cli PUBSUB NUMPAT)" -ge 1 ] || [ "$(cli PUBSUB NUMSUB "${@: -1}" | sed -n 2p)" = 1 ]; then break; fi
		sleep 0.1
	done
	cli >/dev/null
	sleep 0.5
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	cat "$out"
}
k="$prefix:sub"
check "subscribe: messages as redis-cli prints them" "subscribe
$k
1
message
$k
hello
message
$k
two words" "$(printf 'PUBLISH %s hello\nPUBLISH %s "two words"\n' "$k" "$k" | subscribe_output subscribe SUBSCRIBE "$k")"
check "subscribe -3: the same lines from RESP3 pushes" "subscribe
$k
1
message
$k
hello" "$(printf 'PUBLISH %s hello\n' "$k" | subscribe_output subscribe3 -3 SUBSCRIBE "$k")"
k="$prefix:keyspace"
cli CONFIG SET notify-keyspace-events KEA >/dev/null
check "psubscribe: keyspace events of stream and key commands" "psubscribe
__keyspace@0__:$k
1
pmessage
__keyspace@0__:$k
__keyspace@0__:$k
xadd
pmessage
__keyspace@0__:$k
__keyspace@0__:$k
xgroup-create
pmessage
__keyspace@0__:$k
__keyspace@0__:$k
expire
pmessage
__keyspace@0__:$k
__keyspace@0__:$k
del" "$(printf 'XADD %s 1-1 f v\nXGROUP CREATE %s g 0\nEXPIRE %s 100\nDEL %s\n' "$k" "$k" "$k" "$k" |
	subscribe_output psubscribe PSUBSCRIBE "__keyspace@0__:$k")"
check "subscribe: a keyevent channel" "subscribe
__keyevent@0__:xtrim
1
message
__keyevent@0__:xtrim
$k" "$(printf 'XADD %s MAXLEN 0 2-1 f v\n' "$k" | subscribe_output keyevent SUBSCRIBE __keyevent@0__:xtrim)"
cli CONFIG SET notify-keyspace-events "" >/dev/null

# ------------------------------------------------------------------ the interactive prompt (tmux)
if command -v tmux >/dev/null; then
	session="rillcompat$$"
	k="$prefix:interactive"
	tmux new-session -d -s "$session" -x 200 -y 30 "redis-cli -h $RILL_HOST -p $RILL_PORT"
	sleep 1
	tmux send-keys -t "$session" "XADD $k "
	sleep 0.5
	pane="$(tmux capture-pane -t "$session" -p | grep -m1 "XADD $k" || true)"
	check "interactive: hint after 'XADD key '" "yes" "$([[ "$pane" == *"[NOMKSTREAM]"* && "$pane" == *"field value"* ]] && echo yes || echo "no: '$pane'")"
	tmux send-keys -t "$session" C-u "XGROUP CREATE $k "
	sleep 0.5
	pane="$(tmux capture-pane -t "$session" -p | grep -m1 "XGROUP CREATE $k" || true)"
	check "interactive: hint after 'XGROUP CREATE key '" "yes" "$([[ "$pane" == *"MKSTREAM"* ]] && echo yes || echo "no: '$pane'")"
	tmux send-keys -t "$session" C-u "XADD $k 9-9 f v" Enter
	sleep 0.5
	tmux send-keys -t "$session" "XLEN $k" Enter
	sleep 0.5
	pane="$(tmux capture-pane -t "$session" -p)"
	tmux kill-session -t "$session" 2>/dev/null || true
	check "interactive: commands run" "yes" "$([[ "$pane" == *'"9-9"'* && "$pane" == *"(integer) 1"* ]] && echo yes || echo "no")"
else
	failed=$((failed + 1))
	echo "FAIL interactive: tmux is not installed" >>"$log"
fi

# ------------------------------------------------------------------ TLS (redis-cli --tls)
# Debian's redis-cli is built with TLS. The server requires a client certificate (tls-auth-clients yes, the default).
if [ -n "${RILL_TLS_PORT:-}" ]; then
	tcli() {
		redis-cli -h "$RILL_HOST" -p "$RILL_TLS_PORT" --tls --cacert "$RILL_TLS_CA" --cert "$RILL_TLS_CERT" \
			--key "$RILL_TLS_KEY" "$@"
	}
	k="$prefix:tls"
	check "tls: PING" "PONG" "$(tcli PING 2>&1)"
	check "tls: XADD" "7-1" "$(tcli XADD "$k" 7-1 over tls 2>&1)"
	check "tls: plain port sees it" "1" "$(cli XLEN "$k" 2>&1)"
	check "tls: XRANGE formatted" '1) 1) "7-1"
   2) 1) "over"
      2) "tls"' "$(tcli --no-raw XRANGE "$k" - + 2>&1)"
	check "tls: --pipe of 10k XADDs" "yes" "$(for i in $(seq 1 10000); do printf 'XADD %s * i %d\n' "$k:pipe" "$i"; done |
		tcli --pipe 2>&1 | grep -q 'errors: 0, replies: 10000' && echo yes || echo no)"
	check "tls: XLEN after --pipe" "10000" "$(tcli XLEN "$k:pipe" 2>&1)"
	check "tls: blocking XREAD woken by an XADD on the plain port" "yes" "$(
		(sleep 0.5 && cli XADD "$k:block" 8-1 woken yes >/dev/null) &
		out="$(tcli XREAD BLOCK 5000 STREAMS "$k:block" '$' 2>&1)"
		wait
		[[ "$out" == *woken* ]] && echo yes || echo "no: $out"
	)"
	check "tls: no client certificate is refused" "refused" "$(
		redis-cli -h "$RILL_HOST" -p "$RILL_TLS_PORT" --tls --cacert "$RILL_TLS_CA" PING 2>&1 | grep -q PONG &&
			echo served || echo refused
	)"
	check "tls: plain text on the TLS port is refused" "refused" "$(
		timeout 10 redis-cli -h "$RILL_HOST" -p "$RILL_TLS_PORT" PING 2>&1 | grep -q PONG && echo served || echo refused
	)"
	check "tls: the plain port still serves" "PONG" "$(cli PING 2>&1)"
	check "tls: CONFIG GET tls-auth-clients" "tls-auth-clients
yes" "$(tcli CONFIG GET tls-auth-clients 2>&1)"
fi

echo "redis-cli $passed $failed" >>"$RESULTS"
[ "$failed" -eq 0 ]
