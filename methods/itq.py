"""ITQ (Gong & Lazebnik, CVPR 2011): PCA, then an orthogonal rotation that minimises the quantisation loss."""

from __future__ import annotations

import numpy as np
from scipy.linalg import svd
from scipy.stats import ortho_group

from ssvh_bench import ConfigError, ShallowMethod, fit_pca, register_method


@register_method("itq", description="PCA, then iterative quantisation (orthogonal rotation)", family="shallow",
                 test_params={"n_iter": 3})
class ITQ(ShallowMethod):
    """Iterative quantisation: alternate B = sign(V R) and the orthogonal Procrustes rotation R that best maps
    the PCA projections V onto B, from a random orthogonal start (the seed picks it).

    ``bits`` may not exceed min(training videos, feature dim) (ConfigError naming the limit).
    ``quantization_loss_`` records ||B - V R||^2 after each rotation update (B: the codes that rotation was
    fitted to); it never increases.
    """

    def __init__(self, n_iter: int = 50) -> None:
        self.n_iter = n_iter

    def _fit_pooled(self, pooled: np.ndarray, bits: int, rng: np.random.Generator) -> None:
        if isinstance(self.n_iter, bool) or not isinstance(self.n_iter, int) or self.n_iter < 0:
            raise ConfigError(f"itq: n_iter must be an integer >= 0, got {self.n_iter!r}")
        self.pca_ = fit_pca(pooled, bits, owner="itq")
        projected = self.pca_.transform(pooled)
        rotation = ortho_group.rvs(bits, random_state=rng)
        rotated = projected @ rotation
        self.quantization_loss_: list[float] = []
        for _ in range(self.n_iter):
            binary = np.where(rotated >= 0, 1.0, -1.0)
            # Orthogonal Procrustes: the rotation minimising ||V R - B|| is U W^T from the SVD of V^T B.
            # (what scipy.linalg.orthogonal_procrustes does; calling it was several times slower here.)
            left, _, right = svd(projected.T @ binary)
            rotation = left @ right
            rotated = projected @ rotation
            self.quantization_loss_.append(float(np.sum((binary - rotated) ** 2)))
        self.rotation_ = rotation

    def _project(self, pooled: np.ndarray) -> np.ndarray:
        return self.pca_.transform(pooled) @ self.rotation_

