"""One conformance check applied to every registered method, through its tiny test variant (timm-style)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssvh_bench import ArrayFeatures, DeepMethod, method_registry, read_batch

ENTRIES = method_registry.list()
BITS = 16


def clustered_videos(n: int = 64, frames: int = 6, dim: int = 20, seed: int = 0) -> ArrayFeatures:
    rng = np.random.default_rng(seed)
    centres = 3 * rng.normal(size=(4, dim))
    features = centres[np.arange(n) % 4][:, None, :] + rng.normal(size=(n, frames, dim))
    return ArrayFeatures(np.abs(features))


def fitted(entry, videos, tmp_path, seed=0):
    method = entry.create(**entry.test_params)
    return method.fit(videos, bits=BITS, seed=seed, cache_dir=tmp_path / "cache")


def test_every_builtin_family_is_registered():
    families = {entry.family for entry in ENTRIES}
    assert {"shallow", "deep"} <= families
    assert {"lsh", "pcah", "itq", "sh", "conmh"} <= {entry.name for entry in ENTRIES}


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_codes_have_the_contract_shape_values_and_are_seeded(entry, tmp_path):
    videos = clustered_videos()
    codes = fitted(entry, videos, tmp_path).encode(videos)
    assert codes.dtype == np.int8 and codes.shape == (len(videos), BITS)
    assert np.isin(codes, (-1, 0, 1)).all()
    again = fitted(entry, videos, tmp_path).encode(videos)
    np.testing.assert_array_equal(codes, again)
    assert entry.description and entry.family in ("shallow", "deep", "two_stage")


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.family != "shallow"], ids=lambda e: e.name)
def test_every_trainable_parameter_gets_a_finite_gradient(entry, tmp_path):
    videos = clustered_videos()
    method = fitted(entry, videos, tmp_path)
    assert isinstance(method, DeepMethod) and method.n_parameters > 0
    model = method.model
    model.train()
    model.zero_grad()
    batch = read_batch(method, videos, np.arange(16), epoch=0, generator=torch.Generator().manual_seed(1))
    losses = method.training_losses(model, batch, 0, torch.Generator().manual_seed(0))
    assert torch.isfinite(losses["loss"])
    losses["loss"].backward()
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            assert parameter.grad is not None, f"{entry.name}: {name} gets no gradient"
            assert torch.isfinite(parameter.grad).all(), f"{entry.name}: {name} has a non-finite gradient"
