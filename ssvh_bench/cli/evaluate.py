"""``evaluate``: the protocol's metrics from a run's saved codes, or from a checkpoint's codes on a dataset."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..config import check_overrides_used, load_config_file, merge_choices, overrides_for, parse_assignments, parse_list
from ..errors import SsvhBenchError
from ..evaluation import evaluate_checkpoint
from ..io import write_json
from ..metrics import DEFAULT_KS, evaluate
from ..registry import method_registry
from ..run_folder import load_codes
from .app import DataRootOption, DatasetParamOption, app, console, user_errors


@app.command("evaluate")
@user_errors
def evaluate_command(
    codes: Optional[Path] = typer.Argument(None, help="A run folder or a codes.npz written by a run."),
    ks: str = typer.Option(",".join(map(str, DEFAULT_KS)), "--k", help="Cut-offs, comma-separated."),
    normalizer: str = typer.Option("k", "--normalizer", help="AP@K divisor: k (reference) or hits."),
    strict: bool = typer.Option(False, "--strict", help="Map code 0 to +1 (purely binary codes)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Also write the metrics as JSON here."),
    method: Optional[str] = typer.Option(None, "--method", "-m", help="With --checkpoint: the deep method the weights belong to."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Trained weights (e.g. a released ConMH checkpoint) to encode --dataset with."),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="With --checkpoint: the dataset whose query/database splits are encoded."),
    data_root: Optional[Path] = DataRootOption,
    bits: int = typer.Option(64, "--bits", "-b", help="With --checkpoint: the checkpoint's code length."),
    device: str = typer.Option("auto", "--device", help="With --checkpoint: auto (CUDA when present), cpu, cuda..."),
    set_: list[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="With --checkpoint: method parameter key=value (e.g. variant=base)."),
    config: Optional[Path] = typer.Option(None, "--config", help="With --checkpoint: TOML/JSON file of method parameters; --set wins."),
    dataset_param: list[str] = DatasetParamOption,
) -> None:
    """Metrics from saved codes or a checkpoint.

    Recompute the protocol's metrics from a run's saved codes, or from a checkpoint's codes on a dataset.
    """
    cutoffs = parse_list(ks, option="--k")
    if checkpoint is not None or method is not None:
        if codes is not None or not (checkpoint and method and dataset):
            raise SsvhBenchError("evaluate takes either saved CODES, or --method, --checkpoint and --dataset")
        if not checkpoint.is_file():
            raise SsvhBenchError(f"no checkpoint file at {checkpoint}")
        method_choices, dataset_overrides = load_config_file(config) if config else ({}, {})
        choices = merge_choices(method_choices, parse_assignments(set_))
        dataset_overrides.update({k: v[0] for k, v in parse_assignments(dataset_param, option="--dataset-param").items()})
        several = [k for k, v in choices.items() if len(v) != 1]
        if several:
            raise SsvhBenchError(f"evaluate takes one value per parameter; {', '.join(several)} has several")
        check_overrides_used([method], choices)
        params = {k: v[0] for k, v in overrides_for(method, method_registry.get(method).defaults, choices).items()}
        metrics = evaluate_checkpoint(method, checkpoint, dataset, data_root, bits=bits, method_params=params,
                                      dataset_params=dataset_overrides, device=device, ks=cutoffs,
                                      normalizer=normalizer, strict=strict, progress=sys.stderr.isatty())
        if "inferred_variant" in metrics:
            console.print(f"the checkpoint's shapes fit variant {metrics['inferred_variant']!r}, not the chosen one: "
                          "evaluated with it", highlight=False, soft_wrap=True)
    elif codes is None:
        raise SsvhBenchError("evaluate takes either saved CODES, or --method, --checkpoint and --dataset")
    else:
        saved = load_codes(codes)
        query_is_database = saved["query"] is None
        metrics = evaluate(
            saved["database"] if query_is_database else saved["query"],
            saved["database"],
            saved["database_labels"] if query_is_database else saved["query_labels"],
            saved["database_labels"],
            ks=cutoffs,
            normalizer=normalizer,
            strict=strict,
            query_is_database=query_is_database,
            progress=sys.stderr.isatty(),
        )
    console.print(f"{metrics['n_queries']} queries x {metrics['n_database']} database, {metrics['bits']} bits, "
                  f"AP divided by {metrics['normalizer']}{', strict' if metrics['strict'] else ''}", highlight=False)
    console.print(metrics_table(metrics, cutoffs))
    if output is not None:
        write_json(output, metrics)
        console.print(f"metrics written to {output}", highlight=False)


METRIC_COLUMNS = ("map", "map_tie_aware", "p", "r")


def metrics_table(metrics: dict, ks: list[int]) -> Table:
    """One row per cut-off K, one column per metric family of ``evaluate``'s result."""
    table = Table("K", *(f"{name}@K" for name in METRIC_COLUMNS))
    for k in sorted(set(ks)):
        table.add_row(str(k), *(f"{metrics[f'{name}@{k}']:.4f}" for name in METRIC_COLUMNS))
    return table
