"""Age-based retention (Rill's broker policies, issue #16) seen through redis-py, unchanged.

A producer appends for a few seconds while a consumer group and a plain XREAD reader consume; the stream has
`RILL.POLICY SET key MAXAGE 1000`. The server trims entries older than a second by itself: the oldest entry
never gets much older than the limit, the readers still get every entry, and once the producer stops the
stream empties without anyone writing. With ACKED, entries a group has not acknowledged stay.

Run by compat/policies/run.sh (RILL_HOST, RILL_PORT).
"""
import os
import threading
import time
import uuid

import redis

MAX_AGE_MS = 1000
SWEEP_MS = 100
# Sweep interval plus scheduling slack on a busy 2-core machine.
SLACK_MS = 700


def client():
    return redis.Redis(
        host=os.environ["RILL_HOST"], port=int(os.environ["RILL_PORT"]), decode_responses=True, socket_timeout=10
    )


def id_ms(entry_id):
    return int(entry_id.split("-")[0])


def policies_info(r):
    return r.info("policies")


def test_age_retention_trims_while_consumers_read():
    r = client()
    r.config_set("stream-retention-interval", SWEEP_MS)
    key = f"compat:retention:{uuid.uuid4().hex}"
    r.xadd(key, {"n": "0"})
    assert r.execute_command("RILL.POLICY", "SET", key, "MAXAGE", MAX_AGE_MS) in (True, "OK")
    r.xgroup_create(key, "workers", id="0")
    trimmed_before = int(policies_info(r)["retention_trimmed_entries"])

    produced, grouped, tailed = ["0"], [], []
    stop = threading.Event()

    def produce():
        p = client()
        n = 1
        end = time.time() + 4
        while time.time() < end:
            p.xadd(key, {"n": str(n)})
            produced.append(str(n))
            n += 1
            time.sleep(0.005)
        stop.set()

    def consume_group():
        c = client()
        while True:
            reply = c.xreadgroup("workers", "w1", {key: ">"}, count=100, block=300)
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    grouped.append(fields["n"])
                    c.xack(key, "workers", entry_id)
            if not reply and stop.is_set():
                return

    def tail():
        c = client()
        last = "0"
        while True:
            reply = c.xread({key: last}, count=100, block=300)
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    tailed.append(fields["n"])
                    last = entry_id
            if not reply and stop.is_set():
                return

    threads = [threading.Thread(target=f) for f in (produce, consume_group, tail)]
    for t in threads:
        t.start()
    worst_age = 0
    time.sleep(1.5)
    while not stop.is_set():
        first = r.xrange(key, count=1)
        if first:
            worst_age = max(worst_age, int(time.time() * 1000) - id_ms(first[0][0]))
        time.sleep(0.05)
    for t in threads:
        t.join(timeout=20)
    assert not any(t.is_alive() for t in threads), "a reader did not finish"

    # The readers saw every entry, in order, although the head kept being trimmed.
    assert grouped == produced
    assert tailed == produced
    # The oldest entry never outlived the limit by more than a sweep and some slack.
    assert 0 < worst_age <= MAX_AGE_MS + SLACK_MS, worst_age
    # Nobody writes any more: the server empties the stream by itself.
    deadline = time.time() + 5
    while r.xlen(key) > 0 and time.time() < deadline:
        time.sleep(0.05)
    assert r.xlen(key) == 0
    trimmed = int(policies_info(r)["retention_trimmed_entries"]) - trimmed_before
    assert trimmed >= len(produced), (trimmed, len(produced))
    # XINFO keeps Redis's shape: the group read everything, nothing is pending.
    groups = r.xinfo_groups(key)
    assert groups[0]["pending"] == 0 and groups[0]["lag"] == 0


def test_acked_retention_keeps_what_a_group_has_not_acknowledged():
    r = client()
    r.config_set("stream-retention-interval", SWEEP_MS)
    key = f"compat:retention:{uuid.uuid4().hex}"
    ids = [r.xadd(key, {"n": str(i)}) for i in range(10)]
    r.xgroup_create(key, "slow", id="0")
    read = r.xreadgroup("slow", "c", {key: ">"}, count=10)
    assert len(read[0][1]) == 10
    r.xack(key, "slow", *ids[:4])
    assert r.execute_command("RILL.POLICY", "SET", key, "MAXAGE", 1, "ACKED") in (True, "OK")
    deadline = time.time() + 5
    while r.xlen(key) > 6 and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(3 * SWEEP_MS / 1000)
    assert [e[0] for e in r.xrange(key)] == ids[4:]
    r.xack(key, "slow", *ids[4:])
    deadline = time.time() + 5
    while r.xlen(key) > 0 and time.time() < deadline:
        time.sleep(0.05)
    assert r.xlen(key) == 0
