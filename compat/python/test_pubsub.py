"""redis-py's `pubsub()` against Rill, in RESP2 and RESP3 (see conftest.py): channels, patterns, shard
channels, PUBSUB introspection, and a subscriber's `ping()`. Each assertion is what Redis 8.6.3 answers.
"""
import time
import uuid

import redis


def get_message(p, timeout=5.0):
    """The next non-None message within `timeout`, as redis-py returns it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = p.get_message(timeout=0.1)
        if m is not None:
            return m
    raise AssertionError("no message")


def test_subscribe_publish_and_patterns(r, proto):
    ch = f"compat:ps:{uuid.uuid4().hex}"
    p = r.pubsub()
    p.subscribe(ch)
    assert get_message(p) == {"type": "subscribe", "pattern": None, "channel": ch, "data": 1}
    p.psubscribe(ch[:-4] + "*")
    assert get_message(p)["type"] == "psubscribe"
    assert r.pubsub_numsub(ch) == [(ch, 1)]
    assert r.pubsub_numpat() >= 1
    assert ch in r.pubsub_channels(ch)
    assert r.publish(ch, "hello") == 2
    assert get_message(p) == {"type": "message", "pattern": None, "channel": ch, "data": "hello"}
    m = get_message(p)
    assert m["type"] == "pmessage" and m["pattern"] == ch[:-4] + "*" and m["data"] == "hello"
    if proto == 2:
        # RESP2 subscribed mode answers PING with ["pong", ""]; RESP3 with +PONG, which
        # redis-py's pubsub does not turn into a message dict.
        p.ping()
        assert get_message(p)["type"] == "pong"
    p.unsubscribe(ch)
    assert get_message(p) == {"type": "unsubscribe", "pattern": None, "channel": ch, "data": 1}
    p.punsubscribe()
    assert get_message(p)["type"] == "punsubscribe"
    p.close()
    assert r.pubsub_numsub(ch) == [(ch, 0)]


def test_shard_channels(r):
    ch = f"compat:ps:{uuid.uuid4().hex}"
    p = r.pubsub()
    p.ssubscribe(ch)
    assert get_message(p) == {"type": "ssubscribe", "pattern": None, "channel": ch, "data": 1}
    assert r.pubsub_shardnumsub(ch) == [(ch, 1)]
    assert r.spublish(ch, "s1") == 1
    assert get_message(p) == {"type": "smessage", "pattern": None, "channel": ch, "data": "s1"}
    p.sunsubscribe(ch)
    assert get_message(p)["type"] == "sunsubscribe"
    p.close()


def test_run_in_thread_handler(address, proto):
    host, port = address
    client = redis.Redis(host=host, port=port, protocol=proto, decode_responses=True)
    ch = f"compat:ps:{uuid.uuid4().hex}"
    got = []
    p = client.pubsub()
    p.subscribe(**{ch: got.append})
    worker = p.run_in_thread(sleep_time=0.05)
    try:
        deadline = time.monotonic() + 5
        while client.pubsub_numsub(ch) != [(ch, 1)] and time.monotonic() < deadline:
            time.sleep(0.01)
        for i in range(10):
            client.publish(ch, str(i))
        while len(got) < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [m["data"] for m in got] == [str(i) for i in range(10)]
    finally:
        worker.stop()
        worker.join(5)
        p.close()
        client.close()


def test_keyspace_notifications(r, proto):
    """notify-keyspace-events: redis-py's pubsub() receives the keyspace and keyevent messages of stream and key
    commands, in Redis's order, in RESP2 and RESP3."""
    key = f"compat:ks:{uuid.uuid4().hex}"
    assert r.config_set("notify-keyspace-events", "KEA")
    try:
        assert r.config_get("notify-keyspace-events") == {"notify-keyspace-events": "AKE"}
        p = r.pubsub()
        p.subscribe(f"__keyspace@0__:{key}")
        assert get_message(p)["type"] == "subscribe"
        p.psubscribe("__keyevent@0__:x*")
        assert get_message(p)["type"] == "psubscribe"
        r.xadd(key, {"f": "v"}, id="1-1")
        r.xgroup_create(key, "g", id="0")
        r.xreadgroup("g", "alice", {key: ">"})
        r.pexpire(key, 1)
        expected = [
            ("message", f"__keyspace@0__:{key}", "xadd"),
            ("pmessage", "__keyevent@0__:xadd", key),
            ("message", f"__keyspace@0__:{key}", "xgroup-create"),
            ("pmessage", "__keyevent@0__:xgroup-create", key),
            ("message", f"__keyspace@0__:{key}", "xgroup-createconsumer"),
            ("pmessage", "__keyevent@0__:xgroup-createconsumer", key),
            ("message", f"__keyspace@0__:{key}", "expire"),
            # The key expires (actively, or at the first lookup): only its keyspace channel is subscribed.
            ("message", f"__keyspace@0__:{key}", "expired"),
        ]
        got = []
        for _ in expected:
            m = get_message(p)
            got.append((m["type"], m["channel"], m["data"]))
        assert got == expected
        p.close()
    finally:
        r.config_set("notify-keyspace-events", "")
