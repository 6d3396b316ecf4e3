from __future__ import annotations

import re

import h5py
import numpy as np
import pytest
import scipy.io
from real_layouts import WRITERS, write_activitynet, write_fcvid, write_features, write_labels, write_yfcc
from typer.testing import CliRunner

import ssvh_bench
from ssvh_bench import DataError, HDF5Features, dataset_registry, method_registry, run_folder
from ssvh_bench.io import read_json
from ssvh_bench.cli import app

runner = CliRunner()


def load(name, root, **params):
    return dataset_registry.create(name, **params).load(root)


def read_h5(path):
    with h5py.File(path) as handle:
        return handle["feats"][()]


def test_fcvid_queries_are_the_database(tmp_path):
    root = write_fcvid(tmp_path)
    splits = load("fcvid", root)
    assert splits.name == "fcvid" and splits.query_is_database
    assert isinstance(splits.train, HDF5Features)
    assert (splits.train.shape, splits.database.shape) == ((30, 5, 16), (30, 5, 16))
    np.testing.assert_array_equal(splits.database.read(slice(None)), read_h5(root / "fcv_test_feats.h5"))
    expected = scipy.io.loadmat(root / "fcv_test_labels.mat")["labels"] != 0
    np.testing.assert_array_equal(splits.database_labels, expected)
    assert splits.query_label_matrix is splits.database_labels


def test_activitynet_has_separate_queries_with_their_own_labels(tmp_path):
    root = write_activitynet(tmp_path)
    splits = load("activitynet", root)
    assert not splits.query_is_database
    assert (len(splits.train), len(splits.database), len(splits.query)) == (30, 24, 8)
    np.testing.assert_array_equal(splits.query.read(slice(None)), read_h5(root / "query_feats.h5"))
    np.testing.assert_array_equal(splits.database_labels, scipy.io.loadmat(root / "re_label.mat")["re_label"] != 0)
    np.testing.assert_array_equal(splits.query_labels, scipy.io.loadmat(root / "q_label.mat")["q_label"] != 0)


def test_yfcc_concatenates_its_files_in_numeric_order(tmp_path):
    root = write_yfcc(tmp_path)
    splits = load("yfcc", root)
    train_files = [root / f"yfcc_train_feats_{part}.h5" for part in range(1, 10)]
    assert [p.name for p in splits.train.paths] == [p.name for p in train_files]
    np.testing.assert_array_equal(splits.train.read(slice(None)), np.concatenate([read_h5(p) for p in train_files]))
    np.testing.assert_array_equal(splits.database.read(slice(None)), np.concatenate(
        [read_h5(root / "yfcc_test_feats_1.h5"), read_h5(root / "yfcc_test_feats_2.h5")]))
    database_labels = [scipy.io.loadmat(root / f"yfcc_test_labels_{part}.mat")["labels"] for part in (1, 2)]
    np.testing.assert_array_equal(splits.database_labels, np.concatenate(database_labels) != 0)
    assert (len(splits.database), len(splits.query), splits.query_labels.shape[1]) == (24, 8, 4)


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_matlab_v73_labels_load_like_classic_ones(tmp_path, name):
    classic = load(name, WRITERS[name](tmp_path / "classic"))
    v73 = load(name, WRITERS[name](tmp_path / "v73", matlab_v73=True))
    np.testing.assert_array_equal(classic.database_labels, v73.database_labels)
    assert classic.database_labels.shape == (len(classic.database), 4)


def test_root_may_hold_the_files_or_a_subfolder_named_after_the_dataset(tmp_path):
    write_fcvid(tmp_path / "fcvid")
    assert load("fcvid", tmp_path).database.paths[0].parent == tmp_path / "fcvid"
    assert load("fcvid", tmp_path / "fcvid").database.paths[0].parent == tmp_path / "fcvid"


@pytest.mark.parametrize("form", ["single", "table"])
def test_data_root_from_the_user_config(tmp_path, monkeypatch, form):
    write_activitynet(tmp_path / "data" / "activitynet")
    config = tmp_path / "config" / "ssvh-bench" / "config.toml"
    config.parent.mkdir(parents=True)
    root = tmp_path / "data"
    config.write_text(f'data_root = "{root}"\n' if form == "single" else f'[data_root]\nactivitynet = "{root}"\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert len(load("activitynet", None).query) == 8
    explicit = write_activitynet(tmp_path / "elsewhere", n_query=3)
    assert len(load("activitynet", explicit).query) == 3  # --data-root wins over the config


def test_no_data_root_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    with pytest.raises(DataError, match="fcvid is read from its feature files, and no data root is set: pass "
                                        "--data-root DIR, set SSVH_BENCH_DATA, or put data_root in"):
        load("fcvid", None)


def replace_features(path, array, **kwargs):
    path.unlink()
    write_features(path, array, **kwargs)


def break_missing(root):
    (root / "fcv_test_labels.mat").unlink()
    (root / "fcv_train_feats.h5").unlink()


def break_key(root):
    replace_features(root / "fcv_test_feats.h5", read_h5(root / "fcv_test_feats.h5"), key="features")


def break_shape(root):
    replace_features(root / "fcv_train_feats.h5", read_h5(root / "fcv_train_feats.h5").mean(axis=1))


def break_dim(root):
    replace_features(root / "fcv_test_feats.h5", read_h5(root / "fcv_test_feats.h5")[:, :, :8])


def break_frames(root):
    replace_features(root / "fcv_test_feats.h5", read_h5(root / "fcv_test_feats.h5")[:, :4])


def break_dtype(root):
    replace_features(root / "fcv_train_feats.h5", read_h5(root / "fcv_train_feats.h5").astype(np.int64))


def break_count(root):
    labels = scipy.io.loadmat(root / "fcv_test_labels.mat")["labels"]
    write_labels(root / "fcv_test_labels.mat", "labels", labels[:-2])


def break_label_key(root):
    labels = scipy.io.loadmat(root / "fcv_test_labels.mat")["labels"]
    write_labels(root / "fcv_test_labels.mat", "label", labels)


def break_nan(root):
    features = read_h5(root / "fcv_train_feats.h5")
    features[29, 2, 3] = np.nan
    replace_features(root / "fcv_train_feats.h5", features)


def break_truncated(root):
    path = root / "fcv_test_feats.h5"
    path.write_bytes(path.read_bytes()[:3000])


def break_truncated_labels(root):
    path = root / "fcv_test_labels.mat"
    path.write_bytes(path.read_bytes()[:300])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (break_missing, r"fcvid: missing fcv_train_feats.h5, fcv_test_labels.mat in .*\. The SSVH papers' authors "
                        r"distribute the feature files; download links .*github\.com/huangmozhi9527/ConMH.*point --data-root"),
        (break_key, r"fcv_test_feats.h5 has no dataset 'feats' \(found: features\); is this the right feature file\?"),
        (break_shape, r"fcv_train_feats.h5: 'feats' has shape \(30, 16\), expected 3-D \[videos, frames, dim\]"),
        (break_dim, r"fcv_test_feats.h5 \(database\) has feature dimension 8 but .*fcv_train_feats.h5 \(train\) "
                    r"has 16; the splits come from different feature extractors"),
        (break_frames, r"fcv_test_feats.h5 \(database\) has frames 4 but .*fcv_train_feats.h5 \(train\) has 5"),
        (break_dtype, r"fcv_train_feats.h5: 'feats' has dtype int64, expected floating point features"),
        (break_count, r"fcv_test_labels.mat hold 28 label rows but fcv_test_feats.h5 hold 30 videos; use label "
                      r"and feature files from the same release"),
        (break_label_key, r"fcv_test_labels.mat has no variable 'labels' \(found: label\)"),
        (break_nan, r"fcvid train features contain NaN or inf: .*fcv_train_feats.h5 video 29 \(checked a sample"),
        (break_truncated, r"cannot open .*fcv_test_feats.h5: it is truncated or not an HDF5 file"),
        (break_truncated_labels, r"cannot read labels from .*fcv_test_labels.mat: not a MATLAB .mat file or "
                                 r"truncated .*download the file again"),
    ],
    ids=lambda value: value.__name__ if callable(value) else None,
)
def test_every_validation_problem_is_one_data_error_and_nothing_runs(tmp_path, tiny_plugins, damage, message):
    root = write_fcvid(tmp_path / "data")
    damage(root)
    with pytest.raises(DataError, match=message):
        load("fcvid", root)
    result = runner.invoke(app, ["run", "--method", "first-coords", "--dataset", "fcvid", "--data-root", str(root),
                                 "--results-dir", str(tmp_path / "results")])
    assert result.exit_code == 2 and re.search(message, result.output), result.output
    assert not (tmp_path / "results" / "runs").exists()


def test_float16_copies_are_used_when_asked(tmp_path):
    root = write_fcvid(tmp_path)
    with pytest.raises(DataError, match=r"float16=true but fcv_train_feats.f16.h5, fcv_test_feats.f16.h5 not "
                                        r"found .*ssvh-bench data convert fcvid --float16"):
        load("fcvid", root, float16=True)
    result = runner.invoke(app, ["data", "convert", "fcvid", "--float16", "--data-root", str(root)])
    assert result.exit_code == 0, result.output
    assert "2 float16 file(s) written" in result.output
    half = load("fcvid", root, float16=True)
    assert half.train.paths[0].name == "fcv_train_feats.f16.h5" and half.train.file_dtypes == [np.float16]
    full = load("fcvid", root)
    np.testing.assert_allclose(half.database.read(slice(None)), full.database.read(slice(None)), rtol=1e-3, atol=1e-3)
    again = runner.invoke(app, ["data", "convert", "fcvid", "--float16", "--data-root", str(root)])
    assert "exists, kept" in again.output and "0 float16 file(s) written" in again.output
    assert runner.invoke(app, ["data", "convert", "fcvid", "--data-root", str(root)]).exit_code == 2


def test_data_info_names_every_file_dataset_and_the_sources():
    result = runner.invoke(app, ["data", "info"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for text in ("fcvid", "activitynet", "yfcc", "fcv_train_feats.h5", "re_label.mat (re_label)",
                 "yfcc_train_feats_9.h5", "huangmozhi9527/ConMH", "Lily1994/BTH", "[data_root]"):
        assert text in result.output


def test_data_check_reports_the_files_and_label_statistics(tmp_path):
    root = write_activitynet(tmp_path)
    result = runner.invoke(app, ["data", "check", "activitynet", "--data-root", str(root)], terminal_width=200)
    assert result.exit_code == 0, result.output
    for text in ("train_feats.h5", "30 x 6 x 16", "float32", "KB", "query", "8 separate videos",
                 "activitynet is ready"):
        assert text in result.output
    (root / "q_label.mat").unlink()
    failed = runner.invoke(app, ["data", "check", "activitynet", "--data-root", str(root)])
    assert failed.exit_code == 2 and "missing q_label.mat" in failed.output
    assert runner.invoke(app, ["data", "check", "nosuch", "--data-root", str(root)]).exit_code == 2


# the tiny ConMH of the test suite: a 32-wide mini (every size of conmh's test_params but epochs and batch size)
TINY_CONMH = [f"--set={name}={value}" for name, value in method_registry.get("conmh").test_params.items()
              if name not in ("epochs", "batch_size")]


def chance_map_at_5(splits) -> float:
    relevant = splits.query_label_matrix.astype(int) @ splits.database_labels.T.astype(int) > 0
    return float(relevant.mean())


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_a_shallow_and_a_deep_method_run_end_to_end(tmp_path, name):
    root = WRITERS[name](tmp_path / "data")
    result = runner.invoke(app, ["run", "--method", "itq,conmh", "--dataset", name, "--bits", "16",
                                 *TINY_CONMH, "--set", "epochs=2", "--set", "batch_size=8",
                                 "--data-root", str(tmp_path / "data"), "--results-dir", str(tmp_path / "results")])
    assert result.exit_code == 0, result.output
    chance = chance_map_at_5(load(name, root))
    for method, margin in (("itq", 0.2), ("conmh", 0.0)):
        (folder,) = [p.parent for p in (tmp_path / "results" / "runs" / name).glob(f"*/{method}/*/metrics.json")]
        metrics = read_json(folder / "metrics.json")
        assert metrics["map@5"] > chance + margin, (method, metrics["map@5"], chance)
        assert read_json(folder / "config.json")["data_root"] == str(tmp_path / "data")
    (conmh_folder,) = [p.parent for p in (tmp_path / "results" / "runs" / name).glob("*/conmh/*/metrics.json")]
    assert (conmh_folder / "history.csv").is_file()

DEEP = [entry for entry in method_registry.list() if entry.family != "shallow"]


@pytest.mark.parametrize("layout", ["fcvid", "activitynet"])
@pytest.mark.parametrize("entry", DEEP, ids=[e.name for e in DEEP])
def test_every_deep_method_trains_end_to_end_on_the_miniature_real_layouts(tmp_path, entry, layout):
    WRITERS[layout](tmp_path / "data", n_train=48)
    params = {k: [v] if isinstance(v, tuple) else v for k, v in entry.test_params.items()}  # a tuple would sweep
    (outcome,) = ssvh_bench.run(entry.name, layout, bits=16, params=params, data_root=tmp_path / "data",
                                results_dir=tmp_path / "results")
    assert outcome.status == "finished", outcome.error
    history = (outcome.folder / "history.csv").read_text().splitlines()
    losses = [float(line.split(",")[1]) for line in history[1:]]
    assert losses and all(np.isfinite(losses))
    assert run_folder.load_codes(outcome.folder)["database"].bits == 16
