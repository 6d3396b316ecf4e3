"""SH, spectral hashing (Weiss, Torralba & Fergus, NIPS 2008), with its analytical eigenfunctions.

After PCA, the data are treated as uniform over their bounding box. Along a principal direction of range R
the 1-D Laplacian eigenfunctions are cos(k pi (x - min) / R), k = 1, 2, ..., with eigenvalue proportional
to (k / R)^2. The ``bits`` (direction, mode) pairs with the smallest eigenvalues each give one bit:
sign(sin(pi/2 + k pi (x - min) / R)).
"""

from __future__ import annotations

import numpy as np

from ssvh_bench import ShallowMethod, fit_pca, register_method


@register_method("sh", description="Spectral hashing: PCA + analytical eigenfunctions over the bounding box",
                 family="shallow", test_params={})
class SH(ShallowMethod):
    """Spectral hashing. Deterministic (the seed is unused). Uses min(bits, training videos, feature dim)
    principal directions; a direction may give several bits (higher modes), so any ``bits`` works.

    After fitting, ``modes_`` is an int array [bits, 2] of (principal direction, mode k), ordered by
    increasing eigenvalue (ties: lower direction first, then lower k).
    """

    display = {"name": "SH", "published": "2008-12", "colour": "#8C564B", "marker": ">"}

    def _fit_pooled(self, pooled: np.ndarray, bits: int, rng: np.random.Generator) -> None:
        n_directions = min(bits, *pooled.shape)
        self.pca_ = fit_pca(pooled, n_directions, owner="sh")
        projected = self.pca_.transform(pooled)
        self.minimum_ = projected.min(axis=0)
        self.range_ = np.maximum(projected.max(axis=0) - self.minimum_, np.finfo(float).tiny)
        # Along each direction, modes up to `bits` times the widest frequency can be among the chosen ones.
        max_mode = np.ceil(bits * self.range_ / self.range_.max()).astype(int)
        directions = np.repeat(np.arange(n_directions), max_mode)
        modes = np.arange(len(directions)) - np.repeat(np.cumsum(max_mode) - max_mode, max_mode) + 1
        eigenvalues = (modes / self.range_[directions]) ** 2
        chosen = np.lexsort((modes, directions, eigenvalues))[:bits]
        self.modes_ = np.stack([directions[chosen], modes[chosen]], axis=1)

    def _project(self, pooled: np.ndarray) -> np.ndarray:
        directions, modes = self.modes_[:, 0], self.modes_[:, 1]
        position = (self.pca_.transform(pooled)[:, directions] - self.minimum_[directions]) / self.range_[directions]
        return np.sin(np.pi / 2 + modes * np.pi * position)
