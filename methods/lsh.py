"""LSH: signs of random Gaussian projections of the centred pooled features (data-independent directions)."""

from __future__ import annotations

import numpy as np

from ssvh_bench import ShallowMethod, register_method


@register_method("lsh", description="Random Gaussian projections of centred pooled features", family="shallow",
                 test_params={})
class LSH(ShallowMethod):
    """Locality-sensitive hashing by random hyperplanes through the training mean.

    Any number of bits works, also more than the feature dimension (the extra hyperplanes are just as random).
    """

    display = {"name": "LSH", "published": "1999-09", "colour": "#999999", "marker": "v"}

    def _fit_pooled(self, pooled: np.ndarray, bits: int, rng: np.random.Generator) -> None:
        self.mean_ = pooled.mean(axis=0)
        self.projection_ = rng.standard_normal((pooled.shape[1], bits))

    def _project(self, pooled: np.ndarray) -> np.ndarray:
        return (pooled - self.mean_) @ self.projection_
