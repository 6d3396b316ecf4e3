"""``--compile``: torch.compile (inductor on the CPU) trains codes within a stated tolerance of eager."""

from __future__ import annotations

import numpy as np
import pytest

from ssvh_bench import ConfigError, method_registry
from ssvh_bench import precision as precision_module
from ssvh_bench.config import make_specs
from ssvh_bench.precision import check_compile_available
from tests.test_pinned_codes import fixed_videos

# Compiled kernels reorder float sums: weights drift by rounding and a few near-zero code entries may flip.
MAX_DIFFERING_BITS = 0.02


@pytest.mark.slow  # inductor compiles C++ kernels on first use: tens of seconds on a shared CPU
def test_compiled_training_gives_codes_within_tolerance_of_eager():
    entry = method_registry.get("conmh")
    videos = fixed_videos()
    eager = entry.create(**entry.test_params).fit(videos, bits=16, seed=3).encode(videos)
    compiled = entry.create(**entry.test_params).fit(videos, bits=16, seed=3, compile=True).encode(videos)
    assert compiled.shape == eager.shape
    assert np.mean(compiled != eager) <= MAX_DIFFERING_BITS


def test_compile_enters_deep_run_ids_and_overrides():
    (eager,), (compiled,) = (make_specs(["conmh"], "synthetic", [16], [0], compile=c) for c in (False, True))
    assert eager.run_id != compiled.run_id and compiled.overrides == {"compile": True}
    (itq,) = make_specs(["itq"], "synthetic", [16], [0], compile=True)
    assert itq.compile is False and itq.overrides == {}


def test_compile_without_a_cpu_compiler_is_one_line(monkeypatch):
    monkeypatch.setattr(precision_module.shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match=r"^--compile: torch.compile on the CPU needs a C\+\+ compiler"):
        check_compile_available("cpu")
    check_compile_available("cuda")  # inductor's GPU kernels (Triton) need no host compiler
