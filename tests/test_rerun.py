"""Re-running a grid whose runs are finished, failed, running (lock held) and pending, mixed: every launcher
prints one summary and no traceback (issue 25: the Slurm launcher's finished runs came back without metrics and
the printer indexed them)."""

from __future__ import annotations

import json

import pytest

import ssvh_bench
from ssvh_bench import locks
from ssvh_bench.config import make_specs
from ssvh_bench.run_folder import RunFolder

from conftest import TINY, dataset_options, invoke

SEEDS = [0, 1, 2, 3]  # finished, failed, running, pending


def _mixed_grid(results_dir):
    """Seed 0 finished, seed 1 failed, seed 2 held by a live process (this one), seed 3 never started."""
    specs = make_specs(["lsh"], "synthetic", [16], SEEDS, {}, TINY)
    ssvh_bench.run("lsh", "synthetic", bits=16, seeds=0, dataset_params=TINY, results_dir=results_dir)
    failed = RunFolder.of(results_dir, specs[1])
    failed.path.mkdir(parents=True)
    failed.record_failure(RuntimeError("boom"))
    running = RunFolder.of(results_dir, specs[2])
    running.path.mkdir(parents=True)
    return specs, locks.try_acquire(running.lock)


def _rerun(results_dir, *launcher):
    return invoke("run", "--method", "lsh", "--bits", "16", "--seed", ",".join(map(str, SEEDS)),
                  *dataset_options(TINY), "--results-dir", results_dir, *launcher)


def _summary_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "run(s) done" in line]


def test_inline_rerun_of_a_mixed_grid_prints_one_summary(tmp_path):
    specs, held = _mixed_grid(tmp_path)
    with held:
        result = _rerun(tmp_path)
    assert result.exception is None and result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert _summary_lines(result.output) == [
        f"2 run(s) done, 1 skipped, 0 failed, 1 running; run folders under {tmp_path / 'runs'}"]
    assert "finished before, skipped (--force redoes it): map@5=" in result.output
    assert [RunFolder.of(tmp_path, spec).is_finished() for spec in specs] == [True, True, False, True]


@pytest.mark.slow
def test_local_rerun_of_a_mixed_grid_prints_one_summary(tmp_path):
    specs, held = _mixed_grid(tmp_path)
    with held:
        result = _rerun(tmp_path, "--launcher", "local", "--jobs", "2")
    assert result.exception is None and result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert _summary_lines(result.output) == [
        f"2 run(s) done, 1 skipped, 0 failed, 1 running; run folders under {tmp_path / 'runs'}"]
    assert [RunFolder.of(tmp_path, spec).is_finished() for spec in specs] == [True, True, False, True]


def test_slurm_rerun_of_a_mixed_grid_prints_one_summary(tmp_path):
    """Through submitit's debug executor (it submits nothing: the jobs would run in this process on demand),
    which is the launcher's path up to the printer, where finished runs crashed it before."""
    specs, held = _mixed_grid(tmp_path)
    config = tmp_path / "slurm.toml"
    config.write_text('[slurm]\ncluster = "debug"\n')
    with held:
        result = _rerun(tmp_path, "--launcher", "slurm", "--config", config)
    assert result.exception is None and result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert _summary_lines(result.output) == [
        f"0 run(s) done, 1 skipped, 0 failed, 1 running, 2 submitted; run folders under {tmp_path / 'runs'}"]
    assert "finished before, skipped (--force redoes it): map@5=" in result.output
    submitted = [json.loads(RunFolder.of(tmp_path, spec).submission.read_text())["spec"]["seed"]
                 for spec in specs if RunFolder.of(tmp_path, spec).submission.exists()]
    assert sorted(submitted) == [1, 3]  # the failed and the pending run; never the finished or the running one
