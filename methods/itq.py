"""ITQ (Gong & Lazebnik, CVPR 2011): PCA, then an orthogonal rotation that minimises the quantization loss."""

from __future__ import annotations

import numpy as np
from scipy.linalg import orthogonal_procrustes
from scipy.stats import ortho_group
from threadpoolctl import threadpool_limits

from ssvh_bench import ConfigError, ShallowMethod, fit_pca, register_method


@register_method("itq", description="PCA, then iterative quantization (orthogonal rotation)", family="shallow",
                 test_params={"n_iter": 3})
class ITQ(ShallowMethod):
    """Iterative quantization: alternate B = sign(V R) and the orthogonal Procrustes rotation R that best maps
    the PCA projections V onto B, from a random orthogonal start (the seed picks it).

    ``bits`` may not exceed min(training videos, feature dim) (ConfigError naming the limit).
    ``quantization_loss_`` records ||B - V R||^2 after each rotation update (B: the codes that rotation was
    fitted to); it never increases.
    """

    display = {"name": "ITQ", "published": "2011-06", "colour": "#009E73", "marker": "D"}
    param_rules = {"n_iter": "non_negative"}

    def __init__(self, n_iter: int = 50) -> None:
        self.n_iter = n_iter

    def _fit_pooled(self, pooled: np.ndarray, bits: int, rng: np.random.Generator) -> None:
        if isinstance(self.n_iter, bool) or not isinstance(self.n_iter, int) or self.n_iter < 0:
            raise ConfigError(f"itq: n_iter must be an integer >= 0, got {self.n_iter!r}")
        self.pca_ = fit_pca(pooled, bits, owner="itq")
        projected = self.pca_.transform(pooled)
        rotation = ortho_group.rvs(bits, random_state=rng)
        self.quantization_loss_: list[float] = []
        with threadpool_limits(limits=1, user_api="blas"):
            self._rotate(projected, rotation)

    def _rotate(self, projected: np.ndarray, rotation: np.ndarray) -> None:
        # Runs on one BLAS thread: the products are thin (N x bits) and the SVDs bits x bits, so extra threads
        # only add synchronisation (on 2 busy cores a 64-bit fit took 10 s threaded against 0.1 s on one).
        rotated = projected @ rotation
        for _ in range(self.n_iter):
            binary = np.where(rotated >= 0, 1.0, -1.0)
            rotation, _ = orthogonal_procrustes(projected, binary)  # argmin over orthogonal R of ||V R - B||
            rotated = projected @ rotation
            self.quantization_loss_.append(float(np.sum((binary - rotated) ** 2)))
        self.rotation_ = rotation

    def _project(self, pooled: np.ndarray) -> np.ndarray:
        return self.pca_.transform(pooled) @ self.rotation_

