"""The Slurm launcher on a real Slurm (``.ci/start-slurm`` starts a single-node one on CI): a shallow grid, a
deep run stopped by Slurm's warning signal and requeued, a cancelled run that is rerun, and reruns of finished
runs; metrics and codes equal inline runs. Without a reachable Slurm every test here skips, saying why."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from ssvh_bench.run_folder import RunFolder

from conftest import TINY, dataset_options, invoke


def _slurm_missing() -> str | None:
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "no Slurm commands here (CI starts one with .ci/start-slurm)"
    done = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0 or not any(state.strip(" *~#") in ("idle", "mixed", "allocated")
                                       for state in done.stdout.split()):
        return f"Slurm is not reachable or has no node up ({(done.stderr or done.stdout).strip()[:120]})"
    return None


pytestmark = [pytest.mark.slurm, pytest.mark.slow,
              pytest.mark.skipif(_slurm_missing() is not None, reason=str(_slurm_missing()))]

# one core and a little memory per run, so runs share the node side by side (--slurm-mem decides the packing)
SLURM = ["--launcher", "slurm", "--slurm-cpus-per-run", "1", "--slurm-mem", "1G"]
TEN_MINUTES = ["--slurm-time", "10"]
# a ConMH run long enough to be signalled and cancelled in the middle on an idle machine too: about 75 s of
# training on one idle core (Slurm checks time limits about every 30 s, and KillWait is 10 s)
CONMH = ["--set", "variant=mini", "--set", "epochs=900", "--set", "batch_size=16", "--set", "encoder_dim=16",
         "--set", "decoder_dim=8"]
WAIT_S = 900


def _run(results_dir: Path, method: str, *extra: object):
    return invoke("run", "--method", method, "--bits", "16", "--seed", "0", *dataset_options(TINY), "--device", "cpu",
                  "--results-dir", results_dir, *extra)


def _folders(results_dir: Path) -> list[RunFolder]:
    return RunFolder.all(results_dir)


def _comparable(folder: RunFolder) -> dict:
    """What must not depend on where a run ran: its metrics but timings, and its codes."""
    metrics = folder.read_metrics() or {}
    return {key: value for key, value in metrics.items() if key.startswith("map@") or key.startswith("prec")
            or key in ("codes_sha256", "n_params")}


def _wait(condition, what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1)
    queue = subprocess.run(["squeue"], capture_output=True, text=True, check=False).stdout
    raise AssertionError(f"timed out waiting for {what}; squeue:\n{queue}")


def _all_finished(results_dir: Path, count: int) -> bool:
    folders = _folders(results_dir)
    return len(folders) == count and all(folder.is_finished() for folder in folders)


def _job_of(folder: RunFolder) -> str:
    return json.loads(folder.submission.read_text())["job_id"]


def _job_gone(job_id: str) -> bool:
    out = subprocess.run(["squeue", "-h", "-o", "%i", "-j", job_id.split("_")[0]], capture_output=True, text=True,
                         check=False).stdout
    return job_id not in out.split()


def _finished_starting_now(folder: RunFolder, job: str) -> bool:
    """Whether ``folder``'s run finished; meanwhile a requeued ``job`` need not wait Slurm's requeue delay
    (two minutes) before it starts again."""
    subprocess.run(["scontrol", "update", f"jobid={job.split('_')[0]}", "StartTime=now"], capture_output=True,
                   check=False)
    return folder.is_finished()


def _epochs_done(folder: RunFolder) -> int:
    return len(folder.read_history() or [])


def _conmh_training_on_slurm(results_dir: Path, checkpoint_minutes: str) -> tuple[RunFolder, str]:
    """Submit the ConMH run and wait until its job has trained 3 epochs; its folder and job id."""
    submitted = _run(results_dir, "conmh", *CONMH, *SLURM, *TEN_MINUTES, "--checkpoint-minutes", checkpoint_minutes)
    assert submitted.exit_code == 0, submitted.output
    (folder,) = _folders(results_dir)
    job = _job_of(folder)
    _wait(lambda: _epochs_done(folder) >= 3, "3 epochs of training")
    return folder, job


@pytest.fixture(scope="module")
def conmh_inline(tmp_path_factory) -> RunFolder:
    """The uninterrupted inline ConMH run the Slurm runs must reproduce."""
    results = tmp_path_factory.mktemp("inline")
    result = _run(results, "conmh", *CONMH, "--threads", "1")
    assert result.exit_code == 0, result.output
    (folder,) = _folders(results)
    return folder


def test_a_shallow_grid_runs_as_a_job_array_and_a_rerun_skips_it(tmp_path):
    submitted = _run(tmp_path / "slurm", "lsh,itq,pcah", *SLURM, *TEN_MINUTES)
    assert submitted.exit_code == 0, submitted.output
    assert "0 run(s) done, 0 skipped, 0 failed, 3 submitted" in submitted.output
    _wait(lambda: _all_finished(tmp_path / "slurm", 3), "the array's 3 runs")
    inline = _run(tmp_path / "inline", "lsh,itq,pcah")
    assert inline.exit_code == 0, inline.output
    slurm_runs, inline_runs = _folders(tmp_path / "slurm"), _folders(tmp_path / "inline")
    assert [_comparable(run) for run in slurm_runs] == [_comparable(run) for run in inline_runs]
    # the job's log has the lines an inline run prints
    log = Path(json.loads(slurm_runs[0].submission.read_text())["stdout"]).read_text()
    assert "training on 64 videos" in log and "evaluating" in log
    again = _run(tmp_path / "slurm", "lsh,itq,pcah", *SLURM, *TEN_MINUTES)
    assert again.exit_code == 0 and again.exception is None, again.output
    assert "Traceback" not in again.output
    assert [line for line in again.output.splitlines() if "run(s) done" in line] == [
        f"0 run(s) done, 3 skipped, 0 failed; run folders under {tmp_path / 'slurm' / 'runs'}"]
    status = invoke("status", "--results-dir", tmp_path / "slurm")
    assert status.exit_code == 0 and status.output.splitlines()[-1] == "0 pending, 0 running, 3 finished, 0 failed"


def test_a_deep_run_warned_of_its_time_limit_saves_is_requeued_and_ends_with_the_inline_codes(tmp_path,
                                                                                               conmh_inline):
    folder, job = _conmh_training_on_slurm(tmp_path, "10")
    # what Slurm sends ahead of a time limit (submitit asks for SIGUSR2 90 s before it) and on preemption
    subprocess.run(["scancel", "--signal=USR2", job], check=True)
    _wait(lambda: folder.checkpoint.is_file(), "the checkpoint saved on the signal", timeout=60)
    _wait(lambda: _finished_starting_now(folder, job), "the requeued job to finish the run")
    config = folder.read_config()
    assert len(config["resumed_at"]) == 1 and "started_over_at" not in config and config["slurm_job_id"] == job
    assert _comparable(folder) == _comparable(conmh_inline)
    log = Path(json.loads(folder.submission.read_text())["stdout"]).read_text()
    assert "checkpoint saved; requeuing the job" in log and "Requeued job" in log
    assert "epoch 900/900" in log  # the requeued job's lines follow the first's in the same log


def test_a_deep_run_killed_by_its_time_limit_is_requeued_until_it_ends_with_the_inline_codes(tmp_path, conmh_inline):
    """A one-minute limit: Slurm warns the job (SIGUSR2, 90 s ahead, so at its first time-limit check) and
    would kill it; each time the run saves, submitit requeues the job and the run goes on from there."""
    submitted = _run(tmp_path, "conmh", *CONMH, *SLURM, "--slurm-time", "1", "--checkpoint-minutes", "10")
    assert submitted.exit_code == 0, submitted.output
    (folder,) = _folders(tmp_path)
    _wait(lambda: _finished_starting_now(folder, _job_of(folder)), "the run, requeued after each time limit")
    log = Path(json.loads(folder.submission.read_text())["stdout"]).read_text()
    if "requeuing the job" not in log:
        pytest.skip("the run finished before Slurm's first time-limit check: too fast a machine for this test")
    assert "this job is timed-out" in log
    assert len(folder.read_config()["resumed_at"]) == log.count("checkpoint saved; requeuing the job")
    assert _comparable(folder) == _comparable(conmh_inline)


def test_a_cancelled_run_is_failed_with_its_reason_and_a_rerun_resumes_it_to_the_inline_codes(tmp_path,
                                                                                                conmh_inline):
    folder, job = _conmh_training_on_slurm(tmp_path, "0")
    subprocess.run(["scancel", job], check=True)  # the run goes on for the cluster's KillWait, then is killed
    _wait(lambda: _job_gone(job) or folder.is_finished(), "the cancelled job to end")
    if folder.is_finished():
        pytest.skip("the run finished within KillWait: too fast a machine to cancel it in the middle")
    status = invoke("status", "--results-dir", tmp_path, "--show", "failed")
    assert status.exit_code == 0, status.output
    assert status.output.splitlines()[-1] == "0 pending, 0 running, 0 finished, 1 failed"
    error = folder.read_error()
    assert error["error"].startswith(f"job {job} ended (CANCELLED) before the run finished")
    assert folder.error_log.is_file()
    rerun = _run(tmp_path, "conmh", *CONMH, *SLURM, *TEN_MINUTES, "--checkpoint-minutes", "0")
    assert rerun.exit_code == 0 and "1 submitted" in rerun.output, rerun.output
    _wait(folder.is_finished, "the resubmitted run")
    config = folder.read_config()
    assert len(config["resumed_at"]) == 1 and config["slurm_job_id"] == _job_of(folder) != job
    assert folder.read_error() is None
    assert _comparable(folder) == _comparable(conmh_inline)


def test_a_job_that_dies_before_its_run_starts_leaves_a_failed_run(tmp_path):
    """A job cancelled while it still waits in the queue never writes anything: status finds it failed."""
    submitted = _run(tmp_path, "lsh", *SLURM, *TEN_MINUTES, "--slurm-param", "begin=now+600")  # held in the queue
    assert submitted.exit_code == 0, submitted.output
    (folder,) = _folders(tmp_path)
    job = _job_of(folder)
    pending = invoke("status", "--results-dir", tmp_path)
    assert pending.output.splitlines()[-1] == "1 pending, 0 running, 0 finished, 0 failed", pending.output
    assert f"job {job} PENDING" in pending.output
    again = _run(tmp_path, "lsh", *SLURM, *TEN_MINUTES)  # a queued run is not submitted twice
    assert "0 submitted" not in again.output and "1 running" in again.output, again.output
    subprocess.run(["scancel", job], check=True)
    _wait(lambda: _job_gone(job) or "CANCELLED" in subprocess.run(
        ["squeue", "-h", "-t", "all", "-o", "%T", "-j", job], capture_output=True, text=True).stdout, "the cancel")
    status = invoke("status", "--results-dir", tmp_path, "--show", "failed")
    assert status.output.splitlines()[-1] == "0 pending, 0 running, 0 finished, 1 failed", status.output
    assert folder.read_error()["error"].startswith(f"job {job} ended (CANCELLED)")
