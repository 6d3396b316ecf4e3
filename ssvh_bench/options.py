"""How runs execute, declared once: ``RunOptions`` (how each run computes) and ``LaunchOptions`` (where the
runs go). Neither enters a run's id. The Python API takes their fields as keywords (``split_options``), the
command line as one option group (``ssvh_bench.cli.options``); both build these values by keyword.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, fields
from collections.abc import Sequence
from typing import Any

from .errors import ConfigError

LAUNCHERS = ("inline", "local", "slurm")
DEFAULT_CHECKPOINT_MINUTES = 10.0


@dataclass(frozen=True)
class RunOptions:
    """How every run of a grid computes.

    ``device``: auto, cpu, cuda, cuda:N; ``threads``: torch's threads (None: ``devices.choose_threads``);
    ``eval_every``: evaluate deep methods' codes every N epochs (``evaluation.epoch_evaluator``), a diagnostic;
    ``data_on_device``: where the training split lives (auto, yes, no, float16; ``ssvh_bench.data.on_device``);
    ``checkpoint_minutes``: deep methods save their training state at the first epoch end after this much
    training since the last save (0: every epoch), so an interrupted run loses at most that much;
    ``force``: redo finished runs; ``logger``: experiment trackers, a comma list or a list of tensorboard,
    mlflow, wandb (``ssvh_bench.tracking``).
    """

    device: str = "auto"
    threads: int | None = None
    eval_every: int | None = None
    data_on_device: str = "auto"
    checkpoint_minutes: float = DEFAULT_CHECKPOINT_MINUTES
    force: bool = False
    logger: str | Sequence[str] = ""


@dataclass(frozen=True)
class LaunchOptions:
    """Where a grid's runs execute: ``launcher`` (inline, local, slurm), ``jobs`` (local worker processes) and
    ``slurm`` (the Slurm settings, see ``launchers.SLURM_SETTINGS``)."""

    launcher: str = "inline"
    jobs: int = 1
    slurm: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        if self.launcher not in LAUNCHERS:
            raise ConfigError(f"unknown launcher {self.launcher!r}; use {', '.join(LAUNCHERS)}")
        if self.jobs < 1:
            raise ConfigError(f"jobs must be at least 1, got {self.jobs}")


def split_options(keywords: dict[str, Any]) -> tuple[RunOptions, LaunchOptions]:
    """``RunOptions`` and ``LaunchOptions`` from keyword arguments named as their fields (the Python API's
    ``**options``); an unknown name is a TypeError naming the closest known one."""
    run_names = {f.name for f in fields(RunOptions)}
    launch_names = {f.name for f in fields(LaunchOptions)}
    unknown = sorted(set(keywords) - run_names - launch_names)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(run_names | launch_names), n=1)
        raise TypeError(f"unknown option {unknown[0]!r}" + (f"; did you mean {close[0]!r}?" if close else "")
                        + f" (options: {', '.join(sorted(run_names | launch_names))})")
    launch = LaunchOptions(**{k: v for k, v in keywords.items() if k in launch_names and v is not None})
    return RunOptions(**{k: v for k, v in keywords.items() if k in run_names}), launch
