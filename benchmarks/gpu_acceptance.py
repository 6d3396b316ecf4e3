"""GPU acceptance: one script that says yes or no for the CUDA paths CI cannot run (at most ~8 minutes on one GPU).

    python benchmarks/gpu_acceptance.py [--json gpu_acceptance.json] [--smoke]

On synthetic data of FCVID size made in memory (45,585 x 25 x 4096 float16, drawn on the GPU):

- every deep method trains one epoch on a share of it with bf16 autocast (and ConMH once with fp16 and the
  gradient scaler): finite codes, videos/s, peak GPU memory;
- ConMH's loop videos/s with the split read from the host and held on the device, against compute-only steps;
- ConMH eager against ``torch.compile``: videos/s of the second epoch and the share of code bits that differ;
- the GPU Hamming search at 45,600 x 45,600 (64 bits) against the CPU popcount path: identical metrics, speed;
- a 2-process torchrun run (skipped on one GPU: NCCL needs a GPU per process);
- S5VH with and without ``mamba_ssm``'s fused scan, when it is installed.

It prints one table, writes the JSON and exits 1 when any check fails (a skipped check does not fail).
``--smoke`` runs the same checks at tiny size on the CPU (CI runs it: ``tests/test_gpu_acceptance.py``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssvh_bench import ArrayFeatures, evaluate, method_registry, pack_codes
from ssvh_bench.data.on_device import DeviceFeatures
from ssvh_bench.nn import mamba
from ssvh_bench.precision import autocast, autocast_dtype, grad_scaler
from ssvh_bench.run_folder import RunFolder
from ssvh_bench.train import Batch

BITS = 64
MAX_COMPILED_DIFFERENCE = 0.05  # share of code bits compile may flip (bf16 steps with reordered sums)


@dataclass(frozen=True)
class Size:
    """How big each check runs: FCVID on a GPU, tiny on the CPU (``--smoke``)."""

    n_videos: int
    n_frames: int
    feature_dim: int
    method_videos: int  # the share each method trains on
    search_n: int
    smoke: bool


GPU = Size(45_585, 25, 4096, 8192, 45_600, smoke=False)
SMOKE = Size(96, 4, 16, 64, 300, smoke=True)


@dataclass
class Check:
    name: str
    status: str = "ok"  # ok, FAIL, skipped
    value: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


class Checks:
    """Runs each check, catching its failure, and keeps the rows of the table."""

    def __init__(self) -> None:
        self.rows: list[Check] = []

    def run(self, name: str, body: Callable[[Check], None]) -> None:
        check = Check(name)
        started = time.perf_counter()
        try:
            body(check)
        except Exception as error:  # noqa: BLE001  one failed check is a row; the others still run
            check.status, check.value = "FAIL", f"{type(error).__name__}: {str(error).splitlines()[0][:150]}"
            check.detail["traceback"] = traceback.format_exc()
        check.detail["seconds"] = round(time.perf_counter() - started, 2)
        print(f"  {check.status:7s} {name}: {check.value}", flush=True)
        self.rows.append(check)

    @property
    def failed(self) -> bool:
        return any(row.status == "FAIL" for row in self.rows)


def method_params(name: str, size: Size, **changes: Any) -> dict[str, Any]:
    """The method's FCVID settings (its tiny test variant under ``--smoke``) for one short epoch."""
    entry = method_registry.get(name)
    params = dict(entry.test_params if size.smoke else entry.dataset_defaults.get("fcvid", {}))
    params.update({"epochs": 1, **changes})
    if "batch_size" in params:
        params["batch_size"] = min(params["batch_size"], 32 if size.smoke else 512)
    return params


def history(workdir: Path) -> list[dict[str, str]]:
    return RunFolder(workdir).read_history() or []


def train(name: str, videos: Any, device: str, size: Size, *, precision: str = "bf16", compile: bool = False,
          **changes: Any) -> tuple[np.ndarray, dict[str, float]]:
    """Fit ``name`` on ``videos``; (its codes of the first videos, numbers of the last epoch and memory)."""
    method = method_registry.create(name, **method_params(name, size, **changes))
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as workdir:
        method.fit(videos, bits=BITS, seed=0, device=device, workdir=workdir, cache_dir=Path(workdir) / "cache",
                   precision=precision, compile=compile)
        last = history(Path(workdir))[-1]
    n_encode = min(len(videos), 512)
    codes = method.encode(videos.read(np.arange(n_encode)))
    if codes.shape != (n_encode, BITS) or not set(np.unique(codes)) <= {-1, 0, 1}:
        raise AssertionError(f"{name}: codes of shape {codes.shape} with values {np.unique(codes)[:5]}")
    if not np.isfinite(float(last["loss"])):
        raise AssertionError(f"{name}: loss {last['loss']}")
    numbers = {"videos_per_s": float(last["videos_per_s"]), "loss": float(last["loss"])}
    if device.startswith("cuda"):
        numbers["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return codes, numbers


def compute_only(device: str, size: Size, steps: int, precision: str = "bf16") -> float:
    """ConMH training steps on one batch already on the device, videos/s (the loop's ceiling)."""
    dev = torch.device(device)
    method = method_registry.create("conmh", **method_params("conmh", size))
    torch.manual_seed(0)
    model = method.build_model(size.n_frames, size.feature_dim, BITS).to(dev)
    optimizer = method.build_optimizer(model)
    dtype = autocast_dtype(dev, precision)
    scaler = grad_scaler(dev, dtype)
    batch_size = method.batch_size
    batch = Batch(torch.randn(batch_size, size.n_frames, size.feature_dim, device=dev),
                  torch.arange(batch_size, device=dev))
    generator = torch.Generator(device=dev).manual_seed(0)

    def step() -> None:
        with autocast(dev, dtype):
            loss = method.training_losses(model, batch, 0, generator)["loss"]
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()

    step()  # warm-up
    synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return steps * batch_size / (time.perf_counter() - started)


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def make_videos(size: Size, device: str) -> np.ndarray:
    """The synthetic split (float16 on the host), drawn on ``device`` in chunks."""
    out = np.empty((size.n_videos, size.n_frames, size.feature_dim), dtype=np.float16)
    generator = torch.Generator(device=device).manual_seed(0)
    step = 2048
    for start in range(0, size.n_videos, step):
        rows = min(step, size.n_videos - start)
        chunk = torch.randn(rows, size.n_frames, size.feature_dim, device=device, generator=generator,
                            dtype=torch.float16)
        out[start:start + rows] = chunk.abs().cpu().numpy()  # non-negative, like CNN features
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="The same checks at tiny size on the CPU.")
    parser.add_argument("--json", type=Path, default=Path("gpu_acceptance.json"))
    parser.add_argument("--device", default=None, help="default: cuda, or cpu with --smoke")
    args = parser.parse_args(argv)
    size = SMOKE if args.smoke else GPU
    if args.smoke:
        torch.set_num_threads(1)  # tiny models: more threads only wait on each other
    device = args.device or ("cpu" if args.smoke else "cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device here; use --smoke for the CPU run", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else f"CPU ({platform.processor() or 'cpu'})"
    print(f"GPU acceptance on {name}, torch {torch.__version__}, {'smoke' if args.smoke else 'full'} size", flush=True)
    started = time.perf_counter()
    checks = Checks()
    host = make_videos(size, device)
    videos = ArrayFeatures(host)
    share = ArrayFeatures(host[:size.method_videos])
    deep = [entry.name for entry in method_registry.list() if entry.family != "shallow"]

    for method in deep:
        def trained(check: Check, method: str = method) -> None:
            _, numbers = train(method, share, device, size)
            check.detail.update(numbers)
            check.value = f"{numbers['videos_per_s']:.0f} videos/s" + (
                f", peak {numbers['peak_gib']:.2f} GiB" if "peak_gib" in numbers else "")
        checks.run(f"{method} bf16", trained)

    def fp16(check: Check) -> None:
        _, numbers = train("conmh", share, device, size, precision="fp16")
        check.detail.update(numbers)
        check.value = f"{numbers['videos_per_s']:.0f} videos/s with the gradient scaler"
    checks.run("conmh fp16", fp16)

    def loop(check: Check) -> None:
        compute = compute_only(device, size, steps=3 if args.smoke else 10)
        _, from_host = train("conmh", videos, device, size)
        held = DeviceFeatures(videos, device, "float16")
        _, on_device = train("conmh", held, device, size)
        del held
        check.detail.update(compute_only=compute, from_host=from_host["videos_per_s"],
                            on_device=on_device["videos_per_s"])
        check.value = (f"compute-only {compute:.0f}, loop from host {from_host['videos_per_s']:.0f} "
                       f"({from_host['videos_per_s'] / compute:.2f}x), held on device "
                       f"{on_device['videos_per_s']:.0f} ({on_device['videos_per_s'] / compute:.2f}x) videos/s")
    checks.run("conmh loop vs compute-only", loop)

    def compiled(check: Check) -> None:
        eager_codes, eager = train("conmh", share, device, size, epochs=2)
        compiled_codes, fast = train("conmh", share, device, size, epochs=2, compile=True)
        differ = float(np.mean(eager_codes != compiled_codes))
        check.detail.update(eager=eager["videos_per_s"], compiled=fast["videos_per_s"], bits_differ=differ)
        check.value = (f"eager {eager['videos_per_s']:.0f}, compiled {fast['videos_per_s']:.0f} videos/s "
                       f"({fast['videos_per_s'] / eager['videos_per_s']:.2f}x), {differ:.2%} of bits differ")
        if differ > MAX_COMPILED_DIFFERENCE:
            raise AssertionError(f"{differ:.2%} of bits differ from eager (at most {MAX_COMPILED_DIFFERENCE:.0%})")
    checks.run("conmh eager vs compile", compiled)

    def search(check: Check) -> None:
        rng = np.random.default_rng(0)
        codes = pack_codes(rng.choice(np.array([-1, 1], dtype=np.int8), size=(size.search_n, BITS)))
        labels = np.zeros((size.search_n, 239), dtype=bool)
        labels[np.arange(size.search_n), rng.integers(0, 239, size.search_n)] = True
        threads = os.cpu_count() or 1
        timed = {}
        for where in ("cpu-popcount", device):
            begun = time.perf_counter()
            found = evaluate(codes, codes, labels, labels, query_is_database=True,
                             device=None if where == "cpu-popcount" else where, threads=threads)
            synchronize(device)
            timed[where] = (time.perf_counter() - begun, found)
        (cpu_s, cpu), (gpu_s, gpu) = timed["cpu-popcount"], timed[device]
        check.detail.update(cpu_seconds=cpu_s, device_seconds=gpu_s, cpu_threads=threads)
        check.value = f"{size.search_n}^2: CPU {cpu_s:.2f} s ({threads} threads), {device} {gpu_s:.2f} s ({cpu_s / gpu_s:.1f}x)"
        if json.dumps(cpu, sort_keys=True) != json.dumps(gpu, sort_keys=True):
            raise AssertionError("metrics differ between the device search and the CPU popcount path")
    checks.run("Hamming search vs CPU popcount", search)

    def torchrun(check: Check) -> None:
        if device.startswith("cuda") and torch.cuda.device_count() < 2:
            check.status, check.value = "skipped", "one GPU: NCCL needs a GPU per process"
            return
        with tempfile.TemporaryDirectory() as results:
            params = method_params("conmh", size)
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                       "-m", "ssvh_bench", "run", "-m", "conmh", "-b", str(BITS), "--device", device,
                       "--results-dir", results, "--precision", "bf16",
                       "--dataset-param", f"n_train={size.method_videos}", "--dataset-param", "n_database=64",
                       "--dataset-param", f"n_frames={size.n_frames}",
                       "--dataset-param", f"feature_dim={size.feature_dim}",
                       *[option for key, value in params.items() for option in ("--set", f"{key}={value}")]]
            done = subprocess.run(command, capture_output=True, text=True, timeout=600)
            if done.returncode:
                raise AssertionError(f"torchrun exited {done.returncode}: {done.stderr.strip().splitlines()[-1:]}")
            (metrics,) = Path(results).rglob("metrics.json")
            check.value = f"2 processes: map@5 {json.loads(metrics.read_text())['map@5']:.4f}"
    checks.run("torchrun 2 processes", torchrun)

    def s5vh_kernel(check: Check) -> None:
        if not device.startswith("cuda") or mamba._cuda_selective_scan() is None:
            check.status, check.value = "skipped", "mamba_ssm's CUDA scan is not installed (or no GPU)"
            return
        _, fused = train("s5vh", share, device, size)
        original = mamba._cuda_selective_scan
        mamba._cuda_selective_scan = lambda: None  # the pure-torch scan
        try:
            _, plain = train("s5vh", share, device, size)
        finally:
            mamba._cuda_selective_scan = original
        check.detail.update(fused=fused["videos_per_s"], plain=plain["videos_per_s"])
        check.value = f"fused scan {fused['videos_per_s']:.0f}, torch scan {plain['videos_per_s']:.0f} videos/s"
    checks.run("s5vh with / without mamba_ssm", s5vh_kernel)

    seconds = time.perf_counter() - started
    verdict = "FAIL" if checks.failed else "PASS"
    print(f"\n{'check':34s} {'status':8s} result")
    for row in checks.rows:
        print(f"{row.name:34s} {row.status:8s} {row.value}")
    print(f"\n{verdict}: {sum(r.status == 'ok' for r in checks.rows)} ok, "
          f"{sum(r.status == 'FAIL' for r in checks.rows)} failed, "
          f"{sum(r.status == 'skipped' for r in checks.rows)} skipped in {seconds:.0f} s on {name}")
    args.json.write_text(json.dumps({"device": name, "torch": torch.__version__, "smoke": args.smoke,
                                     "size": asdict(size), "verdict": verdict, "seconds": seconds,
                                     "checks": [asdict(row) for row in checks.rows]}, indent=1) + "\n")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
