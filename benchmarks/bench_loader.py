"""Stream one shuffled epoch of an FCVID-shaped HDF5 file through HDF5Features vs loading the file whole.

Writes ``--n`` videos x 25 frames x 4096 float32 (the default 20,000 is 8 GB), then measures, each in its own
subprocess so peak RSS is not shared: (a) ``HDF5Features.iter_batches`` with batch 512, shuffled, read-ahead
on; (b) the reference approach, ``h5py`` reading the whole dataset into memory. The file is dropped from the
page cache (posix_fadvise) before each measurement, so both start from disk.

    python benchmarks/bench_loader.py --n 4000 --dir /tmp
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np


def write_file(path: Path, n: int, frames: int, dim: int) -> None:
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as handle:
        dataset = handle.create_dataset("feats", shape=(n, frames, dim), dtype=np.float32)  # contiguous, like the papers' files
        for start in range(0, n, 256):
            count = min(256, n - start)
            dataset[start : start + count] = rng.standard_normal((count, frames, dim), dtype=np.float32)


def drop_from_page_cache(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
        os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(descriptor)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure_stream(path: Path, batch_size: int) -> dict[str, float]:
    from ssvh_bench import HDF5Features

    features = HDF5Features(path)
    baseline = peak_rss_mb()
    started = time.perf_counter()
    checksum = 0.0
    for _, batch in features.iter_batches(batch_size, shuffle=True, seed=0):
        checksum += float(batch[:, 0, 0].sum())  # touch the batch, as a consumer would
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "videos_per_s": len(features) / seconds, "peak_rss_mb": peak_rss_mb(),
            "rss_before_mb": baseline}


def measure_whole(path: Path) -> dict[str, float]:
    baseline = peak_rss_mb()
    started = time.perf_counter()
    with h5py.File(path, "r") as handle:
        array = handle["feats"][()]
    checksum = float(array[:, 0, 0].sum())
    seconds = time.perf_counter() - started
    del checksum
    return {"seconds": seconds, "videos_per_s": len(array) / seconds, "peak_rss_mb": peak_rss_mb(),
            "rss_before_mb": baseline}


def run_worker(mode: str, path: Path, batch_size: int) -> dict[str, float]:
    drop_from_page_cache(path)
    output = subprocess.run([sys.executable, __file__, "--worker", mode, "--file", str(path),
                             "--batch", str(batch_size)], check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="videos in the file (default 20,000: 8 GB)")
    parser.add_argument("--frames", type=int, default=25)
    parser.add_argument("--dim", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--dir", type=Path, default=None, help="where to write the file (default: a temp folder)")
    parser.add_argument("--worker", choices=["stream", "whole"], help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        result = measure_stream(args.file, args.batch) if args.worker == "stream" else measure_whole(args.file)
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        path = Path(folder) / "fcv_train_feats.h5"
        started = time.perf_counter()
        write_file(path, args.n, args.frames, args.dim)
        size_gb = path.stat().st_size / 1e9
        print(f"wrote {args.n} x {args.frames} x {args.dim} float32 ({size_gb:.2f} GB) in "
              f"{time.perf_counter() - started:.0f} s")
        stream = run_worker("stream", path, args.batch)
        whole = run_worker("whole", path, args.batch)
    print(f"{'loader':<34}{'videos/s':>10}{'seconds':>10}{'peak RSS MB':>14}")
    print(f"{'HDF5Features shuffled epoch':<34}{stream['videos_per_s']:>10.0f}{stream['seconds']:>10.1f}"
          f"{stream['peak_rss_mb']:>14.0f}")
    print(f"{'h5py whole-file read':<34}{whole['videos_per_s']:>10.0f}{whole['seconds']:>10.1f}"
          f"{whole['peak_rss_mb']:>14.0f}")
    print(f"peak RSS ratio whole / streamed: {whole['peak_rss_mb'] / stream['peak_rss_mb']:.1f}x; "
          f"throughput ratio streamed / whole: {stream['videos_per_s'] / whole['videos_per_s']:.2f}")


if __name__ == "__main__":
    main()
