"""The one training loop shared by every deep and two-stage method, and its hooks.

``TrainingHooks`` is what the loop trains: a subclass supplies the losses (and optionally the optimiser, the
learning rate, per-epoch work and related videos); ``run_training(hooks, model, train, ...)`` does the rest.
``ssvh_bench.method.DeepMethod`` is a ``TrainingHooks`` that is also a hashing method (``fit`` / ``encode``);
a stage-1 model (BTH's reconstruction network) is a bare ``TrainingHooks`` trained by the same loop.

Hooks, in the order the loop calls them:

- ``build_optimizer(model)`` (default: Adam at ``self.lr``), once.
- ``learning_rate(epoch)`` (default: ``step_decay_lr(epoch, lr, lr_decay, lr_decay_every, min_lr)``, which is
  constant ``lr`` unless a method sets the decay), applied to every parameter group at each epoch start.
- ``on_epoch_start(model, epoch, train)``: per-epoch work before the first batch (e.g. refreshing a memory
  of every video's code), with the model in train mode.
- ``training_state()`` / ``load_training_state(state)``: tensors the hooks update while training (e.g.
  pseudo-labels), saved in each checkpoint and restored when a run resumes.
- ``related_indices(indices, epoch, generator)``: the extra training videos a batch needs (partners,
  positives, ...) as a ``Related`` (or None). The loop reads them with the batch through the same read path
  (the read-ahead thread), so draw only from ``generator``: a CPU generator of its own stream.
- ``training_losses(model, batch, epoch, generator)``: a dict of scalar tensors holding ``"loss"``
  (minimised) and anything else worth logging. ``batch`` is a ``Batch`` on the device; draw every random
  number from ``generator``.

Hyper-parameters read from the hooks: ``epochs``, ``batch_size``, ``lr``, ``amp`` (what ``--precision auto``
does on a GPU, see ``ssvh_bench.precision``). How often the state is saved is not one of them (it cannot change
the codes): ``checkpoint_minutes``, an execution option.
Epochs count from 0 everywhere (hooks, ``history.csv``, error messages).

Reproducibility: batches come in the split's ``batch_order(shuffle=True, seed=...)``, in-epoch randomness from
generators, all seeded by (seed, epoch), and the global RNGs are re-seeded per epoch (dropout), so a run
resumed from an epoch-boundary checkpoint reproduces the uninterrupted run exactly on the CPU.
"""

from __future__ import annotations

import logging
import math
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from . import distributed, interruption
from .checkpoints import epochs_in, load_training_checkpoint, save_training_checkpoint
from .data import VideoFeatures, require_finite
from .data.on_device import DeviceFeatures
from .data.readahead import ReadAhead
from .devices import torch_device
from .errors import ConfigError, TrainingError
from .options import DEFAULT_CHECKPOINT_MINUTES
from .precision import autocast, autocast_dtype, compiled, grad_scaler
from .run_folder import write_history

log = logging.getLogger(__name__)
AfterEpoch = Callable[[int], Mapping[str, float]]
OnRow = Callable[[dict[str, float]], None]

PROGRESS_REFRESH_S = 0.5
READ_AHEAD_BATCHES = 2  # batches read ahead of the training step
# random streams of one epoch (see ``epoch_seed``)
ORDER_STREAM, LOSS_STREAM, GLOBAL_STREAM, RELATED_STREAM = 0, 1, 2, 3


@dataclass(frozen=True)
class Related:
    """The extra training videos one batch needs, named by a ``related_indices`` hook.

    ``indices`` [R] are positions in the training set (any order, repeats allowed); ``extras`` are arrays
    drawn with them that the losses need (e.g. pair targets), handed back as tensors on the device.
    """

    indices: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Batch:
    """One training batch on the device: ``features`` float32 [B, T, D] of the videos at ``indices`` [B];
    ``related`` float32 [R, T, D] of the videos at ``related_indices`` [R] and the ``extras`` of the batch's
    ``Related`` (empty / None when the hooks name no related videos)."""

    features: torch.Tensor
    indices: torch.Tensor
    related: torch.Tensor | None = None
    related_indices: torch.Tensor | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


class TrainingHooks(ABC):
    """What ``run_training`` trains (see the module docstring for the hooks)."""

    # A ragged last batch would leave contrastive losses with few negatives; the loop still keeps one
    # (smaller) batch when the training set is smaller than ``batch_size``.
    drop_last: ClassVar[bool] = True

    epochs: int
    batch_size: int
    lr: float
    amp: bool
    # the step-decay schedule; these defaults keep ``lr`` constant
    lr_decay: float = 1.0
    lr_decay_every: int = 1
    min_lr: float = 0.0

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.Adam(model.parameters(), lr=self.lr)

    def learning_rate(self, epoch: int) -> float:
        return step_decay_lr(epoch, self.lr, self.lr_decay, self.lr_decay_every, self.min_lr)

    def on_epoch_start(self, model: nn.Module, epoch: int, train: VideoFeatures) -> None:
        """Work at the start of every epoch, before its first batch (the model is in train mode)."""

    def training_state(self) -> dict[str, torch.Tensor]:
        """What the hooks change while training, besides the model and the optimiser (e.g. pseudo-labels
        updated every batch): saved in each checkpoint, so a resumed run goes on from it."""
        return {}

    def load_training_state(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what ``training_state`` saved, when a run resumes (after ``prepare``)."""

    def related_indices(self, indices: np.ndarray, epoch: int, generator: torch.Generator) -> Related | None:
        """The extra training videos the batch ``indices`` needs (read with it), or None."""
        return None

    @abstractmethod
    def training_losses(self, model: nn.Module, batch: Batch, epoch: int,
                        generator: torch.Generator) -> dict[str, torch.Tensor]: ...


def step_decay_lr(epoch: int, lr: float, decay: float, every: int, floor: float) -> float:
    """The SSVH papers' schedule: ``lr * decay ** (epoch // every)``, never below ``floor``."""
    return max(lr * decay ** (epoch // every), floor)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """A seed for one random stream of one epoch: batch order, the loss generator, the global RNGs (dropout) or
    the related-video generator (``ORDER_STREAM``, ``LOSS_STREAM``, ``GLOBAL_STREAM``, ``RELATED_STREAM``)."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])


def to_device(features: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    if isinstance(features, np.ndarray):
        features = torch.from_numpy(np.ascontiguousarray(features))
    return features.to(device, non_blocking=True).float()


def train_model(hooks: TrainingHooks, build: Callable[[], nn.Module], train: VideoFeatures, *, seed: int,
                device: torch.device | str, settings: dict[str, Any], history_path: Path | None = None,
                checkpoint_path: Path | None = None, progress: bool = False,
                checkpoint_minutes: float = DEFAULT_CHECKPOINT_MINUTES) -> nn.Module:
    """Seed every RNG with ``seed``, ``build()`` a model on ``device`` and train it with ``run_training``;
    returns the trained model. For models that are not hashing methods (a stage 1)."""
    device = torch_device(device)
    seed_everything(seed)
    model = build().to(device)
    run_training(hooks, model, train, seed=seed, device=device, settings=settings, history_path=history_path,
                 checkpoint_path=checkpoint_path, progress=progress, checkpoint_minutes=checkpoint_minutes)
    return model


def read_batch(hooks: TrainingHooks, train: VideoFeatures, indices: np.ndarray, *, epoch: int,
               generator: torch.Generator, device: torch.device | str = "cpu") -> Batch:
    """The ``Batch`` the loop would hand to ``training_losses`` for these videos (``generator`` draws the
    related videos); for tests and tools that call the hooks outside the loop."""
    indices = np.asarray(indices, dtype=np.int64)
    return _to_batch(_read_batch(hooks, train, indices, epoch, generator),
                     torch.device(device))


def _related_rows(hooks: TrainingHooks, indices: np.ndarray, epoch: int, generator: torch.Generator,
                  rows: Any) -> tuple[np.ndarray, Related | None]:
    """(this rank's indices, their Related or None) for one (global) batch. ``rows``: this rank's share of the
    batch under torchrun; the related videos are drawn for the global batch, one per video, and the rank keeps
    those of its rows."""
    related = hooks.related_indices(indices, epoch, generator)
    if isinstance(rows, slice):
        return indices, related
    if related is not None and len(related.indices) != len(indices):
        raise ConfigError(f"{type(hooks).__name__} names {len(related.indices)} related videos for a batch of "
                          f"{len(indices)}; under torchrun it must name one per video")
    if related is not None:
        related = Related(related.indices[rows], {k: np.asarray(v)[rows] for k, v in related.extras.items()})
    return indices[rows], related


def _read_batch(hooks: TrainingHooks, train: VideoFeatures, indices: np.ndarray, epoch: int,
                generator: torch.Generator, rows: Any = slice(None), features: np.ndarray | None = None) -> tuple:
    """(indices, features, Related or None, related features or None): this rank's share of one batch, read
    from storage (only its own rows: under torchrun each rank reads its shard of the batch) unless the
    batch's ``features`` were read already."""
    kept, related = _related_rows(hooks, indices, epoch, generator, rows)
    if features is None:
        features = _fetch(train, kept)
    else:
        require_finite(features, kept, "training split")
    return kept, features, related, None if related is None else _fetch(train, related.indices)


def _fetch(train: VideoFeatures, indices: np.ndarray) -> np.ndarray | torch.Tensor:
    """The features of ``indices``: gathered on the device from a held split (checked for NaN / inf when it
    was copied there), else read from storage and checked."""
    if isinstance(train, DeviceFeatures):
        return train.gather(indices)
    features = train.read(indices)
    require_finite(features, indices, "training split")
    return features


def _to_batch(item: tuple, device: torch.device) -> Batch:
    indices, features, related, related_features = item
    if related is None:
        return Batch(to_device(features, device), torch.from_numpy(indices).to(device))
    extras = {name: torch.from_numpy(np.asarray(value)).to(device) for name, value in related.extras.items()}
    return Batch(to_device(features, device), torch.from_numpy(indices).to(device),
                 to_device(related_features, device), torch.from_numpy(np.asarray(related.indices)).to(device),
                 extras)


def _pinned(items: Iterator[tuple]) -> Iterator[tuple]:
    """Batches (and their related videos) in page-locked memory, so their copy to the GPU is asynchronous."""
    for indices, features, related, related_features in items:
        yield (indices, torch.from_numpy(np.ascontiguousarray(features)).pin_memory(), related,
               None if related_features is None else torch.from_numpy(np.ascontiguousarray(related_features)).pin_memory())


def run_training(hooks: TrainingHooks, model: nn.Module, train: VideoFeatures, *, seed: int, device: torch.device,
                 settings: dict[str, Any], history_path: Path | None = None, checkpoint_path: Path | None = None,
                 progress: bool = False, after_epoch: AfterEpoch | None = None,
                 on_row: OnRow | None = None, checkpoint_minutes: float = DEFAULT_CHECKPOINT_MINUTES,
                 precision: str = "auto", compile: bool = False) -> list[dict[str, float]]:
    """Train ``model`` (already on ``device``) for ``hooks.epochs`` epochs; returns the history.

    ``precision`` (auto, fp32, bf16, fp16) and ``compile`` (``torch.compile`` the model's forward for the
    training steps): see ``ssvh_bench.precision``.

    ``history_path``: where ``history.csv`` is rewritten after every epoch. ``checkpoint_path``: where the
    training state is saved (at the first epoch end after ``checkpoint_minutes`` of training since the last
    save, at the end, and when an interruption is requested: ``ssvh_bench.interruption``) and resumed from; a
    checkpoint written with other ``settings`` (any JSON-able record of what the training depends on) is
    refused.
    ``after_epoch(epoch)`` (a diagnostic, e.g. ``--eval-every``) is called with -1 before the first epoch and
    after each epoch, with the model in eval mode; what it returns joins that epoch's history row (row -1:
    the untrained model). It must not draw random numbers: training is the same with or without it.
    ``on_row(row)`` receives each new history row as it is added (rank 0 only; e.g. experiment trackers).
    """
    from tqdm.auto import tqdm

    optimizer = hooks.build_optimizer(model)
    dtype = autocast_dtype(device, precision, hooks.amp)
    scaler = grad_scaler(device, dtype)
    step_model = compiled(model) if compile else model
    checkpoint = None if checkpoint_path is None else Path(checkpoint_path)

    world, writer = distributed.world_size(), distributed.is_writer()
    distributed.sync_parameters(model)
    history: list[dict[str, float]] = []
    start = 0
    if checkpoint is not None and checkpoint.is_file():
        state = load_training_checkpoint(checkpoint, settings)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        hooks.load_training_state(state.get("hooks", {}))
        start = state["epochs_done"]
        history = [{**row, "resumed": 1} for row in state["history"]]

    report = on_row if on_row is not None and writer else (lambda row: None)
    if after_epoch is not None and start == 0:
        history.append({"epoch": -1, **_diagnose(after_epoch, model, -1)})
        report(history[-1])
    batch_size = min(hooks.batch_size, len(train))
    if batch_size % world:
        raise ConfigError(f"batch_size {batch_size} must be a multiple of the {world} processes")
    # A last partial batch is trained on when the method asks (as the reference loaders do): how much of it,
    # ``split_last_batch`` says.
    last = 0 if hooks.drop_last else split_last_batch(len(train) % batch_size, world)
    steps = len(train) // batch_size + (last > 0)
    trained_seconds = sum(row.get("seconds", 0.0) for row in history)
    last_saved = time.monotonic()
    bar = tqdm(total=hooks.epochs * steps, initial=start * steps, disable=not (progress and writer), unit="batch",
               dynamic_ncols=True, leave=False)
    try:
        for epoch in range(start, hooks.epochs):
            lr = hooks.learning_rate(epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            # dropout: each rank draws its own masks (rank 0 those of a 1-process run)
            seed_everything(epoch_seed(seed, epoch, GLOBAL_STREAM) + distributed.rank())
            generator = torch.Generator(device=device).manual_seed(epoch_seed(seed, epoch, LOSS_STREAM))
            # a CPU generator of its own: the read-ahead thread draws the related videos ahead of the
            # losses, so sharing the loss generator would make the draws' order depend on thread timing
            related_generator = torch.Generator().manual_seed(epoch_seed(seed, epoch, RELATED_STREAM))
            model.train()
            hooks.on_epoch_start(model, epoch, train)
            totals: dict[str, torch.Tensor] = {}
            n_videos, n_steps, started, shown = 0, 0, time.perf_counter(), 0.0
            for batch in _epoch_batches(hooks, train, batch_size, epoch, seed, related_generator, last,
                                        device):
                with autocast(device, dtype):
                    losses = hooks.training_losses(step_model, batch, epoch, generator)
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(losses["loss"]).backward()
                    distributed.average_gradients(model.parameters())
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    losses["loss"].backward()
                    distributed.average_gradients(model.parameters())
                    optimizer.step()
                size = len(batch.indices)
                for name, value in losses.items():  # summed on the device: no sync per step
                    totals[name] = totals.get(name, 0) + value.detach().float() * size
                n_videos, n_steps = n_videos + size, n_steps + 1
                bar.update(1)
                if interruption.requested() and not _epoch_ends_soon(n_steps, steps, started):
                    raise interruption.Interrupted(f"training stopped in epoch {epoch} on request; it resumes "
                                                   f"from the last checkpoint")
                if progress and time.perf_counter() - shown > PROGRESS_REFRESH_S:
                    shown = time.perf_counter()
                    bar.set_postfix_str(f"epoch {epoch}/{hooks.epochs - 1} loss {losses['loss'].item():.4f} "
                                        f"{n_videos / (shown - started):.0f} videos/s")
            seconds = time.perf_counter() - started
            n_videos *= world  # every rank trained on as many videos
            means = {name: float(distributed.sum_over_ranks(total)) / n_videos for name, total in totals.items()}
            bad = [f"{name} = {value}" for name, value in means.items() if not math.isfinite(value)]
            if bad:
                kept = (f"last good checkpoint kept: {checkpoint}, {epochs_in(checkpoint)} epochs done"
                        if checkpoint is not None and checkpoint.is_file() else "no checkpoint to resume from")
                raise TrainingError(f"training stopped in epoch {epoch}: {', '.join(bad)} ({kept})")
            row = {"epoch": epoch, **means, "lr": lr, "seconds": seconds, "videos_per_s": n_videos / seconds}
            if after_epoch is not None:
                row.update(_diagnose(after_epoch, model, epoch))
            history.append(row)
            report(row)
            trained_seconds += seconds
            if writer:
                log.info(epoch_line(row, hooks.epochs, trained_seconds, (hooks.epochs - epoch - 1) * trained_seconds
                                    / max(1, sum(1 for r in history if "seconds" in r))))
            if history_path is not None and writer:
                write_history(Path(history_path), history)
            done = epoch + 1
            due = (time.monotonic() - last_saved >= checkpoint_minutes * 60 or done == hooks.epochs
                   or interruption.requested())
            if checkpoint is not None and writer and due:
                state = {"epochs_done": done, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "scaler": None if scaler is None else scaler.state_dict(),
                         "history": [{k: v for k, v in row.items() if k != "resumed"} for row in history],
                         "hooks": hooks.training_state(), "settings": settings}
                save_training_checkpoint(checkpoint, state)
                last_saved = time.monotonic()
            if interruption.requested() and done < hooks.epochs:
                raise interruption.Interrupted(f"training stopped after epoch {epoch} on request; checkpoint saved")
    finally:
        bar.close()
    return history


def _epoch_ends_soon(steps_done: int, steps: int, started: float) -> bool:
    """Whether the rest of the epoch takes at most ``interruption.GRACE_SECONDS`` at its pace so far."""
    elapsed = time.perf_counter() - started
    return (steps - steps_done) * elapsed / max(steps_done, 1) <= interruption.GRACE_SECONDS


def split_last_batch(size: int, world: int) -> int:
    """How many videos of an epoch's last partial batch of ``size`` are trained on by ``world`` processes: the
    most that split evenly over the ranks, if each rank then gets at least two (BatchNorm cannot normalise a
    lone video), else none. One process keeps all of it but a lone video; an N-process run drops at most
    N - 1 videos of it (when ``size`` is a multiple of N, none: it trains what one process trains)."""
    kept = size - size % world
    return kept if kept >= 2 * world else 0


def _epoch_batches(hooks: TrainingHooks, train: VideoFeatures, batch_size: int, epoch: int, seed: int,
                   related_generator: torch.Generator, last: int, device: torch.device) -> Iterator[Batch]:
    """One epoch's batches on the device, in the split's seeded ``batch_order`` (``last``: videos kept of the
    last partial batch), this rank's share of each: gathered there when the split is held on the device
    (``--data-on-device``), else read on the host by a read-ahead thread (pinned on CUDA) and copied."""
    world, order_seed = distributed.world_size(), epoch_seed(seed, epoch, ORDER_STREAM)
    if world == 1 and not isinstance(train, DeviceFeatures):  # the split's own reader (a file reads ahead)
        items = (_read_batch(hooks, train, indices, epoch, related_generator, features=features)
                 for indices, features in train.iter_batches(batch_size, shuffle=True, seed=order_seed,
                                                             drop_last=last == 0))
    else:
        order = (indices if len(indices) == batch_size else indices[:last]
                 for indices in train.batch_order(batch_size, shuffle=True, seed=order_seed))
        order = ((indices, distributed.batch_rows(len(indices) // world)[1]) for indices in order if len(indices))
        items = (_read_batch(hooks, train, indices, epoch, related_generator, rows) for indices, rows in order)
    if isinstance(train, DeviceFeatures):  # nothing to read ahead from a held split
        yield from (_to_batch(item, device) for item in items)
        return
    # read (and on CUDA pin) the next batches while this one trains, on every device
    reader = ReadAhead(_pinned(items) if device.type == "cuda" else items, depth=READ_AHEAD_BATCHES)
    try:
        yield from (_to_batch(item, device) for item in reader)
    finally:
        reader.close()


def _diagnose(after_epoch: AfterEpoch, model: nn.Module, epoch: int) -> dict[str, float]:
    model.eval()
    try:
        return dict(after_epoch(epoch))
    finally:
        model.train()


def epoch_line(row: dict[str, float], epochs: int, elapsed: float, eta: float) -> str:
    """One plain log line per epoch, counted from 1 for people: losses, evaluation, speed, elapsed, ETA."""
    skip = {"epoch", "lr", "seconds", "videos_per_s", "resumed"}
    terms = "  ".join(f"{name} {value:.4g}" for name, value in row.items() if name not in skip)
    return (f"epoch {int(row['epoch']) + 1}/{epochs}  {terms}  lr {row['lr']:.3g}  {row['videos_per_s']:.0f} videos/s  "
            f"elapsed {_clock(elapsed)}  eta {_clock(eta)}")


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
