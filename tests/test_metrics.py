from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

import ssvh_bench
from ssvh_bench import ConfigError, DataError, evaluate, pack_codes
from ssvh_bench import metrics as metrics_module

P, M = 1, -1

# Two queries over five database items, 8 bits, 3 classes. Distances = number of differing positions.
DATABASE = np.array([
    [M, M, P, P, P, P, P, P],  # db0
    [P, P, P, P, P, P, P, M],  # db1
    [P, P, P, P, P, P, M, M],  # db2
    [P, P, P, P, P, M, P, P],  # db3
    [M, M, M, P, P, P, P, P],  # db4
])
QUERIES = np.array([
    [P] * 8,                   # q0: distances db0..db4 = 2, 1, 2, 1, 3
    [M, M, M, P, P, P, P, P],  # q1 (= db4): distances = 1, 4, 5, 4, 0
])
DATABASE_LABELS = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [1, 0, 1], [0, 0, 1]])
QUERY_LABELS = np.array([[1, 0, 0], [0, 1, 1]])  # q1 is multi-label: shares class 1 or 2 with db1..db4
# q0: ranking db1, db3 (d1, index order), db0, db2 (d2), db4 -> relevance N R R R N, 3 relevant items
#     AP@1 = 0; AP@3 sum = 1/2 + 2/3 = 7/6; AP@5 sum = 1/2 + 2/3 + 3/4 = 23/12
#     other order of the tie {db1 N, db3 R}: R N R R N -> sums @1 = 1, @3 = 1 + 2/3 = 5/3, @5 = 29/12
# q1: ranking db4 (d0), db0 (d1), db1, db3 (d4), db2 (d5) -> R N R R R, 4 relevant items; its only tie
#     {db1, db3} is all relevant, so every order gives the same AP.
#     AP@1 sum = 1; AP@3 sum = 1 + 2/3 = 5/3; AP@5 sum = 1 + 2/3 + 3/4 + 4/5 = 193/60


def run(**options):
    return evaluate(QUERIES, DATABASE, QUERY_LABELS, DATABASE_LABELS, ks=(1, 3, 5), **options)


def test_golden_map_divided_by_k():
    metrics = run()
    assert metrics["map@1"] == pytest.approx((0 + 1) / 2)
    assert metrics["map@3"] == pytest.approx((7 / 6 / 3 + 5 / 3 / 3) / 2)
    assert metrics["map@5"] == pytest.approx((23 / 12 / 5 + 193 / 60 / 5) / 2)


def test_golden_map_divided_by_hits():
    metrics = run(normalizer="hits")
    # hits in the top K: q0 0, 2, 3; q1 1, 2, 4
    assert metrics["map@1"] == pytest.approx((0 + 1) / 2)
    assert metrics["map@3"] == pytest.approx((7 / 6 / 2 + 5 / 3 / 2) / 2)
    assert metrics["map@5"] == pytest.approx((23 / 12 / 3 + 193 / 60 / 4) / 2)
    assert metrics["normalizer"] == "hits"


def test_golden_tie_aware_map_averages_both_orders_of_the_tie():
    metrics = run()
    assert metrics["map_tie_aware@1"] == pytest.approx(((0 + 1) / 2 + 1) / 2)
    assert metrics["map_tie_aware@3"] == pytest.approx(((7 / 6 + 5 / 3) / 2 / 3 + 5 / 3 / 3) / 2)
    assert metrics["map_tie_aware@5"] == pytest.approx(((23 / 12 + 29 / 12) / 2 / 5 + 193 / 60 / 5) / 2)
    hits = run(normalizer="hits")
    # @1 the tie is cut: hits(1) is 0 or 1, so this also checks the expectation of the ratio
    assert hits["map_tie_aware@1"] == pytest.approx(((0 + 1) / 2 + 1) / 2)
    assert hits["map_tie_aware@3"] == pytest.approx(((7 / 6 + 5 / 3) / 2 / 2 + 5 / 3 / 2) / 2)


def test_golden_precision_and_recall_at_k():
    metrics = run()
    assert metrics["p@3"] == pytest.approx((2 / 3 + 2 / 3) / 2)
    assert metrics["r@3"] == pytest.approx((2 / 3 + 2 / 4) / 2)
    assert metrics["p@5"] == pytest.approx((3 / 5 + 4 / 5) / 2)
    assert metrics["r@5"] == pytest.approx(1.0)


def test_golden_pr_curve_over_hamming_radius():
    curve = run()["pr_curve"]
    assert curve["radius"] == list(range(9))
    # radius 0: q0 retrieves nothing (precision counted 0), q1 retrieves db4 (relevant)
    assert curve["precision"][0] == pytest.approx((0 + 1) / 2)
    assert curve["recall"][0] == pytest.approx((0 + 1 / 4) / 2)
    # radius 1: q0 retrieves db1, db3 (1 relevant of 3); q1 retrieves db4, db0 (1 relevant of 4)
    assert curve["precision"][1] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert curve["recall"][1] == pytest.approx((1 / 3 + 1 / 4) / 2)
    # radius 4: q0 retrieves all 5 (3 relevant); q1 retrieves all but db2 (3 of its 4 relevant)
    assert curve["precision"][4] == pytest.approx((3 / 5 + 3 / 4) / 2)
    assert curve["recall"][4] == pytest.approx((1 + 3 / 4) / 2)
    assert curve["precision"][8] == pytest.approx((3 / 5 + 4 / 5) / 2)
    assert curve["recall"][8] == pytest.approx(1.0)


def test_result_describes_the_evaluation():
    metrics = run(strict=True)
    assert (metrics["n_queries"], metrics["n_database"], metrics["bits"]) == (2, 5, 8)
    assert metrics["normalizer"] == "k" and metrics["strict"] is True
    assert {f"{name}@{k}" for name in ("map", "map_tie_aware", "p", "r") for k in (1, 3, 5)} < set(metrics)


# Zeros: q = all +1. db0 has one 0 (distance 0.5), db1 = q (0), db2 = one -1 and one 0 (1.5), db3 one -1 (1).
ZERO_DATABASE = np.array([
    [0, P, P, P, P, P, P, P],
    [P] * 8,
    [M, 0, P, P, P, P, P, P],
    [M, P, P, P, P, P, P, P],
])
ZERO_LABELS = np.array([[1, 0], [0, 1], [1, 0], [0, 1]])


def test_zeros_give_half_integer_distances():
    metrics = evaluate(np.array([[P] * 8]), ZERO_DATABASE, [[1, 0]], ZERO_LABELS, ks=(4,))
    # ranking db1 (0), db0 (0.5), db3 (1), db2 (1.5) -> N R N R; AP@4 = (1/2 + 2/4) / 4
    assert metrics["map@4"] == pytest.approx(1 / 4)
    # radius 1 keeps distances 0, 0.5, 1: db1, db0, db3, one relevant of three
    assert metrics["pr_curve"]["precision"][1] == pytest.approx(1 / 3)
    assert metrics["pr_curve"]["recall"][1] == pytest.approx(1 / 2)


def test_a_zero_in_both_codes_still_counts_half():
    query = np.array([[0, P, P, P, P, P, P, P]])
    metrics = evaluate(query, ZERO_DATABASE, [[1, 0]], ZERO_LABELS, ks=(4,))
    # distances 0.5 (both 0 at position 0), 0.5, 1, 0.5 -> db0, db1, db3, db2 -> R N N R; (1 + 2/4) / 4
    assert metrics["map@4"] == pytest.approx(3 / 8)


def test_strict_maps_zero_to_plus_one():
    metrics = evaluate(np.array([[P] * 8]), ZERO_DATABASE, [[1, 0]], ZERO_LABELS, ks=(4,), strict=True)
    # strict: db0 = q (0), db2 = one -1 (1) -> db0, db1 (0), db2, db3 (1) -> R N R N; (1 + 2/3) / 4
    assert metrics["map@4"] == pytest.approx(5 / 12)


def test_query_stays_in_its_own_ranking():
    a, b = [P] * 8, [M, M, P, P, P, P, P, P]
    codes = np.array([a, a, b])
    labels = np.array([[1, 0], [0, 1], [0, 1]])
    # item 0: itself (R), item 1 (N, tie at 0 after it), item 2 (N) -> AP@2 = 1 / 2
    # item 1: item 0 first (N, tie at 0 broken by index), itself (R), item 2 (R) -> AP@2 = (1/2) / 2
    # item 2: itself (R), items 0 (N), 1 (R) at distance 2 -> AP@2 = 1 / 2
    for flag in (False, True):
        metrics = evaluate(codes, codes, labels, labels, ks=(2,), query_is_database=flag)
        assert metrics["map@2"] == pytest.approx((1 / 2 + 1 / 4 + 1 / 2) / 3)


def test_a_database_smaller_than_k_still_divides_by_k():
    metrics = evaluate(QUERIES, DATABASE, QUERY_LABELS, DATABASE_LABELS, ks=(10,))
    assert metrics["map@10"] == pytest.approx((23 / 12 / 10 + 193 / 60 / 10) / 2)
    assert metrics["p@10"] == pytest.approx((3 / 10 + 4 / 10) / 2)


def test_packed_codes_give_the_same_numbers_and_evaluate_is_exported():
    packed = ssvh_bench.evaluate(pack_codes(QUERIES), pack_codes(DATABASE), QUERY_LABELS, DATABASE_LABELS,
                                 ks=(1, 3, 5))
    assert packed == run()


def dense_reference(query, database, query_labels, database_labels, ks, normalizer):
    """The straightforward computation: full distance matrix, stable argsort, cumulative hits."""
    bits = query.shape[1]
    distances = 0.5 * (bits - query.astype(float) @ database.T.astype(float))
    relevant = (query_labels.astype(float) @ database_labels.T.astype(float)) > 0
    ranked = np.take_along_axis(relevant, np.argsort(distances, axis=1, kind="stable"), axis=1)
    n_relevant = relevant.sum(axis=1)
    out = {}
    for k in ks:
        top = ranked[:, :k]
        hits = np.cumsum(top, axis=1)
        precision_sum = (top * hits / np.arange(1, top.shape[1] + 1)).sum(axis=1)
        hits_k = top.sum(axis=1)
        if normalizer == "k":
            ap = precision_sum / k
        else:
            ap = np.where(hits_k > 0, precision_sum / np.maximum(hits_k, 1), 0.0)
        out[f"map@{k}"] = ap.mean()
        out[f"p@{k}"] = (hits_k / k).mean()
        out[f"r@{k}"] = np.where(n_relevant > 0, hits_k / np.maximum(n_relevant, 1), 0.0).mean()
    precision, recall = [], []
    for radius in range(bits + 1):
        retrieved = distances <= radius
        n_retrieved = retrieved.sum(axis=1)
        relevant_retrieved = (retrieved & relevant).sum(axis=1)
        precision.append(np.where(n_retrieved > 0, relevant_retrieved / np.maximum(n_retrieved, 1), 0).mean())
        recall.append(np.where(n_relevant > 0, relevant_retrieved / np.maximum(n_relevant, 1), 0).mean())
    return out, precision, recall


def random_case(rng, zeros: bool):
    n_query, n_database, bits = rng.integers(1, 15), rng.integers(1, 40), int(rng.choice([8, 16, 72]))
    n_classes = int(rng.integers(1, 5))
    probabilities = [0.4, 0.2, 0.4] if zeros else [0.5, 0.0, 0.5]
    query = rng.choice([-1, 0, 1], size=(n_query, bits), p=probabilities)
    database = rng.choice([-1, 0, 1], size=(n_database, bits), p=probabilities)
    if rng.random() < 0.5:  # few distinct codes -> many ties
        database[:, 3:] = 1
        query[:, 3:] = 1
    query_labels = rng.random((n_query, n_classes)) < 0.4
    database_labels = rng.random((n_database, n_classes)) < 0.4
    return query, database, query_labels, database_labels


@pytest.mark.parametrize("relevance_path", ["sparse pairs", "dense mask"])
@pytest.mark.parametrize("normalizer", ["k", "hits"])
def test_matches_the_dense_reference_on_random_inputs(normalizer, relevance_path, monkeypatch):
    # the relevance switch compares the share of relevant pairs with DENSE_FROM: force each path
    monkeypatch.setattr(metrics_module._Relevance, "DENSE_FROM", 1.0 if relevance_path == "sparse pairs" else -1.0)
    rng = np.random.default_rng(7)
    ks = (1, 2, 5, 20, 50)
    for trial in range(60):
        case = random_case(rng, zeros=trial % 2 == 0)
        expected, precision, recall = dense_reference(*case, ks, normalizer)
        for block_size in (1, 3, None):
            got = evaluate(*case, ks=ks, normalizer=normalizer, block_size=block_size)
            for key, value in expected.items():
                assert got[key] == pytest.approx(value, abs=1e-12), (trial, block_size, key)
            np.testing.assert_allclose(got["pr_curve"]["precision"], precision, atol=1e-12)
            np.testing.assert_allclose(got["pr_curve"]["recall"], recall, atol=1e-12)


def tie_aware_by_enumeration(query, database, query_labels, database_labels, ks, normalizer):
    """Mean over queries of AP@K averaged over every order of every tied group (all permutations)."""
    doubled = query.shape[1] - query @ database.T
    relevant = (query_labels.astype(int) @ database_labels.T.astype(int)) > 0
    totals = {k: 0.0 for k in ks}
    for row in range(len(query)):
        groups = [np.flatnonzero(doubled[row] == value) for value in np.unique(doubled[row])]
        orders = list(itertools.product(*(itertools.permutations(group) for group in groups)))
        for order in orders:
            ranked = relevant[row, np.concatenate(order)]
            for k in ks:
                top = ranked[:k]
                hits = np.cumsum(top)
                precision_sum = (top * hits / np.arange(1, len(top) + 1)).sum()
                denominator = k if normalizer == "k" else hits[-1]
                totals[k] += (precision_sum / denominator if denominator else 0.0) / len(orders)
    return {k: total / len(query) for k, total in totals.items()}


@pytest.mark.parametrize("normalizer", ["k", "hits"])
def test_tie_aware_map_is_the_expectation_over_all_tie_orders(normalizer):
    rng = np.random.default_rng(3)
    ks = (1, 2, 3, 4, 7)
    for _ in range(25):
        n_database = int(rng.integers(2, 8))
        query = rng.choice([-1, 1], size=(2, 8))
        database = rng.choice([-1, 0, 1], size=(n_database, 8), p=[0.3, 0.4, 0.3])
        query[:, 2:] = database[:, 2:] = 1  # two free positions: at most 5 distinct distances, big ties
        query_labels, database_labels = rng.random((2, 2)) < 0.5, rng.random((n_database, 2)) < 0.5
        expected = tie_aware_by_enumeration(query, database, query_labels, database_labels, ks, normalizer)
        got = evaluate(query, database, query_labels, database_labels, ks=ks, normalizer=normalizer)
        for k in ks:
            assert got[f"map_tie_aware@{k}"] == pytest.approx(expected[k], abs=1e-12)


def test_progress_bar_does_not_change_the_numbers():
    assert run(progress=True, block_size=1) == run()


@pytest.mark.parametrize(
    ("arguments", "options", "message"),
    [
        ((QUERIES, DATABASE, QUERY_LABELS[:1], DATABASE_LABELS), {}, "query has 2 codes but 1 label rows"),
        ((QUERIES, DATABASE, QUERY_LABELS, DATABASE_LABELS[:4]), {}, "database has 5 codes but 4 label rows"),
        ((QUERIES, DATABASE[:, :7], QUERY_LABELS, DATABASE_LABELS), {},
         "query codes have 8 bits but database codes have 7"),
        ((QUERIES, DATABASE, QUERY_LABELS[:, :2], DATABASE_LABELS), {},
         "query labels have 2 classes, database labels 3"),
        ((QUERIES[:0], DATABASE, QUERY_LABELS[:0], DATABASE_LABELS), {}, "query codes are empty"),
        ((QUERIES, DATABASE[:0], QUERY_LABELS, DATABASE_LABELS[:0]), {}, "database codes are empty"),
        ((QUERIES, DATABASE, QUERY_LABELS, DATABASE_LABELS), {"ks": (5, 0)}, "every K must be at least 1, got 0"),
        ((QUERIES, DATABASE, QUERY_LABELS, DATABASE_LABELS), {"ks": ()}, "at least one cut-off"),
        ((QUERIES * 2, DATABASE, QUERY_LABELS, DATABASE_LABELS), {}, "query codes must hold only -1, 0 and +1"),
        ((QUERIES, DATABASE, QUERY_LABELS, DATABASE_LABELS), {"query_is_database": True},
         "query_is_database is set but the query codes or labels differ"),
    ],
)
def test_bad_inputs_raise_data_errors(arguments, options, message):
    with pytest.raises(DataError, match=re.escape(message)):
        evaluate(*arguments, **options)


@pytest.mark.parametrize(
    ("options", "message"),
    [({"normalizer": "relevant"}, "normalizer must be one of 'k', 'hits'"),
     ({"block_size": 0}, "block_size must be a positive integer")],
)
def test_bad_options_raise_config_errors(options, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        run(**options)


@pytest.mark.parametrize("bits, zeros, n_classes", [(8, True, 3), (64, True, 20), (256, False, 239)])
@pytest.mark.parametrize("strict, normalizer", [(False, "k"), (True, "hits")])
def test_the_torch_search_gives_exactly_the_popcount_paths_metrics(bits, zeros, n_classes, strict, normalizer):
    # ``device="cpu"`` runs the GPU path's code (matrix products, bincounts, top-k) on the CPU
    rng = np.random.default_rng(bits)
    query = rng.choice(np.array([-1, 1], dtype=np.int8), size=(37, bits))
    database = rng.choice(np.array([-1, 1], dtype=np.int8), size=(150, bits))
    if zeros:
        query[rng.random(query.shape) < 0.1] = 0
        database[rng.random(database.shape) < 0.1] = 0
    database[:20] = database[20:40]  # ties broken by index
    query_labels = (rng.random((37, n_classes)) < 0.2).astype(np.uint8)
    database_labels = (rng.random((150, n_classes)) < 0.2).astype(np.uint8)
    options = dict(ks=(1, 5, 20, 200), strict=strict, normalizer=normalizer, block_size=16)
    on_cpu = evaluate(query, database, query_labels, database_labels, **options)
    assert evaluate(query, database, query_labels, database_labels, device="cpu", **options) == on_cpu
    assert evaluate(pack_codes(query), pack_codes(database), query_labels, database_labels, device="cpu",
                    **options) == on_cpu


def test_the_torch_search_reproduces_the_hand_computed_example():
    assert run(device="cpu") == run()
    assert run(device="cpu")["map@3"] == pytest.approx((7 / 6 + 5 / 3) / 2 / 3)
