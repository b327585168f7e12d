"""Summaries of timed runs: %%timeit-style spread, robust trend lines, non-negative polynomial fits, wording.

Pure functions on numpy arrays: nothing here runs a model.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

BUSY_SPREAD = 0.25  # repeats of one length differing by more than this share of their median: too noisy to trust


def format_seconds(seconds: float) -> str:
    """Human units like %%timeit.

    >>> format_seconds(21.9), format_seconds(0.00666), format_seconds(2e-5)
    ('21.9 s', '6.66 ms', '20 µs')
    """
    if seconds >= 100:
        return f"{seconds:.0f} s"
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


def speed_phrase(ratio: float) -> str:
    """'2.10× faster' or '1.43× slower' for a ratio of times without / with the cache.

    A ratio under 1 means the cache lost (on a busy machine, or for very short runs): say so, never '0.70× faster'.

    >>> speed_phrase(2.1), speed_phrase(0.7)
    ('2.10× faster', '1.43× slower')
    """
    if not np.isfinite(ratio) or ratio <= 0:
        return "not comparable"
    return f"{ratio:.2f}× faster" if ratio >= 1 else f"{1 / ratio:.2f}× slower"


@dataclass(frozen=True)
class TimingStats:
    """Spread of total times over repeats (the %%timeit summary, plus the median)."""

    median_s: float
    mean_s: float
    std_s: float  # population std. dev. (0 for one run)
    min_s: float
    max_s: float
    n_runs: int

    @classmethod
    def of(cls, values_s: np.ndarray) -> TimingStats:
        v = np.asarray(values_s, dtype=np.float64)
        return cls(float(np.median(v)), float(v.mean()), float(v.std()), float(v.min()), float(v.max()), v.size)

    @property
    def relative_spread(self) -> float:
        """(slowest - fastest) / median: 0.1 means the repeats agree within 10% of a typical run."""
        return (self.max_s - self.min_s) / self.median_s if self.median_s > 0 else 0.0

    def timeit_text(self) -> str:
        """E.g. '6.66 s ± 2.22 s per run (mean ± std. dev. of 7 runs); median 6.10 s'."""
        runs = "run" if self.n_runs == 1 else "runs"
        return (f"{format_seconds(self.mean_s)} ± {format_seconds(self.std_s)} per run (mean ± std. dev. of "
                f"{self.n_runs} {runs}); median {format_seconds(self.median_s)}")


def theil_sen_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(intercept, slope): slope = median of pairwise slopes, intercept = median of y - slope·x.

    >>> theil_sen_fit(np.arange(5), np.array([1.0, 3.0, 5.0, 100.0, 9.0]))  # one spike does not move it
    (1.0, 2.0)
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size < 2:
        return (float(y[0]) if y.size else 0.0), 0.0
    i, j = np.triu_indices(x.size, k=1)
    slope = float(np.median((y[j] - y[i]) / (x[j] - x[i])))
    return float(np.median(y - slope * x)), slope


@dataclass(frozen=True)
class PolyFit:
    """total_s ≈ c0 + c1·N (+ c2·N²), least squares with every coefficient ≥ 0.

    Non-negative coefficients make the curve start at or above 0 and never fall as N grows, as a total time
    must: a plain least-squares quadratic through noisy points can dip below 0 s between or before them.
    """

    degree: int
    coefficients: tuple[float, ...]  # (c0, c1[, c2]), lowest power first, each >= 0
    r_squared: float

    def __call__(self, n: np.ndarray | float) -> np.ndarray:
        return np.polynomial.polynomial.polyval(np.asarray(n, dtype=np.float64), self.coefficients)

    @property
    def equation(self) -> str:
        """E.g. 't ≈ 0.012 s + 4.1 ms·N + 0.052 ms·N²' (N = new tokens)."""
        c = self.coefficients
        terms = [f"{c[0]:.3g} s", f"{c[1] * 1e3:.3g} ms·N"] + ([f"{c[2] * 1e3:.3g} ms·N²"] if len(c) > 2 else [])
        return "t ≈ " + " + ".join(terms)


def fit_polynomial(n_values: np.ndarray, totals_s: np.ndarray, degree: int) -> PolyFit:
    """Non-negative least-squares fit of total time against N (degree 1: linear, 2: quadratic).

    With at most three coefficients the exact non-negative solution is found by trying every subset of
    coefficients allowed to be non-zero and keeping the best fit whose coefficients are all ≥ 0.

    >>> [round(c, 6) for c in fit_polynomial(np.array([1, 2, 3]), np.array([3.0, 5.0, 7.0]), 1).coefficients]
    [1.0, 2.0]
    >>> fit_polynomial(np.array([1, 2, 3]), np.array([0.5, 2.0, 3.5]), 1).coefficients[0]  # plain least squares: -1 s
    0.0
    """
    x = np.asarray(n_values, dtype=np.float64)
    y = np.asarray(totals_s, dtype=np.float64)
    if np.unique(x).size <= degree:
        raise ValueError(f"A degree-{degree} fit needs at least {degree + 1} different N values.")
    design = np.vander(x, degree + 1, increasing=True)  # [point, power]: 1, N, N²
    best, best_error = np.zeros(degree + 1), float((y**2).sum())  # all zero: the worst allowed fit
    for size in range(1, degree + 2):
        for support in itertools.combinations(range(degree + 1), size):
            solution, *_ = np.linalg.lstsq(design[:, support], y, rcond=None)
            if np.any(solution < 0):
                continue
            coefficients = np.zeros(degree + 1)
            coefficients[list(support)] = solution
            error = float(((y - design @ coefficients) ** 2).sum())
            if error < best_error:
                best, best_error = coefficients, error
    spread = float(((y - y.mean()) ** 2).sum())
    r_squared = 1.0 - best_error / spread if spread > 0 else 1.0
    return PolyFit(degree, tuple(float(c) for c in best), r_squared)
