"""Detection benchmark: does the serving monitor flag thieves before their 500th query, leave honest
users alone, and stay cheap next to the model it watches?

    edgeguard quickstart --runs-dir /tmp/h4_runs --out /tmp/h4_export --threads 1
    python benchmarks/detection.py --export /tmp/h4_export/digits-small-cnn-qat-x86-s0

1. Detection (`edgeguard.evaluate.detection.run_detection`, in process, seeded): for each of --seeds,
   the test split (clean and under each benign shift), a Knockoff thief (natural patches), a pool
   thief and a JBDA thief; then --honest-streams honest streams of 2,000 queries. Each stream goes
   through a fresh monitor with the manifest's thresholds: the query index of the flag, or never.
2. Overhead, on one honest 2,000-query stream (drawn as the honest streams are); the monitored
   deployment is the export, the unmonitored one a copy whose manifest holds no thresholds:
   - in process: `Monitor.observe` alone per query (batch 1) and per batch of 64, logits given (the
     server computes them anyway), next to the model's own `logits` call at the same batch;
   - inside the server, no HTTP: `Service.predict` + JSON of both deployments in turn: the CPU the
     monitor adds to a request (in the server it runs after the response, see serve/service.py);
   - over HTTP, the bar: two `edgeguard serve` up at once (`--on-flag log`), the stream's images sent
     one per request in blocks of 50 to each in turn from one client: the monitor may add at most
     10% to the served p50.
3. The OOD score: energy (what the monitor uses) and max-softmax, each thresholded as calibration
   does (the 98th percentile of honest scores): the share of queries above it under each honest
   condition and among --thief-queries natural patches; and the monitor's own verdict with the
   manifest's thresholds (for a DivQAT `signature` model, energy or closeness to the signature).
Writes --out (JSON: every stream, the thresholds, the machine) and prints the markdown table.
Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeguard.attacks.sources import query_set
from edgeguard.bench.loopback import (
    Connection,
    Server,
    http_request,
    predict_body,
    run_async,
)
from edgeguard.bench.script import run_script
from edgeguard.data import Dataset, load_dataset
from edgeguard.data.shifts import random_shifts, shifted
from edgeguard.errors import EdgeguardError
from edgeguard.evaluate.detection import markdown, run_detection
from edgeguard.export.monitor_thresholds import OOD_QUANTILE
from edgeguard.manifest import Manifest
from edgeguard.monitor import Monitor, MonitorConfig, energy
from edgeguard.monitor.ood import out_of_distribution
from edgeguard.runtime import DeployedModel, softmax
from edgeguard.serve import ServeConfig, Service
from edgeguard.serve.keys import KeyStore
from edgeguard.serve.protocol import dumps

OVERHEAD_BAR = 0.10  # monitoring may add at most 10% to the served p50 latency
BATCH = 64
BLOCK = 50


SCORES = {"energy": energy, "max-softmax": lambda z: -softmax(z).max(axis=1)}  # higher: less like honest data


def score_comparison(model: DeployedModel, data: Dataset, natural_queries: int, seed: int = 0) -> dict[str, Any]:
    """Each OOD score thresholded at the OOD_QUANTILE of honest scores: share above it per condition."""
    honest = np.concatenate([data.test.x, data.pool.x])
    logits = {name: model.logits(x) for name, x in {"clean": honest, **shifted(honest, seed)}.items()}
    natural = model.logits(query_set("natural", data, natural_queries, seed))
    out = {}
    for name, score in SCORES.items():
        by = {c: score(z) for c, z in logits.items()}
        threshold = float(np.quantile(np.concatenate(list(by.values())), OOD_QUANTILE))
        rates = {c: round(float((v > threshold).mean()), 4) for c, v in by.items()}
        out[name] = {"honest": rates, "honest_worst": max(rates.values()), "natural": round(float((score(natural) > threshold).mean()), 4)}
    cfg = MonitorConfig.from_dict(model.entry.monitor)  # what the served monitor counts (energy, and a signature model's closeness to it)
    verdict = lambda z: out_of_distribution(z, cfg.energy_threshold, cfg.signature)  # noqa: E731
    rates = {c: round(float(verdict(z).mean()), 4) for c, z in logits.items()}
    out["monitor"] = {"honest": rates, "honest_worst": max(rates.values()), "natural": round(float(verdict(natural).mean()), 4)}
    return out


def honest_stream(model: DeployedModel, n: int, seed: int) -> np.ndarray:
    data = load_dataset(model.manifest.dataset)
    honest = np.concatenate([data.test.x, data.pool.x])
    rng = np.random.default_rng(seed)
    return random_shifts(honest[rng.integers(len(honest), size=n)], rng)


def timed_us(fn: Any, items: list[Any]) -> list[float]:
    out = []
    for item in items:
        start = time.perf_counter_ns()
        fn(item)
        out.append((time.perf_counter_ns() - start) / 1e3)
    return out


def stats_us(samples: list[float]) -> dict[str, float]:
    return {"p50_us": round(statistics.median(samples), 2), "mean_us": round(statistics.fmean(samples), 2), "p99_us": round(float(np.percentile(samples, 99)), 2)}


def in_process(model: DeployedModel, config: MonitorConfig, x: np.ndarray) -> dict[str, Any]:
    """The monitor alone per query and per batch, next to the model's logits at the same batch."""
    logits = model.logits(x)
    out = {}
    for b in (1, BATCH):
        starts = list(range(0, len(x) - b + 1, b))
        monitor = Monitor(config, model.num_classes, model.input_shape)
        observe = timed_us(lambda i: monitor.observe("honest", x[i : i + b], logits[i : i + b]), starts)
        model.logits(x[:b])  # warm
        infer = timed_us(lambda i: model.logits(x[i : i + b]), starts)
        out[str(b)] = {
            "monitor": stats_us(observe),
            "model_logits": stats_us(infer),
            "monitor_mean_over_model_p50": round(statistics.fmean(observe) / statistics.median(infer), 4),
            "still_watched": "honest" in monitor.keys,  # an honest stream must not have been flagged
        }
    return out


def monitor_off_copy(export: Path, tmp: Path) -> Path:
    """The same export, its manifest without monitor thresholds: served with the monitor off."""
    off = tmp / "monitor-off" / export.name
    shutil.copytree(export, off)
    manifest = Manifest.load(off)
    for entry in manifest.models:
        entry.monitor = {}
    manifest.save(off)
    return off


def in_server(folders: list[Path], x: np.ndarray, tmp: Path) -> dict[str, Any]:
    """CPU per request inside the server, no HTTP: `Service.predict` + JSON of the monitored and the
    unmonitored deployment in turn, in this process; each monitored request also watches the one
    before it (`Service.answer` runs what the app would have run after the previous response)."""
    dbs = [tmp / f"keys-in-server-{i}.db" for i in range(2)]
    keys = [KeyStore(db, create=True).add("honest") for db in dbs]
    services = [Service.load(ServeConfig(folder=folder, keys=db)) for folder, db in zip(folders, dbs)]
    times: list[list[int]] = [[], []]
    for i in range(len(x)):
        body = predict_body(x[i : i + 1])
        for j in (0, 1) if i % 2 == 0 else (1, 0):
            start = time.perf_counter_ns()
            dumps(services[j].predict(services[j].authenticate(keys[j]), body))
            times[j].append(time.perf_counter_ns() - start)
    on, off = times
    differences = [a - b for a, b in zip(on, off)]
    for service in services:
        service.store.close()
    return {
        "requests_each": len(on),
        "p50_us_monitor_off": round(statistics.median(off) / 1e3, 1),
        "p50_us_monitor_on": round(statistics.median(on) / 1e3, 1),
        "paired_difference_p50_us": round(statistics.median(differences) / 1e3, 1),
        "paired_difference_mean_us": round(statistics.fmean(differences) / 1e3, 1),
    }


def over_http(folders: list[Path], x: np.ndarray, warm: np.ndarray, tmp: Path) -> dict[str, Any]:
    """Latency as a client sees it: the monitored and the unmonitored deployment served at once, the
    same single-image queries sent to each in turn in blocks of BLOCK requests (A B B A ...). Blocks,
    not single requests, because the monitor works after each response is sent: alternated one by
    one, its work would land on the other server's next request. `warm` warms both up first (other
    images: a repeat is cheaper to watch)."""
    dbs = [tmp / "keys-on.db", tmp / "keys-off.db"]
    keys = [KeyStore(db, create=True).add("honest") for db in dbs]

    async def alternate(ports: list[int], images: np.ndarray) -> list[list[int]]:
        conns = [Connection(port) for port in ports]
        times: list[list[int]] = [[], []]
        for b, first in enumerate(range(0, len(images), BLOCK)):
            for j in (0, 1) if b % 2 == 0 else (1, 0):
                for i in range(first, min(first + BLOCK, len(images))):
                    start = time.perf_counter_ns()
                    status, reply = await conns[j].send(http_request("/predict", predict_body(images[i : i + 1]), keys[j]))
                    times[j].append(time.perf_counter_ns() - start)
                    if status != 200:
                        raise EdgeguardError(f"the overhead phase got {status}: {reply[:200]!r}")
        for conn in conns:
            conn.close()
        return times

    with Server(folders[0], dbs[0], max_batch=BATCH) as on, Server(folders[1], dbs[1], max_batch=BATCH) as off:
        run_async(alternate([on.port, off.port], warm))
        on_ns, off_ns = run_async(alternate([on.port, off.port], x))
    p50_off, p50_on = statistics.median(off_ns) / 1e3, statistics.median(on_ns) / 1e3
    return {
        "requests_each": len(on_ns),
        "block": BLOCK,
        "served_p50_us_monitor_off": round(p50_off, 1),
        "served_p50_us_monitor_on": round(p50_on, 1),
        "served_mean_us_monitor_off": round(statistics.fmean(off_ns) / 1e3, 1),
        "served_mean_us_monitor_on": round(statistics.fmean(on_ns) / 1e3, 1),
        "p50_difference_us": round(p50_on - p50_off, 1),
        "p50_difference_ratio": round((p50_on - p50_off) / p50_off, 4),
        "honest_key_flagged": KeyStore(dbs[0]).record_named("honest").flagged is not None,
    }


def render(result: dict[str, Any]) -> str:
    lines = [markdown(result["detection"])] if "detection" in result else []
    for name, v in result["ood_scores"].items():
        rule = "with the manifest's thresholds" if name == "monitor" else f"at the {OOD_QUANTILE:.0%} honest quantile"
        lines.append(f"{name}: out of distribution {rule}: honest {v['honest_worst']:.1%} (worst condition), natural patches {v['natural']:.1%}")
    if "overhead" not in result:
        return "\n".join(lines)
    over = result["overhead"]
    one, server, http = over["in_process"]["1"], over["in_server"], over["over_http"]
    return "\n".join(lines) + (
        f"\nmonitor alone per query (in process): mean {one['monitor']['mean_us']:.1f} us, p50 {one['monitor']['p50_us']:.1f}, "
        f"p99 {one['monitor']['p99_us']:.1f}; the model's logits p50 {one['model_logits']['p50_us']:.1f} us\n"
        f"inside the server (no HTTP): monitor on - off per request, median {server['paired_difference_p50_us']:.1f} us, "
        f"mean {server['paired_difference_mean_us']:.1f} us = {over['cpu_mean_over_served_p50']:.1%} of the served p50\n"
        f"served p50 over HTTP: monitor off {http['served_p50_us_monitor_off']:.0f} us, on {http['served_p50_us_monitor_on']:.0f} us: "
        f"{http['p50_difference_us']:+.1f} us ({http['p50_difference_ratio']:+.1%}; bar {OVERHEAD_BAR:.0%}: {'met' if over['within_bar'] else 'NOT met'})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", type=Path, required=True, help="export folder whose manifest holds monitor thresholds")
    parser.add_argument("--seeds", default="0,1,2,3,4", help="seeds of the thief and test-split streams")
    parser.add_argument("--honest-streams", type=int, default=100, help="honest streams of 2,000 queries (>= 20)")
    parser.add_argument("--thief-queries", type=int, default=2000, help="queries of each Knockoff and pool thief")
    parser.add_argument("--jbda-queries", type=int, default=600, help="queries of each JBDA thief (its gradients cost ~50 ms each)")
    parser.add_argument("--overhead-queries", type=int, default=2000, help="honest single-image queries timed (in process and per server)")
    parser.add_argument("--scores-only", action="store_true", help="only the OOD scores' share of flagged natural patches (seconds, not minutes)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/detection.json"))
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]

    def measure() -> dict[str, Any]:
        if args.scores_only:
            model = DeployedModel.load(args.export)
            return {"what": "the share of natural patches each OOD score flags at the honest quantile", "export": str(args.export), "ood_scores": score_comparison(model, load_dataset(model.manifest.dataset), args.thief_queries)}
        detection = run_detection(str(args.export), seeds, args.honest_streams, args.thief_queries, args.jbda_queries)
        model = DeployedModel.load(args.export)
        config = MonitorConfig.from_dict(model.entry.monitor)
        x = honest_stream(model, args.overhead_queries, seed=7)
        scores = score_comparison(model, load_dataset(model.manifest.dataset), args.thief_queries)
        local = in_process(model, config, x)
        with tempfile.TemporaryDirectory() as tmp:
            folders = [args.export, monitor_off_copy(args.export, Path(tmp))]
            server = in_server(folders, x, Path(tmp))
            http = over_http(folders, x, honest_stream(model, 50, seed=8), Path(tmp))
        return {
            "what": "the serving monitor: when each stream is flagged (detection), and what watching costs (overhead)",
            "detection": detection,
            "ood_scores": scores,
            "overhead": {
                "bar": OVERHEAD_BAR,
                "in_process": local,
                "in_server": server,
                "over_http": http,
                "cpu_mean_over_served_p50": round(server["paired_difference_mean_us"] / http["served_p50_us_monitor_off"], 4),
                "within_bar": http["p50_difference_ratio"] <= OVERHEAD_BAR,
            },
        }

    return run_script(args, measure, render)


if __name__ == "__main__":
    sys.exit(main())
