"""The ``folder`` dataset: every file and label format gives the same data and the same runs, frames are sampled
by the documented rule, the fingerprint follows the contents, and bad folders fail in one line."""

from __future__ import annotations

import csv
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from conftest import TINY, dataset_options, invoke
from ssvh_bench import DataError, NpyFeatures, SampledFeatures, dataset_registry, run, uniform_frame_indices
from ssvh_bench.config import make_specs
from ssvh_bench.leaderboard import leaderboard_frame
from ssvh_bench.data import ArrayFeatures
from ssvh_bench.run_folder import RunFolder


def tiny_splits():
    return dataset_registry.create("synthetic", **TINY, n_query=8).load()


def write_folder(folder: Path, *, features: str = "npy", labels: str = "npy", dtype=np.float32) -> Path:
    """The tiny synthetic dataset (with separate queries) written in one of the folder layout's formats."""
    splits = tiny_splits()
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"train": splits.train.array, "database": splits.database.array, "query": splits.query.array}
    for split, array in arrays.items():
        if features == "npy":
            np.save(folder / f"{split}.npy", array.astype(dtype))
        else:
            with h5py.File(folder / f"{split}.h5", "w") as handle:
                handle.create_dataset("feats", data=array.astype(dtype), chunks=(8, *array.shape[1:]))
    classes = [f"class{i}" for i in range(splits.database_labels.shape[1])]
    for split, matrix in (("database", splits.database_labels), ("query", splits.query_labels)):
        ids = [f"{split}-{i:03d}" for i in range(len(matrix))]
        if labels == "npy":
            np.save(folder / f"{split}_labels.npy", matrix.astype(np.uint8))
        elif labels == "mat":
            scipy.io.savemat(folder / f"{split}_labels.mat", {"labels": matrix.astype(np.float64)})
        else:
            (folder / f"{split}_ids.txt").write_text("".join(f"{i}\n" for i in ids))
            with open(folder / f"{split}_labels.csv", "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["video", "labels"])
                for video, row in reversed(list(zip(ids, matrix))):  # order does not matter
                    writer.writerow([video, ";".join(classes[c] for c in np.flatnonzero(row))])
    return folder


def test_uniform_frame_indices_golden():
    # frame floor((2j+1) L / 2T): the middle of each of T equal segments; short videos repeat frames
    assert uniform_frame_indices(10, 4).tolist() == [1, 3, 6, 8]
    assert uniform_frame_indices(3, 5).tolist() == [0, 0, 1, 2, 2]
    assert uniform_frame_indices(25, 25).tolist() == list(range(25))
    assert uniform_frame_indices(np.array([30, 1]), 3).tolist() == [[5, 15, 25], [0, 0, 0]]
    with pytest.raises(DataError):
        uniform_frame_indices(0, 3)


def test_videos_of_different_lengths_are_sampled_by_the_rule():
    padded = np.zeros((2, 6, 1), dtype=np.float32)
    padded[0, :, 0] = np.arange(6)  # 6 real frames
    padded[1, :3, 0] = [10, 11, 12]  # 3 real frames, then padding that must never be read
    view = SampledFeatures(ArrayFeatures(padded), 4, lengths=np.array([6, 3]))
    assert view.shape == (2, 4, 1)
    assert view.read(np.array([0, 1]))[..., 0].tolist() == [[0, 2, 3, 5], [10, 11, 11, 12]]
    assert view.read(np.array([1]))[..., 0].tolist() == [[10, 11, 11, 12]]
    with pytest.raises(DataError, match="lengths must lie in 1..6"):
        SampledFeatures(ArrayFeatures(padded), 4, lengths=np.array([7, 3]))


def test_lengths_file_and_n_frames(tmp_path):
    folder = write_folder(tmp_path / "data")
    train = np.load(folder / "train.npy")
    lengths = np.arange(len(train)) % train.shape[1] + 1
    np.save(folder / "train_lengths.npy", lengths)
    splits = dataset_registry.create("folder", path=str(folder), n_frames=3).load()
    assert splits.train.shape == (len(train), 3, train.shape[2]) and splits.database.n_frames == 3
    rows = splits.train.read(np.arange(len(train)))
    expected = np.stack([train[i, uniform_frame_indices(lengths[i], 3)] for i in range(len(train))])
    np.testing.assert_array_equal(rows, expected)


@pytest.mark.parametrize("features,labels", [("h5", "mat"), ("npy", "csv"), ("h5", "csv")])
def test_every_format_loads_the_same_data_and_fingerprint(tmp_path, features, labels):
    reference = dataset_registry.create("folder", path=str(write_folder(tmp_path / "ref")))
    other = dataset_registry.create("folder", path=str(write_folder(tmp_path / "other", features=features,
                                                                    labels=labels)))
    a, b = reference.load(), other.load()
    for split in ("train", "database", "query"):
        np.testing.assert_array_equal(getattr(a, split).read(slice(0, None)), getattr(b, split).read(slice(0, None)))
    np.testing.assert_array_equal(a.database_labels, b.database_labels)
    np.testing.assert_array_equal(a.query_labels, b.query_labels)
    assert reference.fingerprint() == other.fingerprint()
    synthetic = tiny_splits()
    np.testing.assert_array_equal(a.train.read(slice(0, None)), synthetic.train.array)


def test_formats_give_identical_runs_and_other_contents_another_id(tmp_path):
    """A shallow and a deep method on the same data as .npy/.npy labels and .h5/.csv labels: same ids (the data root
    is not part of a run's identity, the contents are), same codes."""
    results = {}
    for name, layout in {"npy": {}, "h5": {"features": "h5", "labels": "csv"}}.items():
        folder = write_folder(tmp_path / name, **layout)
        out = run(["lsh", "conmh"], "folder", 16, 0, {"conmh.epochs": 1, "conmh.batch_size": 16},
                  data_root=folder, results_dir=tmp_path / f"results-{name}", device="cpu")
        assert [o.status for o in out] == ["finished", "finished"]
        results[name] = out
    for plain, other in zip(results["npy"], results["h5"]):
        assert plain.spec.run_id == other.spec.run_id
        assert plain.spec.dataset_params["like"] == "synthetic"  # a few dozen videos: the small settings
        assert RunFolder(plain.folder).codes.read_bytes() == RunFolder(other.folder).codes.read_bytes()
    board = leaderboard_frame(tmp_path / "results-npy")
    # like=auto decided from the files is no override (lsh shows none)
    assert sorted(board["overrides"]) == ["", "batch_size=16;epochs=1"]
    chosen = make_specs(["lsh"], "folder", [16], [0], {}, {"like": "fcvid"}, data_root=tmp_path / "npy")[0]
    assert chosen.defaults_from == "fcvid" and chosen.overrides == {"dataset.like": "fcvid"}
    half = write_folder(tmp_path / "half", dtype=np.float16)  # other values -> another fingerprint, another id
    spec = make_specs(["lsh"], "folder", [16], [0], {}, {}, data_root=half)[0]
    assert spec.run_id != results["npy"][0].spec.run_id
    assert NpyFeatures(half / "train.npy").array.dtype == np.float16


def test_memory_maps_npy_files(tmp_path):
    folder = write_folder(tmp_path / "data")
    splits = dataset_registry.create("folder", path=str(folder)).load()
    assert isinstance(splits.train.base.array, np.memmap)


def test_path_is_relative_to_the_data_root(tmp_path):
    write_folder(tmp_path / "root" / "mine")
    relative = make_specs(["lsh"], "folder", [16], [0], {}, {"path": "mine"}, data_root=tmp_path / "root")[0]
    assert relative.data_fingerprints["dataset"] == dataset_registry.create(
        "folder", path=str(tmp_path / "root" / "mine")).fingerprint()


@pytest.mark.parametrize("damage,message", [
    (lambda f: (f / "database_labels.npy").unlink(), "no database_labels.npy, .mat or .csv"),
    (lambda f: np.save(f / "train.npy", np.zeros((3, 4), np.float32)), "expected 3-D"),
    (lambda f: np.save(f / "query_labels.npy", np.zeros((2, 4), np.uint8)), "2 label rows but the query features hold 8"),
    (lambda f: (f / "database.npy").rename(f / "train.h5"), "both train.h5 and train.npy"),
    (lambda f: np.save(f / "query.npy", np.zeros((8, 4, 5), np.float32)), "feature dimensions differ"),
])
def test_bad_folders_fail_in_one_line(tmp_path, damage, message):
    folder = write_folder(tmp_path / "data")
    damage(folder)
    result = invoke("data", "check", "folder", "--data-root", folder)
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


def test_csv_labels_need_ids_and_known_videos(tmp_path):
    folder = write_folder(tmp_path / "data", labels="csv")
    (folder / "query_ids.txt").write_text("".join(f"other-{i}\n" for i in range(8)))
    with pytest.raises(DataError, match="not in the split's ids"):
        dataset_registry.create("folder", path=str(folder)).load()
    (folder / "query_ids.txt").unlink()
    with pytest.raises(DataError, match="needs its ids file"):
        dataset_registry.create("folder", path=str(folder)).load()


def test_data_check_and_info_describe_a_folder(tmp_path):
    write_folder(tmp_path / "data", features="h5", labels="csv")
    result = invoke("data", "check", "folder", "--data-root", tmp_path, *dataset_options({"path": "data"}))
    assert result.exit_code == 0, result.output
    assert "train.h5" in result.output and "8 separate videos" in result.output and "folder is ready" in result.output
    assert "folder:" in invoke("data", "info").output
