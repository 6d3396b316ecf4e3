from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from ssvh_bench import ArrayFeatures, ConfigError, dataset_registry, method_registry
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
    assert entry.defaults == dict(n_train=2000, n_database=2000, n_query=0, n_frames=25, feature_dim=256,
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


def centred(videos: np.ndarray) -> np.ndarray:
    return videos - videos.reshape(-1, videos.shape[2]).mean(axis=0)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


def test_frames_of_a_video_share_its_content(splits):
    """A scene persists through the clip: every frame is close to its video's mean; videos are not."""
    videos = centred(splits.database.read(slice(None)).astype(np.float64))
    means = videos.mean(axis=1)
    assert cosine(videos, means[:, None]).mean() > 0.85  # measured 0.91 here and at the default size
    previous = np.roll(np.arange(len(videos)), 1)  # almost always another class or sub-type
    assert abs(cosine(means, means[previous]).mean()) < 0.15


def test_frame_noise_is_small_next_to_the_content(splits):
    """Within a segment consecutive frames are near-duplicates: the typical (median) step between them
    carries a few percent of the centred features' energy (measured 0.025 here, 0.01 at the default size)."""
    videos = splits.database.read(slice(None)).astype(np.float64)
    steps = (np.diff(videos, axis=1) ** 2).sum(axis=2)
    assert np.median(steps, axis=1).mean() < 0.06 * (centred(videos) ** 2).sum(axis=2).mean()


def test_neighbouring_frames_are_closer_than_distant_ones(splits):
    videos = splits.database.read(slice(None)).astype(np.float64)
    step = np.linalg.norm(videos[:, 1:] - videos[:, :-1], axis=2).mean()
    far = np.linalg.norm(videos[:, 6:] - videos[:, :-6], axis=2).mean()
    assert step < 0.6 * far


def single_label(difficulty: float = 1.0, n_classes: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Single-label database videos [n, T, D] (float64) and their classes."""
    split = make(n_database=900, label_overlap=0.0, difficulty=difficulty, n_classes=n_classes)
    return split.database.read(slice(None)).astype(np.float64), split.database_labels.argmax(axis=1)


def knn_accuracy(features: np.ndarray, classes: np.ndarray, k: int = 5) -> float:
    """Leave-one-out accuracy of a k-nearest-neighbour vote (Euclidean)."""
    features = features - features.mean(axis=0)
    squared = (features**2).sum(axis=1)
    distances = squared[:, None] + squared[None] - 2 * features @ features.T
    np.fill_diagonal(distances, np.inf)
    votes = classes[np.argsort(distances, axis=1)[:, :k]]
    predicted = np.array([np.bincount(row, minlength=classes.max() + 1).argmax() for row in votes])
    return float((predicted == classes).mean())


def nearest_centroid_accuracy(features: np.ndarray, classes: np.ndarray) -> float:
    """Class centroids fitted on one half, used to classify the other: one linear prototype per class."""
    half = len(features) // 2
    centroids = np.stack([features[:half][classes[:half] == c].mean(axis=0) for c in range(classes.max() + 1)])
    distances = ((features[half:, None, :] - centroids[None]) ** 2).sum(axis=2)
    return float((distances.argmin(axis=1) == classes[half:]).mean())


def segment_means(videos: np.ndarray, parts: int = 4) -> np.ndarray:
    """An order-aware video feature: the means of ``parts`` consecutive stretches of frames, concatenated."""
    edges = np.linspace(0, videos.shape[1], parts + 1).astype(int)
    return np.concatenate([videos[:, a:b].mean(axis=1) for a, b in zip(edges[:-1], edges[1:])], axis=1)


@pytest.fixture(scope="module")
def labelled():
    return single_label()


def test_classes_are_multi_modal(labelled):
    """Each class is several sub-types: neighbours find the class, one centroid per class much less well."""
    videos, classes = labelled
    pooled = videos.mean(axis=1)
    assert knn_accuracy(pooled, classes) > nearest_centroid_accuracy(pooled, classes) + 0.15


def test_linear_codes_of_pooled_features_lose_class_information(labelled):
    """16 ITQ bits (a rotated PCA of the frame means) keep the twin pair but find the class less often than
    the pooled features' own neighbours do (measured 0.58 vs 0.71)."""
    videos, classes = labelled
    entry = method_registry.get("itq")
    itq = entry.create(**entry.defaults).fit(ArrayFeatures(videos[:450]), bits=16, seed=0)
    codes = itq.encode(videos).astype(np.float64)
    assert knn_accuracy(codes, classes // 2) > 0.9  # chance 1/3
    assert knn_accuracy(codes, classes) < knn_accuracy(videos.mean(axis=1), classes) - 0.1


def test_pooling_keeps_the_twin_pair_but_loses_part_of_the_class(labelled):
    """Twin classes share scenes and blocks and differ in their order: frame-mean pooling finds the pair
    almost always and the class much less often; keeping the order of the segments recovers it, and
    shuffling the frames first loses it again."""
    videos, classes = labelled
    pooled = videos.mean(axis=1)
    assert knn_accuracy(pooled, classes // 2) > 0.95  # chance 1/3
    ordered = knn_accuracy(segment_means(videos), classes)
    assert ordered > knn_accuracy(pooled, classes) + 0.2
    n, t = videos.shape[:2]
    orders = np.random.default_rng(0).permuted(np.tile(np.arange(t), (n, 1)), axis=1)  # one per video
    shuffled = videos[np.arange(n)[:, None], orders]
    assert ordered > knn_accuracy(segment_means(shuffled), classes) + 0.2


def test_difficulty_scales_the_nuisance():
    easy, hard = single_label(0.0), single_label(2.5)
    assert knn_accuracy(segment_means(easy[0]), easy[1]) > knn_accuracy(segment_means(hard[0]), hard[1]) + 0.1


@pytest.mark.slow
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
