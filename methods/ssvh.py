"""SSVH: self-supervised video hashing with a hierarchical binary auto-encoder (Song et al., TIP 2018).

Every recurrent unit is the reference's batch-normalised LSTM (``ssvh_bench.nn.BatchNormLSTM``: peepholes, the
cell batch-normalised at every step with per-step gamma/beta/running statistics, ``h = o * BN(c)``), and every
one is ``bits`` wide: the code is the encoder's hidden state, so code length = LSTM width (the reference's
256-bit code is its 256-d state; other lengths take other widths, as the paper's shorter codes).

Encoder: over the first ``max_frames`` frames (24 as in the paper; all frames when a video has fewer), a fine
LSTM reads every frame and a coarse LSTM reads every ``stride``-th fine output, counted back from the last
frame (for 24 frames and stride 2: frames 1, 3, ..., 23, as the reference); the coarse LSTM's hidden state is
binarised (``hash_binarize``, straight-through) before its next step reads it. Its last real-valued hidden
state ``h`` is the relaxed code; in training the BatchNorm centres every cell unit on the batch, so (the
output gate being positive) every bit of ``sign(h)`` splits the batch unless beta outgrows gamma. Test codes:
``h > 0 -> +1``, else -1, with the BatchNorms' running statistics.

Decoders start from the binary code and the encoder's real-valued cell (the reference's hand-over). The forward
and backward ones are hierarchical: a coarse LSTM without input (``h = o * tanh(BN(c))``) for ceil(n / stride)
steps, then a fine LSTM from zeros whose step t reads coarse output t // stride, then ``Linear(bits -> F)``;
the backward one's step t predicts frame n-1-t. By default the forward decoder's in-between steps (t not a
multiple of ``stride``) read the *backward* decoder's coarse outputs, as the reference's (a slip there);
``forward_decoder_own_coarse=True`` reads its own. The frame-mean decoder is one step of each level.

Neighbourhood (built once in ``prepare``, cached, independent of bits): cosine K1-NN on frame-mean training
features; each video's set is itself plus its K1 nearest videos; the K2 videos whose sets overlap its own
most (itself first) are its "mates", and the union of their sets is its neighbourhood; the relation is
symmetrised. ``S_ij = 1`` inside it, 0 elsewhere (the diagonal included, as the reference).

Loss, summed over the batch as the reference sums it:
``w * (sum_ij (h_i . H_j / bits - S_ij)^2 + q * sum_i |h_i - sign(h_i)|^2) + (1 - w) * reconstruction``,
j over *all* training videos: ``H`` is a memory of every video's relaxed code, zeros at the start and updated
batch by batch (rows of the batch are the live ``h``). ``reconstruction = (forward + backward + n * mean) / 3``,
each a sum of squared errors. w = 0.999, q = 0.2. A short last batch is zero-padded to ``batch_size`` as the
reference's (``pad_last_batch``).

Optimiser: the reference's SGD (momentum 0.9, lr 1e-4 decayed by 0.9 every 10,000 steps, L2 ``1e-4 / 2 *
|w|^2`` on every weight, gammas and betas included), whose per-element velocity is clipped to +-1e-4.
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
from ssvh_bench.nn import BatchNormLSTM, hash_binarize, quantization_loss

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


def glorot_linear(in_features: int, out_features: int) -> nn.Linear:
    """The reference's output layer: Glorot-uniform weights, zero bias."""
    layer = nn.Linear(in_features, out_features)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class HierarchicalEncoder(nn.Module):
    """Fine BN-LSTM over the frames, coarse BN-LSTM over every ``stride``-th fine output; the coarse one's
    hidden state is binarised before its next step reads it."""

    def __init__(self, feature_dim: int, bits: int, n_frames: int, stride: int) -> None:
        super().__init__()
        self.steps = coarse_steps(n_frames, stride)
        self.fine = BatchNormLSTM(feature_dim, bits, n_frames)
        self.coarse = BatchNormLSTM(bits, bits, len(self.steps))

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """frames [B, n, F] -> the coarse LSTM's last (real-valued hidden state, normalised cell), [B, bits] each."""
        fine, _ = self.fine(frames)
        _, state = self.coarse(fine[:, self.steps], recurrent=hash_binarize)
        return state


class HierarchicalDecoder(nn.Module):
    """A coarse BN-LSTM without input (``h = o * tanh(c_bn)``) started from the encoder's state, then a fine
    BN-LSTM from zeros whose step t reads coarse output ``t // stride``, then ``Linear(bits -> F)``."""

    def __init__(self, bits: int, feature_dim: int, n_frames: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.coarse = BatchNormLSTM(None, bits, math.ceil(n_frames / stride), tanh_output=True)
        self.fine = BatchNormLSTM(bits, bits, n_frames)
        self.output = glorot_linear(bits, feature_dim)

    def coarse_outputs(self, state: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return self.coarse(None, state)[0]

    def fine_inputs(self, coarse: torch.Tensor, n_frames: int) -> torch.Tensor:
        """Each coarse output repeated ``stride`` times: fine step t reads coarse output t // stride."""
        return coarse.repeat_interleave(self.stride, dim=1)[:, :n_frames]

    def reconstruct(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.output(self.fine(inputs)[0])


class SSVHNetwork(nn.Module):
    def __init__(self, feature_dim: int, bits: int, stride: int, n_frames_used: int,
                 forward_decoder_own_coarse: bool) -> None:
        super().__init__()
        self.n_frames_used = n_frames_used
        self.stride = stride
        self.forward_decoder_own_coarse = forward_decoder_own_coarse
        self.encoder = HierarchicalEncoder(feature_dim, bits, n_frames_used, stride)
        self.forward_decoder = HierarchicalDecoder(bits, feature_dim, n_frames_used, stride)
        self.backward_decoder = HierarchicalDecoder(bits, feature_dim, n_frames_used, stride)
        # the frame-mean decoder: one step of each level
        self.mean_decoder = HierarchicalDecoder(bits, feature_dim, 1, 1)

    def relaxed_codes(self, videos: torch.Tensor) -> torch.Tensor:
        """Real-valued codes h [B, bits] of videos [B, T, F] (their first ``n_frames_used`` frames): the
        coarse LSTM's last hidden state."""
        return self.encoder(videos[:, : self.n_frames_used])[0]

    def forward(self, videos: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Relaxed codes and the three reconstructions: "forward" [B, n, F] (step t is frame t), "backward"
        [B, n, F] (step t is frame n-1-t) and "mean" [B, F]. The decoders start from the binary code and the
        encoder's real-valued cell, as the reference."""
        relaxed, cell = self.encoder(videos[:, : self.n_frames_used])
        state = (hash_binarize(relaxed), cell)
        n = self.n_frames_used
        backward_coarse = self.backward_decoder.coarse_outputs(state)
        forward_coarse = self.forward_decoder.coarse_outputs(state)
        forward_inputs = self.forward_decoder.fine_inputs(forward_coarse, n)
        if not self.forward_decoder_own_coarse:
            # the reference's slip: the forward decoder's in-between steps read the backward decoder's outputs
            between = torch.arange(n, device=videos.device) % self.stride != 0
            backward_inputs = self.backward_decoder.fine_inputs(backward_coarse, n)
            forward_inputs = torch.where(between[None, :, None], backward_inputs, forward_inputs)
        mean = self.mean_decoder.reconstruct(self.mean_decoder.coarse_outputs(state))[:, 0]
        return relaxed, {"forward": self.forward_decoder.reconstruct(forward_inputs),
                         "backward": self.backward_decoder.reconstruct(
                             self.backward_decoder.fine_inputs(backward_coarse, n)),
                         "mean": mean}


def reconstruction_targets(videos: torch.Tensor, n_frames_used: int) -> dict[str, torch.Tensor]:
    """What each decoder predicts: the used frames in order, in reverse order, and their mean."""
    frames = videos[:, :n_frames_used]
    return {"forward": frames, "backward": frames.flip(1), "mean": frames.mean(dim=1)}


# ---- optimiser --------------------------------------------------------------------------------------------
class ClippedMomentumSGD(torch.optim.Optimizer):
    """The reference SSVH optimiser: ``v = clip(momentum * v - lr_t * (g + l2 * w), +-step_clip)``, ``w += v``,
    with ``lr_t = lr * decay ** (step / decay_steps)`` (``step`` counts updates); ``l2 * w`` is the gradient
    of the reference's ``l2 / 2 * |w|^2`` on every weight."""

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
                gradient = weight.grad.add(weight, alpha=group["l2_penalty"])
                velocity = state["velocity"]
                velocity.mul_(group["momentum"]).add_(gradient, alpha=-lr)
                velocity.clamp_(-group["step_clip"], group["step_clip"])
                weight.add_(velocity)
                state["step"] += 1


# ---- the method -------------------------------------------------------------------------------------------
MEMORY_KEY = "code_memory"  # the optimiser-state entry that holds the memory H


@register_method(
    "ssvh",
    description="SSVH (TIP 2018): hierarchical batch-normalised LSTM binary auto-encoder + kNN neighbourhood",
    family="deep",
    test_params={"max_frames": 4, "k1": 3, "k2": 2, "epochs": 1, "batch_size": 8},
)
class SSVH(DeepMethod):
    """SSVH as the reference code computes it (module docstring; README lists the differences)."""

    version = 2  # 2: the reference's batch-normalised LSTMs, code = hidden state, memory from zeros, L2 halved
    drop_last = False  # the reference trains on the short last batch too (zero-padded, see ``pad_last_batch``)

    dataset_defaults = {
        # fcvid, activitynet, yfcc: the paper's settings, i.e. the signature defaults (the paper reports FCVID
        # and YFCC; ActivityNet's 30 frames are cut to the first 24 like the others' 25)
        "fcvid": {},
        "activitynet": {},
        "yfcc": {},
        # 1e-4 steps move a weight by at most 1e-4 per update and the synthetic set gives ~20 updates per
        # epoch, so synthetic takes 1e-3 steps (same SGD otherwise) for 10 epochs: about a minute and a half
        # of one CPU core at 64 bits
        "synthetic": {"epochs": 10, "lr": 1e-3, "step_clip": 1e-3},
    }

    display = {"name": "SSVH", "published": "2018-01", "colour": "#E69F00", "marker": "s"}
    param_rules = {"k1": "positive", "k2": "positive", "lr_decay_steps": "positive", "max_frames": "positive",
                   "stride": "positive", "l2_penalty": "non_negative", "momentum": "non_negative",
                   "neighbourhood_weight": "non_negative", "quantization_weight": "non_negative",
                   "step_clip": "non_negative"}

    def __init__(self, max_frames: int = 24, stride: int = 2, k1: int = 10, k2: int = 5,
                 neighbourhood_weight: float = 0.999, quantization_weight: float = 0.2, epochs: int = 100,
                 batch_size: int = 256, lr: float = 1e-4, momentum: float = 0.9, step_clip: float = 1e-4,
                 lr_decay: float = 0.9, lr_decay_steps: int = 10_000, l2_penalty: float = 1e-4,
                 pad_last_batch: bool = True, forward_decoder_own_coarse: bool = False,
                 amp: bool = True) -> None:
        self.store_params(locals())

    # ---- stage before training: the neighbourhood ---------------------------------------------------------------
    def prepare(self, train: VideoFeatures, *, bits, seed, device, cache_dir, progress) -> None:
        settings = {"k1": self.k1, "k2": self.k2, "pooling": "frame mean", "metric": "cosine"}
        similarity = ArtefactCache(cache_dir).get_or_build(
            "ssvh-neighbourhood", {"train": train.fingerprint(), **settings},
            lambda: neighbourhood_similarity(train.pooled(), self.k1, self.k2),
            save=save_similarity, load=load_similarity)
        self.similarity = similarity
        self._neighbour_rows = torch.from_numpy(similarity.indptr.astype(np.int64)).to(device)
        self._neighbour_cols = torch.from_numpy(similarity.indices.astype(np.int64)).to(device)

    # ---- hooks ------------------------------------------------------------------------------------------------
    def build_model(self, n_frames: int, feature_dim: int, bits: int) -> nn.Module:
        for name in ("max_frames", "stride"):
            if getattr(self, name) < 1:
                raise ConfigError(f"ssvh: {name} must be >= 1, got {getattr(self, name)}")
        return SSVHNetwork(feature_dim, bits, self.stride, min(n_frames, self.max_frames),
                           self.forward_decoder_own_coarse)

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        self._optimizer = ClippedMomentumSGD(
            model.parameters(), lr=self.lr, momentum=self.momentum, step_clip=self.step_clip, decay=self.lr_decay,
            decay_steps=self.lr_decay_steps, l2_penalty=self.l2_penalty)
        return self._optimizer

    def learning_rate(self, epoch: int) -> float:
        return self.lr  # the optimiser decays it per step (``lr_decay`` every ``lr_decay_steps`` updates)

    def on_epoch_start(self, model: nn.Module, epoch: int, train: VideoFeatures) -> None:
        # The memory H is training state like the velocities: it lives in the optimiser's state, so the loop's
        # checkpoints carry it (a resumed run reproduces an uninterrupted one) and the model's weights stay
        # free of an N x bits table. It starts at zeros, as the reference's.
        memory = self._optimizer.state.get(MEMORY_KEY)
        if memory is None:
            memory = torch.zeros(len(train), self.bits)
        self._optimizer.state[MEMORY_KEY] = memory.to(self.device)

    @property
    def memory(self) -> torch.Tensor:
        """Every training video's relaxed code as last computed in training (zeros before) [N, bits]."""
        return self._optimizer.state[MEMORY_KEY]

    def training_losses(self, model, batch, epoch, generator):
        indices, features = batch.indices, batch.features
        if self.pad_last_batch and len(indices) < self.batch_size:
            # the reference's short last batch: zero videos up to batch_size, which enter the BatchNorm
            # statistics and every loss term (their neighbourhood rows are all zero)
            features = torch.cat([features, features.new_zeros(self.batch_size - len(indices), *features.shape[1:])])
        relaxed, predictions = model(features)
        relaxed = relaxed.float()
        # the batch's rows of the memory are the live codes, so gradients reach both sides of its own pairs
        codes = self.memory.index_put((indices,), relaxed[: len(indices)])
        self.memory[indices] = relaxed[: len(indices)].detach()
        inner = relaxed @ codes.T / self.bits  # [B (+ padding), N]
        rows, cols = self._neighbours_of(indices)
        # sum_j (inner_ij - S_ij)^2 with S sparse: sum of squares, minus 2 * inner on neighbours, plus |S|
        neighbourhood = (inner**2).sum() - 2 * inner[rows, cols].sum() + len(cols)
        quantization = quantization_loss(relaxed, reduction="sum")

        targets = reconstruction_targets(features, model.n_frames_used)
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
        # the reference's test codes: h > 0 -> +1, else -1 (eval mode: BatchNorm with its running statistics)
        relaxed = model.relaxed_codes(features).float()
        return torch.where(relaxed > 0, 1.0, -1.0)
