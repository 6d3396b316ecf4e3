"""Experiment trackers (``--logger tensorboard,mlflow,wandb``): each run as a run of each tracker, through the
tracker's own library.

Every tracker gets the run's resolved configuration (``config.json``) as hyper-parameters once, then one step per
``history.csv`` row (step = epochs done: 0 is the untrained model of ``--eval-every``), holding the losses,
``lr``, ``videos_per_s``, ``seconds``, the ``--eval-every`` curve ``map@K`` and code health, and at the end the
final metrics and code health at the last step. Names: ``train/<loss>``, ``eval/map@K``, ``health/<figure>``,
``final/<metric>``; MLflow allows no ``@`` in a name, so there (only) ``map@20`` is ``map_at_20``.

A resumed run continues the same tracker run: the run ids are kept in the run folder (``trackers.json``);
TensorBoard drops the events from the resumed step on (``purge_step``), MLflow and W&B skip the steps their
stores already hold. Where each tracker writes: TensorBoard in the run folder (``tensorboard/``: point
``tensorboard --logdir`` at the results folder); MLflow where ``MLFLOW_TRACKING_URI`` says, else the SQLite store
``<results>/mlflow.db``, experiment ``MLFLOW_EXPERIMENT_NAME`` or ``ssvh-bench``; W&B in the results folder, project
``WANDB_PROJECT`` or ``ssvh-bench``, offline unless ``WANDB_MODE`` is set or an API key is configured
(``WANDB_API_KEY``: then online).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from .errors import ConfigError
from .io import write_json
from .run_folder import RunFolder

# tracker -> (the module it needs, the extra that installs it)
TRACKERS = {"tensorboard": ("tensorboard", "tensorboard"), "mlflow": ("mlflow", "mlflow"),
            "wandb": ("wandb", "wandb")}
MLFLOW_DB = "mlflow.db"  # the default MLflow store, in the results folder
PROJECT = "ssvh-bench"  # MLflow experiment and W&B project unless their environment variables say otherwise
_TRAIN_SKIP = {"epoch", "resumed"}


def parse_loggers(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """The tracker names of ``--logger`` (a comma list, or a list from the Python API); unknown ones are a
    ConfigError."""
    if not value:
        return ()
    names = [part.strip() for part in (value.split(",") if isinstance(value, str) else value) if part.strip()]
    unknown = [name for name in names if name not in TRACKERS]
    if unknown:
        raise ConfigError(f"unknown logger {unknown[0]!r}; choose from {', '.join(TRACKERS)}")
    return tuple(dict.fromkeys(names))


def check_loggers(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """``parse_loggers``, and a ConfigError naming the extra to install for a tracker that is not installed."""
    names = parse_loggers(value)
    for name in names:
        module, extra = TRACKERS[name]
        if importlib.util.find_spec(module) is None:
            raise ConfigError(f"--logger {name} needs the {module} package: pip install 'ssvh-bench[{extra}]'")
    return names


class Tracker(Protocol):
    """One run in one experiment tracker."""

    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def log_step(self, step: int, values: Mapping[str, float]) -> None: ...

    def finish(self, failed: bool = False) -> None: ...


def tracker_names(row: Mapping[str, Any]) -> dict[str, float]:
    """A history row's values under their tracker names (``train/``, ``eval/``, ``health/``)."""
    from .health import HEALTH_COLUMNS

    named = {}
    for key, value in row.items():
        if key in _TRAIN_SKIP or value is None or not math.isfinite(float(value)):
            continue
        group = "eval" if key.startswith("map@") else "health" if key in HEALTH_COLUMNS else "train"
        named[f"{group}/{key}"] = float(value)
    return named


def flat_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested configuration as flat ``a.b`` keys with text values (what every tracker's hyper-parameters take)."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            flat.update(flat_params(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value if isinstance(value, str) else json.dumps(value)
    return flat


class TensorBoardTracker:
    """Scalars in ``<run>/tensorboard`` (one event stream per run); hyper-parameters in the HParams plugin."""

    def __init__(self, folder: RunFolder, first_step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # a resumed run: the library drops the events the interrupted process logged from ``first_step`` on
        resumed = folder.tensorboard.is_dir()
        self.writer = SummaryWriter(str(folder.tensorboard), purge_step=first_step if resumed else None)

    def log_params(self, params: Mapping[str, Any]) -> None:
        from torch.utils.tensorboard.summary import hparams

        flat = flat_params(params)
        # the HParams plugin in this run's own event file (``add_hparams`` would open a second run)
        for summary in hparams(flat, {"final/map@20": 0.0}):
            self.writer.file_writer.add_summary(summary)
        self.writer.add_text("config", "```\n" + json.dumps(dict(params), indent=1, default=str) + "\n```")

    def log_step(self, step: int, values: Mapping[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)
        self.writer.flush()

    def finish(self, failed: bool = False) -> None:
        self.writer.close()


class MlflowTracker:
    """An MLflow run (``MlflowClient``: no process-wide active run, so a grid's runs never mix)."""

    def __init__(self, folder: RunFolder, run_id: str | None, results_dir: Path) -> None:
        from mlflow.tracking import MlflowClient

        uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(results_dir).absolute() / MLFLOW_DB}"
        self.client = MlflowClient(tracking_uri=uri)
        self.new = run_id is None
        if run_id is None:
            name = os.environ.get("MLFLOW_EXPERIMENT_NAME", PROJECT)
            experiment = self.client.get_experiment_by_name(name)
            experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
            run_id = self.client.create_run(experiment_id, run_name=f"{folder.path.parent.name}/{folder.path.name}",
                                            tags={"ssvh_bench.folder": str(folder.path)}).info.run_id
        else:
            self.client.update_run(run_id, status="RUNNING")
        self.run_id = run_id
        # a resumed run: the steps the store holds already are not logged again
        self.logged = {key: max((m.step for m in self.client.get_metric_history(run_id, key)), default=-1)
                       for key in self.client.get_run(run_id).data.metrics}

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        if self.new:  # MLflow keeps a parameter's first value: a resumed run's own fields (resumed_at) stay out
            items = [Param(key, value[:6000]) for key, value in flat_params(params).items()]
            for start in range(0, len(items), 100):  # the store's batch limit
                self.client.log_batch(self.run_id, params=items[start:start + 100])

    def log_step(self, step: int, values: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        metrics = [Metric(name.replace("@", "_at_"), value, stamp, step) for name, value in values.items()
                   if step > self.logged.get(name.replace("@", "_at_"), -1)]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def finish(self, failed: bool = False) -> None:
        self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")


class WandbTracker:
    """A Weights & Biases run, offline unless ``WANDB_MODE`` or an API key says otherwise."""

    def __init__(self, folder: RunFolder, run_id: str | None, results_dir: Path) -> None:
        import wandb

        mode = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", PROJECT), dir=str(results_dir), id=run_id,
                              resume="allow", mode=mode, name=f"{folder.path.parent.name}/{folder.path.name}",
                              reinit="create_new", settings=wandb.Settings(quiet=True, console="off"))
        self.run_id = self.run.id
        self.new = run_id is None

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.run.config.update(dict(params), allow_val_change=True)

    def log_step(self, step: int, values: Mapping[str, float]) -> None:
        if step >= self.run.step:  # a resumed run: W&B keeps the steps it holds
            self.run.log(dict(values), step=step)

    def finish(self, failed: bool = False) -> None:
        self.run.finish(exit_code=1 if failed else 0)


class Trackers:
    """The trackers of one run: every call goes to each of them."""

    def __init__(self, names: Sequence[str], folder: RunFolder, *, results_dir: Path, first_step: int) -> None:
        ids = folder.read_trackers() or {}
        self.items: list[Tracker] = []
        for name in names:
            if name == "tensorboard":
                self.items.append(TensorBoardTracker(folder, first_step))
            elif name == "mlflow":
                self.items.append(MlflowTracker(folder, ids.get("mlflow"), results_dir))
            else:
                self.items.append(WandbTracker(folder, ids.get("wandb"), results_dir))
        self.logged: dict[str, int] = {}  # name -> the last step this process logged it at
        ids.update({name: tracker.run_id for name, tracker in zip(names, self.items) if hasattr(tracker, "run_id")})
        if ids:
            write_json(folder.trackers, ids)

    def log_params(self, params: Mapping[str, Any]) -> None:
        for tracker in self.items:
            tracker.log_params(params)

    def log_row(self, row: Mapping[str, Any]) -> None:
        """One ``history.csv`` row at step ``epoch + 1``."""
        named, step = tracker_names(row), int(row["epoch"]) + 1
        self.logged.update(dict.fromkeys(named, step))
        for tracker in self.items:
            tracker.log_step(step, named)

    def log_final(self, step: int, metrics: Mapping[str, Any], health: Mapping[str, float]) -> None:
        values = {f"final/{k}": float(v) for k, v in metrics.items()
                  if "@" in k and isinstance(v, (int, float)) and not k.endswith("_oracle")}
        values.update({f"final/{k}": float(metrics[k]) for k in ("train_seconds", "encode_ms_per_video")
                       if k in metrics})
        values.update({f"health/{k}": float(v) for k, v in health.items()
                       if self.logged.get(f"health/{k}") != step})  # --eval-every measured the last epoch's codes
        for tracker in self.items:
            tracker.log_step(step, values)

    def finish(self, failed: bool = False) -> None:
        for tracker in self.items:
            tracker.finish(failed)
