// ioredis against Rill (node:test). ioredis speaks RESP2 and returns raw reply arrays, so these tests pin the
// exact reply shapes a real Redis 7.4 sends. compat/run sets RILL_HOST and RILL_PORT.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';

const host = process.env.RILL_HOST;
const port = Number(process.env.RILL_PORT);
if (!host || !port) {
  throw new Error('RILL_HOST/RILL_PORT not set: run through compat/run');
}

const clients = [];
function client(opts = {}) {
  const c = new Redis({ host, port, maxRetriesPerRequest: 1, ...opts });
  clients.push(c);
  return c;
}
after(async () => {
  await Promise.all(clients.map((c) => c.quit().catch(() => c.disconnect())));
});

const freshKey = () => `compat:node:${randomUUID()}`;
const idsOf = (entries) => entries.map(([id]) => id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

test('ready check: INFO is polled until loading:0 before queued commands flow', async () => {
  const c = client({ enableReadyCheck: true, lazyConnect: true });
  // ioredis 6 does not keep what INFO said: watch the INFO replies its ready check receives.
  const infoReplies = [];
  const realInfo = c.info.bind(c);
  c.info = (...args) => {
    const reply = realInfo(...args);
    reply.then((text) => infoReplies.push(text), () => {});
    return reply;
  };
  const ready = once(c, 'ready');
  const queued = c.xlen(freshKey()); // connects (lazyConnect), sent only once the ready check passed
  await ready;
  assert.equal(c.status, 'ready');
  assert.equal(await queued, 0);
  assert.ok(infoReplies.length >= 1, 'the ready check never sent INFO');
  const text = infoReplies[0];
  assert.match(text, /\r\nredis_version:\d+\.\d+\.\d+\r\n/);
  assert.match(text, /\r\nloading:0\r\n/);
  assert.equal(await c.ping(), 'PONG');
});

test('XADD, XRANGE, XREVRANGE, XLEN, XDEL, XTRIM', async () => {
  const r = client();
  const key = freshKey();
  const ids = [];
  for (let i = 0; i < 5; i++) ids.push(await r.xadd(key, '*', 'n', String(i), 'even', String(i % 2 === 0)));
  assert.equal(await r.xlen(key), 5);
  const all = await r.xrange(key, '-', '+');
  assert.deepEqual(idsOf(all), ids);
  assert.deepEqual(all[2][1], ['n', '2', 'even', 'true']);
  assert.deepEqual(idsOf(await r.xrevrange(key, '+', '-', 'COUNT', 2)), [ids[4], ids[3]]);
  assert.equal(await r.xdel(key, ids[0], ids[1]), 2);
  assert.equal(await r.xtrim(key, 'MAXLEN', '=', 1), 2);
  assert.deepEqual(idsOf(await r.xrange(key, '-', '+')), [ids[4]]);
  assert.deepEqual(await r.xrange(`${key}:missing`, '-', '+'), []);
  assert.equal(await r.type(key), 'stream');
});

test('XADD error texts arrive as ReplyError', async () => {
  const r = client();
  const key = freshKey();
  await r.xadd(key, '10-1', 'f', 'v');
  await assert.rejects(r.xadd(key, '10-1', 'f', 'v'), {
    name: 'ReplyError',
    message: 'ERR The ID specified in XADD is equal or smaller than the target stream top item',
  });
  await assert.rejects(r.xadd(key, 'MAXLEN', '-1', '*', 'f', 'v'), {
    message: 'ERR The MAXLEN argument must be >= 0.',
  });
  await assert.rejects(r.call('XADD', key), { message: "ERR wrong number of arguments for 'xadd' command" });
});

test('binary field values round-trip unchanged', async () => {
  const r = client();
  const key = freshKey();
  const payload = Buffer.from([0, 255, 254, 10, 13, 0, 36, 42, 128]);
  const id = await r.xadd(key, '*', 'payload', payload);
  const [[gotId, fields]] = await r.xrangeBuffer(key, '-', '+');
  assert.equal(gotId.toString(), id);
  assert.equal(fields[0].toString(), 'payload');
  assert.ok(fields[1].equals(payload), `got ${fields[1].toString('hex')}`);
});

test('XREAD: immediate, BLOCK timeout gives null, BLOCK woken by XADD', async () => {
  const r = client();
  const w = client();
  const key = freshKey();
  const id = await w.xadd(key, '*', 'a', '1');
  assert.deepEqual(await r.xread('STREAMS', key, '0-0'), [[key, [[id, ['a', '1']]]]]);

  let start = Date.now();
  assert.equal(await r.xread('BLOCK', 250, 'STREAMS', key, '$'), null);
  const waited = Date.now() - start;
  assert.ok(waited >= 230 && waited < 1500, `BLOCK 250 returned after ${waited} ms`);

  start = Date.now();
  const pending = r.xread('BLOCK', 5000, 'STREAMS', key, '$');
  await sleep(150);
  const id2 = await w.xadd(key, '*', 'b', '2');
  assert.deepEqual(await pending, [[key, [[id2, ['b', '2']]]]]);
  assert.ok(Date.now() - start < 2000);
});

test('consumer groups: create, read, pending, ack, claim, autoclaim, info', async () => {
  const r = client();
  const key = freshKey();
  assert.equal(await r.xgroup('CREATE', key, 'g', '$', 'MKSTREAM'), 'OK');
  await assert.rejects(r.xgroup('CREATE', key, 'g', '$'), { message: 'BUSYGROUP Consumer Group name already exists' });
  const ids = [];
  for (let i = 0; i < 4; i++) ids.push(await r.xadd(key, '*', 'i', String(i)));

  const read = await r.xreadgroup('GROUP', 'g', 'alice', 'COUNT', 3, 'STREAMS', key, '>');
  assert.deepEqual(read, [[key, ids.slice(0, 3).map((id, i) => [id, ['i', String(i)]])]]);
  assert.deepEqual(await r.xpending(key, 'g'), [3, ids[0], ids[2], [['alice', '3']]]);

  const ext = await r.xpending(key, 'g', '-', '+', 10);
  assert.equal(ext.length, 3);
  assert.equal(ext[0].length, 4);
  assert.deepEqual([ext[0][0], ext[0][1], ext[0][3]], [ids[0], 'alice', 1]);

  assert.equal(await r.xack(key, 'g', ids[0]), 1);
  await sleep(20);
  const claimed = await r.xclaim(key, 'g', 'bob', 10, ids[1]);
  assert.deepEqual(claimed, [[ids[1], ['i', '1']]]);
  const [cursor, auto, deleted] = await r.xautoclaim(key, 'g', 'carol', 0, '0-0', 'COUNT', 10, 'JUSTID');
  assert.equal(cursor, '0-0');
  assert.deepEqual(auto, [ids[1], ids[2]]);
  assert.deepEqual(deleted, []);

  const info = await r.xinfo('STREAM', key);
  const asMap = Object.fromEntries(Array.from({ length: info.length / 2 }, (_, i) => [info[2 * i], info[2 * i + 1]]));
  assert.equal(asMap.length, 4);
  assert.equal(asMap.groups, 1);
  assert.equal(asMap['last-generated-id'], ids[3]);
  assert.deepEqual(Object.keys(asMap).slice(0, 3), ['length', 'radix-tree-keys', 'radix-tree-nodes']);

  const groups = await r.xinfo('GROUPS', key);
  assert.equal(groups.length, 1);
  assert.deepEqual(groups[0].slice(0, 6), ['name', 'g', 'consumers', 3, 'pending', 2]);
});

test('XREADGROUP BLOCK: timeout then wake-up by XADD', async () => {
  const r = client();
  const w = client();
  const key = freshKey();
  await r.xgroup('CREATE', key, 'g', '$', 'MKSTREAM');
  assert.equal(await r.xreadgroup('GROUP', 'g', 'c', 'BLOCK', 200, 'STREAMS', key, '>'), null);
  const pending = r.xreadgroup('GROUP', 'g', 'c', 'COUNT', 1, 'BLOCK', 0, 'STREAMS', key, '>');
  await sleep(100);
  const id = await w.xadd(key, '*', 'x', 'y');
  assert.deepEqual(await pending, [[key, [[id, ['x', 'y']]]]]);
});

test('pipeline: 1000 XADDs in one round trip', async () => {
  const r = client();
  const key = freshKey();
  const p = r.pipeline();
  for (let i = 0; i < 1000; i++) p.xadd(key, '*', 'i', String(i));
  p.xlen(key);
  const results = await p.exec();
  assert.equal(results.length, 1001);
  for (const [err] of results) assert.equal(err, null);
  assert.equal(results[1000][1], 1000);
  assert.equal(new Set(results.slice(0, 1000).map(([, id]) => id)).size, 1000);
});

test('MULTI/EXEC: results, run-time error inside EXEC, queue-time error aborts', async () => {
  const r = client();
  const key = freshKey();
  const ok = await r.multi().xadd(key, '1-1', 'a', '1').xadd(key, '1-2', 'b', '2').xlen(key).exec();
  assert.deepEqual(ok, [[null, '1-1'], [null, '1-2'], [null, 2]]);

  const mixed = await r.multi().xadd(key, '1-0', 'late', 'x').xadd(key, '2-0', 'c', '3').exec();
  assert.match(mixed[0][0].message, /equal or smaller than the target stream top item/);
  assert.deepEqual(mixed[1], [null, '2-0']);

  await assert.rejects(r.multi().xadd(key, '3-0', 'd', '4').call('XADD', key).exec(), (err) => {
    assert.match(err.message, /EXECABORT Transaction discarded because of previous errors/);
    return true;
  });
  assert.equal(await r.xlen(key), 3);
});
