"""Full evaluation protocol (1 thread, N threads) vs faiss IndexBinaryFlat top-100 search alone (N threads), on
FCVID-size random codes.

    python benchmarks/bench_protocol.py [--n 45600] [--bits 64] [--threads N] [--block-size N] [--skip-faiss]

Prints the three times, the ratios to faiss and the peak resident memory (RSS) of each phase; the metrics of
1 and N threads must be identical. FCVID's protocol shape:
the database queries itself; labels are ~239 classes, mostly one label per row.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time

import numpy as np
import psutil

from ssvh_bench import evaluate, pack_codes


class PeakRss:
    """Samples this process's RSS in a thread; ``peak`` is the largest value seen (bytes)."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval, self.peak = interval, 0
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


def fcvid_like(n: int, bits: int, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    codes = rng.choice(np.array([-1, 1], dtype=np.int8), size=(n, bits))
    labels = np.zeros((n, n_classes), dtype=bool)
    labels[np.arange(n), rng.integers(0, n_classes, n)] = True
    second = rng.random(n) < 0.1  # about one row in ten has a second class
    labels[np.flatnonzero(second), rng.integers(0, n_classes, second.sum())] = True
    return codes, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=45_600, help="videos (queries = database)")
    parser.add_argument("--bits", type=int, default=64)
    parser.add_argument("--classes", type=int, default=239)
    parser.add_argument("--block-size", type=int, default=None, help="queries per block (default: automatic)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads of the second protocol run and of faiss")
    parser.add_argument("--skip-faiss", action="store_true")
    args = parser.parse_args()

    codes, labels = fcvid_like(args.n, args.bits, args.classes, seed=0)
    packed = pack_codes(codes)
    print(f"{args.n} x {args.n} codes, {args.bits} bits, {args.classes} classes", flush=True)

    seconds, found = {}, {}
    for threads in dict.fromkeys((1, args.threads)):
        with PeakRss() as memory:
            started = time.perf_counter()
            found[threads] = evaluate(packed, packed, labels, labels, query_is_database=True,
                                      block_size=args.block_size, progress=sys.stderr.isatty(), threads=threads)
            seconds[threads] = time.perf_counter() - started
        print(f"full protocol, {threads} thread(s): {seconds[threads]:8.2f} s   peak RSS {memory.peak / 2**30:.2f} GiB",
              flush=True)
    metrics = found[1]
    print("   " + "  ".join(f"{key}={metrics[key]:.4f}" for key in ("map@5", "map_tie_aware@5", "map@100", "p@100")))
    if json.dumps(found[args.threads], sort_keys=True) != json.dumps(metrics, sort_keys=True):
        raise SystemExit(f"metrics of {args.threads} threads differ from 1 thread's")

    if args.skip_faiss:
        return
    import faiss

    faiss.omp_set_num_threads(args.threads)
    with PeakRss() as memory:
        started = time.perf_counter()
        index = faiss.IndexBinaryFlat(args.bits)
        index.add(packed.signs)
        index.search(packed.signs, 100)
        faiss_seconds = time.perf_counter() - started
    print(f"faiss top-100, {faiss.omp_get_max_threads()} thread(s): {faiss_seconds:8.2f} s   peak RSS "
          f"{memory.peak / 2**30:.2f} GiB")
    for threads, value in seconds.items():
        print(f"ratio protocol ({threads} thread(s)) / faiss ({args.threads}): {value / faiss_seconds:.2f}")
    print(f"process max RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
