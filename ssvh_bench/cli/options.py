"""The execution option group, declared once and added to every command that runs experiments (``run``,
``sweep``, ``reproduce``): how runs compute (``RunOptions``), where they go (``LaunchOptions``), ``--fail-fast``
``--dry-run``, and how deep methods' training steps compute (``--precision``, ``--compile``: these change the
codes, so they are fields of each run, see ``ssvh_bench.precision``). A command receives them as one
``Execution`` value."""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Optional

import typer

from ..config import parse_assignments, read_config_file
from ..errors import ConfigError
from ..launchers import slurm_settings_from_file
from ..options import DEFAULT_CHECKPOINT_MINUTES, LAUNCHERS, LaunchOptions, RunOptions


@dataclass(frozen=True)
class Execution:
    """What the execution options of one command line ask for."""

    run: RunOptions = field(default_factory=RunOptions)
    launch: LaunchOptions = field(default_factory=LaunchOptions)
    fail_fast: bool = False
    dry_run: bool = False
    precision: str = "auto"
    compile: bool = False


SLURM_KEYS = ("partition", "time", "gpus_per_run", "cpus_per_run", "mem", "array_parallelism")

_OPTIONS: dict[str, tuple[Any, Any]] = {  # parameter name -> (annotation, typer option)
    "device": (str, typer.Option("auto", "--device", help="auto (CUDA when present), cpu, cuda, cuda:1...")),
    "threads": (Optional[int], typer.Option(None, "--threads", min=1, help="torch threads per run [default: 1 on machines with up to 4 cores, else torch's].")),
    "eval_every": (Optional[int], typer.Option(None, "--eval-every", min=1, help="Deep methods: evaluate the codes on the database split every N epochs (a diagnostic in history.csv; the final codes stay the last epoch's).")),
    "data_on_device": (str, typer.Option("auto", "--data-on-device", help="Deep methods: keep the training split in GPU memory for the whole run: auto (when it fits in float32 in half the free memory), yes, no, float16 (half-precision storage).")),
    "checkpoint_minutes": (float, typer.Option(DEFAULT_CHECKPOINT_MINUTES, "--checkpoint-minutes", min=0, help="Deep methods: save the training state at the first epoch end after this many minutes of training (0: every epoch); an interrupted run resumes from it. Not part of the run id: change it when resuming.")),
    "precision": (str, typer.Option("auto", "--precision", help="Deep methods' training steps: auto (bf16 on GPUs that support it, fp16 with a scaler on older ones, fp32 on the CPU), fp32, bf16, fp16. Changes the codes: part of the run id unless auto.")),
    "compile": (bool, typer.Option(False, "--compile", help="Deep methods: torch.compile the model for training (codes close to, not equal to, eager; part of the run id).")),
    "force": (bool, typer.Option(False, "--force", help="Redo finished runs.")),
    "logger": (str, typer.Option("", "--logger", metavar="TRACKER[,TRACKER]", help="Experiment trackers that follow each run: tensorboard, mlflow, wandb (each an extra: pip install 'ssvh-bench[tensorboard]').")),
    "fail_fast": (bool, typer.Option(False, "--fail-fast", help="Stop at the first failed run (default: record it and go on).")),
    "dry_run": (bool, typer.Option(False, "--dry-run", help="Show what would run (with --launcher slurm: the job array); run nothing.")),
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
_RUN_FIELDS = tuple(f.name for f in fields(RunOptions))


def execution_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the execution options to ``command``, which receives them as ``execution: Execution``. The
    ``[options]`` (``RunOptions`` fields, e.g. ``logger``) and ``[slurm]`` tables of its ``--config`` file (if it
    has that option) are read here; the command line wins."""
    signature = inspect.signature(command)
    own = [p for p in signature.parameters.values() if p.name != "execution"]

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {name: kwargs.pop(name) for name in _OPTIONS}
        config = kwargs.get("config")
        for name, value in (run_options_from_file(config) if config else {}).items():
            if values[name] == _OPTIONS[name][1].default:  # not given on the command line
                values[name] = value
        slurm = slurm_settings_from_file(config) if config else {}
        slurm.update({key: values[f"slurm_{key}"] for key in SLURM_KEYS if values[f"slurm_{key}"] is not None})
        if values["slurm_param"]:
            slurm["params"] = {**slurm.get("params", {}), **{k: v[0] for k, v in parse_assignments(
                values["slurm_param"], option="--slurm-param").items()}}
        execution = Execution(run=RunOptions(**{name: values[name] for name in _RUN_FIELDS}),
                              launch=LaunchOptions(launcher=values["launcher"], jobs=values["jobs"], slurm=slurm),
                              fail_fast=values["fail_fast"], dry_run=values["dry_run"],
                              precision=values["precision"], compile=values["compile"])
        return command(*args, execution=execution, **kwargs)

    extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)
             for name, (annotation, option) in _OPTIONS.items()]
    wrapper.__signature__ = signature.replace(parameters=own + extra)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {**{k: v for k, v in command.__annotations__.items() if k != "execution"},
                               **{name: annotation for name, (annotation, _) in _OPTIONS.items()}}
    return wrapper


def run_options_from_file(path: Any) -> dict[str, Any]:
    """The ``[options]`` table of a config file: ``RunOptions`` fields (empty when there is none)."""
    table = read_config_file(path).get("options", {})
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path}: 'options' must be a table of run options")
    unknown = sorted(set(table) - set(_RUN_FIELDS))
    if unknown:
        raise ConfigError(f"config file {path}: unknown option {unknown[0]!r} in [options]; "
                          f"known: {', '.join(_RUN_FIELDS)}")
    return table
