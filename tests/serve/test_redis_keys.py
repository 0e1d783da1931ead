"""The Redis key store on its own, against real redis-servers: outages, passwords, TLS, clocks, start-up errors.

What every store must do is in test_keys.py (run against Redis too); a fleet of servers is test_fleet.py.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeguard.bench.loopback import RedisServer, free_port
from edgeguard.cli import main
from edgeguard.errors import EdgeguardError
from edgeguard.serve import open_store
from edgeguard.serve.keys import KeysUnavailable
from edgeguard.serve.redis_keys import RETRY_AFTER_S, redacted


def test_an_outage_fails_closed_and_the_store_reconnects_by_itself(redis_server):
    store = open_store(redis_server.url, create=True)
    key, other = store.add("alice", budget=10), store.add("bob")
    assert store.charge(key, 2, "d")
    store.ping()
    redis_server.stop()
    assert store.lookup(key).used == 2  # its charge a moment ago stands in for a lookup; the next charge decides
    for call in (lambda: store.lookup(other), lambda: store.charge(key, 1, "d"), store.records, lambda: store.flag("alice", "x"), store.ping):
        with pytest.raises(KeysUnavailable, match="cannot reach the keys store") as e:
            call()
        assert 1 <= e.value.retry_after <= RETRY_AFTER_S
    redis_server.start()  # the same port and append-only file
    deadline = time.monotonic() + RETRY_AFTER_S + 5
    while True:
        try:
            store.ping()
            break
        except KeysUnavailable:
            assert time.monotonic() < deadline, "the store did not reconnect"
            time.sleep(0.05)
    assert store.charge(key, 1, "d") and store.lookup(key).used == 3  # nothing was charged while it was down


def test_a_recent_charge_stands_in_for_a_lookup_and_the_next_charge_sees_every_change(redis_server):
    """Device A charges a key; device B revokes or flags it: A's next lookup may not know, its charge does."""
    a = open_store(redis_server.url, create=True)
    key = a.add("alice", budget=10)
    b = open_store(redis_server.url)
    assert a.charge(key, 1, "d") and a.lookup(key).used == 1
    assert b.charge(key, 2, "d") and a.lookup(key).used == 1  # A's lookup: its own last charge, under RECENT_S old
    b.flag("alice", "ood at query 3: test")
    charge = a.charge(key, 1, "d")
    assert charge and charge.record.flagged and charge.record.used == 4  # charged, and the caller learns of the flag now
    assert a.lookup(key).flagged  # a flagged key's charge is not remembered: read afresh
    refused = a.charge(key, 1, "d", refuse_flagged=True)  # --on-flag block
    assert not refused and refused.record.used == 4
    b.clear_flag("alice")
    assert a.charge(key, 1, "d")
    b.revoke("alice")
    assert a.lookup(key).revoked is None  # A has not read the revocation yet...
    refused = a.charge(key, 1, "d")
    assert not refused and refused.record.revoked and a.lookup(key).revoked  # ...its charge refuses the key
    assert open_store(redis_server.url).lookup(key).used == 5


def test_a_device_whose_clock_lags_midnight_charges_the_day_already_begun(redis_server):
    store = open_store(redis_server.url, create=True)
    key = store.add("alice", daily=5)
    assert store.charge(key, 4, "2026-01-02")
    assert not store.charge(key, 2, "2026-01-01")  # not a fresh day 1: 4 of day 2's 5 are gone
    assert store.charge(key, 1, "2026-01-01")
    record = store.lookup(key)
    assert (record.day, record.day_used) == ("2026-01-02", 5)


def test_start_up_errors_are_one_sentence(redis_server, tmp_path: Path):
    with pytest.raises(EdgeguardError, match="no edgeguard keys at .*create a key first"):
        open_store(redis_server.url)
    with pytest.raises(KeysUnavailable, match=r"cannot reach the keys store at 'redis://127\.0\.0\.1:\d+/0' \(.*refused"):
        open_store(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(EdgeguardError, match="--keys must be a SQLite file or a redis:// / rediss:// URL, got a postgres:// URL"):
        open_store("postgres://db/keys")
    r = CliRunner().invoke(main, ["keys", "list", "--db", f"redis://:hunter2@127.0.0.1:{free_port()}/0"])
    assert r.exit_code == 1 and "cannot reach the keys store at 'redis://:***@127.0.0.1:" in r.output
    assert "hunter2" not in r.output and len(r.output.strip().splitlines()) == 1


def test_the_password_is_never_shown():
    assert redacted("rediss://:s3cret@keys.lan:6380/0?ssl_ca_certs=/ca.pem") == "rediss://:***@keys.lan:6380/0?ssl_ca_certs=/ca.pem"
    assert redacted("redis://edge:s3cret@10.0.0.5:6379/1") == "redis://edge:***@10.0.0.5:6379/1"
    assert redacted("redis://10.0.0.5:6379/1") == "redis://10.0.0.5:6379/1"


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key: the Redis server's, and the client's CA."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed; it makes the TLS test's certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_tls_and_a_password_through_the_cli(tmp_path: Path, certificate, needs_redis):
    with RedisServer(tmp_path / "tls", password="s3cret-pw", tls=certificate) as server:
        runner = CliRunner()
        r = runner.invoke(main, ["keys", "add", "alice", "--budget", "5", "--db", server.url])
        assert r.exit_code == 0, r.output
        key = r.stdout.strip()
        assert "created key 'alice' in rediss://:***@127.0.0.1" in r.stderr and "s3cret-pw" not in r.output
        store = open_store(server.url)
        assert store.lookup(key).budget == 5
        assert store.location.startswith("rediss://:***@127.0.0.1:") and "s3cret-pw" not in store.location  # what `serve` prints
        r = runner.invoke(main, ["keys", "list", "--db", server.url])
        assert r.exit_code == 0 and r.stdout.splitlines()[1].split()[:4] == ["alice", "active", "0", "5"]
        with pytest.raises(KeysUnavailable, match="cannot reach the keys store") as e:
            open_store(server.url.replace("s3cret-pw", "wrong"))
        assert "s3cret-pw" not in str(e.value) and "wrong" not in str(e.value)
        plain = server.url.replace("rediss://", "redis://").partition("?")[0]  # TLS port, plain client: refused
        with pytest.raises(KeysUnavailable):
            open_store(plain)
