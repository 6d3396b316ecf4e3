"""Uncertainty of mAP@K and tests between methods, from per-query AP over seeds (docs: statistics.md).

Every estimate starts from a matrix ``X[seed, query]`` (AP@K of one setting, or the difference of two settings
on the same queries with matched seeds). Its mean is the reported number; its variance has two sources, the
training seed and the sample of queries, estimated as in a crossed two-factor design:

    var(mean) = var_s(seed means) / n_seeds + var_q(query means over seeds) / n_queries

and the 95% interval is ``mean ± t * sqrt(var)`` with Welch-Satterthwaite degrees of freedom (the seed term,
with n_seeds - 1 degrees of freedom, dominates when seeds vary; with one seed only the query term is left, the
interval covers queries only and says so). A test of a difference is the matching t test. With one seed per
setting and at most ``RANDOMIZATION_MAX_QUERIES`` queries (ActivityNet's and YFCC's 1,000) the test is the
paired randomization (sign-flip) test on per-query differences of Smucker, Allan and Carterette (CIKM 2007),
``scipy.stats.permutation_test`` with a fixed seed, exact for tiny inputs; above that (FCVID's 45,600) it would
take minutes per pair, and the paired t test it agrees with at such sizes (Smucker et al. found the two agree
closely) is used. P-values of several pairs are Holm-corrected. Everything is deterministic: the same runs give the same bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

CONFIDENCE = 0.95
ALPHA = 0.05
POWER = 0.8  # "seeds needed" and "smallest resolvable difference": found with this probability
PERMUTATIONS = 9_999
PERMUTATION_SEED = 0
PERMUTATION_BATCH_VALUES = 1 << 23  # sign flips x queries held at once: bounded memory
RANDOMIZATION_MAX_QUERIES = 5_000  # one seed, more queries: the paired t test (seconds instead of minutes)
MAX_SEEDS = 1_000  # beyond this, "seeds needed" says the queries limit the resolution, not the seeds
COVERS = {True: "seeds and queries", False: "queries only"}


@dataclass(frozen=True)
class Estimate:
    """A mean with its 95% interval; ``seed_var`` and ``query_var`` are the two variance terms of the mean
    (``seed_var`` is nan with one seed), ``df`` the degrees of freedom of the interval."""

    mean: float
    low: float
    high: float
    n_seeds: int
    n_queries: int
    seed_std: float
    seed_var: float
    query_var: float
    df: float

    @property
    def covers(self) -> str:
        return COVERS[self.n_seeds > 1]

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def estimate(values: np.ndarray, confidence: float = CONFIDENCE) -> Estimate:
    """Mean of ``values`` ([seeds, queries], or [queries] for one run) with its interval over seeds and queries."""
    x = np.atleast_2d(np.asarray(values, dtype=np.float64))
    n_seeds, n_queries = x.shape
    if n_queries < 2:
        raise ValueError("an interval needs at least two queries")
    seed_means = x.mean(axis=1)
    mean = float(seed_means.mean())
    query_var = float(x.mean(axis=0).var(ddof=1)) / n_queries
    seed_var = float(seed_means.var(ddof=1)) / n_seeds if n_seeds > 1 else math.nan
    df = _satterthwaite(seed_var, n_seeds, query_var, n_queries)
    spread = scipy_stats.t.ppf(0.5 + confidence / 2, df) * math.sqrt(_total(seed_var, query_var))
    seed_std = float(seed_means.std(ddof=1)) if n_seeds > 1 else math.nan
    return Estimate(mean, mean - spread, mean + spread, n_seeds, n_queries, seed_std, seed_var, query_var, df)


@dataclass(frozen=True)
class Difference:
    """``a - b`` in mAP@K over matched seeds and the same queries, its interval and two-sided p-value."""

    estimate: Estimate
    p_value: float
    test: str  # "t (seeds and queries)", "paired randomization (queries only)" or "paired t (queries only)"


def difference(a: np.ndarray, b: np.ndarray, confidence: float = CONFIDENCE) -> Difference:
    """Compare two settings: ``a`` and ``b`` are [seeds, queries] AP@K, row i of both from the same seed."""
    a, b = np.atleast_2d(np.asarray(a, dtype=np.float64)), np.atleast_2d(np.asarray(b, dtype=np.float64))
    if a.shape != b.shape:
        raise ValueError(f"paired values need equal shapes, got {a.shape} and {b.shape}")
    diff = estimate(a - b, confidence)
    if diff.n_seeds > 1:
        return Difference(diff, t_p(diff), "t (seeds and queries)")
    if diff.n_queries <= RANDOMIZATION_MAX_QUERIES:
        return Difference(diff, randomization_p(a[0], b[0]), "paired randomization (queries only)")
    return Difference(diff, t_p(diff), "paired t (queries only)")


def t_p(diff: Estimate) -> float:
    """Two-sided p-value of ``mean == 0`` from the estimate's t statistic (1 when nothing varies and the mean
    is 0, 0 when nothing varies and it is not)."""
    se = math.sqrt(_total(diff.seed_var, diff.query_var))
    if se == 0:
        return 1.0 if diff.mean == 0 else 0.0
    return float(2 * scipy_stats.t.sf(abs(diff.mean) / se, diff.df))


def randomization_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p-value of the paired randomization test of mean(a - b) == 0 (random sign flips of each
    query's difference; exact enumeration when there are at most ``PERMUTATIONS`` flips)."""
    def mean_difference(x: np.ndarray, y: np.ndarray, axis: int) -> np.ndarray:
        return np.mean(x - y, axis=axis)

    if np.array_equal(a, b):
        return 1.0
    result = scipy_stats.permutation_test((a, b), mean_difference, permutation_type="samples", vectorized=True,
                                          n_resamples=PERMUTATIONS, alternative="two-sided",
                                          batch=max(1, PERMUTATION_BATCH_VALUES // len(a)),
                                          rng=np.random.default_rng(PERMUTATION_SEED))
    return float(result.pvalue)


def holm(p_values: list[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment (controls the family-wise error rate): the i-th smallest p-value is
    multiplied by (m - i + 1), then made non-decreasing and capped at 1."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    scaled = p[order] * (len(p) - np.arange(len(p)))
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted


def detectable(seed_var_one: float, query_var: float, n_seeds: int, n_queries: int, *, alpha: float = ALPHA,
               power: float = POWER) -> float:
    """The smallest true difference a two-sided test at ``alpha`` finds with probability ``power``, given the
    variance of one seed's mean difference (``seed_var_one``) and the query term (``query_var``, kept as
    measured): (t_{1-alpha/2} + t_{power}) * standard error, with Satterthwaite degrees of freedom."""
    seed_var = seed_var_one / n_seeds
    df = _satterthwaite(seed_var, n_seeds, query_var, n_queries)
    quantiles = scipy_stats.t.ppf(1 - alpha / 2, df) + scipy_stats.t.ppf(power, df)
    return float(quantiles * math.sqrt(_total(seed_var, query_var)))


def seeds_needed(target: float, seed_var_one: float, query_var: float, n_queries: int, **test: float) -> int | None:
    """Fewest seeds (from 2) with which a true difference of ``target`` is found (see ``detectable``); None
    when even ``MAX_SEEDS`` seeds do not suffice (then the queries, not the seeds, limit the resolution)."""
    low, high = 2, MAX_SEEDS
    if detectable(seed_var_one, query_var, high, n_queries, **test) > target:
        return None
    while low < high:  # detectable() falls as seeds grow
        middle = (low + high) // 2
        if detectable(seed_var_one, query_var, middle, n_queries, **test) <= target:
            high = middle
        else:
            low = middle + 1
    return low


def _total(seed_var: float, query_var: float) -> float:
    return query_var + (0.0 if math.isnan(seed_var) else seed_var)


def _satterthwaite(seed_var: float, n_seeds: int, query_var: float, n_queries: int) -> float:
    """Welch-Satterthwaite degrees of freedom of the sum of the two variance terms."""
    if math.isnan(seed_var) or n_seeds < 2:
        return float(n_queries - 1)
    terms = seed_var ** 2 / (n_seeds - 1) + query_var ** 2 / (n_queries - 1)
    if terms == 0:
        return float(n_queries - 1)
    return float(_total(seed_var, query_var) ** 2 / terms)
