"""The Shapiro-Wilk W statistic in numpy (no scipy on the device), with Royston's coefficients.

PRADA needs only W: it compares W of a key's query distances against a calibrated threshold, so
the p-value (and its normalising transform) is left out. The coefficients are Royston's
approximation (Royston 1992, Statistics and Computing 2:117; algorithm AS R94, 1995), the one
scipy.stats.shapiro computes, valid for 3 <= n <= 5000:
    m_i = Phi^-1((i - 3/8) / (n + 1/4)),  a_i = m_i / sqrt(m'm) for the inner i,
    a_n, a_(n-1) = polynomials in 1/sqrt(n) corrected by m_n / sqrt(m'm) (AS R94's c1, c2),
and W = (a'x_(sorted))^2 / sum (x - mean)^2. tests/serve/test_monitor.py checks it against scipy.
"""

from __future__ import annotations

import math
from functools import lru_cache
from statistics import NormalDist

import numpy as np

# AS R94's polynomials in u = 1/sqrt(n), lowest power first, for the two outermost coefficients
C1 = (0.0, 0.221157, -0.147981, -2.071190, 4.434685, -2.706056)
C2 = (0.0, 0.042981, -0.293762, -1.752461, 5.682633, -3.582633)
MAX_N = 5000


def _poly(c: tuple[float, ...], u: float) -> float:
    return sum(ci * u**i for i, ci in enumerate(c))


@lru_cache(maxsize=32)
def coefficients(n: int) -> np.ndarray:
    """The n antisymmetric weights a (for x sorted ascending; sum a = 0, sum a^2 = 1). Cached: a
    monitor evaluates the same few window sizes over and over."""
    if not 3 <= n <= MAX_N:
        raise ValueError(f"Shapiro-Wilk's coefficients are defined for 3 <= n <= {MAX_N}, got n = {n}")
    half = n // 2
    if n == 3:
        upper = np.array([math.sqrt(0.5)])
    else:
        inv = NormalDist().inv_cdf  # AS 241 (Wichura), double precision, in the standard library
        m = np.array([-inv((i - 0.375) / (n + 0.25)) for i in range(1, half + 1)])  # largest first
        summ2 = 2.0 * float(m @ m)
        u = 1.0 / math.sqrt(n)
        a1 = _poly(C1, u) + m[0] / math.sqrt(summ2)
        if n > 5:
            a2 = _poly(C2, u) + m[1] / math.sqrt(summ2)
            fac = math.sqrt((summ2 - 2 * m[0] ** 2 - 2 * m[1] ** 2) / (1 - 2 * a1**2 - 2 * a2**2))
            upper = m / fac
            upper[:2] = a1, a2
        else:
            fac = math.sqrt((summ2 - 2 * m[0] ** 2) / (1 - 2 * a1**2))
            upper = m / fac
            upper[0] = a1
    a = np.zeros(n)
    a[:half] = -upper
    a[n - half :] = upper[::-1]
    a.flags.writeable = False  # shared through the cache
    return a


def shapiro_w(x: np.ndarray) -> float:
    """W in (0, 1] for a 1-d sample of 3..5000 values; near 1 for normal data.

    A sample with all values equal has no defined W; it returns 1.0, as scipy does.
    """
    x = np.sort(np.asarray(x, dtype=np.float64).ravel())
    centred = x - x.mean()
    ss = float(centred @ centred)
    a = coefficients(len(x))
    if ss <= 0.0:
        return 1.0
    return min(1.0, float(a @ centred) ** 2 / ss)
