"""The runner: ``run_specs`` runs a list of runs here, in order; ``run_one`` runs one of them in its folder.

A finished run is skipped; a run that another live process holds is reported ``running``; a run that fails
is recorded in its folder (``error.json`` with the one-line message, ``error.log`` with the traceback) and,
with ``keep_going``, the others go on; without it, no run starts after the first failure. Under torchrun, rank 0 decides whether a run goes ahead and alone writes
its folder; the other ranks train and encode with it (see ``ssvh_bench.distributed``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from . import distributed, locks
from .checks import DatasetCache, check_specs
from .codes import pack_codes
from .config import RunSpec
from .data.on_device import DeviceFeatures, plan_data_on_device
from .devices import choose_threads, resolve_device
from .errors import DataError
from .evaluation import encode_database, encode_split, encoding_time, epoch_evaluator, evaluate_codes, oracle_metrics
from .health import collapse, health_line, health_row
from .io import write_json
from .options import RunOptions
from .per_query import per_query_arrays, queries_fingerprint
from .provenance import now, run_config
from .registry import method_registry
from .run_folder import RunFolder, default_results_dir, file_sha256, save_codes
from .run_log import run_log
from .slurm_jobs import current_job_id
from .tracking import Trackers, parse_loggers

log = logging.getLogger(__name__)
# "running": another live process holds the run's lock; "submitted": handed to a batch system (Slurm)
RunStatus = Literal["finished", "skipped", "failed", "running", "submitted"]


@dataclass
class RunResult:
    """What became of one run: ``finished`` (trained now), ``skipped`` (finished before), ``failed``,
    ``running`` (another process holds its lock; ``error`` says which) or ``submitted`` (a Slurm job)."""

    spec: RunSpec
    folder: Path
    status: RunStatus
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    job_id: str | None = None  # the Slurm job of a ``submitted`` run


@dataclass
class RunEvent:
    """Sent to ``on_event``: ``start`` before a run, then its outcome (a ``RunStatus``) with its result."""

    kind: Literal["start", "finished", "skipped", "failed", "running", "submitted"]
    index: int  # 1-based position in the grid
    total: int
    spec: RunSpec
    result: RunResult | None = None


def run_specs(
    specs: Sequence[RunSpec],
    options: RunOptions = RunOptions(),
    *,
    results_dir: Path | str | None = None,
    data_root: Path | str | None = None,
    keep_going: bool = True,
    on_event: Callable[[RunEvent], None] | None = None,
    progress: bool = False,
) -> list[RunResult]:
    """Run ``specs`` here, in order, after checking all of them (the engine behind every launcher)."""
    results_dir = Path(results_dir) if results_dir is not None else default_results_dir()
    distributed.setup()  # under torchrun: join the other ranks
    cache = check_specs(specs, options, results_dir=results_dir, data_root=data_root)
    emit = on_event or (lambda event: None)
    outcomes = []
    for index, spec in enumerate(specs, 1):
        emit(RunEvent("start", index, len(specs), spec))
        folder = RunFolder.of(results_dir, spec)
        try:
            outcome = run_one(spec, options, results_dir=results_dir, datasets=cache, progress=progress)
        except Exception as error:  # noqa: BLE001  one run's failure is recorded; the grid goes on
            outcome = RunResult(spec, folder.path, "failed", error=folder.record_failure(error))
            emit(RunEvent("failed", index, len(specs), spec, outcome))
            outcomes.append(outcome)
            if not keep_going:  # no run starts after the first failure (results hold the runs that ran)
                break
            continue
        emit(RunEvent(outcome.status, index, len(specs), spec, outcome))
        outcomes.append(outcome)
    return outcomes


def run_one(spec: RunSpec, options: RunOptions, *, results_dir: Path, datasets: DatasetCache,
            progress: bool = False) -> RunResult:
    """One run in its folder, under the folder's lock: ``skipped`` if finished, ``running`` if another live
    process holds the lock (a lock left by a dead process on this host is taken over)."""
    folder = RunFolder.of(results_dir, spec)
    where = {"results_dir": results_dir, "datasets": datasets, "progress": progress}
    if not distributed.is_writer():
        decision = distributed.broadcast(None)
        return (RunResult(spec, folder.path, decision) if decision != "go"
                else _train_and_evaluate(spec, folder, options, write=False, **where))
    finished = None if options.force else folder.finished()
    if finished is not None:
        distributed.broadcast("skipped")
        return RunResult(spec, folder.path, "skipped", finished[1])
    lock = locks.try_acquire(folder.lock)
    if lock is None:
        distributed.broadcast("running")
        holder = locks.read_holder(folder.lock) or {}
        return RunResult(spec, folder.path, "running", error=f"running in process {holder.get('pid', '?')} on "
                                                             f"{holder.get('host', '?')} since "
                                                             f"{holder.get('started_at', '?')}")
    with lock:
        finished = None if options.force else folder.finished()  # it may have finished meanwhile
        if finished is not None:
            distributed.broadcast("skipped")
            return RunResult(spec, folder.path, "skipped", finished[1])
        locks.remove_temporaries(folder.path)  # left by a killed run: nobody else writes here while we hold the lock
        return _train_and_evaluate(spec, folder, options, write=True, **where)


def _train_and_evaluate(spec: RunSpec, folder: RunFolder, options: RunOptions, *, results_dir: Path,
                        datasets: DatasetCache, progress: bool, write: bool) -> RunResult:
    splits = datasets.for_spec(spec)
    method = method_registry.create(spec.method, **spec.method_params)
    deep = method_registry.get(spec.method).family != "shallow"
    device = resolve_device(options.device) if deep else "cpu"  # a shallow run never records a device it did not use
    n_threads = choose_threads(options.threads)
    plan = plan_data_on_device(options.data_on_device, splits.train.shape, device) if deep else None
    if not write:  # a rank other than 0 under torchrun: it trains and encodes with rank 0, which alone writes
        return _train(spec, folder, options, method, splits, device, n_threads, plan, deep=deep,
                      results_dir=results_dir, progress=progress, write=False, trackers=None)
    if options.force:
        folder.clear()
    folder.clear_failure()
    config = {**run_config(spec, device, datasets.data_root), "threads": n_threads}
    job_id = current_job_id()
    if job_id is not None:  # the Slurm job that trains it (``status`` names it)
        config["slurm_job_id"] = job_id
    if deep:
        config["data_on_device"] = plan.dtype or "no"  # float32 / float16 storage on the device, or no
    try:
        earlier = folder.read_config()
    except DataError:  # a damaged config.json is rewritten below
        earlier = None
    if earlier is not None:  # an interrupted run goes on: keep when it first started, add when it came back
        config["started_at"] = earlier.get("started_at", config["started_at"])
        for key in ("resumed_at", "started_over_at"):
            if earlier.get(key):
                config[key] = earlier[key]
        # from its checkpoint, or from scratch when it has none (a shallow run, or killed before the first)
        came_back = "resumed_at" if folder.checkpoint.is_file() else "started_over_at"
        config[came_back] = [*config.get(came_back, []), now()]
    write_json(folder.config, config)
    distributed.broadcast("go")  # after the clean-up: the other ranks may now read a checkpoint to resume
    with run_log(folder):
        trackers = None
        names = parse_loggers(options.logger)
        if names:
            trackers = Trackers(names, folder, results_dir=results_dir, first_step=_first_step(folder))
            trackers.log_params(config)
        try:
            result = _train(spec, folder, options, method, splits, device, n_threads, plan, deep=deep,
                            results_dir=results_dir, progress=progress, write=True, trackers=trackers)
        except BaseException:
            if trackers is not None:
                trackers.finish(failed=True)
            raise
        if trackers is not None:
            trackers.finish()
        return result


def _first_step(folder: RunFolder) -> int:
    """The first tracker step this process logs: 0 (the untrained model) for a new run, else the step of the
    first epoch its checkpoint has not done."""
    if not folder.checkpoint.is_file():
        return 0
    from .checkpoints import epochs_in

    return epochs_in(folder.checkpoint) + 1


def _train(spec: RunSpec, folder: RunFolder, options: RunOptions, method: Any, splits: Any, device: str,
           n_threads: int, plan: Any, *, deep: bool, results_dir: Path, progress: bool, write: bool,
           trackers: Trackers | None) -> RunResult:
    """Train, encode and (``write``: the process that writes the folder) evaluate and write one run, reporting to
    ``trackers``."""
    train = splits.train
    if deep:
        import torch

        torch.set_num_threads(n_threads)
    log.info("%s: training on %d videos (%s)", spec.method, len(train), device)
    started = time.perf_counter()
    if plan is not None:
        log.info("%s: %s", spec.method, plan.message)
        if plan.on_device:
            train = DeviceFeatures(train, device, plan.dtype)
    extra: dict[str, Any] = {} if not deep else {"checkpoint_minutes": options.checkpoint_minutes,
                                                 "precision": spec.precision, "compile": spec.compile}
    if deep and options.eval_every is not None:
        extra["after_epoch"] = epoch_evaluator(method, splits, options.eval_every, device)
    if deep and trackers is not None:
        extra["on_row"] = trackers.log_row
    method.fit(train, bits=spec.bits, seed=spec.seed, device=device, progress=progress, workdir=folder.path,
               cache_dir=Path(results_dir) / "cache", **extra)
    train_seconds = time.perf_counter() - started + getattr(method, "resumed_seconds", 0.0)
    del train  # a split held on the device frees its memory for encoding and evaluation
    log.info("%s: encoding %d database%s videos", spec.method, len(splits.database),
             "" if splits.query is None else f" and {len(splits.query)} query")

    started = time.perf_counter()
    database_codes, health = encode_database(method, splits.database, spec.bits, deep=deep)
    query_codes = None if splits.query is None else encode_split(method, splits.query, spec.bits, "query")
    n_encoded = len(splits.database) + (0 if splits.query is None else len(splits.query))
    if not write:  # a rank other than 0 under torchrun: rank 0 alone measures and writes
        return RunResult(spec, folder.path, "finished")
    encode_ms, timed_videos = encoding_time(method, splits.database, time.perf_counter() - started, n_encoded)

    log.info("%s: evaluating", spec.method)
    metrics = evaluate_codes(splits, database_codes, query_codes, device=device, progress=progress,
                             threads=n_threads, per_query=True)
    per_query = metrics.pop("per_query")
    metrics.update(train_seconds=train_seconds, encode_ms_per_video=encode_ms, encode_timed_videos=timed_videos,
                   n_params=method.n_parameters, health=health)
    collapsed = collapse(health, spec.bits)
    if collapsed:
        metrics["collapse"] = collapsed
    save_codes(folder.codes, pack_codes(database_codes), splits.database_labels,
               None if query_codes is None else pack_codes(query_codes), splits.query_labels)
    metrics["codes_sha256"] = file_sha256(folder.codes)
    if "after_epoch" in extra:
        metrics.update(oracle_metrics(folder))
        per_query.update(extra["after_epoch"].oracle_per_query(metrics["oracle_epoch"]))
    queries = queries_fingerprint(None if query_codes is None else splits.query_labels, splits.database_labels)
    folder.save_per_query(per_query_arrays(per_query, metrics["codes_sha256"], queries))
    write_json(folder.metrics, metrics)
    if trackers is not None:
        trackers.log_final(getattr(method, "epochs", 0) if deep else 0, metrics, health_row(health))
    log.info("%s: code health: %s", spec.method, health_line(health))
    if collapsed:
        log.warning("%s: codes collapsed: %s (%s)", spec.method, collapsed, folder.path)
    return RunResult(spec, folder.path, "finished", metrics)
