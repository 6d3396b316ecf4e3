"""Run locks and artefact build locks, with real second processes."""

from __future__ import annotations

import pytest

import json
import multiprocessing
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import ssvh_bench
from ssvh_bench import locks, run_folder
from ssvh_bench.artefacts import ArtefactCache
from ssvh_bench.config import make_specs
from ssvh_bench.run_folder import RunFolder

TINY = {"n_train": 40, "n_database": 60, "n_frames": 4, "feature_dim": 16, "n_classes": 3}

pytestmark = pytest.mark.slow  # starts processes or trains every method


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _write_lock(path: Path, pid: int, host: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": pid, "host": host or platform.node(), "started_at": "2026-01-01T00:00:00+00:00"}))


def test_a_lock_is_exclusive_records_its_holder_and_is_removed_on_release(tmp_path):
    path = tmp_path / "run.lock"
    lock = locks.try_acquire(path)
    assert lock is not None
    holder = json.loads(path.read_text())
    assert holder["pid"] == os.getpid() and holder["host"] == platform.node() and holder["started_at"]
    assert locks.try_acquire(path) is None  # held by a live process (this one)
    lock.release()
    assert not path.exists()


def test_a_stale_lock_of_a_dead_pid_is_taken_over_but_not_one_from_another_host(tmp_path):
    stale = tmp_path / "a" / "run.lock"
    _write_lock(stale, _dead_pid())
    lock = locks.try_acquire(stale)
    assert lock is not None and json.loads(stale.read_text())["pid"] == os.getpid()
    remote = tmp_path / "b" / "run.lock"
    _write_lock(remote, _dead_pid(), host="some-other-node")  # its pid cannot be checked from here
    assert locks.try_acquire(remote) is None


def _hold(path: str, ready, release) -> None:
    lock = locks.try_acquire(Path(path))
    ready.set()
    release.wait(30)
    lock.release()


def test_a_lock_held_by_another_live_process_blocks_until_it_is_released(tmp_path):
    context = multiprocessing.get_context("spawn")
    ready, release = context.Event(), context.Event()
    path = tmp_path / "run.lock"
    holder = context.Process(target=_hold, args=(str(path), ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        assert locks.try_acquire(path) is None
        assert json.loads(path.read_text())["pid"] == holder.pid
        assert locks.acquire(path, timeout=0.5) is None  # waiting times out while it is held
        release.set()
        assert locks.acquire(path, timeout=30) is not None
    finally:
        release.set()
        holder.join(30)


def test_a_run_held_by_a_live_process_is_skipped_as_running_and_a_dead_ones_lock_is_taken_over(tmp_path):
    spec = make_specs(["itq"], "synthetic", [16], [0], {}, TINY)[0]
    folder = RunFolder.of(tmp_path, spec).path
    context = multiprocessing.get_context("spawn")
    ready, release = context.Event(), context.Event()
    holder = context.Process(target=_hold, args=(str(folder / run_folder.LOCK_FILE), ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        outcome = ssvh_bench.run("itq", "synthetic", bits=16, dataset_params=TINY, results_dir=tmp_path)[0]
        assert outcome.status == "running" and f"process {holder.pid}" in outcome.error
        assert not (folder / "metrics.json").exists()
    finally:
        release.set()
        holder.join(30)
    # a killed run: its lock (dead pid, this host) and a half-written temporary file stay behind
    _write_lock(folder / run_folder.LOCK_FILE, _dead_pid())
    (folder / ".metrics.json.abc.tmp").write_text("{")
    outcome = ssvh_bench.run("itq", "synthetic", bits=16, dataset_params=TINY, results_dir=tmp_path)[0]
    assert outcome.status == "finished"
    assert sorted(p.name for p in folder.iterdir()) == ["codes.npz", "config.json", "metrics.json", "per_query.npz", "run.log"]


def _build_counted(cache_dir: str, log: str, start) -> None:
    start.wait(30)

    def build():
        with open(log, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        time.sleep(0.5)  # long enough that the other process arrives while this one builds
        return np.arange(5)

    value = ArtefactCache(Path(cache_dir)).get_or_build(
        "demo", {"n": 5}, build, save=lambda v, f: np.save(f / "v.npy", v), load=lambda f: np.load(f / "v.npy"))
    assert value.tolist() == [0, 1, 2, 3, 4]


def test_two_processes_build_a_stage1_artefact_once(tmp_path):
    context = multiprocessing.get_context("spawn")
    start, log = context.Event(), tmp_path / "builds.txt"
    cache = tmp_path / "cache"
    # a staging folder left by a builder that was killed is removed by the next build
    (cache / "demo").mkdir(parents=True)
    killed = cache / "demo" / f".{ArtefactCache(cache).folder('demo', {'n': 5}).name}.x1.tmp"
    killed.mkdir()
    workers = [context.Process(target=_build_counted, args=(str(cache), str(log), start)) for _ in range(2)]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0]
    assert len(log.read_text().split()) == 1  # built once; the other process loaded it
    assert not killed.exists()
    assert sorted(p.name for p in (cache / "demo").iterdir()) == [ArtefactCache(cache).folder("demo", {"n": 5}).name]
