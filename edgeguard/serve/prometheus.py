"""Counters for `GET /metrics`, rendered by hand in Prometheus' text format (version 0.0.4).

By hand because the whole of it is a few dicts: requests by route and status, a latency histogram
per route, rejections by reason, items answered. Per-key usage is read from the key store at
scrape time, so it is exact, survives restarts and includes other servers sharing the store.
Process-local counters start at zero with the process, as Prometheus counters may.
"""

from __future__ import annotations

import bisect
from collections import Counter
from typing import Iterable

from edgeguard.serve.keys import KeyRecord

# Upper bounds (seconds) of the latency buckets: a batch-1 query on a small model takes about 1 ms.
BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self) -> None:
        self.requests: Counter[tuple[str, int]] = Counter()
        self.latency: dict[str, list[int]] = {}  # route -> count per bucket, the last one +Inf
        self.latency_sum: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.items = 0

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests[route, status] += 1
        counts = self.latency.setdefault(route, [0] * (len(BUCKETS) + 1))
        counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.latency_sum[route] += seconds

    def render(self, keys: Iterable[KeyRecord], day: str) -> str:
        keys = list(keys)
        out: list[str] = []

        def family(name: str, kind: str, help: str, samples: Iterable[tuple[str, float]]) -> None:
            out.append(f"# HELP {name} {help}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(f"{name}{labels} {_number(value)}" for labels, value in samples)

        family(
            "edgeguard_requests_total", "counter", "HTTP requests answered, by route template and status.",
            ((_labels(route=r, status=s), v) for (r, s), v in sorted(self.requests.items())),
        )
        out.append("# HELP edgeguard_request_duration_seconds Time from request to the last byte of the response.")
        out.append("# TYPE edgeguard_request_duration_seconds histogram")
        for route, counts in sorted(self.latency.items()):
            total = 0
            for bound, count in zip((*map(_number, BUCKETS), "+Inf"), counts):
                total += count
                out.append(f"edgeguard_request_duration_seconds_bucket{_labels(route=route, le=bound)} {total}")
            out.append(f"edgeguard_request_duration_seconds_sum{_labels(route=route)} {_number(self.latency_sum[route])}")
            out.append(f"edgeguard_request_duration_seconds_count{_labels(route=route)} {total}")
        family(
            "edgeguard_rejected_total", "counter",
            "Requests refused before inference, by reason (invalid, too_large, not_found, unauthorized, forbidden, rate_limited, unavailable).",
            ((_labels(reason=r), v) for r, v in sorted(self.rejected.items())),
        )
        family("edgeguard_items_answered_total", "counter", "Inputs answered (a batch counts each item).", [("", self.items)])
        family(
            "edgeguard_key_items_used_total", "counter", "Items charged to each API key since it was created (persisted).",
            ((_labels(key=k.name), k.used) for k in keys),
        )
        family(
            "edgeguard_key_items_used_today", "gauge", "Items charged to each API key this UTC day.",
            ((_labels(key=k.name), k.used_on(day)) for k in keys),
        )
        family(
            "edgeguard_key_items_remaining", "gauge", "Items left in each API key's total budget (keys with a budget).",
            ((_labels(key=k.name), k.budget - k.used) for k in keys if k.budget is not None),
        )
        family(
            "edgeguard_key_revoked", "gauge", "1 if the API key is revoked.",
            ((_labels(key=k.name), int(k.revoked is not None)) for k in keys),
        )
        family(
            "edgeguard_key_flagged", "gauge", "1 if the monitor flagged the API key as a likely extraction client (until cleared).",
            ((_labels(key=k.name), int(k.flagged is not None)) for k in keys),
        )
        return "\n".join(out) + "\n"


def _labels(**labels: object) -> str:
    def escape(v: object) -> str:
        return str(v).replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")

    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)
