"""Codes of every registered method's tiny variant on one fixed tiny dataset, pinned across commits.

A refactor must leave every method's CPU codes bit-identical; a change that alters a method's codes on
purpose bumps that method's ``version`` and re-pins it here:
``SSVH_BENCH_REPIN=1 python -m pytest tests/test_pinned_codes.py`` rewrites ``data/pinned_codes.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from ssvh_bench import ArrayFeatures, method_registry

PINS = Path(__file__).parent / "data" / "pinned_codes.json"
BITS = 16
ENTRIES = method_registry.list()

pytestmark = pytest.mark.slow  # starts processes or trains every method


def fixed_videos() -> ArrayFeatures:
    """64 videos, 6 frames of 20 non-negative features, 4 clusters (the same data on every machine)."""
    rng = np.random.default_rng(2024)
    centres = 3 * rng.normal(size=(4, 20))
    features = centres[np.arange(64) % 4][:, None, :] + rng.normal(size=(64, 6, 20))
    return ArrayFeatures(np.abs(features).astype(np.float32))


def codes_digest(entry, tmp_path: Path) -> str:
    videos = fixed_videos()
    method = entry.create(**entry.test_params)
    codes = method.fit(videos, bits=BITS, seed=3, cache_dir=tmp_path / "cache").encode(videos)
    return hashlib.sha256(np.ascontiguousarray(codes, dtype=np.int8).tobytes()).hexdigest()


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_codes_equal_the_pinned_ones(entry, tmp_path):
    digest = codes_digest(entry, tmp_path)
    pins = json.loads(PINS.read_text()) if PINS.is_file() else {}
    if os.environ.get("SSVH_BENCH_REPIN") == "1":
        pins[entry.name] = digest
        PINS.write_text(json.dumps(dict(sorted(pins.items())), indent=1) + "\n")
    assert entry.name in pins, f"{entry.name} has no pinned codes: run with SSVH_BENCH_REPIN=1 once"
    assert digest == pins[entry.name], f"{entry.name}: CPU codes changed (bump its version and re-pin on purpose)"
