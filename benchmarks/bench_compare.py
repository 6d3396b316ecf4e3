"""Cost of uncertainty at FCVID size against the cost of the evaluation itself, in one run.

    python benchmarks/bench_compare.py [--n 45600] [--methods 10] [--seeds 3] [--bits 64]

One protocol evaluation of FCVID-size codes (the database queries itself, 239 classes) is timed with its
per-query AP kept; then, for a grid of ``methods x seeds`` runs on those queries: writing and reading
``per_query.npz`` (and its size), every run's interval over queries, every setting's interval over seeds and
queries, and ``compare`` of every pair (Holm). The one-seed comparison of one pair is timed too (at FCVID size
the paired t test; the randomization test runs up to ``stats.RANDOMIZATION_MAX_QUERIES`` queries). Each cost is printed beside the evaluation time of the whole grid (one
evaluation per run), as a ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from ssvh_bench import evaluate, stats
from ssvh_bench.comparison import Contender, compare_contenders
from ssvh_bench.per_query import PerQuery, per_query_arrays, queries_fingerprint
from ssvh_bench.run_folder import RunFolder


def fcvid_like(n: int, bits: int, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Codes with some class structure (so AP varies between queries) and mostly one label per row."""
    rng = np.random.default_rng(seed)
    classes = rng.integers(n_classes, size=n)
    centres = rng.choice(np.array([-1, 1], dtype=np.int8), size=(n_classes, bits))
    flips = rng.random((n, bits)) < 0.3
    codes = np.where(flips, -centres[classes], centres[classes]).astype(np.int8)
    labels = np.zeros((n, n_classes), dtype=bool)
    labels[np.arange(n), classes] = True
    return codes, labels


def timed(action):
    started = time.perf_counter()
    value = action()
    return value, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=45_600)
    parser.add_argument("--bits", type=int, default=64)
    parser.add_argument("--methods", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()

    codes, labels = fcvid_like(args.n, args.bits, 239, 0)
    found, evaluation = timed(lambda: evaluate(codes, codes, labels, labels, query_is_database=True, per_query=True))
    n_runs = args.methods * args.seeds
    grid_evaluation = evaluation * n_runs
    print(f"one evaluation ({args.n:,} queries, {args.bits} bits, per-query AP kept): {evaluation:.2f} s; "
          f"the grid's {n_runs} evaluations: {grid_evaluation:.1f} s")

    rng = np.random.default_rng(1)
    queries = queries_fingerprint(None, labels)
    runs = {}  # (method, seed) -> per-query AP: the evaluated AP, shifted per method and seed, kept in [0, 1]
    for method in range(args.methods):
        for seed in range(args.seeds):
            shift = 0.005 * method + rng.normal(0, 0.01)
            runs[method, seed] = {k: np.clip(v + shift, 0, 1) for k, v in found["per_query"].items()}

    def store_and_read() -> int:
        with tempfile.TemporaryDirectory() as folder:
            total = 0
            for index, values in enumerate(runs.values()):
                run = RunFolder(Path(folder) / str(index))
                run.path.mkdir()
                run.save_per_query(per_query_arrays(values, "checksum", queries))
                total += run.per_query.stat().st_size
                run.read_per_query()
            return total

    size, storage = timed(store_and_read)
    print(f"per_query.npz: {size / n_runs / 1e6:.2f} MB per run ({len(found['per_query'])} K values); writing and "
          f"reading all {n_runs}: {storage:.2f} s = {storage / grid_evaluation:.2%} of the grid's evaluation")

    _, run_intervals = timed(lambda: [stats.estimate(v) for values in runs.values() for v in values.values()])
    print(f"interval over queries of every run and K: {run_intervals:.3f} s = {run_intervals / grid_evaluation:.3%}")

    contenders = [Contender(f"m{m}", "", f"m{m}", {s: PerQuery(runs[m, s], queries) for s in range(args.seeds)})
                  for m in range(args.methods)]
    ks = [int(key.partition("@")[2]) for key in found["per_query"]]
    _, setting_intervals = timed(lambda: [stats.estimate(c.matrix(k)) for c in contenders for k in ks])
    print(f"interval over seeds and queries of every setting and K: {setting_intervals:.3f} s = "
          f"{setting_intervals / grid_evaluation:.3%}")

    result, comparing = timed(lambda: compare_contenders(contenders, 5, dataset="fcvid-like", bits=args.bits))
    print(f"compare, {len(result.pairs)} pairs at mAP@5 over {args.seeds} seeds: {comparing:.3f} s = "
          f"{comparing / grid_evaluation:.3%}")

    one_seed = [c.matrix(5, [0]) for c in contenders[:2]]
    single, randomization = timed(lambda: stats.difference(*one_seed))
    pairs = len(result.pairs)
    print(f"one seed: {single.test} of one pair: {randomization:.3f} s; {pairs} pairs take "
          f"about {randomization * pairs:.0f} s = {randomization * pairs / (evaluation * args.methods):.1%} of the "
          f"{args.methods} one-seed evaluations")


if __name__ == "__main__":
    main()
