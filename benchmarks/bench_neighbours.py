"""Stage-1 pseudo-neighbourhood at FCVID's size on clustered synthetic features: time, pairs, memory.

Run: python benchmarks/bench_neighbours.py [--videos 45585] [--dim 256] [--anchors 2000] [--knn-dim 256]
Not run by CI (minutes on 2 cores). The features are Gaussian clusters, not real video features.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import psutil

from ssvh_bench.neighbours import (
    ANCHOR_GRAPH_SPARSITIES,
    anchor_graph_tags,
    kmeans,
    knn_graph,
    nearest_anchors,
    resolve_kmeans_backend,
)


def clustered_features(n_videos: int, dim: int, n_classes: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(n_classes, dim)).astype(np.float32)
    classes = rng.integers(0, n_classes, size=n_videos)
    return means[classes] + 0.7 * rng.normal(size=(n_videos, dim)).astype(np.float32)


def timed(label: str, func):
    started = time.perf_counter()
    value = func()
    print(f"{label:<28} {time.perf_counter() - started:8.1f} s   rss {psutil.Process().memory_info().rss / 2**20:7.0f} MiB")
    return value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=45_585)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--anchors", type=int, default=2000)
    parser.add_argument("--classes", type=int, default=239)
    parser.add_argument("--knn-dim", type=int, default=256, help="0 skips the kNN graph")
    args = parser.parse_args()

    features = clustered_features(args.videos, args.dim, args.classes, seed=0)
    print(f"{args.videos} videos, dim {args.dim}, {args.anchors} anchors, k-means backend {resolve_kmeans_backend()}")
    centres = timed("k-means", lambda: kmeans(features, args.anchors, seed=0))
    print(f"non-empty clusters: {len(centres)}")
    anchors, squared = timed("nearest anchors (5)", lambda: nearest_anchors(features, centres, 5))
    similar, dissimilar = timed("anchor-graph tags", lambda: anchor_graph_tags(anchors, squared, len(centres)))
    for name, matrix in (("similar", similar), ("dissimilar", dissimilar)):
        size = matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes
        print(f"{name:<11} nnz {matrix.nnz:>12,}  per video {matrix.nnz / args.videos:7.1f}  {size / 2**20:7.1f} MiB")
    sizes = np.bincount(anchors[:, 0], minlength=len(centres))
    for s in ANCHOR_GRAPH_SPARSITIES:
        print(f"s={s}: s^2 N^2 / m = {s * s * args.videos**2 / len(centres):,.0f} (even clusters)")
    print(f"first-anchor cluster sizes: mean {sizes.mean():.1f}, max {sizes.max()}")
    if args.knn_dim:
        pooled = clustered_features(args.videos, args.knn_dim, args.classes, seed=1)
        timed(f"kNN graph (k=10, dim {args.knn_dim})", lambda: knn_graph(pooled, 10))


if __name__ == "__main__":
    main()
