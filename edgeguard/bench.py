"""On-device benchmarks of an export folder: latency, throughput, size, start-up (numpy + onnxruntime).

Every model file of the folder (int8 and fp32) is timed in the same run, at each batch size and
thread count, so the headline numbers are ratios measured side by side (int8 / fp32), not absolute
times from different moments of a busy machine. `machine()` records what the run ran on.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeguard.runtime import DeployedModel


def machine() -> dict[str, Any]:
    import onnxruntime

    cpu = platform.processor()
    try:  # platform.processor() is often empty on Linux; cpuinfo names the CPU
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": cpu,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": onnxruntime.__version__,
        # other work on the machine inflates and spreads the timings: record how busy it was
        "load_average_1_5_15_min": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }


def percentiles_ms(samples_ns: list[int]) -> dict[str, float]:
    q = np.percentile(np.asarray(samples_ns, np.float64) / 1e6, [50, 90, 99])
    return {"p50_ms": round(float(q[0]), 4), "p90_ms": round(float(q[1]), 4), "p99_ms": round(float(q[2]), 4)}


def time_calls(fn, runs: int, warmup: int) -> list[int]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - start)
    return samples


def bench_export(
    folder: str | Path, batches: tuple[int, ...] = (1, 8, 64), threads: tuple[int, ...] = (1, 0), runs: int = 200, warmup: int = 20,
) -> dict[str, Any]:  # fmt: skip
    """Time every ONNX model file of an export folder. threads 0 means all cores."""
    from edgeguard.manifest import Manifest

    manifest = Manifest.load(folder)
    rng = np.random.default_rng(0)
    rows = []
    for entry in manifest.models:
        if entry.format != "onnx":
            continue
        starts = [time_calls(lambda: DeployedModel.load(folder, entry.precision, entry.format), 1, 0)[0] for _ in range(5)]
        for n_threads in threads:
            model = DeployedModel.load(folder, entry.precision, entry.format, threads=n_threads or (os.cpu_count() or 1))
            for batch in batches:
                x = rng.random((batch, *model.input_shape), dtype=np.float32)
                samples = time_calls(lambda: model.logits(x), max(10, runs // batch), warmup)
                p = percentiles_ms(samples)
                rows.append({
                    "file": entry.file, "precision": entry.precision, "size_bytes": entry.size_bytes,
                    "threads": n_threads or os.cpu_count(), "batch": batch, **p,
                    "items_per_s": round(batch / (p["p50_ms"] / 1e3), 1),
                    "startup_ms_median": round(float(np.median(starts)) / 1e6, 2),
                })  # fmt: skip
    return {"export": manifest.name, "machine": machine(), "rows": rows, "ratios": int8_over_fp32(rows)}


def int8_over_fp32(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """int8 / fp32 for latency and size at each (threads, batch): the numbers to read first."""
    by = {(r["precision"], r["threads"], r["batch"]): r for r in rows}
    out = []
    for (precision, n_threads, batch), r in sorted(by.items()):
        f = by.get(("fp32", n_threads, batch))
        if precision == "int8" and f:
            out.append({"threads": n_threads, "batch": batch, "latency_p50": round(r["p50_ms"] / f["p50_ms"], 3), "size": round(r["size_bytes"] / f["size_bytes"], 3)})
    return out


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"### {result['export']} on {m['processor']} ({m['cpu_count']} CPUs, {m['machine']}), onnxruntime {m['onnxruntime']}",
        "",
        "| file | threads | batch | p50 ms | p90 ms | p99 ms | items/s | size KB | start-up ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['file']} | {r['threads']} | {r['batch']} | {r['p50_ms']:.3f} | {r['p90_ms']:.3f} | {r['p99_ms']:.3f} "
            f"| {r['items_per_s']:.0f} | {r['size_bytes'] / 1024:.1f} | {r['startup_ms_median']:.1f} |"
        )
    lines += ["", "| threads | batch | int8/fp32 latency (p50) | int8/fp32 size |", "|---|---|---|---|"]
    for r in result["ratios"]:
        lines.append(f"| {r['threads']} | {r['batch']} | {r['latency_p50']:.2f}x | {r['size']:.2f}x |")
    return "\n".join(lines) + "\n"
