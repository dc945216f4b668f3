"""redis-py's streams API against Rill, in RESP2 and RESP3 (see conftest.py).

Each test asserts what a real Redis 7.4 answers; a failure here is an incompatibility to fix in Rill.
"""
import asyncio
import threading
import time

import pytest
import redis
import redis.asyncio


def entries_by_key(reply):
    """XREAD/XREADGROUP come back as [[key, entries]] in RESP2 and {key: [entries]} in RESP3; compare one shape."""
    if reply is None:
        return {}
    if isinstance(reply, dict):
        return {k: (v[0] if v and isinstance(v[0], list) and v[0] and isinstance(v[0][0], tuple) else v)
                for k, v in reply.items()}
    return {k: v for k, v in reply}


# ---------------------------------------------------------------- XADD / XRANGE / XLEN / XDEL / XTRIM

def test_xadd_xrange_roundtrip(r, key):
    ids = [r.xadd(key, {"n": str(i), "payload": "x" * i}) for i in range(5)]
    assert all(isinstance(i, str) and "-" in i for i in ids)
    assert ids == sorted(ids, key=lambda s: tuple(map(int, s.split("-"))))
    assert r.xlen(key) == 5
    got = r.xrange(key)
    assert [i for i, _ in got] == ids
    assert got[3][1] == {"n": "3", "payload": "xxx"}
    assert [i for i, _ in r.xrevrange(key, count=2)] == [ids[4], ids[3]]
    assert [i for i, _ in r.xrange(key, min=ids[1], max=ids[2])] == ids[1:3]
    assert [i for i, _ in r.xrange(key, min="(" + ids[1], max="+")] == ids[2:]
    assert r.type(key) == "stream"


def test_xadd_explicit_ids_and_errors(r, key):
    assert r.xadd(key, {"f": "v"}, id="5-1") == "5-1"
    assert r.xadd(key, {"f": "v"}, id="5-*") == "5-2"
    assert r.xadd(key, {"f": "v"}, id="7") == "7-0"
    with pytest.raises(redis.ResponseError) as e:
        r.xadd(key, {"f": "v"}, id="6-0")
    assert str(e.value) == "The ID specified in XADD is equal or smaller than the target stream top item"
    with pytest.raises(redis.ResponseError) as e:
        r.xadd(key + ":other", {"f": "v"}, id="0-0")
    assert str(e.value) == "The ID specified in XADD must be greater than 0-0"
    with pytest.raises(redis.ResponseError) as e:
        r.xadd(key, {"f": "v"}, id="bogus")
    assert str(e.value) == "Invalid stream ID specified as stream command argument"


def test_xadd_nomkstream_and_wrongtype(r, key):
    assert r.xadd(key, {"f": "v"}, nomkstream=True) is None
    assert r.exists(key) == 0
    r.set(key, "plain")
    with pytest.raises(redis.ResponseError) as e:
        r.xadd(key, {"f": "v"})
    assert str(e.value) == "WRONGTYPE Operation against a key holding the wrong kind of value"


def test_trimming(r, key):
    for i in range(30):
        r.xadd(key, {"i": str(i)}, maxlen=10, approximate=False)
    assert r.xlen(key) == 10
    assert r.xrange(key, count=1)[0][1] == {"i": "20"}
    first_kept = r.xrange(key)[5][0]
    assert r.xtrim(key, minid=first_kept, approximate=False) == 5
    assert r.xlen(key) == 5
    assert r.xtrim(key, maxlen=2, approximate=False) == 3
    assert r.xtrim(key + ":missing", maxlen=1) == 0


def test_approximate_trim_keeps_whole_nodes(r, key):
    pipe = r.pipeline(transaction=False)
    for i in range(1000):
        pipe.xadd(key, {"i": str(i)})
    pipe.execute()
    # Nodes hold 100 entries: ~ only removes whole nodes and never goes below the threshold.
    assert r.xtrim(key, maxlen=555, approximate=True) == 400
    assert r.xlen(key) == 600


def test_xdel(r, key):
    ids = [r.xadd(key, {"i": str(i)}) for i in range(4)]
    assert r.xdel(key, ids[1], ids[2], "999999999999-0") == 2
    assert [i for i, _ in r.xrange(key)] == [ids[0], ids[3]]
    assert r.xdel(key + ":missing", ids[0]) == 0


# ---------------------------------------------------------------- XREAD, blocking

def test_xread_nonblocking(r, key):
    ids = [r.xadd(key, {"i": str(i)}) for i in range(3)]
    got = entries_by_key(r.xread({key: "0-0"}))
    assert [i for i, _ in got[key]] == ids
    got = entries_by_key(r.xread({key: ids[0]}, count=1))
    assert [i for i, _ in got[key]] == [ids[1]]
    assert entries_by_key(r.xread({key: ids[2]})) == {}


def test_xread_block_times_out(r, key):
    r.xadd(key, {"f": "v"})
    start = time.monotonic()
    reply = r.xread({key: "$"}, block=300)
    elapsed = time.monotonic() - start
    assert entries_by_key(reply) == {}
    assert 0.28 <= elapsed < 1.5, f"BLOCK 300 returned after {elapsed:.3f}s"


def test_xread_block_is_woken_by_xadd(r, key, address, proto):
    host, port = address
    writer = redis.Redis(host=host, port=port, protocol=proto, decode_responses=True)

    def add_later():
        time.sleep(0.2)
        writer.xadd(key, {"woke": "yes"})

    t = threading.Thread(target=add_later)
    start = time.monotonic()
    t.start()
    reply = r.xread({key: "$"}, block=5000)
    elapsed = time.monotonic() - start
    t.join()
    writer.close()
    got = entries_by_key(reply)
    assert len(got[key]) == 1 and got[key][0][1] == {"woke": "yes"}
    assert elapsed < 2, f"woken after {elapsed:.3f}s"


# ---------------------------------------------------------------- consumer groups

def test_group_lifecycle(r, key):
    assert r.xgroup_create(key, "g", id="0", mkstream=True) is True
    with pytest.raises(redis.ResponseError) as e:
        r.xgroup_create(key, "g", id="0")
    assert str(e.value) == "BUSYGROUP Consumer Group name already exists"
    with pytest.raises(redis.ResponseError) as e:
        r.xgroup_create(key + ":missing", "g", id="$")
    assert str(e.value).startswith("The XGROUP subcommand requires the key to exist.")
    ids = [r.xadd(key, {"i": str(i)}) for i in range(5)]

    got = entries_by_key(r.xreadgroup("g", "alice", {key: ">"}, count=2))
    assert [i for i, _ in got[key]] == ids[:2]
    got = entries_by_key(r.xreadgroup("g", "bob", {key: ">"}))
    assert [i for i, _ in got[key]] == ids[2:]

    summary = r.xpending(key, "g")
    assert summary["pending"] == 5
    assert summary["min"] == ids[0] and summary["max"] == ids[4]
    assert sorted((c["name"], c["pending"]) for c in summary["consumers"]) == [("alice", 2), ("bob", 3)]

    detail = r.xpending_range(key, "g", min="-", max="+", count=10, consumername="alice")
    assert [d["message_id"] for d in detail] == ids[:2]
    assert all(d["consumer"] == "alice" and d["times_delivered"] == 1 for d in detail)

    assert r.xack(key, "g", ids[0], ids[1], "1-1") == 2
    assert r.xpending(key, "g")["pending"] == 3

    # History of one consumer: any ID other than ">".
    got = entries_by_key(r.xreadgroup("g", "bob", {key: "0"}))
    assert [i for i, _ in got[key]] == ids[2:]

    groups = r.xinfo_groups(key)
    assert len(groups) == 1
    assert groups[0]["name"] == "g" and groups[0]["pending"] == 3 and groups[0]["consumers"] == 2
    assert groups[0]["last-delivered-id"] == ids[4]
    assert groups[0]["entries-read"] == 5 and groups[0]["lag"] == 0

    consumers = {c["name"]: c for c in r.xinfo_consumers(key, "g")}
    assert consumers["bob"]["pending"] == 3 and consumers["alice"]["pending"] == 0
    assert consumers["alice"]["idle"] >= 0

    assert r.xgroup_delconsumer(key, "g", "bob") == 3
    assert r.xgroup_createconsumer(key, "g", "carol") == 1
    assert r.xgroup_createconsumer(key, "g", "carol") == 0
    assert r.xgroup_setid(key, "g", "0") is True
    assert r.xgroup_destroy(key, "g") == 1
    assert r.xgroup_destroy(key, "g") == 0


def test_xreadgroup_errors(r, key):
    with pytest.raises(redis.ResponseError) as e:
        r.xreadgroup("nogroup", "c", {key: ">"})
    assert str(e.value) == f"NOGROUP No such key '{key}' or consumer group 'nogroup' in XREADGROUP with GROUP option"
    r.xgroup_create(key, "g", mkstream=True)
    with pytest.raises(redis.ResponseError) as e:
        r.xreadgroup("g", "c", {key: "$"})
    assert str(e.value).startswith("The $ ID is meaningless in the context of XREADGROUP")


def test_xreadgroup_block_timeout_and_wakeup(r, key, address, proto):
    r.xgroup_create(key, "g", id="$", mkstream=True)
    start = time.monotonic()
    assert entries_by_key(r.xreadgroup("g", "c", {key: ">"}, block=250)) == {}
    assert 0.23 <= time.monotonic() - start < 1.5

    host, port = address
    writer = redis.Redis(host=host, port=port, protocol=proto, decode_responses=True)
    t = threading.Timer(0.15, lambda: writer.xadd(key, {"late": "1"}))
    t.start()
    got = entries_by_key(r.xreadgroup("g", "c", {key: ">"}, count=1, block=5000))
    t.join()
    writer.close()
    assert [f for _, f in got[key]] == [{"late": "1"}]
    assert r.xpending(key, "g")["pending"] == 1


def test_claiming(r, key):
    r.xgroup_create(key, "g", id="0", mkstream=True)
    ids = [r.xadd(key, {"i": str(i)}) for i in range(4)]
    r.xreadgroup("g", "dead", {key: ">"})
    time.sleep(0.12)
    # min-idle not reached: nothing moves.
    assert r.xclaim(key, "g", "live", min_idle_time=60000, message_ids=[ids[0]]) == []
    claimed = r.xclaim(key, "g", "live", min_idle_time=100, message_ids=[ids[0]])
    assert [i for i, _ in claimed] == [ids[0]] and claimed[0][1] == {"i": "0"}
    assert r.xclaim(key, "g", "live", min_idle_time=0, message_ids=[ids[1]], justid=True) == [ids[1]]

    detail = r.xpending_range(key, "g", "-", "+", 10)
    owner = {d["message_id"]: (d["consumer"], d["times_delivered"]) for d in detail}
    assert owner[ids[0]] == ("live", 2)
    assert owner[ids[1]] == ("live", 1)  # JUSTID does not count a delivery

    r.xdel(key, ids[3])
    cursor, entries, deleted = r.xautoclaim(key, "g", "auto", min_idle_time=0, start_id="0-0", count=10)
    assert cursor == "0-0"
    assert [i for i, _ in entries] == ids[:3]
    assert deleted == [ids[3]]
    assert r.xpending(key, "g")["pending"] == 3


def test_xinfo_stream(r, key):
    ids = [r.xadd(key, {"i": str(i)}) for i in range(3)]
    r.xgroup_create(key, "g", id="0")
    info = r.xinfo_stream(key)
    assert info["length"] == 3
    assert info["last-generated-id"] == ids[2]
    assert info["entries-added"] == 3
    assert info["groups"] == 1
    assert info["first-entry"][0] == ids[0]
    assert info["last-entry"][0] == ids[2]
    assert info["radix-tree-keys"] >= 1
    full = r.xinfo_stream(key, full=True)
    assert full["length"] == 3 and len(full["entries"]) == 3
    assert full["groups"][0]["name"] == "g"
    with pytest.raises(redis.ResponseError) as e:
        r.xinfo_stream(key + ":missing")
    assert str(e.value) == "no such key"


# ---------------------------------------------------------------- pipelines and transactions

def test_transaction_pipeline(r, key):
    with r.pipeline() as p:  # MULTI/EXEC by default
        p.xadd(key, {"a": "1"}, id="1-1")
        p.xadd(key, {"b": "2"}, id="1-2")
        p.xlen(key)
        p.xrange(key)
        result = p.execute()
    assert result[0:3] == ["1-1", "1-2", 2]
    assert [i for i, _ in result[3]] == ["1-1", "1-2"]


def test_transaction_runtime_error_is_reported_inside_exec(r, key):
    r.xadd(key, {"a": "1"}, id="5-0")
    with r.pipeline() as p:
        p.xadd(key, {"b": "2"}, id="1-0")  # fails at run time
        p.xadd(key, {"c": "3"}, id="6-0")  # still runs: no rollback in Redis
        result = p.execute(raise_on_error=False)
    assert isinstance(result[0], redis.ResponseError)
    assert "equal or smaller than the target stream top item" in str(result[0])
    assert result[1] == "6-0"
    assert r.xlen(key) == 2


def test_transaction_queue_error_aborts(r, key):
    with r.pipeline() as p:
        p.xadd(key, {"a": "1"})
        p.execute_command("XADD", key)  # wrong arity: refused while queueing
        with pytest.raises(redis.ResponseError) as e:
            p.execute()
    assert "EXECABORT" in str(e.value) or "wrong number of arguments" in str(e.value)
    assert r.exists(key) == 0


def test_watch_conflict(r, key, address, proto):
    host, port = address
    other = redis.Redis(host=host, port=port, protocol=proto, decode_responses=True)
    r.xadd(key, {"v": "0"})
    with r.pipeline() as p:
        p.watch(key)
        other.xadd(key, {"v": "other"})
        p.multi()
        p.xadd(key, {"v": "mine"})
        with pytest.raises(redis.WatchError):
            p.execute()
    other.close()
    assert r.xlen(key) == 2


def test_plain_pipeline_many_commands(r, key):
    p = r.pipeline(transaction=False)
    for i in range(2000):
        p.xadd(key, {"i": str(i)})
    p.xlen(key)
    result = p.execute()
    assert len(result) == 2001
    assert result[-1] == 2000
    assert len(set(result[:-1])) == 2000


# ---------------------------------------------------------------- connection-level

def test_handshake_and_server_info(r, proto):
    assert r.ping() is True
    hello = r.execute_command("HELLO", proto)
    hello = dict(zip(hello[::2], hello[1::2])) if isinstance(hello, list) else hello
    assert hello["proto"] == proto
    assert "version" in hello
    info = r.info("server")
    assert "redis_version" in info
    assert r.client_setname("compat-py") is True
    assert r.client_getname() == "compat-py"


# ---------------------------------------------------------------- asyncio client

def test_asyncio_client(address, proto, key):
    host, port = address

    async def scenario():
        reader = redis.asyncio.Redis(host=host, port=port, protocol=proto, decode_responses=True)
        writer = redis.asyncio.Redis(host=host, port=port, protocol=proto, decode_responses=True)
        try:
            await reader.xgroup_create(key, "g", id="$", mkstream=True)
            blocked = asyncio.create_task(reader.xreadgroup("g", "c", {key: ">"}, count=10, block=5000))
            await asyncio.sleep(0.2)
            assert not blocked.done()
            ids = []
            async with writer.pipeline(transaction=True) as p:
                p.xadd(key, {"n": "1"})
                p.xadd(key, {"n": "2"})
                ids = await p.execute()
            got = entries_by_key(await asyncio.wait_for(blocked, 5))
            # The EXEC's two entries arrive in one batch.
            assert [i for i, _ in got[key]] == ids
            assert await reader.xack(key, "g", *ids) == 2
            results = await asyncio.gather(*(writer.xadd(key, {"n": str(i)}) for i in range(50)))
            assert len(set(results)) == 50
            assert await reader.xlen(key) == 52
        finally:
            await reader.aclose()
            await writer.aclose()

    asyncio.run(scenario())
