"""The embedded ``synthetic`` dataset: videos built like CNN frame features of short clips, from a seed in seconds.

The world is a pool of ``n_classes * BLOCKS_PER_CLASS`` shared building blocks (objects, motions) and, per
class, ``SCENES_PER_CLASS`` sub-types. A sub-type is a scene (a point in a latent content space) plus a script:
the ordered list of ``SEGMENTS`` blocks that occur in it. Classes come in twin pairs (0 and 1, 2 and 3, ...):
a twin's sub-types sit near its partner's scenes and play the same blocks in reverse order, so frame-mean
pooling confuses twins and only the order of segments tells them apart.

A video picks its class and sub-type, then holds the scene for all its frames (plus a per-video scene offset,
a class-irrelevant style shared by all classes and a slow drift), while its script's blocks follow each other
in segments of random lengths with a short cross-fade. Frames are rendered to ``feature_dim`` non-negative
features by one fixed random two-layer map, ``relu(relu(z @ W1 + b1) @ W2 + b2)``, and get a small per-frame
noise. The scenes of one class are far apart, so a class is several modes in feature space: nearest
neighbours recover it much better than one linear direction per class. ``difficulty`` scales every nuisance
(scene offset, style, drift, frame noise, segment-length jitter). With probability ``label_overlap`` a video
blends in a second class's content and carries both labels.

Random streams are split by purpose (world, then each split) and videos are made in blocks of
``RENDER_BLOCK``, so the class structure and the database do not change when only ``n_train`` changes, and
memory stays bounded for any size. It exists so the whole pipeline runs with no download; it is not evidence
about real video.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ssvh_bench import ArrayFeatures, ConfigError, Dataset, DatasetSplits, register_dataset

CONTENT_DIM = 32
STYLE_DIM = 8
HIDDEN_DIM = 128  # width of the rendering map's hidden layer
SCENES_PER_CLASS = 3
BLOCKS_PER_CLASS = 2  # size of the shared block pool, per class
SEGMENTS = 4  # blocks in a script
TWIN_GAP = 0.25  # distance of a twin's scene from its partner's, relative to the distance between scenes
BLOCK_SCALE = 0.6  # a block's size relative to a scene's
FADE = 1.5  # cross-fade between segments, in frames
# Nuisance strengths at difficulty 1 (each is multiplied by ``difficulty``).
SCENE_OFFSET = 0.25  # per-video change of the scene
STYLE_STRENGTH = 0.4  # class-irrelevant style: a shared prototype plus a per-video offset
DRIFT = 0.15  # slow per-video drift over the clip (camera motion)
FRAME_NOISE = 0.05  # per-frame, per-feature noise, relative to the features' standard deviation
SEGMENT_JITTER = 0.5  # spread of the segment lengths (Dirichlet concentration 1 / jitter)
N_STYLES = 6
RENDER_BLOCK = 512  # videos made at once: bounds the temporary memory to a few [512, T, D] arrays

_WORLD, _TRAIN, _DATABASE, _QUERY = range(4)


@dataclass(frozen=True)
class _World:
    """The fixed parts shared by every split: scenes, scripts, blocks, styles and the rendering map."""

    scenes: np.ndarray  # [C, SCENES_PER_CLASS, CONTENT_DIM]
    scripts: np.ndarray  # [C, SCENES_PER_CLASS, SEGMENTS] indices into ``blocks``
    blocks: np.ndarray  # [n_blocks, CONTENT_DIM]
    styles: np.ndarray  # [N_STYLES, STYLE_DIM]
    w1: np.ndarray  # [CONTENT_DIM + STYLE_DIM, HIDDEN_DIM]
    b1: np.ndarray  # [HIDDEN_DIM]
    w2: np.ndarray  # [HIDDEN_DIM, D]
    b2: np.ndarray  # [D]
    scale: float  # makes the clean features' standard deviation 1, as for typical CNN features


@register_dataset("synthetic", description="Embedded videos with latent temporal classes (no download)")
class SyntheticVideos(Dataset):
    """Generated videos in FCVID's protocol shape (``n_query=0``: the database queries itself) or
    ActivityNet's (``n_query>0``: a separate query split)."""

    def __init__(
        self,
        n_train: int = 2000,
        n_database: int = 2000,
        n_query: int = 0,
        n_frames: int = 25,
        feature_dim: int = 256,
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
        c = self.n_classes
        # Points of norm about 1, drawn independently: scenes of one class lie as far apart as any two scenes.
        scenes = rng.normal(size=(c, SCENES_PER_CLASS, CONTENT_DIM)) / np.sqrt(CONTENT_DIM)
        n_blocks = BLOCKS_PER_CLASS * c
        blocks = BLOCK_SCALE * rng.normal(size=(n_blocks, CONTENT_DIM)) / np.sqrt(CONTENT_DIM)
        scripts = rng.integers(n_blocks, size=(c, SCENES_PER_CLASS, SEGMENTS))
        # Twins: the odd class of each pair takes its partner's scenes (moved by TWIN_GAP) and reversed scripts.
        twins = np.arange(1, c - c % 2, 2)
        scenes[twins] = scenes[twins - 1] + TWIN_GAP * scenes[twins]
        scripts[twins] = scripts[twins - 1][..., ::-1]
        latent = CONTENT_DIM + STYLE_DIM
        w1 = rng.normal(scale=2.0 / np.sqrt(latent), size=(latent, HIDDEN_DIM))
        b1 = rng.normal(scale=0.5, size=HIDDEN_DIM)
        w2 = rng.normal(scale=1.0 / np.sqrt(HIDDEN_DIM), size=(HIDDEN_DIM, self.feature_dim))
        b2 = rng.normal(scale=0.3, loc=-0.2, size=self.feature_dim)
        world = _World(scenes, scripts, blocks, rng.normal(size=(N_STYLES, STYLE_DIM)), w1, b1, w2, b2, 1.0)
        probe = self._render(world, np.concatenate(
            [scenes.reshape(-1, CONTENT_DIM), np.zeros((c * SCENES_PER_CLASS, STYLE_DIM))], axis=1))
        spread = float(probe.std())  # 0 only if every probe feature is 0 (a tiny feature_dim)
        return _World(scenes, scripts, blocks, world.styles, w1, b1, w2, b2, 1.0 / spread if spread > 0 else 1.0)

    @staticmethod
    def _render(world: _World, latent: np.ndarray) -> np.ndarray:
        hidden = np.maximum(latent @ world.w1 + world.b1, 0.0)
        return world.scale * np.maximum(hidden @ world.w2 + world.b2, 0.0)

    def _content(self, world: _World, classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Content-space frames [n, T, CONTENT_DIM] of videos of the given classes."""
        n, t = len(classes), self.n_frames
        scene_type = rng.integers(SCENES_PER_CLASS, size=n)
        scene = world.scenes[classes, scene_type]  # [n, L]
        scene = scene + SCENE_OFFSET * self.difficulty * rng.normal(size=scene.shape) / np.sqrt(CONTENT_DIM)
        blocks = world.blocks[world.scripts[classes, scene_type]]  # [n, S, L]
        # Segment boundaries: cumulative Dirichlet shares of the clip; jitter 0 gives equal segments.
        jitter = SEGMENT_JITTER * self.difficulty
        shares = (rng.dirichlet(np.full(SEGMENTS, 1.0 / jitter), size=n) if jitter > 0
                  else np.full((n, SEGMENTS), 1.0 / SEGMENTS))
        edges = np.cumsum(shares, axis=1)[:, :-1] * t  # [n, S-1]
        position = np.arange(t) + 0.5
        # Soft segment membership: a logistic step at each edge, so neighbouring segments cross-fade.
        steps = 1.0 / (1.0 + np.exp(-(position[None, :, None] - edges[:, None, :]) / (FADE / 4)))  # [n, T, S-1]
        weights = np.concatenate([1 - steps[..., :1], steps[..., :-1] - steps[..., 1:], steps[..., -1:]], axis=2)
        drift = DRIFT * self.difficulty * rng.normal(size=(n, 1, CONTENT_DIM)) / np.sqrt(CONTENT_DIM)
        return (scene[:, None, :] + np.einsum("nts,nsl->ntl", weights, blocks)
                + drift * np.linspace(-1.0, 1.0, t)[None, :, None])

    def _generate(self, world: _World, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Features [n, T, D] (float32) and multi-hot labels [n, n_classes] (uint8) of one split."""
        features = np.empty((n, self.n_frames, self.feature_dim), dtype=np.float32)
        labels = np.zeros((n, self.n_classes), dtype=np.uint8)
        for start in range(0, n, RENDER_BLOCK):
            stop = min(start + RENDER_BLOCK, n)
            features[start:stop], labels[start:stop] = self._generate_block(world, stop - start, rng)
        return features, labels

    def _generate_block(self, world: _World, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        classes = rng.integers(self.n_classes, size=n)
        content = self._content(world, classes, rng)
        labels = np.zeros((n, self.n_classes), dtype=np.uint8)
        labels[np.arange(n), classes] = 1

        mixed = np.flatnonzero(rng.uniform(size=n) < self.label_overlap)
        second = (classes[mixed] + rng.integers(1, self.n_classes, size=len(mixed))) % self.n_classes
        share = rng.uniform(0.35, 0.5, size=(len(mixed), 1, 1))
        content[mixed] = (1 - share) * content[mixed] + share * self._content(world, second, rng)
        labels[mixed, second] = 1

        style = world.styles[rng.integers(N_STYLES, size=n)] + rng.normal(size=(n, STYLE_DIM))
        style = STYLE_STRENGTH * self.difficulty * style / np.sqrt(STYLE_DIM)
        style = np.broadcast_to(style[:, None, :], (n, self.n_frames, STYLE_DIM))
        frames = self._render(world, np.concatenate([content, style], axis=-1))
        frames = frames + FRAME_NOISE * self.difficulty * rng.standard_normal(frames.shape)
        return np.maximum(frames, 0.0).astype(np.float32), labels
