"""The protocol's Hamming search: the CPU popcount path against the torch path on a device, side by side.

Random codes (a tenth of the database repeated, for ties) and 20 single-label classes; both paths evaluate
the same codes in one run, the script checks that every metric is identical and prints the seconds and their
ratio. On a GPU machine the torch path runs there (float16 products); on a CPU it runs on the CPU, which only
shows the two agree (the popcount path is the fast one there).

Usage: python benchmarks/bench_search_device.py [--n 20000] [--bits 64] [--device auto]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ssvh_bench.metrics import evaluate
from ssvh_bench.devices import torch_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="database videos (also the queries, as on FCVID)")
    parser.add_argument("--bits", type=int, default=64)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = torch_device(args.device)
    rng = np.random.default_rng(0)
    codes = rng.choice(np.array([-1, 1], dtype=np.int8), size=(args.n, args.bits))
    codes[: args.n // 10] = codes[args.n // 10: 2 * (args.n // 10)]
    labels = np.eye(20, dtype=np.uint8)[rng.integers(0, 20, args.n)]
    timings, found = {}, {}
    for name, where in (("popcount, CPU", None), (f"torch, {device}", str(device))):
        started = time.perf_counter()
        found[name] = evaluate(codes, codes, labels, labels, query_is_database=True, device=where)
        if device.type == "cuda":
            torch.cuda.synchronize()
        timings[name] = time.perf_counter() - started
    first, second = found.values()
    print(f"{args.n} x {args.n} codes of {args.bits} bits; identical metrics: {first == second}")
    base = timings["popcount, CPU"]
    for name, seconds in timings.items():
        print(f"{name:20s}{seconds:9.2f} s{base / seconds:8.2f}x")


if __name__ == "__main__":
    main()
