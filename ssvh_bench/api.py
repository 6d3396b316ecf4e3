"""The public entry points: ``run`` (a grid of runs), ``reproduce`` (a paper's target) and ``compare`` (verdicts
between methods' finished runs). The command line and Python call the same functions.

Both take the execution options as keywords named as the fields of ``RunOptions`` (``device``, ``threads``,
``eval_every``, ``data_on_device``, ``checkpoint_minutes``, ``force``, ``logger``) and ``LaunchOptions``
(``launcher``, ``jobs``, ``slurm``); see ``ssvh_bench.options``. ``precision`` and ``compile`` (how deep methods'
training steps compute, ``ssvh_bench.precision``) change the codes, so they are part of each run rather than
execution options. Every run is validated (names, parameters, data) before the first one starts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import distributed
from .config import make_specs
from .launchers import launch
from .options import split_options
from .run_folder import default_results_dir
from .runner import RunEvent, RunResult
from .targets import Target, get_target, target_specs, write_reports

if TYPE_CHECKING:
    from .comparison import Comparison


def run(
    methods: str | Sequence[str],
    datasets: str | Sequence[str] = "synthetic",
    bits: int | Sequence[int] = 64,
    seeds: int | Sequence[int] = 0,
    params: Mapping[str, Any] | None = None,
    dataset_params: Mapping[str, Any] | None = None,
    *,
    eval_dataset: str | None = None,
    eval_dataset_params: Mapping[str, Any] | None = None,
    precision: str = "auto",
    compile: bool = False,
    results_dir: Path | str | None = None,
    data_root: Path | str | None = None,
    keep_going: bool = True,
    on_event: Callable[[RunEvent], None] | None = None,
    progress: bool = False,
    **options: Any,
) -> list[RunResult]:
    """Run every combination of methods x datasets x bits x seeds x parameter values; finished runs are
    skipped, and a failed run is recorded in its folder while (with ``keep_going``) the others go on.

    ``params`` maps a method parameter (or ``method.parameter``) to a value or a list of values to sweep, as
    ``--set`` does; ``dataset_params`` are the datasets' parameters. ``options``: the execution options (see
    the module docstring), e.g. ``device="cpu"``, ``eval_every=2``, ``launcher="local", jobs=2``.
    ``eval_dataset`` (with its ``eval_dataset_params``): train on each dataset's training split and evaluate on
    this dataset's database and queries (a transfer run).
    """
    run_options, launch_options = split_options(options)
    choices = {key: list(value) if isinstance(value, (list, tuple)) else [value] for key, value in (params or {}).items()}
    specs = [spec for dataset in _as_list(datasets) for spec in
             make_specs(_as_list(methods), dataset, _as_list(bits), _as_list(seeds), choices, dataset_params,
                        eval_dataset=eval_dataset, eval_dataset_overrides=eval_dataset_params, data_root=data_root,
                        precision=precision, compile=compile)]
    return launch(specs, run_options, launch_options, results_dir=results_dir, data_root=data_root,
                  keep_going=keep_going, on_event=on_event, progress=progress)


@dataclass
class Reproduction:
    """What ``reproduce`` did: each run's result and the report files it wrote."""

    target: Target
    runs: list[RunResult]
    written: list[Path]


def reproduce(
    target: str,
    dataset: str = "synthetic",
    seeds: int | Sequence[int] = 0,
    dataset_params: Mapping[str, Any] | None = None,
    *,
    precision: str = "auto",
    compile: bool = False,
    results_dir: Path | str | None = None,
    data_root: Path | str | None = None,
    keep_going: bool = True,
    on_event: Callable[[RunEvent], None] | None = None,
    progress: bool = False,
    **options: Any,
) -> Reproduction:
    """Run ``target``'s runs on ``dataset`` and write its tables and figures from the runs that finished
    (``options`` as in ``run``; with Slurm, the reports come from the runs finished before, and ``reproduce``
    again writes them once the jobs are done)."""
    run_options, launch_options = split_options(options)
    chosen = get_target(target)
    specs = target_specs(chosen, dataset, [seeds] if isinstance(seeds, int) else list(seeds), dataset_params,
                         data_root=data_root, precision=precision, compile=compile)
    results_dir = Path(results_dir) if results_dir is not None else default_results_dir()
    outcomes = launch(specs, run_options, launch_options, results_dir=results_dir, data_root=data_root,
                      keep_going=keep_going, on_event=on_event, progress=progress)
    done = [o.spec.run_id for o in outcomes if o.status in ("finished", "skipped")]
    writes = done and distributed.is_writer()  # under torchrun, rank 0 alone writes
    return Reproduction(chosen, outcomes, write_reports(chosen, results_dir, done) if writes else [])


def compare(
    dataset: str = "synthetic",
    bits: int = 64,
    methods: str | Sequence[str] | None = None,
    k: int = 5,
    *,
    target: float = 0.01,
    results_dir: Path | str | None = None,
) -> Comparison:
    """Every pair of settings with finished runs of ``dataset`` at ``bits`` (only ``methods`` when given):
    the difference in mAP@``k`` with its 95% interval over matched seeds and the same queries, its
    Holm-corrected p-value, and how many seeds a difference of ``target`` needs (``verdict_lines`` words it).
    """
    from .comparison import compare as compare_runs

    chosen = _as_list(methods) if methods is not None else None
    return compare_runs(Path(results_dir) if results_dir is not None else default_results_dir(), dataset, bits,
                        methods=chosen or None, k=k, target=target)


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return list(value) if isinstance(value, Iterable) else [value]
