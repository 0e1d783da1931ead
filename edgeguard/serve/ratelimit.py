"""Per-key rate limits: a token bucket per key, counted in items (a batch of 64 costs 64), in memory.

Why items, not requests: a thief's cost is the number of answered inputs, and batching must not be
a way around the limit. Why in memory: a rate limit smooths traffic over seconds; budgets, which
must survive restarts, live in the keys database. This is the SQLite store's limiter (one device);
the Redis store runs the same rule inside its charge script (redis_keys.CHARGE), so a fleet shares
each key's bucket.

A bucket holds at most `burst` tokens and refills at `rate` tokens per second. A request for n items
is admitted when the bucket holds min(n, burst) tokens, and, once answered, takes all n, possibly
going into debt: a batch larger than the burst is still served once the bucket is full, and the
debt is paid back before the key's next request, so over any long stretch a key gets at most `rate`
items per second, plus one burst. Requests refused (here or by the budget) take nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable


@dataclass
class Bucket:
    tokens: float
    stamp: float  # clock reading at the last refill


class RateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.buckets: dict[str, Bucket] = {}

    def admit(self, key: str, n: int, rate: float | None, burst: int | None) -> float:
        """0.0 if n items of `key` may be answered now, else the seconds to wait. Takes nothing:
        the caller `spend`s once the request is really answered (a budget refusal costs no tokens).

        rate None means no limit.
        """
        if rate is None or burst is None:
            return 0.0
        now = self.clock()
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = Bucket(float(burst), now)
        bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.stamp) * rate)
        bucket.stamp = now
        need = min(n, burst)
        return 0.0 if bucket.tokens >= need else (need - bucket.tokens) / rate

    def spend(self, key: str, n: int) -> None:
        """Take n tokens (possibly into debt) from the bucket `admit` just checked; none: no limit."""
        bucket = self.buckets.get(key)
        if bucket is not None:
            bucket.tokens -= n
