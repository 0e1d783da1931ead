"""Key stores: hashed keys, atomic charges, budgets by total and by UTC day, rate limits, revocation.

Tests taking `location` run against every store (a SQLite file, a real Redis): the interface's contract.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from edgeguard.errors import EdgeguardError
from edgeguard.serve import open_store
from edgeguard.serve.keys import Checkpointer, KeyStore, hash_key, utc_day


@pytest.fixture(params=["sqlite", "redis"])
def location(request, tmp_path: Path) -> str:
    """Where a test's key store lives: a SQLite file, or a redis-server of the test's own."""
    return str(tmp_path / "keys.db") if request.param == "sqlite" else request.getfixturevalue("redis_server").url


def test_keys_are_stored_only_as_hashes(tmp_path: Path, location: str):
    store = open_store(location, create=True)
    key = store.add("alice", budget=10)
    assert key.startswith("eg_") and len(key) > 40
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())  # Redis: its append-only file
    assert key.encode() not in raw and hash_key(key).encode() in raw
    assert open_store(location).lookup(key).name == "alice"


def test_add_validates_and_refuses_duplicates(location: str):
    store = open_store(location, create=True)
    store.add("alice")
    with pytest.raises(EdgeguardError, match="already exists"):
        store.add("alice")
    for kwargs, words in [
        ({"name": "a b"}, "key name"),
        ({"name": "x", "budget": 0}, "--budget"),
        ({"name": "x", "daily": -1}, "--daily"),
        ({"name": "x", "rate": 0.0}, "--rate"),
        ({"name": "x", "burst": 5}, "give --rate too"),
    ]:
        with pytest.raises(EdgeguardError, match=words):
            store.add(**kwargs)
    assert store.add("fast", rate=2.5) and store.record_named("fast").burst == 3  # one second of tokens


def test_a_missing_or_foreign_database_is_one_sentence(tmp_path: Path):
    with pytest.raises(EdgeguardError, match="does not exist; create a key first"):
        KeyStore(tmp_path / "nope.db")
    (tmp_path / "junk.db").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(EdgeguardError, match="cannot be opened"):
        KeyStore(tmp_path / "junk.db")


def test_charges_stop_exactly_at_the_total_budget(location: str):
    store = open_store(location, create=True)
    key = store.add("alice", budget=10)
    assert store.charge(key, 4, "d1") and store.charge(key, 6, "d1")
    assert not store.charge(key, 1, "d1")
    record = store.lookup(key)
    assert record.used == 10 and record.refusal(1, "d1") == "API key 'alice' has used all 10 queries of its budget"
    other = store.add("bob", budget=10)
    store.charge(other, 8, "d1")
    assert not store.charge(other, 3, "d1") and store.lookup(other).used == 8  # all or nothing
    assert "2 of its 10 queries left; this request holds 3 items" in store.lookup(other).refusal(3, "d1")


def test_the_daily_budget_resets_on_a_new_utc_day(location: str):
    store = open_store(location, create=True)
    key = store.add("alice", budget=100, daily=5)
    assert store.charge(key, 5, "2026-01-01") and not store.charge(key, 1, "2026-01-01")
    assert "today (resets at 00:00 UTC)" in store.lookup(key).refusal(1, "2026-01-01")
    assert store.charge(key, 5, "2026-01-02")
    record = store.lookup(key)
    assert record.used == 10 and record.used_on("2026-01-02") == 5 and record.used_on("2026-01-03") == 0
    assert utc_day(datetime(2026, 1, 1, 23, 59, tzinfo=timezone.utc)) == "2026-01-01"


def test_revoked_keys_are_never_charged(location: str):
    store = open_store(location, create=True)
    key = store.add("alice")
    store.revoke("alice")
    assert not store.charge(key, 1, "d") and "revoked" in store.lookup(key).refusal(1, "d")
    with pytest.raises(EdgeguardError, match="already revoked"):
        store.revoke("alice")
    with pytest.raises(EdgeguardError, match="no key named 'carol'"):
        store.revoke("carol")


def test_a_flagged_key_is_refused_by_the_charge_only_when_asked(location: str):
    """--on-flag block: refused in the same atomic step, so a flag raised elsewhere a moment ago counts."""
    store = open_store(location, create=True)
    key = store.add("alice")
    store.flag("alice", "ood at query 1: test")
    assert store.charge(key, 1, "d") and not store.charge(key, 1, "d", refuse_flagged=True)
    assert store.lookup(key).used == 1


def test_the_rate_limit_is_checked_and_spent_with_the_charge(location: str):
    """A bucket of `burst` tokens refilling at `rate` per second; a refusal by either limit takes nothing from the other."""
    store = open_store(location, create=True)
    key = store.add("alice", budget=4, rate=10.0, burst=3)
    charges = [store.charge(key, 1, "d", 10.0, 3) for _ in range(4)]
    assert [bool(c) for c in charges] == [True, True, True, False]
    assert 0 < charges[-1].wait <= 0.1  # one token refills in 1 / rate s
    assert store.lookup(key).used == 3  # the rate's refusal took no budget
    time.sleep(0.35)  # the bucket is full again
    refused = store.charge(key, 3, "d", 10.0, 3)
    assert not refused and refused.wait == 0.0  # the budget's refusal (3 + 3 > 4)...
    assert store.charge(key, 1, "d", 10.0, 3)  # ...took no tokens: the last item still gets one
    assert store.lookup(key).used == 4


def test_a_batch_larger_than_the_burst_is_paid_back_before_the_next(location: str):
    store = open_store(location, create=True)
    key = store.add("alice", rate=10.0, burst=2)
    assert store.charge(key, 5, "d", 10.0, 2)  # a full bucket admits it and goes 3 tokens into debt
    wait = store.charge(key, 1, "d", 10.0, 2).wait
    assert 0.3 < wait <= 0.4  # (1 - (-3)) / 10 s


def test_concurrent_connections_never_overspend(location: str):
    """32 threads, each with its own connection (as separate server processes would have)."""
    key = open_store(location, create=True).add("alice", budget=500)
    answered = []

    def client(i: int) -> None:
        store = open_store(location)
        got = 0
        for size in [1, 3, 7, 2] * 30:
            if store.charge(key, size, "d"):
                got += size
        answered.append(got)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(answered) == open_store(location).lookup(key).used <= 500
    assert sum(answered) >= 500 - 6  # only a batch larger than what is left is refused


def test_checkpointer_keeps_the_wal_short(tmp_path: Path):
    path = tmp_path / "keys.db"
    store = KeyStore(path, create=True, autocheckpoint=False)
    key = store.add("alice")
    checkpointer = Checkpointer(path, every=0.01).start()
    for _ in range(200):
        store.charge(key, 1, "d")
    checkpointer.stop()
    assert not checkpointer.thread.is_alive()
    assert KeyStore(path).lookup(key).used == 200
    assert Path(f"{path}-wal").stat().st_size < 64 * 1024
