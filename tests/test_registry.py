from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ssvh_bench import ConfigError, UnknownNameError
from ssvh_bench.registry import Registry, method_registry


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
