"""The popcount evaluator on a thread pool: the same metrics, to the last bit, with any number of threads."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from ssvh_bench import ConfigError, evaluate
from ssvh_bench import metrics as metrics_module


def codes_and_labels(n: int, bits: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    codes = rng.choice(np.array([-1, 0, 1], dtype=np.int8), size=(n, bits), p=[0.45, 0.1, 0.45])
    labels = np.zeros((n, classes), dtype=bool)
    labels[np.arange(n), rng.integers(0, classes, n)] = True
    labels[rng.random(n) < 0.2, 0] = True
    return codes, labels


@pytest.mark.parametrize("classes", [3, 40])  # dense and sparse relevance
def test_metrics_are_byte_identical_with_one_or_several_threads(classes):
    codes, labels = codes_and_labels(300, 32, classes, seed=classes)
    one = evaluate(codes, codes, labels, labels, query_is_database=True, block_size=7, threads=1)
    for threads in (2, 3):
        many = evaluate(codes, codes, labels, labels, query_is_database=True, block_size=7, threads=threads)
        assert json.dumps(many, sort_keys=True) == json.dumps(one, sort_keys=True)


def test_blocks_run_on_the_pool_and_the_pool_is_gone_afterwards(monkeypatch):
    seen: set[str] = set()
    original = metrics_module._evaluate_block

    def recording(*args, **kwargs):
        seen.add(threading.current_thread().name)
        return original(*args, **kwargs)

    monkeypatch.setattr(metrics_module, "_evaluate_block", recording)
    codes, labels = codes_and_labels(100, 16, 5, seed=0)
    evaluate(codes, codes, labels, labels, block_size=5, threads=2)
    assert seen and all(name.startswith("ssvh-bench-evaluate") for name in seen)
    assert not [t for t in threading.enumerate() if t.name.startswith("ssvh-bench-evaluate")]


def test_an_error_in_a_block_reaches_the_caller(monkeypatch):
    def failing(query, database, relevance, start, k_max):
        if start >= 50:
            raise MemoryError("block too large")
        return original(query, database, relevance, start, k_max)

    original = metrics_module._evaluate_block
    monkeypatch.setattr(metrics_module, "_evaluate_block", failing)
    codes, labels = codes_and_labels(100, 16, 5, seed=0)
    with pytest.raises(MemoryError, match="block too large"):
        evaluate(codes, codes, labels, labels, block_size=10, threads=3)


@pytest.mark.parametrize("threads", [0, -1, 1.5, True])
def test_bad_thread_counts_are_config_errors(threads):
    codes, labels = codes_and_labels(10, 8, 2, seed=0)
    with pytest.raises(ConfigError, match="threads must be a positive integer"):
        evaluate(codes, codes, labels, labels, threads=threads)
