"""What the commands that run experiments share: the runs their options ask for, a line per run while they
run, the dry run, and the closing summary (exit status 1 when a run failed)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer
from rich.table import Table
from tqdm.auto import tqdm

from .. import distributed
from ..errors import ConfigError
from ..config import RunSpec, dataset_label, load_config_file, make_specs, merge_choices, parse_assignments, parse_list
from ..launchers import SlurmPlan, grid_status, launch, read_submission, slurm_plan
from ..leaderboard import format_overrides
from ..run_folder import RunFolder
from ..runner import RunEvent, RunResult
from .app import console, errors
from .options import Execution


def specs_from_options(method: str, dataset: str, bits: str, seed: str, set_: list[str], config: Path | None,
                       dataset_param: list[str], execution: Execution, *, eval_dataset: str | None = None,
                       eval_dataset_param: list[str] = (), data_root: Path | None = None) -> list[RunSpec]:
    """The runs that ``run``-style options ask for (shared by ``run`` and ``sweep``)."""
    method_choices, dataset_overrides = load_config_file(config) if config else ({}, {})
    method_choices = merge_choices(method_choices, parse_assignments(set_))
    dataset_overrides.update({k: v[0] for k, v in parse_assignments(dataset_param, option="--dataset-param").items()})
    eval_overrides = {k: v[0] for k, v in parse_assignments(eval_dataset_param, option="--eval-dataset-param").items()}
    if eval_overrides and eval_dataset is None:
        raise ConfigError("--eval-dataset-param needs --eval-dataset")
    return make_specs(
        [m.strip() for m in method.split(",") if m.strip()],
        dataset,
        parse_list(bits, option="--bits"),
        parse_list(seed, option="--seed"),
        method_choices,
        dataset_overrides,
        eval_dataset=eval_dataset,
        eval_dataset_overrides=eval_overrides,
        data_root=data_root,
        precision=execution.precision,
        compile=execution.compile,
    )


class RunPrinter:
    """``on_event`` for the engine's run loop: a line per run, under a bar over runs on a terminal (each run's
    training shows its own bar under it). Lines go through tqdm.write so they never tear a bar."""

    def __init__(self) -> None:
        self.quiet = not logging.getLogger("ssvh_bench").isEnabledFor(logging.INFO)  # --quiet
        self.on_terminal = sys.stderr.isatty() and not self.quiet
        self.bar = tqdm(unit="run", desc="runs", disable=not self.on_terminal, dynamic_ncols=True)

    def __enter__(self) -> "RunPrinter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.bar.close()

    def __call__(self, event: RunEvent) -> None:
        spec, result = event.spec, event.result
        if self.quiet:
            return
        if event.kind == "start":
            self.bar.total = event.total
            label = f"[{event.index}/{event.total}] {spec.method} on {dataset_label(spec.dataset, spec.eval_dataset)}, {spec.bits} bits, seed {spec.seed}"
            if spec.overrides:
                label += f" ({format_overrides(spec.overrides)})"
            tqdm.write(label)
            return
        assert result is not None
        if event.kind in ("running", "submitted"):  # no start event came first: say which run it is
            label = f"{spec.method} on {dataset_label(spec.dataset, spec.eval_dataset)}, {spec.bits} bits, seed {spec.seed}"
            tqdm.write(f"{label}: submitted as job {result.job_id}" if event.kind == "submitted"
                       else f"{label}: not started, {result.error}")
        elif event.kind == "failed":
            tqdm.write(f"    failed: {result.error} (traceback in {RunFolder(result.folder).error_log})")
        else:
            summary = metrics_summary(result.metrics)
            tqdm.write(f"    finished before, skipped (--force redoes it): {summary}" if event.kind == "skipped"
                       else f"    {summary}  train {result.metrics.get('train_seconds', float('nan')):.1f}s")
        self.bar.update()


def metrics_summary(metrics: dict) -> str:
    """map@5, @20 and @100 of a run, those it has (a run finished by another launcher may come without them)."""
    return "  ".join(f"map@{k}={metrics[f'map@{k}']:.4f}" for k in (5, 20, 100) if f"map@{k}" in metrics)


def summarise(outcomes: list[RunResult], results_dir: Path) -> None:
    """The closing lines of a grid; exit status 1 after them when a run failed."""
    counts = {status: sum(o.status == status for o in outcomes)
              for status in ("finished", "skipped", "failed", "running", "submitted")}
    line = f"{counts['finished']} run(s) done, {counts['skipped']} skipped, {counts['failed']} failed"
    line += "".join(f", {counts[s]} {s}" for s in ("running", "submitted") if counts[s])
    console.print(f"{line}; run folders under {Path(results_dir) / 'runs'}", highlight=False, soft_wrap=True)
    for outcome in outcomes:
        if outcome.status == "failed":
            errors.print(f"failed: {outcome.spec.method}, {outcome.spec.bits} bits, seed {outcome.spec.seed}: "
                         f"{outcome.error}", highlight=False, soft_wrap=True, markup=False)
    if counts["failed"]:
        raise typer.Exit(1)


def launch_grid(specs: list[RunSpec], execution: Execution, *, results_dir: Path,
                data_root: Path | None) -> list[RunResult]:
    """Launch ``specs`` as ``execution`` says, with a line per run and the closing summary."""
    if execution.dry_run:
        print_dry_run(specs, Path(results_dir), execution)
        return []
    where = {"results_dir": results_dir, "data_root": data_root, "keep_going": not execution.fail_fast}
    if not distributed.is_writer():  # under torchrun, rank 0 alone reports
        return launch(specs, execution.run, execution.launch, **where)
    with RunPrinter() as show:
        outcomes = launch(specs, execution.run, execution.launch, **where, on_event=show,
                          progress=show.on_terminal and execution.launch.launcher == "inline")
    report_outcomes(outcomes, results_dir)
    return outcomes


def report_outcomes(outcomes: list[RunResult], results_dir: Path) -> None:
    """Where submitted runs' logs are, then the summary; exit status 1 after it when a run failed."""
    submitted = [o for o in outcomes if o.status == "submitted"]
    if submitted:
        record = read_submission(submitted[0].folder) or {}
        console.print(f"submitted {len(submitted)} run(s) as job(s) {', '.join(o.job_id or '?' for o in submitted)}; "
                      f"logs under {Path(record.get('log_folder', '?')).parent}; follow them with ssvh-bench status",
                      highlight=False, soft_wrap=True)
    summarise(outcomes, results_dir)


def print_dry_run(specs: list[RunSpec], results_dir: Path, execution: Execution) -> None:
    """What ``--dry-run`` shows: the Slurm job array that would be submitted, or the runs and their state."""
    if execution.launch.launcher == "slurm":
        print_slurm_plan(slurm_plan(specs, results_dir, execution.launch.slurm, force=execution.run.force))
        return
    table = Table("run", "status")
    for label, state in grid_status(results_dir, specs):
        table.add_row(label, state.status)
    console.print(table)
    console.print(f"{len(specs)} run(s) (dry run: nothing was run)", highlight=False)


def print_slurm_plan(plan: SlurmPlan) -> None:
    console.print(f"dry run: would submit a job array of {len(plan.submit)} task(s) to {plan.cluster}", highlight=False)
    for name, value in sorted(plan.parameters.items()):
        console.print(f"  {name} = {value}", highlight=False, soft_wrap=True)
    for index, spec in enumerate(plan.submit):
        overrides = f" ({format_overrides(spec.overrides)})" if spec.overrides else ""
        console.print(f"  [{index}] {spec.method} {spec.dataset} {spec.bits} bits seed {spec.seed}{overrides} -> "
                      f"{RunFolder.of(plan.results_dir, spec).path}",
                      highlight=False, soft_wrap=True, markup=False)
    console.print(f"not submitted: {len(plan.finished)} finished, {len(plan.running)} queued or running",
                  highlight=False)
