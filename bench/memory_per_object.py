#!/usr/bin/env python3
"""Bytes per pending entry and per plain key, Rill against Redis, in one run.

Usage: bench/memory_per_object.py [--n N] [--redis PATH]... [--rill LABEL=PATH]... [--out FILE]

Defaults: N = 1,000,000; --redis ~/.cache/rill/redis-8.6.3/bin/redis-server (the
reference, first in the table); --rill rill=target/release/rill. Several --redis and
--rill may be given (e.g. before=/tmp/rill-base after=target/release/rill); each server
runs once, one after the other, each a fresh process (Redis: no persistence; Rill: a
fresh data dir, appendfsync no), and:
  1. XGROUP CREATE s g 0 MKSTREAM and N x `XADD s * f v`; RSS (and used_memory) noted;
  2. XREADGROUP GROUP g c COUNT 1000 STREAMS s > until N entries are pending (no ACK);
     the RSS growth / N is the cost of one pending entry;
  3. in another fresh process, N x `SET key:<i> val:<i>`; the RSS growth / N is the
     cost of one plain key (a separate process, so that memory freed in steps 1-2 and
     reused here is not counted to the wrong phase).
RSS is read from /proc/PID/status (VmRSS) after a short settle; Redis's INFO used_memory
(allocator-counted bytes) is reported beside it. Rill's INFO used_memory is its RSS.
Prints a markdown table, each figure also as a ratio to the first Redis; --out appends it
to FILE. Run it on a quiet machine (check `uptime`): RSS is what the kernel reports.
"""
import os, socket, subprocess, sys, tempfile, time

def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)

class Conn:
    def __init__(self, port):
        for _ in range(200):
            try:
                self.s = socket.create_connection(("127.0.0.1", port))
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise SystemExit("cannot connect to %d" % port)
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            self.buf += self.s.recv(1 << 20)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t in (b"+", b":"):
            return rest
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.s.recv(1 << 20)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RuntimeError("unexpected reply %r" % line)

    def call(self, *args):
        self.s.sendall(resp(*args))
        return self.read()

    def pipeline(self, cmds, batch=2000):
        for i in range(0, len(cmds), batch):
            chunk = cmds[i:i + batch]
            self.s.sendall(b"".join(resp(*c) for c in chunk))
            for _ in chunk:
                self.read()

def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")

def info_used(c):
    for line in c.call("INFO", "memory").decode().splitlines():
        if line.startswith("used_memory:"):
            return int(line.split(":")[1])
    return 0

def settle(pid, c):
    c.call("PING")
    time.sleep(0.5)
    return rss(pid), info_used(c)

class Server:
    """A fresh server process (and data dir) for one measurement."""
    def __init__(self, argv_for_dir, port):
        self.dir = tempfile.TemporaryDirectory()
        self.p = subprocess.Popen(argv_for_dir(self.dir.name), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        self.c = Conn(port)
        for _ in range(600):
            try:
                self.c.call("PING")
                break
            except RuntimeError as e:  # LOADING while the server starts
                if not str(e).startswith("LOADING"):
                    raise
                time.sleep(0.05)

    def settle(self):
        return settle(self.p.pid, self.c)

    def close(self):
        self.p.kill()
        self.p.wait()
        self.dir.cleanup()

def measure(name, argv_for_dir, port, n):
    # Pending entries and keys each in their own process, so that memory one phase frees
    # and the next reuses is not counted to the wrong one.
    s = Server(argv_for_dir, port)
    try:
        c = s.c
        base = s.settle()
        c.call("XGROUP", "CREATE", "s", "g", "0", "MKSTREAM")
        c.pipeline([("XADD", "s", "*", "f", "v")] * n)
        added = s.settle()
        delivered = 0
        while delivered < n:
            r = c.call("XREADGROUP", "GROUP", "g", "c", "COUNT", "1000", "STREAMS", "s", ">")
            got = len(r[0][1]) if r else 0
            if got == 0:
                raise RuntimeError("nothing more to read at %d" % delivered)
            delivered += got
        pending = s.settle()
    finally:
        s.close()
    s = Server(argv_for_dir, port)
    try:
        empty = s.settle()
        s.c.pipeline([("SET", "key:%d" % i, "val:%d" % i) for i in range(n)])
        keys = s.settle()
    finally:
        s.close()
    res = {
        "pending_rss": (pending[0] - added[0]) / n,
        "pending_used": (pending[1] - added[1]) / n,
        "key_rss": (keys[0] - empty[0]) / n,
        "key_used": (keys[1] - empty[1]) / n,
        "entry_rss": (added[0] - base[0]) / n,
    }
    print("%-6s N=%d  pending entry: %6.1f B RSS (%6.1f used_memory)   plain key: %6.1f B RSS (%6.1f used_memory)   [stream entry %6.1f B RSS]"
          % (name, n, res["pending_rss"], res["pending_used"], res["key_rss"], res["key_used"], res["entry_rss"]), flush=True)
    return res

def main():
    import argparse
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--redis", action="append", default=[])
    ap.add_argument("--rill", action="append", default=[])
    ap.add_argument("--out")
    a = ap.parse_args()
    redis = a.redis or [os.path.expanduser("~/.cache/rill/redis-8.6.3/bin/redis-server")]
    rill = a.rill or ["rill=" + os.path.join(here, "..", "target", "release", "rill")]
    rows = []
    port = 17391
    for path in redis:
        version = subprocess.run([path, "--version"], capture_output=True, text=True).stdout.split()
        label = "redis " + next((w[2:] for w in version if w.startswith("v=")), path)
        argv = lambda d, path=path, port=port: [path, "--port", str(port), "--save", "", "--appendonly", "no",
                                                "--dir", d]
        rows.append((label, measure(label, argv, port, a.n)))
        port += 1
    for spec in rill:
        label, _, path = spec.rpartition("=")
        label = label or "rill"
        argv = lambda d, path=path, port=port: [path, "--port", str(port), "--dir", d, "--appendfsync", "no"]
        rows.append((label, measure(label, argv, port, a.n)))
        port += 1
    ref = rows[0][1]
    out = ["N = %d; bytes per object (RSS growth / N), ratio to %s in brackets" % (a.n, rows[0][0]), "",
           "| server | pending entry | pending (used_memory) | plain key | key (used_memory) | stream entry |",
           "|---|---|---|---|---|---|"]
    for label, r in rows:
        cell = lambda k: "%.1f (%.2fx)" % (r[k], r[k] / ref[k]) if ref[k] > 0 else "%.1f" % r[k]
        out.append("| %s | %s | %.1f | %s | %.1f | %.1f |" % (label, cell("pending_rss"), r["pending_used"],
                                                             cell("key_rss"), r["key_used"], r["entry_rss"]))
    text = "\n".join(out) + "\n"
    print(text)
    if a.out:
        with open(a.out, "a") as f:
            f.write(text + "\n")

main()
