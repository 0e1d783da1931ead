"""Fit the serving monitor's thresholds on honest data, at export time, for one exported model file.

Honest data is what the victim was not trained on: the dataset's test and pool splits (a seeded
sample of HONEST_PER_SPLIT images of each, all of a smaller split), clean and under each benign
shift (`data.shifts`). Two thresholds, each from its own false-flag argument:
- OOD share: a query scores out of distribution above the OOD_QUANTILE quantile of honest energies.
  Under the honest condition with the most such queries (a camera that always translates, say),
  the count in a window of OOD_WINDOW queries is binomial with that rate; `ood_count` is the
  smallest count that, by a union bound over every window of a STREAM_QUERIES-query stream, falsely
  flags an honest stream with probability at most FALSE_FLAG_RATE. The rate is taken at its upper
  confidence bound (Wilson, z = 2), as it is measured on a few hundred images. A model trained with
  DivQAT's `signature` target is also scored by closeness to that answer (`monitor.ood`): the two
  scores then split the honest OOD budget, each its half, and the window count is fitted on the
  rate of the two together.
- PRADA: honest streams are replayed through PRADA and delta is the lowest W any of them reached,
  less PRADA_MARGIN (W's null distribution depends on the data, not on a formula, hence the
  simulation). Two kinds, ORDERS of each, because each sets the floor in its own way: the honest
  images in a random order under one condition (clean, or every image under the same shift:
  Gaussian noise gave the lowest W), and MIXED_STREAMS streams of STREAM_QUERIES queries drawn with
  replacement, each left clean or given a random benign shift.
docs/detection.md measures what these thresholds flag.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Optional

import numpy as np

from edgeguard.data import Dataset
from edgeguard.data.shifts import SHIFTS, random_shifts, shifted
from edgeguard.monitor import MonitorConfig, energy
from edgeguard.monitor.ood import out_of_distribution, signature_distance
from edgeguard.monitor.prada import PRADA_SIDE, Downsample, Prada
from edgeguard.runtime import DeployedModel

OOD_QUANTILE = 0.98
OOD_WINDOW = 200
FALSE_FLAG_RATE = 0.01  # per honest stream of STREAM_QUERIES queries, for the OOD share's bound
ORDERS = 2
MIXED_STREAMS = 5
STREAM_QUERIES = 2000
PRADA_MARGIN = 0.03
PRADA_WINDOW = 2000
PRADA_MIN_DISTANCES = 300  # honest W at 200 distances dipped to JBDA's level; at 300 a gap of ~0.1 was left
PRADA_PER_CLASS = 64
HONEST_PER_SPLIT = 1000  # bounds calibration's memory on large image folders; digits' splits are smaller
WILSON_Z = 2.0


def binomial_tail(n: int, p: float, k: int) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    return sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1))


def wilson_upper(rate: float, n: int, z: float = WILSON_Z) -> float:
    centre = rate + z * z / (2 * n)
    spread = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n))
    return min(1.0, (centre + spread) / (1 + z * z / n))


def ood_count(rate: float, window: int, queries: int, false_flag_rate: float) -> int:
    """The smallest count of OOD queries in a window that an honest stream reaches that rarely."""
    windows = max(1, queries - window + 1)
    return next((k for k in range(1, window + 1) if windows * binomial_tail(window, rate, k) <= false_flag_rate), window)


def lowest_w(model: DeployedModel, x: np.ndarray) -> float:
    """The lowest W PRADA computes on one stream (1.0 if the stream is too short to compute any)."""
    downsample = Downsample(model.input_shape, PRADA_SIDE)
    prada = Prada(model.num_classes, downsample.dim, PRADA_PER_CLASS, PRADA_WINDOW, PRADA_MIN_DISTANCES)
    labels = model.logits(x).argmax(axis=1).tolist()
    ws = [prada.observe(row, c) for row, c in zip(downsample(x), labels)]
    return min((w for w in ws if w is not None), default=1.0)


def honest_streams(honest: np.ndarray, seed: int) -> Iterator[tuple[str, np.ndarray]]:
    """(name, queries) of every honest stream PRADA's delta is fitted on."""
    rng = np.random.default_rng(seed)
    for _ in range(ORDERS):
        order = honest[rng.permutation(len(honest))]
        yield "clean", order
        for name, fn in SHIFTS.items():
            yield name, fn(order, rng)
    for _ in range(MIXED_STREAMS):
        yield "mixed", random_shifts(honest[rng.integers(len(honest), size=STREAM_QUERIES)], rng)


def calibrate_monitor(model: DeployedModel, data: Dataset, seed: int = 0, signature_mass: Optional[float] = None) -> dict[str, Any]:
    """The monitor thresholds for `model` (the exported file, as served), as stored in its manifest entry.

    `signature_mass`: the model was trained with DivQAT's `signature` probe target of that mass
    (`TrainConfig.signature_mass`), so the monitor also scores closeness to it.
    """
    honest = np.concatenate([data.test.sample(HONEST_PER_SPLIT).x, data.pool.sample(HONEST_PER_SPLIT).x])
    shifts = shifted(honest, seed)
    conditions = {"clean": honest, **shifts}
    logits = {name: model.logits(x) for name, x in conditions.items()}
    everything = np.concatenate(list(logits.values()))
    signed = signature_mass is not None
    quantile = (1 + OOD_QUANTILE) / 2 if signed else OOD_QUANTILE  # with a signature, each score gets half the OOD share
    threshold = float(np.quantile(energy(everything), quantile))
    near = (signature_mass, float(np.quantile(signature_distance(everything, signature_mass), 1 - quantile))) if signed else None
    rates = {name: float(out_of_distribution(z, threshold, near).mean()) for name, z in logits.items()}
    bound = wilson_upper(max(rates.values()), len(honest))

    lowest = [(name, len(x), lowest_w(model, x)) for name, x in honest_streams(honest, seed)]
    config = MonitorConfig(
        energy_threshold=threshold,
        ood_window=OOD_WINDOW,
        ood_count=ood_count(bound, OOD_WINDOW, STREAM_QUERIES, FALSE_FLAG_RATE),
        prada_delta=round(min(w for *_, w in lowest) - PRADA_MARGIN, 4),
        prada_min_distances=PRADA_MIN_DISTANCES,
        prada_window=PRADA_WINDOW,
        prada_per_class=PRADA_PER_CLASS,
        prada_side=PRADA_SIDE,
        signature=near,
        calibration={
            "data": f"{data.name} test + pool ({len(honest)} images), clean and {', '.join(shifts)}",
            "seed": seed,
            "ood_quantile": quantile,
            "ood_rate_by_condition": rates,
            "ood_rate_upper_bound": round(bound, 4),
            "false_flag_rate_bound": FALSE_FLAG_RATE,
            "prada_lowest_w_by_stream": [{"stream": name, "queries": n, "lowest_w": round(w, 4)} for name, n, w in lowest],
            "prada_margin": PRADA_MARGIN,
        },
    )
    return config.to_dict()
