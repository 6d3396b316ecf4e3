"""The public conformance check (``ssvh_bench.conformance.check_method``): every registered method passes it
through its tiny variant, and a method with a planted defect fails it with a ConformanceError naming the
check and the defect."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ssvh_bench import ConformanceError, DeepMethod, ShallowMethod, method_registry
from ssvh_bench.conformance import CHECKS, check_method

ENTRIES = method_registry.list()
TRAINED = [e for e in ENTRIES if e.family != "shallow"]
SHALLOW_CHECKS = ["metadata", "parameters", "fit", "codes", "determinism", "check_params"]


def test_every_builtin_family_is_registered():
    families = {entry.family for entry in ENTRIES}
    assert {"shallow", "deep", "two_stage"} <= families
    assert {"lsh", "pcah", "itq", "sh", "conmh"} <= {entry.name for entry in ENTRIES}


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_every_registered_method_passes(entry):
    done = check_method(entry.name, resume=False)
    assert done == (SHALLOW_CHECKS if entry.family == "shallow" else SHALLOW_CHECKS + ["gradients"])


@pytest.mark.slow
@pytest.mark.parametrize("entry", TRAINED, ids=lambda e: e.name)
def test_every_trained_method_resumes_to_the_uninterrupted_codes(entry):
    assert check_method(entry.name) == list(CHECKS)


# ---- planted defects -------------------------------------------------------------------------------------
class Good(ShallowMethod):
    """Sign of random projections of the centred pooled features."""

    version = 1
    display = {"name": "Good", "published": "2026-01", "colour": "#117733", "marker": "h"}
    param_rules = {"scale": "positive"}

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def _fit_pooled(self, pooled, bits, rng):
        self.mean_ = pooled.mean(axis=0)
        self.projection_ = rng.normal(size=(pooled.shape[1], bits))

    def _project(self, pooled):
        return self.scale * (pooled - self.mean_) @ self.projection_


def planted(name: str, **attributes) -> type:
    return type(name, (Good,), attributes)


def float_codes(self, videos):
    return Good.encode(self, videos).astype(np.float64)


def one_bit_short(self, videos):
    return Good.encode(self, videos)[:, 1:]


def zero_one_codes(self, videos):
    return ((Good.encode(self, videos) + 1) // 2).astype(np.int8)


def shallow_zeros(self, videos):
    codes = Good.encode(self, videos)
    codes[0, 0] = 0
    return codes


def unseeded(self, pooled, bits, rng):
    Good._fit_pooled(self, pooled, bits, np.random.default_rng())


def doubled_init(self, scale: float = 1.0) -> None:
    self.scale = 2 * scale


def fit_returns_nothing(self, train, **options):
    Good.fit(self, train, **options)


DEFECTS = {
    "dtype": (planted("FloatCodes", encode=float_codes), "codes: codes have dtype float64, expected int8"),
    "shape": (planted("OneBitShort", encode=one_bit_short), r"codes: codes have shape \(64, 15\), expected \(64, 16\)"),
    "values": (planted("ZeroOne", encode=zero_one_codes), r"codes: codes take the values \[0, 1\]"),
    "shallow zero": (planted("ShallowZero", encode=shallow_zeros), r"codes: codes take the values \[-1, 0, 1\]; allowed: \[-1, 1\]"),
    "seed": (planted("Unseeded", _fit_pooled=unseeded), "determinism: two fits with the same seed"),
    "version": (planted("NoVersion", version=0), "metadata: version 0 is not an integer >= 1"),
    "family": (planted("NoFamily", family="hybrid"), "metadata: family 'hybrid' is not one of"),
    "display": (planted("BadColour", display={"colour": "red"}), "metadata: display colour 'red' is not #RRGGBB"),
    "rules": (planted("RuleOnNothing", param_rules={"sacle": "positive"}), "metadata: param_rules names 'sacle'"),
    "get_params": (planted("Doubled", __init__=doubled_init), r"parameters: get_params\(\) differs .* \['scale'\]"),
    "check_params": (planted("AcceptsAll", check_params=lambda self: None),
                     "check_params: scale=0 breaks its declared rule"),
    "fit": (planted("FitReturnsNone", fit=fit_returns_nothing), "fit: fit must return the method itself"),
}


@pytest.mark.parametrize("defect", DEFECTS)
def test_a_planted_defect_is_named(defect):
    method, message = DEFECTS[defect]
    with pytest.raises(ConformanceError, match=f"^{method.__name__}: {message}"):
        check_method(method)


def test_the_sound_shallow_method_passes():
    assert check_method(Good) == SHALLOW_CHECKS


class TinyDeep(DeepMethod):
    """A linear hash layer on frame-mean features, trained to spread its codes."""

    version = 1

    def __init__(self, epochs: int = 1, batch_size: int = 16, lr: float = 0.05, amp: bool = False) -> None:
        self.store_params(locals())

    def build_model(self, n_frames, feature_dim, bits):
        return nn.Sequential(nn.Linear(feature_dim, bits))

    def training_losses(self, model, batch, epoch, generator):
        out = torch.tanh(model(batch.features.mean(dim=1)))
        return {"loss": (1 - out.abs()).mean() - out.var(dim=0).mean()}

    def encode_batch(self, model, features):
        return torch.where(model(features.mean(dim=1)) >= 0, 1, -1)


class DeadLayer(TinyDeep):
    def build_model(self, n_frames, feature_dim, bits):
        return nn.Sequential(nn.Linear(feature_dim, bits), nn.Linear(bits, bits))

    def training_losses(self, model, batch, epoch, generator):
        return TinyDeep.training_losses(self, model[:1], batch, epoch, generator)


class ForgetsItsState(TinyDeep):
    """Counts its steps in an attribute that the checkpoint does not keep (no ``training_state``), and takes
    ten times larger steps once it has trained."""

    steps = 0

    def training_losses(self, model, batch, epoch, generator):
        self.steps += 1
        return TinyDeep.training_losses(self, model, batch, epoch, generator)

    def learning_rate(self, epoch):
        return self.lr * (10 if self.steps else 1)


def test_a_sound_trained_method_passes_every_check():
    assert check_method(TinyDeep) == list(CHECKS)


def test_a_parameter_without_gradient_is_named():
    with pytest.raises(ConformanceError, match=r"^DeadLayer: gradients: 1\.weight gets no gradient"):
        check_method(DeadLayer, resume=False)


def test_training_state_lost_on_resume_is_named():
    with pytest.raises(ConformanceError, match="^ForgetsItsState: resume: a run stopped after its first epoch"):
        check_method(ForgetsItsState)


def test_an_unknown_name_is_a_conformance_error():
    with pytest.raises(ConformanceError, match="^conmhh: registry: unknown method 'conmhh'. Did you mean 'conmh'"):
        check_method("conmhh")
