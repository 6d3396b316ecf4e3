"""``run``: train, encode and evaluate a grid of runs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..run_folder import default_results_dir
from .app import BitsOption, DataRootOption, DatasetParamOption, EvalDatasetOption, EvalDatasetParamOption, MethodsOption, ResultsDir, SeedsOption, app, user_errors
from .grid import launch_grid, specs_from_options
from .options import Execution, execution_options


@app.command()
@user_errors
@execution_options
def run(
    method: str = MethodsOption,
    dataset: str = typer.Option("synthetic", "--dataset", "-d", help="Dataset name."),
    bits: str = BitsOption,
    seed: str = SeedsOption,
    set_: list[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="Method parameter key=value (key=v1,v2 runs each; method.key for one method)."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML/JSON file of method parameters ([dataset] table for the dataset's); --set wins."),
    dataset_param: list[str] = DatasetParamOption,
    eval_dataset: Optional[str] = EvalDatasetOption,
    eval_dataset_param: list[str] = EvalDatasetParamOption,
    data_root: Optional[Path] = DataRootOption,
    results_dir: Optional[Path] = ResultsDir,
    execution: Execution = Execution(),
) -> None:
    """Train, encode and evaluate a grid of runs.

    Every combination of methods x bits x seeds x --set values; finished runs are skipped.
    """
    specs = specs_from_options(method, dataset, bits, seed, set_, config, dataset_param, execution,
                               eval_dataset=eval_dataset, eval_dataset_param=eval_dataset_param, data_root=data_root)
    launch_grid(specs, execution, results_dir=results_dir or default_results_dir(), data_root=data_root)
