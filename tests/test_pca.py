from __future__ import annotations

import numpy as np
import pytest

from ssvh_bench import ConfigError, fit_pca


@pytest.mark.parametrize("shape", [(200, 12), (8, 30)])  # tall (covariance solver) and wide (full SVD)
def test_variances_match_the_singular_values(shape):
    data = np.random.default_rng(0).normal(size=shape) * np.linspace(1.0, 3.0, shape[1])
    n_components = min(shape) // 2
    pca = fit_pca(data, n_components, owner="test")
    singular = np.linalg.svd(data - data.mean(axis=0), compute_uv=False)
    assert np.allclose(pca.explained_variance_, singular[:n_components] ** 2 / (shape[0] - 1))
    assert np.array_equal(pca.transform(data), fit_pca(data, n_components, owner="test").transform(data))


def test_more_components_than_directions_is_a_config_error():
    with pytest.raises(ConfigError, match=r"pcah: 16 bits .* min\(40, 10\) = 10; use at most 10 bits"):
        fit_pca(np.zeros((40, 10)), 16, owner="pcah")
