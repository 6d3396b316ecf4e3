"""The conformance check every hashing method passes, public so that an outside package's tests can run it on
its own method (in the spirit of scikit-learn's ``check_estimator``).

``check_method("my-hash")`` (a registered name) or ``check_method(MyHash)`` (a class) builds the method's tiny
variant (its registered ``test_params``, or a ``test_params`` class attribute), fits it on a few synthetic
clustered videos and checks the contract: the metadata the registry reads (family, version, display,
parameter rules and choices), constructor parameters kept as given, ``fit`` returning the method, codes of
shape [N, bits] in int8 with the allowed values, the same codes for the same seed, out-of-range values refused
by ``check_params``; and for trained methods, a finite gradient on every trainable parameter and a run resumed
from its checkpoint ending with the uninterrupted run's codes. The first failure raises ``ConformanceError``
naming the method, the check and the defect.
"""

from __future__ import annotations

import inspect
import re
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .data import ArrayFeatures, VideoFeatures
from .errors import ConfigError, ConformanceError, UnknownNameError
from .method import DeepMethod, HashingMethod
from .method.base import PARAM_RULES
from .registry import FAMILIES, Entry, dataset_registry, method_registry, signature_defaults

DISPLAY_KEYS = ("name", "published", "colour", "marker")
FIT_KEYWORDS = ("bits", "seed", "device", "progress", "workdir", "cache_dir")
# a value each rule refuses, so ``check_params`` must raise for it
RULE_BREAKERS = {"positive": 0, "non_negative": -1, "open_unit": 1.0, "unit": 1.5}
CHECKS = ("metadata", "parameters", "fit", "codes", "determinism", "check_params", "gradients", "resume")


def clustered_videos(n: int = 64, frames: int = 6, dim: int = 20, seed: int = 0) -> ArrayFeatures:
    """``n`` non-negative videos in 4 clusters: small enough for every method's tiny variant to train in seconds."""
    rng = np.random.default_rng(seed)
    centres = 3 * rng.normal(size=(4, dim))
    features = centres[np.arange(n) % 4][:, None, :] + rng.normal(size=(n, frames, dim))
    return ArrayFeatures(np.abs(features).astype(np.float32))


def check_method(method: str | type, *, params: Mapping[str, Any] | None = None, bits: int = 16,
                 videos: VideoFeatures | None = None, device: str = "cpu", resume: bool = True) -> list[str]:
    """Check that a hashing method keeps the suite's method contract; return the names of the checks run.

    Args:
        method: a registered method name, or the method's class (registered or not).
        params: parameters over the method's tiny variant (``test_params``), e.g. ``{"epochs": 1}``.
        bits: the code length to fit.
        videos: the training videos (also encoded); default ``clustered_videos()``.
        device: where to fit.
        resume: for trained methods with ``epochs``, also check that a run stopped
            after its first epoch and started again ends with the uninterrupted run's codes.

    Raises:
        ConformanceError: the first defect found, as ``<method>: <check>: <what is wrong>``.
    """
    cls, entry, name = _resolve(method)
    checker = _Checker(name)
    test_params = dict(entry.test_params if entry is not None else getattr(cls, "test_params", {}) or {})
    params = {**test_params, **(params or {})}
    videos = clustered_videos() if videos is None else videos
    checker.metadata(cls, entry)
    checker.parameters(cls, params)
    with tempfile.TemporaryDirectory(prefix="ssvh-conformance-") as folder:
        cache = Path(folder) / "cache"
        fitted = checker.fit(lambda: cls(**params), videos, bits, device, cache)
        codes = checker.codes(fitted, videos, bits, shallow=getattr(cls, "family", None) == "shallow")
        again = checker.fit(lambda: cls(**params), videos, bits, device, cache).encode(videos)
        checker.require("determinism", np.array_equal(codes, again),
                        "two fits with the same seed give different codes (draw every random number from "
                        "the seed the method is given)")
        checker.check_params(cls, params)
        if isinstance(fitted, DeepMethod):
            checker.gradients(fitted, videos)
            keys = signature_defaults(cls)
            if resume and "epochs" in keys:
                resumable = {**params, "epochs": 2}
                checker.resume(lambda: cls(**resumable), videos, bits, device, Path(folder))
    return checker.done


def _resolve(method: str | type) -> tuple[type, Entry | None, str]:
    if isinstance(method, str):
        try:
            entry = method_registry.get(method)
        except UnknownNameError as error:
            raise ConformanceError(f"{method}: registry: {error}") from None
        return entry.factory, entry, method
    if not inspect.isclass(method):
        raise ConformanceError(f"{method!r}: registry: expected a method name or class")
    entry = next((e for e in method_registry.list() if e.module in (None, method.__module__)
                  and e.factory is method), None)
    return method, entry, entry.name if entry is not None else method.__name__


class _Checker:
    """Runs the checks of one method and records which ones passed."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.done: list[str] = []

    def fail(self, check: str, message: str) -> ConformanceError:
        return ConformanceError(f"{self.name}: {check}: {message}")

    def require(self, check: str, condition: bool, message: str) -> None:
        if not condition:
            raise self.fail(check, message)
        if check not in self.done:
            self.done.append(check)

    def metadata(self, cls: type, entry: Entry | None) -> None:
        check = "metadata"
        self.require(check, issubclass(cls, HashingMethod), "is not a subclass of ssvh_bench.HashingMethod")
        family = getattr(cls, "family", None)
        self.require(check, family in FAMILIES, f"family {family!r} is not one of {', '.join(FAMILIES)}")
        version = getattr(cls, "version", None)
        self.require(check, isinstance(version, int) and not isinstance(version, bool) and version >= 1,
                     f"version {version!r} is not an integer >= 1 (bump it whenever a change alters the codes)")
        if entry is not None:
            self.require(check, bool(entry.description), "registered without a description")
            self.require(check, entry.family == family, f"registered as {entry.family!r} but declares {family!r}")
        display = getattr(cls, "display", {}) or {}
        unknown = sorted(set(display) - set(DISPLAY_KEYS))
        self.require(check, not unknown, f"display has unknown keys {unknown} (known: {', '.join(DISPLAY_KEYS)})")
        published = display.get("published", "2000-01")
        self.require(check, bool(re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", published)),
                     f"display published {published!r} is not YYYY-MM")
        colour = display.get("colour", "#000000")
        self.require(check, bool(re.fullmatch(r"#[0-9A-Fa-f]{6}", colour)), f"display colour {colour!r} is not #RRGGBB")
        defaults = signature_defaults(cls)
        for attribute in ("param_rules", "param_choices", "param_resolvers"):
            for key in getattr(cls, attribute, {}) or {}:
                if attribute == "param_rules" and key in vars(DeepMethod)["param_rules"]:
                    continue  # the loop's own rules name parameters a deep method may not have
                self.require(check, key in defaults, f"{attribute} names {key!r}, which is not a parameter")
        for key, rule in (getattr(cls, "param_rules", {}) or {}).items():
            self.require(check, rule in PARAM_RULES, f"param_rules[{key!r}] is {rule!r}; known: {', '.join(PARAM_RULES)}")
        for key, choices in (getattr(cls, "param_choices", {}) or {}).items():
            self.require(check, defaults.get(key) in choices,
                         f"the default {key}={defaults.get(key)!r} is not among its param_choices {choices}")
        known = set(dataset_registry.names())
        for dataset, values in (getattr(cls, "dataset_defaults", {}) or {}).items():
            self.require(check, dataset in known, f"dataset_defaults names unknown dataset {dataset!r}")
            missing = sorted(set(values) - set(defaults))
            self.require(check, not missing, f"dataset_defaults[{dataset!r}] sets {missing}, which are not parameters")
        keywords = inspect.signature(cls.fit).parameters
        open_ended = any(p.kind is p.VAR_KEYWORD for p in keywords.values())
        missing = [] if open_ended else [k for k in FIT_KEYWORDS if k not in keywords]
        self.require(check, not missing, f"fit does not take {missing} (the runner passes them)")

    def parameters(self, cls: type, params: Mapping[str, Any]) -> None:
        defaults = signature_defaults(cls)
        unknown = sorted(set(params) - set(defaults))
        self.require("parameters", not unknown, f"test parameters {unknown} are not constructor parameters")
        method = cls(**params)
        expected = {**defaults, **params}
        try:
            got = method.get_params()
        except AttributeError as error:
            raise self.fail("parameters", f"get_params failed ({error}): store every constructor parameter as an "
                                          "attribute of the same name (self.store_params(locals()))") from None
        changed = sorted(k for k in expected if k not in got or not _same(got[k], expected[k]))
        self.require("parameters", not changed,
                     f"get_params() differs from the constructor arguments for {changed}: __init__ must store "
                     "them unchanged (they feed the run id)")

    def fit(self, build: Callable[[], HashingMethod], videos: VideoFeatures, bits: int, device: str,
            cache: Path, workdir: Path | None = None) -> HashingMethod:
        method = build()
        try:
            fitted = method.fit(videos, bits=bits, seed=0, device=device, progress=False, workdir=workdir,
                                cache_dir=cache)
        except Exception as error:
            raise self.fail("fit", f"raised {type(error).__name__}: {error}") from error
        self.require("fit", fitted is method, "fit must return the method itself")
        return fitted

    def codes(self, method: HashingMethod, videos: VideoFeatures, bits: int, *, shallow: bool) -> np.ndarray:
        try:
            codes = method.encode(videos)
        except Exception as error:
            raise self.fail("codes", f"encode raised {type(error).__name__}: {error}") from error
        self.require("codes", isinstance(codes, np.ndarray), f"encode returned {type(codes).__name__}, not a numpy array")
        self.require("codes", codes.dtype == np.int8, f"codes have dtype {codes.dtype}, expected int8")
        self.require("codes", codes.shape == (len(videos), bits),
                     f"codes have shape {codes.shape}, expected {(len(videos), bits)} (videos x bits)")
        allowed = (-1, 1) if shallow else (-1, 0, 1)
        values = sorted(int(v) for v in np.unique(codes))
        self.require("codes", set(values) <= set(allowed),
                     f"codes take the values {values}; allowed: {list(allowed)}"
                     + (" (shallow codes are purely binary)" if shallow else ""))
        return codes

    def check_params(self, cls: type, params: Mapping[str, Any]) -> None:
        check = "check_params"
        method = cls(**params)
        try:
            method.check_params()
        except ConfigError as error:
            raise self.fail(check, f"the test parameters are refused: {error}") from None
        defaults = signature_defaults(cls)
        rules: dict[str, str] = {}
        choices: dict[str, tuple[Any, ...]] = {}
        for base in reversed(cls.__mro__):
            rules.update(vars(base).get("param_rules", {}))
            choices.update(vars(base).get("param_choices", {}))
        numeric = {key for key, value in defaults.items()
                   if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))}
        bad = [(key, RULE_BREAKERS[rule]) for key, rule in rules.items() if key in numeric]
        bad += [(key, "not-a-choice") for key in choices if key in defaults]
        for key, value in bad:
            try:
                cls(**{**params, key: value}).check_params()
            except ConfigError:
                continue
            raise self.fail(check, f"{key}={value!r} breaks its declared rule but check_params accepts it")
        if check not in self.done:
            self.done.append(check)

    def gradients(self, method: DeepMethod, videos: VideoFeatures) -> None:
        import torch

        from .train import read_batch

        model = method.model
        assert model is not None
        model.train()
        model.zero_grad()
        rows = np.arange(min(16, len(videos)))
        batch = read_batch(method, videos, rows, epoch=0, generator=torch.Generator().manual_seed(1))
        losses = method.training_losses(model, batch, 0, torch.Generator().manual_seed(0))
        self.require("gradients", "loss" in losses and bool(torch.isfinite(losses["loss"])),
                     "training_losses gives no finite 'loss'")
        losses["loss"].backward()
        for name, parameter in model.named_parameters():
            if parameter.requires_grad:
                self.require("gradients", parameter.grad is not None,
                             f"{name} gets no gradient (freeze it with requires_grad=False if that is intended)")
                self.require("gradients", bool(torch.isfinite(parameter.grad).all()), f"{name} has a non-finite gradient")

    def resume(self, build: Callable[[], HashingMethod], videos: VideoFeatures, bits: int, device: str,
               folder: Path) -> None:
        whole = self.fit(build, videos, bits, device, folder / "cache-whole").encode(videos)
        workdir = folder / "run"
        workdir.mkdir()
        stopped = build()
        losses = stopped.training_losses

        def dying(model: Any, batch: Any, epoch: int, generator: Any) -> Any:
            if epoch == 1:
                raise _Killed
            return losses(model, batch, epoch, generator)

        stopped.training_losses = dying  # type: ignore[method-assign]
        try:
            stopped.fit(videos, bits=bits, seed=0, device=device, workdir=workdir, cache_dir=folder / "cache-resume",
                        checkpoint_minutes=0)  # a checkpoint at every epoch end
        except _Killed:
            pass
        else:
            raise self.fail("resume", "training with epochs=2 never reached its second epoch")
        resumed = self.fit(build, videos, bits, device, folder / "cache-resume", workdir=workdir).encode(videos)
        self.require("resume", np.array_equal(whole, resumed),
                     "a run stopped after its first epoch and started again ends with other codes than an "
                     "uninterrupted run (save what the hooks update in training_state)")


class _Killed(Exception):
    """Stands for a kill during training."""


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # arrays and other values without a plain truth value
        return a is b
