from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from ssvh_bench import ConfigError, dataset_registry
from ssvh_bench.io import read_json
from ssvh_bench.cli import app

SMALL = dict(n_train=120, n_database=300, n_frames=12, feature_dim=48, n_classes=6)


def make(**params):
    return dataset_registry.create("synthetic", **{**SMALL, **params}).load()


@pytest.fixture(scope="module")
def splits():
    return make()


def test_registered_with_documented_defaults():
    entry = dataset_registry.get("synthetic")
    assert entry.defaults == dict(n_train=5000, n_database=2000, n_query=0, n_frames=25, feature_dim=512,
                                  n_classes=20, label_overlap=0.1, difficulty=1.0, seed=0)


def test_fcvid_shape_queries_the_database(splits):
    assert splits.query is None and splits.query_is_database
    assert splits.train.shape == (120, 12, 48) and splits.database.shape == (300, 12, 48)
    for part in (splits.train, splits.database):
        assert part.read(slice(0, 5)).dtype == np.float32
        assert part.read(slice(None)).min() >= 0.0  # ReLU rendering: non-negative like CNN features
    assert splits.database_labels.shape == (300, 6) and splits.database_labels.dtype == bool
    assert set(splits.database_labels.sum(axis=1)) <= {1, 2}


def test_activitynet_shape_has_a_separate_query_split():
    split = make(n_query=40)
    assert split.query.shape == (40, 12, 48) and split.query.read(slice(0, 2)).dtype == np.float32
    assert split.query_labels.shape == (40, 6)
    assert not split.query_is_database


def test_same_seed_same_videos_other_seed_other_videos(splits):
    again = make()
    other = make(seed=1)
    assert np.array_equal(again.train.read(slice(None)), splits.train.read(slice(None)))
    assert np.array_equal(again.database_labels, splits.database_labels)
    assert not np.allclose(other.database.read(slice(None)), splits.database.read(slice(None)))


def test_database_does_not_depend_on_the_training_size(splits):
    more_training = make(n_train=200)
    assert np.array_equal(more_training.database.read(slice(None)), splits.database.read(slice(None)))
    assert not np.array_equal(more_training.train.read(slice(0, 120)), splits.train.read(slice(None)))


@pytest.mark.parametrize("overlap", [0.0, 0.3, 1.0])
def test_multi_label_rate_follows_label_overlap(overlap):
    labels = make(n_database=2000, n_train=1, n_frames=3, feature_dim=4, label_overlap=overlap).database_labels
    rate = (labels.sum(axis=1) == 2).mean()
    assert rate == pytest.approx(overlap, abs=0.04)  # binomial sd at 0.3 and 2000 videos: 0.01
    assert set(labels.sum(axis=1)) <= {1, 2}


def test_neighbouring_frames_are_closer_than_distant_ones(splits):
    videos = splits.database.read(slice(None)).astype(np.float64)
    step = np.linalg.norm(videos[:, 1:] - videos[:, :-1], axis=2).mean()
    far = np.linalg.norm(videos[:, 6:] - videos[:, :-6], axis=2).mean()
    assert step < 0.8 * far


def test_frame_order_carries_information(splits):
    """Consecutive-frame differences shrink when frames are shuffled back into order: order is real."""
    videos = splits.database.read(slice(None)).astype(np.float64)
    shuffled = videos[:, np.random.default_rng(0).permutation(videos.shape[1])]
    in_order = np.linalg.norm(np.diff(videos, axis=1), axis=2).mean()
    out_of_order = np.linalg.norm(np.diff(shuffled, axis=1), axis=2).mean()
    assert in_order < 0.85 * out_of_order


def nearest_centroid_accuracy(difficulty: float) -> float:
    """Fit class centroids of pooled features on half the (single-label) database, classify the other half."""
    split = make(n_database=1200, label_overlap=0.0, difficulty=difficulty)
    pooled = split.database.pooled().astype(np.float64)
    classes = split.database_labels.argmax(axis=1)
    fit, held_out = slice(0, 600), slice(600, None)
    centroids = np.stack([pooled[fit][classes[fit] == c].mean(axis=0) for c in range(6)])
    distances = ((pooled[held_out, None, :] - centroids[None]) ** 2).sum(axis=2)
    return float((distances.argmin(axis=1) == classes[held_out]).mean())


def test_classes_are_separable_but_not_trivially():
    assert 3 / 6 < nearest_centroid_accuracy(1.0) < 0.97  # chance is 1/6


def test_difficulty_scales_the_nuisance():
    assert nearest_centroid_accuracy(0.0) > nearest_centroid_accuracy(2.0) + 0.1


def test_generates_many_full_width_videos():
    split = dataset_registry.create("synthetic", n_train=1000, n_database=10, n_frames=25, feature_dim=512).load()
    block = split.train.read(slice(None))
    assert block.shape == (1000, 25, 512) and np.isfinite(block).all()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n_train": 0}, "n_train must be an integer >= 1"),
        ({"n_database": -5}, "n_database must be an integer >= 1"),
        ({"n_query": -1}, "n_query must be an integer >= 0"),
        ({"n_frames": 1}, "n_frames must be an integer >= 2"),
        ({"n_classes": 1}, "n_classes must be an integer >= 2"),
        ({"feature_dim": 2.5}, "feature_dim must be an integer >= 1"),
        ({"label_overlap": 1.5}, r"label_overlap must be in \[0, 1\]"),
        ({"label_overlap": "high"}, "label_overlap must be a number"),
        ({"difficulty": -0.1}, "difficulty must be a finite number >= 0"),
        ({"difficulty": float("nan")}, "difficulty must be a finite number >= 0"),
        ({"seed": -3}, "seed must be a non-negative integer"),
    ],
)
def test_invalid_parameters_raise_config_errors(params, message):
    with pytest.raises(ConfigError, match=message):
        dataset_registry.create("synthetic", **params)


def test_cli_runs_a_shallow_method_on_it(tmp_path):
    params = [f"--dataset-param={k}={v}" for k, v in SMALL.items()]
    result = CliRunner().invoke(app, ["run", "--method", "itq", "--bits", "16", "--results-dir", str(tmp_path),
                                      *params])
    assert result.exit_code == 0, result.output
    (folder,) = [p.parent for p in (tmp_path / "runs" / "synthetic" / "16" / "itq").glob("*/metrics.json")]
    config = read_json(folder / "config.json")
    assert config["dataset_params"]["n_train"] == 120 and config["dataset_params"]["seed"] == 0
    assert read_json(folder / "metrics.json")["map@20"] > 0.15  # chance is about 0.08


def test_cli_reports_a_bad_parameter_in_one_line(tmp_path):
    result = CliRunner().invoke(app, ["run", "--method", "lsh", "--results-dir", str(tmp_path),
                                      "--dataset-param", "label_overlap=2"])
    assert result.exit_code == 2
    assert "label_overlap must be in [0, 1]" in result.output
