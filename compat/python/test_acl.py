"""redis-py's ACL API and username/password connections against Rill, in RESP2 and RESP3 (see
conftest.py): ACL SETUSER/GETUSER/LIST/USERS/WHOAMI/DELUSER/LOG/DRYRUN/GENPASS as redis-py parses them, a client
that authenticates as a user (AUTH user pass in RESP2, HELLO 3 AUTH in RESP3), and the NOPERM and WRONGPASS
errors it raises. Each assertion is what Redis 8.6.3 answers.
"""
import uuid

import pytest
import redis


@pytest.fixture
def user(r):
    name = f"compat-py-{uuid.uuid4().hex[:12]}"
    yield name
    r.acl_deluser(name)


def test_user_with_password_keys_and_commands(r, proto, address, user, key):
    assert r.acl_setuser(
        user,
        enabled=True,
        passwords=["+s3cret"],
        keys=[f"{key}*"],
        commands=["+@stream", "+ping", "+acl|whoami"],
    )
    info = r.acl_getuser(user)
    assert "on" in info["flags"]
    assert len(info["passwords"]) == 1 and len(info["passwords"][0]) == 64
    assert f"~{key}*" in info["keys"]
    assert user in r.acl_users()
    assert any(line.startswith(f"user {user} on ") for line in r.acl_list())
    assert r.acl_dryrun(user, "XADD", f"{key}:s", "*", "f", "v") == "OK"

    host, port = address
    client = redis.Redis(host=host, port=port, protocol=proto, username=user, password="s3cret",
                         decode_responses=True, socket_timeout=10)
    try:
        assert client.ping()
        assert client.acl_whoami() == user
        assert client.xadd(f"{key}:s", {"f": "v"})
        with pytest.raises(redis.exceptions.NoPermissionError, match="No permissions to access a key"):
            client.xadd(f"other:{key}", {"f": "v"})
        with pytest.raises(redis.exceptions.NoPermissionError, match="has no permissions to run the 'get' command"):
            client.get(f"{key}:s")
    finally:
        client.close()

    log = r.acl_log(count=2)
    assert [e["reason"] for e in log] == ["command", "key"]
    assert log[0]["username"] == user and log[0]["object"] == "get"


def test_wrong_password_and_deleted_user(r, proto, address, user):
    assert r.acl_setuser(user, enabled=True, passwords=["+pw"], commands=["+ping"])
    host, port = address
    bad = redis.Redis(host=host, port=port, protocol=proto, username=user, password="nope", socket_timeout=10)
    with pytest.raises(redis.exceptions.AuthenticationError):
        bad.ping()
    bad.close()
    good = redis.Redis(host=host, port=port, protocol=proto, username=user, password="pw", socket_timeout=10,
                       retry_on_error=[], retry=None)
    assert good.ping()
    assert r.acl_deluser(user) == 1
    with pytest.raises((redis.exceptions.ConnectionError, redis.exceptions.AuthenticationError)):
        good.ping()
    good.close()
    assert r.acl_setuser(user)  # for the fixture's DELUSER


def test_genpass_and_cat(r):
    assert len(r.acl_genpass()) == 64
    assert len(r.acl_genpass(128)) == 32
    assert "stream" in r.acl_cat()
    assert "xadd" in r.acl_cat("stream")
