"""The training split held on the device (``--data-on-device``): the plan, the container, and training that
computes exactly what the host path computes (on the CPU the same code path holds one torch tensor)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import ssvh_bench
from ssvh_bench import ArrayFeatures, ConfigError, DataError, run_folder
from ssvh_bench.data.on_device import DeviceFeatures, plan_data_on_device

from method_helpers import tiny

DATA = {"n_train": 40, "n_database": 24, "n_frames": 4, "feature_dim": 8, "n_classes": 4}


@pytest.fixture()
def videos():
    return ArrayFeatures(np.random.default_rng(0).normal(size=(10, 3, 5)).astype(np.float32))


def test_device_features_hold_the_split_and_gather_batches(videos):
    held = DeviceFeatures(videos, "cpu")
    assert held.shape == (10, 3, 5) and held.tensor.dtype == torch.float32
    indices = np.array([7, 2, 2, 0])
    np.testing.assert_array_equal(held.gather(indices).numpy(), videos.array[indices])
    np.testing.assert_array_equal(held.read(indices), videos.array[indices])
    np.testing.assert_array_equal(held.read(slice(3, 6)), videos.array[3:6])
    assert held.fingerprint() == videos.fingerprint()


def test_float16_storage_rounds_once_and_gathers_float32(videos):
    held = DeviceFeatures(videos, "cpu", "float16")
    assert held.tensor.dtype == torch.float16
    gathered = held.gather(np.array([1, 4]))
    assert gathered.dtype == torch.float32
    np.testing.assert_array_equal(gathered.numpy(), videos.array[[1, 4]].astype(np.float16).astype(np.float32))
    assert not np.array_equal(gathered.numpy(), videos.array[[1, 4]])  # it did round


def test_a_nan_video_is_named_while_the_split_is_copied(videos):
    videos.array[6, 1, 2] = np.nan
    with pytest.raises(DataError, match="training split: video 6 has NaN or inf features"):
        DeviceFeatures(videos, "cpu")


def test_the_plan_keeps_the_split_on_the_host_unless_asked_on_a_cpu():
    shape = (1000, 25, 256)  # 25,600,000 bytes in float32
    assert not plan_data_on_device("no", shape, "cpu").on_device
    auto = plan_data_on_device("auto", shape, "cpu")
    assert not auto.on_device and "24.4 MiB" in auto.message and "CPU run" in auto.message
    assert plan_data_on_device("yes", shape, "cpu").dtype == "float32"
    half = plan_data_on_device("float16", shape, "cpu")
    assert half.dtype == "float16" and "12.2 MiB" in half.message
    with pytest.raises(ConfigError, match="data_on_device must be one of auto, yes, no, float16, got 'gpu'"):
        plan_data_on_device("gpu", shape, "cpu")


@pytest.mark.parametrize("free_mib, choice, expected", [
    (100, "auto", "float32"),    # 24.4 MiB <= half of 100
    (40, "auto", None),          # more than half of the free memory: read on the host
    (40, "yes", "float32"),      # fits outright
    (20, "float16", "float16"),  # 12.2 MiB fits
])
def test_on_a_gpu_the_plan_follows_the_free_memory(monkeypatch, free_mib, choice, expected):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (free_mib * 2**20, 80 * 2**30))
    plan = plan_data_on_device(choice, (1000, 25, 256), "cuda:0")
    assert plan.dtype == expected
    assert f"cuda:0 has {free_mib:.1f} MiB free" in plan.message


def test_on_a_gpu_a_split_that_does_not_fit_is_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (20 * 2**20, 80 * 2**30))
    with pytest.raises(ConfigError, match=r"does not fit in cuda \(20.0 MiB free\); use --data-on-device no or "
                                          r"float16"):
        plan_data_on_device("yes", (1000, 25, 256), "cuda")
    auto = plan_data_on_device("auto", (1000, 25, 256), "cuda")
    assert not auto.on_device and "float16 would fit" in auto.message


@pytest.mark.parametrize("name", ["conmh", "bth"])  # bth: related videos (partners) gathered on the device too
def test_training_on_a_held_split_gives_the_codes_of_the_host_path(name):
    train = ArrayFeatures(np.random.default_rng(1).normal(size=(36, 4, 8)).astype(np.float32))
    codes = {}
    for where, split in (("host", train), ("device", DeviceFeatures(train, "cpu"))):
        method = tiny(name, epochs=2)
        method.fit(split, bits=16, seed=3)
        codes[where] = method.encode(train)
    np.testing.assert_array_equal(codes["device"], codes["host"])


def test_a_run_records_where_its_training_split_lived(tmp_path):
    out = {choice: ssvh_bench.run("conmh", bits=16, params={"epochs": 1}, dataset_params=DATA, device="cpu",
                                  results_dir=tmp_path / choice, data_on_device=choice, keep_going=False)[0]
           for choice in ("no", "yes")}
    for choice, stored in (("no", "no"), ("yes", "float32")):
        assert json.loads((out[choice].folder / "config.json").read_text())["data_on_device"] == stored
    np.testing.assert_array_equal(run_folder.load_codes(out["yes"].folder)["database"].unpack(),
                                  run_folder.load_codes(out["no"].folder)["database"].unpack())


def test_a_held_file_backed_split_trains_in_the_files_batch_order(tmp_path):
    from ssvh_bench.data import HDF5Features
    from real_layouts import write_features

    array = np.random.default_rng(2).normal(size=(36, 4, 8)).astype(np.float32)
    train = HDF5Features(write_features(tmp_path / "train.h5", array), block_videos=8, window_blocks=2)
    codes = {}
    for where, split in (("host", train), ("device", DeviceFeatures(train, "cpu")),
                         ("array", ArrayFeatures(array))):
        method = tiny("conmh", epochs=2)
        method.fit(split, bits=16, seed=3)
        codes[where] = method.encode(array)
    np.testing.assert_array_equal(codes["device"], codes["host"])
    assert not np.array_equal(codes["array"], codes["host"])  # the file's order is not a plain permutation
