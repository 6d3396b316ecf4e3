"""ConMH training step on the CPU: the authors' released code against ours (eager, compiled, bf16), side by side.

FCVID 64-bit configuration: the small variant, 25 frames x 4096 features, batch 512, mask ratio 0.75, Adam at
1e-4, one random batch held in memory (compute only: no data loading on either side). The authors' model and
loss (huangmozhi9527/ConMH, commit d6dd5b5) run from their repository, outside ours:

    git --git-dir /work/.mirror/huangmozhi9527+ConMH/repo archive HEAD | tar -x -C /tmp/conmh   # or a clone
    python benchmarks/bench_conmh_cpu.py --authors /tmp/conmh [--threads 2] [--rounds 3] [--steps 2]

Their loss moves tensors with ``.cuda()``; on the CPU that call is made a no-op for the run. The variants are
timed round-robin (``--rounds`` rounds of ``--steps`` steps each, after a warm-up that includes compiling), so
load on a shared machine hits them alike; the median round is reported with its ratio to the authors'.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ssvh_bench import method_registry
from ssvh_bench.precision import autocast, autocast_dtype
from ssvh_bench.train import Batch

N_FRAMES, FEATURE_DIM, BITS, BATCH, MASK_RATIO = 25, 4096, 64, 512, 0.75
Step = Callable[[], None]


def authors_step(repository: Path, features: torch.Tensor) -> Step:
    """One training step of the authors' ConMH (their model, loss and Adam), as their train.py takes it."""
    sys.path.insert(0, str(repository))
    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # their loss calls .cuda(); this run is on the CPU
    from Loss.conmh_loss import conmh_criterion
    from model.conmh import conmh

    cfg = types.SimpleNamespace(feature_size=FEATURE_DIM, hidden_size=256, max_frames=N_FRAMES, nbits=BITS,
                                transformer_type="small", a=1.0, temperature=0.5, tau_plus=0.1, batch_size=BATCH,
                                num_epochs=805, mask_prob=MASK_RATIO)
    torch.manual_seed(0)
    model = conmh(cfg)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    rng = np.random.default_rng(0)
    n_masked = int(MASK_RATIO * N_FRAMES)
    logger = logging.getLogger("authors")
    logger.disabled = True

    def masks() -> torch.Tensor:  # their RandomMaskingGenerator: view 1 sees the first, view 2 the last frames
        out = np.ones((BATCH, 2, N_FRAMES))
        for row in range(BATCH):
            order = rng.permutation(N_FRAMES)
            out[row, 0, order[:N_FRAMES - n_masked]] = 0
            out[row, 1, order[-(N_FRAMES - n_masked):]] = 0
        return torch.from_numpy(out)

    def step() -> None:
        loss = conmh_criterion(cfg, {"visual_word": features, "mask": masks()}, model, 0, 1, 1, logger)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def our_step(features: torch.Tensor, precision: str = "fp32", compile: bool = False) -> Step:
    """One training step of the suite's ConMH, as ``ssvh_bench.train`` takes it."""
    method = method_registry.create("conmh", variant="small", batch_size=BATCH)
    torch.manual_seed(0)
    model = method.build_model(N_FRAMES, FEATURE_DIM, BITS)
    model.train()
    step_model = torch.compile(model) if compile else model
    optimizer = method.build_optimizer(model)
    device = torch.device("cpu")
    dtype = autocast_dtype(device, precision)
    batch = Batch(features, torch.arange(BATCH))
    generator = torch.Generator().manual_seed(0)

    def step() -> None:
        with autocast(device, dtype):
            loss = method.training_losses(step_model, batch, 0, generator)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authors", type=Path, required=True, help="a checkout of huangmozhi9527/ConMH")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--skip", default="", help="comma-separated variants to leave out (e.g. compiled)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    features = torch.randn(BATCH, N_FRAMES, FEATURE_DIM, generator=torch.Generator().manual_seed(0)).abs()
    variants = {"authors (released code)": lambda: authors_step(args.authors, features),
                "ours, eager fp32": lambda: our_step(features),
                "ours, compiled fp32": lambda: our_step(features, compile=True),
                "ours, eager bf16": lambda: our_step(features, precision="bf16")}
    skipped = {name.strip() for name in args.skip.split(",") if name.strip()}
    steps = {name: make() for name, make in variants.items() if not any(s in name for s in skipped)}
    print(f"CPU, {args.threads} torch threads, load average {os.getloadavg()[0]:.1f}; batch {BATCH} x {N_FRAMES} x "
          f"{FEATURE_DIM}, {BITS} bits", flush=True)
    for name, step in steps.items():
        started = time.perf_counter()
        for _ in range(args.warmup):
            step()
        print(f"  warm-up {name}: {time.perf_counter() - started:.1f} s", flush=True)
    speeds: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            started = time.perf_counter()
            for _ in range(args.steps):
                step()
            speeds[name].append(args.steps * BATCH / (time.perf_counter() - started))
    reference = statistics.median(speeds[next(iter(speeds))])
    print(f"\n{'':26s}{'videos/s':>10s}{'x authors':>11s}   rounds")
    for name, values in speeds.items():
        median = statistics.median(values)
        print(f"{name:26s}{median:10.1f}{median / reference:11.2f}   " + " ".join(f"{v:.0f}" for v in values))
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
