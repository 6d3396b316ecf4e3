"""PCA for the shallow baselines: one deterministic fit, with the component limit reported as a user error."""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA

from .errors import ConfigError


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
    solver = "covariance_eigh" if n >= dim else "full"
    return PCA(n_components=n_components, svd_solver=solver).fit(pooled)
