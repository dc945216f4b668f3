"""redis-py RedisCluster against a three-node Rill cluster (made by `rill cluster create`), unchanged.

The client loads the slots (CLUSTER SLOTS, which redis-py requires to cover all 16384 slots), routes stream
commands for keys spread over every node, follows MOVED when its slot cache is wrong, and runs a cluster pipeline.
Every test runs with RESP2 and RESP3. compat/cluster/run.sh sets RILL_CLUSTER="host:port host:port host:port".
"""
import os
import uuid

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster


def _nodes():
    addrs = os.environ.get("RILL_CLUSTER", "").split()
    if len(addrs) != 3:
        pytest.exit("RILL_CLUSTER must list the three nodes: run through compat/run", returncode=2)
    return [(h, int(p)) for h, p in (a.rsplit(":", 1) for a in addrs)]


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def rc(request):
    host, port = _nodes()[0]
    client = RedisCluster(host=host, port=port, protocol=request.param, decode_responses=True, socket_timeout=10)
    yield client
    client.close()


@pytest.fixture
def prefix():
    return f"compat:py:{uuid.uuid4().hex}"


def test_topology_has_three_masters_and_full_coverage(rc):
    nodes = rc.get_nodes()
    assert sorted(n.port for n in nodes) == sorted(p for _, p in _nodes())
    assert all(n.server_type == "primary" for n in nodes)
    slots = rc.cluster_slots(target_nodes=RedisCluster.RANDOM)
    assert sum(end - start + 1 for start, end in slots) == 16384
    info = rc.cluster_info(target_nodes=RedisCluster.RANDOM)
    assert info["cluster_state"] == "ok"


def test_client_and_server_agree_on_slots(rc, prefix):
    for i in range(50):
        key = f"{prefix}:{i}"
        assert rc.keyslot(key) == rc.cluster_keyslot(key)


def test_streams_and_groups_on_every_node(rc, prefix):
    owners = set()
    for i in range(30):
        stream = f"{prefix}:{i}"
        ids = [rc.xadd(stream, {"n": str(j)}) for j in range(3)]
        assert rc.xgroup_create(stream, "g", id="0")
        got = rc.xreadgroup("g", "c", {stream: ">"}, count=10)
        entries = got[stream][0] if isinstance(got, dict) else got[0][1]
        assert [e[0] for e in entries] == ids
        assert rc.xack(stream, "g", *ids) == 3
        assert rc.xpending(stream, "g")["pending"] == 0
        owners.add(rc.get_node_from_key(stream).port)
    assert len(owners) == 3


def test_hash_tags_keep_multi_stream_reads_on_one_node(rc, prefix):
    a, b = f"{{{prefix}}}:a", f"{{{prefix}}}:b"
    rc.xadd(a, {"f": "1"}, id="1-1")
    rc.xadd(b, {"f": "2"}, id="1-1")
    got = rc.xread({a: "0", b: "0"})
    streams = set(got) if isinstance(got, dict) else {s for s, _ in got}
    assert streams == {a, b}


def test_moved_is_followed_after_a_stale_slot_cache(rc, prefix):
    stream = f"{prefix}:moved"
    rc.xadd(stream, {"f": "v"})
    slot = rc.keyslot(stream)
    owner = rc.get_node_from_key(stream)
    wrong = next(n for n in rc.get_nodes() if n.port != owner.port)
    # The server's answer on the wrong node, as a plain client sees it (redis-py parses the
    # `-MOVED <slot> <host>:<port>` error into MovedError, keeping what follows the word).
    plain = redis.Redis(host=wrong.host, port=wrong.port, decode_responses=True)
    with pytest.raises(redis.exceptions.MovedError, match=rf"^{slot} {owner.host}:{owner.port}$"):
        plain.execute_command("XLEN", stream)
    plain.close()
    # Point the client's cache at the wrong node: it gets MOVED and follows it.
    rc.nodes_manager.slots_cache[slot] = [ClusterNode(wrong.host, wrong.port, server_type="primary")]
    assert rc.xlen(stream) == 1


def test_cluster_pipeline_spans_nodes(rc, prefix):
    pipe = rc.pipeline()
    for i in range(20):
        pipe.xadd(f"{prefix}:p{i}", {"f": "v"}, id="1-1")
    assert pipe.execute() == ["1-1"] * 20
    assert sum(rc.xlen(f"{prefix}:p{i}") for i in range(20)) == 20
