"""``sweep`` (run a parameter grid, then say how to plot it) and ``reproduce`` (named paper targets)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .. import results
from ..config import RunSpec, parse_assignments, parse_list
from ..errors import ConfigError
from ..io import canonical_json
from ..targets import TARGETS, Target, get_target, target_specs
from ..targets import reproduce as run_target
from .app import (
    BitsOption,
    DataRootOption,
    DatasetParamOption,
    DeviceOption,
    ForceOption,
    MethodsOption,
    ResultsDir,
    SeedsOption,
    FailFastOption,
    ThreadsOption,
    app,
    console,
    user_errors,
)
from .launch import LaunchOptions, launcher_options, print_dry_run
from .runs import RunPrinter, execute_all, specs_from_options, summarise


def swept_parameters(specs: list[RunSpec]) -> list[str]:
    """Method parameters whose value differs between the runs."""
    keys = sorted({k for spec in specs for k in spec.overrides if not k.startswith("dataset.")})
    return [k for k in keys if len({canonical_json(s.overrides.get(k)) for s in specs}) > 1]


@app.command()
@user_errors
@launcher_options
def sweep(
    method: str = MethodsOption,
    dataset: str = typer.Option("synthetic", "--dataset", "-d", help="Dataset name."),
    bits: str = BitsOption,
    seed: str = SeedsOption,
    set_: list[str] = typer.Option([], "--set", help="Swept parameter key=v1,v2,... (method.key for one method)."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML/JSON file of method parameters; --set wins."),
    dataset_param: list[str] = DatasetParamOption,
    data_root: Optional[Path] = DataRootOption,
    results_dir: Optional[Path] = ResultsDir,
    device: str = DeviceOption,
    threads: Optional[int] = ThreadsOption,
    force: bool = ForceOption,
    fail_fast: bool = FailFastOption,
    launch: LaunchOptions = LaunchOptions(),
) -> None:
    """Run every value of the swept parameters (finished runs are skipped), then print how to plot them."""
    specs = specs_from_options(method, dataset, bits, seed, set_, config, dataset_param)
    swept = swept_parameters(specs)
    if not swept:
        raise ConfigError("sweep needs a parameter with several values, e.g. --set mask_ratio=0.25,0.5,0.75; "
                          "for a single setting use ssvh-bench run")
    results_dir = Path(results_dir or results.default_results_dir())
    execute_all(specs, results_dir=results_dir, data_root=data_root, device=device, force=force, threads=threads,
                fail_fast=fail_fast, launch=launch)
    if launch.dry_run:
        return
    where = "" if results_dir == results.default_results_dir() else f" --results-dir {results_dir}"
    console.print(f"swept {', '.join(swept)}; plot with:\n  ssvh-bench plot ablation --param {swept[0]} "
                  f"--method {method} --dataset {dataset}{where}", highlight=False, soft_wrap=True)


@app.command()
@user_errors
@launcher_options
def reproduce(
    target: str = typer.Argument(..., help=f"One of: {', '.join(TARGETS)}."),
    dataset: str = typer.Option("synthetic", "--dataset", "-d", help="Dataset to reproduce on."),
    seeds: str = typer.Option("0", "--seeds", "-s", help="Seed(s), comma-separated."),
    dataset_param: list[str] = DatasetParamOption,
    dry_run: bool = typer.Option(False, "--dry-run", help="List the runs and which are finished (with --launcher slurm: the job array); do nothing else."),
    data_root: Optional[Path] = DataRootOption,
    results_dir: Optional[Path] = ResultsDir,
    device: str = DeviceOption,
    threads: Optional[int] = ThreadsOption,
    force: bool = ForceOption,
    fail_fast: bool = FailFastOption,
    launch: LaunchOptions = LaunchOptions(),
) -> None:
    """Run a named paper target (tables and figures of ConMH's paper) and write its reports."""
    chosen = get_target(target)
    dataset_overrides = {k: v[0] for k, v in parse_assignments(dataset_param, option="--dataset-param").items()}
    specs = target_specs(chosen, dataset, parse_list(seeds, option="--seeds"), dataset_overrides)
    results_dir = Path(results_dir or results.default_results_dir())
    if dry_run and launch.launcher == "slurm":
        print_dry_run(specs, results_dir, launch, force)
        return
    if dry_run:
        _print_plan(chosen, specs, results_dir)
        return
    with RunPrinter() as show:
        done = run_target(target, dataset, parse_list(seeds, option="--seeds"), dataset_overrides,
                          results_dir=results_dir, data_root=data_root, device=device, threads=threads, force=force,
                          keep_going=not fail_fast, on_event=show, progress=show.on_terminal and launch.launcher == "inline",
                          launcher=launch.launcher, jobs=launch.jobs, slurm=launch.slurm)
    console.print(f"{chosen.name}: wrote " + (", ".join(str(p) for p in done.written) or "no report (no run finished)"),
                  highlight=False, soft_wrap=True)
    summarise(done.runs, results_dir)


def _print_plan(target: Target, specs: list[RunSpec], results_dir: Path) -> None:
    table = Table(title=f"{target.name}: {target.description}", title_justify="left")
    for column in ("method", "bits", "seed", "overrides", "status"):
        table.add_column(column)
    finished = 0
    for spec in specs:
        done = results.is_finished(results.run_dir(results_dir, spec))
        finished += done
        table.add_row(spec.method, str(spec.bits), str(spec.seed), results.format_overrides(spec.overrides),
                      "finished" if done else "to do")
    console.print(table)
    console.print(f"{len(specs)} run(s): {finished} finished, {len(specs) - finished} to do "
                  f"(dry run: nothing was run)", highlight=False, soft_wrap=True)
