"""The statistics behind intervals and comparisons: calibration by simulation, textbook formulas, exact
enumeration, Holm, determinism, and per-query AP that averages to the reported mAP@K."""

from __future__ import annotations

import itertools
import math
import pickle

import numpy as np
import pytest
from scipy import stats as scipy_stats

from ssvh_bench import stats
from ssvh_bench.metrics import evaluate


def simulated(rng: np.random.Generator, n_seeds: int, n_queries: int, shift: float = 0.0,
              difficulty: np.ndarray | None = None) -> np.ndarray:
    """AP-like [seeds, queries] values: a per-query difficulty shared by every method (the pairing), a seed
    effect of std .012 (what the suite measures on synthetic data) and per-run query noise."""
    base = difficulty if difficulty is not None else rng.beta(2, 2, n_queries)
    seed_effect = rng.normal(0, 0.012, (n_seeds, 1))
    return base + shift + seed_effect + rng.normal(0, 0.1, (n_seeds, n_queries))


@pytest.mark.parametrize("n_seeds", [3, 5])
def test_identical_methods_are_declared_different_at_the_nominal_rate(n_seeds):
    rng = np.random.default_rng(1)
    repetitions = 2000
    rejected = 0
    for _ in range(repetitions):
        difficulty = rng.beta(2, 2, 300)
        a, b = simulated(rng, n_seeds, 300, difficulty=difficulty), simulated(rng, n_seeds, 300, difficulty=difficulty)
        rejected += stats.difference(a, b).p_value < 0.05
    # binomial standard error at 2000 repetitions is 0.005: 0.05 +- 4 standard errors
    assert 0.03 <= rejected / repetitions <= 0.07


def test_one_seed_randomization_test_is_calibrated_on_queries():
    rng = np.random.default_rng(2)
    repetitions = 400  # 12 queries: the test enumerates all 4,096 sign flips exactly
    rejected = sum(stats.difference(rng.normal(0.5, 0.1, (1, 12)), rng.normal(0.5, 0.1, (1, 12))).p_value < 0.05
                   for _ in range(repetitions))
    assert 0.02 <= rejected / repetitions <= 0.085  # standard error 0.011


def test_a_planted_difference_well_above_the_noise_is_found():
    rng = np.random.default_rng(3)
    difficulty = rng.beta(2, 2, 2000)
    a = simulated(rng, 3, 2000, shift=0.08, difficulty=difficulty)
    b = simulated(rng, 3, 2000, difficulty=difficulty)
    found = stats.difference(a, b)
    assert found.p_value < 0.01
    assert 0 < found.estimate.low < found.estimate.mean < found.estimate.high


def test_seed_spread_enters_the_interval():
    """A per-query test alone would resolve this difference; seeds that disagree make it unresolved."""
    rng = np.random.default_rng(4)
    difficulty = rng.beta(2, 2, 2000)
    a = difficulty + 0.016 + rng.normal(0, 0.02, (3, 1)) + rng.normal(0, 0.05, (3, 2000))
    b = difficulty + rng.normal(0, 0.02, (3, 1)) + rng.normal(0, 0.05, (3, 2000))
    assert stats.difference(a[:1], b[:1]).p_value < 0.001  # one seed: queries only
    assert stats.difference(a, b).p_value > 0.05


def test_interval_of_a_mean_is_the_textbook_t_interval():
    values = np.random.default_rng(5).gamma(2.0, 0.1, 57)
    found = stats.estimate(values)
    half = scipy_stats.t.ppf(0.975, 56) * values.std(ddof=1) / math.sqrt(57)
    assert found.mean == pytest.approx(values.mean(), abs=1e-15)
    assert found.low == pytest.approx(values.mean() - half, rel=1e-12)
    assert found.high == pytest.approx(values.mean() + half, rel=1e-12)
    assert found.n_seeds == 1 and found.covers == "queries only" and math.isnan(found.seed_std)


def test_interval_over_seeds_when_queries_do_not_vary():
    """Equal queries within a run: only the seed term is left, and it is the t interval over seed means."""
    means = np.array([0.51, 0.55, 0.49, 0.53])
    found = stats.estimate(np.repeat(means[:, None], 100, axis=1))
    half = scipy_stats.t.ppf(0.975, 3) * means.std(ddof=1) / 2
    assert found.df == pytest.approx(3)
    assert (found.low, found.high) == pytest.approx((means.mean() - half, means.mean() + half), rel=1e-12)
    assert found.covers == "seeds and queries" and found.seed_std == pytest.approx(means.std(ddof=1))


@pytest.mark.parametrize("n", [3, 5, 7])
def test_tiny_randomization_p_values_equal_exact_enumeration(n):
    rng = np.random.default_rng(n)
    a, b = rng.random(n), rng.random(n)
    d = a - b
    flips = np.array(list(itertools.product([1, -1], repeat=n)))
    exact = np.mean(np.abs((flips * d).mean(axis=1)) >= abs(d.mean()) * (1 - 1e-12))
    assert stats.randomization_p(a, b) == pytest.approx(exact, abs=1e-12)


def test_holm_matches_hand_computation():
    adjusted = stats.holm([0.01, 0.04, 0.03, 0.5])
    # sorted: .01*4 = .04, .03*3 = .09, .04*2 = .08 -> .09 (monotone), .5*1 = .5
    assert adjusted.tolist() == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert stats.holm([0.6, 0.7]).tolist() == [1.0, 1.0]


def test_seeds_needed_is_the_first_count_that_detects_the_target():
    seed_var, query_var = 0.015 ** 2, 2e-6
    needed = stats.seeds_needed(0.01, seed_var, query_var, 2000)
    assert needed is not None and needed > 3
    assert stats.detectable(seed_var, query_var, needed, 2000) <= 0.01 < stats.detectable(seed_var, query_var, needed - 1, 2000)
    assert stats.seeds_needed(0.01, seed_var, 1e-4, 2000) is None  # the query term alone is too large


def test_same_values_give_the_same_bytes():
    rng = np.random.default_rng(6)
    a, b = rng.random((1, 500)), rng.random((1, 500))
    assert pickle.dumps(stats.difference(a, b)) == pickle.dumps(stats.difference(a.copy(), b.copy()))
    a3, b3 = rng.random((3, 500)), rng.random((3, 500))
    assert pickle.dumps(stats.difference(a3, b3)) == pickle.dumps(stats.difference(a3.copy(), b3.copy()))


def test_per_query_ap_averages_to_the_reported_map():
    rng = np.random.default_rng(7)
    codes = np.where(rng.random((300, 32)) > 0.5, 1, -1).astype(np.int8)
    labels = np.eye(5, dtype=np.uint8)[rng.integers(5, size=300)]
    found = evaluate(codes, codes, labels, labels, per_query=True, block_size=37, query_is_database=True)
    for key, values in found["per_query"].items():
        assert values.shape == (300,) and values.dtype == np.float64
        assert values.mean() == pytest.approx(found[key], abs=1e-12)
    assert "per_query" not in evaluate(codes, codes, labels, labels)


def test_one_seed_t_and_randomization_tests_agree_on_many_queries():
    """Above RANDOMIZATION_MAX_QUERIES one seed's test is the paired t test; at sizes where both run they agree."""
    rng = np.random.default_rng(8)
    a = rng.beta(2, 3, 3000)
    b = np.clip(a + rng.normal(0.004, 0.1, 3000), 0, 1)
    randomization = stats.difference(a, b)
    assert randomization.test.startswith("paired randomization")
    assert stats.t_p(randomization.estimate) == pytest.approx(randomization.p_value, abs=0.01)
    many = stats.difference(np.tile(a, 2), np.tile(b, 2))
    assert many.test == "paired t (queries only)" and many.p_value == stats.t_p(many.estimate)
