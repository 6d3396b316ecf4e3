"""The embedded ``synthetic`` dataset: videos with real temporal structure, generated from a seed in seconds.

Each latent class is a family of smooth closed paths through a low-dimensional content space (a class centre
plus a few Fourier harmonics; every class owns ``PATHS_PER_CLASS`` related paths; content directions have
decaying scales so that, as with CNN features, the feature spectrum falls off gradually). A video follows one
path of its class for part of a period, with its own phase, speed and jittered harmonics (its "direction").
Frames are rendered to ``feature_dim`` non-negative features by one fixed random map, ``relu(z @ W + b)``, where z
joins the content point with a class-irrelevant style (one of ``N_STYLES`` styles shared by all classes, plus
a per-video offset). ``difficulty`` scales every nuisance: style strength, harmonic jitter, per-frame noise
and the rate of frame shuffles and duplications. With probability ``label_overlap`` a video blends in a
second class's trajectory and carries both labels.

Random streams are split by purpose (world, then each split), so the class structure and the database do not
change when only ``n_train`` changes. It exists so the whole pipeline runs with no download; it is not
evidence about real video.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ssvh_bench import ArrayFeatures, ConfigError, Dataset, DatasetSplits, register_dataset

CONTENT_DIM = 24
CENTRE_SCALE = 0.3  # spread of the class centres, relative to the unit-scale path harmonics
STYLE_DIM = 8
HARMONICS = 3
PATHS_PER_CLASS = 4
PATH_SPREAD = 1.2  # how much the paths of one class differ, relative to the class's shared harmonics
N_STYLES = 6
# Nuisance strengths at difficulty 1 (each is multiplied by ``difficulty``).
HARMONIC_JITTER = 0.8  # per-video change of the path's harmonics (its shape and direction)
STYLE_STRENGTH = 0.35  # class-irrelevant style: a shared prototype plus a per-video offset
FRAME_NOISE = 0.8  # per-frame, per-feature noise before the non-linearity
REORDER_RATE = 0.05  # per-frame probability of an adjacent swap, and of a duplicated frame
RENDER_BLOCK = 512  # videos rendered at once: bounds the temporary memory to a few [512, T, D] arrays

_WORLD, _TRAIN, _DATABASE, _QUERY = range(4)
# Higher harmonics get smaller amplitudes (and smaller jitter) so the paths stay smooth; shape [H, 1, 1].
_HARMONIC_DECAY = 1.0 / np.arange(1, HARMONICS + 1)[:, None, None]


@dataclass(frozen=True)
class _World:
    """The fixed parts shared by every split: class paths, styles and the rendering map."""

    centres: np.ndarray  # [C, CONTENT_DIM]
    path_harmonics: np.ndarray  # [C, PATHS_PER_CLASS, HARMONICS, 2, CONTENT_DIM] (cos, sin) amplitudes
    content_scale: np.ndarray  # [CONTENT_DIM]
    styles: np.ndarray  # [N_STYLES, STYLE_DIM]
    weights: np.ndarray  # [CONTENT_DIM + STYLE_DIM, D]
    bias: np.ndarray  # [D]


@register_dataset("synthetic", description="Embedded videos with latent temporal classes (no download)")
class SyntheticVideos(Dataset):
    """Generated videos in FCVID's protocol shape (``n_query=0``: the database queries itself) or
    ActivityNet's (``n_query>0``: a separate query split)."""

    def __init__(
        self,
        n_train: int = 5000,
        n_database: int = 2000,
        n_query: int = 0,
        n_frames: int = 25,
        feature_dim: int = 512,
        n_classes: int = 20,
        label_overlap: float = 0.1,
        difficulty: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.n_train = n_train
        self.n_database = n_database
        self.n_query = n_query
        self.n_frames = n_frames
        self.feature_dim = feature_dim
        self.n_classes = n_classes
        self.label_overlap = label_overlap
        self.difficulty = difficulty
        self.seed = seed
        self._check_params()

    def _check_params(self) -> None:
        counts = {"n_train": 1, "n_database": 1, "n_query": 0, "n_frames": 2, "feature_dim": 1, "n_classes": 2}
        for name, minimum in counts.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
                raise ConfigError(f"synthetic: {name} must be an integer >= {minimum}, got {value!r}")
        if not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError(f"synthetic: seed must be a non-negative integer, got {self.seed!r}")
        for name in ("label_overlap", "difficulty"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise ConfigError(f"synthetic: {name} must be a number, got {value!r}")
        if not 0.0 <= self.label_overlap <= 1.0:
            raise ConfigError(f"synthetic: label_overlap must be in [0, 1], got {self.label_overlap!r}")
        if not 0.0 <= self.difficulty < float("inf"):
            raise ConfigError(f"synthetic: difficulty must be a finite number >= 0, got {self.difficulty!r}")

    def load(self, data_root: Path | None = None) -> DatasetSplits:
        """Generate the splits; ``data_root`` is ignored (nothing is read from disk)."""
        world = self._make_world(self._rng(_WORLD))
        train, _ = self._generate(world, self.n_train, self._rng(_TRAIN))
        database, database_labels = self._generate(world, self.n_database, self._rng(_DATABASE))
        query, query_labels = (
            self._generate(world, self.n_query, self._rng(_QUERY)) if self.n_query > 0 else (None, None)
        )
        return DatasetSplits("synthetic", ArrayFeatures(train), ArrayFeatures(database), database_labels,
                             None if query is None else ArrayFeatures(query), query_labels)

    def _rng(self, stream: int) -> np.random.Generator:
        return np.random.default_rng([int(self.seed), stream])

    def _make_world(self, rng: np.random.Generator) -> _World:
        centres = rng.normal(scale=CENTRE_SCALE, size=(self.n_classes, CONTENT_DIM))
        class_harmonics = rng.normal(size=(self.n_classes, 1, HARMONICS, 2, CONTENT_DIM))
        path_offsets = rng.normal(scale=PATH_SPREAD,
                                  size=(self.n_classes, PATHS_PER_CLASS, HARMONICS, 2, CONTENT_DIM))
        latent = CONTENT_DIM + STYLE_DIM
        return _World(
            centres=centres,
            path_harmonics=(class_harmonics + path_offsets) * _HARMONIC_DECAY,
            content_scale=1.0 / np.sqrt(1.0 + np.arange(CONTENT_DIM) / 4.0),
            styles=rng.normal(size=(N_STYLES, STYLE_DIM)),
            weights=rng.normal(scale=1.0 / np.sqrt(latent), size=(latent, self.feature_dim)),
            bias=rng.normal(scale=0.5, loc=-0.3, size=self.feature_dim),
        )

    def _trajectories(self, world: _World, classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Content-space paths [n, T, CONTENT_DIM] of videos of the given classes."""
        n = len(classes)
        paths = rng.integers(PATHS_PER_CLASS, size=n)
        phase = rng.uniform(size=n)
        speed = rng.uniform(0.5, 1.0, size=n)  # fraction of the class period a clip covers
        harmonics = world.path_harmonics[classes, paths]  # [n, H, 2, L]
        jitter = HARMONIC_JITTER * self.difficulty * _HARMONIC_DECAY * rng.normal(size=harmonics.shape)
        harmonics = harmonics + jitter
        time = phase[:, None] + speed[:, None] * np.linspace(0.0, 1.0, self.n_frames)  # [n, T]
        angle = 2 * np.pi * time[:, :, None] * np.arange(1, HARMONICS + 1)  # [n, T, H]
        basis = np.stack([np.cos(angle), np.sin(angle)], axis=-1)  # [n, T, H, 2]
        motion = np.einsum("nthj,nhjl->ntl", basis, harmonics) * world.content_scale
        return world.centres[classes][:, None, :] + motion

    def _generate(self, world: _World, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Features [n, T, D] (float32) and multi-hot labels [n, n_classes] (uint8) of one split."""
        classes = rng.integers(self.n_classes, size=n)
        content = self._trajectories(world, classes, rng)
        labels = np.zeros((n, self.n_classes), dtype=np.uint8)
        labels[np.arange(n), classes] = 1

        mixed = np.flatnonzero(rng.uniform(size=n) < self.label_overlap)
        second = (classes[mixed] + rng.integers(1, self.n_classes, size=len(mixed))) % self.n_classes
        share = rng.uniform(0.35, 0.5, size=(len(mixed), 1, 1))
        content[mixed] = (1 - share) * content[mixed] + share * self._trajectories(world, second, rng)
        labels[mixed, second] = 1

        style = world.styles[rng.integers(N_STYLES, size=n)] + rng.normal(size=(n, STYLE_DIM))
        style = STYLE_STRENGTH * self.difficulty * style[:, None, :]
        style = np.broadcast_to(style, (n, self.n_frames, STYLE_DIM))
        latent = np.concatenate([content, style], axis=-1).astype(np.float32)
        latent = latent[np.arange(n)[:, None], self._frame_order(n, rng)]

        features = np.empty((n, self.n_frames, self.feature_dim), dtype=np.float32)
        weights, bias = world.weights.astype(np.float32), world.bias.astype(np.float32)
        noise_scale = np.float32(FRAME_NOISE * self.difficulty)
        for start in range(0, n, RENDER_BLOCK):
            block = latent[start : start + RENDER_BLOCK] @ weights + bias
            block += noise_scale * rng.standard_normal(block.shape, dtype=np.float32)
            features[start : start + RENDER_BLOCK] = np.maximum(block, 0.0)
        return features, labels

    def _frame_order(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Per-video frame indices [n, T] with occasional adjacent swaps and duplicated frames."""
        order = np.tile(np.arange(self.n_frames), (n, 1))
        rate = min(REORDER_RATE * self.difficulty, 0.5)
        # Swaps start at even positions only, so two swaps never overlap.
        starts = np.arange(0, self.n_frames - 1, 2)
        swap = rng.uniform(size=(n, len(starts))) < rate
        rows, cols = np.nonzero(swap)
        left, right = starts[cols], starts[cols] + 1
        order[rows, left], order[rows, right] = order[rows, right], order[rows, left]
        duplicate = rng.uniform(size=(n, self.n_frames - 1)) < rate
        rows, cols = np.nonzero(duplicate)
        order[rows, cols + 1] = order[rows, cols]
        return order
