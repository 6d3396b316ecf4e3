"""Checkpoint files: the training loop's state (saved atomically, refused when written with other settings,
a one-line error when damaged) and model weights from any checkpoint, including the authors' released ones."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from .errors import DataError, TrainingError
from .io import atomic_path, canonical_json

RELEASED_STATE_KEY = "model_state_dict"  # how the reference code stores weights in its checkpoints


def save_training_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write the loop's state (``epochs_done``, ``model``, ``optimizer``, ``history``, ``settings``...) atomically."""
    with atomic_path(Path(path)) as tmp:
        torch.save(state, tmp)


def epochs_in(checkpoint: Path) -> int:
    return torch.load(checkpoint, map_location="cpu", weights_only=True)["epochs_done"]


def load_training_checkpoint(path: Path, settings: dict[str, Any]) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state["epochs_done"], state["history"]  # noqa: B018  a checkpoint without them is damaged too
    except Exception as error:  # noqa: BLE001  torch/zip/pickle errors alike: the file is damaged
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise TrainingError(f"the checkpoint {path} is damaged ({reason}); delete it to train from scratch, "
                            "or run with --force") from None
    if canonical_json(state.get("settings")) != canonical_json(settings):
        raise TrainingError(f"the checkpoint {path} was written with other settings ({state.get('settings')}); "
                            "delete it or train in another folder")
    return state


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
