"""The method contract every hashing method implements (sklearn-like).

``__init__`` stores hyper-parameters only (their defaults are what ``ssvh-bench list`` shows and what the
run id hashes); ``fit`` learns from unlabelled training videos and returns self; ``encode`` maps videos to
int8 codes in {-1, 0, +1} of shape [N, bits] (the engine packs them, see ``ssvh_bench.codes``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..codes import check_bits
from ..data import VideoFeatures, as_video_features, require_finite
from ..errors import ConfigError
from ..registry import signature_defaults


# rule name -> (test, what the message says the value must be)
PARAM_RULES: dict[str, tuple[Callable[[float], bool], str]] = {
    "positive": (lambda value: value > 0, "must be positive"),
    "non_negative": (lambda value: value >= 0, "must not be negative"),
    "open_unit": (lambda value: 0 < value < 1, "must be strictly between 0 and 1"),
    "unit": (lambda value: 0 <= value <= 1, "must be between 0 and 1"),
}


class HashingMethod(ABC):
    # Read by the registry (and checked when the method registers):
    family: ClassVar[str]  # "shallow", "deep" or "two_stage"
    version: ClassVar[int] = 1  # enters the run id: bump it whenever a change alters the method's codes
    # per-dataset defaults over the constructor's, e.g. {"activitynet": {"batch_size": 128}}
    dataset_defaults: ClassVar[dict[str, dict[str, Any]]] = {}

    bits: int

    def get_params(self) -> dict[str, Any]:
        """The constructor's parameters with their current values (feeds the run id)."""
        return {name: getattr(self, name) for name in signature_defaults(type(self))}

    # The method's own value rules, by parameter name: "positive", "non_negative", "open_unit" (strictly between
    # 0 and 1) or "unit" (in [0, 1]); a subclass's rules add to its bases' (``check_params`` merges them).
    param_rules: ClassVar[dict[str, str]] = {}
    # parameters with a fixed set of values, e.g. {"variant": ("small", "base")}
    param_choices: ClassVar[dict[str, tuple[Any, ...]]] = {}
    # parameters whose "auto" is decided on the machine that runs (and changes the codes), with the name of the
    # public ``ssvh_bench`` function that decides it, e.g. {"kmeans_backend": "resolve_kmeans_backend"}: the run
    # id records the decision. Names, not functions, so the registry reads them without importing the plugin.
    param_resolvers: ClassVar[dict[str, str]] = {}
    # how readers see the method: {"name": as the paper spells it, "published": "YYYY-MM" (the display order:
    # shallow methods first, then by publication), "colour": "#RRGGBB", "marker": a matplotlib marker}
    display: ClassVar[dict[str, str]] = {}

    def check_params(self) -> None:
        """Raise ConfigError for a parameter value the method cannot run with, before anything is written."""
        name = type(self).__name__
        rules: dict[str, str] = {}
        choices: dict[str, tuple[Any, ...]] = {}
        for cls in reversed(type(self).__mro__):
            rules.update(vars(cls).get("param_rules", {}))
            choices.update(vars(cls).get("param_choices", {}))
        for key, value in self.get_params().items():
            if key in choices and value not in choices[key]:
                raise ConfigError(f"{name}: unknown {key} {value!r}; choose from {', '.join(map(str, choices[key]))}")
            if key not in rules or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            holds, requirement = PARAM_RULES[rules[key]]
            if not holds(value):
                raise ConfigError(f"{name}: {key} {requirement}, got {value}")

    def store_params(self, arguments: dict[str, Any]) -> None:
        """Keep every constructor parameter as an attribute of the same name; call it as
        ``self.store_params(locals())`` in ``__init__``."""
        for name in signature_defaults(type(self)):
            setattr(self, name, arguments[name])

    @abstractmethod
    def fit(
        self,
        train: VideoFeatures,
        *,
        bits: int,
        seed: int,
        device: str = "cpu",
        progress: bool = False,
        workdir: Path | None = None,
        cache_dir: Path | None = None,
    ) -> "HashingMethod":
        """Learn from the training videos (labels are never given).

        ``workdir`` is the run folder: methods that train for long keep checkpoints and history there so an
        interrupted run can resume. ``cache_dir`` holds artefacts shared between runs (two-stage methods
        keep their stage-1 pseudo-neighbourhoods there, keyed by their inputs).
        """

    @abstractmethod
    def encode(self, videos: VideoFeatures | np.ndarray) -> np.ndarray:
        """int8 codes in {-1, 0, +1}, shape [N, bits]."""

    @property
    def n_parameters(self) -> int:
        """Number of learned scalars (0 for data-independent methods)."""
        return 0


class ShallowMethod(HashingMethod):
    """A method that hashes frame-mean ("pooled") features with a closed-form or few-iteration model.

    Subclasses implement ``_fit_pooled`` (learn from [N, D] features) and ``_project`` (real-valued
    projections [N, bits], thresholded at 0 here). A projection of exactly 0 maps to +1: shallow codes
    are purely binary.
    """

    family = "shallow"

    def fit(self, train, *, bits, seed, device="cpu", progress=False, workdir=None, cache_dir=None):
        self.bits = check_bits(bits)
        pooled = train.pooled()
        require_finite(pooled, None, "training split (frame-mean features)")
        self._fit_pooled(pooled.astype(np.float64), bits, np.random.default_rng(seed))
        return self

    def encode(self, videos):
        pooled = as_video_features(videos).pooled()
        require_finite(pooled, None, "encoded videos (frame-mean features)")
        projections = self._project(pooled.astype(np.float64))
        return np.where(projections >= 0, np.int8(1), np.int8(-1))

    @abstractmethod
    def _fit_pooled(self, pooled: np.ndarray, bits: int, rng: np.random.Generator) -> None: ...

    @abstractmethod
    def _project(self, pooled: np.ndarray) -> np.ndarray: ...
