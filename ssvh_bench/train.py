"""The one training loop shared by every deep and two-stage method, and ``DeepMethod``, its method contract.

A subclass supplies the model and the losses through hooks; the loop does everything else:

- ``prepare(train, ...)`` (optional): two-stage methods run stage 1 here (cached under ``cache_dir``).
- ``build_model(n_frames, feature_dim, bits)``, built right after ``torch.manual_seed(seed)``.
- ``build_optimizer(model)`` (default: Adam at ``self.lr``) and ``learning_rate(epoch)`` (default: constant
  ``self.lr``), applied to every parameter group at the start of each epoch.
- ``training_losses(model, batch, indices, epoch, generator)``: a dict of scalar tensors holding ``"loss"``
  (minimised) and anything else worth logging. ``batch`` is float32 [B, T, D] on the device, ``indices`` the
  videos' positions in ``self.train_videos``; draw every random number from ``generator``.
- ``encode_batch(model, batch)``: codes [B, bits] in {-1, 0, +1}.

Hyper-parameters read from the method: ``epochs``, ``batch_size``, ``lr``, ``checkpoint_every``, ``amp``.
Epochs count from 0 everywhere (hooks, ``history.csv``, error messages).

Reproducibility: batches come from ``train.iter_batches(shuffle=True, seed=...)`` and in-epoch randomness
from a generator, both seeded by (seed, epoch), and the global RNGs are re-seeded per epoch (dropout), so a
run resumed from an epoch-boundary checkpoint reproduces the uninterrupted run exactly on the CPU.
"""

from __future__ import annotations

import csv
import io
import math
import pickle
import random
import time
from abc import abstractmethod
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from .codes import check_bits
from .io import atomic_path, canonical_json, write_text
from .data import VideoFeatures, as_video_features
from .data.readahead import ReadAhead
from .errors import ConfigError, DataError, TrainingError
from .method import HashingMethod
from .results import HISTORY_FILE

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_FILE = "last.pt"
RELEASED_STATE_KEY = "model_state_dict"  # how the reference code stores weights in its checkpoints
PROGRESS_REFRESH_S = 0.5
READ_AHEAD_BATCHES = 2  # batches read ahead on CUDA


class DeepMethod(HashingMethod):
    """A method trained by the shared loop (see the module docstring for the hooks)."""

    family = "deep"
    # A ragged last batch would leave contrastive losses with few negatives; the loop still keeps one
    # (smaller) batch when the training set is smaller than ``batch_size``.
    drop_last: ClassVar[bool] = True

    epochs: int
    batch_size: int
    lr: float
    checkpoint_every: int
    amp: bool

    model: nn.Module | None = None
    train_videos: VideoFeatures | None = None
    device: torch.device = torch.device("cpu")

    # ---- hooks -------------------------------------------------------------------------------------------
    @abstractmethod
    def build_model(self, n_frames: int, feature_dim: int, bits: int) -> nn.Module: ...

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.Adam(model.parameters(), lr=self.lr)

    def learning_rate(self, epoch: int) -> float:
        return self.lr

    def prepare(self, train: VideoFeatures, *, bits: int, seed: int, device: torch.device,
                cache_dir: Path | None, progress: bool) -> None:
        """Work before the first epoch (stage 1 of two-stage methods); runs again when a run resumes."""

    @abstractmethod
    def training_losses(self, model: nn.Module, batch: torch.Tensor, indices: torch.Tensor, epoch: int,
                        generator: torch.Generator) -> dict[str, torch.Tensor]: ...

    @abstractmethod
    def encode_batch(self, model: nn.Module, batch: torch.Tensor) -> torch.Tensor: ...

    # ---- the method contract -----------------------------------------------------------------------------
    def fit(self, train, *, bits, seed, device="cpu", progress=False, workdir=None, cache_dir=None):
        self.bits = check_bits(bits)
        if seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {seed}")
        self.device = torch_device(device)
        self.train_videos = train
        try:
            seed_everything(seed)
            self.prepare(train, bits=self.bits, seed=seed, device=self.device, cache_dir=cache_dir,
                         progress=progress)
            # Seed again: whether ``prepare`` built its stage 1 or loaded it from the cache must not change
            # the model's initial weights.
            seed_everything(seed)
            self._build(train.n_frames, train.feature_dim)
            run_training(self, train, seed=seed, workdir=None if workdir is None else Path(workdir),
                         progress=progress)
        finally:
            self.train_videos = None
        return self

    def encode(self, videos: VideoFeatures | np.ndarray) -> np.ndarray:
        """Codes in full precision (no autocast), in eval mode, batch by batch in dataset order."""
        if self.model is None:
            raise RuntimeError(f"{type(self).__name__} has no model yet: call fit or load_checkpoint first")
        videos = as_video_features(videos)
        self.model.eval()
        codes = np.empty((len(videos), self.bits), dtype=np.int8)
        with torch.inference_mode():
            for indices, features in videos.iter_batches(self.batch_size, shuffle=False):
                batch_codes = self.encode_batch(self.model, to_device(features, self.device))
                codes[indices] = batch_codes.to(torch.int8).cpu().numpy()
        return codes

    @property
    def n_parameters(self) -> int:
        return 0 if self.model is None else sum(p.numel() for p in self.model.parameters())

    def state_dict(self) -> dict[str, Any]:
        if self.model is None:
            raise RuntimeError(f"{type(self).__name__} has no model yet: call fit or load_checkpoint first")
        return {"bits": self.bits, "n_frames": self.n_frames, "feature_dim": self.feature_dim,
                "model": self.model.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> "DeepMethod":
        self.bits = check_bits(state["bits"])
        self._build(state["n_frames"], state["feature_dim"])
        self._load_weights(state["model"], "the given state")
        return self

    def load_checkpoint(self, path: Path, *, bits: int, n_frames: int, feature_dim: int,
                        device: str = "cpu") -> "DeepMethod":
        """Load weights from a released checkpoint (``model_state_dict``, maybe ``module.``-prefixed), a
        checkpoint written by the loop, or a bare state dict, into a model built for these shapes."""
        self.bits = check_bits(bits)
        self.device = torch_device(device)
        torch.manual_seed(0)  # every weight is overwritten; seeding only keeps construction deterministic
        self._build(n_frames, feature_dim)
        self._load_weights(read_model_weights(path), str(path))
        return self

    # ---- internals ---------------------------------------------------------------------------------------
    def _build(self, n_frames: int, feature_dim: int) -> None:
        self.n_frames, self.feature_dim = int(n_frames), int(feature_dim)
        self.model = self.build_model(self.n_frames, self.feature_dim, self.bits).to(self.device)

    def _load_weights(self, weights: dict[str, torch.Tensor], source: str) -> None:
        assert self.model is not None
        expected = self.model.state_dict()
        missing = sorted(set(expected) - set(weights))
        unexpected = sorted(set(weights) - set(expected))
        wrong = [f"{k} {tuple(weights[k].shape)} (model: {tuple(v.shape)})" for k, v in expected.items()
                 if k in weights and weights[k].shape != v.shape]
        if missing or unexpected or wrong:
            detail = "; ".join(part for part in (
                f"missing {missing[:3]}" if missing else "",
                f"unexpected {unexpected[:3]}" if unexpected else "",
                f"wrong shape {wrong[:3]}" if wrong else "",
            ) if part)
            raise DataError(f"{source} does not fit {type(self).__name__} with {self.bits} bits and "
                            f"{self.feature_dim}-d features: {detail}")
        self.model.load_state_dict(weights)


def step_decay_lr(epoch: int, lr: float, decay: float, every: int, floor: float) -> float:
    """The SSVH papers' schedule: ``lr * decay ** (epoch // every)``, never below ``floor``."""
    return max(lr * decay ** (epoch // every), floor)


def torch_device(device: str | torch.device) -> torch.device:
    """Parse a device name ("auto" picks CUDA when present); unusable names are ConfigErrors."""
    if str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but CUDA is not available here")
    return parsed


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """A seed for one random stream (0: batch order, 1: in-epoch generator, 2: global RNGs) of one epoch."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])


def to_device(features: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    if isinstance(features, np.ndarray):
        features = torch.from_numpy(np.ascontiguousarray(features))
    return features.to(device, non_blocking=True).float()


def pinned(batches: Iterator[tuple[np.ndarray, np.ndarray]]) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """Batches in page-locked memory, so their copy to the GPU is asynchronous."""
    for indices, features in batches:
        yield indices, torch.from_numpy(np.ascontiguousarray(features)).pin_memory()


def autocast_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """bf16 where the GPU supports it, else fp16 (with a GradScaler); full precision on the CPU."""
    if not amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def run_training(method: DeepMethod, train: VideoFeatures, *, seed: int, workdir: Path | None,
                 progress: bool) -> list[dict[str, float]]:
    """Train ``method.model`` for ``method.epochs`` epochs (resuming from ``workdir``); returns the history."""
    from tqdm.auto import tqdm

    model, device = method.model, method.device
    assert model is not None
    optimizer = method.build_optimizer(model)
    precision = autocast_dtype(device, method.amp)
    scaler = torch.amp.GradScaler("cuda") if precision == torch.float16 else None
    checkpoint = None if workdir is None else workdir / CHECKPOINT_DIR / CHECKPOINT_FILE
    settings = {"method": type(method).__name__, "params": method.get_params(), "bits": method.bits,
                "seed": seed, "train_shape": list(train.shape)}

    history: list[dict[str, float]] = []
    start = 0
    if checkpoint is not None and checkpoint.is_file():
        state = _load_training_checkpoint(checkpoint, settings)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start, history = state["epochs_done"], list(state["history"])

    batch_size = min(method.batch_size, len(train))
    steps = len(train) // batch_size if method.drop_last else math.ceil(len(train) / batch_size)
    bar = tqdm(total=method.epochs * steps, initial=start * steps, disable=not progress, unit="batch",
               dynamic_ncols=True, leave=False)
    try:
        for epoch in range(start, method.epochs):
            lr = method.learning_rate(epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            seed_everything(epoch_seed(seed, epoch, 2))
            generator = torch.Generator(device=device).manual_seed(epoch_seed(seed, epoch, 1))
            model.train()
            totals: dict[str, torch.Tensor] = {}
            n_videos, started, shown = 0, time.perf_counter(), 0.0
            batches = train.iter_batches(batch_size, shuffle=True, seed=epoch_seed(seed, epoch, 0),
                                         drop_last=method.drop_last)
            if device.type == "cuda":  # read (gather, decode) and pin the next batches while the GPU works
                batches = ReadAhead(pinned(batches), depth=READ_AHEAD_BATCHES)
            for indices, features in batches:
                batch = to_device(features, device)
                with nullcontext() if precision is None else torch.autocast(device.type, dtype=precision):
                    losses = method.training_losses(model, batch, torch.from_numpy(indices).to(device), epoch,
                                                    generator)
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(losses["loss"]).backward()
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    losses["loss"].backward()
                    optimizer.step()
                for name, value in losses.items():  # summed on the device: no sync per step
                    totals[name] = totals.get(name, 0) + value.detach().float() * len(indices)
                n_videos += len(indices)
                bar.update(1)
                if progress and time.perf_counter() - shown > PROGRESS_REFRESH_S:
                    shown = time.perf_counter()
                    bar.set_postfix_str(f"epoch {epoch}/{method.epochs - 1} loss {losses['loss'].item():.4f} "
                                        f"{n_videos / (shown - started):.0f} videos/s")
            seconds = time.perf_counter() - started
            means = {name: float(total) / n_videos for name, total in totals.items()}
            bad = [f"{name} = {value}" for name, value in means.items() if not math.isfinite(value)]
            if bad:
                kept = (f"last good checkpoint kept: {checkpoint}, {_epochs_in(checkpoint)} epochs done"
                        if checkpoint is not None and checkpoint.is_file() else "no checkpoint to resume from")
                raise TrainingError(f"training stopped in epoch {epoch}: {', '.join(bad)} ({kept})")
            history.append({"epoch": epoch, **means, "lr": lr, "seconds": seconds,
                            "videos_per_s": n_videos / seconds})
            if workdir is not None:
                write_history(workdir / HISTORY_FILE, history)
                done = epoch + 1
                if checkpoint is not None and (done % max(method.checkpoint_every, 1) == 0 or done == method.epochs):
                    state = {"epochs_done": done, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "scaler": None if scaler is None else scaler.state_dict(), "history": history,
                             "settings": settings}
                    with atomic_path(checkpoint) as tmp:
                        torch.save(state, tmp)
    finally:
        bar.close()
    return history


def _epochs_in(checkpoint: Path) -> int:
    return torch.load(checkpoint, map_location="cpu", weights_only=True)["epochs_done"]


def _load_training_checkpoint(path: Path, settings: dict[str, Any]) -> dict[str, Any]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if canonical_json(state.get("settings")) != canonical_json(settings):
        raise TrainingError(f"the checkpoint {path} was written with other settings ({state.get('settings')}); "
                            "delete it or train in another folder")
    return state


def write_history(path: Path, history: list[dict[str, float]]) -> None:
    """history.csv: epoch, every logged loss (``loss`` first), lr, seconds, videos_per_s."""
    columns = list(dict.fromkeys(key for row in history for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    write_text(path, buffer.getvalue())


def read_model_weights(path: Path) -> dict[str, torch.Tensor]:
    """Model weights from a released checkpoint (``model_state_dict``, with or without DataParallel's
    ``module.`` prefix), a checkpoint written by the loop (``model``) or a bare state dict."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no checkpoint file at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        raise DataError(f"{path} is not a readable weights-only torch checkpoint ({str(error).splitlines()[0]})") \
            from None
    if isinstance(state, dict) and RELEASED_STATE_KEY in state:
        state = state[RELEASED_STATE_KEY]
    elif isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"{path} holds no model state dict (expected a {RELEASED_STATE_KEY!r} entry)")
    return {key.removeprefix("module."): value for key, value in state.items()}
