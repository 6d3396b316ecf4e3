from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ssvh_bench import ConfigError, UnknownNameError
from ssvh_bench.registry import Registry, _read_registrations, method_registry, signature_defaults


def fresh_registry() -> Registry:
    return Registry("method", "ssvh_bench.methods", "ssvh_bench.test_plugins_group")


def test_register_get_list_create():
    registry = fresh_registry()

    @registry.register("alpha", description="first", family="shallow", test_params={"size": 1})
    class Alpha:
        def __init__(self, size: int = 3, scale: float = 0.5) -> None:
            self.size, self.scale = size, scale

    registry.register("beta", description="second", family="deep")(Alpha)
    assert registry.names() == ["alpha", "beta"]
    assert [e.name for e in registry.list("a*")] == ["alpha"]
    entry = registry.get("alpha")
    assert entry.defaults == {"size": 3, "scale": 0.5}
    assert entry.test_params == {"size": 1}
    assert registry.create("alpha", size=7).size == 7


def test_duplicate_name_raises():
    registry = fresh_registry()
    registry.register("alpha", description="x")(dict)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("alpha", description="y")(dict)


def test_unknown_family_raises():
    with pytest.raises(ValueError, match="family"):
        fresh_registry().register("x", description="x", family="fancy")


def test_unknown_name_lists_known_and_closest():
    registry = fresh_registry()
    for name in ("itq", "lsh", "pcah"):
        registry.register(name, description=name)(dict)
    with pytest.raises(UnknownNameError) as raised:
        registry.get("itg")
    message = str(raised.value)
    assert "Did you mean 'itq'?" in message
    assert "itq, lsh, pcah" in message


def test_unknown_parameter_is_a_config_error():
    registry = fresh_registry()

    @registry.register("alpha", description="x")
    class Alpha:
        def __init__(self, size: int = 3) -> None:
            self.size = size

    with pytest.raises(ConfigError, match="no parameter"):
        registry.create("alpha", colour="red")


def test_third_party_plugin_through_entry_point(tmp_path, monkeypatch):
    (tmp_path / "my_hashing_plugin.py").write_text(textwrap.dedent('''
        """Hash by the sign of a fixed random matrix (third-party test plugin)."""
        class RandomSign:
            """A method shipped by another package."""
            family = "shallow"
            def __init__(self, width: int = 2) -> None:
                self.width = width
    '''))
    dist_info = tmp_path / "my_hashing_plugin-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-hashing-plugin\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(
        "[ssvh_bench.test_plugins_group]\nrandom-sign = my_hashing_plugin:RandomSign\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = fresh_registry()
    entry = registry.get("random-sign")
    assert entry.family == "shallow"
    assert entry.description == "A method shipped by another package."
    assert registry.create("random-sign", width=5).width == 5


@pytest.mark.slow
def test_no_top_level_methods_or_datasets_package(tmp_path):
    """The plugin folders install as ssvh_bench.methods / ssvh_bench.datasets, never as top-level packages
    (a top-level ``datasets`` would shadow Hugging Face's)."""
    repo = Path(__file__).resolve().parents[1]
    probe = "import importlib.util as u\nfor n in ('methods', 'datasets'):\n    s = u.find_spec(n)\n    print(s.origin if s else None)"
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    for origin in out.stdout.split():
        assert origin == "None" or not origin.startswith(str(repo)), origin


def test_builtin_plugins_load_under_ssvh_bench():
    for entry in method_registry.list():
        assert entry.factory.__module__.startswith("ssvh_bench.methods."), entry.factory.__module__


def checked_registry() -> Registry:
    return Registry("method", "ssvh_bench.methods", "ssvh_bench.test_plugins_group",
                    known_datasets=lambda: ["fcvid", "synthetic"])


@pytest.mark.parametrize("dataset_defaults, message", [
    ({"fcvd": {"size": 4}}, "unknown dataset 'fcvd'"),
    ({"fcvid": {"colour": 4}}, "'colour', which is not a parameter"),
    ({"fcvid": {"size": "big"}}, "size expects int"),
])
def test_dataset_defaults_are_checked_at_registration(dataset_defaults, message):
    class Sized:
        family = "deep"

        def __init__(self, size: int = 3) -> None:
            self.size = size

    Sized.dataset_defaults = dataset_defaults
    with pytest.raises(ValueError, match=message):
        checked_registry().register("sized", description="x", family="deep")(Sized)


def test_a_family_that_contradicts_the_class_raises():
    class Deep:
        family = "deep"

    with pytest.raises(ValueError, match="declares 'deep'"):
        checked_registry().register("deep", description="x", family="shallow")(Deep)


def test_builtin_entries_read_from_source_equal_the_imported_classes():
    for entry in method_registry.list():
        read = (entry.defaults, entry.family, entry.dataset_defaults, entry.version)
        factory = entry.factory  # imports the module; registration compares the defaults once more
        assert read == (signature_defaults(factory), factory.family, getattr(factory, "dataset_defaults", {}),
                        getattr(factory, "version", 1)), entry.name


def test_source_reading_falls_back_to_import_when_not_literal(tmp_path):
    plugin = tmp_path / "computed.py"
    plugin.write_text(textwrap.dedent('''
        from ssvh_bench import register_method
        WIDTH = 4
        @register_method("computed", description="x", family="shallow")
        class Computed:
            def __init__(self, width: int = WIDTH) -> None:
                self.width = width
    '''))
    literal = tmp_path / "literal.py"
    literal.write_text(plugin.read_text().replace("= WIDTH", "= 4").replace('"computed"', '"literal"'))
    assert _read_registrations(plugin, "register_method") is None
    assert _read_registrations(literal, "register_method") == [
        {"name": "literal", "description": "x", "family": "shallow", "test_params": None, "defaults": {"width": 4},
         "dataset_defaults": None, "version": 1, "display": None, "param_resolvers": None}]
