"""The launcher options of ``run``, ``sweep`` and ``reproduce`` (``--launcher``, ``--jobs``, ``--slurm-*``),
the Slurm dry run, and ``status`` (which runs are pending, running, finished or failed)."""

from __future__ import annotations

import functools
import inspect
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.table import Table

from .. import results
from ..config import RunSpec, parse_assignments
from ..launchers import LAUNCHERS, SlurmPlan, grid_status, slurm_plan, slurm_settings_from_file
from .app import ResultsDir, app, console, user_errors


@dataclass(frozen=True)
class LaunchOptions:
    """Where a command's runs execute: the launcher, local workers, Slurm settings, and a dry run."""

    launcher: str = "inline"
    jobs: int = 1
    slurm: dict[str, Any] = field(default_factory=dict)
    dry_run: bool = False


_OPTIONS: dict[str, tuple[Any, Any]] = {  # name -> (annotation, typer option)
    "launcher": (str, typer.Option("inline", "--launcher", help=f"Where runs execute: {', '.join(LAUNCHERS)}.")),
    "jobs": (int, typer.Option(1, "--jobs", "-j", min=1, help="--launcher local: runs at once, each on its share of the cores (and GPUs).")),
    "slurm_partition": (Optional[str], typer.Option(None, "--slurm-partition", help="Slurm partition.")),
    "slurm_time": (Optional[str], typer.Option(None, "--slurm-time", help="Slurm time limit per run: minutes, HH:MM:SS or D-HH:MM:SS.")),
    "slurm_gpus_per_run": (Optional[int], typer.Option(None, "--slurm-gpus-per-run", help="GPUs per run.")),
    "slurm_cpus_per_run": (Optional[int], typer.Option(None, "--slurm-cpus-per-run", help="CPU cores per run (also its torch threads).")),
    "slurm_mem": (Optional[str], typer.Option(None, "--slurm-mem", help="Memory per run, e.g. 32G.")),
    "slurm_array_parallelism": (Optional[int], typer.Option(None, "--slurm-array-parallelism", help="Runs of the array at once.")),
    "slurm_param": (list[str], typer.Option([], "--slurm-param", help="Other sbatch option key=value (e.g. account=abc, qos=high).")),
}
_DRY_RUN = (bool, typer.Option(False, "--dry-run", help="Show what would run (with --launcher slurm: the job array); run nothing."))


def launcher_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the launcher options to ``command``, which receives them as ``launch: LaunchOptions`` (and keeps
    its own ``--dry-run`` if it has one). The ``[slurm]`` table of its ``--config`` file is read here."""
    signature = inspect.signature(command)
    own = [p for p in signature.parameters.values() if p.name != "launch"]
    added = dict(_OPTIONS) if "dry_run" in signature.parameters else {**_OPTIONS, "dry_run": _DRY_RUN}

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {name: kwargs.pop(name) for name in added}
        config = kwargs.get("config")
        slurm = slurm_settings_from_file(config) if config else {}
        slurm.update({key: values[f"slurm_{key}"] for key in ("partition", "time", "gpus_per_run", "cpus_per_run",
                                                              "mem", "array_parallelism")
                      if values[f"slurm_{key}"] is not None})
        if values["slurm_param"]:
            slurm["params"] = {**slurm.get("params", {}), **{k: v[0] for k, v in parse_assignments(
                values["slurm_param"], option="--slurm-param").items()}}
        dry_run = values.get("dry_run", kwargs.get("dry_run", False))
        return command(*args, launch=LaunchOptions(values["launcher"], values["jobs"], slurm, dry_run), **kwargs)

    extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)
             for name, (annotation, option) in added.items()]
    wrapper.__signature__ = signature.replace(parameters=own + extra)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {**{k: v for k, v in command.__annotations__.items() if k != "launch"},
                               **{name: annotation for name, (annotation, _) in added.items()}}
    return wrapper


def print_dry_run(specs: list[RunSpec], results_dir: Path, launch: LaunchOptions, force: bool) -> None:
    """What ``--dry-run`` shows: the Slurm job array that would be submitted, or the runs and their state."""
    if launch.launcher == "slurm":
        print_slurm_plan(slurm_plan(specs, results_dir, launch.slurm, force=force))
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
        overrides = f" ({results.format_overrides(spec.overrides)})" if spec.overrides else ""
        console.print(f"  [{index}] {spec.method} {spec.dataset} {spec.bits} bits seed {spec.seed}{overrides} -> "
                      f"{results.run_dir(plan.results_dir, spec)}",
                      highlight=False, soft_wrap=True, markup=False)
    console.print(f"not submitted: {len(plan.finished)} finished, {len(plan.running)} queued or running",
                  highlight=False)


@app.command()
@user_errors
def status(
    results_dir: Optional[Path] = ResultsDir,
    show: str = typer.Option("all", "--show", help="all, or one of pending, running, finished, failed."),
) -> None:
    """Show which runs are pending, running, finished or failed.

    Reads the run folders under the results folder (and each submitted run's Slurm job state)."""
    rows = grid_status(Path(results_dir or results.default_results_dir()))
    table = Table("run", "status", "detail", "job")
    for label, state in rows:
        if show in ("all", state.status):
            table.add_row(label, state.status, state.detail, state.job_id or "")
    console.print(table)
    counts = Counter(state.status for _, state in rows)
    console.print(", ".join(f"{counts[s]} {s}" for s in ("pending", "running", "finished", "failed")), highlight=False)
