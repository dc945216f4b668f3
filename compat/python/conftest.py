"""Fixtures for redis-py against Rill: one client per RESP version, a fresh key per test.

compat/run sets RILL_HOST and RILL_PORT. Every test runs twice, with `protocol=2` and `protocol=3`, because
redis-py parses several stream replies differently per protocol (maps vs. flat lists).
"""
import os
import uuid

import pytest
import redis


def _address():
    host = os.environ.get("RILL_HOST")
    port = os.environ.get("RILL_PORT")
    if not host or not port:
        pytest.exit("RILL_HOST/RILL_PORT not set: run through compat/run", returncode=2)
    return host, int(port)


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def proto(request):
    return request.param


@pytest.fixture
def r(proto):
    host, port = _address()
    client = redis.Redis(host=host, port=port, protocol=proto, decode_responses=True, socket_timeout=10)
    yield client
    client.close()


@pytest.fixture
def address():
    return _address()


@pytest.fixture
def key():
    return f"compat:py:{uuid.uuid4().hex}"
