"""Helpers shared by the per-method tests: the tiny registered variant, released state-dict listings, and a fit
interrupted at a chosen epoch (what a kill leaves behind)."""

from __future__ import annotations

from pathlib import Path

from ssvh_bench import method_registry

DATA = Path(__file__).parent / "data"


def tiny(name: str, **params):
    """The method's tiny test variant (its registered ``test_params``), with ``params`` on top."""
    entry = method_registry.get(name)
    return entry.create(**{**entry.test_params, **params})


def reference_shapes(file_name: str) -> dict[str, tuple[int, ...]]:
    """``name (d0, d1, ...)`` lines of a released state-dict listing in ``tests/data``, as {name: shape}."""
    shapes = {}
    for line in (DATA / file_name).read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, shape = line.partition(" ")
            shapes[name] = tuple(int(s) for s in shape.strip("()").split(",") if s.strip())
    return shapes


class Interrupted(Exception):
    """Stands for a kill during training."""


def fit_interrupted_at(method, epoch: int, data, **fit_options) -> None:
    """Fit ``method`` until ``epoch`` starts, then stop it as a kill would (its checkpoints stay)."""
    losses = method.training_losses

    def dying(model, batch, current, generator):
        if current == epoch:
            raise Interrupted
        return losses(model, batch, current, generator)

    method.training_losses = dying
    try:
        method.fit(data, **{"checkpoint_minutes": 0, **fit_options})  # a checkpoint at every epoch end
    except Interrupted:
        return
    raise AssertionError(f"training never reached epoch {epoch}")
