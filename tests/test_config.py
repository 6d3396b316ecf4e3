from __future__ import annotations

import pytest

from ssvh_bench import ConfigError, UnknownNameError
from ssvh_bench.config import RunSpec, expand_grid, make_specs, parse_assignments, parse_value, resolve_params
from ssvh_bench.registry import Registry


def test_parse_value():
    assert parse_value("3") == 3
    assert parse_value("0.75") == 0.75
    assert parse_value("1e-4") == 1e-4
    assert parse_value("true") is True and parse_value("False") is False
    assert parse_value("none") is None
    assert parse_value("small") == "small"


def test_parse_assignments_and_grid():
    parsed = parse_assignments(["mask_ratio=0.25,0.5", "variant=mini"])
    assert parsed == {"mask_ratio": [0.25, 0.5], "variant": ["mini"]}
    assert expand_grid(parsed) == [{"mask_ratio": 0.25, "variant": "mini"}, {"mask_ratio": 0.5, "variant": "mini"}]
    assert expand_grid({}) == [{}]
    with pytest.raises(ConfigError, match="key=value"):
        parse_assignments(["mask_ratio"])


def make_entry():
    registry = Registry("method", "ssvh_bench.methods", "ssvh_bench.none")

    @registry.register("m", description="m")
    class M:
        dataset_defaults = {"fcvid": {"batch_size": 512}}

        def __init__(self, lr: float = 1e-4, batch_size: int = 128, variant: str = "small", amp: bool = True):
            pass

    return registry.get("m")


def test_resolve_params_precedence_and_coercion():
    entry = make_entry()
    assert resolve_params(entry, {})["batch_size"] == 128
    assert resolve_params(entry, {}, dataset="fcvid")["batch_size"] == 512
    resolved = resolve_params(entry, {"batch_size": 64, "lr": 1}, dataset="fcvid")
    assert resolved["batch_size"] == 64
    assert resolved["lr"] == 1.0 and isinstance(resolved["lr"], float)
    with pytest.raises(ConfigError, match="batch_size expects int"):
        resolve_params(entry, {"batch_size": 0.5})
    with pytest.raises(ConfigError, match="amp expects bool"):
        resolve_params(entry, {"amp": 3})
    with pytest.raises(ConfigError, match="no parameter 'colour'"):
        resolve_params(entry, {"colour": "red"})


def test_run_id_depends_on_resolved_values_only():
    a = RunSpec("itq", "synthetic", 64, 0, {"n_iter": 50}, {"n_train": 10})
    b = RunSpec("itq", "synthetic", 64, 0, {"n_iter": 50}, {"n_train": 10}, overrides={"n_iter": 50})
    assert a.run_id == b.run_id
    assert a.run_id != RunSpec("itq", "synthetic", 64, 1, {"n_iter": 50}, {"n_train": 10}).run_id
    assert a.run_id != RunSpec("itq", "synthetic", 64, 0, {"n_iter": 51}, {"n_train": 10}).run_id
    assert a.run_id.startswith("seed0-")


def test_make_specs_validates_before_work(tiny_plugins):
    specs = make_specs(["first-coords"], "tiny-blobs", [16, 32], [0, 1], {"offset": [0.0, 1.0]})
    assert len(specs) == 8
    assert len({s.run_id for s in specs}) == 8
    with pytest.raises(ConfigError, match="bits must be"):
        make_specs(["first-coords"], "tiny-blobs", [4], [0])
    with pytest.raises(ConfigError, match="bits must be"):
        make_specs(["first-coords"], "tiny-blobs", [512], [0])
    with pytest.raises(UnknownNameError, match="unknown method"):
        make_specs(["nope"], "tiny-blobs", [16], [0])
    with pytest.raises(UnknownNameError, match="unknown dataset"):
        make_specs(["first-coords"], "nope", [16], [0])
