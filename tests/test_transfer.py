"""Transfer runs (``--eval-dataset``): train on one dataset, evaluate on another's database and queries."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import TINY, dataset_options, invoke
from ssvh_bench import dataset_registry, method_registry, run
from ssvh_bench.config import make_specs
from ssvh_bench.leaderboard import leaderboard_frame
from ssvh_bench.run_folder import RunFolder

TARGET = {**TINY, "seed": 1, "difficulty": 2.0, "n_query": 8}  # another world, more nuisance, separate queries


@pytest.mark.parametrize("method,params", [("lsh", {}), ("conmh", {"epochs": 1, "batch_size": 16})])
def test_transfer_codes_equal_a_model_trained_on_a_and_encoded_on_b(tmp_path, method, params):
    [result] = run(method, "synthetic", 16, 0, params, TINY, eval_dataset="synthetic", eval_dataset_params=TARGET,
                   results_dir=tmp_path, device="cpu")
    assert result.status == "finished"
    saved = RunFolder(result.folder).load_codes()

    source = dataset_registry.create("synthetic", **TINY).load()
    target = dataset_registry.create("synthetic", **TARGET).load()
    model = method_registry.create(method, **result.spec.method_params)
    model.fit(source.train, bits=16, seed=0, device="cpu", workdir=tmp_path / "by-hand", cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(saved["database"].unpack(), model.encode(target.database))
    np.testing.assert_array_equal(saved["query"].unpack(), model.encode(target.query))
    np.testing.assert_array_equal(saved["query_labels"], target.query_labels)


def test_transfer_changes_the_run_id_and_only_then():
    plain = make_specs(["lsh"], "synthetic", [16], [0], {}, TINY)[0]
    same = make_specs(["lsh"], "synthetic", [16], [0], {}, TINY, eval_dataset="synthetic",
                      eval_dataset_overrides=TINY)[0]
    transfer = make_specs(["lsh"], "synthetic", [16], [0], {}, TINY, eval_dataset="synthetic",
                          eval_dataset_overrides=TARGET)[0]
    assert same == plain and same.eval_dataset is None  # evaluating on the training dataset is the plain run
    assert transfer.run_id != plain.run_id and transfer.eval_dataset == "synthetic"
    assert transfer.overrides["eval_dataset.seed"] == 1


def test_leaderboard_shows_both_datasets(tmp_path):
    result = invoke("run", "-m", "lsh", "-b", "16", *dataset_options(TINY), "--eval-dataset", "synthetic",
                    *[o.replace("--dataset-param", "--eval-dataset-param") for o in dataset_options(TARGET)],
                    "--results-dir", tmp_path)
    assert result.exit_code == 0, result.output
    assert "lsh on synthetic->synthetic" in result.output
    frame = leaderboard_frame(tmp_path)
    assert frame["dataset"].tolist() == ["synthetic->synthetic"]
    assert "eval_dataset.seed=1" in frame["overrides"].iloc[0]


def test_feature_sizes_must_agree(tmp_path):
    result = invoke("run", "-m", "lsh", "-b", "16", *dataset_options(TINY), "--eval-dataset", "synthetic",
                    "--eval-dataset-param", "feature_dim=8", "--results-dir", tmp_path)
    assert result.exit_code == 2
    assert "its videos are 25 frames x 8 features but synthetic's training videos are 4 x 16" in result.output
    assert not (tmp_path / "runs").exists()


def test_eval_dataset_param_needs_eval_dataset(tmp_path):
    result = invoke("run", "-m", "lsh", "--eval-dataset-param", "seed=1", "--results-dir", tmp_path)
    assert result.exit_code == 2 and "--eval-dataset-param needs --eval-dataset" in result.output
