"""Data-parallel scaling of one ConMH run: training videos/s with 1 and with N torchrun processes, side by side.

Both runs train the same global batch (``--batch-size``, split B/N per process) on the same synthetic data,
through the whole engine (``torchrun -m ssvh_bench run``); the number is the last epoch's videos/s from
``history.csv`` (all ranks' videos). On the CPU the processes use gloo and share the cores (``--threads``
each); with CUDA each process gets one GPU, so N may not exceed the GPUs present. Also printed: ConMH's
compute-only videos/s (steps on one batch already on the device) next to the 1-process loop's, i.e. what
reading and copying batches costs.

Usage: python benchmarks/bench_scale.py [--processes 2] [--device cpu] [--n-train 2048] [--batch-size 256]
       [--epochs 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import csv
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from bench_conmh_throughput import compute_only  # benchmarks/ is on the path when a script runs
from ssvh_bench.devices import torch_device

N_FRAMES, FEATURE_DIM, BITS = 25, 512, 64


def run_videos_per_s(processes: int, args: argparse.Namespace, folder: Path) -> float:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
               f"--master_port={port}", "--master_addr=127.0.0.1", "-m", "ssvh_bench", "run", "-m", "conmh",
               "-b", str(BITS), "--device", args.device, "--threads", str(args.threads),
               "--results-dir", str(folder), "--set", "variant=small", "--set", f"epochs={args.epochs}",
               "--set", f"batch_size={args.batch_size}",
               "--dataset-param", f"n_train={args.n_train}", "--dataset-param", "n_database=256",
               "--dataset-param", f"n_frames={N_FRAMES}", "--dataset-param", f"feature_dim={FEATURE_DIM}"]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    (history,) = folder.glob("runs/*/*/*/*/history.csv")
    with open(history) as handle:
        return float(list(csv.DictReader(handle))[-1]["videos_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n-train", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    device = torch_device(args.device)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        one = run_videos_per_s(1, args, Path(tmp) / "one")
        many = run_videos_per_s(args.processes, args, Path(tmp) / "many")
    compute = compute_only(device, 1, 3, batch_size=args.batch_size, feature_dim=FEATURE_DIM)
    print(f"device {device}, ConMH small, {N_FRAMES}x{FEATURE_DIM} features, global batch {args.batch_size}, "
          f"{args.n_train} training videos, {args.threads} thread(s) per process")
    print(f"{'':28s}{'videos/s':>10s}{'ratio':>8s}")
    print(f"{'loop, 1 process':28s}{one:10.0f}{1.0:8.2f}")
    print(f"{f'loop, {args.processes} processes':28s}{many:10.0f}{many / one:8.2f}")
    print(f"{'compute only, 1 process':28s}{compute:10.0f}{compute / one:8.2f}")


if __name__ == "__main__":
    main()
