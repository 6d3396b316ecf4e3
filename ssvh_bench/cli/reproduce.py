"""``reproduce``: run a paper's named target and write its tables and figures."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..api import reproduce as run_target
from ..config import RunSpec, parse_assignments, parse_list
from ..leaderboard import format_overrides, iter_finished_runs
from ..registry import dataset_registry
from ..run_folder import RunFolder, default_results_dir
from ..targets import TARGETS, Target, get_target, target_specs
from .app import DataRootOption, DatasetParamOption, ResultsDir, app, console, user_errors
from .grid import RunPrinter, print_dry_run, report_outcomes
from .options import Execution, execution_options


@app.command()
@user_errors
@execution_options
def reproduce(
    target: str = typer.Argument(..., help=f"One of: {', '.join(TARGETS)}."),
    dataset: str = typer.Option("synthetic", "--dataset", "-d", help="Dataset to reproduce on."),
    seeds: str = typer.Option("0", "--seeds", "-s", help="Seed(s), comma-separated."),
    dataset_param: list[str] = DatasetParamOption,
    data_root: Optional[Path] = DataRootOption,
    results_dir: Optional[Path] = ResultsDir,
    execution: Execution = Execution(),
) -> None:
    """Reproduce a paper's table or figure.

    Run a named target's missing runs and write its tables and figures.
    """
    chosen = get_target(target)
    dataset_overrides = {k: v[0] for k, v in parse_assignments(dataset_param, option="--dataset-param").items()}
    specs = target_specs(chosen, dataset, parse_list(seeds, option="--seeds"), dataset_overrides, data_root=data_root,
                         precision=execution.precision, compile=execution.compile)
    results_dir = Path(results_dir or default_results_dir())
    if execution.dry_run and execution.launch.launcher == "slurm":
        print_dry_run(specs, results_dir, execution)
        return
    if execution.dry_run:
        _print_plan(chosen, specs, results_dir, dataset, data_root)
        return
    launch = execution.launch
    with RunPrinter() as show:
        done = run_target(target, dataset, parse_list(seeds, option="--seeds"), dataset_overrides,
                          results_dir=results_dir, data_root=data_root, keep_going=not execution.fail_fast,
                          on_event=show, progress=show.on_terminal and launch.launcher == "inline",
                          precision=execution.precision, compile=execution.compile,
                          **asdict(execution.run), **asdict(launch))
    console.print(f"{chosen.name}: wrote " + (", ".join(str(p) for p in done.written) or "no report (no run finished)"),
                  highlight=False, soft_wrap=True)
    report_outcomes(done.runs, results_dir)


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
    for folder, config, metrics in iter_finished_runs(results_dir):
        if config.get("dataset") == dataset and metrics.get("train_seconds") is not None:
            seconds.setdefault((config["method"], config["bits"]), []).append(float(metrics["train_seconds"]))
    finished, estimate, unknown = 0, 0.0, 0
    for spec in specs:
        done = RunFolder.of(results_dir, spec).is_finished()
        finished += done
        if not done:
            known = seconds.get((spec.method, spec.bits))
            estimate += sum(known) / len(known) if known else 0.0
            unknown += not known
        table.add_row(spec.method, str(spec.bits), str(spec.seed), format_overrides(spec.overrides),
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
