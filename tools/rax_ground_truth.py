#!/usr/bin/env python3
"""Ground truth for src/engine/rax.rs, taken from a real Redis.

Drives XADD / XDEL / XTRIM against a running redis-server (7.x), tracks which listpack
nodes Redis must create and free (stream-node-max-entries N, small fields so the byte
limit never triggers), and records after every command that changed the radix tree the
`radix-tree-keys` / `radix-tree-nodes` XINFO STREAM reports. The model is checked against
Redis at every step (radix-tree-keys and XLEN must agree), so a wrong guess about which
nodes exist aborts the run instead of producing bad data.

Output tokens: `+MS-SEQ` raxInsert of a node's master ID, `-MS-SEQ` raxRemove,
`=KEYS/NODES` what XINFO reported after the preceding ops, `!` a fresh stream (new rax).

usage: rax_ground_truth.py PORT fixed              # the hard-coded scenarios (Rust consts)
       rax_ground_truth.py PORT random SEED STEPS [ADD_PROB]  # one randomized trace, one line
       rax_ground_truth.py rax-c REDIS_SRC SEED STEPS [fixed]

The `rax-c` mode needs no server: it compiles Redis's own src/rax.c (from a Redis source
tree, e.g. `apt-get source redis`) with a tiny driver and records raxInsert / raxRemove of
arbitrary byte keys, including keys that are prefixes of others, which streams never
produce. Its tokens are `+HEX/RET` and `-HEX/RET` (RET: what rax returned), then
`=NUMELE/NUMNODES`.
"""
import random
import socket
import sys

KEY = b"rax-ground-truth"
U64 = (1 << 64) - 1


class Redis:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.reader = self.sock.makefile("rb")

    def cmd(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self._read()

    def _read(self):
        line = self.reader.readline()[:-2]
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.reader.read(n + 2)[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise RuntimeError("bad reply %r" % line)


class StreamModel:
    """Which listpack nodes Redis holds, in ID order (masters only grow, so a dict's
    insertion order is ID order): master -> [[id, live], ...]."""

    def __init__(self, max_entries):
        self.max_entries = max_entries
        self.nodes = {}
        self.master_of = {}
        self.live = 0

    def length(self):
        return self.live

    def add(self, eid):
        # streamAppendItem: the tail node is closed once it holds max-entries slots,
        # deleted ones included.
        self.live += 1
        if self.nodes:
            tail = next(reversed(self.nodes))
            if len(self.nodes[tail]) < self.max_entries:
                self.nodes[tail].append([eid, True])
                self.master_of[eid] = tail
                return []
        self.nodes[eid] = [[eid, True]]
        self.master_of[eid] = eid
        return ["+%d-%d" % eid]

    def _free_if_empty(self, master):
        if any(live for _, live in self.nodes[master]):
            return []
        for eid, _ in self.nodes.pop(master):
            del self.master_of[eid]
        return ["-%d-%d" % master]

    def delete(self, eid):
        master = self.master_of.get(eid)
        if master is None:
            return []
        for slot in self.nodes[master]:
            if slot[0] == eid and slot[1]:
                slot[1] = False
                self.live -= 1
                return self._free_if_empty(master)
        return []

    def _drop_head(self):
        master = next(iter(self.nodes))
        for eid, live in self.nodes.pop(master):
            del self.master_of[eid]
            self.live -= live
        return "-%d-%d" % master

    def trim_maxlen(self, maxlen):
        # streamTrim, exact: whole head nodes while they fit, then single entries.
        ops = []
        while self.nodes and self.live > maxlen:
            head = self.nodes[next(iter(self.nodes))]
            live = sum(1 for _, l in head if l)
            if self.live - live >= maxlen:
                ops.append(self._drop_head())
                continue
            for slot in head:
                if self.live <= maxlen:
                    break
                if slot[1]:
                    slot[1] = False
                    self.live -= 1
            break
        return ops

    def trim_minid(self, minid):
        ops = []
        while self.nodes:
            head = self.nodes[next(iter(self.nodes))]
            if head[-1][0] < minid:
                ops.append(self._drop_head())
                continue
            for slot in head:
                if slot[0] >= minid:
                    break
                if slot[1]:
                    slot[1] = False
                    self.live -= 1
            break
        return ops


def xinfo(r):
    reply = r.cmd("XINFO", "STREAM", KEY)
    fields = dict(zip(reply[0::2], reply[1::2]))
    return fields[b"radix-tree-keys"], fields[b"radix-tree-nodes"], fields[b"length"]


def run(r, max_entries, commands):
    """Applies commands to Redis and the model; returns the token list."""
    r.cmd("DEL", KEY)
    r.cmd("CONFIG", "SET", "stream-node-max-entries", max_entries)
    r.cmd("CONFIG", "SET", "stream-node-max-bytes", 4096)
    model = StreamModel(max_entries)
    tokens = []
    for c in commands:
        kind = c[0]
        if kind == "add":
            eid = (c[1], c[2])
            r.cmd("XADD", KEY, "%d-%d" % eid, "f", "v")
            ops = model.add(eid)
        elif kind == "del":
            eid = (c[1], c[2])
            n = r.cmd("XDEL", KEY, "%d-%d" % eid)
            ops = model.delete(eid)
            assert n in (0, 1)
        elif kind == "maxlen":
            r.cmd("XTRIM", KEY, "MAXLEN", "=", c[1])
            ops = model.trim_maxlen(c[1])
        elif kind == "minid":
            r.cmd("XTRIM", KEY, "MINID", "=", "%d-%d" % (c[1], c[2]))
            ops = model.trim_minid((c[1], c[2]))
        else:
            raise ValueError(kind)
        keys, nodes, length = xinfo(r)
        if keys != len(model.nodes) or length != model.length():
            raise RuntimeError("model diverged at %r: redis keys=%d len=%d, model keys=%d len=%d"
                               % (c, keys, length, len(model.nodes), model.length()))
        if ops:
            tokens += ops + ["=%d/%d" % (keys, nodes)]
    return tokens


def adds(ids):
    return [("add", ms, seq) for ms, seq in ids]


def dels(ids):
    return [("del", ms, seq) for ms, seq in ids]


def fixed_scenarios():
    rng = random.Random(7)
    out = []

    # Consecutive millisecond timestamps crossing a low-byte (and second-byte) boundary,
    # then every other node deleted, then the rest from the newest down.
    base = 1700000000000 - (1700000000000 % 65536) + 65536 - 40
    ids = [(base + k, 0) for k in range(64)]
    out.append(("CONSECUTIVE_MS", 1, adds(ids) + dels(ids[::2]) + dels(ids[1::2][::-1])))

    # One millisecond, sequence numbers crossing 8-, 16-, 32-bit boundaries and the
    # u64 maximum, then the next millisecond; deleted in a shuffled order.
    seqs = list(range(250, 262)) + list(range(65530, 65541)) + \
        [(1 << 32) + d for d in range(-3, 3)] + [U64 - 2, U64 - 1, U64]
    ids = [(42, s) for s in seqs] + [(43, 0), (43, 1)]
    shuffled = ids[:]
    rng.shuffle(shuffled)
    out.append(("SEQ_ROLLOVER", 1, adds(ids) + dels(shuffled)))

    # Sparse and huge ms values, two entries a node; trimmed down by MAXLEN, re-filled.
    ms_values = [0, 1, 2, 255, 256, 257, 65535, 65536, (1 << 24) + 5, (1 << 32) - 1, 1 << 32,
                 (1 << 40) + 7, 1 << 48, (1 << 56) + 1, (1 << 63) - 1, 1 << 63, (1 << 63) + 255]
    ids = []
    for ms in ms_values:
        ids += [(ms, s) for s in (0, 1, 7) if (ms, s) != (0, 0)]
    cmds = adds(ids)
    for keep in (45, 40, 33, 20, 11, 4, 1, 0):
        cmds.append(("maxlen", keep))
    later = [(U64 - 1000, 0), (U64 - 1000, 1), (U64 - 255, 3), (U64 - 1, 0), (U64 - 1, 5),
             (U64, 0), (U64, 1), (U64, 2)]
    cmds += adds(later) + dels(later[::3]) + [("maxlen", 2)] + dels(later)
    out.append(("SPARSE_HUGE", 2, cmds))

    # ms values sharing long prefixes, three entries a node, deleted from the middle out.
    prefix = 0x0102030405060000
    ids = []
    for low in (0x00, 0x01, 0x02, 0x10, 0x11, 0xff, 0x100, 0x101, 0x1ff, 0x200, 0xff00, 0xffff):
        ids += [(prefix + low, s) for s in (0, 1, 2)]
    mid = len(ids) // 2
    order = []
    for k in range(mid + 1):
        for idx in (mid - k, mid + k):
            if 0 <= idx < len(ids) and ids[idx] not in order:
                order.append(ids[idx])
    out.append(("SHARED_PREFIX", 3, adds(ids) + dels(order)))

    # Emptied and refilled several times: the head must come back to a single node.
    cmds = []
    ms = 1000
    for round_ in range(5):
        batch = []
        for _ in range(6 + round_):
            ms += rng.choice([1, 1, 2, 256, 65536])
            batch.append((ms, 0))
        cmds += adds(batch)
        victims = batch[:]
        rng.shuffle(victims)
        cmds += dels(victims)
    out.append(("EMPTY_REFILL", 1, cmds))

    # MINID trims over two-entry nodes, with tombstones left inside the boundary node.
    ids = [(5000 + 3 * k, s) for k in range(20) for s in (0, 1)]
    cmds = adds(ids) + dels([ids[5], ids[9], ids[12]])
    for k in (1, 4, 5, 9, 15, 16, 25, 40):
        cmds.append(("minid", 5000 + 3 * k, 1))
    out.append(("MINID_TRIM", 2, cmds))

    # A short randomized mix (seed 11), hard-coded as a whole.
    out.append(("RANDOM_MIX", 1, random_commands(random.Random(11), 250, 1)))
    out.append(("RANDOM_MIX_N3", 3, random_commands(random.Random(12), 250, 3)))
    return out


def random_commands(rng, steps, max_entries, add_prob=0.55):
    """Random XADD/XDEL/XTRIM commands; IDs only grow, as Redis requires.

    With add_prob >= 1: `steps` XADDs, then an XDEL of every entry in random order
    (large trees, which the trims of the mixed mode keep from forming)."""
    cmds = []
    live = []
    ms, seq = rng.choice([0, 1700000000000, 1 << 40]), 0
    for _ in range(steps):
        roll = rng.random()
        if roll < add_prob or not live:
            gap = rng.choice(["seq", "ms1", "small", "byte", "mid", "big"])
            if gap == "seq":
                seq += 1
            else:
                ms += {"ms1": 1, "small": rng.randint(2, 40), "byte": rng.choice([255, 256, 257]),
                       "mid": rng.randint(300, 1 << 20), "big": rng.randint(1 << 20, 1 << 44)}[gap]
                seq = rng.choice([0, 0, 0, rng.randint(0, 1 << 16)])
            if ms > U64:
                break
            cmds.append(("add", ms, seq))
            live.append((ms, seq))
            continue
        if add_prob >= 1:
            break
        if roll < add_prob + (1 - add_prob) * 0.78:
            pick = rng.choice(["old", "new", "any", "any"])
            eid = live[0] if pick == "old" else live[-1] if pick == "new" else rng.choice(live)
            live.remove(eid)
            cmds.append(("del",) + eid)
        elif roll < add_prob + (1 - add_prob) * 0.933:
            keep = rng.randint(0, len(live))
            cmds.append(("maxlen", keep))
            # Exact MAXLEN keeps the newest `keep` entries.
            live = live[len(live) - keep:] if keep else []
        else:
            eid = rng.choice(live)
            cmds.append(("minid",) + eid)
            live = [x for x in live if x >= eid]
    if add_prob >= 1:
        rng.shuffle(live)
        cmds += dels(live)
    return cmds


def emit_rust(name, doc, tokens):
    print("/// %s; %d tokens." % (doc, len(tokens)))
    print("const %s: &str = \"\\" % name)
    line = ""
    for t in tokens:
        if len(line) + len(t) + 1 > 96:
            print("    " + line.rstrip() + " \\")
            line = ""
        line += t + " "
    print("    " + line.rstrip() + "\";")
    print()


HARNESS_C = r"""
#include <stdio.h>
#include <string.h>
#include "rax.h"
static int hexval(char c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; }
int main(void) {
    rax *r = raxNew();
    char line[8192];
    unsigned char key[4096];
    while (fgets(line, sizeof line, stdin)) {
        size_t len = strcspn(line, "\r\n"), n = 0;
        line[len] = 0;
        if (!len) continue;
        for (size_t i = 1; i + 1 < len + 1 && line[i] && line[i + 1]; i += 2)
            key[n++] = hexval(line[i]) * 16 + hexval(line[i + 1]);
        int ret = line[0] == '+' ? raxInsert(r, key, n, (void *)1, NULL)
                                 : raxRemove(r, key, n, NULL);
        printf("%d %llu %llu\n", ret, (unsigned long long)r->numele,
               (unsigned long long)r->numnodes);
    }
    return 0;
}
"""


def rax_c_trace(src, seed, steps):
    import os
    import subprocess
    import tempfile
    tmp = tempfile.mkdtemp()
    with open(os.path.join(tmp, "malloc.h"), "w") as f:
        f.write("#include <stdlib.h>\n#define rax_malloc malloc\n"
                "#define rax_realloc realloc\n#define rax_free free\n")
    with open(os.path.join(tmp, "driver.c"), "w") as f:
        f.write(HARNESS_C)
    exe = os.path.join(tmp, "driver")
    subprocess.check_call(["gcc", "-O2", "-DRAX_MALLOC_INCLUDE=\"malloc.h\"", "-I", tmp,
                           "-I", os.path.join(src, "src"), os.path.join(tmp, "driver.c"),
                           os.path.join(src, "src", "rax.c"), "-o", exe, "-lm"])
    rng = random.Random(seed)
    ops = []
    present = []
    # Small alphabets and short keys, so that keys share prefixes, end inside
    # compressed nodes and are prefixes of each other.
    alphabet = [0x00, 0x01, 0x41, 0x42, 0x43, 0x7f, 0xff]
    for _ in range(steps):
        if present and rng.random() < 0.35:
            key = rng.choice(present) if rng.random() < 0.9 else bytes(
                rng.choice(alphabet) for _ in range(rng.randint(0, 6)))
            ops.append(("-", key))
        else:
            if present and rng.random() < 0.4:
                base = rng.choice(present)
                key = base[:rng.randint(0, len(base))] + bytes(
                    rng.choice(alphabet) for _ in range(rng.randint(0, 4)))
            else:
                key = bytes(rng.choice(alphabet) for _ in range(rng.choice([0, 1, 2, 3, 4, 6, 9, 16])))
            ops.append(("+", key))
        # Track presence the simple way; rax's return values are checked anyway.
        if ops[-1][0] == "+" and ops[-1][1] not in present:
            present.append(ops[-1][1])
        elif ops[-1][0] == "-" and ops[-1][1] in present:
            present.remove(ops[-1][1])
    feed = "".join(op + key.hex() + "\n" for op, key in ops)
    out = subprocess.run([exe], input=feed, capture_output=True, text=True, check=True).stdout
    tokens = []
    for (op, key), line in zip(ops, out.splitlines()):
        ret, numele, numnodes = line.split()
        tokens += ["%s%s/%s" % (op, key.hex(), ret), "=%s/%s" % (numele, numnodes)]
    return tokens


def main():
    if sys.argv[1] == "rax-c":
        tokens = rax_c_trace(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        if len(sys.argv) > 5:
            emit_rust("RAX_C_BYTES", "rax.c, seed %s" % sys.argv[3], tokens)
        else:
            print(" ".join(tokens))
        return
    port = int(sys.argv[1])
    r = Redis(port)
    if sys.argv[2] == "fixed":
        for name, n, cmds in fixed_scenarios():
            emit_rust(name, "stream-node-max-entries %d" % n, run(r, n, cmds))
    else:
        seed, steps = int(sys.argv[3]), int(sys.argv[4])
        add_prob = float(sys.argv[5]) if len(sys.argv) > 5 else 0.55
        rng = random.Random(seed)
        tokens = []
        for n in (1, 2, 3):
            tokens += ["!"] + run(r, n, random_commands(rng, steps, n, add_prob))
        print(" ".join(tokens))


if __name__ == "__main__":
    main()
