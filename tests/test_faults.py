"""Fault injection: bad options, damaged data and result files, kills at chosen points.

Each case checks what the README's "Guarantees" section promises: an input error is one line and exit 2 before
anything is written; a damaged file is named; a killed or failed run is redone or resumed by running the same
command again.
"""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

import ssvh_bench
from ssvh_bench import results
from ssvh_bench.cli import app

from real_layouts import write_fcvid, write_features

runner = CliRunner()
TINY_SYNTHETIC = ["--dataset-param", "n_train=64", "--dataset-param", "n_database=32", "--dataset-param",
                  "n_frames=4", "--dataset-param", "feature_dim=8", "--dataset-param", "n_classes=4"]


def invoke(*args: str):
    return runner.invoke(app, list(args))


def assert_one_line_error(result, fragment: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], result.output


@pytest.mark.parametrize("method, options, fragment", [
    ("conmh", ["--set", "epochs=0"], "epochs must be positive"),
    ("conmh", ["--set", "batch_size=-4"], "batch_size must be positive"),
    ("conmh", ["--set", "lr=-0.1"], "lr must be positive"),
    ("conmh", ["--set", "mask_ratio=1.0"], "mask_ratio must be strictly between 0 and 1"),
    ("conmh", ["--set", "mask_ratio=0"], "mask_ratio must be strictly between 0 and 1"),
    ("conmh", ["--set", "variant=huge"], "unknown variant 'huge'"),
    ("itq", ["--set", "n_iter=-1"], "n_iter must not be negative"),
    ("bth", ["--set", "kmeans_backend=magic"], "unknown kmeans_backend 'magic'"),
    ("itq", ["--seed", "-1"], "seeds must be non-negative"),
    ("itq", ["--device", "foo"], "unknown device 'foo'"),
    ("conmh", ["--device", "cuda"], "CUDA is not available"),
    ("itq", ["--device", "cuda:0"], "CUDA is not available"),
    ("itq", ["--set", "n_iter=abc"], "n_iter expects int"),
    ("itq", ["--bits", "7"], "bits"),
])
def test_a_bad_option_is_one_line_before_anything_is_written(tmp_path, method, options, fragment):
    result = invoke("run", "-m", method, "--results-dir", str(tmp_path), *TINY_SYNTHETIC, *options)
    assert_one_line_error(result, fragment)
    assert not any(tmp_path.iterdir())


def test_a_results_dir_that_is_a_file_is_one_line(tmp_path):
    target = tmp_path / "results"
    target.write_text("not a folder")
    result = invoke("run", "-m", "itq", "--results-dir", str(target), *TINY_SYNTHETIC)
    assert_one_line_error(result, "not a writable folder")


@pytest.mark.skipif(not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() == 0,
                    reason="root writes into read-only folders")
def test_a_read_only_results_dir_is_one_line(tmp_path):
    target = tmp_path / "results"
    target.mkdir(mode=0o555)
    result = invoke("run", "-m", "itq", "--results-dir", str(target), *TINY_SYNTHETIC)
    assert_one_line_error(result, "not a writable folder")


# ---- damaged data ------------------------------------------------------------------------------------------------
def poisoned_synthetic(monkeypatch, split: str, video: int):
    """The synthetic dataset with one NaN in ``split`` at ``video``, placed where the sampled check still
    reads it (the check is what a NaN elsewhere would slip past, so methods must catch it themselves)."""
    from ssvh_bench.datasets import synthetic

    original = synthetic.SyntheticVideos.load

    def load(self, data_root=None):
        splits = original(self, data_root)
        getattr(splits, split).array[video, 0, 0] = np.nan
        return splits

    monkeypatch.setattr(synthetic.SyntheticVideos, "load", load)


@pytest.mark.parametrize("method", ["lsh", "conmh"])
@pytest.mark.parametrize("split, video", [("train", 5), ("database", 7)])
def test_a_nan_the_sampled_check_missed_is_caught_by_the_method(tmp_path, monkeypatch, method, split, video):
    poisoned_synthetic(monkeypatch, split, video)
    from ssvh_bench.data.features import VideoFeatures

    monkeypatch.setattr(VideoFeatures, "check_finite", lambda self, what, batch_size=1024: None)  # "missed"
    outcome = ssvh_bench.run(method, "synthetic", bits=16, results_dir=tmp_path, params={"epochs": 1} if method == "conmh" else None,
                             dataset_params={"n_train": 64, "n_database": 32, "n_frames": 4, "feature_dim": 8,
                                             "n_classes": 4})[0]
    assert outcome.status == "failed"
    expected = "training split" if split == "train" else "database split"
    assert expected in outcome.error and f"video {video} has NaN or inf" in outcome.error, outcome.error
    assert not results.is_finished(outcome.folder)


@pytest.mark.parametrize("shape", [(0, 5, 8), (10, 0, 8), (10, 5, 0)])
def test_a_degenerate_feature_file_fails_data_check_and_run_with_one_line(tmp_path, shape):
    root = write_fcvid(tmp_path / "data")
    write_features(root / "fcv_test_feats.h5", np.zeros(shape, dtype=np.float32))
    for command in (["data", "check", "fcvid"], ["run", "-m", "itq", "-d", "fcvid", "--results-dir", str(tmp_path / "r")]):
        result = invoke(*command, "--data-root", str(root))
        assert_one_line_error(result, f"has shape {shape}")
    assert not (tmp_path / "r").exists()


def test_the_sampled_check_reports_the_videos_it_read_truthfully(tmp_path):
    from ssvh_bench import HDF5Features

    features = np.ones((80, 3, 4), dtype=np.float32)
    features[40, 1, 1] = np.inf
    split = HDF5Features([write_features(tmp_path / "f.h5", features)])
    with pytest.raises(ssvh_bench.DataError, match="80 of 80 videos"):
        split.check_finite("test features")
