"""PRADA (Juuti, Szyller, Marchal, Asokan, IEEE EuroS&P 2019, arXiv 1805.02628) for one API key, bounded.

Why it works: an honest client's queries are natural images, and the distance from each new one to
its nearest earlier query of the same predicted class is roughly normally distributed. A synthetic
thief (JBDA: x + lam * sign(gradient)) sends many queries a small fixed step from an earlier one,
which puts a spike into that distribution; the Shapiro-Wilk W of the distances drops below a
threshold delta calibrated on honest data (`edgeguard.export.monitor_thresholds`).

Algorithm 1 of the paper, per key: for a query x predicted class c, with G_c the class's growing set,
    d = min over y in G_c of ||x - y||_2, appended to the key's distances D;
    if d > T_c: add x to G_c and raise T_c to max(T_c, mean - std of the distances that added to G_c);
    once |D| is large enough: W of D without its outliers (beyond 3 std of the mean) < delta flags.
As in the authors' reference code (Aalto Secure Systems Group, `GrowingDistanceAgent`), the first
sample of G_c counts as a distance 0 in T_c's statistics and W is checked every 10 queries. The 0
keeps T_c low while G_c is young, so most of a thief's seed images join G_c and its later small
steps are measured against them; without it our JBDA streams stayed at W ~0.94, within reach of
honest streams (measured, docs/detection.md).
Changes made so memory stays O(window) per key, and honest retries do not look like an attack:
- G_c keeps at most `per_class` samples, the oldest replaced first, and D the last `window` distances;
- a repeated query (distance < DUPLICATE) records nothing: it teaches a thief nothing new;
- W is evaluated every CHECK_EVERY new distances (sorting 2,000 values costs more than the rest);
- queries are compared as `Downsample` copies: at most `side` x `side` pixels per channel (32 by
  default, MonitorConfig.prada_side), by area averaging. A 224x224x3 query is 150,528 floats, so 64
  of them per class of a 1,000-class model would be 38 GB per key; at 32x32 it is 0.8 GB, at 10
  classes 8 MB. Smaller inputs (digits' 28x28) are compared as they are: nothing changes for them.
  What it changes on larger ones: docs/detection.md.
"""

from __future__ import annotations

import math

import numpy as np

from edgeguard.monitor.shapiro import shapiro_w

DUPLICATE = 0.01  # L2 distance in [0, 1] pixel units below which a query repeats an earlier one
EXACT_BELOW = 1.0  # distances below this are recomputed directly (see GrowingSet.min_distance)
CHECK_EVERY = 10
OUTLIER_STDS = 3.0


PRADA_SIDE = 32  # the default largest side of a compared copy (MonitorConfig.prada_side)


def area_weights(size: int, out: int) -> np.ndarray:
    """(out, size) matrix averaging each output pixel's share of the input (area interpolation, like
    OpenCV's INTER_AREA): each row sums to 1 and covers size / out input pixels, fractions at the edges."""
    edges = np.arange(out + 1) * size / out
    lo, hi = edges[:-1, None], edges[1:, None]
    pixels = np.arange(size)[None]
    overlap = np.clip(np.minimum(hi, pixels + 1) - np.maximum(lo, pixels), 0.0, None)
    return (overlap / overlap.sum(axis=1, keepdims=True)).astype(np.float32)


class Downsample:
    """(n, C, H, W) queries -> (n, dim) flattened copies with sides at most `side` (area averaged);
    inputs already that small pass through unchanged."""

    def __init__(self, input_shape: tuple[int, ...], side: int = PRADA_SIDE):
        c, h, w = input_shape
        self.rows = area_weights(h, side) if h > side else None
        self.cols = area_weights(w, side) if w > side else None
        self.dim = c * (side if h > side else h) * (side if w > side else w)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        if self.rows is not None:
            x = np.einsum("oh,nchw->ncow", self.rows, x)
        if self.cols is not None:
            x = np.einsum("pw,nchw->nchp", self.cols, x)
        return np.ascontiguousarray(x, np.float32).reshape(len(x), self.dim)


class GrowingSet:
    """One class's G_c: at most `cap` flattened queries, grown by doubling, then a ring (oldest out).

    Distances come from one matrix-vector product, ||x - g||^2 = ||g||^2 - 2 g.x + ||x||^2, with the
    rows stored as -2g and views kept of the filled part: every numpy call saved is ~1-2 us a query.
    """

    def __init__(self, dim: int, cap: int):
        self.rows = np.empty((min(8, cap), dim), np.float32)  # -2g for each sample g
        self.norms = np.empty(len(self.rows), np.float32)  # ||g||^2
        self.size = 0
        self.added = 0  # ever added; the ring position once full
        self.cap = cap
        self._view()

    def _view(self) -> None:
        self.filled_rows, self.filled_norms = self.rows[: self.size], self.norms[: self.size]

    def min_distance(self, x: np.ndarray, x_norm: float) -> float:
        d2 = self.filled_norms + self.filled_rows @ x
        i = int(d2.argmin())
        d = math.sqrt(max(float(d2[i]) + x_norm, 0.0))
        if d < EXACT_BELOW:  # the expansion cancels in float32 (an exact repeat came out at 0.008): recompute
            d = float(np.linalg.norm(self.filled_rows[i] * -0.5 - x))
        return d

    def add(self, x: np.ndarray, x_norm: float) -> None:
        if self.size == len(self.rows) and self.size < self.cap:
            grown = min(2 * self.size, self.cap)
            self.rows = np.concatenate([self.rows, np.empty((grown - self.size, self.rows.shape[1]), np.float32)])
            self.norms = np.concatenate([self.norms, np.empty(grown - self.size, np.float32)])
        i = self.added % self.cap if self.size == self.cap else self.size
        np.multiply(x, -2.0, out=self.rows[i])
        self.norms[i] = x_norm
        self.size = min(self.size + 1, self.cap)
        self.added += 1
        self._view()


class Prada:
    """One key's PRADA state; `observe` returns W whenever it is evaluated, else None."""

    def __init__(self, classes: int, dim: int, per_class: int, window: int, min_distances: int):
        self.dim, self.per_class, self.min_distances = dim, per_class, min_distances
        self.sets: dict[int, GrowingSet] = {}  # created on a class's first query: few keys use every class
        # per class: count, sum and sum of squares of G_c's distances, and T_c; Python floats, as
        # per-query arithmetic on numpy scalars cost more than the distances themselves
        self.stats = [[0.0, 0.0, 0.0] for _ in range(classes)]
        self.thresholds = [0.0] * classes
        self.distances = np.empty(window)  # ring of the most recent minimum distances
        self.recorded = 0

    def observe(self, x: np.ndarray, c: int) -> float | None:
        """x: one query flattened to (dim,) float32; c: the class the model predicted for it."""
        x_norm = float(x @ x)
        g = self.sets.get(c)
        if g is None:
            g = self.sets[c] = GrowingSet(self.dim, self.per_class)
            g.add(x, x_norm)
            self.stats[c] = [1.0, 0.0, 0.0]  # its distance: 0
            return None
        d = g.min_distance(x, x_norm)
        if d < DUPLICATE:
            return None
        self.distances[self.recorded % len(self.distances)] = d
        self.recorded += 1
        if d > self.thresholds[c]:
            g.add(x, x_norm)
            stats = self.stats[c]
            stats[0] += 1.0
            stats[1] += d
            stats[2] += d * d
            mean = stats[1] / stats[0]
            self.thresholds[c] = max(self.thresholds[c], mean - math.sqrt(max(stats[2] / stats[0] - mean * mean, 0.0)))
        if self.recorded < self.min_distances or self.recorded % CHECK_EVERY:
            return None
        return self.w()

    def w(self) -> float:
        """Shapiro-Wilk W of the recent distances, outliers (beyond 3 std of the mean) left out."""
        d = self.distances[: min(self.recorded, len(self.distances))]
        kept = d[np.abs(d - d.mean()) <= OUTLIER_STDS * d.std()]
        return shapiro_w(kept)
