from __future__ import annotations

import logging

import numpy as np
import pytest

from ssvh_bench import ArrayFeatures
from ssvh_bench.artefacts import KEY_FILE, ArtefactCache, artefact_id
from ssvh_bench.errors import ConfigError
from ssvh_bench.neighbours import PseudoNeighbourhood, build_anchor_neighbourhood


class CountingBuild:
    """A build function that records how often it ran and returns a fresh array each time."""

    def __init__(self, value: float = 1.0) -> None:
        self.calls = 0
        self.value = value

    def __call__(self) -> np.ndarray:
        self.calls += 1
        return np.full(3, self.value)


def save_array(value: np.ndarray, folder) -> None:
    np.save(folder / "value.npy", value)


def load_array(folder) -> np.ndarray:
    return np.load(folder / "value.npy")


def finished_folders(cache_dir, kind: str) -> list[str]:
    return sorted(p.name for p in (cache_dir / kind).iterdir()) if (cache_dir / kind).exists() else []


def test_second_call_with_the_same_key_reuses(tmp_path, caplog):
    cache, build = ArtefactCache(tmp_path), CountingBuild(2.0)
    key = {"fingerprint": "abc", "n_anchors": 10}
    with caplog.at_level(logging.INFO, logger="ssvh_bench.artefacts"):
        first = cache.get_or_build("anchors", key, build, save=save_array, load=load_array)
        assert build.calls == 1
        second = cache.get_or_build("anchors", dict(reversed(key.items())), build, save=save_array, load=load_array)
    assert build.calls == 1
    np.testing.assert_array_equal(first, second)
    assert [r.getMessage().split()[0] for r in caplog.records] == ["built", "reusing"]
    assert ArtefactCache(tmp_path).get_or_build("anchors", key, build, save=save_array, load=load_array)[0] == 2.0
    assert build.calls == 1  # a new cache object (another run) finds it on disk too


def test_a_changed_key_or_kind_rebuilds(tmp_path):
    cache, build = ArtefactCache(tmp_path), CountingBuild()
    cache.get_or_build("anchors", {"seed": 0}, build, save=save_array, load=load_array)
    cache.get_or_build("anchors", {"seed": 1}, build, save=save_array, load=load_array)
    cache.get_or_build("knn", {"seed": 0}, build, save=save_array, load=load_array)
    assert build.calls == 3
    assert len(finished_folders(tmp_path, "anchors")) == 2 and len(finished_folders(tmp_path, "knn")) == 1
    assert artefact_id("anchors", {"seed": 0}) != artefact_id("knn", {"seed": 0})


def test_key_json_describes_the_artefact(tmp_path):
    cache = ArtefactCache(tmp_path)
    key = {"fingerprint": "abc", "n_anchors": np.int64(7), "sparsities": (3, 4, 5), "pca_dim": None}
    cache.get_or_build("anchors", key, CountingBuild(), save=save_array, load=load_array)
    folder = cache.folder("anchors", key)
    assert folder == tmp_path / "anchors" / artefact_id("anchors", key)
    assert len(folder.name) == 16
    plain = {"fingerprint": "abc", "n_anchors": 7, "sparsities": [3, 4, 5], "pca_dim": None}
    assert ArtefactCache.read_key(folder) == {"kind": "anchors", "key": plain}
    assert sorted(p.name for p in folder.iterdir()) == [KEY_FILE, "value.npy"]
    assert artefact_id("anchors", plain) == folder.name  # numpy scalars and tuples hash as their JSON form


@pytest.mark.parametrize("failing", ["build", "save"])
def test_a_failure_leaves_nothing_behind(tmp_path, failing):
    def broken_build():
        raise RuntimeError("stage 1 crashed")

    def broken_save(value, folder):
        (folder / "half-written.npy").write_bytes(b"\x93NUMPY")
        raise RuntimeError("disk full")

    cache = ArtefactCache(tmp_path)
    build = broken_build if failing == "build" else CountingBuild()
    save = broken_save if failing == "save" else save_array
    with pytest.raises(RuntimeError):
        cache.get_or_build("anchors", {"seed": 0}, build, save=save, load=load_array)
    assert finished_folders(tmp_path, "anchors") == []
    good = CountingBuild()
    cache.get_or_build("anchors", {"seed": 0}, good, save=save_array, load=load_array)
    assert good.calls == 1  # the failed attempt is not mistaken for a finished artefact


def test_without_a_cache_dir_every_call_builds_in_memory(tmp_path):
    cache, build = ArtefactCache(None), CountingBuild()
    for _ in range(2):
        cache.get_or_build("anchors", {"seed": 0}, build, save=save_array, load=load_array)
    assert build.calls == 2
    with pytest.raises(ConfigError, match="no folder"):
        cache.folder("anchors", {"seed": 0})


def test_bad_kinds_and_keys_are_config_errors(tmp_path):
    cache = ArtefactCache(tmp_path)
    with pytest.raises(ConfigError, match="simple name"):
        cache.get_or_build("../escape", {}, CountingBuild(), save=save_array, load=load_array)
    with pytest.raises(ConfigError, match="JSON cannot store"):
        cache.get_or_build("anchors", {"model": object()}, CountingBuild(), save=save_array, load=load_array)
    with pytest.raises(ConfigError, match="must be a dict"):
        artefact_id("anchors", [1, 2])


def test_a_sweep_over_bits_builds_the_pseudo_neighbourhood_once(tmp_path):
    train = ArrayFeatures(np.random.default_rng(0).normal(size=(50, 3, 4)))
    settings = {"n_anchors": 8, "n_nearest": 3, "seed": 1, "pca_dim": None}
    key = {"train": train.fingerprint(), **settings}
    builds = []

    def build() -> PseudoNeighbourhood:
        builds.append(1)
        return build_anchor_neighbourhood(train.pooled(), **settings)

    results = []
    for bits in (16, 32, 64):  # what fit(..., cache_dir=...) does for each run of the sweep
        cache = ArtefactCache(tmp_path / "cache")
        results.append(cache.get_or_build("anchor-neighbourhood", key, build,
                                          save=PseudoNeighbourhood.save, load=PseudoNeighbourhood.load))
    assert len(builds) == 1
    folder = ArtefactCache(tmp_path / "cache").folder("anchor-neighbourhood", key)
    assert sorted(p.name for p in folder.iterdir()) == [KEY_FILE, "neighbourhood.npz"]
    for loaded in results[1:]:
        np.testing.assert_array_equal(loaded.anchors, results[0].anchors)
        assert (loaded.similar != results[0].similar).nnz == 0


def test_a_damaged_entry_is_named_and_rebuilt(tmp_path):
    cache = ArtefactCache(tmp_path)
    save = lambda value, folder: (folder / "value.txt").write_text(str(value))  # noqa: E731
    load = lambda folder: int((folder / "value.txt").read_text())  # noqa: E731
    assert cache.get_or_build("demo", {"a": 1}, lambda: 7, save=save, load=load) == 7
    folder = cache.folder("demo", {"a": 1})
    (folder / "value.txt").write_text("garbage")
    with pytest.warns(UserWarning, match=f"artefact {folder} is damaged"):
        assert cache.get_or_build("demo", {"a": 1}, lambda: 8, save=save, load=load) == 8
    assert load(folder) == 8
