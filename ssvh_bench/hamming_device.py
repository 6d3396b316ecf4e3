"""The protocol's Hamming search on a torch device (``evaluate(..., device=...)``): the same per-distance
counts and first-K rankings as ``hamming`` computes by popcount on the CPU, from matrix products.

For codes in {-1, 0, +1}, ``2 * distance = bits - q . b`` exactly (per position: 0 for equal signs, 2 for
opposite ones, 1 where either entry is 0). On CUDA the product runs in float16: every partial sum is an
integer of magnitude at most ``bits`` <= 256, which float16 holds exactly (it holds every integer up to 2048),
whatever the order or precision of the accumulation, so the distances, and every metric from them, equal the
CPU path's. Relevance (a shared label) is the product of the 0/1 label matrices being positive, which no
rounding of a sum of non-negative terms can change. Ties are broken by database index, as on the CPU.
"""

from __future__ import annotations

import numpy as np


class DeviceSearch:
    """Codes and labels of one evaluation held on ``device``; ``block`` searches a block of queries."""

    def __init__(self, query_codes: np.ndarray, database_codes: np.ndarray, query_labels: np.ndarray,
                 database_labels: np.ndarray, device: str) -> None:
        import torch

        self.device = torch.device(device)
        dtype = torch.float16 if self.device.type == "cuda" else torch.float32  # CPU matmul in float16 is slow
        self.bits = query_codes.shape[1]
        self.query = torch.from_numpy(np.ascontiguousarray(query_codes)).to(self.device, dtype)
        self.database = torch.from_numpy(np.ascontiguousarray(database_codes)).to(self.device, dtype).T.contiguous()
        self.query_labels = torch.from_numpy(np.ascontiguousarray(query_labels)).to(self.device, dtype)
        self.database_labels = torch.from_numpy(np.ascontiguousarray(database_labels)).to(self.device, dtype).T.contiguous()

    def block(self, start: int, stop: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For queries start..stop: items at each doubled distance, relevant items at each doubled distance
        (int64 [rows, 2 * bits + 1]) and the relevance of each query's first ``min(k, N)`` items (bool)."""
        import torch

        n_bins = 2 * self.bits + 1
        doubled = (self.bits - self.query[start:stop] @ self.database).round_().to(torch.int64)  # [rows, N]
        n_rows, n_database = doubled.shape
        keys = doubled + torch.arange(n_rows, device=self.device)[:, None] * n_bins  # (row, distance) bins
        counts = torch.bincount(keys.reshape(-1), minlength=n_rows * n_bins).view(n_rows, n_bins)
        relevant = (self.query_labels[start:stop] @ self.database_labels) > 0
        relevant_counts = torch.bincount(keys[relevant], minlength=n_rows * n_bins).view(n_rows, n_bins)
        del keys
        # (distance, index) as one key, unique per row: the k smallest are the protocol's first k, in order
        ranking = doubled.mul_(n_database).add_(torch.arange(n_database, device=self.device))
        first = torch.topk(ranking, min(k, n_database), dim=1, largest=False, sorted=True).indices
        top_relevant = relevant.gather(1, first)
        return counts.cpu().numpy(), relevant_counts.cpu().numpy(), top_relevant.cpu().numpy()
