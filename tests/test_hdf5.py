from __future__ import annotations

import threading
import time

import h5py
import numpy as np
import pytest
from real_layouts import write_features, write_labels

from ssvh_bench import DataError, HDF5Features
from ssvh_bench.data import hdf5 as hdf5_module
from ssvh_bench.data.hdf5 import convert_to_float16, float16_sibling
from ssvh_bench.data.labels import label_statistics, read_label_matrix
from ssvh_bench.data.readahead import ReadAhead


def numbered(n: int, frames: int = 3, dim: int = 4, start: int = 0) -> np.ndarray:
    """Videos whose every entry is their global index, so any mix-up shows."""
    return np.broadcast_to(np.arange(start, start + n, dtype=np.float32)[:, None, None], (n, frames, dim)).copy()


@pytest.fixture
def two_files(tmp_path):
    first = write_features(tmp_path / "a.h5", numbered(7))
    second = write_features(tmp_path / "b.h5", numbered(5, start=7))
    return [first, second]


def test_read_concatenates_files_in_order_and_returns_the_asked_order(two_files):
    features = HDF5Features(two_files)
    assert features.shape == (12, 3, 4)
    asked = np.array([11, 0, 6, 7, 6, -1, 3])  # unsorted, across the file boundary, repeated, negative
    batch = features.read(asked)
    assert batch.dtype == np.float32 and batch.shape == (7, 3, 4)
    np.testing.assert_array_equal(batch[:, 0, 0], [11, 0, 6, 7, 6, 11, 3])
    np.testing.assert_array_equal(features.read(slice(5, 9))[:, 0, 0], [5, 6, 7, 8])
    assert features.read(np.array([], dtype=np.int64)).shape == (0, 3, 4)
    assert features.locate(8) == (two_files[1], 1)
    with pytest.raises(IndexError):
        features.read(np.array([12]))


def test_files_of_one_split_must_agree_on_frames_and_dim(tmp_path):
    write_features(tmp_path / "a.h5", numbered(4, frames=3))
    write_features(tmp_path / "b.h5", numbered(4, frames=2))
    with pytest.raises(DataError, match=r"b.h5 has \[frames, dim\] = \[2, 4\] but .*a.h5 has \[3, 4\]"):
        HDF5Features([tmp_path / "a.h5", tmp_path / "b.h5"])


def test_blocks_are_whole_chunks(tmp_path):
    path = write_features(tmp_path / "c.h5", numbered(30), chunks=(4, 3, 4))
    assert HDF5Features(path, block_videos=7).block_videos == 8
    assert HDF5Features(write_features(tmp_path / "d.h5", numbered(30)), block_videos=7).block_videos == 7


def test_shuffled_epoch_visits_each_video_once_deterministically_and_near_sequentially(tmp_path):
    features = HDF5Features(write_features(tmp_path / "c.h5", numbered(50)), block_videos=5, window_blocks=2)
    order = features.epoch_order(shuffle=True, seed=3)
    assert sorted(order) == list(range(50))
    np.testing.assert_array_equal(order, features.epoch_order(shuffle=True, seed=3))
    assert not np.array_equal(order, features.epoch_order(shuffle=True, seed=4))
    assert not np.array_equal(order, np.arange(50))
    for window in order.reshape(5, 10):  # every window is exactly two whole blocks
        blocks = np.unique(window // 5)
        assert len(blocks) == 2 and sorted(window) == sorted(np.concatenate([np.arange(b * 5, b * 5 + 5) for b in blocks]))
    np.testing.assert_array_equal(features.epoch_order(shuffle=False, seed=3), np.arange(50))


@pytest.mark.parametrize(("drop_last", "sizes"), [(False, [8, 8, 8, 8, 8, 8, 2]), (True, [8, 8, 8, 8, 8, 8])])
def test_iter_batches_yields_matching_features_and_honours_drop_last(tmp_path, drop_last, sizes):
    features = HDF5Features(write_features(tmp_path / "c.h5", numbered(50)), block_videos=10)
    batches = list(features.iter_batches(8, shuffle=True, seed=1, drop_last=drop_last))
    assert [len(index) for index, _ in batches] == sizes
    for index, batch in batches:
        np.testing.assert_array_equal(batch[:, 0, 0], index)
    seen = np.concatenate([index for index, _ in batches])
    assert len(np.unique(seen)) == len(seen) == sum(sizes)
    order = features.epoch_order(shuffle=True, seed=1)
    for number, (index, _) in enumerate(batches):  # the epoch order's batches, each sorted for one pass on disk
        np.testing.assert_array_equal(index, np.sort(order[number * 8 : number * 8 + 8]))


def read_ahead_alive() -> bool:
    return any(thread.name == "ssvh-bench-read-ahead" for thread in threading.enumerate())


def test_read_ahead_holds_at_most_depth_batches_and_stops_when_the_consumer_stops(tmp_path, monkeypatch):
    readers = []

    class Observed(ReadAhead):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            readers.append(self)

    monkeypatch.setattr(hdf5_module, "ReadAhead", Observed)
    features = HDF5Features(write_features(tmp_path / "c.h5", numbered(40)), read_ahead=2)
    reads = []
    original_read = features.read
    features.read = lambda index: reads.append(len(index)) or original_read(index)
    threads_before = threading.active_count()
    batches = features.iter_batches(2)
    next(batches)
    (reader,) = readers
    expected = 1 + reader.queue.maxsize + 1  # consumed, queued, and one blocked on the full queue
    deadline = time.monotonic() + 10
    while len(reads) < expected and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    assert reader.queue.maxsize == 2 and reader.queue.qsize() == 2
    assert len(reads) == expected  # 5 of 20 batches: the reader waits instead of reading ahead of the queue
    batches.close()  # the consumer stops early
    assert not read_ahead_alive() and reader.queue.qsize() == 0
    assert threading.active_count() == threads_before


def test_read_ahead_passes_producer_errors_to_the_consumer():
    def failing():
        yield 1
        raise DataError("disk gone")

    reader = ReadAhead(failing(), depth=1)
    assert next(reader) == 1
    with pytest.raises(DataError, match="disk gone"):
        next(reader)
    assert not read_ahead_alive()
    with pytest.raises(ValueError, match="at least 1"):
        ReadAhead([], depth=0)


def test_pooled_is_the_frame_mean(two_files):
    np.testing.assert_allclose(HDF5Features(two_files).pooled(batch_size=5), numbered(12)[:, 0, :])


def test_check_finite_reads_a_sample_of_blocks_and_says_so(tmp_path):
    data = numbered(20)
    data[19, 1, 2] = np.inf
    data[10, 0, 0] = np.nan
    path = write_features(tmp_path / "c.h5", data)
    with pytest.raises(DataError, match=r"train features contain NaN or inf: .*c.h5 video 19 \(checked a sample "
                                        r"of 2 block\(s\), 4 of 20 videos\)"):
        HDF5Features(path, sample_blocks=2, sample_videos=2).check_finite("train features")
    data[19, 1, 2] = 0
    path = write_features(tmp_path / "c.h5", data)
    HDF5Features(path, sample_blocks=2, sample_videos=2).check_finite("train features")  # video 10 unsampled
    with pytest.raises(DataError, match="video 10"):
        HDF5Features(path, sample_blocks=3, sample_videos=2).check_finite("train features")


def test_unreadable_files_raise_data_errors_naming_the_file(tmp_path):
    path = write_features(tmp_path / "c.h5", numbered(200, dim=64))
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match=r"cannot open .*truncated.h5: it is truncated or not an HDF5 file"):
        HDF5Features(truncated)
    write_features(tmp_path / "key.h5", numbered(3), key="features")
    with pytest.raises(DataError, match=r"key.h5 has no dataset 'feats' \(found: features\)"):
        HDF5Features(tmp_path / "key.h5")
    write_features(tmp_path / "flat.h5", numbered(3)[:, 0, :])
    with pytest.raises(DataError, match=r"flat.h5: 'feats' has shape \(3, 4\), expected 3-D"):
        HDF5Features(tmp_path / "flat.h5")
    write_features(tmp_path / "int.h5", numbered(3).astype(np.int32))
    with pytest.raises(DataError, match="int.h5: 'feats' has dtype int32, expected floating point"):
        HDF5Features(tmp_path / "int.h5")


def test_float16_copy_round_trips_as_float32(two_files):
    target = float16_sibling(two_files[0])
    assert target.name == "a.f16.h5"
    convert_to_float16(two_files[0], target, batch_videos=3)
    assert [p.name for p in target.parent.iterdir() if p.name.startswith(".")] == []  # no temp file left
    with h5py.File(target) as handle:
        assert handle["feats"].dtype == np.float16
    copy = HDF5Features(target)
    assert copy.read(np.array([6, 2])).dtype == np.float32
    np.testing.assert_array_equal(copy.read(slice(None)), numbered(7))


def test_float16_conversion_refuses_values_out_of_range(tmp_path):
    source = write_features(tmp_path / "big.h5", numbered(3) * 1e5)
    with pytest.raises(DataError, match="beyond float16's range"):
        convert_to_float16(source, float16_sibling(source))
    assert not float16_sibling(source).exists()


LABELS = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 0], [1, 0, 1]], dtype=np.uint8)


@pytest.mark.parametrize("matlab_v73", [False, True])
def test_label_files_in_both_mat_formats(tmp_path, matlab_v73):
    path = write_labels(tmp_path / "l.mat", "labels", LABELS * 3, matlab_v73=matlab_v73)
    labels = read_label_matrix(path, "labels")
    assert labels.dtype == bool
    np.testing.assert_array_equal(labels, LABELS.astype(bool))
    with pytest.raises(DataError, match=r"l.mat has no variable 're_label' \(found: labels\)"):
        read_label_matrix(path, "re_label")


def test_unreadable_label_file(tmp_path):
    path = tmp_path / "l.mat"
    path.write_bytes(b"not a mat file at all" * 20)
    with pytest.raises(DataError, match="cannot read labels from .*l.mat: not a MATLAB .mat file or truncated"):
        read_label_matrix(path, "labels")


def test_label_statistics():
    assert label_statistics(LABELS) == {
        "videos": 4, "classes": 3, "labels_per_video_mean": 1.25, "labels_per_video_max": 2,
        "unlabelled_videos": 1, "videos_per_class_min": 1, "videos_per_class_median": 2.0,
        "videos_per_class_max": 2, "empty_classes": 0,
    }
