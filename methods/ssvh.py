"""SSVH: self-supervised video hashing with a hierarchical binary auto-encoder (Song et al., TIP 2018).

Encoder: over the first ``max_frames`` frames (24 as in the paper; all frames when a video has fewer), a fine
LSTM reads every frame and a coarse LSTM reads every ``stride``-th fine output, counted back from the last
frame (for 24 frames and stride 2: frames 1, 3, ..., 23, as the reference). The coarse LSTM's final hidden
state goes through ``Linear(hidden -> bits)``; its output ``h`` is the relaxed code and ``sign(h)`` (with
``sign_ste``'s clipped straight-through gradient) the binary code. Inference keeps ``sign(0) = 0``.

Two hierarchical LSTM decoders (a coarse LSTM fed the code at every step, then a fine LSTM fed each coarse
output ``stride`` times, then ``Linear(hidden -> F)``) reconstruct from the binary code alone the frames in
forward order and in reverse order (the backward decoder's step t predicts frame n-1-t); a small MLP
(``Linear(bits -> hidden)``, tanh, ``Linear(hidden -> F)``) reconstructs the frame mean (the reference runs
one step of each LSTM level for it, which from a zero state is such an MLP with gates).

Neighbourhood (built once in ``prepare``, cached, independent of bits): cosine K1-NN on frame-mean training
features; each video's set is itself plus its K1 nearest videos; the K2 videos whose sets overlap its own
most (itself first) are its "mates", and the union of their sets is its neighbourhood; the relation is
symmetrised. ``S_ij = 1`` inside it, 0 elsewhere (the diagonal included, as the reference).

Loss, summed over the batch as the reference sums it:
``w * (sum_ij (h_i . H_j / bits - S_ij)^2 + q * sum_i |h_i - sign(h_i)|^2) + (1 - w) * reconstruction``,
j over *all* training videos: ``H`` is a memory of every video's relaxed code (rows of the batch are the live
``h``). ``reconstruction = (forward + backward + n_frames * mean) / 3``, each a sum of squared errors.
w = 0.999, q = 0.2. Both sides are sums of comparable size on real features (B x N pair terms against
B x T x F reconstruction terms: at initialisation ~B * |neighbourhood| vs ~B * T * F * mean square feature),
which is why the paper's 0.999 / 0.001 split makes sense there.

Optimiser: the reference's SGD (momentum 0.9, lr 1e-4 decayed by 0.9 every 10,000 steps, L2 1e-4 on every
weight), whose per-element velocity is clipped to +-1e-4: each step moves a weight by at most 1e-4.

Differences from the reference code (Theano), on purpose: standard LSTMs (no peepholes, no batch-normalised
cell) so cuDNN/fused kernels apply; the coarse LSTM's recurrent state is not binarised between steps; the
code is a ``Linear`` of the final state, so any code length works (the reference's code is the 256-d state
itself); decoders see only the binary code (the reference also hands them the encoder's real-valued cell,
which leaks information past the code); the forward decoder's in-between steps read its own coarse outputs
(the reference's read the backward decoder's, a slip); the memory ``H`` is refreshed from the current model
at the start of every epoch and updated batch by batch (the reference starts it at zero and only updates it
batch by batch), which also makes a resumed run reproduce an uninterrupted one; ties in the neighbourhood
are broken by the lower video index.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from ssvh_bench import (ArtefactCache, ConfigError, DeepMethod, VideoFeatures, boolean_csr_arrays,
                        boolean_csr_from_arrays, knn_graph, register_method)
from ssvh_bench.nn import quantization_loss, sign_ste

NEIGHBOURHOOD_FILE = "similarity.npz"


# ---- neighbourhood ----------------------------------------------------------------------------------------
def neighbourhood_similarity(pooled: np.ndarray, k1: int, k2: int) -> sp.csr_matrix:
    """Symmetric boolean CSR [N, N]: SSVH's neighbourhood of each video (module docstring), self included.

    Memory: one sparse overlap matrix with about N * (K1 + 1)^2 entries; never N x N dense.
    """
    n_videos = len(pooled)
    if k1 < 1 or not 1 <= k2 <= k1 + 1:
        raise ConfigError(f"ssvh: need k1 >= 1 and 1 <= k2 <= k1 + 1, got k1={k1}, k2={k2}")
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    # on unit vectors the Euclidean order is the cosine order the reference uses
    unit = pooled / np.maximum(norms, np.finfo(np.float32).tiny)
    nearest = knn_graph(unit, k1)
    members = np.hstack([np.arange(n_videos)[:, None], nearest])  # [N, K1 + 1]: itself, then its K1-NN
    membership = _rows_to_csr(members, n_videos, dtype=np.int32)
    overlap = (membership @ membership.T).tocoo()  # |set_i & set_j|; every row holds itself and its K1-NN
    order = np.lexsort((overlap.col, -overlap.data, overlap.row))
    rows, cols = overlap.row[order], overlap.col[order]
    rank = np.arange(len(rows)) - np.searchsorted(rows, rows)
    mates = cols[rank < k2].reshape(n_videos, k2)  # most overlapping first, ties to the lower index
    union = _rows_to_csr(members[mates].reshape(n_videos, -1), n_videos, dtype=bool)
    return (union + union.T).astype(bool).tocsr()


def _rows_to_csr(columns: np.ndarray, n_videos: int, dtype: type) -> sp.csr_matrix:
    """A CSR [N, N] with a one at (i, c) for every c in ``columns[i]`` (repeats merged)."""
    width = columns.shape[1]
    indptr = np.arange(0, n_videos * width + 1, width)
    matrix = sp.csr_matrix((np.ones(columns.size, dtype=dtype), columns.ravel(), indptr), shape=(n_videos, n_videos))
    matrix.sum_duplicates()
    return matrix


def save_similarity(similarity: sp.csr_matrix, folder: Path) -> None:
    with open(Path(folder) / NEIGHBOURHOOD_FILE, "wb") as handle:
        np.savez(handle, **boolean_csr_arrays(similarity))


def load_similarity(folder: Path) -> sp.csr_matrix:
    with np.load(Path(folder) / NEIGHBOURHOOD_FILE) as data:
        return boolean_csr_from_arrays(data)


# ---- network ----------------------------------------------------------------------------------------------
def coarse_steps(n_frames: int, stride: int) -> list[int]:
    """Fine-LSTM outputs the coarse LSTM reads: every ``stride``-th, counted back from the last frame."""
    return list(range(n_frames - 1, -1, -stride))[::-1]


class HierarchicalEncoder(nn.Module):
    def __init__(self, feature_dim: int, hidden_size: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.fine = nn.LSTM(feature_dim, hidden_size, batch_first=True)
        self.coarse = nn.LSTM(hidden_size, hidden_size, batch_first=True)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames [B, n, F] -> the coarse LSTM's final hidden state [B, hidden]."""
        fine, _ = self.fine(frames)
        coarse, _ = self.coarse(fine[:, coarse_steps(frames.shape[1], self.stride)])
        return coarse[:, -1]


class HierarchicalDecoder(nn.Module):
    def __init__(self, bits: int, hidden_size: int, feature_dim: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.coarse = nn.LSTM(bits, hidden_size, batch_first=True)
        self.fine = nn.LSTM(hidden_size, hidden_size, batch_first=True)
        self.output = nn.Linear(hidden_size, feature_dim)

    def forward(self, code: torch.Tensor, n_steps: int) -> torch.Tensor:
        """code [B, bits] -> predictions [B, n_steps, F]."""
        n_coarse = math.ceil(n_steps / self.stride)
        coarse, _ = self.coarse(code[:, None].expand(-1, n_coarse, -1))
        fine, _ = self.fine(coarse.repeat_interleave(self.stride, dim=1)[:, :n_steps])
        return self.output(fine)


class SSVHNetwork(nn.Module):
    def __init__(self, feature_dim: int, bits: int, hidden_size: int, stride: int, n_frames_used: int) -> None:
        super().__init__()
        self.n_frames_used = n_frames_used
        self.encoder = HierarchicalEncoder(feature_dim, hidden_size, stride)
        self.code = nn.Linear(hidden_size, bits)
        self.forward_decoder = HierarchicalDecoder(bits, hidden_size, feature_dim, stride)
        self.backward_decoder = HierarchicalDecoder(bits, hidden_size, feature_dim, stride)
        # one step of an LSTM from a zero state is a gated MLP whose recurrent weights get no gradient
        self.mean_decoder = nn.Sequential(nn.Linear(bits, hidden_size), nn.Tanh(), nn.Linear(hidden_size, feature_dim))

    def relaxed_codes(self, videos: torch.Tensor) -> torch.Tensor:
        """Real-valued codes h [B, bits] of videos [B, T, F] (their first ``n_frames_used`` frames)."""
        return self.code(self.encoder(videos[:, : self.n_frames_used]))

    def forward(self, videos: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Relaxed codes and the three reconstructions from the binary codes: "forward" [B, n, F] (step t is
        frame t), "backward" [B, n, F] (step t is frame n-1-t) and "mean" [B, F]."""
        relaxed = self.relaxed_codes(videos)
        binary = sign_ste(relaxed)
        n = self.n_frames_used
        return relaxed, {"forward": self.forward_decoder(binary, n), "backward": self.backward_decoder(binary, n),
                         "mean": self.mean_decoder(binary)}


def reconstruction_targets(videos: torch.Tensor, n_frames_used: int) -> dict[str, torch.Tensor]:
    """What each decoder predicts: the used frames in order, in reverse order, and their mean."""
    frames = videos[:, :n_frames_used]
    return {"forward": frames, "backward": frames.flip(1), "mean": frames.mean(dim=1)}


# ---- optimiser --------------------------------------------------------------------------------------------
class ClippedMomentumSGD(torch.optim.Optimizer):
    """The reference SSVH optimiser: ``v = clip(momentum * v - lr_t * (g + 2 * l2 * w), +-step_clip)``,
    ``w += v``, with ``lr_t = lr * decay ** (step / decay_steps)`` (``step`` counts updates)."""

    def __init__(self, params, *, lr: float, momentum: float, step_clip: float, decay: float, decay_steps: int,
                 l2_penalty: float) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum, "step_clip": step_clip, "decay": decay,
                                  "decay_steps": decay_steps, "l2_penalty": l2_penalty})

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        for group in self.param_groups:
            for weight in group["params"]:
                if weight.grad is None:
                    continue
                state = self.state[weight]
                if not state:
                    state["step"] = 0
                    state["velocity"] = torch.zeros_like(weight)
                lr = group["lr"] * group["decay"] ** (state["step"] / group["decay_steps"])
                gradient = weight.grad.add(weight, alpha=2 * group["l2_penalty"])  # d/dw of l2 * |w|^2
                velocity = state["velocity"]
                velocity.mul_(group["momentum"]).add_(gradient, alpha=-lr)
                velocity.clamp_(-group["step_clip"], group["step_clip"])
                weight.add_(velocity)
                state["step"] += 1


# ---- the method -------------------------------------------------------------------------------------------
@register_method(
    "ssvh",
    description="SSVH (TIP 2018): hierarchical LSTM binary auto-encoder + kNN-neighbourhood preservation",
    family="deep",
    test_params={"hidden_size": 8, "max_frames": 4, "k1": 3, "k2": 2, "epochs": 1, "batch_size": 8},
)
class SSVH(DeepMethod):
    """SSVH with the reference's loss, neighbourhood and optimiser (module docstring: the differences)."""

    dataset_defaults = {
        # fcvid, activitynet, yfcc: the paper's settings, i.e. the signature defaults (the paper reports FCVID
        # and YFCC; ActivityNet's 30 frames are cut to the first 24 like the others' 25)
        "fcvid": {},
        "activitynet": {},
        "yfcc": {},
        # 1e-4 steps move a weight by at most 1e-4 per update and the synthetic set gives ~20 updates per
        # epoch, so synthetic takes 1e-3 steps (same SGD otherwise); hidden 256 costs minutes per epoch on 2
        # CPU cores, so synthetic uses 64
        "synthetic": {"hidden_size": 64, "epochs": 30, "lr": 1e-3, "step_clip": 1e-3},
    }

    def __init__(self, hidden_size: int = 256, max_frames: int = 24, stride: int = 2, k1: int = 10, k2: int = 5,
                 neighbourhood_weight: float = 0.999, quantization_weight: float = 0.2, epochs: int = 100,
                 batch_size: int = 256, lr: float = 1e-4, momentum: float = 0.9, step_clip: float = 1e-4,
                 lr_decay: float = 0.9, lr_decay_steps: int = 10_000, l2_penalty: float = 1e-4,
                 checkpoint_every: int = 10, amp: bool = True) -> None:
        self.store_params(locals())

    # ---- stage before training: the neighbourhood and the code memory ---------------------------------------
    def prepare(self, train: VideoFeatures, *, bits, seed, device, cache_dir, progress) -> None:
        settings = {"k1": self.k1, "k2": self.k2, "pooling": "frame mean", "metric": "cosine"}
        similarity = ArtefactCache(cache_dir).get_or_build(
            "ssvh-neighbourhood", {"train": train.fingerprint(), **settings},
            lambda: neighbourhood_similarity(train.pooled(), self.k1, self.k2),
            save=save_similarity, load=load_similarity)
        self.similarity = similarity
        self._neighbour_rows = torch.from_numpy(similarity.indptr.astype(np.int64)).to(device)
        self._neighbour_cols = torch.from_numpy(similarity.indices.astype(np.int64)).to(device)
        self._memory: torch.Tensor | None = None

    def refresh_memory(self, model: nn.Module, train: VideoFeatures) -> torch.Tensor:
        """Every training video's relaxed code [N, bits] under the current model."""
        memory = torch.empty(len(train), self.bits, device=self.device)
        with torch.no_grad():
            for indices, features in train.iter_batches(self.batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(features)).to(self.device).float()
                memory[torch.from_numpy(indices).to(self.device)] = model.relaxed_codes(batch).float()
        return memory

    # ---- hooks ------------------------------------------------------------------------------------------------
    def build_model(self, n_frames: int, feature_dim: int, bits: int) -> nn.Module:
        for name in ("hidden_size", "max_frames", "stride"):
            if getattr(self, name) < 1:
                raise ConfigError(f"ssvh: {name} must be >= 1, got {getattr(self, name)}")
        return SSVHNetwork(feature_dim, bits, self.hidden_size, self.stride, min(n_frames, self.max_frames))

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return ClippedMomentumSGD(model.parameters(), lr=self.lr, momentum=self.momentum, step_clip=self.step_clip,
                                  decay=self.lr_decay, decay_steps=self.lr_decay_steps, l2_penalty=self.l2_penalty)

    def learning_rate(self, epoch: int) -> float:
        return self.lr  # the optimiser decays it per step (``lr_decay`` every ``lr_decay_steps`` updates)

    def on_epoch_start(self, model: nn.Module, epoch: int, train: VideoFeatures) -> None:
        self._memory = self.refresh_memory(model, train)

    def training_losses(self, model, batch, epoch, generator):
        indices = batch.indices
        relaxed, predictions = model(batch.features)
        relaxed = relaxed.float()
        # the batch's rows of the memory are the live codes, so gradients reach both sides of its own pairs
        codes = self._memory.index_put((indices,), relaxed)
        self._memory[indices] = relaxed.detach()
        inner = relaxed @ codes.T / self.bits  # [B, N]
        rows, cols = self._neighbours_of(indices)
        # sum_j (inner_ij - S_ij)^2 with S sparse: sum of squares, minus 2 * inner on neighbours, plus |S|
        neighbourhood = (inner**2).sum() - 2 * inner[rows, cols].sum() + len(cols)
        quantization = quantization_loss(relaxed, reduction="sum")

        targets = reconstruction_targets(batch.features, model.n_frames_used)
        errors = {name: ((predictions[name].float() - target) ** 2).sum() for name, target in targets.items()}
        reconstruction = (errors["forward"] + errors["backward"] + targets["forward"].shape[1] * errors["mean"]) / 3
        weight = self.neighbourhood_weight
        loss = weight * (neighbourhood + self.quantization_weight * quantization) + (1 - weight) * reconstruction
        return {"loss": loss, "neighbourhood": neighbourhood, "quantization": quantization,
                "reconstruction": reconstruction}

    def _neighbours_of(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch row, video) of every stored neighbour pair of the batch's videos."""
        starts = self._neighbour_rows[indices]
        counts = self._neighbour_rows[indices + 1] - starts
        rows = torch.repeat_interleave(torch.arange(len(indices), device=indices.device), counts)
        first = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
        positions = torch.repeat_interleave(starts, counts) + torch.arange(len(rows), device=indices.device) - first
        return rows, self._neighbour_cols[positions]

    def encode_batch(self, model, features):
        # one code per video from the hierarchy's final state; sign(0) = 0 is kept
        return torch.sign(model.relaxed_codes(features).float())
