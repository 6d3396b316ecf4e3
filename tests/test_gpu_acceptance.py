"""``benchmarks/gpu_acceptance.py --smoke``: the GPU acceptance script's checks at tiny size on the CPU, so the
script cannot rot between the rare runs on a GPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ssvh_bench import method_registry

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_acceptance.py"


@pytest.mark.slow  # trains every deep method and starts a 2-process torchrun
def test_smoke_run_passes_and_writes_every_check(tmp_path):
    report = tmp_path / "acceptance.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--json", str(report)], capture_output=True,
                          text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(report.read_text())
    assert result["verdict"] == "PASS" and result["smoke"] is True
    status = {check["name"]: check["status"] for check in result["checks"]}
    deep = [e.name for e in method_registry.list() if e.family != "shallow"]
    assert all(status[f"{name} bf16"] == "ok" for name in deep)
    for name in ("conmh fp16", "conmh loop vs compute-only", "conmh eager vs compile",
                 "Hamming search vs CPU popcount", "torchrun 2 processes"):
        assert status[name] == "ok", name
    assert status["s5vh with / without mamba_ssm"] == "skipped"  # no CUDA here
    assert "PASS:" in done.stdout


def test_without_a_gpu_the_full_run_says_so(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--json", str(tmp_path / "a.json")], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2 and "no CUDA device here; use --smoke" in done.stderr
    assert not (tmp_path / "a.json").exists()
