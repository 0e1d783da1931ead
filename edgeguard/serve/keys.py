"""API keys, their query budgets and usage counters: what every key store does, and the SQLite one.

`BaseKeyStore` is the interface `edgeguard serve` and `edgeguard keys` use, with the rules every store
shares (names, limits, the refusal sentences); a store adds its storage primitives. Two exist:
`KeyStore` here, one SQLite file per device (the default), and `RedisKeyStore` (redis_keys.py), one
Redis shared by a fleet of devices; `stores.open_store` picks one from `--keys`.

Why SQLite, and how it is used:
- Counters must survive a restart or a `kill -9`, or a thief would reset a budget by crashing the
  server. Each charge is one `UPDATE ... WHERE used + n <= budget` in autocommit: it checks and
  reserves in one atomic statement, committed before the answer is computed, so concurrent requests
  (or several server processes on one file) can never answer budget + 1 items.
- WAL journal, `synchronous=NORMAL`: a commit is in the WAL file (the OS's page cache) when the
  statement returns, so a killed process loses nothing; a power cut can lose the last commits before
  the next checkpoint. `synchronous=FULL` would close that gap at one fsync per query, which an SD
  card cannot do a thousand times a second.
- Checkpoints (copying the WAL into the database, with the only fsync) stall the connection that
  runs them for 10+ ms, so the server's connection does none: a `Checkpointer` thread runs them on
  its own connection once a second, while the serving thread keeps committing.
- The server reads a key's row on every request, so `keys add` / `keys revoke` take effect at once.
- Flags (set by the serving monitor, edgeguard.monitor) live in the same row, so a thief cannot
  shed one by crashing the server, and `keys clear-flag` takes effect on a running server too.
- Rate limits are in-process token buckets (ratelimit.py): one device, one server process.

Keys are 256-bit random tokens stored as their sha256: a stolen database holds no usable key, and a
salt would add nothing to a secret that cannot be guessed. The plaintext is shown once, at `add`.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import re
import secrets
import sqlite3
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from edgeguard.errors import EdgeguardError
from edgeguard.serve.ratelimit import RateLimiter

SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    name     TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,  -- sha256 hex of the key; the key itself is never stored
    created  TEXT NOT NULL,         -- ISO 8601, UTC
    revoked  TEXT,                  -- when it was revoked, or NULL
    budget   INTEGER,               -- total items this key may be answered; NULL: no limit
    daily    INTEGER,               -- items per UTC day; NULL: no limit
    rate     REAL,                  -- items per second (token bucket); NULL: no limit
    burst    INTEGER,               -- token bucket size in items; NULL when rate is NULL
    used     INTEGER NOT NULL DEFAULT 0,
    day      TEXT NOT NULL DEFAULT '',  -- the UTC day day_used counts
    day_used INTEGER NOT NULL DEFAULT 0,
    flagged  TEXT,                  -- when the monitor flagged the key as a likely thief, or NULL
    flag_reason TEXT                -- the monitor's evidence, for the operator; never sent to clients
)
"""
# an older schema version -> the statements that bring its file to SCHEMA_VERSION
UPGRADES = {1: ("ALTER TABLE keys ADD COLUMN flagged TEXT", "ALTER TABLE keys ADD COLUMN flag_reason TEXT")}
COLUMNS = "name, created, revoked, budget, daily, rate, burst, used, day, day_used, flagged, flag_reason"  # KeyRecord's fields
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")  # also safe as a Prometheus label value
KEY_PREFIX = "eg_"  # makes a leaked key easy to recognise (and to grep for) in logs and code


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def utc_day(now: datetime) -> str:
    """The day a daily budget counts in: budgets reset at 00:00 UTC, wherever the device is."""
    return now.strftime("%Y-%m-%d")


@dataclass(frozen=True)
class KeyRecord:
    """One row of the keys table."""

    name: str
    created: str
    revoked: str | None
    budget: int | None
    daily: int | None
    rate: float | None
    burst: int | None
    used: int
    day: str
    day_used: int
    flagged: str | None
    flag_reason: str | None

    def used_on(self, day: str) -> int:
        return self.day_used if self.day == day else 0

    def refusal(self, n: int, day: str) -> str | None:
        """Why this key may not be answered n more items on `day`, or None if it may."""
        if self.revoked:
            return f"API key '{self.name}' was revoked ({self.revoked}); ask the operator for a new key"
        if self.budget is not None and self.used + n > self.budget:
            return _over(f"API key '{self.name}'", self.budget - self.used, self.budget, n, "")
        if self.daily is not None and self.used_on(day) + n > self.daily:
            return _over(f"API key '{self.name}'", self.daily - self.used_on(day), self.daily, n, " today (resets at 00:00 UTC)")
        return None


def _over(who: str, left: int, limit: int, n: int, when: str) -> str:
    if left <= 0:
        return f"{who} has used all {limit} queries of its budget{when}"
    return f"{who} has {left} of its {limit} queries left{when}; this request holds {n} items"


@dataclass(frozen=True)
class Charge:
    """The outcome of one check-and-reserve; truthy when every item was reserved."""

    charged: bool
    wait: float = 0.0  # > 0: refused by the rate limit; seconds until the bucket holds enough
    record: KeyRecord | None = None  # the key as the charge found it, when the store read it in the same step

    def __bool__(self) -> bool:
        return self.charged


class KeysUnavailable(EdgeguardError):
    """The key store cannot be reached. The server answers 503 with Retry-After: without a charge
    there is no answer (fail closed)."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class BaseKeyStore(ABC):
    """A key store: what the server and `edgeguard keys` call, the shared rules, the primitives to add.

    `location` names the store in messages and logs, so it never holds a password.
    """

    location: str

    def add(
        self,
        name: str,
        budget: int | None = None,
        daily: int | None = None,
        rate: float | None = None,
        burst: int | None = None,
        now: datetime | None = None,
    ) -> str:
        """Create a key and return it: the only time its plaintext exists."""
        if not NAME.match(name):
            raise EdgeguardError(f"key name must be 1-64 letters, digits, '.', '_' or '-' (starting with a letter or digit), got {name!r}")
        for label, value in (("--budget", budget), ("--daily", daily), ("--burst", burst)):
            if value is not None and value < 1:
                raise EdgeguardError(f"{label} must be a whole number >= 1 (leave it out for no limit), got {value}")
        if rate is not None and not (math.isfinite(rate) and rate > 0):
            raise EdgeguardError(f"--rate must be a number of items per second > 0, got {rate}")
        if burst is not None and rate is None:
            raise EdgeguardError("--burst sizes the --rate limit's bucket; give --rate too")
        if rate is not None and burst is None:
            burst = max(1, math.ceil(rate))  # one second's worth of items
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        created = (now or utc_now()).isoformat(timespec="seconds")
        if not self._insert(name, hash_key(key), created, budget, daily, rate, burst):
            raise EdgeguardError(f"a key named '{name}' already exists; choose another name")
        return key

    def revoke(self, name: str, now: datetime | None = None) -> None:
        when = (now or utc_now()).isoformat(timespec="seconds")
        self._change(name, {"revoked": when}, "revoked", present=False, unchanged=f"key '{name}' is already revoked")

    def flag(self, name: str, reason: str, now: datetime | None = None) -> None:
        """Mark a key as a likely extraction client until an operator clears it; a flagged key keeps its first reason."""
        when = (now or utc_now()).isoformat(timespec="seconds")
        self._update(name, {"flagged": when, "flag_reason": reason}, "flagged", present=False)

    def clear_flag(self, name: str) -> None:
        self._change(name, {"flagged": None, "flag_reason": None}, "flagged", present=True, unchanged=f"key '{name}' is not flagged")

    def _change(self, name: str, values: dict[str, str | None], guard: str, present: bool, unchanged: str) -> None:
        """`_update`, or say why nothing changed: no such key, or it already was so."""
        if self._update(name, values, guard, present):
            return
        if self.record_named(name) is None:
            raise EdgeguardError(f"no key named '{name}' in '{self.location}'; `edgeguard keys list --db {self.location}` shows them")
        raise EdgeguardError(unchanged)

    def ping(self) -> None:
        """Raise KeysUnavailable unless charges can be made now (`/v2/health/ready`)."""

    def serving(self) -> contextlib.AbstractContextManager[None]:
        """What the store runs beside a server, for the server's lifetime."""
        return contextlib.nullcontext()

    def close(self) -> None:
        """Release the connection."""

    @abstractmethod
    def _insert(
        self, name: str, key_hash: str, created: str, budget: int | None, daily: int | None, rate: float | None, burst: int | None
    ) -> bool:
        """Store a new key; False if the name is taken."""

    @abstractmethod
    def _update(self, name: str, values: dict[str, str | None], guard: str, present: bool) -> bool:
        """Set `values` (None: clear) on the named key if its `guard` field is set (present) or not; False if not changed."""

    @abstractmethod
    def records(self) -> list[KeyRecord]:
        """Every key, by name."""

    @abstractmethod
    def record_named(self, name: str) -> KeyRecord | None: ...

    @abstractmethod
    def lookup(self, key: str) -> KeyRecord | None:
        """The record of a presented key, or None if no such key was ever issued. A store may answer
        from its last successful charge of the key, if recent: `charge` checks everything again."""

    @abstractmethod
    def charge(self, key: str, n: int, day: str, rate: float | None = None, burst: int | None = None, refuse_flagged: bool = False) -> Charge:
        """Check the rate limit (`rate` None: none), then reserve n items of the key's budgets, in one
        atomic, durable step that refuses a revoked key (and a flagged one if `refuse_flagged`); a
        refused request takes nothing from either."""


class KeyStore(BaseKeyStore):
    """The keys database. One instance per thread or process (SQLite serialises the writers)."""

    def __init__(self, path: str | Path, create: bool = False, autocheckpoint: bool = True):
        """autocheckpoint False: leave checkpoints to a `Checkpointer` (`serving`)."""
        self.path = Path(path)
        self.location = str(self.path)
        self.limiter = RateLimiter()
        if not create and not self.path.is_file():
            raise EdgeguardError(
                f"keys database '{self.path}' does not exist; create a key first: "
                f"edgeguard keys add NAME --budget N --db {self.path}"
            )
        try:
            # autocommit (isolation_level=None): every statement is its own committed transaction
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=10.0, check_same_thread=False)
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, *UPGRADES, SCHEMA_VERSION):
                raise EdgeguardError(f"keys database '{self.path}' has schema {version}, this edgeguard reads {SCHEMA_VERSION}")
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            if version != SCHEMA_VERSION:
                self._create_or_upgrade()
            if not autocheckpoint:
                self.db.execute("PRAGMA wal_autocheckpoint=0")
        except sqlite3.DatabaseError as e:
            raise EdgeguardError(f"keys database '{self.path}' cannot be opened ({e}); is it an edgeguard keys file?") from e

    def _create_or_upgrade(self) -> None:
        """Create the table, or add what a file of an older schema lacks, in one write transaction
        (re-reading the version under the lock: another process may have just done it)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            self.db.execute(SCHEMA)
            for statement in UPGRADES.get(version, ()):
                self.db.execute(statement)
            self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        checkpointer = Checkpointer(self.path).start()  # the serving connection makes none
        try:
            yield
        finally:
            checkpointer.stop()

    def _insert(
        self, name: str, key_hash: str, created: str, budget: int | None, daily: int | None, rate: float | None, burst: int | None
    ) -> bool:
        try:
            self.db.execute(
                "INSERT INTO keys (name, key_hash, created, budget, daily, rate, burst) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (name, key_hash, created, budget, daily, rate, burst),
            )
        except sqlite3.IntegrityError:
            return False
        return True

    def _update(self, name: str, values: dict[str, str | None], guard: str, present: bool) -> bool:
        # column names come from BaseKeyStore, never from input
        columns = ", ".join(f"{column} = ?" for column in values)
        condition = "IS NOT NULL" if present else "IS NULL"
        return bool(self.db.execute(f"UPDATE keys SET {columns} WHERE name = ? AND {guard} {condition}", (*values.values(), name)).rowcount)

    def records(self) -> list[KeyRecord]:
        return [KeyRecord(*row) for row in self.db.execute(f"SELECT {COLUMNS} FROM keys ORDER BY name")]

    def record_named(self, name: str) -> KeyRecord | None:
        row = self.db.execute(f"SELECT {COLUMNS} FROM keys WHERE name = ?", (name,)).fetchone()
        return KeyRecord(*row) if row else None

    def lookup(self, key: str) -> KeyRecord | None:
        row = self.db.execute(f"SELECT {COLUMNS} FROM keys WHERE key_hash = ?", (hash_key(key),)).fetchone()
        return KeyRecord(*row) if row else None

    def charge(self, key: str, n: int, day: str, rate: float | None = None, burst: int | None = None, refuse_flagged: bool = False) -> Charge:
        """The rate limit in memory, then one committed `UPDATE ... WHERE used + n <= budget`; nothing
        runs in between (one thread), so the bucket is only spent on a charge that was made."""
        digest = hash_key(key)
        wait = self.limiter.admit(digest, n, rate, burst)
        if wait > 0:
            return Charge(False, wait)
        charged = self.db.execute(
            """UPDATE keys SET
                   used = used + :n,
                   day_used = CASE WHEN day = :day THEN day_used + :n ELSE :n END,
                   day = :day
               WHERE key_hash = :hash AND revoked IS NULL AND NOT (:refuse_flagged AND flagged IS NOT NULL)
                 AND (budget IS NULL OR used + :n <= budget)
                 AND (daily IS NULL OR CASE WHEN day = :day THEN day_used ELSE 0 END + :n <= daily)""",
            {"n": n, "day": day, "hash": digest, "refuse_flagged": refuse_flagged},
        ).rowcount
        if charged:
            self.limiter.spend(digest, n)
        return Charge(bool(charged))


class Checkpointer:
    """A thread checkpointing the keys database's WAL every `every` seconds, on its own connection.

    PASSIVE checkpoints never wait for the serving connection, and sqlite3 releases the GIL while
    it syncs, so the event loop is not stalled; the WAL stays about one interval of commits long.
    """

    def __init__(self, path: str | Path, every: float = 1.0):
        self.path = Path(path)
        self.every = every
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="keys-checkpointer", daemon=True)

    def start(self) -> "Checkpointer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()

    def _run(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
        try:
            while not self.stopped.wait(self.every):
                db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # leave a short WAL behind on shutdown
        finally:
            db.close()
