"""AutoSSVH: automated frame sampling for self-supervised video hashing (Lian et al., CVPR 2025).

What the authors' released training computes (the default, ``sampler="random"``): a ConMH-style masked
autoencoder (encoder over the visible frames -> per-frame ±1 codes -> decoder reconstructing the masked
frames) with two random views per video and a debiased contrast of their mean codes, plus, from epoch
``warmup_epochs`` on, a ProtoNCE-style loss against the centroids of k-means clusterings of the training
videos' codes, recomputed at the start of every epoch.

The paper's adversarial frame sampler (a frame scorer, Gumbel top-k selection and a gradient-reversal layer)
is built by the released code but never called in training; ``sampler="adversarial"`` picks each view's
visible frames with it. Parameter names follow the released model, so its checkpoints load unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ssvh_bench import (KMEANS_BACKENDS, ConfigError, DeepMethod, kmeans, nearest_anchors, register_method,
                        resolve_kmeans_backend)
from ssvh_bench import VideoFeatures, step_decay_lr
from ssvh_bench.nn import (LAYER_NORM_EPS, MASKED_AUTOENCODER_VARIANTS, MaskedAutoencoderShape,
                           MaskedDecoder, transformer_blocks, debiased_contrastive_loss, check_visible_frames,
                           hash_binarize, n_visible_frames, sample_views, sinusoid_table, xavier_init)

SAMPLERS = ("random", "adversarial")
SAMPLER_NOISE_SCALE = 10.0  # the released sampler adds 10 * N(0, 1) to the Gumbel-perturbed scores
SAMPLER_SOFTMAX_TEMPERATURE = 0.5
KMEANS_ITERATIONS = 20


Architecture = MaskedAutoencoderShape
VARIANTS = {
    **MASKED_AUTOENCODER_VARIANTS,
    "tiny": Architecture(32, 1, 2, decoder_dim=16, decoder_depth=1, decoder_heads=2),  # synthetic data, tests
}


class ReversedChoice(torch.autograd.Function):
    """``tokens * weights``; the tokens get ``grad * weights``, the weights ``-sum(grad * tokens)``: the
    sampler's scores are trained to raise the loss (gradient reversal, factor -1)."""

    @staticmethod
    def forward(ctx, tokens: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(tokens, weights)
        return tokens * weights[..., None]

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        tokens, weights = ctx.saved_tensors
        return grad * weights[..., None], -(grad * tokens).sum(dim=-1)


class ImportanceScore(nn.Module):
    """One score in (0, 1) per frame token: ``sigmoid(w . (u + LN(MLP(u))) + b)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.importance_score = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))
        self.norm = nn.LayerNorm(dim)  # eps 1e-5 here, unlike the blocks
        self.transf = nn.Sequential(nn.Linear(dim, 1), nn.Sigmoid())

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.transf(tokens + self.norm(self.importance_score(tokens))).squeeze(-1)


class FrameSampler(nn.Module):
    """The released Gumbel top-k frame sampler (``sample_net``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        # in the released state dict, but never used in any computation
        self.temperature = nn.Parameter(torch.full((1, 1, 1, 1), 0.1), requires_grad=False)
        self.importance_score = ImportanceScore(dim)

    def forward(self, tokens: torch.Tensor, n_keep: int,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``n_keep`` chosen tokens of each row of ``tokens`` [N, T, d] and their positions [N, n_keep]
        (ascending)."""
        scores = self.importance_score(tokens)
        uniform = torch.rand(scores.shape, generator=generator, device=scores.device)
        gumbel = -torch.log(-torch.log(uniform.clamp(1e-20, 1 - 1e-7)))
        normal = torch.randn(scores.shape, generator=generator, device=scores.device)
        noisy = scores.float() + gumbel + SAMPLER_NOISE_SCALE * normal
        noisy = (noisy - noisy.mean()) / noisy.std()  # standardised over the whole batch, as released
        probabilities = torch.softmax(noisy / SAMPLER_SOFTMAX_TEMPERATURE, dim=1)
        keep = probabilities.topk(n_keep, dim=1).indices.sort(dim=1).values
        chosen = torch.zeros_like(probabilities).scatter(1, keep, 1.0)
        weights = chosen - probabilities.detach() + probabilities  # equal to ``chosen``, with p's gradient
        weighted = ReversedChoice.apply(tokens, weights.to(tokens.dtype))
        return weighted.gather(1, keep[..., None].expand(-1, -1, tokens.shape[-1])), keep


class Encoder(nn.Module):
    def __init__(self, feature_dim: int, n_frames: int, dim: int, depth: int, heads: int) -> None:
        super().__init__()
        self.patch_embed = nn.Linear(feature_dim, dim)
        self.register_buffer("position", sinusoid_table(n_frames, dim), persistent=False)
        self.sample_net = FrameSampler(dim)
        self.blocks = transformer_blocks(dim, depth, heads, head_dim=dim // heads)
        self.norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.head = nn.Linear(dim, dim)
        self.apply(xavier_init)

    def embed(self, frames: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
        """Frame tokens with their positions added; ``positions`` None means frames 0..n-1."""
        position = self.position[: frames.shape[1]] if positions is None else self.position[positions]
        return self.patch_embed(frames) + position

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            tokens = block(tokens)
        return self.head(self.norm(tokens))


class AutoSSVHNetwork(nn.Module):
    def __init__(self, feature_dim: int, n_frames: int, bits: int, architecture: Architecture,
                 input_dropout: float) -> None:
        super().__init__()
        a = architecture
        self.mask_token = nn.Parameter(torch.zeros(1, 1, a.decoder_dim))
        # learnable and zero-initialised in the released model (ConMH's is a fixed sinusoid)
        self.pos_embed = nn.Parameter(torch.zeros(1, n_frames, a.decoder_dim))
        self.encoder = Encoder(feature_dim, n_frames, a.encoder_dim, a.encoder_depth, a.encoder_heads)
        self.decoder = MaskedDecoder(transformer_blocks(a.decoder_dim, a.decoder_depth, a.decoder_heads), a.decoder_dim,
                                     feature_dim)
        self.encoder_to_decoder = nn.Linear(bits, a.decoder_dim, bias=False)
        self.binary = nn.Linear(a.encoder_dim, bits)
        self.ln = nn.LayerNorm(bits)
        # the released code drops input features only when its rate exceeds 0.01
        self.input_dropout = nn.Dropout(input_dropout) if input_dropout > 0.01 else nn.Identity()
        nn.init.trunc_normal_(self.mask_token, std=0.02, a=-0.02, b=0.02)

    def codes(self, tokens: torch.Tensor) -> torch.Tensor:
        """±1 code per embedded frame token, [N, n, bits]."""
        return hash_binarize(self.ln(self.binary(self.encoder(tokens))))

    def frame_codes(self, frames: torch.Tensor) -> torch.Tensor:
        """Codes of every frame of full clips [N, T, F] (inference and clustering: no sampler, no dropout)."""
        return self.codes(self.encoder.embed(frames, None))

    def forward(self, visible_frames: torch.Tensor, visible: torch.Tensor,
                masked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Given masks: reconstruct the frames at ``masked`` [N, m] from those at ``visible`` [N, v].

        Returns the reconstruction [N, m, F] and the visible frames' codes [N, v, bits].
        """
        codes = self.codes(self.encoder.embed(self.input_dropout(visible_frames), visible))
        return self.reconstruct(codes, visible, masked), codes

    def forward_sampled(self, frames: torch.Tensor, n_keep: int, generator: torch.Generator
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The sampler picks ``n_keep`` visible frames of each clip [N, T, F]; the rest are reconstructed.

        Returns (reconstruction [N, T - n_keep, F], codes [N, n_keep, bits], visible, masked positions).
        """
        tokens = self.encoder.embed(self.input_dropout(frames), None)
        chosen, visible = self.encoder.sample_net(tokens, n_keep, generator)
        hidden = torch.ones_like(tokens[..., 0], dtype=torch.bool).scatter(1, visible, False)
        masked = hidden.nonzero()[:, 1].reshape(len(frames), -1)  # ascending in each row
        codes = hash_binarize(self.ln(self.binary(self.encoder(chosen))))
        return self.reconstruct(codes, visible, masked), codes, visible, masked

    def reconstruct(self, codes: torch.Tensor, visible: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        position = self.pos_embed[0]
        visible_tokens = self.encoder_to_decoder(codes) + position[visible]
        mask_tokens = (self.mask_token + position[masked]).to(visible_tokens.dtype)
        return self.decoder(torch.cat((visible_tokens, mask_tokens), dim=1), masked.shape[1])


@dataclass(frozen=True)
class Clustering:
    """One k-means clustering of the training codes: each video's cluster, L2-normalised centroids and
    per-cluster temperatures."""

    labels: torch.Tensor  # [N] int64
    centroids: torch.Tensor  # [k, bits]
    temperatures: torch.Tensor  # [k]


def cluster_temperatures(squared_distances: np.ndarray, labels: np.ndarray, n_clusters: int,
                         temperature: float) -> np.ndarray:
    """PCL's concentration per cluster: mean distance to the centroid / ln(size + 10); clusters of one
    video get the largest; clipped to the 10th-90th percentiles; scaled to mean ``temperature``.

    A cluster whose members all share one code has concentration 0, which divides the logits by 0 in the
    released code (NaN losses); such clusters take the smallest positive concentration instead.
    """
    sizes = np.bincount(labels, minlength=n_clusters)
    spread = np.bincount(labels, weights=np.sqrt(squared_distances), minlength=n_clusters)
    density = np.where(sizes > 1, spread / np.maximum(sizes, 1) / np.log(sizes + 10), 0.0)
    density = np.where(sizes > 1, density, density.max())
    positive = density[density > 0]
    density = np.where(density > 0, density, positive.min() if len(positive) else 1.0)
    density = density.clip(np.percentile(density, 10), np.percentile(density, 90))
    return temperature * density / density.mean()


def cluster_codes(features: np.ndarray, n_clusters: tuple[int, ...], temperature: float, backend: str,
                  device: torch.device) -> list[Clustering]:
    """One k-means per entry of ``n_clusters`` (seeds 0, 1, 2, ...) on L2-normalised codes [N, bits]."""
    clusterings = []
    for seed, k in enumerate(n_clusters):
        centres = kmeans(features, min(k, len(features)), seed=seed, n_iter=KMEANS_ITERATIONS, backend=backend)
        nearest, squared = nearest_anchors(features, centres, 1)
        labels = nearest[:, 0]
        temperatures = cluster_temperatures(squared[:, 0], labels, len(centres), temperature)
        clusterings.append(Clustering(
            torch.from_numpy(labels).to(device),
            F.normalize(torch.from_numpy(centres), dim=1).to(device),
            torch.from_numpy(temperatures.astype(np.float32)).to(device)))
    return clusterings


def prototype_loss(codes: torch.Tensor, labels: torch.Tensor, centroids: torch.Tensor, temperatures: torch.Tensor,
                   generator: torch.Generator) -> torch.Tensor:
    """ProtoNCE against one clustering: row i's logits are its normalised code against the prototypes of the
    batch's clusters (in batch order; its own is column i, duplicates kept) and up to B clusters absent from
    the batch drawn without replacement, each divided by that cluster's temperature."""
    n_videos = len(labels)
    absent = torch.ones(len(centroids), dtype=torch.bool, device=labels.device)
    absent[labels] = False
    candidates = absent.nonzero()[:, 0]
    draw = torch.randperm(len(candidates), generator=generator, device=generator.device).to(labels.device)
    columns = torch.cat((labels, candidates[draw[:n_videos]]))
    logits = F.normalize(codes.float(), dim=1) @ centroids[columns].T / temperatures[columns]
    return F.cross_entropy(logits, torch.arange(n_videos, device=labels.device))


@register_method(
    "autossvh",
    description="AutoSSVH (CVPR 2025): masked-frame hashing with view contrast and k-means prototype contrast",
    family="deep",
    test_params={"variant": "tiny", "epochs": 2, "batch_size": 16, "warmup_epochs": 1, "n_clusters": (4, 6, 8)},
)
class AutoSSVH(DeepMethod):
    """AutoSSVH as released (defaults: the FCVID configuration)."""

    version = 2  # 2: the shared hash layer's gradient stops above +1, as the authors' in-place clamp

    param_choices = {"kmeans_backend": KMEANS_BACKENDS, "variant": tuple(VARIANTS), "sampler": SAMPLERS}
    dataset_defaults = {
        "fcvid": {},
        "activitynet": {"mask_ratio": 0.5, "tau_plus": 0.05, "contrastive_weight": 0.2, "batch_size": 128,
                        "epochs": 800, "min_lr": 1e-6, "n_clusters": (250, 400, 600), "input_dropout": 0.2},
        # a tiny model and a short schedule so a run takes about a minute on 2 CPU cores; losses, weights,
        # clustering and optimiser are the released ones (clusters scaled to the 5,000 training videos)
        "synthetic": {"variant": "tiny", "epochs": 8, "warmup_epochs": 4, "batch_size": 128,
                      "n_clusters": (25, 50, 100)},
    }

    _clusterings: list[Clustering] | None = None

    display = {"name": "AutoSSVH", "published": "2025-06", "colour": "#6A3D9A", "marker": "*"}
    param_rules = {"n_clusters": "positive", "temperature": "positive", "warmup_epochs": "positive",
                   "contrastive_weight": "non_negative", "prototype_weight": "non_negative",
                   "mask_ratio": "open_unit", "tau_plus": "unit"}
    param_resolvers = {"kmeans_backend": "resolve_kmeans_backend"}

    def __init__(self, variant: str = "small", sampler: str = "random", mask_ratio: float = 0.75,
                 epochs: int = 805, batch_size: int = 512, lr: float = 1e-4, lr_decay: float = 0.9,
                 lr_decay_every: int = 20, min_lr: float = 1e-5, temperature: float = 0.5, tau_plus: float = 0.1,
                 contrastive_weight: float = 1.0, prototype_weight: float = 0.01, warmup_epochs: int = 100,
                 n_clusters: tuple = (250, 500, 1000), kmeans_temperature: float = 0.2,
                 input_dropout: float = 0.0, kmeans_backend: str = "auto",
                 amp: bool = True) -> None:
        self.variant = variant
        self.sampler = sampler
        self.mask_ratio = mask_ratio
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.lr_decay = lr_decay
        self.lr_decay_every = lr_decay_every
        self.min_lr = min_lr
        self.temperature = temperature
        self.tau_plus = tau_plus
        self.contrastive_weight = contrastive_weight
        self.prototype_weight = prototype_weight
        self.warmup_epochs = warmup_epochs
        self.n_clusters = n_clusters
        self.kmeans_temperature = kmeans_temperature
        self.input_dropout = input_dropout
        self.kmeans_backend = kmeans_backend
        self.amp = amp

    def n_sampled_frames(self, n_frames: int) -> int:
        """Frames the adversarial sampler keeps: int(T * (1 - mask_ratio)), as released (the random views
        keep T - int(T * mask_ratio), one more where T * mask_ratio is fractional)."""
        return int(n_frames * (1 - self.mask_ratio))

    def prepare(self, train, *, bits, seed, device, cache_dir, progress):
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"autossvh: unknown sampler {self.sampler!r}; choose from {', '.join(SAMPLERS)}")
        if not self.n_clusters or any(int(k) < 1 for k in self.n_clusters):
            raise ConfigError(f"autossvh: n_clusters must be positive cluster counts, got {self.n_clusters!r}")
        resolve_kmeans_backend(self.kmeans_backend)
        self._clusterings = None

    def build_model(self, n_frames: int, feature_dim: int, bits: int) -> nn.Module:
        if self.variant not in VARIANTS:
            raise ConfigError(f"autossvh: unknown variant {self.variant!r}; choose from {', '.join(VARIANTS)}")
        kept = (self.n_sampled_frames(n_frames) if self.sampler == "adversarial"
                else n_visible_frames(n_frames, self.mask_ratio))
        check_visible_frames(kept, n_frames, self.mask_ratio, "autossvh")
        model = AutoSSVHNetwork(feature_dim, n_frames, bits, VARIANTS[self.variant], self.input_dropout)
        # the released training never calls the sampler: its weights get no gradient and stay as initialised
        model.encoder.sample_net.importance_score.requires_grad_(self.sampler == "adversarial")
        return model

    def learning_rate(self, epoch: int) -> float:
        return step_decay_lr(epoch, self.lr, self.lr_decay, self.lr_decay_every, self.min_lr)

    def on_epoch_start(self, model: nn.Module, epoch: int, train: VideoFeatures) -> None:
        if epoch >= self.warmup_epochs:
            self.refresh_clusterings(model, train)

    def refresh_clusterings(self, model: nn.Module, train: VideoFeatures) -> None:
        """Cluster the training videos' codes (eval mode, full clips, frame-mean codes without sign,
        L2-normalised) once per epoch, before its first step, as the released loop does."""
        was_training = model.training
        model.eval()
        features = np.empty((len(train), self.bits), dtype=np.float32)
        with torch.no_grad():
            for rows, frames in train.iter_batches(self.batch_size, shuffle=False):
                batch = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device).float()
                mean_codes = F.normalize(model.frame_codes(batch).float().mean(dim=1), dim=1)
                features[rows] = mean_codes.cpu().numpy()
        model.train(was_training)
        self._clusterings = cluster_codes(features, tuple(int(k) for k in self.n_clusters),
                                          self.kmeans_temperature, self.kmeans_backend, self.device)

    def training_losses(self, model, batch, epoch, generator):
        indices, batch = batch.indices, batch.features
        n_videos, n_frames, _ = batch.shape
        video = torch.arange(n_videos, device=batch.device).repeat(2)
        if self.sampler == "adversarial":
            reconstruction, codes, _, masked = model.forward_sampled(
                batch[video], self.n_sampled_frames(n_frames), generator)
        else:
            visible, masked = sample_views(n_videos, n_frames, self.mask_ratio, generator, batch.device)
            reconstruction, codes = model(batch[video[:, None], visible], visible, masked)
        # the released loss sums one MSE per view; both views hide equally many frames, so that sum is twice
        # the MSE over both; the targets are the frames before input dropout
        reconstruction_loss = 2 * F.mse_loss(reconstruction.float(), batch[video[:, None], masked])
        mean_codes = codes.float().mean(dim=1)
        contrastive = debiased_contrastive_loss(mean_codes[:n_videos], mean_codes[n_videos:],
                                                temperature=self.temperature, tau_plus=self.tau_plus)
        prototype = torch.zeros((), device=batch.device)
        if epoch >= self.warmup_epochs:
            assert self._clusterings is not None
            for view in (mean_codes[:n_videos], mean_codes[n_videos:]):
                for c in self._clusterings:
                    prototype = prototype + prototype_loss(view, c.labels[indices], c.centroids, c.temperatures,
                                                           generator)
            prototype = prototype / (2 * len(self._clusterings))
        loss = reconstruction_loss + self.contrastive_weight * contrastive + self.prototype_weight * prototype
        return {"loss": loss, "reconstruction": reconstruction_loss, "contrastive": contrastive,
                "prototype": prototype}

    def encode_batch(self, model, batch):
        # the protocol's codes: every frame's code averaged over frames, then sign (an exact 0 stays 0)
        return torch.sign(model.frame_codes(batch).float().mean(dim=1))
