"""``DeepMethod``: a hashing method trained by the shared loop (``ssvh_bench.train``).

It adds to the loop's hooks ``prepare(train, ...)`` (stage 1 of two-stage methods, cached under ``cache_dir``),
``build_model(n_frames, feature_dim, bits)`` (built right after the RNGs are seeded with ``init_seed(seed)``:
the run's seed unless the method derives another) and ``encode_batch(model, features)`` (codes [B, bits] in
{-1, 0, +1}); ``fit`` runs the loop in the run folder (``history.csv``, ``checkpoints/last.pt``), ``encode``
codes videos batch by batch, and weights load from the loop's or the authors' checkpoints.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import distributed
from ..checkpoints import read_model_weights
from ..codes import check_bits, check_codes
from ..data import VideoFeatures, as_video_features, require_finite
from ..data.on_device import DeviceFeatures
from ..devices import torch_device
from ..errors import ConfigError, DataError
from ..run_folder import RunFolder
from ..options import DEFAULT_CHECKPOINT_MINUTES
from ..train import AfterEpoch, OnRow, TrainingHooks, run_training, seed_everything, to_device
from .base import HashingMethod


class DeepMethod(TrainingHooks, HashingMethod):
    """A hashing method trained by the shared loop (``ssvh_bench.train``: see its docstring for the hooks)."""

    family = "deep"
    # the loop's hyper-parameters, for the methods that have them
    param_rules = {"epochs": "positive", "batch_size": "positive", "lr": "positive", "lr_decay": "positive",
                   "lr_decay_every": "positive", "min_lr": "non_negative"}

    model: nn.Module | None = None
    checkpoint_minutes: float = DEFAULT_CHECKPOINT_MINUTES  # set by ``fit`` for ``prepare``
    device: torch.device = torch.device("cpu")

    # ---- hooks -------------------------------------------------------------------------------------------
    @abstractmethod
    def build_model(self, n_frames: int, feature_dim: int, bits: int) -> nn.Module: ...

    def prepare(self, train: VideoFeatures, *, bits: int, seed: int, device: torch.device,
                cache_dir: Path | None, progress: bool) -> None:
        """Work before the first epoch (stage 1 of two-stage methods); runs again when a run resumes."""

    @abstractmethod
    def encode_batch(self, model: nn.Module, features: torch.Tensor) -> torch.Tensor: ...

    def init_seed(self, seed: int) -> int:
        """The seed the RNGs get right before ``build_model``: the run's seed. A method that builds another model
        under the run's seed first (a stage 1) returns a seed derived from it, so that the two models' initial
        weights are independent draws, as they are in a reference that runs its stages as separate scripts."""
        return seed

    # ---- the method contract -----------------------------------------------------------------------------
    def fit(self, train, *, bits, seed, device="cpu", progress=False, workdir=None, cache_dir=None,
            after_epoch: AfterEpoch | None = None, on_row: OnRow | None = None,
            checkpoint_minutes: float = DEFAULT_CHECKPOINT_MINUTES, precision: str = "auto", compile: bool = False):
        """Train on ``train``. ``checkpoint_minutes``: training between checkpoints in ``workdir`` (stage 1's
        too; 0: every epoch); ``precision`` and ``compile``: how the loop computes its steps
        (``ssvh_bench.precision``); ``after_epoch`` and ``on_row``: see ``ssvh_bench.train.run_training``."""
        self.bits = check_bits(bits)
        self.checkpoint_minutes = checkpoint_minutes
        if seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {seed}")
        self.device = torch_device(device)
        seed_everything(seed)
        self.prepare(train, bits=self.bits, seed=seed, device=self.device, cache_dir=cache_dir, progress=progress)
        # Seed again: whether ``prepare`` built its stage 1 or loaded it from the cache must not change the
        # model's initial weights.
        seed_everything(self.init_seed(seed))
        self._build(train.n_frames, train.feature_dim)
        settings = {"method": type(self).__name__, "params": self.get_params(), "bits": self.bits, "seed": seed,
                    "train_shape": list(train.shape)}
        if isinstance(train, DeviceFeatures) and train.tensor.dtype == torch.float16:
            settings["train_dtype"] = "float16"  # rounded inputs: a float32 checkpoint must not resume from it
        folder = None if workdir is None else RunFolder(Path(workdir))
        history = run_training(self, self.model, train, seed=seed, device=self.device, settings=settings,
                               history_path=None if folder is None else folder.history,
                               checkpoint_path=None if folder is None else folder.checkpoint,
                               progress=progress, after_epoch=after_epoch, on_row=on_row,
                               checkpoint_minutes=checkpoint_minutes, precision=precision, compile=compile)
        # epochs restored from a checkpoint were trained by an earlier process: the run's training time counts them
        self.resumed_seconds = sum(row.get("seconds", 0.0) for row in history if row.get("resumed"))
        return self

    def encode(self, videos: VideoFeatures | np.ndarray) -> np.ndarray:
        """Codes in full precision (no autocast), in eval mode, batch by batch in dataset order."""
        if self.model is None:
            raise RuntimeError(f"{type(self).__name__} has no model yet: call fit or load_checkpoint first")
        videos = as_video_features(videos)
        self.model.eval()
        share = distributed.shard_range(len(videos))  # under torchrun each rank encodes its share
        if len(share) == len(videos):
            batches = videos.iter_batches(self.batch_size, shuffle=False)  # sequential: file reads ahead
        else:
            batches = ((indices, videos.read(indices)) for indices in
                       (np.arange(start, min(start + self.batch_size, share.stop))
                        for start in range(share.start, share.stop, self.batch_size)))
        codes = np.empty((len(share), self.bits), dtype=np.int8)
        with torch.inference_mode():
            for indices, features in batches:
                require_finite(features, indices, "encoded videos")
                batch_codes = self.encode_batch(self.model, to_device(features, self.device)).cpu()
                codes[indices - share.start] = check_codes(batch_codes.numpy(),
                                                           what=f"codes of videos {indices[0]}..{indices[-1]}")
        return distributed.gather_arrays(codes)

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
