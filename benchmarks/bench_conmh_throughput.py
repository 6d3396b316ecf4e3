"""ConMH training throughput (videos/s) for the FCVID 64-bit configuration.

Small variant, 25 frames x 4096 features, batch 512, mask ratio 0.75, Adam; AMP on CUDA. Two numbers:

- compute only: training steps on one random batch already on the device (what the reference's ~100 videos/s
  on a 2-core CPU measures);
- through the loop: ``ConMH.fit`` on an in-memory ``ArrayFeatures`` (batches read through ``iter_batches``,
  copied to the device, history and all), the second epoch's videos/s from the history; and the same with
  the training split held on the device (``--data-on-device yes`` and ``float16``: batches gathered there).

Ratios are against the compute-only number, measured in the same run.

Usage: python benchmarks/bench_conmh_throughput.py [--device auto] [--steps 3] [--batches-per-epoch 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch

from ssvh_bench import ArrayFeatures, method_registry
from ssvh_bench.data.on_device import DeviceFeatures
from ssvh_bench.devices import torch_device
from ssvh_bench.precision import autocast_dtype
from ssvh_bench.train import Batch

N_FRAMES, FEATURE_DIM, BITS, BATCH = 25, 4096, 64, 512


def compute_only(device: torch.device, warmup: int, steps: int, *, batch_size: int = BATCH,
                 feature_dim: int = FEATURE_DIM) -> float:
    """Training steps of ConMH small on one random batch already on the device, in videos/s (also used by
    ``bench_scale.py``)."""
    method = method_registry.create("conmh", variant="small", batch_size=batch_size)
    torch.manual_seed(0)
    model = method.build_model(N_FRAMES, feature_dim, BITS).to(device)
    optimizer = method.build_optimizer(model)
    precision = autocast_dtype(device, "auto", method.amp)
    batch = Batch(torch.randn(batch_size, N_FRAMES, feature_dim, device=device),
                  torch.arange(batch_size, device=device))
    generator = torch.Generator(device=device).manual_seed(0)

    def step() -> None:
        with torch.autocast(device.type, dtype=precision or torch.bfloat16, enabled=precision is not None):
            loss = method.training_losses(model, batch, 0, generator)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - started)


def through_loop(device: torch.device, batches_per_epoch: int, on_device: str | None = None) -> float:
    """The loop's videos/s; ``on_device`` ("float32" / "float16"): the split held on the device."""
    rng = np.random.default_rng(0)
    videos = ArrayFeatures(rng.standard_normal((batches_per_epoch * BATCH, N_FRAMES, FEATURE_DIM), dtype=np.float32))
    if on_device is not None:
        videos = DeviceFeatures(videos, str(device), on_device)
    method = method_registry.create("conmh", variant="small", batch_size=BATCH, epochs=2)
    with tempfile.TemporaryDirectory() as workdir:
        method.fit(videos, bits=BITS, seed=0, device=str(device), workdir=workdir)
        with open(os.path.join(workdir, "history.csv")) as handle:
            last = handle.read().splitlines()[-1].split(",")
    return float(last[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batches-per-epoch", type=int, default=3)
    parser.add_argument("--skip-loop", action="store_true", help="Only the compute-only measurement.")
    args = parser.parse_args()
    device = torch_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; load average before: {os.getloadavg()}")
    compute = compute_only(device, args.warmup, args.steps)
    print(f"{'':34s}{'videos/s':>10s}{'of compute':>12s}")
    print(f"{'compute only':34s}{compute:10.1f}{1.0:12.2f}")
    if not args.skip_loop:
        for label, on_device in (("loop, batches read on the host", None), ("loop, data on the device", "float32"),
                                 ("loop, data on the device, float16", "float16")):
            speed = through_loop(device, args.batches_per_epoch, on_device)
            print(f"{label:34s}{speed:10.1f}{speed / compute:12.2f}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
