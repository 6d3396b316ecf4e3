"""Full evaluation protocol vs faiss IndexBinaryFlat top-100 search alone, on FCVID-size random codes.

    python benchmarks/bench_protocol.py [--n 45600] [--bits 64] [--block-size N] [--skip-faiss]

Prints both times, their ratio and the peak resident memory (RSS) of each phase. FCVID's protocol shape:
the database queries itself; labels are ~239 classes, mostly one label per row.
"""

from __future__ import annotations

import argparse
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
    parser.add_argument("--skip-faiss", action="store_true")
    args = parser.parse_args()

    codes, labels = fcvid_like(args.n, args.bits, args.classes, seed=0)
    packed = pack_codes(codes)
    print(f"{args.n} x {args.n} codes, {args.bits} bits, {args.classes} classes", flush=True)

    with PeakRss() as memory:
        started = time.perf_counter()
        metrics = evaluate(packed, packed, labels, labels, query_is_database=True, block_size=args.block_size,
                           progress=sys.stderr.isatty())
        protocol_seconds = time.perf_counter() - started
    print(f"full protocol : {protocol_seconds:8.2f} s   peak RSS {memory.peak / 2**30:.2f} GiB", flush=True)
    print("   " + "  ".join(f"{key}={metrics[key]:.4f}" for key in ("map@5", "map_tie_aware@5", "map@100", "p@100")))

    if args.skip_faiss:
        return
    import faiss

    with PeakRss() as memory:
        started = time.perf_counter()
        index = faiss.IndexBinaryFlat(args.bits)
        index.add(packed.signs)
        index.search(packed.signs, 100)
        faiss_seconds = time.perf_counter() - started
    print(f"faiss top-100 : {faiss_seconds:8.2f} s   peak RSS {memory.peak / 2**30:.2f} GiB "
          f"({faiss.omp_get_max_threads()} threads)")
    print(f"ratio protocol / faiss: {protocol_seconds / faiss_seconds:.2f}")
    print(f"process max RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
