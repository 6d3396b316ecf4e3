"""``sweep``: run a parameter grid, then say how to plot it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..config import RunSpec
from ..errors import ConfigError
from ..io import canonical_json
from ..run_folder import default_results_dir
from .app import BitsOption, DataRootOption, DatasetParamOption, EvalDatasetOption, EvalDatasetParamOption, MethodsOption, ResultsDir, SeedsOption, app, console, user_errors
from .grid import launch_grid, specs_from_options
from .options import Execution, execution_options


def swept_parameters(specs: list[RunSpec]) -> list[str]:
    """Method parameters whose value differs between the runs."""
    keys = sorted({k for spec in specs for k in spec.overrides if not k.startswith("dataset.")})
    return [k for k in keys if len({canonical_json(s.overrides.get(k)) for s in specs}) > 1]


@app.command()
@user_errors
@execution_options
def sweep(
    method: str = MethodsOption,
    dataset: str = typer.Option("synthetic", "--dataset", "-d", help="Dataset name."),
    bits: str = BitsOption,
    seed: str = SeedsOption,
    set_: list[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="Swept parameter key=v1,v2,... (method.key for one method)."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML/JSON file of method parameters; --set wins."),
    dataset_param: list[str] = DatasetParamOption,
    eval_dataset: Optional[str] = EvalDatasetOption,
    eval_dataset_param: list[str] = EvalDatasetParamOption,
    data_root: Optional[Path] = DataRootOption,
    results_dir: Optional[Path] = ResultsDir,
    execution: Execution = Execution(),
) -> None:
    """Run a parameter sweep.

    Every value of the swept parameters (finished runs are skipped), then how to plot them.
    """
    specs = specs_from_options(method, dataset, bits, seed, set_, config, dataset_param, execution,
                               eval_dataset=eval_dataset, eval_dataset_param=eval_dataset_param, data_root=data_root)
    swept = swept_parameters(specs)
    if not swept:
        raise ConfigError("sweep needs a parameter with several values, e.g. --set mask_ratio=0.25,0.5,0.75; "
                          "for a single setting use ssvh-bench run")
    results_dir = Path(results_dir or default_results_dir())
    launch_grid(specs, execution, results_dir=results_dir, data_root=data_root)
    if execution.dry_run:
        return
    where = "" if results_dir == default_results_dir() else f" --results-dir {results_dir}"
    console.print(f"swept {', '.join(swept)}; plot with:\n  ssvh-bench plot ablation --param {swept[0]} "
                  f"--method {method} --dataset {dataset}{where}", highlight=False, soft_wrap=True)
