"""``sweep`` (run a parameter grid, then say how to plot it) and ``reproduce`` (named paper targets)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .. import results
from ..config import RunSpec, parse_assignments, parse_list
from ..errors import ConfigError
from ..registry import dataset_registry
from ..runner import RunOptions
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
    DataOnDeviceOption,
    EvalEveryOption,
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
    set_: list[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="Swept parameter key=v1,v2,... (method.key for one method)."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML/JSON file of method parameters; --set wins."),
    dataset_param: list[str] = DatasetParamOption,
    data_root: Optional[Path] = DataRootOption,
    results_dir: Optional[Path] = ResultsDir,
    device: str = DeviceOption,
    threads: Optional[int] = ThreadsOption,
    eval_every: Optional[int] = EvalEveryOption,
    data_on_device: str = DataOnDeviceOption,
    force: bool = ForceOption,
    fail_fast: bool = FailFastOption,
    launch: LaunchOptions = LaunchOptions(),
) -> None:
    """Run a parameter sweep.

    Every value of the swept parameters (finished runs are skipped), then how to plot them.
    """
    specs = specs_from_options(method, dataset, bits, seed, set_, config, dataset_param)
    swept = swept_parameters(specs)
    if not swept:
        raise ConfigError("sweep needs a parameter with several values, e.g. --set mask_ratio=0.25,0.5,0.75; "
                          "for a single setting use ssvh-bench run")
    results_dir = Path(results_dir or results.default_results_dir())
    execute_all(specs, RunOptions(device, threads, eval_every, data_on_device, force), results_dir=results_dir,
                data_root=data_root, fail_fast=fail_fast, launch=launch)
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
    eval_every: Optional[int] = EvalEveryOption,
    data_on_device: str = DataOnDeviceOption,
    force: bool = ForceOption,
    fail_fast: bool = FailFastOption,
    launch: LaunchOptions = LaunchOptions(),
) -> None:
    """Reproduce a paper's table or figure.

    Run a named target's missing runs and write its tables and figures.
    """
    chosen = get_target(target)
    dataset_overrides = {k: v[0] for k, v in parse_assignments(dataset_param, option="--dataset-param").items()}
    specs = target_specs(chosen, dataset, parse_list(seeds, option="--seeds"), dataset_overrides)
    results_dir = Path(results_dir or results.default_results_dir())
    if dry_run and launch.launcher == "slurm":
        print_dry_run(specs, results_dir, launch, force)
        return
    if dry_run:
        _print_plan(chosen, specs, results_dir, dataset, data_root)
        return
    with RunPrinter() as show:
        done = run_target(target, dataset, parse_list(seeds, option="--seeds"), dataset_overrides,
                          results_dir=results_dir, data_root=data_root, device=device, threads=threads,
                          eval_every=eval_every, data_on_device=data_on_device, force=force,
                          keep_going=not fail_fast, on_event=show,
                          progress=show.on_terminal and launch.launcher == "inline",
                          launcher=launch.launcher, jobs=launch.jobs, slurm=launch.slurm)
    console.print(f"{chosen.name}: wrote " + (", ".join(str(p) for p in done.written) or "no report (no run finished)"),
                  highlight=False, soft_wrap=True)
    summarise(done.runs, results_dir)


def _print_plan(target: Target, specs: list[RunSpec], results_dir: Path, dataset: str,
                data_root: Path | None) -> None:
    """The runs of a dry run, which are finished, and the time the others should take, from the finished runs
    of the same method, dataset and code length."""
    from ..data import FileDataset
    from ..data.file_dataset import user_config_path

    table = Table(title=f"{target.name} on {dataset}: {target.description}", title_justify="left")
    for column in ("method", "bits", "seed", "overrides", "status"):
        table.add_column(column)
    seconds: dict[tuple[str, int], list[float]] = {}
    for folder, config, metrics in results.iter_finished_runs(results_dir):
        if config.get("dataset") == dataset and metrics.get("train_seconds") is not None:
            seconds.setdefault((config["method"], config["bits"]), []).append(float(metrics["train_seconds"]))
    finished, estimate, unknown = 0, 0.0, 0
    for spec in specs:
        done = results.is_finished(results.run_dir(results_dir, spec))
        finished += done
        if not done:
            known = seconds.get((spec.method, spec.bits))
            estimate += sum(known) / len(known) if known else 0.0
            unknown += not known
        table.add_row(spec.method, str(spec.bits), str(spec.seed), results.format_overrides(spec.overrides),
                      "finished" if done else "to do")
    console.print(table)
    todo = len(specs) - finished
    console.print(f"{len(specs)} run(s) on {dataset}: {finished} finished, {todo} to do (dry run: nothing was run)",
                  highlight=False, soft_wrap=True)
    if todo:
        amount = f"{estimate:.0f} s" if estimate < 120 else f"{estimate / 60:.0f} min"
        guess = f"about {amount} of training" if todo > unknown else "no estimate"
        console.print(f"time: {guess}, from the train_seconds of finished runs of the same method and bits"
                      + (f" ({unknown} run(s) have none to go by)" if unknown else ""), highlight=False,
                      soft_wrap=True)
    entry = dataset_registry.get(dataset)
    if isinstance(entry.factory, type) and issubclass(entry.factory, FileDataset) and data_root is None \
            and not user_config_path().is_file():
        console.print(f"warning: no data root is set for {dataset}: pass --data-root DIR (or SSVH_BENCH_DATA), "
                      f"see ssvh-bench data info", highlight=False, soft_wrap=True)
