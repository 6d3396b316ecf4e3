"""Launchers: parallel local processes and Slurm job arrays (through submitit's local executor), and status."""

from __future__ import annotations

import json
import os
import time

import pytest
from typer.testing import CliRunner

import ssvh_bench
from ssvh_bench import locks, run_folder
from ssvh_bench.cli import app
from ssvh_bench.config import make_specs
from ssvh_bench.errors import ConfigError
from ssvh_bench.launchers import (Slot, grid_status, plan_slots, parse_minutes, run_status,
                                  slurm_parameters)
from ssvh_bench.run_folder import RunFolder

TINY = {"n_train": 60, "n_database": 60, "n_frames": 4, "feature_dim": 40, "n_classes": 3}
TINY_OPTIONS = [option for key, value in TINY.items() for option in ("--dataset-param", f"{key}={value}")]
GRID = ["-m", "itq,lsh", "-b", "16,32", *TINY_OPTIONS]  # 4 runs
TIMING = ("train_seconds", "encode_ms_per_video", "encode_timed_videos")


def _comparable(folder):
    _, metrics = RunFolder(folder).finished()
    return {k: v for k, v in metrics.items() if k not in TIMING}


@pytest.mark.slow
def test_local_launcher_runs_a_4_run_grid_in_2_pinned_processes_and_matches_inline(tmp_path):
    runner = CliRunner()
    local = runner.invoke(app, ["run", *GRID, "--results-dir", str(tmp_path / "local"), "--launcher", "local",
                                "--jobs", "2"])
    assert local.exit_code == 0, local.output
    assert "4 run(s) done, 0 skipped, 0 failed" in local.output
    inline = ssvh_bench.run(["itq", "lsh"], "synthetic", bits=[16, 32], dataset_params=TINY,
                            results_dir=tmp_path / "inline")
    assert [o.status for o in inline] == ["finished"] * 4
    threads = set()
    for outcome in inline:
        folder = RunFolder.of(tmp_path / "local", outcome.spec).path
        assert _comparable(folder) == _comparable(outcome.folder)  # same metrics and codes checksum
        config = json.loads((folder / "config.json").read_text())
        threads.add(config.get("threads"))
    cores = len(os.sched_getaffinity(0))
    assert threads == {max(cores // 2, 1)}  # each worker's torch threads: its share of the cores
    again = ssvh_bench.run(["itq", "lsh"], "synthetic", bits=[16, 32], dataset_params=TINY,
                           results_dir=tmp_path / "local", launcher="local", jobs=2)
    assert [o.status for o in again] == ["skipped"] * 4


def test_cores_and_gpus_are_shared_out_between_local_workers():
    assert plan_slots(2, [0, 1, 2, 3, 4], []) == [Slot((0, 1)), Slot((2, 3, 4))]
    assert plan_slots(3, [0, 1], ["0", "1"]) == [Slot((0,), "0"), Slot((1,), "1"), Slot((0,), "0")]
    assert Slot((4, 5), "1").environment() == {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2",
                                                "CUDA_VISIBLE_DEVICES": "1"}


@pytest.mark.parametrize("text, minutes", [("90", 90), ("1:30:00", 90), ("0:30", 1), ("2-00:00:00", 2880),
                                           ("1-12", 2160), ("10:30", 11)])
def test_slurm_time_formats_become_minutes(text, minutes):
    assert parse_minutes(text) == minutes


def test_slurm_settings_map_to_submitit_parameters_and_typos_are_refused():
    assert slurm_parameters({"partition": "gpu", "time": "2:00:00", "gpus_per_run": 1, "cpus_per_run": 8,
                             "mem": "32G", "array_parallelism": 4, "params": {"account": "abc"}}) == {
        "slurm_partition": "gpu", "timeout_min": 120, "gpus_per_node": 1, "cpus_per_task": 8, "slurm_mem": "32G",
        "slurm_array_parallelism": 4, "slurm_additional_parameters": {"account": "abc"}}
    with pytest.raises(ConfigError, match="unknown Slurm setting"):
        slurm_parameters({"partion": "gpu"})
    with pytest.raises(ConfigError, match="Slurm time"):
        parse_minutes("an hour")


def test_slurm_dry_run_shows_the_array_without_submitting(tmp_path):
    ssvh_bench.run("itq", "synthetic", bits=16, dataset_params=TINY, results_dir=tmp_path)  # finished: not sent
    config = tmp_path / "grid.toml"
    config.write_text('[slurm]\npartition = "gpu"\ntime = "1:30:00"\nmem = "16G"\n')
    result = CliRunner().invoke(app, ["run", *GRID, "--results-dir", str(tmp_path), "--launcher", "slurm",
                                      "--dry-run", "--config", str(config), "--slurm-gpus-per-run", "1",
                                      "--slurm-time", "45", "--slurm-param", "account=abc"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "dry run: would submit a job array of 3 task(s) to slurm"
    assert lines[1:7] == ["  gpus_per_node = 1", "  slurm_additional_parameters = {'account': 'abc'}",
                          "  slurm_mem = 16G", "  slurm_partition = gpu", "  timeout_min = 45",
                          "  [0] itq synthetic 32 bits seed 0 (dataset.feature_dim=40;dataset.n_classes=3;"
                          "dataset.n_database=60;dataset.n_frames=4;dataset.n_train=60) -> "
                          + str(RunFolder.of(tmp_path, make_specs(["itq"], "synthetic", [32], [0], {}, TINY)[0]).path)]
    assert lines[-1] == "not submitted: 1 finished, 0 queued or running"
    assert not (tmp_path / "slurm").exists()
    assert len(list((tmp_path / "runs").glob("*/*/*/*"))) == 1  # nothing written for the three others


def _wait_until_finished(results_dir, specs, timeout=240.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [run_status(RunFolder.of(results_dir, spec).path).status for spec in specs]
        if all(state == "finished" for state in states):
            return
        time.sleep(0.5)
    raise AssertionError(f"runs not finished: {states}")


@pytest.mark.slow
def test_slurm_launcher_submits_pending_runs_through_submitit_and_status_follows_them(tmp_path):
    slurm = {"cluster": "local", "time": "10", "cpus_per_run": 1}  # submitit's local executor
    submitted = ssvh_bench.run(["itq", "lsh"], "synthetic", bits=16, dataset_params=TINY, results_dir=tmp_path,
                               launcher="slurm", slurm=slurm)
    assert [o.status for o in submitted] == ["submitted", "submitted"]
    for outcome in submitted:
        record = json.loads((outcome.folder / run_folder.SUBMISSION_FILE).read_text())
        assert record["job_id"] == outcome.job_id and record["spec"]["run_id"] == outcome.spec.run_id
    _wait_until_finished(tmp_path, [o.spec for o in submitted])
    inline = ssvh_bench.run(["itq", "lsh"], "synthetic", bits=16, dataset_params=TINY, results_dir=tmp_path / "b")
    for outcome, reference in zip(submitted, inline):
        assert _comparable(outcome.folder) == _comparable(reference.folder)
    # finished runs are never submitted again
    again = ssvh_bench.run(["itq", "lsh"], "synthetic", bits=16, dataset_params=TINY, results_dir=tmp_path,
                           launcher="slurm", slurm=slurm)
    assert [o.status for o in again] == ["skipped", "skipped"]
    result = CliRunner().invoke(app, ["status", "--results-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "0 pending, 0 running, 2 finished, 0 failed"


def test_status_reads_pending_running_finished_and_failed_from_run_folders(tmp_path):
    specs = make_specs(["itq"], "synthetic", [16], [0, 1, 2, 3], {}, TINY)
    ssvh_bench.run("itq", "synthetic", bits=16, seeds=0, dataset_params=TINY, results_dir=tmp_path)
    held = locks.try_acquire(RunFolder.of(tmp_path, specs[1]).path / run_folder.LOCK_FILE)  # a live holder: this process
    (RunFolder.of(tmp_path, specs[2]).path).mkdir(parents=True)
    (RunFolder.of(tmp_path, specs[2]).path / "error.json").write_text('{"error": "boom"}')
    dead = RunFolder.of(tmp_path, specs[3]).path / run_folder.LOCK_FILE
    dead.parent.mkdir(parents=True)
    dead.write_text(json.dumps({"pid": 2**22 + 7, "host": os.uname().nodename}))  # above pid_max: dead
    states = {label.split("seed ")[1][0]: state for label, state in grid_status(tmp_path, specs)}
    assert {seed: state.status for seed, state in states.items()} == {
        "0": "finished", "1": "running", "2": "failed", "3": "pending"}
    assert states["2"].detail == "boom" and f"pid {os.getpid()}" in states["1"].detail
    assert not dead.exists()  # a dead holder's lock is cleared: the run is pending again and resumes
    held.release()


def test_a_run_whose_job_died_is_submitted_again_and_one_whose_job_lives_is_not(tmp_path):
    from ssvh_bench.launchers import slurm_plan

    died, alive = make_specs(["itq"], "synthetic", [16], [0, 1], {}, TINY)
    for spec, pid in ((died, 2**22 + 7), (alive, os.getpid())):  # local executor: the job id is its pid
        folder = RunFolder.of(tmp_path, spec).path
        folder.mkdir(parents=True)
        (folder / run_folder.SUBMISSION_FILE).write_text(json.dumps({"cluster": "local", "job_id": str(pid),
                                                          "log_folder": str(tmp_path / "logs")}))
    (RunFolder.of(tmp_path, died).path / run_folder.LOCK_FILE).write_text(json.dumps({"pid": 2**22 + 7, "host": os.uname().nodename}))
    plan = slurm_plan([died, alive], tmp_path, {"cluster": "local"})
    assert plan.submit == [died]
    assert [(spec, why) for spec, why in plan.running] == [(alive, f"job {os.getpid()} RUNNING")]
