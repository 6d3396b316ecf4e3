"""The stage-1 cache: artefacts shared between runs, found again by a hash of what they were built from.

An artefact of kind ``kind`` built from ``key`` (a JSON-able dict holding the training data fingerprint,
``VideoFeatures.fingerprint()``, and every stage-1 setting) lives in ``<cache_dir>/<kind>/<id>/``, next to
a ``key.json`` that says what it is. It is built in a hidden temporary folder and renamed into place, so a
folder under its final name is always complete. A lock file ``<id>.lock`` beside it is held while it is
built, so two processes never build the same artefact at once: the second waits, then loads the first's.
A crash leaves at most a ``.<id>.*.tmp`` folder, removed by the next build of that artefact.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from . import distributed, locks
from .io import canonical_json
from .errors import ConfigError
from .io import read_json, write_json

T = TypeVar("T")

KEY_FILE = "key.json"
LOCK_SUFFIX = ".lock"  # <id>.lock beside the artefact's folder, held while it is built
log = logging.getLogger(__name__)


def artefact_id(kind: str, key: Mapping[str, Any]) -> str:
    """A stable 16-hex-digit hash of ``kind`` and ``key`` (independent of key order)."""
    return hashlib.sha1(canonical_json({"kind": kind, "key": _plain(kind, key)}).encode()).hexdigest()[:16]


class ArtefactCache:
    """Builds artefacts once and reuses them; ``cache_dir=None`` builds every time, in memory only."""

    def __init__(self, cache_dir: Path | None) -> None:
        self.cache_dir = None if cache_dir is None else Path(cache_dir)

    def folder(self, kind: str, key: Mapping[str, Any]) -> Path:
        """Where the artefact for ``kind`` and ``key`` lives (whether or not it exists yet)."""
        if self.cache_dir is None:
            raise ConfigError("this artefact cache has no folder (cache_dir=None)")
        return self.cache_dir / _check_kind(kind) / artefact_id(kind, key)

    def get_or_build(
        self,
        kind: str,
        key: Mapping[str, Any],
        build: Callable[[], T],
        *,
        save: Callable[[T, Path], None],
        load: Callable[[Path], T],
    ) -> T:
        """Load the cached artefact, or call ``build`` and store it.

        ``save(value, folder)`` writes the artefact's files into ``folder`` (a fresh folder already holding
        ``key.json``); ``load(folder)`` reads them back.
        """
        if self.cache_dir is None:
            _check_kind(kind)
            return build()
        folder = self.folder(kind, key)
        if distributed.world_size() > 1:
            return self._get_or_build_together(kind, key, folder, build, save, load)
        if folder.is_dir():
            try:
                value = load(folder)
            except Exception as error:  # noqa: BLE001  any read failure means a damaged entry: rebuild it
                reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
                warnings.warn(f"the cached {kind} artefact {folder} is damaged ({reason}); rebuilding it",
                              stacklevel=2)
                shutil.rmtree(folder, ignore_errors=True)
            else:
                log.info("reusing %s artefact %s", kind, folder)
                return value
        return self._build_locked(kind, key, folder, build, save, load)

    def _build_locked(self, kind: str, key: Mapping[str, Any], folder: Path, build: Callable[[], T],
                      save: Callable[[T, Path], None], load: Callable[[Path], T]) -> T:
        folder.parent.mkdir(parents=True, exist_ok=True)
        # one builder at a time: the others wait here, then load what it stored
        with locks.acquire(folder.parent / f"{folder.name}{LOCK_SUFFIX}"):
            if folder.is_dir():
                log.info("reusing %s artefact %s, built by another process meanwhile", kind, folder)
                return load(folder)
            locks.remove_temporaries(folder.parent, f".{folder.name}.*.tmp")  # a killed builder's staging
            value = build()
            staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
            try:
                write_json(staging / KEY_FILE, {"kind": kind, "key": _plain(kind, key)})
                save(value, staging)
                os.rename(staging, folder)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        log.info("built %s artefact %s", kind, folder)
        return value

    def _get_or_build_together(self, kind: str, key: Mapping[str, Any], folder: Path, build: Callable[[], T],
                               save: Callable[[T, Path], None], load: Callable[[Path], T]) -> T:
        """Under torchrun: every rank builds (a build may train a stage-1 model data-parallel, which needs every
        rank) and rank 0 stores; the ranks first agree on whether it was stored before."""
        if distributed.broadcast(folder.is_dir()):
            return load(folder)
        value = build()
        if distributed.is_writer():
            self._build_locked(kind, key, folder, lambda: value, save, load)
        return value

    @staticmethod
    def read_key(folder: Path) -> dict[str, Any]:
        """The ``{"kind": ..., "key": ...}`` record stored beside an artefact."""
        return read_json(Path(folder) / KEY_FILE)


def _check_kind(kind: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", kind):
        raise ConfigError(f"artefact kind must be a simple name (letters, digits, '-', '_', '.'), got {kind!r}")
    return kind


def _plain(kind: str, key: Mapping[str, Any]) -> Any:
    """The key as plain JSON values (numpy scalars and tuples converted), so equal keys hash equally."""

    def convert(value: Any) -> Any:
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, (tuple, np.ndarray)):
            return list(value)
        if isinstance(value, Path):
            return str(value)
        raise TypeError(type(value).__name__)

    if not isinstance(key, Mapping):
        raise ConfigError(f"the key of a {kind} artefact must be a dict, got {type(key).__name__}")
    try:
        return json.loads(json.dumps(dict(key), sort_keys=True, default=convert))
    except TypeError as error:
        raise ConfigError(f"the key of a {kind} artefact holds a value JSON cannot store ({error})") from None
