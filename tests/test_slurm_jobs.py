"""Asking Slurm about jobs without accounting: one quiet sacct call, one squeue call, for every job of a
command (fake sacct and squeue on PATH record how they were called)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from ssvh_bench import launchers, slurm_jobs
from ssvh_bench.config import make_specs
from ssvh_bench.run_folder import RunFolder

from conftest import TINY, invoke

CALLS = "calls.log"


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """sacct fails as on a cluster without accounting; squeue knows jobs 7_0 (RUNNING) and 7_1 (PENDING)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = {
        "sacct": 'echo "sacct $*" >> {log}; echo "Slurm accounting storage is disabled" >&2; exit 1',
        "squeue": 'echo "squeue $*" >> {log}; printf "7_0|RUNNING\\n7_1|PENDING\\n"',
    }
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + body.format(log=tmp_path / CALLS) + "\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return tmp_path / CALLS


def test_job_states_ask_sacct_once_then_squeue_once_and_say_which_jobs_ended(fake_slurm):
    states = slurm_jobs.job_states(["7_0", "7_1", "7_2", "9"])
    assert states == {"7_0": "RUNNING", "7_1": "PENDING", "7_2": slurm_jobs.ENDED, "9": slurm_jobs.ENDED}
    calls = fake_slurm.read_text().splitlines()
    assert [call.split()[0] for call in calls] == ["sacct", "squeue"]
    assert calls[0].endswith("-j 7,9") and calls[1].endswith("-j 7,9")


def test_without_slurm_commands_every_job_is_unknown(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert slurm_jobs.job_states(["7_0"]) == {"7_0": slurm_jobs.UNKNOWN}
    assert slurm_jobs.job_states([]) == {}


def test_status_asks_slurm_once_for_all_runs_quietly_and_records_a_job_that_ended_as_failed(fake_slurm, tmp_path):
    specs = make_specs(["itq"], "synthetic", [16], [0, 1, 2], {}, TINY)
    for spec, job in zip(specs, ("7_0", "7_1", "7_2")):
        folder = RunFolder.of(tmp_path / "results", spec)
        folder.path.mkdir(parents=True)
        stderr = tmp_path / f"{job}.err"
        stderr.write_text("Traceback (most recent call last):\nImportError: libcuda.so.1 not found\n")
        folder.submission.write_text(json.dumps({"cluster": "slurm", "job_id": job, "spec": spec.to_dict(),
                                                 "log_folder": str(tmp_path / "logs" / job),
                                                 "stderr": str(stderr)}))
    result = invoke("status", "--results-dir", tmp_path / "results")
    assert result.exit_code == 0, result.output
    assert [call.split()[0] for call in fake_slurm.read_text().splitlines()] == ["sacct", "squeue"]
    assert "accounting" not in result.output
    assert result.output.splitlines()[-1] == "1 pending, 1 running, 0 finished, 1 failed"
    error = RunFolder.of(tmp_path / "results", specs[2]).read_error()
    assert error["error"] == (f"job 7_2 ended before the run finished: ImportError: libcuda.so.1 not found "
                              f"(job log: {tmp_path / '7_2.err'})")
    assert "ImportError" in RunFolder.of(tmp_path / "results", specs[2]).error_log.read_text()
    # a queued run is not submitted again
    plan = launchers.slurm_plan(specs, tmp_path / "results", {})
    assert plan.submit == [specs[2]] and [spec for spec, _ in plan.running] == specs[:2]
