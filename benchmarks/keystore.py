"""What a shared Redis key store costs a served request, against the SQLite file, on loopback; a fleet's throughput.

    python benchmarks/keystore.py --export /tmp/final_export/digits-small-cnn-qat-x86-s0
    python benchmarks/keystore.py --export ... --rounds 3000 --out benchmarks/results/keystore.json

In one run, with a redis-server of its own on 127.0.0.1 (append-only file, fsync every second: the
settings docs/serving.md recommends) and one key per store with every limit set (total, daily,
rate), so that both stores run their whole check-and-reserve:
1. latency: two `edgeguard serve` processes up at once, one on a SQLite file, one on the Redis,
   single-image /predict requests sent to them in turn from one client (--rounds each), so that
   whatever else the machine does slows both alike -> p50 / p99 of each, the added p50 / p99
   (Redis - SQLite) and the median of the paired differences; the issue's target: added p50 <= 0.5 ms;
2. in this process, without HTTP: a key's lookup + charge on each store, as a served request makes
   them (median of --calls; with Redis the lookup of a key in use is its last charge's record);
3. throughput: --clients keep-alive connections sending single-image requests to one server on
   SQLite, one server on Redis, then two servers sharing the Redis (half the clients each); every
   answer must be a 200, and the Redis must have charged exactly the items answered.

Bounded: each load phase stops after --requests requests or --max-seconds. Only 127.0.0.1 is ever
contacted. The load generator, the servers and Redis share this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from edgeguard.bench.loopback import (
    RedisServer,
    Server,
    alternate,
    drive,
    http_request,
    load_summary,
    paired_difference_us,
    percentiles_us,
    predict_body,
    run_async,
)
from edgeguard.bench.script import run_script
from edgeguard.bench.timing import median_us
from edgeguard.errors import EdgeguardError
from edgeguard.manifest import Manifest
from edgeguard.serve import open_store
from edgeguard.serve.keys import utc_day, utc_now

TARGET_ADDED_P50_US = 500.0  # issue 18: Redis may add at most 0.5 ms to the served p50
LIMITS = {"budget": 10**12, "daily": 10**12, "rate": 1e9, "burst": 10**9}  # all set, none reached


def latency(export: Path, stores: dict[str, tuple[str, str]], body: bytes, rounds: int) -> dict[str, Any]:
    """Both servers up, requests alternated; stores: name -> (--keys, key)."""
    names = list(stores)
    raws = [http_request("/predict", body, key) for _, key in stores.values()]
    with Server(export, stores[names[0]][0], max_batch=1) as first, Server(export, stores[names[1]][0], max_batch=1) as second:
        ports = [first.port, second.port]
        run_async(alternate(ports, raws, 100))  # warm-up: connections, caches, the scripts loaded into Redis
        results = run_async(alternate(ports, raws, rounds))
    bad = [status for r in results for status, _, _ in r if status != 200]
    if bad:
        raise EdgeguardError(f"the latency phase got {len(bad)} answers other than 200: {Counter(bad)}")
    ns = dict(zip(names, ([t for _, _, t in r] for r in results)))
    each = {name: percentiles_us(ns[name]) for name in names}
    sqlite, redis = each["sqlite"], each["redis"]
    added_p50 = round(redis["p50_us"] - sqlite["p50_us"], 1)
    return {
        "requests_each": rounds,
        **each,
        "added_p50_us": added_p50,
        "added_p99_us": round(redis["p99_us"] - sqlite["p99_us"], 1),
        "paired_median_difference_us": round(paired_difference_us(ns["sqlite"], ns["redis"]), 1),
        "ratio_p50": round(redis["p50_us"] / sqlite["p50_us"], 3),
        "target_added_p50_us": TARGET_ADDED_P50_US,
        "within_target": added_p50 <= TARGET_ADDED_P50_US,
    }


def in_process(stores: dict[str, tuple[str, str]], calls: int) -> dict[str, float]:
    """Median of one lookup + charge per store, in this process: the store alone, without HTTP."""
    out = {}
    for name, (location, key) in stores.items():
        store, day = open_store(location), utc_day(utc_now())

        def request() -> None:
            store.lookup(key)
            store.charge(key, 1, day, LIMITS["rate"], LIMITS["burst"])

        out[f"{name}_lookup_plus_charge_us"] = round(median_us(request, calls, calls // 10), 1)
        store.close()
    return out


def throughput(export: Path, keys: list[tuple[str, str]], body: bytes, clients: int, requests: int, max_seconds: float) -> dict[str, Any]:
    """One server per (--keys, key), all at once, the clients split evenly among them."""
    with contextlib.ExitStack() as running:
        servers = [running.enter_context(Server(export, location, max_batch=1)) for location, _ in keys]
        raws = [http_request("/predict", body, key) for _, key in keys]

        async def load(each: int, clients_each: int, seconds: float) -> tuple[list[Any], float]:
            deadline = time.monotonic() + seconds
            start = time.perf_counter()
            runs = await asyncio.gather(*(drive(s.port, [0] * each, [raw], clients_each, deadline) for s, raw in zip(servers, raws)))
            return [r for results, _ in runs for r in results], time.perf_counter() - start

        warm, _ = run_async(load(100, 1, max_seconds))
        results, seconds = run_async(load(requests // len(servers), clients // len(servers), max_seconds))
    return {
        "servers": len(servers),
        **load_summary(results, seconds, clients),
        "by_status": dict(Counter(str(status) for _, status, _, _ in results)),
        "answered_with_warm_up": sum(status == 200 for _, status, _, _ in warm + results),
    }


def redis_version() -> str:
    return subprocess.run(["redis-server", "--version"], capture_output=True, text=True, check=True).stdout.split()[2].removeprefix("v=")


def render(result: dict[str, Any]) -> str:
    lat, inproc = result["latency"], result["in_process"]
    lines = [
        f"{result['model']} on {result['machine']['processor']}, {result['machine']['cpu_count']} CPUs; redis-server {result['machine']['redis_server']}",
        f"one client, requests alternated ({lat['requests_each']} each): SQLite p50 {lat['sqlite']['p50_us']:.0f} / p99 {lat['sqlite']['p99_us']:.0f} us,"
        f" Redis p50 {lat['redis']['p50_us']:.0f} / p99 {lat['redis']['p99_us']:.0f} us",
        f"  Redis adds p50 {lat['added_p50_us']:.0f} us (ratio {lat['ratio_p50']:.2f}), p99 {lat['added_p99_us']:.0f} us; median paired difference"
        f" {lat['paired_median_difference_us']:.0f} us; target <= {lat['target_added_p50_us']:.0f} us: {'met' if lat['within_target'] else 'MISSED'}",
        f"  in process, lookup + charge: SQLite {inproc['sqlite_lookup_plus_charge_us']:.0f} us, Redis {inproc['redis_lookup_plus_charge_us']:.0f} us",
    ]
    for name, t in result["throughput"].items():
        lines.append(f"{name}: {t['requests_per_s']:.0f} req/s ({t['requests']} requests, {t['clients']} clients), p50 {t['p50_us']:.0f} us p99 {t['p99_us']:.0f} us, statuses {t['by_status']}")
    lines.append(f"charged by Redis = answered by its servers: {result['charged_equals_answered']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", type=Path, required=True, help="export folder (manifest.json + model.int8.onnx)")
    parser.add_argument("--rounds", type=int, default=2000, help="single-image requests to each server in the latency phase")
    parser.add_argument("--calls", type=int, default=5000, help="in-process lookup + charge calls per store")
    parser.add_argument("--requests", type=int, default=4000, help="requests per throughput phase")
    parser.add_argument("--clients", type=int, default=16, help="concurrent keep-alive connections per throughput phase (even)")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="cap on each throughput phase's duration")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/keystore.json"))
    args = parser.parse_args(argv)
    if args.rounds < 100 or args.requests < 100 or args.clients < 2 or args.clients % 2:
        parser.error("--rounds and --requests must be >= 100, --clients an even number >= 2")

    def measure() -> dict[str, Any]:
        manifest = Manifest.load(args.export)
        x = np.random.default_rng(args.seed).random((1, *manifest.input_shape), dtype=np.float32)
        body = predict_body(x)
        with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp) / "redis") as redis:
            db = str(Path(tmp) / "keys.db")
            stores = {name: (location, open_store(location, create=True).add("bench", **LIMITS)) for name, location in (("sqlite", db), ("redis", redis.url))}
            lat = latency(args.export, stores, body, args.rounds)
            inproc = in_process(stores, args.calls)
            fleet = open_store(redis.url, create=True).add("fleet", **LIMITS)
            runs = {
                "one_server_sqlite": throughput(args.export, [stores["sqlite"]], body, args.clients, args.requests, args.max_seconds),
                "one_server_redis": throughput(args.export, [(redis.url, fleet)], body, args.clients, args.requests, args.max_seconds),
                "two_servers_one_redis": throughput(args.export, [(redis.url, fleet)] * 2, body, args.clients, args.requests, args.max_seconds),
            }
            charged = open_store(redis.url).record_named("fleet").used
        answered = sum(runs[name]["answered_with_warm_up"] for name in ("one_server_redis", "two_servers_one_redis"))
        return {
            "what": "the Redis key store against the SQLite file: added latency per served request on loopback, a fleet's throughput",
            "model": f"{manifest.name} (input {list(manifest.input_shape)})",
            "machine": {"redis_server": redis_version(), "redis_py": importlib.metadata.version("redis")},
            "redis_settings": "appendonly yes, appendfsync everysec, no RDB snapshots, loopback TCP, no TLS, no password",
            "latency": lat,
            "in_process": inproc,
            "throughput": runs,
            "charged_equals_answered": charged == answered,
        }

    def failed(result: dict[str, Any]) -> bool:
        return not result["charged_equals_answered"] or any(set(t["by_status"]) != {"200"} for t in result["throughput"].values())

    return run_script(args, measure, render, failed)


if __name__ == "__main__":
    sys.exit(main())
