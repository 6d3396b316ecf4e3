"""Hand-made finished run folders (config.json, codes.npz, metrics.json) for the report tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ssvh_bench import method_registry, pack_codes, run_folder, RunFolder
from ssvh_bench.io import write_json
from ssvh_bench.config import RunSpec
from ssvh_bench.per_query import per_query_arrays

KS = (5, 10, 20, 40, 60, 80, 100)


def write_run(root: Path, method: str, seed: int, map_at_5: float, *, dataset: str = "synthetic", bits: int = 16,
              params: dict | None = None, overrides: dict | None = None, train_seconds: float = 1.0) -> Path:
    """A finished run whose mAP@K is ``map_at_5 * 5 / (5 + K - 5)``-shaped: map@5 is exact, larger K smaller."""
    # the method's current version, as the runner records it (an older one would show as an override)
    version = method_registry.get(method).version if method in method_registry.names() else 1
    spec = RunSpec(method, dataset, bits, seed, dict(params or {}), {}, dict(overrides or {}), version)
    folder = RunFolder.of(root, spec).path
    metrics = {}
    for k in KS:
        metrics[f"map@{k}"] = map_at_5 * 5 / k
        metrics[f"p@{k}"] = map_at_5 * (1 - k / 200)
        metrics[f"r@{k}"] = k / 100
    radius = np.arange(bits + 1)
    metrics["pr_curve"] = {"radius": radius.tolist(), "precision": (map_at_5 * (1 - radius / (bits + 1))).tolist(),
                           "recall": (radius / bits).tolist()}
    metrics.update(train_seconds=train_seconds, encode_ms_per_video=0.01 * (seed + 1), n_params=10)
    return finish_run(spec, folder, metrics)


N_QUERIES = 200  # per-query AP of a hand-made run: its mAP@K plus a fixed zero-mean pattern of this length
QUERY_PATTERN = np.resize([0.02, -0.02, 0.01, -0.01], N_QUERIES)


def finish_run(spec: RunSpec, folder: Path, metrics: dict) -> Path:
    """Write ``folder`` as the runner does: config, codes (two tiny videos), per-query AP whose means are the
    metrics (every hand-made run shares its query set and pattern, so runs of different mAP differ clearly),
    then metrics with the codes' checksum."""
    write_json(folder / run_folder.CONFIG_FILE, {**spec.to_dict(), "device": "cpu"})
    codes = np.where(np.arange(2 * spec.bits).reshape(2, spec.bits) % 3 == 0, 1, -1).astype(np.int8)
    run_folder.save_codes(folder / run_folder.CODES_FILE, pack_codes(codes), np.eye(2, dtype=np.uint8))
    checksum = run_folder.file_sha256(folder / run_folder.CODES_FILE)
    values = {key: value + QUERY_PATTERN for key, value in metrics.items()
              if key.startswith("map@") and key[4:].isdigit()}
    RunFolder(folder).save_per_query(per_query_arrays(values, checksum, "hand-made"))
    write_json(folder / run_folder.METRICS_FILE, {**metrics, "codes_sha256": checksum})
    return folder
