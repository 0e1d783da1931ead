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

import numpy as np

# AS R94's polynomials in u = 1/sqrt(n), lowest power first, for the two outermost coefficients
C1 = (0.0, 0.221157, -0.147981, -2.071190, 4.434685, -2.706056)
C2 = (0.0, 0.042981, -0.293762, -1.752461, 5.682633, -3.582633)
MAX_N = 5000

# Wichura's AS 241 (PPND16, the inverse normal CDF behind statistics.NormalDist.inv_cdf): rows are
# the numerator and denominator for |p - 0.5| <= 0.425, then for the tails while
# r = sqrt(-log(min(p, 1 - p))) <= 5, which covers every p that n <= MAX_N asks for; highest power first.
AS241 = np.array([
    (2509.0809287301226727, 33430.575583588128105, 67265.770927008700853, 45921.953931549871457,
     13731.693765509461125, 1971.5909503065514427, 133.14166789178437745, 3.387132872796366608),
    (5226.495278852545925, 28729.085735721942674, 39307.89580009271061, 21213.794301586595867,
     5394.1960214247511077, 687.1870074920579083, 42.313330701600911252, 1.0),
    (7.7454501427834140764e-4, 0.0227238449892691845833, 0.24178072517745061177, 1.27045825245236838258,
     3.64784832476320460504, 5.7694972214606914055, 4.6303378461565452959, 1.42343711074968357734),
    (1.05075007164441684324e-9, 5.475938084995344946e-4, 0.0151986665636164571966, 0.14810397642748007459,
     0.68976733498510000455, 1.6763848301838038494, 2.05319162663775882187, 1.0),
])  # fmt: skip


def _poly(c: tuple[float, ...], u: float) -> float:
    return sum(ci * u**i for i, ci in enumerate(c))


def normal_quantiles(p: np.ndarray) -> np.ndarray:
    """Phi^-1(p) for p in [exp(-25), 1 - exp(-25)]: AS 241's four polynomials evaluated together, in a
    few numpy passes, where a Python loop over NormalDist().inv_cdf cost 150 us at n = 2,000."""
    q = p - 0.5
    r = 0.180625 - q * q
    t = np.sqrt(-np.log(np.minimum(p, 1.0 - p))) - 1.6
    v = np.stack([r, r, t, t])
    y = np.broadcast_to(AS241[:, :1], v.shape)
    for c in AS241.T[1:]:
        y = y * v + c[:, None]
    return np.where(np.abs(q) <= 0.425, q * y[0] / y[1], np.copysign(y[2] / y[3], q))


@lru_cache(maxsize=128)
def coefficients(n: int) -> np.ndarray:
    """The n antisymmetric weights a (for x sorted ascending; sum a = 0, sum a^2 = 1). Cached: once a
    key's window is full, its sizes vary only with the outliers left out (128 x 16 KB at most)."""
    if not 3 <= n <= MAX_N:
        raise ValueError(f"Shapiro-Wilk's coefficients are defined for 3 <= n <= {MAX_N}, got n = {n}")
    half = n // 2
    if n == 3:
        upper = np.array([math.sqrt(0.5)])
    else:
        m = -normal_quantiles((np.arange(1, half + 1) - 0.375) / (n + 0.25))  # largest first
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
