// ioredis Cluster (the version compat/node pins, from its node_modules) against a three-node Rill cluster made
// by `rill cluster create`, unchanged: slots from CLUSTER SLOTS, stream commands for keys on every node, MOVED
// followed from one seed, a blocked XREADGROUP on another node. Run by compat/cluster/run.sh with RILL_CLUSTER.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { Cluster } = require("../node/node_modules/ioredis");

const nodes = (process.env.RILL_CLUSTER || "").split(/\s+/).filter(Boolean).map((a) => {
  const i = a.lastIndexOf(":");
  return { host: a.slice(0, i), port: Number(a.slice(i + 1)) };
});
if (nodes.length !== 3) throw new Error("RILL_CLUSTER must list the three nodes: run through compat/run");

const prefix = `compat:ioredis:${process.pid}:${Date.now()}`;

for (const seeds of [nodes, nodes.slice(0, 1)]) {
  const label = seeds.length === 1 ? "one seed" : "three seeds";

  test(`streams and groups on every node (${label})`, async () => {
    const c = new Cluster(seeds, { enableReadyCheck: true });
    try {
      const owners = new Set();
      for (let i = 0; i < 30; i++) {
        const stream = `${prefix}:${seeds.length}:${i}`;
        const ids = [];
        for (let j = 0; j < 3; j++) ids.push(await c.xadd(stream, "*", "n", String(j)));
        assert.equal(await c.xgroup("CREATE", stream, "g", "0"), "OK");
        const got = await c.xreadgroup("GROUP", "g", "c", "COUNT", 10, "STREAMS", stream, ">");
        assert.deepEqual(got[0][1].map((e) => e[0]), ids);
        assert.equal(await c.xack(stream, "g", ...ids), 3);
        assert.equal((await c.xpending(stream, "g"))[0], 0);
        const slot = await c.cluster("KEYSLOT", stream);
        owners.add(c.slots[slot][0]);
      }
      assert.equal(owners.size, 3, `30 streams on ${owners.size} nodes`);
    } finally {
      c.disconnect();
    }
  });
}

test("a blocked XREADGROUP is woken on the node that owns the stream", async () => {
  // Two clients: a blocked command holds its node's connection.
  const reader = new Cluster(nodes);
  const writer = new Cluster(nodes);
  try {
    const stream = `${prefix}:block`;
    await writer.xgroup("CREATE", stream, "g", "$", "MKSTREAM");
    const reading = reader.xreadgroup("GROUP", "g", "c", "BLOCK", 5000, "STREAMS", stream, ">");
    await new Promise((r) => setTimeout(r, 200));
    await writer.xadd(stream, "1-1", "f", "v");
    const got = await reading;
    assert.ok(got, "timed out instead of being woken");
    assert.equal(got[0][1][0][0], "1-1");
  } finally {
    reader.disconnect();
    writer.disconnect();
  }
});
