// ioredis's subscriber mode against Rill (node:test): SUBSCRIBE/PSUBSCRIBE with the 'message' and 'pmessage'
// events, PUBLISH counts, unsubscribing, and keyspace notifications (notify-keyspace-events) for stream and key
// commands, as Redis 8.6.3 sends them. compat/run sets RILL_HOST and RILL_PORT.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
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
  await client().config('SET', 'notify-keyspace-events', '');
  await Promise.all(clients.map((c) => c.quit().catch(() => c.disconnect())));
});

const fresh = () => `compat:node:ps:${randomUUID()}`;

// Collects what a subscriber receives: ['message', channel, message] or ['pmessage', pattern, channel, message].
function inbox(sub) {
  const got = [];
  const waiters = [];
  const push = (item) => {
    got.push(item);
    for (const w of waiters.splice(0)) w();
  };
  sub.on('message', (channel, message) => push(['message', channel, message]));
  sub.on('pmessage', (pattern, channel, message) => push(['pmessage', pattern, channel, message]));
  // Resolves with the first `n` items once they arrived (5 s at most).
  got.take = async (n) => {
    const deadline = Date.now() + 5000;
    while (got.length < n) {
      if (Date.now() > deadline) throw new Error(`got ${got.length} of ${n}: ${JSON.stringify(got)}`);
      await new Promise((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
    return got.splice(0, n);
  };
  return got;
}

test('SUBSCRIBE and PSUBSCRIBE: messages, counts, unsubscribe', async () => {
  const sub = client();
  const pub = client();
  const ch = fresh();
  const got = inbox(sub);
  assert.equal(await sub.subscribe(ch), 1);
  assert.equal(await sub.psubscribe(`${ch.slice(0, -4)}*`), 2);
  assert.deepEqual(await pub.pubsub('NUMSUB', ch), [ch, 1]);
  assert.equal(await pub.publish(ch, 'hello'), 2);
  assert.deepEqual(await got.take(2), [
    ['message', ch, 'hello'],
    ['pmessage', `${ch.slice(0, -4)}*`, ch, 'hello'],
  ]);
  await sub.unsubscribe(ch);
  await sub.punsubscribe();
  assert.equal(await pub.publish(ch, 'gone'), 0);
  assert.deepEqual(await pub.pubsub('NUMSUB', ch), [ch, 0]);
});

test('keyspace notifications: stream events on __keyspace@0__ and __keyevent@0__', async () => {
  const admin = client();
  const sub = client();
  const key = fresh();
  assert.equal(await admin.config('SET', 'notify-keyspace-events', 'KEA'), 'OK');
  assert.deepEqual(await admin.config('GET', 'notify-keyspace-events'), ['notify-keyspace-events', 'AKE']);
  const got = inbox(sub);
  await sub.subscribe(`__keyspace@0__:${key}`);
  await sub.psubscribe('__keyevent@0__:x*');

  await admin.xadd(key, 'MAXLEN', '1', '1-1', 'f', 'v');
  await admin.xadd(key, 'MAXLEN', '1', '2-1', 'f', 'v');
  await admin.xgroup('CREATE', key, 'g', '0');
  await admin.xreadgroup('GROUP', 'g', 'alice', 'STREAMS', key, '>');
  await admin.xdel(key, '2-1');
  const space = (event) => ['message', `__keyspace@0__:${key}`, event];
  const evt = (event) => ['pmessage', '__keyevent@0__:x*', `__keyevent@0__:${event}`, key];
  assert.deepEqual(await got.take(12), [
    space('xadd'), evt('xadd'),
    space('xadd'), evt('xadd'),
    space('xtrim'), evt('xtrim'),
    space('xgroup-create'), evt('xgroup-create'),
    space('xgroup-createconsumer'), evt('xgroup-createconsumer'),
    space('xdel'), evt('xdel'),
  ]);
  // Named: ioredis resolves an UNSUBSCRIBE without arguments only once no subscription is left.
  await sub.unsubscribe(`__keyspace@0__:${key}`);
  await sub.punsubscribe('__keyevent@0__:x*');
});

test('keyspace notifications: key events, expiry and the class filter', async () => {
  const admin = client();
  const sub = client();
  const key = fresh();
  await admin.config('SET', 'notify-keyspace-events', 'Egx');
  const got = inbox(sub);
  await sub.psubscribe('__keyevent@0__:*');

  await admin.set(key, 'v'); // a string event: class $ is off
  await admin.pexpire(key, 50);
  await admin.rename(key, `${key}:2`);
  const expired = await got.take(3);
  assert.deepEqual(expired.map((m) => m[2]), [
    '__keyevent@0__:expire',
    '__keyevent@0__:rename_from',
    '__keyevent@0__:rename_to',
  ]);
  assert.deepEqual(expired.map((m) => m[3]), [key, key, `${key}:2`]);
  // Active expiry, with nobody touching the key.
  assert.deepEqual(await got.take(1), [['pmessage', '__keyevent@0__:*', '__keyevent@0__:expired', `${key}:2`]]);
  await sub.punsubscribe();
});
