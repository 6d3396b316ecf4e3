"""Data-parallel training of one run under torchrun (2 CPU processes, gloo) against the 1-process run.

Tolerance: the 2-process run computes the same losses on the same videos with the same random draws, but
sums in another order (each rank's gradient, then the mean over ranks; the loss totals per rank, then over
ranks), so float32 results differ by rounding only: losses agree to rtol 1e-5 and the codes, signs of
per-video means far from 0 on these data, are equal.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ssvh_bench.run_folder import load_codes
from ssvh_bench.train import split_last_batch

DATA = {"n_train": 64, "n_database": 32, "n_frames": 4, "feature_dim": 16, "n_classes": 4}
CONMH = {"variant": "mini", "epochs": 3, "batch_size": 16, "encoder_dim": 16, "decoder_dim": 8}
# dropout 0: each rank draws its own dropout masks, which no 1-process run can match
BTH = {"hidden_dim": 16, "ffn_dim": 32, "dropout": 0.0, "epochs": 2, "stage1_epochs": 2, "batch_size": 16,
       "n_anchors": 8, "kmeans_backend": "sklearn"}

# Runs one run through the engine (ConMH, or the method named by METHOD); with CRASH_AT set, every rank dies
# at the start of that ConMH epoch (a killed job), after the checkpoint of the epochs before it was written.
SCRIPT = """
import json, os, sys
import ssvh_bench
from ssvh_bench.methods.conmh import ConMH

class Crashing(ConMH):
    def on_epoch_start(self, model, epoch, train):
        if epoch == int(os.environ.get("CRASH_AT", "-1")):
            os._exit(3)
        super().on_epoch_start(model, epoch, train)

ssvh_bench.method_registry.register("conmh-crashing", family="deep", description="test")(Crashing)
params, data, results = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
out = ssvh_bench.run(os.environ.get("METHOD", "conmh-crashing"), "synthetic", bits=16, params=params,
                     dataset_params=data, results_dir=results, device="cpu", threads=1, checkpoint_minutes=0,
                     data_on_device=os.environ.get("DATA_ON_DEVICE", "auto"))
print("STATUS", [o.status for o in out])
"""

pytestmark = pytest.mark.slow  # starts processes or trains every method


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _launch(tmp_path: Path, results: Path, params: dict, processes: int, crash_at: int | None = None,
            method: str = "conmh-crashing", data_on_device: str = "auto"):
    script = tmp_path / "one_run.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("CRASH_AT", None)
    env["METHOD"] = method
    env["DATA_ON_DEVICE"] = data_on_device
    if crash_at is not None:
        env["CRASH_AT"] = str(crash_at)
    arguments = [str(script), json.dumps(params), json.dumps(DATA), str(results)]
    if processes > 1:
        command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
                   f"--master_port={_free_port()}", "--master_addr=127.0.0.1", *arguments]
    else:
        command = [sys.executable, *arguments]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def _run_folder(results: Path) -> Path:
    (folder,) = (results / "runs").glob("*/*/*/*")
    return folder


def _history(folder: Path) -> list[dict[str, float]]:
    with open(folder / "history.csv") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """The 1-process run with the global batch of 16."""
    tmp_path = tmp_path_factory.mktemp("single")
    done = _launch(tmp_path, tmp_path / "results", CONMH, 1)
    assert done.returncode == 0, done.stderr
    return _run_folder(tmp_path / "results")


def _assert_same_training(folder: Path, reference: Path) -> None:
    ours, theirs = _history(folder), _history(reference)
    assert len(ours) == len(theirs) > 0
    for row, expected in zip(ours, theirs):
        assert row.keys() == expected.keys()
        for name in set(row) - {"epoch", "lr", "seconds", "videos_per_s"}:
            assert row[name] == pytest.approx(expected[name], rel=1e-5), (row["epoch"], name)
    np.testing.assert_array_equal(load_codes(folder)["database"].unpack(), load_codes(reference)["database"].unpack())


def test_two_processes_with_half_batches_train_what_one_process_with_the_whole_batch_trains(tmp_path, single):
    done = _launch(tmp_path, tmp_path / "results", CONMH, 2)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("STATUS ['finished']") == 2  # both ranks took part
    folder = _run_folder(tmp_path / "results")
    _assert_same_training(folder, single)
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in single.iterdir())
    assert json.loads((folder / "metrics.json").read_text())["map@20"] == pytest.approx(
        json.loads((single / "metrics.json").read_text())["map@20"])


def test_two_process_bth_matches_the_one_process_run_stage_1_included(tmp_path):
    done = {n: _launch(tmp_path, tmp_path / f"results{n}", BTH, n, method="bth") for n in (1, 2)}
    for n, finished in done.items():
        assert finished.returncode == 0, finished.stderr
        assert finished.stdout.count("STATUS ['finished']") == n, finished.stdout
    _assert_same_training(_run_folder(tmp_path / "results2"), _run_folder(tmp_path / "results1"))


def test_two_processes_gathering_from_a_held_split_match_one_process_reading_the_host(tmp_path):
    # each rank holds the whole split and gathers its rows of each global batch (and their partners) there
    done = {n: _launch(tmp_path, tmp_path / f"results{n}", BTH, n, method="bth",
                       data_on_device="yes" if n == 2 else "no") for n in (1, 2)}
    for n, finished in done.items():
        assert finished.returncode == 0, finished.stderr
    folder = _run_folder(tmp_path / "results2")
    assert json.loads((folder / "config.json").read_text())["data_on_device"] == "float32"
    _assert_same_training(folder, _run_folder(tmp_path / "results1"))


def test_a_last_partial_batch_that_splits_evenly_is_trained_by_two_processes_as_by_one(tmp_path):
    # 64 videos in batches of 24: the last batch has 16 videos, 8 per rank (ConMH keeps it, as its authors do)
    uneven = {**CONMH, "batch_size": 24}
    done = {n: _launch(tmp_path, tmp_path / f"results{n}", uneven, n) for n in (1, 2)}
    for finished in done.values():
        assert finished.returncode == 0, finished.stderr
    _assert_same_training(_run_folder(tmp_path / "results2"), _run_folder(tmp_path / "results1"))


@pytest.mark.parametrize("size, world, kept", [(17, 1, 17), (1, 1, 0), (16, 2, 16), (9, 2, 8), (17, 4, 16),
                                               (5, 4, 0)])
def test_the_last_partial_batch_keeps_what_splits_evenly_with_two_videos_per_rank(size, world, kept):
    assert split_last_batch(size, world) == kept


def test_a_killed_two_process_run_resumes_from_its_checkpoint(tmp_path, single):
    results = tmp_path / "results"
    killed = _launch(tmp_path, results, CONMH, 2, crash_at=2)
    assert killed.returncode != 0
    folder = _run_folder(results)
    assert not (folder / "metrics.json").exists() and (folder / "run.lock").exists()  # left by the dead rank 0
    assert len(_history(folder)) == 2
    resumed = _launch(tmp_path, results, CONMH, 2)
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_training(folder, single)
    assert not (folder / "run.lock").exists()


def _train_as_rank(rank: int, port: int, folder: str) -> None:
    import torch
    import torch.distributed as dist

    from ssvh_bench.data import ArrayFeatures
    from ssvh_bench.methods.conmh import ConMH
    from ssvh_bench.train import train_model

    torch.set_num_threads(1)
    os.environ.update(WORLD_SIZE="2", RANK=str(rank))
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    method = ConMH(**CONMH)
    train = ArrayFeatures(np.random.default_rng(0).normal(size=(32, 4, 16)).astype(np.float32))
    own = Path(folder) / f"rank{rank}"  # each rank is told to write into its own folder
    train_model(method, lambda: method.build_model(4, 16, 16), train, seed=0, device="cpu", settings={},
                history_path=own / "history.csv", checkpoint_path=own / "last.pt")
    dist.destroy_process_group()


def test_only_rank_0_writes_history_and_checkpoints(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_train_as_rank, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    assert sorted(p.name for p in (tmp_path / "rank0").iterdir()) == ["history.csv", "last.pt"]
    assert not (tmp_path / "rank1").exists()
