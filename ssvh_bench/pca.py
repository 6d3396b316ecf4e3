"""PCA for the shallow baselines: one deterministic fit, with the component limit reported as a user error."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .errors import ConfigError

if TYPE_CHECKING:
    from sklearn.decomposition import PCA

# Below this many multiply-adds (N * D * min(N, D)) the fit runs on one BLAS thread: thread synchronisation
# then costs more than it saves, and on busy shared cores far more (5,000 x 512: 4 s threaded, 0.08 s not).
SINGLE_THREAD_FLOPS = 2e9


def fit_pca(pooled: np.ndarray, n_components: int, *, owner: str) -> PCA:
    """PCA of ``pooled`` [N, D] to ``n_components`` directions, the same for any seed.

    At most min(N, D) directions exist; asking for more raises ConfigError naming ``owner`` and the limit.
    Tall data (N >= D) uses the covariance eigendecomposition (D x D, fast for many videos), wide data a full
    SVD; neither draws random numbers.
    """
    n, dim = pooled.shape
    limit = min(n, dim)
    if n_components > limit:
        raise ConfigError(
            f"{owner}: {n_components} bits need as many principal directions, but the training data has only "
            f"min(videos, feature dim) = min({n}, {dim}) = {limit}; use at most {limit} bits"
        )
    from sklearn.decomposition import PCA  # scikit-learn loads only when a method fits
    from threadpoolctl import threadpool_limits

    solver = "covariance_eigh" if n >= dim else "full"
    threads = 1 if n * dim * limit < SINGLE_THREAD_FLOPS else None
    with threadpool_limits(limits=threads, user_api="blas"):
        return PCA(n_components=n_components, svd_solver=solver).fit(pooled)
