"""Commands about runs: list plugins, run, evaluate saved codes."""

from __future__ import annotations

import difflib
import logging
import sys
from pathlib import Path
from typing import Optional

import typer
from tqdm.auto import tqdm
from rich.table import Table

from .. import distributed, launchers, results
from ..io import write_json
from ..config import (RunSpec, check_overrides_used, resolve_params, load_config_file, make_specs, merge_choices, overrides_for,
                      parse_assignments, parse_list)
from ..errors import SsvhBenchError
from ..metrics import DEFAULT_KS, evaluate
from ..registry import Registry, dataset_registry, method_registry
from ..runner import ERROR_LOG, RunEvent, RunOptions, RunResult, evaluate_checkpoint
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
    errors,
    user_errors,
)
from .launch import LaunchOptions, launcher_options, print_dry_run


@app.command("list")
@user_errors
def list_command(
    what: str = typer.Argument("all", metavar="[methods|datasets|all]", help="What to list."),
    pattern: str = typer.Option("*", "--pattern", "-p", help="Shell-style name filter, e.g. 'i*'."),
    dataset: str = typer.Option("synthetic", "--dataset", "-d", help="Show the method defaults that apply on this dataset."),
) -> None:
    """List the registered methods and datasets.

    Each with its family, description and defaults (the method defaults that apply on --dataset).
    """
    kinds = {"methods": [method_registry], "datasets": [dataset_registry], "all": [method_registry, dataset_registry]}
    if what not in kinds:
        close = difflib.get_close_matches(what, kinds, n=1)
        raise SsvhBenchError(f"list takes methods, datasets or all, not {what!r}"
                             + (f". Did you mean {close[0]!r}?" if close else ""))
    dataset_registry.get(dataset)  # a misspelt dataset is an error with the closest name
    for registry in kinds[what]:
        console.print(_registry_table(registry, pattern, dataset))


def _registry_table(registry: Registry, pattern: str, dataset: str) -> Table:
    title = f"{registry.kind}s" + (f" (defaults on {dataset})" if registry is method_registry else "")
    table = Table(title=title, title_justify="left")
    for column in ("name", "family", "description", "defaults"):
        table.add_column(column, overflow="fold")
    for entry in registry.list(pattern):
        resolved = resolve_params(entry, {}, dataset=dataset) if registry is method_registry else entry.defaults
        defaults = ", ".join(f"{k}={v}" for k, v in resolved.items())
        table.add_row(entry.name, entry.family or "", entry.description, defaults)
    return table


@app.command()
@user_errors
@launcher_options
def run(
    method: str = MethodsOption,
    dataset: str = typer.Option("synthetic", "--dataset", "-d", help="Dataset name."),
    bits: str = BitsOption,
    seed: str = SeedsOption,
    set_: list[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="Method parameter key=value (key=v1,v2 runs each; method.key for one method)."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML/JSON file of method parameters ([dataset] table for the dataset's); --set wins."),
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
    """Train, encode and evaluate a grid of runs.

    Every combination of methods x bits x seeds x --set values; finished runs are skipped.
    """
    specs = specs_from_options(method, dataset, bits, seed, set_, config, dataset_param)
    execute_all(specs, RunOptions(device, threads, eval_every, data_on_device, force),
                results_dir=results_dir or results.default_results_dir(), data_root=data_root, fail_fast=fail_fast,
                launch=launch)


def specs_from_options(method: str, dataset: str, bits: str, seed: str, set_: list[str], config: Path | None,
                       dataset_param: list[str]) -> list[RunSpec]:
    """The runs that ``run``-style options ask for (shared by ``run`` and ``sweep``)."""
    method_choices, dataset_overrides = load_config_file(config) if config else ({}, {})
    method_choices = merge_choices(method_choices, parse_assignments(set_))
    dataset_overrides.update({k: v[0] for k, v in parse_assignments(dataset_param, option="--dataset-param").items()})
    return make_specs(
        [m.strip() for m in method.split(",") if m.strip()],
        dataset,
        parse_list(bits, option="--bits"),
        parse_list(seed, option="--seed"),
        method_choices,
        dataset_overrides,
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
            label = f"[{event.index}/{event.total}] {spec.method} on {spec.dataset}, {spec.bits} bits, seed {spec.seed}"
            if spec.overrides:
                label += f" ({results.format_overrides(spec.overrides)})"
            tqdm.write(label)
            return
        assert result is not None
        if event.kind in ("running", "submitted"):  # no start event came first: say which run it is
            label = f"{spec.method} on {spec.dataset}, {spec.bits} bits, seed {spec.seed}"
            tqdm.write(f"{label}: submitted as job {result.job_id}" if event.kind == "submitted"
                       else f"{label}: not started, {result.error}")
        elif event.kind == "failed":
            tqdm.write(f"    failed: {result.error} (traceback in {result.folder / ERROR_LOG})")
        else:
            summary = "  ".join(f"map@{k}={result.metrics[f'map@{k}']:.4f}" for k in (5, 20, 100))
            tqdm.write(f"    finished before, skipped (--force redoes it): {summary}" if event.kind == "skipped"
                       else f"    {summary}  train {result.metrics['train_seconds']:.1f}s")
        self.bar.update()


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


def execute_all(specs: list[RunSpec], options: RunOptions, *, results_dir: Path, data_root: Path | None,
                fail_fast: bool, launch: LaunchOptions = LaunchOptions()) -> list[RunResult]:
    """Run ``specs`` with the chosen launcher, a line per run and the summary (``run`` and ``sweep``)."""
    if launch.dry_run:
        print_dry_run(specs, Path(results_dir), launch, options.force)
        return []
    if not distributed.is_writer():  # under torchrun, rank 0 alone reports
        return launchers.launch(specs, options, launcher=launch.launcher, results_dir=results_dir,
                                data_root=data_root, keep_going=not fail_fast)
    with RunPrinter() as show:
        outcomes = launchers.launch(specs, options, launcher=launch.launcher, jobs=launch.jobs, slurm=launch.slurm,
                                    results_dir=results_dir, data_root=data_root, keep_going=not fail_fast,
                                    on_event=show, progress=show.on_terminal and launch.launcher == "inline")
    submitted = [o for o in outcomes if o.status == "submitted"]
    if submitted:
        record = launchers.read_submission(submitted[0].folder)
        console.print(f"submitted {len(submitted)} run(s) as job(s) {', '.join(o.job_id or '?' for o in submitted)}; "
                      f"logs under {Path(record['log_folder']).parent}; follow them with ssvh-bench status",
                      highlight=False, soft_wrap=True)
    summarise(outcomes, results_dir)
    return outcomes


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
        saved = results.load_codes(codes)
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
