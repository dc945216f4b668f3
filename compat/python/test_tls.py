"""redis-py over TLS (`ssl=True`) against Rill's tls-port, with the client certificate compat/run made.

compat/run sets RILL_TLS_PORT, RILL_TLS_CA, RILL_TLS_CERT and RILL_TLS_KEY; without them (a server with no TLS
port) these tests are skipped.
"""
import asyncio
import os
import ssl
import threading
import time

import pytest
import redis
import redis.asyncio

TLS = {name: os.environ.get(f"RILL_TLS_{name}") for name in ("PORT", "CA", "CERT", "KEY")}
pytestmark = pytest.mark.skipif(not all(TLS.values()), reason="no TLS port (run through compat/run)")


def tls_client(proto, **extra):
    options = dict(
        host=os.environ.get("RILL_HOST", "127.0.0.1"),
        port=int(TLS["PORT"] or 0),
        protocol=proto,
        decode_responses=True,
        socket_timeout=10,
        ssl=True,
        ssl_ca_certs=TLS["CA"],
        ssl_certfile=TLS["CERT"],
        ssl_keyfile=TLS["KEY"],
    )
    options.update(extra)
    return redis.Redis(**options)


def test_streams_over_tls(proto, key, r):
    t = tls_client(proto)
    try:
        assert t.ping() is True
        assert t.xadd(key, {"f": "over-tls"}, id="1-1") == "1-1"
        # The plain port sees what came over TLS.
        assert r.xrange(key) == [("1-1", {"f": "over-tls"})]
        with t.pipeline(transaction=True) as p:
            for i in range(100):
                p.xadd(key, {"i": str(i)})
            p.xlen(key)
            assert p.execute()[-1] == 101
        t.xgroup_create(key, "g", id="0")
        got = t.xreadgroup("g", "c", {key: ">"}, count=200)
        entries = got[key][0] if isinstance(got, dict) else got[0][1]
        assert len(entries) == 101
    finally:
        t.close()


def test_large_reply_over_tls(proto, key):
    t = tls_client(proto)
    try:
        value = "x" * (256 * 1024)
        for i in range(1, 17):
            t.xadd(key, {"v": value}, id=f"{i}-0")
        entries = t.xrange(key)
        assert len(entries) == 16 and all(e[1]["v"] == value for e in entries)
    finally:
        t.close()


def test_blocking_xread_over_tls(proto, key, r):
    t = tls_client(proto)
    try:
        threading.Timer(0.3, lambda: r.xadd(key, {"k": "v"}, id="5-1")).start()
        started = time.monotonic()
        got = t.xread({key: "$"}, block=5000)
        assert time.monotonic() - started < 4
        entries = got[key][0] if isinstance(got, dict) else got[0][1]
        assert entries == [("5-1", {"k": "v"})]
    finally:
        t.close()


def test_client_certificate_required(proto):
    t = tls_client(proto, ssl_certfile=None, ssl_keyfile=None)
    with pytest.raises((redis.ConnectionError, ssl.SSLError, OSError)):
        t.ping()
    t.close()


def test_asyncio_client_over_tls(proto, key):
    async def run():
        t = redis.asyncio.Redis(
            host=os.environ.get("RILL_HOST", "127.0.0.1"),
            port=int(TLS["PORT"]),
            protocol=proto,
            decode_responses=True,
            ssl=True,
            ssl_ca_certs=TLS["CA"],
            ssl_certfile=TLS["CERT"],
            ssl_keyfile=TLS["KEY"],
        )
        try:
            assert await t.xadd(key, {"a": "1"}, id="3-1") == "3-1"
            assert await t.xlen(key) == 1
        finally:
            await t.aclose()

    asyncio.run(run())
