"""Token buckets in items: bursts, refill, debt for batches larger than the burst, per-key isolation."""

from __future__ import annotations

import pytest

from edgeguard.serve.ratelimit import RateLimiter


def take(limiter: RateLimiter, key: str, n: int, rate: float | None, burst: int | None) -> float:
    """What the service does: admit, and spend when admitted."""
    wait = limiter.admit(key, n, rate, burst)
    if wait == 0.0:
        limiter.spend(key, n)
    return wait


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_at_the_rate():
    clock = Clock()
    limiter = RateLimiter(clock)
    assert [take(limiter, "a", 1, rate=2.0, burst=3) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert take(limiter, "a", 1, rate=2.0, burst=3) == pytest.approx(0.5)  # one token refills in 1/rate s
    clock.now += 0.5
    assert take(limiter, "a", 1, rate=2.0, burst=3) == 0.0
    assert take(limiter, "b", 3, rate=2.0, burst=3) == 0.0  # keys do not share buckets


def test_a_refused_or_unspent_request_takes_nothing():
    clock = Clock()
    limiter = RateLimiter(clock)
    take(limiter, "a", 2, rate=1.0, burst=2)
    assert take(limiter, "a", 2, rate=1.0, burst=2) == pytest.approx(2.0)
    clock.now += 2.0
    assert limiter.admit("a", 2, rate=1.0, burst=2) == 0.0  # admitted, then refused elsewhere (budget)
    assert take(limiter, "a", 2, rate=1.0, burst=2) == 0.0


def test_a_batch_larger_than_the_burst_is_served_then_paid_back():
    clock = Clock()
    limiter = RateLimiter(clock)
    assert take(limiter, "a", 10, rate=5.0, burst=5) == 0.0  # full bucket: admitted, 5 items of debt
    assert take(limiter, "a", 1, rate=5.0, burst=5) == pytest.approx(6 / 5)
    clock.now += 6 / 5
    assert take(limiter, "a", 1, rate=5.0, burst=5) == 0.0


def test_long_run_rate_is_bounded():
    clock = Clock()
    limiter = RateLimiter(clock)
    served = 0
    for _ in range(1000):  # 10 s in steps of 10 ms, asking for 4 items each time
        if take(limiter, "a", 4, rate=20.0, burst=8) == 0.0:
            served += 4
        clock.now += 0.01
    assert served <= 20 * 10 + 8 + 4


def test_no_rate_means_no_limit():
    limiter = RateLimiter(Clock())
    assert all(take(limiter, "a", 64, rate=None, burst=None) == 0.0 for _ in range(100))
