"""Where a grid's runs execute: ``inline`` (here, one after the other), ``local`` (parallel processes on this
machine) or ``slurm`` (one submitit job array), and which runs are pending, running, finished or failed.

Every launcher runs a run the same way, through ``runner.run_specs`` on one spec, under the run folder's
lock, so launchers can be mixed and repeated: a finished run is skipped, a run that another live
process holds is reported ``running``, and an interrupted deep run resumes from its checkpoint.

``local`` starts ``jobs`` worker processes, each pinned to its share of the cores (CPU affinity,
``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` and torch's threads) and, on a CUDA machine, to one GPU
(``CUDA_VISIBLE_DEVICES``, round robin), and hands each worker the next pending run when it is free.

``slurm`` submits the pending runs as one job array and returns; each run folder gets a ``submission.json``
(the job id, submitit's folder with the job's logs, the run's spec), from which ``run_status`` reads the
job's state (Slurm is asked once for all runs: ``slurm_jobs``). A run whose job is queued or running is not
submitted again; a run whose job died (node failure, cancelled) is recorded failed with the job's reason and
is submitted again, and resumes from its checkpoint. Each job is a ``SlurmTask``: checkpointable, so a time
limit or a preemption requeues it and the run resumes (see ``docs/slurm.md``).
"""

from __future__ import annotations

import logging
import os
import queue
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import interruption, locks, slurm_jobs
from .checks import check_specs
from .config import RunSpec, read_config_file
from .errors import ConfigError, DataError, JobError
from .io import write_json
from .leaderboard import format_overrides
from .options import LaunchOptions, RunOptions
from .run_folder import RunFolder, default_results_dir
from .runner import RunEvent, RunResult, run_specs

SLURM_FOLDER = "slurm"  # <results>/slurm/<time stamp>/: submitit's scripts and the jobs' logs
SLURM_SETTINGS = ("cluster", "partition", "time", "gpus_per_run", "cpus_per_run", "mem", "array_parallelism",
                  "params")
# Slurm (sacct) states of a job that will still run its task, or is running it
SLURM_ALIVE = {"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "RESIZING", "SUSPENDED",
               "REQUEUE_HOLD", "REQUEUE_FED", "SIGNALING", "STAGE_OUT"}


@dataclass(frozen=True)
class RunContext:
    """What a worker process (local or a Slurm task) needs to execute a run as ``inline`` would."""

    options: RunOptions
    results_dir: Path
    data_root: Path | None

    def run_one(self, spec: RunSpec, threads: int | None) -> RunResult:
        """``spec`` run here, with ``threads`` torch threads unless the options name a number."""
        options = replace(self.options, threads=self.options.threads or threads)
        return run_specs([spec], options, results_dir=self.results_dir, data_root=self.data_root)[0]


def launch(
    specs: Sequence[RunSpec],
    options: RunOptions = RunOptions(),
    launch_options: LaunchOptions = LaunchOptions(),
    *,
    results_dir: Path | str | None = None,
    data_root: Path | str | None = None,
    keep_going: bool = True,
    on_event: Callable[[RunEvent], None] | None = None,
    progress: bool = False,
) -> list[RunResult]:
    """Run ``specs`` where ``launch_options`` say (see the module docstring); results in the order of ``specs``."""
    results_dir = Path(results_dir) if results_dir is not None else default_results_dir()
    launch_options.check()
    if launch_options.launcher == "inline":
        return run_specs(specs, options, results_dir=results_dir, data_root=data_root, keep_going=keep_going,
                         on_event=on_event, progress=progress)
    check_specs(specs, options, results_dir=results_dir, data_root=data_root)
    context = RunContext(options, results_dir.resolve(), None if data_root is None else Path(data_root).resolve())
    if launch_options.launcher == "local":
        return run_local(specs, jobs=launch_options.jobs, context=context, keep_going=keep_going, on_event=on_event)
    plan = slurm_plan(specs, results_dir, launch_options.slurm, force=options.force)
    return submit_slurm(plan, context, on_event=on_event)


# ---- local: parallel processes on this machine ------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """What one local worker may use: CPU cores, and a GPU when there are any (None: leave it as it is)."""

    cores: tuple[int, ...]
    gpu: str | None = None

    def environment(self) -> dict[str, str]:
        env = {"OMP_NUM_THREADS": str(len(self.cores)), "MKL_NUM_THREADS": str(len(self.cores))}
        if self.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.gpu
        return env


def plan_slots(jobs: int, cores: Sequence[int], gpus: Sequence[str]) -> list[Slot]:
    """Split ``cores`` into ``jobs`` contiguous shares (as even as possible, at least one core each, shared
    round robin when there are more jobs than cores) and give worker i GPU ``gpus[i % len(gpus)]``."""
    cores = sorted(cores)
    if jobs <= len(cores):
        bounds = [round(i * len(cores) / jobs) for i in range(jobs + 1)]
        shares = [tuple(cores[bounds[i]:bounds[i + 1]]) for i in range(jobs)]
    else:
        shares = [(cores[i % len(cores)],) for i in range(jobs)]
    return [Slot(share, gpus[i % len(gpus)] if gpus else None) for i, share in enumerate(shares)]


def visible_gpus(device: str) -> list[str]:
    """The GPUs local workers are spread over: none for the CPU or an explicit ``cuda:N`` (all workers use
    that one), else CUDA_VISIBLE_DEVICES' entries or every GPU torch sees."""
    if device == "cpu" or ":" in device:
        return []
    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        return [gpu for gpu in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if gpu.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def run_local(specs: Sequence[RunSpec], *, jobs: int, context: RunContext, keep_going: bool = True,
              on_event: Callable[[RunEvent], None] | None = None) -> list[RunResult]:
    """Run ``specs`` in ``jobs`` pinned worker processes; ``on_event`` gets each run's start and outcome
    together when it ends (parallel runs would interleave their lines otherwise). Without ``keep_going``,
    no run starts after the first failure (results then hold only the runs that ran)."""
    import multiprocessing

    emit = on_event or (lambda event: None)
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    slots = plan_slots(min(jobs, len(specs)) or 1, cores, visible_gpus(context.options.device))
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter reads the slot's environment
    done: Any = spawn.Queue()
    workers = []
    for number, slot in enumerate(slots):
        tasks: Any = spawn.Queue()
        worker = spawn.Process(target=_local_worker, args=(number, slot, context, tasks, done), daemon=True)
        with _environment(slot.environment()):  # spawn copies os.environ when the process starts
            worker.start()
        workers.append((worker, tasks))
    outcomes: dict[int, RunResult] = {}
    waiting = list(enumerate(specs))
    busy: dict[int, int] = {}  # worker number -> index of its run
    stop = False
    try:
        for number in range(len(workers)):
            _hand_out(number, waiting, busy, workers)
        while busy:
            try:
                number, index, outcome = done.get(timeout=1.0)
            except queue.Empty:
                for number, index in list(busy.items()):  # a worker killed mid-run still ends its run
                    if not workers[number][0].is_alive():
                        folder = RunFolder.of(context.results_dir, specs[index]).path
                        outcome = RunResult(specs[index], folder, "failed", error=f"worker process died "
                                            f"(exit code {workers[number][0].exitcode})")
                        _finish(number, index, outcome, specs, outcomes, busy, emit)
                        stop = True
                continue
            _finish(number, index, outcome, specs, outcomes, busy, emit)
            stop = stop or (outcome.status == "failed" and not keep_going)
            if not stop:
                _hand_out(number, waiting, busy, workers)
    finally:
        for worker, tasks in workers:
            if worker.is_alive():
                tasks.put(None)
        for worker, _ in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.terminate()
    return [outcomes[index] for index in sorted(outcomes)]


def _hand_out(number: int, waiting: list, busy: dict[int, int], workers: list) -> None:
    if waiting:
        index, spec = waiting.pop(0)
        busy[number] = index
        workers[number][1].put((index, spec))


def _finish(number: int, index: int, outcome: RunResult, specs: Sequence[RunSpec], outcomes: dict,
            busy: dict, emit: Callable[[RunEvent], None]) -> None:
    busy.pop(number, None)
    outcomes[index] = outcome
    emit(RunEvent("start", index + 1, len(specs), specs[index]))
    emit(RunEvent(outcome.status, index + 1, len(specs), specs[index], outcome))


class _environment:
    """Set environment variables for the duration of a block."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values, self.saved = values, {}

    def __enter__(self) -> None:
        self.saved = {key: os.environ.get(key) for key in self.values}
        os.environ.update(self.values)

    def __exit__(self, *exc_info: object) -> None:
        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _local_worker(number: int, slot: Slot, context: RunContext, tasks: Any, done: Any) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, slot.cores)
    while (task := tasks.get()) is not None:
        index, spec = task
        done.put((number, index, context.run_one(spec, threads=len(slot.cores))))


# ---- slurm: one submitit job array ------------------------------------------------------------------------


@dataclass
class SlurmPlan:
    """What a Slurm submission would do: the runs to submit, those left alone, and submitit's parameters."""

    submit: list[RunSpec]
    finished: list[RunSpec] = field(default_factory=list)
    running: list[tuple[RunSpec, str]] = field(default_factory=list)  # (spec, why it is left alone)
    cluster: str = "slurm"
    parameters: dict[str, Any] = field(default_factory=dict)
    results_dir: Path = Path(".")


def slurm_parameters(settings: Mapping[str, Any]) -> dict[str, Any]:
    """submitit ``AutoExecutor.update_parameters`` arguments from our settings (see ``SLURM_SETTINGS``)."""
    unknown = sorted(set(settings) - set(SLURM_SETTINGS))
    if unknown:
        raise ConfigError(f"unknown Slurm setting(s) {', '.join(unknown)}; known: {', '.join(SLURM_SETTINGS)}")
    parameters: dict[str, Any] = {}
    if settings.get("partition"):
        parameters["slurm_partition"] = str(settings["partition"])
    if settings.get("time") is not None:
        parameters["timeout_min"] = parse_minutes(settings["time"])
    if settings.get("gpus_per_run") is not None:
        parameters["gpus_per_node"] = _positive(settings["gpus_per_run"], "gpus per run", allow_zero=True)
    if settings.get("cpus_per_run") is not None:
        parameters["cpus_per_task"] = _positive(settings["cpus_per_run"], "cpus per run")
    if settings.get("mem"):
        parameters["slurm_mem"] = str(settings["mem"])
    if settings.get("array_parallelism") is not None:
        parameters["slurm_array_parallelism"] = _positive(settings["array_parallelism"], "array parallelism")
    extra = dict(settings.get("params") or {})
    if extra:
        parameters["slurm_additional_parameters"] = {str(k): v for k, v in extra.items()}
    return parameters


def slurm_settings_from_file(path: Path) -> dict[str, Any]:
    """The ``[slurm]`` table of a config file (empty when there is none)."""
    table = read_config_file(path).get("slurm", {})
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path}: 'slurm' must be a table of Slurm settings")
    return table


def _positive(value: Any, what: str, allow_zero: bool = False) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be an integer, got {value!r}") from None
    if number < (0 if allow_zero else 1):
        raise ConfigError(f"{what} must be at least {0 if allow_zero else 1}, got {number}")
    return number


def parse_minutes(value: Any) -> int:
    """Slurm's time formats (``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``) as whole minutes, rounded up."""
    text = str(value).strip()
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
    if not match:
        raise ConfigError(f"Slurm time must look like 90, 1:30:00 or 2-00:00:00, got {value!r}")
    days, first, second, third = (int(part) if part else None for part in match.groups())
    if days is not None:  # D-HH, D-HH:MM, D-HH:MM:SS
        hours, minutes, seconds = first, second or 0, third or 0
    elif third is not None:
        hours, minutes, seconds = first, second, third
    else:  # MM or MM:SS
        hours, minutes, seconds = 0, first, second or 0
    total = ((days or 0) * 24 + hours) * 60 + minutes + (1 if seconds else 0)
    if total < 1:
        raise ConfigError(f"Slurm time must be at least a minute, got {value!r}")
    return total


def slurm_plan(specs: Sequence[RunSpec], results_dir: Path, settings: Mapping[str, Any], *,
               force: bool = False) -> SlurmPlan:
    """Which of ``specs`` a submission sends: all but the finished ones (unless ``force``) and those a live
    process or a queued/running job holds. A lock left by a job that died is removed here, so its run is
    submitted again and resumes."""
    settings = dict(settings)
    cluster = str(settings.pop("cluster", "slurm"))
    plan = SlurmPlan([], cluster=cluster, parameters=slurm_parameters(settings), results_dir=Path(results_dir))
    folders = [RunFolder.of(results_dir, spec).path for spec in specs]
    job_states = recorded_job_states(folders)
    for spec, folder in zip(specs, folders):
        state = run_status(folder, job_states)
        if state.status == "finished" and not force:
            plan.finished.append(spec)
        elif state.status == "running" or job_states.get(state.job_id or "") in SLURM_ALIVE:  # held, or queued
            plan.running.append((spec, state.detail))
        else:
            plan.submit.append(spec)
    return plan


@dataclass(frozen=True)
class SlurmTask:
    """One run as a Slurm job. Checkpointable in submitit's sense: on its warning before the time limit or a
    preemption (SIGUSR2), a deep run saves its state at the next batch or epoch bound (``interruption``), then
    submitit's handler calls ``checkpoint`` and requeues the job, which resumes the run from that state. The
    ``ssvh_bench`` log lines (per-epoch progress) go to the job's stdout, as an inline run shows them."""

    context: RunContext

    def __call__(self, spec: RunSpec, threads: int | None) -> RunResult:
        import signal

        _log_to_stdout()
        with interruption.on_signal(signal.SIGUSR2) as requeue:  # submitit's checkpoint-and-requeue handler
            try:
                return self.context.run_one(spec, threads)
            except interruption.Interrupted as stopped:
                logging.getLogger(__name__).info("%s: %s; requeuing the job", spec.method, stopped)
                if not callable(requeue):  # not under submitit (called directly): nothing requeues it
                    raise
                requeue(signal.SIGUSR2, None)  # checkpoint() below, ``scontrol requeue``, exit
                raise

    def checkpoint(self, spec: RunSpec, threads: int | None) -> Any:
        """What submitit runs when it requeues the job: this same run, which resumes from its checkpoint."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, spec, threads)


def _log_to_stdout() -> None:
    """The engine's INFO lines on stdout (the job's ``*_log.out``), once per process."""
    logger = logging.getLogger("ssvh_bench")
    if not any(getattr(handler, "ssvh_worker", False) for handler in logger.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
        handler.ssvh_worker = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def submit_slurm(plan: SlurmPlan, context: RunContext,
                 on_event: Callable[[RunEvent], None] | None = None) -> list[RunResult]:
    """Submit ``plan.submit`` as one job array (or nothing when it is empty) and record each run's job."""
    import submitit

    emit = on_event or (lambda event: None)
    outcomes = [_skipped(RunFolder.of(plan.results_dir, spec), spec) for spec in plan.finished]
    outcomes += [RunResult(spec, RunFolder.of(plan.results_dir, spec).path, "running", error=why)
                 for spec, why in plan.running]
    if plan.submit:
        log_folder = context.results_dir / SLURM_FOLDER / datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        executor = submitit.AutoExecutor(folder=log_folder / "%j", cluster=plan.cluster)
        executor.update_parameters(name="ssvh-bench", **plan.parameters)
        threads = plan.parameters.get("cpus_per_task")
        with executor.batch():
            jobs = [executor.submit(SlurmTask(context), spec, threads) for spec in plan.submit]
        for spec, job in zip(plan.submit, jobs):
            folder = RunFolder.of(plan.results_dir, spec)
            write_json(folder.submission, {
                "cluster": plan.cluster, "job_id": str(job.job_id), "log_folder": str(job.paths.folder),
                "stdout": str(job.paths.stdout), "stderr": str(job.paths.stderr), "spec": spec.to_dict(),
                "submitted_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
            outcomes.append(RunResult(spec, folder.path, "submitted", job_id=str(job.job_id)))
    for index, outcome in enumerate(outcomes, 1):
        emit(RunEvent(outcome.status, index, len(outcomes), outcome.spec, outcome))
    return outcomes


def _skipped(folder: RunFolder, spec: RunSpec) -> RunResult:
    """A finished run left alone, with its metrics (as ``run_one`` reports it)."""
    finished = folder.finished()
    return RunResult(spec, folder.path, "skipped", {} if finished is None else finished[1])


# ---- status: what the run folders say ---------------------------------------------------------------------


@dataclass(frozen=True)
class RunState:
    """One run folder's state: ``finished``, ``running``, ``failed`` or ``pending``; ``detail`` says more
    (who holds the lock, the error, the job's state); ``job_id``: the Slurm job that holds or held the run
    (it records itself in the lock and in ``config.json``), else the one it was last submitted as."""

    folder: Path
    status: str
    detail: str = ""
    job_id: str | None = None


def run_status(folder: Path, job_states: Mapping[str, str] | None = None) -> RunState:
    """The state of the run in ``folder`` (which need not exist: then the run is ``pending``). ``job_states``:
    the states of its jobs, asked for many runs at once (``recorded_job_states``); asked here when None.

    A run whose job ended before the run did and left no error (killed while starting, at its time limit,
    cancelled) is recorded failed here, with the job's state and the end of its stderr."""
    run = RunFolder(Path(folder))
    folder = run.path
    if job_states is None:
        job_states = recorded_job_states([folder])
    submission = read_submission(folder)
    submitted = None if submission is None else str(submission.get("job_id"))
    config = _tolerant(run.read_config) or {}
    if run.is_finished():
        return RunState(folder, "finished", "", config.get("slurm_job_id") or submitted)
    lock_path = run.lock
    holder = locks.read_holder(lock_path)
    if holder is not None:
        holder_job = holder.get("slurm_job_id")
        on_dead_job = holder_job is not None and job_states.get(holder_job, slurm_jobs.UNKNOWN) in ENDED_STATES
        if locks.holder_alive(lock_path, holder) and not on_dead_job:
            return RunState(folder, "running", f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} "
                                               f"since {holder.get('started_at', '?')}", holder_job or submitted)
        lock_path.unlink(missing_ok=True)  # its holder is gone: the run is pending again, and resumes
    held_by = config.get("slurm_job_id") or submitted
    job_state = None if submitted is None else job_states.get(submitted)
    if job_state is not None and job_state in SLURM_ALIVE:
        return RunState(folder, "running" if job_state == "RUNNING" else "pending", f"job {submitted} {job_state}",
                        submitted)
    error = _tolerant(run.read_error)
    if error is None and submission is not None and job_state in ENDED_STATES:
        record_job_failure(run, submission, job_state)
        error = _tolerant(run.read_error)
    if error is not None:
        return RunState(folder, "failed", str(error.get("error", "")), held_by)
    detail = "" if job_state is None else f"job {submitted} {job_state}"
    return RunState(folder, "pending", detail, held_by)


# job states after which the job will not run its task again (``slurm_jobs.ENDED``: Slurm forgot it)
ENDED_STATES = {"COMPLETED", "FAILED", "TIMEOUT", "CANCELLED", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
                "BOOT_FAIL", "DEADLINE", slurm_jobs.ENDED}
STDERR_LINES = 20  # of a dead job's stderr, kept in the run's error.log


def record_job_failure(run: RunFolder, submission: Mapping[str, Any], job_state: str) -> None:
    """Record in ``run`` that its job ended (``job_state``) before the run finished or recorded an error: the
    last line of the job's stderr in ``error.json``, its last lines in ``error.log``."""
    stderr = Path(str(submission.get("stderr", "")))
    try:
        tail = stderr.read_text(errors="replace").splitlines()[-STDERR_LINES:] if stderr.is_file() else []
    except OSError:
        tail = []
    last = next((line.strip() for line in reversed(tail) if line.strip()), "")
    state = "" if job_state == slurm_jobs.ENDED else f" ({job_state})"  # ENDED: Slurm no longer says how
    message = (f"job {submission.get('job_id')} ended{state} before the run finished"
               + (f": {last}" if last else "") + f" (job log: {stderr})")
    run.record_failure(JobError(message), log="\n".join(tail) + "\n")


def recorded_job_states(folders: Sequence[Path]) -> dict[str, str]:
    """The state of every job recorded in ``folders`` (their submissions and lock holders): Slurm asked once
    for all (``slurm_jobs.job_states``), a job Slurm forgot told by submitit's result file; submitit's local
    executor's jobs from their pids."""
    import submitit

    slurm_ids: dict[str, Path | None] = {}
    states: dict[str, str] = {}
    for folder in folders:
        submission = read_submission(folder) or {}
        cluster, log_folder, job_id = (submission.get("cluster"), submission.get("log_folder"),
                                       submission.get("job_id"))
        holder_job = (locks.read_holder(RunFolder(Path(folder)).lock) or {}).get("slurm_job_id")
        if holder_job:
            slurm_ids.setdefault(str(holder_job), None)
        if not (cluster and log_folder and job_id):
            continue
        if cluster == "slurm":
            slurm_ids[str(job_id)] = Path(log_folder)
        elif cluster == "local":  # submitit's local executor: the job id is the pid of its process here
            done = submitit.Job(folder=log_folder, job_id=str(job_id)).paths.result_pickle.exists()
            alive = str(job_id).isdigit() and locks.pid_alive(int(job_id))
            states[str(job_id)] = "COMPLETED" if done else "RUNNING" if alive else "FAILED"
    for job_id, state in slurm_jobs.job_states(slurm_ids).items():
        log_folder = slurm_ids[job_id]
        if state == slurm_jobs.ENDED and log_folder is not None:
            if submitit.SlurmJob(folder=log_folder, job_id=job_id).paths.result_pickle.exists():
                state = "COMPLETED"  # the task returned (its run finished, failed, or was held elsewhere)
        states[job_id] = state
    return states


def read_submission(folder: Path) -> dict[str, Any] | None:
    """The ``submission.json`` record of a run submitted to Slurm (None when it was not, or it is damaged)."""
    return _tolerant(RunFolder(Path(folder)).read_submission)


def _tolerant(read: Callable[[], dict[str, Any] | None]) -> dict[str, Any] | None:
    """What a run folder's reader returns, None for a damaged file: a status never stops at one folder."""
    try:
        return read()
    except DataError:
        return None


def grid_status(results_dir: Path, specs: Sequence[RunSpec] | None = None) -> list[tuple[str, RunState]]:
    """(run label, state) of ``specs``, or of every run folder under ``results_dir`` when ``specs`` is None;
    Slurm is asked about their jobs once."""
    if specs is not None:
        folders = [RunFolder.of(results_dir, spec).path for spec in specs]
        labels = [_label(spec.to_dict()) for spec in specs]
    else:
        folders = [folder.path for folder in RunFolder.all(results_dir)]
        labels = []
        for path in folders:
            record = _tolerant(RunFolder(path).read_config) or (read_submission(path) or {}).get("spec")
            labels.append(_label(record) if record else "/".join(path.parts[-4:]))
    states = recorded_job_states(folders)
    return [(label, run_status(folder, states)) for label, folder in zip(labels, folders)]


def _label(spec: Mapping[str, Any]) -> str:
    overrides = spec.get("overrides") or {}
    text = f"{spec.get('method')} {spec.get('dataset')} {spec.get('bits')} bits seed {spec.get('seed')}"
    return text + (f" ({format_overrides(overrides)})" if overrides else "")
