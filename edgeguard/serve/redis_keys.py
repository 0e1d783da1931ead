"""API keys, budgets, rate limits and flags in one Redis shared by a fleet of `edgeguard serve` devices.

    edgeguard keys add alice --budget 10000 --db redis://:PASSWORD@10.0.0.5:6379/0
    edgeguard serve export/... --keys rediss://:PASSWORD@keys.lan:6380/0?ssl_ca_certs=/etc/edgeguard/ca.pem

Why Redis, and how it is used (docs/serving.md, "A fleet: one Redis, many devices"):
- Every charge is one Lua script (CHARGE): Redis runs a script alone, so the rate-limit check, the
  budget check and the reservation are one atomic step for the whole fleet; N devices together
  never answer budget + 1 items. The token buckets live in the key's hash and refill by Redis's own
  clock (TIME), so a fleet shares them and the devices' clocks do not matter.
- Revocations and flags are fields of the same hash, which the charge script checks and returns:
  one device's change is seen by every device on its next request. A key in use costs one round
  trip per request: `lookup` answers from the key's last successful charge on this device when it
  is under RECENT_S old, and the charge that follows checks everything again.
- Fail closed: when Redis cannot be reached every call raises `KeysUnavailable` (the server answers
  503 with Retry-After) and nothing is answered uncharged. After a failure the store waits
  RETRY_AFTER_S before trying again, so a Redis that vanished from the network stalls the server's
  one event loop for at most TIMEOUT_S each time; redis-py reconnects on the next command.
- Durability is Redis's: appendonly yes with appendfsync everysec loses nothing when Redis is
  killed, and at most about a second of charges (or a revocation) when its machine loses power.

Layout under PREFIX: `key:<sha256>` a hash per key (KeyRecord's fields; a NULL is an absent field,
plus `tokens` and `stamp`, its rate bucket), `name:<name>` -> sha256, `names` the set of names,
`schema` the layout's version. Keys are stored as their sha256 only, as in the SQLite store. The
scripts reach keys they derive from a name, which a single Redis (or a primary with replicas)
allows and Redis Cluster does not.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

from edgeguard.errors import EdgeguardError
from edgeguard.serve.keys import BaseKeyStore, Charge, KeyRecord, KeysUnavailable, hash_key

PREFIX = "edgeguard:"
SCHEMA_VERSION = "1"
TIMEOUT_S = 0.5  # connect and command timeout, unless the URL sets socket_timeout / socket_connect_timeout
RECENT_S = 1.0  # how long a key's last successful charge stands in for a lookup
RETRY_AFTER_S = 1  # after a failure, calls fail at once for this long (and clients are told to retry after it)
log = logging.getLogger("edgeguard.serve")

# KEYS[1]: key:<sha256>. ARGV: n, the caller's UTC day, rate and burst ('' for no rate limit), '1'
# to refuse a flagged key. Returns {} for an unknown key, else {outcome, seconds to wait, the key's
# fields after}: 'ok', 'refused' (revoked, flagged and refused, or over a budget) or 'wait' (the rate
# limit). Only 'ok' writes.
CHARGE = """
local f = redis.call('HMGET', KEYS[1], 'used', 'revoked', 'budget', 'daily', 'day', 'day_used', 'tokens', 'stamp', 'flagged')
if not f[1] then return {} end
local function outcome(name, wait) return {name, wait, redis.call('HGETALL', KEYS[1])} end
if f[2] or (f[9] and ARGV[5] == '1') then return outcome('refused', '0') end
local n, day, rate, burst = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local now, tokens
if rate then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1e6
  tokens = burst
  if f[7] then tokens = math.min(burst, tonumber(f[7]) + math.max(0, now - tonumber(f[8])) * rate) end
  local need = math.min(n, burst)
  if tokens < need then return outcome('wait', string.format('%.6f', (need - tokens) / rate)) end
end
-- a device whose clock has not reached midnight yet charges the day already begun, never resets it
if f[5] > day then day = f[5] end
local used, day_used = tonumber(f[1]), 0
if f[5] == day then day_used = tonumber(f[6]) end
if (f[3] and used + n > tonumber(f[3])) or (f[4] and day_used + n > tonumber(f[4])) then return outcome('refused', '0') end
redis.call('HSET', KEYS[1], 'used', used + n, 'day', day, 'day_used', day_used + n)
if rate then
  -- all n tokens, possibly into debt: the rule of ratelimit.py
  redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens - n), 'stamp', string.format('%.6f', now))
end
return outcome('ok', '0')
"""

# KEYS: name:<name>, key:<sha256>, names, schema. ARGV: name, sha256, created, schema version, then
# field, value pairs of the limits that are set. Returns 0 if the name is taken.
INSERT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], 'name', ARGV[1], 'created', ARGV[3], 'used', 0, 'day', '', 'day_used', 0, unpack(ARGV, 5))
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('SET', KEYS[4], ARGV[4])
return 1
"""

# KEYS[1]: name:<name>. ARGV: the prefix of key hashes, the guard field, '1' if it must be set ('0':
# unset), then field, value pairs ('' clears the field). Returns 1 if it changed the key.
UPDATE = """
local digest = redis.call('GET', KEYS[1])
if not digest then return 0 end
local key = ARGV[1] .. digest
if (redis.call('HEXISTS', key, ARGV[2]) == 1) ~= (ARGV[3] == '1') then return 0 end
for i = 4, #ARGV, 2 do
  if ARGV[i + 1] == '' then redis.call('HDEL', key, ARGV[i]) else redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
end
return 1
"""

# KEYS[1]: names. ARGV: the prefixes of name entries and of key hashes. Every key's fields, in one snapshot.
RECORDS = """
local out = {}
for _, name in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local digest = redis.call('GET', ARGV[1] .. name)
  if digest then table.insert(out, redis.call('HGETALL', ARGV[2] .. digest)) end
end
return out
"""


def redacted(url: str) -> str:
    """The URL with its password replaced by ***: what messages, logs and start-up lines show."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def record(fields: dict[str, str]) -> KeyRecord:
    def optional(name: str, kind: Callable[[str], Any]) -> Any:
        value = fields.get(name)
        return None if value is None else kind(value)

    return KeyRecord(
        name=fields["name"], created=fields["created"], revoked=fields.get("revoked"),
        budget=optional("budget", int), daily=optional("daily", int), rate=optional("rate", float), burst=optional("burst", int),
        used=int(fields["used"]), day=fields["day"], day_used=int(fields["day_used"]),
        flagged=fields.get("flagged"), flag_reason=fields.get("flag_reason"),
    )  # fmt: skip


class RedisKeyStore(BaseKeyStore):
    """The key store of a fleet: `redis://[:password@]host:port/db` or `rediss://...` (TLS).

    Reaches Redis at once, so a wrong host, port, password or TLS setting fails in one sentence
    before a server binds its port.
    """

    def __init__(self, url: str, create: bool = False):
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError:
            raise EdgeguardError("a redis:// key store needs the redis package: pip install 'edgeguard[fleet]'") from None
        self.location = redacted(url)
        self.errors = redis.RedisError
        self.down_until = 0.0  # time.monotonic() before which calls fail without trying
        self.outage: str | None = None  # the error that took the store down, until a call succeeds
        self.charged: dict[str, tuple[float, KeyRecord]] = {}  # sha256 -> (when, the key after its last successful charge)
        try:  # not through _call: a command line that cannot reach Redis needs one sentence, not a server's log line
            # One connection, reconnected by the next command after a failure: no pool to check a
            # connection out of per command (a third of a round trip on loopback). No retries inside
            # redis-py: a retry would stall the event loop; the next request retries.
            self.client = redis.Redis.from_url(
                url, decode_responses=True, single_connection_client=True,
                socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S, retry=Retry(NoBackoff(), 0),
            )  # fmt: skip
            schema = self.client.get(PREFIX + "schema")
        except ValueError as e:  # a malformed URL, not repeated here: it may hold the password
            raise EdgeguardError(f"--keys is not a valid Redis URL ({e}); expected redis://[:password@]host:port/db or rediss://...") from None
        except self.errors as e:
            raise KeysUnavailable(self._unreachable(e), RETRY_AFTER_S) from e
        # registered scripts are sent by their sha1; redis-py loads one again if Redis restarted without it
        self.charge_script, self.insert_script, self.update_script, self.records_script = map(self.client.register_script, (CHARGE, INSERT, UPDATE, RECORDS))
        if schema is None and not create:
            raise EdgeguardError(f"no edgeguard keys at '{self.location}'; create a key first: edgeguard keys add NAME --budget N --db URL")
        if schema not in (None, SCHEMA_VERSION):
            raise EdgeguardError(f"the keys at '{self.location}' have layout {schema}, this edgeguard reads {SCHEMA_VERSION}")

    def _call(self, command: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One Redis round trip, or KeysUnavailable (logged once per outage, as is the recovery)."""
        wait = self.down_until - time.monotonic()
        if wait > 0:
            raise KeysUnavailable(self._unreachable(self.outage), math.ceil(wait))
        try:
            result = command(*args, **kwargs)
        except self.errors as e:
            self.down_until = time.monotonic() + RETRY_AFTER_S
            if self.outage is None:
                log.warning("edgeguard: keys store '%s' unreachable (%s); refusing requests with 503 until it is back", self.location, e)
            self.outage = str(e)
            raise KeysUnavailable(self._unreachable(e), RETRY_AFTER_S) from e
        if self.outage is not None:
            log.warning("edgeguard: keys store '%s' is reachable again", self.location)
            self.outage = None
        return result

    def _unreachable(self, error: object) -> str:
        return f"cannot reach the keys store at '{self.location}' ({error}); check that Redis runs there, and the URL's host, port, password and TLS settings"

    def ping(self) -> None:
        self._call(self.client.ping)

    def close(self) -> None:
        self.client.close()

    def _forget(self) -> None:
        """A change made here (revoke, flag, clear-flag, add) is read afresh by the next lookup."""
        self.charged.clear()

    def _insert(
        self, name: str, key_hash: str, created: str, budget: int | None, daily: int | None, rate: float | None, burst: int | None
    ) -> bool:
        limits = [v for field, value in (("budget", budget), ("daily", daily), ("rate", rate), ("burst", burst)) if value is not None for v in (field, repr(value))]
        keys = [PREFIX + "name:" + name, PREFIX + "key:" + key_hash, PREFIX + "names", PREFIX + "schema"]
        self._forget()
        return bool(self._call(self.insert_script, keys=keys, args=[name, key_hash, created, SCHEMA_VERSION, *limits]))

    def _update(self, name: str, values: dict[str, str | None], guard: str, present: bool) -> bool:
        pairs = [v for field, value in values.items() for v in (field, value or "")]
        self._forget()
        return bool(self._call(self.update_script, keys=[PREFIX + "name:" + name], args=[PREFIX + "key:", guard, "1" if present else "0", *pairs]))

    def records(self) -> list[KeyRecord]:
        rows = self._call(self.records_script, keys=[PREFIX + "names"], args=[PREFIX + "name:", PREFIX + "key:"])
        return sorted((record(dict(zip(row[::2], row[1::2]))) for row in rows), key=lambda r: r.name)

    def record_named(self, name: str) -> KeyRecord | None:
        digest = self._call(self.client.get, PREFIX + "name:" + name)
        return None if digest is None else self._fetch(digest)

    def lookup(self, key: str) -> KeyRecord | None:
        """Answered from the key's last successful charge here if it was under RECENT_S ago: a key in
        use costs one round trip per request (the charge), not two. What that record may not show
        yet (a revocation, a flag, items another device used) the next charge checks atomically;
        a refusal the record causes (a budget it shows used up) is final, since used only grows.
        A refused or flagged key's charge is never remembered."""
        digest = hash_key(key)
        recent = self.charged.get(digest)
        if recent is not None and time.monotonic() - recent[0] < RECENT_S:
            return recent[1]
        return self._fetch(digest)

    def _fetch(self, digest: str) -> KeyRecord | None:
        fields = self._call(self.client.hgetall, PREFIX + "key:" + digest)
        return record(fields) if fields else None

    def charge(self, key: str, n: int, day: str, rate: float | None = None, burst: int | None = None, refuse_flagged: bool = False) -> Charge:
        digest = hash_key(key)
        self.charged.pop(digest, None)
        limit = ("", "") if rate is None or burst is None else (repr(float(rate)), str(burst))
        reply = self._call(self.charge_script, keys=[PREFIX + "key:" + digest], args=[n, day, *limit, "1" if refuse_flagged else "0"])
        if not reply:
            return Charge(False)
        outcome, wait, fields = reply
        after = record(dict(zip(fields[::2], fields[1::2])))
        if outcome == "ok" and after.flagged is None:
            self.charged[digest] = (time.monotonic(), after)
        return Charge(outcome == "ok", float(wait), after)
