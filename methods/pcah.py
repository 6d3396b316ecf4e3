"""PCAH: the signs of the top ``bits`` principal components of the pooled features."""

from __future__ import annotations

import numpy as np

from ssvh_bench import ShallowMethod, fit_pca, register_method


@register_method("pcah", description="PCA to `bits` directions, then sign", family="shallow", test_params={})
class PCAH(ShallowMethod):
    """PCA hashing. Deterministic (the seed is unused); ``bits`` may not exceed min(training videos, feature
    dim), otherwise fitting raises ConfigError naming the limit."""

    display = {"name": "PCAH", "published": "2010-06", "colour": "#56B4E9", "marker": "<"}

    def _fit_pooled(self, pooled: np.ndarray, bits: int, rng: np.random.Generator) -> None:
        self.pca_ = fit_pca(pooled, bits, owner="pcah")

    def _project(self, pooled: np.ndarray) -> np.ndarray:
        return self.pca_.transform(pooled)
