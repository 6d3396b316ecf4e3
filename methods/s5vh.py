"""S5VH: self-supervised video hashing with selective state spaces (Wang et al., AAAI 2025).

A ConMH-style masked-frame autoencoder whose transformer blocks are bidirectional Mamba blocks: the
encoder sees only a view's visible frames and gives a ±1 code per frame; a one-block decoder reconstructs
the hidden frames from those codes. Loss: reconstruction of both views + a debiased contrastive loss
between the two views' mean codes + a cross-entropy of a bits -> clusters classifier against soft
pseudo-labels. The pseudo-labels start one-hot at each video's nearest k-means anchor (stage 1, cached:
PCA of frame-mean features, k-means) and, after ``warm_up_epoch``, are smoothed every batch with the
model's own predictions.

By default this is what the authors' released code computes; its departures from the paper are switches
(``tie_directions``, ``hash_centres``, ``label_prediction_like_loss``; see README "S5VH"). Parameter names
follow the released model, so its checkpoints load unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.linalg import hadamard
from torch import nn

from ssvh_bench import (KMEANS_BACKENDS, ArtefactCache, ConfigError, DeepMethod, VideoFeatures, fit_pca, kmeans, nearest_anchors,
                        register_method, resolve_kmeans_backend)
from ssvh_bench.nn import (BidirectionalMambaBlock, FrameEncoder, Mamba, MaskedDecoder, check_visible_frames,
                           debiased_contrastive_loss, hash_binarize, n_visible_frames, sinusoid_table,
                           two_view_reconstruction)

STAGE1_KIND = "s5vh-stage1"
STAGE1_FILE = "pseudo_labels.npz"
KMEANS_ROUNDS = 16  # the released k-means stops after 16 update rounds at most
CENTRE_SEED = 80  # the released hash-centre generator seeds its RNGs with 80
CENTRE_TRIES = 10


@dataclass(frozen=True)
class Architecture:
    encoder_dim: int
    encoder_depth: int
    decoder_dim: int = 192
    decoder_depth: int = 1


VARIANTS = {
    "small": Architecture(256, 6),  # every released config
    "mini": Architecture(256, 1),
    "base": Architecture(256, 12),
    "tiny": Architecture(32, 2, decoder_dim=16),  # synthetic data on a CPU
}


def mamba_blocks(dim: int, depth: int, drop_path_rate: float, tie_directions: bool) -> nn.ModuleList:
    rates = torch.linspace(0, drop_path_rate, depth).tolist()
    return nn.ModuleList(BidirectionalMambaBlock(dim, drop_path=rate, tie_directions=tie_directions)
                         for rate in rates)


class S5VHNetwork(nn.Module):
    def __init__(self, feature_dim: int, n_frames: int, bits: int, n_clusters: int, architecture: Architecture,
                 drop_path_rate: float, tie_directions: bool) -> None:
        super().__init__()
        a = architecture
        self.mask_token = nn.Parameter(torch.zeros(1, 1, a.decoder_dim))
        # never called by the released model, but built (and saved): kept frozen so its checkpoints load
        self.get_token_probs = nn.Sequential(nn.Linear(feature_dim, a.encoder_dim), Mamba(a.encoder_dim),
                                             nn.Linear(a.encoder_dim, 1), nn.Flatten()).requires_grad_(False)
        self.encoder = FrameEncoder(feature_dim, n_frames,
                                    mamba_blocks(a.encoder_dim, a.encoder_depth, drop_path_rate, tie_directions),
                                    a.encoder_dim, a.encoder_dim)
        # the released decoder's drop-path rates are linspace(0, 0.5, 1) = [0]; deeper decoders are not used
        self.decoder = MaskedDecoder(mamba_blocks(a.decoder_dim, a.decoder_depth, 0.0, tie_directions), a.decoder_dim,
                                     feature_dim)
        self.encoder_to_decoder = nn.Linear(bits, a.decoder_dim, bias=False)
        self.register_buffer("decoder_position", sinusoid_table(n_frames, a.decoder_dim), persistent=False)
        self.binary = nn.Linear(a.encoder_dim, bits)
        self.ln = nn.LayerNorm(bits)
        self.classifier = nn.Linear(bits, n_clusters, bias=False)
        # the released truncated normal cuts at +-std, not at +-2
        nn.init.trunc_normal_(self.mask_token, std=0.02, a=-0.02, b=0.02)

    def frame_codes(self, frames: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """±1 code per frame, [N, n, bits]."""
        return hash_binarize(self.ln(self.binary(self.encoder(frames, positions))))

    def forward(self, visible_frames: torch.Tensor, visible: torch.Tensor,
                masked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruct the frames at ``masked`` [N, m] from those at ``visible`` [N, v]; returns the
        reconstruction [N, m, F] and the visible frames' codes [N, v, bits]."""
        codes = self.frame_codes(visible_frames, visible)
        visible_tokens = self.encoder_to_decoder(codes) + self.decoder_position[visible]
        mask_tokens = self.mask_token + self.decoder_position[masked]
        # order matters to a scan: every visible token in time order, then every masked one
        tokens = torch.cat((visible_tokens, mask_tokens.to(visible_tokens.dtype)), dim=1)
        return self.decoder(tokens, masked.shape[1]), codes


def initial_hash_centres(n_classes: int, bits: int, seed: int = CENTRE_SEED) -> np.ndarray:
    """±1 centres [n_classes, bits] as the released generator starts them (CSQ): the rows of [H; -H] for a
    Sylvester Hadamard H when ``bits`` is a power of two, then random balanced vectors (bits/2 entries -1),
    redrawn up to 10 times until their minimum Hamming distance exceeds bits/4 and the mean reaches bits/2
    (else the draw with the largest minimum is kept). The released optimisation towards semantic k-means
    centres that follows is not reproduced."""
    rng = np.random.default_rng(seed)
    fixed = np.zeros((0, bits))
    if bits & (bits - 1) == 0:
        h = hadamard(bits)
        fixed = np.concatenate((h, -h))[:n_classes]
    n_random = n_classes - len(fixed)
    best, best_score = None, -1.0
    for _ in range(CENTRE_TRIES):
        drawn = np.ones((n_random, bits))
        for row in drawn:
            row[rng.permutation(bits)[: bits // 2]] = -1
        centres = np.concatenate((fixed, drawn))
        distances = (bits - centres @ centres.T) / 2
        off = distances[~np.eye(len(centres), dtype=bool)]
        score = off.min() if len(off) else float(bits)
        if best is None or score > best_score:
            best, best_score = centres, score
        if not len(off) or (off.min() > bits / 4 and off.mean() >= bits / 2):
            break
    return best.astype(np.float32)


@register_method(
    "s5vh",
    description="S5VH (AAAI 2025): bidirectional-Mamba masked-frame hashing + contrast + pseudo-label alignment",
    family="two_stage",
    test_params={"variant": "tiny", "epochs": 2, "warm_up_epoch": 1, "batch_size": 8, "n_clusters": 4,
                 "latent_dim_pca": 8},
)
class S5VH(DeepMethod):
    """S5VH as released (defaults: the released FCVID config ``fcv.py``)."""

    version = 2  # 2: the shared hash layer's gradient stops above +1, as the authors' in-place clamp

    family = "two_stage"

    param_choices = {"kmeans_backend": KMEANS_BACKENDS, "variant": tuple(VARIANTS)}
    dataset_defaults = {
        "fcvid": {},
        "activitynet": {"mask_ratio": 0.5, "batch_size": 128, "epochs": 350, "contrastive_weight": 0.2,
                        "tau_plus": 0.05, "cluster_weight": 0.001, "n_clusters": 100},
        # runtime only (minutes on 2 CPU cores): a narrow model and few epochs; clusters scaled to FCVID's
        # ~100 videos per cluster; a one-epoch warm-up so the pseudo-label smoothing runs at all
        "synthetic": {"variant": "tiny", "epochs": 3, "warm_up_epoch": 1, "batch_size": 256, "n_clusters": 50},
    }

    _labels: torch.Tensor | None = None  # [N, n_clusters] float64: each training video's soft pseudo-label

    display = {"name": "S5VH", "published": "2025-02", "colour": "#000000", "marker": "X"}
    param_rules = {"n_clusters": "positive", "temperature": "positive", "cluster_weight": "non_negative",
                   "contrastive_weight": "non_negative", "warm_up_epoch": "non_negative",
                   "weight_decay": "non_negative", "mask_ratio": "open_unit", "smoothing": "unit",
                   "tau_plus": "unit"}
    param_resolvers = {"kmeans_backend": "resolve_kmeans_backend"}

    def __init__(self, variant: str = "small", mask_ratio: float = 0.75, epochs: int = 500, batch_size: int = 512,
                 lr: float = 5e-4, min_lr: float = 1e-5, weight_decay: float = 1e-4, drop_path_rate: float = 0.5,
                 temperature: float = 0.5, tau_plus: float = 0.1, contrastive_weight: float = 2.5,
                 cluster_weight: float = 0.01, cluster_temperature: float = 0.5, n_clusters: int = 450,
                 latent_dim_pca: int = 512, warm_up_epoch: int = 50, smoothing: float = 0.01,
                 tie_directions: bool = True, hash_centres: bool = False, label_prediction_like_loss: bool = False,
                 kmeans_backend: str = "auto", amp: bool = True) -> None:
        self.variant = variant
        self.mask_ratio = mask_ratio
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.min_lr = min_lr
        self.weight_decay = weight_decay
        self.drop_path_rate = drop_path_rate
        self.temperature = temperature
        self.tau_plus = tau_plus
        self.contrastive_weight = contrastive_weight
        self.cluster_weight = cluster_weight
        self.cluster_temperature = cluster_temperature
        self.n_clusters = n_clusters
        self.latent_dim_pca = latent_dim_pca
        self.warm_up_epoch = warm_up_epoch
        self.smoothing = smoothing
        self.tie_directions = tie_directions
        self.hash_centres = hash_centres
        self.label_prediction_like_loss = label_prediction_like_loss
        self.kmeans_backend = kmeans_backend
        self.amp = amp

    # ---- stage 1: one-hot pseudo-labels at the nearest k-means anchor ------------------------------------------
    def stage1_key(self, train: VideoFeatures, seed: int) -> dict:
        return {"train": train.fingerprint(), "seed": seed, "latent_dim_pca": self.latent_dim_pca,
                "n_clusters": self.n_clusters, "kmeans_rounds": KMEANS_ROUNDS,
                "kmeans_backend": resolve_kmeans_backend(self.kmeans_backend)}

    def pseudo_labels(self, train: VideoFeatures, seed: int) -> np.ndarray:
        """Each training video's nearest k-means anchor [N] on the PCA of its frame-mean features."""
        pooled = train.pooled()
        # PCA to more directions than exist is a rotation and shift, which leaves k-means unchanged
        latent_dim = min(self.latent_dim_pca, *pooled.shape)
        latent = fit_pca(pooled, latent_dim, owner="s5vh").transform(pooled).astype(np.float32)
        anchors = kmeans(latent, self.n_clusters, seed=seed, n_iter=KMEANS_ROUNDS, backend=self.kmeans_backend)
        nearest, _ = nearest_anchors(latent, anchors, 1)
        return nearest[:, 0]

    def prepare(self, train, *, bits, seed, device, cache_dir, progress):
        check_visible_frames(n_visible_frames(train.n_frames, self.mask_ratio), train.n_frames, self.mask_ratio,
                             "s5vh")
        if not 1 <= self.n_clusters <= len(train):
            raise ConfigError(f"s5vh: n_clusters must be between 1 and the number of training videos "
                              f"({len(train)}), got {self.n_clusters}")
        cache = ArtefactCache(cache_dir)
        labels = cache.get_or_build(
            STAGE1_KIND, self.stage1_key(train, seed), lambda: self.pseudo_labels(train, seed),
            save=lambda value, folder: np.savez(folder / STAGE1_FILE, labels=value),
            load=lambda folder: np.load(Path(folder) / STAGE1_FILE)["labels"])
        self._labels = F.one_hot(torch.from_numpy(labels), self.n_clusters).to(device, torch.float64)

    def training_state(self):
        return {} if self._labels is None else {"pseudo_labels": self._labels.cpu()}

    def load_training_state(self, state):
        if "pseudo_labels" in state:  # a resumed run goes on with the smoothed labels, not one-hot ones
            self._labels = state["pseudo_labels"].to(self._labels.device)

    # ---- stage 2 ----------------------------------------------------------------------------------------------
    def build_model(self, n_frames, feature_dim, bits):
        if self.variant not in VARIANTS:
            raise ConfigError(f"s5vh: unknown variant {self.variant!r}; choose from {', '.join(VARIANTS)}")
        model = S5VHNetwork(feature_dim, n_frames, bits, self.n_clusters, VARIANTS[self.variant],
                            self.drop_path_rate, self.tie_directions)
        if self.hash_centres:  # what the released `classifier.data = hash_center` meant to do
            with torch.no_grad():
                model.classifier.weight.copy_(torch.from_numpy(initial_hash_centres(self.n_clusters, bits)))
        return model

    def build_optimizer(self, model):
        # one group over every parameter (biases, norms, A_log and D decayed too), as released
        return torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    def learning_rate(self, epoch):
        """Cosine annealing from ``lr`` to ``min_lr`` over ``epochs``, stepped once per epoch."""
        return self.min_lr + (self.lr - self.min_lr) * (1 + math.cos(math.pi * epoch / self.epochs)) / 2

    def cluster_logits(self, model: S5VHNetwork, mean_codes: torch.Tensor) -> torch.Tensor:
        return model.classifier(mean_codes) / (mean_codes.shape[1] * self.cluster_temperature)

    @torch.no_grad()
    def predicted_labels(self, model: S5VHNetwork, batch: torch.Tensor) -> torch.Tensor:
        """The model's cluster probabilities [B, n_clusters] on the full clips. As released: in training mode
        (drop-path active), without the LayerNorm ``ln`` and without the logits' temperature."""
        if not self.label_prediction_like_loss:
            codes = hash_binarize(model.binary(model.encoder(batch, None))).float().mean(dim=1)
            return F.softmax(model.classifier(codes).double(), dim=1)
        model.eval()
        try:
            codes = model.frame_codes(batch).float().mean(dim=1)
        finally:
            model.train()
        return F.softmax(self.cluster_logits(model, codes).double(), dim=1)

    def training_losses(self, model, batch, epoch, generator):
        assert self._labels is not None
        indices, batch = batch.indices, batch.features
        n_videos, n_frames, _ = batch.shape
        if epoch >= self.warm_up_epoch:  # smooth the batch's pseudo-labels before the loss uses them
            self._labels[indices] = ((1 - self.smoothing) * self._labels[indices]
                                     + self.smoothing * self.predicted_labels(model, batch))
        targets = self._labels[indices]
        reconstruction_loss, mean_codes = two_view_reconstruction(model, batch, self.mask_ratio, generator)
        contrastive = debiased_contrastive_loss(mean_codes[:n_videos], mean_codes[n_videos:],
                                                temperature=self.temperature, tau_plus=self.tau_plus)
        # soft-target cross-entropy, in float64 like the released float64 labels
        logits = self.cluster_logits(model, mean_codes).double()
        cluster = (F.cross_entropy(logits[:n_videos], targets) + F.cross_entropy(logits[n_videos:], targets)) / 2
        loss = reconstruction_loss + self.contrastive_weight * contrastive + self.cluster_weight * cluster.float()
        return {"loss": loss, "reconstruction": reconstruction_loss, "contrastive": contrastive,
                "cluster": cluster.float()}

    def encode_batch(self, model, batch):
        # the protocol's codes: per-frame codes averaged over frames, then sign (an exact 0 stays 0)
        return torch.sign(model.frame_codes(batch).float().mean(dim=1))
