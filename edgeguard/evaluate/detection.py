"""Does the serving monitor flag thieves before they have a copy, and leave honest users alone?

Every stream is replayed in process through a fresh `Monitor` set up from the export's manifest, as
`edgeguard serve` sets it up (same thresholds, same code, no HTTP); the result is the 1-based index
of the query that raised the flag, or None. Streams, all seeded:
- honest, "test": the test split in a random order; "test/<shift>": the same under a benign shift;
- honest, "honest-2000": HONEST_QUERIES queries drawn with replacement from test + pool, each left
  clean or given a random benign shift (`data.shifts.random_shifts`): a user who photographs the
  same digits again, under a slightly different camera. Calibration (`export.monitor_thresholds`, seed 0)
  fits its thresholds on the same images; these streams use seeds from HONEST_SEED on;
- thieves: "knockoff" (natural photo patches, `query_set("natural")`), "pool" (the attacker pool in
  a random order, then translated copies, `query_set("pool")`), "jbda" (`attacks.jbda`: seeds, then
  lam-steps along finite-difference gradient signs of the deployed model).
Results are data first (`run_detection` -> dict, JSON), then a markdown table (`markdown`).
"""

from __future__ import annotations

import time
from typing import Any, Iterator

import numpy as np

from edgeguard.attacks.jbda import jbda_stream
from edgeguard.attacks.sources import query_set
from edgeguard.data import Dataset, victim_data
from edgeguard.data.shifts import SHIFTS, random_shifts
from edgeguard.errors import EdgeguardError
from edgeguard.monitor import Monitor, MonitorConfig
from edgeguard.runtime import DeployedModel

HONEST_QUERIES = 2000
HONEST_SEED = 1000
DEADLINE = 500  # the bar: a thief is flagged before its 500th query
CHUNK = 512  # images per logits call
SAMPLE = 1000  # images of the test and pool splits replayed (all of digits'), as calibration's HONEST_PER_SPLIT


def replay(model: DeployedModel, config: MonitorConfig, x: np.ndarray) -> dict[str, Any]:
    """One key's stream through a fresh monitor: when (and by which signal) it was first flagged."""
    monitor = Monitor(config, model.num_classes, model.input_shape)
    logits = np.concatenate([model.logits(x[i : i + CHUNK]) for i in range(0, len(x), CHUNK)])
    flag = monitor.observe("replay", x, logits)
    if flag is None:
        return {"queries": len(x), "flagged_at": None, "signal": None, "evidence": None}
    return {"queries": len(x), "flagged_at": flag.query, "signal": flag.signal, "evidence": flag.evidence}


def streams(model: DeployedModel, data: Dataset, seeds: list[int], honest_streams: int, thief_queries: int, jbda_queries: int) -> Iterator[tuple[str, str, int, np.ndarray]]:
    """(kind, honest|thief, seed, queries) for every stream of the evaluation, one at a time (memory)."""
    test_sample = data.test.sample(SAMPLE).x
    for seed in seeds:
        rng = np.random.default_rng(seed)
        test = test_sample[rng.permutation(len(test_sample))]
        yield "test", "honest", seed, test
        for name, fn in SHIFTS.items():
            yield f"test/{name}", "honest", seed, fn(test, rng)
        yield "knockoff", "thief", seed, query_set("natural", data, thief_queries, seed)
        yield "pool", "thief", seed, query_set("pool", data, thief_queries, seed)
        if jbda_queries:
            yield "jbda", "thief", seed, jbda_stream(model.logits, data, jbda_queries, seed)
    honest = np.concatenate([test_sample, data.pool.sample(SAMPLE).x])
    for seed in range(HONEST_SEED, HONEST_SEED + honest_streams):
        rng = np.random.default_rng(seed)
        yield f"honest-{HONEST_QUERIES}", "honest", seed, random_shifts(honest[rng.integers(len(honest), size=HONEST_QUERIES)], rng)


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per stream kind: runs, flagged (ever, and before DEADLINE), median flag index, signals."""
    out = []
    for kind in dict.fromkeys(r["kind"] for r in rows):
        runs = [r for r in rows if r["kind"] == kind]
        at = [r["flagged_at"] for r in runs if r["flagged_at"] is not None]
        out.append({
            "kind": kind,
            "who": runs[0]["who"],
            "runs": len(runs),
            "queries": runs[0]["queries"],
            "flagged": len(at),
            "flagged_before_deadline": sum(1 for a in at if a < DEADLINE),
            "median_flagged_at": float(np.median(at)) if at else None,
            "signals": {s: sum(1 for r in runs if r["signal"] == s) for s in ("ood", "prada")},
        })  # fmt: skip
    return out


def run_detection(
    export: str, seeds: list[int], honest_streams: int = 20, thief_queries: int = 2000, jbda_queries: int = 600,
) -> dict[str, Any]:  # fmt: skip
    """Replay every stream through the monitor of the export's int8 ONNX model; returns the result dict."""
    model = DeployedModel.load(export)
    if not model.entry.monitor:
        raise EdgeguardError(f"'{export}' has no monitor thresholds in its manifest; re-export it with this edgeguard (edgeguard export --int8)")
    config = MonitorConfig.from_dict(model.entry.monitor)
    data = victim_data(model.manifest)
    rows = []
    for kind, who, seed, x in streams(model, data, seeds, honest_streams, thief_queries, jbda_queries):
        start = time.perf_counter()
        rows.append({"kind": kind, "who": who, "seed": seed, **replay(model, config, x), "seconds": round(time.perf_counter() - start, 3)})
    return {
        "export": model.manifest.name,
        "model_file": model.entry.file,
        "deadline": DEADLINE,
        "thresholds": config.to_dict(),
        "summary": summarize(rows),
        "streams": rows,
    }


def markdown(result: dict[str, Any]) -> str:
    """The summary as a markdown table: one row per stream kind."""
    lines = [
        f"| stream | client | runs | queries each | flagged | flagged before query {result['deadline']} | median query flagged at | by OOD / PRADA |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in result["summary"]:
        median = "-" if s["median_flagged_at"] is None else f"{s['median_flagged_at']:.0f}"
        lines.append(
            f"| {s['kind']} | {s['who']} | {s['runs']} | {s['queries']} | {s['flagged']} / {s['runs']} "
            f"| {s['flagged_before_deadline']} / {s['runs']} | {median} | {s['signals']['ood']} / {s['signals']['prada']} |"
        )
    return "\n".join(lines) + "\n"
