"""Shared fixtures and helpers: a tiny dataset and a trivial method registered for the duration of a test, the
tiny synthetic dataset most tests run on, and ``invoke`` (the command line, in process)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ssvh_bench import ArrayFeatures, Dataset, DatasetSplits, ShallowMethod, dataset_registry, method_registry

# The synthetic dataset at test size: a few seconds for any method.
TINY = {"n_train": 64, "n_database": 32, "n_frames": 4, "feature_dim": 16, "n_classes": 4}


def dataset_options(params: dict) -> list[str]:
    """``--dataset-param key=value`` options for the command line."""
    return [option for key, value in params.items() for option in ("--dataset-param", f"{key}={value}")]


def invoke(*args: object):
    """The command line, run in this process (its exit code and output in the result)."""
    from ssvh_bench.cli import app

    return CliRunner().invoke(app, [str(arg) for arg in args])


# Tests use tiny models, for which intra-op threads only add overhead, and on a shared machine OpenMP
# threads competing with other jobs made single tiny steps up to 100x slower.
torch.set_num_threads(1)


class TinyBlobs(Dataset):
    """Two well separated classes; optionally poisoned with a NaN."""

    def __init__(self, n: int = 40, frames: int = 4, dim: int = 16, separate_query: bool = False,
                 poison: bool = False) -> None:
        self.n, self.frames, self.dim, self.separate_query, self.poison = n, frames, dim, separate_query, poison

    def _split(self, rng: np.random.Generator, n: int) -> tuple[ArrayFeatures, np.ndarray]:
        classes = np.arange(n) % 2
        centres = np.where(classes[:, None] == 0, 3.0, -3.0) * np.ones(self.dim)
        features = centres[:, None, :] + rng.normal(size=(n, self.frames, self.dim))
        return ArrayFeatures(features), np.eye(2, dtype=np.uint8)[classes]

    def load(self, data_root=None) -> DatasetSplits:
        rng = np.random.default_rng(0)
        train, _ = self._split(rng, self.n)
        if self.poison:
            train.array[3, 1, 2] = np.nan
        database, database_labels = self._split(rng, self.n)
        query, query_labels = self._split(rng, self.n // 2) if self.separate_query else (None, None)
        return DatasetSplits("tiny-blobs", train, database, database_labels, query, query_labels)


class FirstCoordinates(ShallowMethod):
    """Sign of the first `bits` centred pooled coordinates (tiled when bits > dim)."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def _fit_pooled(self, pooled, bits, rng):
        self.mean_ = pooled.mean(axis=0)

    def _project(self, pooled):
        centred = pooled - self.mean_ + self.offset
        return np.resize(centred, (len(pooled), self.bits))


@pytest.fixture
def tiny_plugins():
    """Register ``tiny-blobs`` and ``first-coords`` in the global registries for one test."""
    dataset_registry.register("tiny-blobs", description="two blobs")(TinyBlobs)
    method_registry.register("first-coords", description="first coordinates", family="shallow")(FirstCoordinates)
    yield
    dataset_registry.unregister("tiny-blobs")
    method_registry.unregister("first-coords")
