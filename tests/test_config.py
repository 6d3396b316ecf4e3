from __future__ import annotations

import pytest

from ssvh_bench import ConfigError, UnknownNameError
from ssvh_bench.config import (
    RunSpec,
    expand_grid,
    load_config_file,
    make_specs,
    merge_choices,
    parse_assignments,
    parse_value,
    resolve_params,
)
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


class Deep:
    def __init__(self, epochs: int = 100, lr: float = 1e-4) -> None:
        self.epochs, self.lr = epochs, lr


@pytest.fixture
def deep_plugin(tiny_plugins):
    from ssvh_bench.registry import method_registry

    method_registry.register("tiny-deep", description="deep", family="deep")(Deep)
    yield
    method_registry.unregister("tiny-deep")


def test_bare_override_applies_to_methods_that_have_it(deep_plugin):
    specs = make_specs(["first-coords", "tiny-deep"], "tiny-blobs", [16], [0], {"epochs": [2, 3]})
    by_method = {}
    for spec in specs:
        by_method.setdefault(spec.method, []).append(spec.method_params)
    assert by_method["first-coords"] == [{"offset": 0.0}]
    assert [p["epochs"] for p in by_method["tiny-deep"]] == [2, 3]


def test_scoped_override_wins_and_typos_are_errors(deep_plugin):
    specs = make_specs(["tiny-deep"], "tiny-blobs", [16], [0], {"epochs": [2], "tiny-deep.epochs": [7]})
    assert [s.method_params["epochs"] for s in specs] == [7]
    with pytest.raises(ConfigError, match="no selected method has a parameter 'epoch'"):
        make_specs(["first-coords", "tiny-deep"], "tiny-blobs", [16], [0], {"epoch": [2]})
    with pytest.raises(ConfigError, match="'itq' is not among the selected methods"):
        make_specs(["tiny-deep"], "tiny-blobs", [16], [0], {"itq.n_iter": [2]})
    with pytest.raises(ConfigError, match="tiny-deep has no parameter 'lrate'"):
        make_specs(["tiny-deep"], "tiny-blobs", [16], [0], {"tiny-deep.lrate": [2]})


def test_config_file_toml_and_json(tmp_path):
    toml_file = tmp_path / "conmh.toml"
    toml_file.write_text('epochs = [10, 20]\nlr = 0.001\n[conmh]\nmask_ratio = 0.5\n[dataset]\nn_train = 100\n')
    choices, dataset = load_config_file(toml_file)
    assert choices == {"epochs": [10, 20], "lr": [0.001], "conmh.mask_ratio": [0.5]}
    assert dataset == {"n_train": 100}
    json_file = tmp_path / "c.json"
    json_file.write_text('{"epochs": 5}')
    assert load_config_file(json_file) == ({"epochs": [5]}, {})
    (tmp_path / "bad.toml").write_text("epochs = = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config_file(tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config_file(tmp_path / "missing.toml")


def test_command_line_wins_over_config_file():
    merged = merge_choices({"conmh.epochs": [10], "lr": [0.1], "mask_ratio": [0.5]}, {"epochs": [3], "lr": [0.2]})
    assert merged == {"mask_ratio": [0.5], "epochs": [3], "lr": [0.2]}
