"""Fault injection: bad options, damaged data and result files, kills at chosen points.

Each case checks what the Guarantees section of docs/concepts.md promises: an input error is one line and exit 2 before
anything is written; a damaged file is named; a killed or failed run is redone or resumed by running the same
command again.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import ssvh_bench

from ssvh_bench.run_folder import RunFolder
from ssvh_bench.io import read_json

from conftest import TINY, dataset_options, invoke
from real_layouts import write_fcvid, write_features



def assert_one_line_error(result, fragment: str) -> None:
    assert result.exit_code == 2, result.output
    # progress lines (timestamped, from the engine's log) may come before it; the error is one line
    lines = [line for line in result.output.splitlines() if line.strip() and not re.match(r"\d\d:\d\d:\d\d ", line)]
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
    ("conmh", ["--data-on-device", "maybe"], "data_on_device must be one of auto, yes, no, float16, got 'maybe'"),
])
def test_a_bad_option_is_one_line_before_anything_is_written(tmp_path, method, options, fragment):
    result = invoke("run", "-m", method, "--results-dir", str(tmp_path), *dataset_options(TINY), *options)
    assert_one_line_error(result, fragment)
    assert not any(tmp_path.iterdir())


def test_a_results_dir_that_is_a_file_is_one_line(tmp_path):
    target = tmp_path / "results"
    target.write_text("not a folder")
    result = invoke("run", "-m", "itq", "--results-dir", str(target), *dataset_options(TINY))
    assert_one_line_error(result, "not a writable folder")


@pytest.mark.skipif(not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() == 0,
                    reason="root writes into read-only folders")
def test_a_read_only_results_dir_is_one_line(tmp_path):
    target = tmp_path / "results"
    target.mkdir(mode=0o555)
    result = invoke("run", "-m", "itq", "--results-dir", str(target), *dataset_options(TINY))
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
    assert not RunFolder(outcome.folder).is_finished()


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


# ---- kills at chosen points, damaged result files ----------------------------------------------------------------
CONMH = {"epochs": 3, "batch_size": 16, "encoder_dim": 16, "decoder_dim": 8}


class Killed(Exception):
    """Stands for a kill: raised at a chosen point of a run."""


def kill_at(monkeypatch, owner, name: str, when=lambda *args: True) -> None:
    """Make ``owner.name`` raise ``Killed`` when ``when(*args)`` holds (a kill at that point of the run)."""
    original = getattr(owner, name)

    def dying(*args, **kwargs):
        if when(*args):
            raise Killed(f"killed in {name}")
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, dying)


def conmh_run(tmp_path, **extra):
    return ssvh_bench.run("conmh", "synthetic", bits=16, params={**CONMH, **extra}, dataset_params=TINY,
                          results_dir=tmp_path, checkpoint_minutes=0)[0]  # a checkpoint at every epoch end


def test_a_run_killed_in_training_resumes_keeps_its_start_time_and_counts_all_epochs(tmp_path, monkeypatch):
    from ssvh_bench.methods.conmh import ConMH

    with monkeypatch.context() as patch:
        kill_at(patch, ConMH, "training_losses", when=lambda self, model, batch, epoch, generator: epoch == 2)
        killed = conmh_run(tmp_path)
    assert killed.status == "failed" and killed.error == "Killed: killed in training_losses"
    first = read_json(killed.folder / "config.json")
    resumed = conmh_run(tmp_path)
    assert resumed.status == "finished" and resumed.folder == killed.folder
    config = read_json(resumed.folder / "config.json")
    assert config["started_at"] == first["started_at"] and len(config["resumed_at"]) == 1
    history = (resumed.folder / "history.csv").read_text().splitlines()
    seconds = [float(row.split(",")[history[0].split(",").index("seconds")]) for row in history[1:]]
    assert len(seconds) == 3 and resumed.metrics["train_seconds"] >= sum(seconds)
    uninterrupted = ssvh_bench.run("conmh", "synthetic", bits=16, params={**CONMH, "lr": 1e-4}, dataset_params=TINY,
                                   results_dir=tmp_path / "clean")[0]
    assert uninterrupted.metrics["codes_sha256"] == resumed.metrics["codes_sha256"]


def test_checkpoint_minutes_is_not_in_the_run_id_and_a_rerun_without_checkpoint_is_recorded_as_started_over(
        tmp_path, monkeypatch):
    from ssvh_bench.methods.conmh import ConMH

    def killed_in_epoch_2(minutes: float):
        with monkeypatch.context() as patch:
            kill_at(patch, ConMH, "training_losses", when=lambda self, model, batch, epoch, generator: epoch == 2)
            return ssvh_bench.run("conmh", "synthetic", bits=16, params=CONMH, dataset_params=TINY,
                                  results_dir=tmp_path, checkpoint_minutes=minutes)[0]

    first = killed_in_epoch_2(60)  # no checkpoint after 2 quick epochs
    assert first.status == "failed" and not RunFolder(first.folder).checkpoint.exists()
    second = killed_in_epoch_2(0)  # the same run (the spacing is not in its id), now saving every epoch
    assert second.folder == first.folder and RunFolder(second.folder).checkpoint.exists()
    done = ssvh_bench.run("conmh", "synthetic", bits=16, params=CONMH, dataset_params=TINY, results_dir=tmp_path,
                          checkpoint_minutes=60)[0]
    config = read_json(done.folder / "config.json")
    assert done.status == "finished" and len(config["started_over_at"]) == 1 and len(config["resumed_at"]) == 1


def test_a_run_killed_while_writing_metrics_is_redone_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    from ssvh_bench import io

    with monkeypatch.context() as patch:
        kill_at(patch, io, "write_text", when=lambda path, text: path.name == "metrics.json")
        killed = ssvh_bench.run("itq", "synthetic", bits=16, dataset_params=TINY, results_dir=tmp_path)[0]
    assert killed.error == "Killed: killed in write_text" and not RunFolder(killed.folder).is_finished()
    (killed.folder / ".metrics.json.abc.tmp").write_text("half")  # what a real kill can leave behind
    redone = ssvh_bench.run("itq", "synthetic", bits=16, dataset_params=TINY, results_dir=tmp_path)[0]
    assert redone.status == "finished" and not list(redone.folder.glob(".*.tmp"))


def test_a_damaged_checkpoint_is_one_line_naming_it_and_force_starts_over(tmp_path, monkeypatch):
    from ssvh_bench.methods.conmh import ConMH

    with monkeypatch.context() as patch:
        kill_at(patch, ConMH, "training_losses", when=lambda self, model, batch, epoch, generator: epoch == 1)
        killed = conmh_run(tmp_path)
    checkpoint = killed.folder / "checkpoints" / "last.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    result = invoke("run", "-m", "conmh", "-b", "16", "--results-dir", str(tmp_path),
                    *[f"--set={k}={v}" for k, v in CONMH.items()], *[f"--dataset-param={k}={v}" for k, v in TINY.items()])
    assert result.exit_code == 1
    assert f"the checkpoint {checkpoint} is damaged" in result.output and "Traceback" not in result.output
    forced = invoke("run", "-m", "conmh", "-b", "16", "--results-dir", str(tmp_path), "--force",
                    *[f"--set={k}={v}" for k, v in CONMH.items()], *[f"--dataset-param={k}={v}" for k, v in TINY.items()])
    assert forced.exit_code == 0, forced.output


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_damaged_codes_make_a_run_unfinished_so_it_is_redone(tmp_path, damage):
    first = ssvh_bench.run("itq", "synthetic", bits=16, dataset_params=TINY, results_dir=tmp_path)[0]
    codes = first.folder / "codes.npz"
    codes.write_bytes(codes.read_bytes()[:50]) if damage == "truncate" else codes.unlink()
    again = ssvh_bench.run("itq", "synthetic", bits=16, dataset_params=TINY, results_dir=tmp_path)[0]
    assert again.status == "finished" and again.metrics["map@5"] == pytest.approx(first.metrics["map@5"])


# ---- evaluate --checkpoint ---------------------------------------------------------------------------------------
def test_evaluate_checkpoint_takes_set_infers_the_variant_and_reports_a_missing_file_first(tmp_path):
    trained = ssvh_bench.run("conmh", "synthetic", bits=16, dataset_params=TINY, results_dir=tmp_path,
                             params={**CONMH, "epochs": 1, "variant": "mini"})[0]
    checkpoint = trained.folder / "checkpoints" / "last.pt"
    common = ["evaluate", "-m", "conmh", "-d", "synthetic", "-b", "16", "--checkpoint", str(checkpoint),
              "--set", "encoder_dim=16", "--set", "decoder_dim=8", *[f"--dataset-param={k}={v}" for k, v in TINY.items()]]
    chosen = invoke(*common, "--set", "variant=mini")
    assert chosen.exit_code == 0, chosen.output
    assert "fit variant" not in chosen.output
    inferred = invoke(*common, "--set", "variant=small")  # small has 12 blocks: the weights have 1
    assert inferred.exit_code == 0, inferred.output
    assert "fit variant 'mini'" in inferred.output
    assert f"{trained.metrics['map@5']:.4f}" in inferred.output  # the run's own numbers, recomputed
    missing = invoke("evaluate", "-m", "conmh", "-d", "no-such-dataset", "--checkpoint", str(tmp_path / "nope.pt"))
    assert_one_line_error(missing, "no checkpoint file at")


def test_a_results_dir_on_a_full_disk_is_one_line(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 2**20, 2**20))
    result = invoke("run", "-m", "itq", "--results-dir", str(tmp_path / "results"), *dataset_options(TINY))
    assert_one_line_error(result, "is on a full disk (1 MB free")
    assert not (tmp_path / "results").exists()


# ---- damaged result files, read by the commands that read them -------------------------------------------------
@pytest.mark.parametrize("content", [b"", b"garbage, not a zip file", b"PK\x03\x04truncated", "pickle"])
def test_evaluate_on_a_damaged_codes_file_is_one_line_naming_it(tmp_path, content):
    first = ssvh_bench.run("itq", "synthetic", bits=16, dataset_params=TINY, results_dir=tmp_path)[0]
    codes = first.folder / "codes.npz"
    if content == "pickle":  # a .npy of Python objects: numpy refuses pickled data
        np.save(open(codes, "wb"), np.array([{"a": 1}], dtype=object), allow_pickle=True)
    else:
        codes.write_bytes(content)
    result = invoke("evaluate", str(first.folder))
    assert_one_line_error(result, f"{codes} is damaged")
    assert "Aborted" not in result.output


@pytest.mark.parametrize("name, content, fragment", [
    ("metrics.json", "{\"map@5\": 0.", "metrics.json is damaged"),
    ("metrics.json", "", "metrics.json is damaged"),
    ("metrics.json", "[1, 2]", "metrics.json is damaged: it holds a JSON list"),
    ("config.json", "not json", "config.json is damaged"),
    ("config.json", None, "config.json is missing"),
])
def test_the_leaderboard_warns_about_each_damaged_run_naming_the_file(tmp_path, name, content, fragment):
    runs = ssvh_bench.run("itq,lsh", "synthetic", bits=16, dataset_params=TINY, results_dir=tmp_path)
    damaged = runs[0].folder / name
    damaged.unlink() if content is None else damaged.write_text(content)
    result = invoke("leaderboard", "--results-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert f"skipped {runs[0].folder}" in result.output and fragment in result.output, result.output
    assert "1 run(s) listed" in result.output


def test_an_unreadable_label_file_is_one_line_in_data_check_and_run(tmp_path, monkeypatch):
    from ssvh_bench.data import labels as labels_module

    root = write_fcvid(tmp_path / "data")
    labels = root / "fcv_test_labels.mat"

    def denied(path, *args, **kwargs):  # root reads any file: a permission error has to be planted
        if str(path) == str(labels):
            raise PermissionError(13, "Permission denied", str(path))
        return open(path, *args, **kwargs)

    monkeypatch.setattr(labels_module, "open", denied, raising=False)
    for command in (["data", "check", "fcvid"], ["run", "-m", "itq", "-d", "fcvid", "--results-dir", str(tmp_path / "r")]):
        result = invoke(*command, "--data-root", str(root))
        assert_one_line_error(result, f"cannot read labels from {labels}")
    assert not (tmp_path / "r").exists()


def test_the_leaderboard_into_a_folder_it_cannot_write_is_one_line(tmp_path, monkeypatch):
    ssvh_bench.run("itq", "synthetic", bits=16, dataset_params=TINY, results_dir=tmp_path)
    import os

    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(tmp_path) and mode & os.W_OK
                        else real_access(path, mode))  # root writes anywhere: a read-only folder has to be planted
    result = invoke("leaderboard", "--results-dir", str(tmp_path))
    assert_one_line_error(result, "not a writable folder")
    assert not (tmp_path / "leaderboard.csv").exists()


def test_a_negative_checkpoint_spacing_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ssvh_bench.ConfigError, match="checkpoint_minutes must be 0 or more minutes, got -1"):
        ssvh_bench.run("conmh", "synthetic", bits=16, params=CONMH, dataset_params=TINY, results_dir=tmp_path,
                       checkpoint_minutes=-1)
    assert not (tmp_path / "runs").exists()
