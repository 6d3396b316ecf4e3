"""``ssvh-bench compare`` and ``ssvh_bench.compare``: verdicts on planted differences, determinism, per-query AP
kept by runs and rebuilt for older folders, and bad input as one line with exit status 2."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from conftest import TINY, invoke
from runs_on_disk import write_run

import ssvh_bench
from ssvh_bench import RunFolder
from ssvh_bench.leaderboard import per_query_of
from ssvh_bench.per_query import per_query_arrays

N_QUERIES = 400


def planted_run(root, method: str, seed: int, level: float, *, queries: str = "same", spread: float = 0.01):
    """A finished run whose per-query AP@5 is ``level`` plus a seed effect and query noise around a shared
    per-query difficulty (so runs pair query by query)."""
    folder = write_run(root, method, seed, level, bits=64)
    rng = np.random.default_rng(1000 * seed + sum(map(ord, method)))
    difficulty = np.random.default_rng(0).beta(2, 2, N_QUERIES) - 0.5
    values = level + difficulty + rng.normal(0, spread) + rng.normal(0, 0.05, N_QUERIES)
    metrics = RunFolder(folder).read_metrics()
    RunFolder(folder).save_per_query(per_query_arrays({"map@5": values, "map@20": values / 2},
                                                      metrics["codes_sha256"], queries))
    return folder


@pytest.fixture
def planted(tmp_path):
    for seed in (0, 1, 2):
        planted_run(tmp_path, "itq", seed, 0.60)
        planted_run(tmp_path, "sh", seed, 0.60)  # as good as ITQ: never resolved
        planted_run(tmp_path, "lsh", seed, 0.45)  # far below both
    return tmp_path


def test_api_resolves_the_planted_difference_only(planted):
    result = ssvh_bench.compare("synthetic", 64, k=5, results_dir=planted)
    verdicts = {(p.better, p.worse): p.resolved for p in result.pairs}
    assert len(verdicts) == 3
    assert {pair: resolved for pair, resolved in verdicts.items() if "LSH" in pair} == {
        pair: True for pair in verdicts if "LSH" in pair}
    assert not next(resolved for pair, resolved in verdicts.items() if "LSH" not in pair)
    assert list(result.estimates)[-1] == "LSH" and result.n_seeds == 3
    for pair in result.pairs:  # Holm never lowers a p-value
        assert pair.p_holm >= pair.difference.p_value
    assert result.seeds_for_target is not None and result.seeds_for_target > 3


def test_cli_prints_intervals_and_verdicts(planted):
    result = invoke("compare", "-d", "synthetic", "-b", 64, "-m", "itq,lsh,sh", "-k", 5, "--results-dir", planted)
    assert result.exit_code == 0, result.output
    assert "2 of 3 pair(s) resolved" in result.output
    assert "not resolved:" in result.output and "seeds" in result.output.splitlines()[-1]


def test_same_runs_same_bytes(planted):
    first = ssvh_bench.compare("synthetic", 64, results_dir=planted)
    second = ssvh_bench.compare("synthetic", 64, results_dir=planted)
    assert pickle.dumps(first) == pickle.dumps(second)


def test_one_seed_says_it_covers_queries_only(tmp_path):
    planted_run(tmp_path, "itq", 0, 0.6)
    planted_run(tmp_path, "lsh", 0, 0.5)
    result = invoke("compare", "-b", 64, "--results-dir", tmp_path)
    assert result.exit_code == 0, result.output
    assert "queries only" in result.output and "run at least two seeds" in result.output


@pytest.mark.parametrize("case, message", [
    ("one", "needs finished runs of at least two settings"),
    ("missing", "no finished run of conmh"),
    ("queries", "evaluated on other queries"),
    ("seeds", "share no seed"),
    ("bits", "at least two settings on synthetic at 32 bits"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, case, message):
    planted_run(tmp_path, "itq", 0, 0.6)
    options = ["-b", 64]
    if case == "missing":
        planted_run(tmp_path, "lsh", 0, 0.5)
        options += ["-m", "itq,conmh"]
    elif case == "queries":
        planted_run(tmp_path, "lsh", 0, 0.5, queries="other")
    elif case == "seeds":
        planted_run(tmp_path, "lsh", 1, 0.5)
    elif case == "bits":
        planted_run(tmp_path, "lsh", 0, 0.5)
        options = ["-b", 32]
    result = invoke("compare", *options, "--results-dir", tmp_path)
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output and "nan" not in result.output.lower()


def test_runs_keep_per_query_ap_and_old_folders_rebuild_it(tmp_path):
    results = ssvh_bench.run(["lsh"], "synthetic", 16, [0], dataset_params=TINY, results_dir=tmp_path)
    folder = RunFolder(results[0].folder)
    kept = per_query_of(folder.path)
    for key, values in kept.values.items():
        assert values.mean() == pytest.approx(results[0].metrics[key], abs=1e-12)
    written = folder.per_query.read_bytes()
    folder.per_query.unlink()  # a run folder from before per_query.npz existed
    rebuilt = per_query_of(folder.path)
    assert rebuilt.queries == kept.queries
    for key in kept.values:
        np.testing.assert_array_equal(rebuilt.values[key], kept.values[key])
    assert folder.per_query.read_bytes() == written  # cached again, byte for byte
    stale = per_query_arrays({"map@5": np.zeros(3)}, "another-checksum", "x")
    folder.save_per_query(stale)  # made from other codes: rebuilt
    np.testing.assert_array_equal(per_query_of(folder.path).values["map@5"], kept.values["map@5"])


def test_figures_draw_intervals_and_the_forest_plot(planted):
    from ssvh_bench import plots
    from ssvh_bench.leaderboard import load_runs
    from ssvh_bench.stats import estimate

    frame = load_runs(planted)
    figure = plots.make_figure("map-k", frame, ks=[5, 20])
    band = figure.axes[0].collections[0].get_paths()[0].vertices[:, 1]  # the first series' band
    first = frame[frame["label"] == plots.label_order(frame)[0]]
    found = estimate(np.stack([per_query_of(folder).ap(5) for folder in first["folder"]]))
    assert np.isclose(band, found.low, atol=1e-12).any() and np.isclose(band, found.high, atol=1e-12).any()
    paths = plots.plot("compare", results_dir=planted)
    assert [p.name for p in paths] == ["compare.png", "compare.pdf"]
    assert b"/FontFile2" in paths[1].read_bytes()  # TrueType (Type 42) fonts embedded
    forest = plots.make_figure("compare", frame, ks=[5]).axes[0]
    labels = [t.get_text() for t in forest.get_yticklabels()]
    assert len(labels) == 3 and sum(label.endswith("− LSH") for label in labels) == 2
