"""Timing at the bottom of edgeguard.bench: calls timed in turn, medians and percentiles, what ran them.

Everything above it (model benchmarks, memory, parity, the serving load test, export's latency
check) times with these functions, so that every figure edgeguard reports is measured one way.
numpy and the standard library only.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

SLICES = 10  # each contender's calls are split into this many slices, interleaved with the others'
OPTIONAL = ("torch", "ai-edge-litert", "tflite-runtime")  # versions recorded when installed
CPUINFO = Path("/proc/cpuinfo")


def installed_versions(names: Iterable[str]) -> dict[str, str]:
    """The version of each of these distributions that is installed, read from its metadata: never
    imported (importing torch here would defeat the device side)."""
    found = {}
    for name in names:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found


def cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    try:
        text = CPUINFO.read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() and fields:
            break
        if ":" in line:
            key, value = line.split(":", 1)
            fields.setdefault(key.strip(), value.strip())
    return fields


def machine() -> dict[str, Any]:
    import onnxruntime

    info = cpuinfo()  # platform.processor() is often empty on Linux; cpuinfo names the CPU and its instruction sets
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": info.get("model name", platform.processor()),
        "cpu_features": info.get("flags", info.get("Features")),  # x86 / aarch64: says whether int8 dot products (VNNI, asimddp) exist
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": onnxruntime.__version__,
        **installed_versions(OPTIONAL),
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


def median_us(fn: Callable[[], Any], reps: int, warmup: int) -> float:
    return statistics.median(time_calls(fn, reps, warmup)) / 1e3


def interleaved(fns: dict[str, Callable[[], Any]], runs: int, warmup: int) -> dict[str, list[int]]:
    """`runs` timed calls of each function, in SLICES rounds that take turns between them."""
    samples: dict[str, list[int]] = {name: [] for name in fns}
    for i in range(SLICES):
        for name, fn in fns.items():
            samples[name] += time_calls(fn, runs // SLICES + (i < runs % SLICES), warmup if i == 0 else 0)
    return samples
