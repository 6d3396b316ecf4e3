"""What Slurm says about jobs, asked once for all of them: ``sacct`` (quietly: a cluster without accounting
answers with an error), then ``squeue`` (which also lists jobs that ended in the last ``MinJobAge`` seconds)
for those sacct did not know; a job neither knows has ``ENDED`` (its submitit files then tell how)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable

ENDED = "ENDED"  # neither sacct nor squeue knows the job any more
UNKNOWN = "UNKNOWN"  # Slurm cannot be asked here (e.g. reading the results on a laptop)
QUERY_TIMEOUT_S = 30


def current_job_id() -> str | None:
    """The job (array task: ``<array job>_<task>``, as submitit and sacct name it) this process runs in."""
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ.get('SLURM_ARRAY_TASK_ID', '0')}"
    return os.environ.get("SLURM_JOB_ID") or None


def job_states(job_ids: Iterable[str]) -> dict[str, str]:
    """Slurm's state of each job (``RUNNING``, ``PENDING``, ``COMPLETED``, ``TIMEOUT``...), ``ENDED`` for a job
    Slurm no longer knows, ``UNKNOWN`` for all when neither command can be run: one sacct call and at most one
    squeue call."""
    wanted = sorted({str(job_id) for job_id in job_ids})
    if not wanted:
        return {}
    arrays = sorted({job_id.split("_")[0] for job_id in wanted})  # sacct and squeue take the array job's id
    states: dict[str, str] = {}
    sacct = _query(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(arrays)])
    states.update({job: state for job, state in _parse(sacct or "") if job in wanted})
    missing = [job_id for job_id in wanted if job_id not in states]
    if missing:
        squeue = _query(["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T", "-j",
                         ",".join(sorted({job.split("_")[0] for job in missing}))])
        if sacct is None and squeue is None:
            return {job_id: UNKNOWN for job_id in wanted}
        states.update({job: state for job, state in _parse(squeue or "") if job in wanted})
    return {job_id: states.get(job_id, ENDED) for job_id in wanted}


def _query(command: list[str]) -> str | None:
    """The command's output; None when it cannot run or fails (its stderr is not shown)."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=QUERY_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode == 0:
        return done.stdout
    return "" if "Invalid job id" in done.stderr else None  # squeue: none of the jobs is known any more


def _parse(output: str) -> list[tuple[str, str]]:
    """(job id, state) of ``id|STATE`` lines; ``CANCELLED by 0`` is ``CANCELLED``."""
    pairs = []
    for line in output.splitlines():
        job, _, state = line.strip().partition("|")
        if job and state:
            pairs.append((job, state.split()[0]))
    return pairs
