"""MCMSH: unsupervised video hashing with multi-granularity contextualisation and multi-structure preservation
(Hao et al., ACM MM 2022). A two-stage method.

Stage 1 (``prepare``, cached per training set and stage-1 setting, shared by every code length): k-means
(2000 anchors) on frame-mean features; each video's nearest anchors (the first is its pseudo-label) and
BTH's anchor-graph pair tags (similar / dissimilar), both on the raw features against the raw centres; then
a PCA of the centres alone to the model's hidden width (256), the targets of the cluster term.

Stage 2, our reading of the paper and its public code:

- ``Linear(F -> 256)`` + ReLU per frame, then one MLP-Mixer layer whose token- and channel-mixing MLPs
  (expansion 2, GELU, dropout 0.5) are each followed by three *context gates* whose outputs are summed,
  plus a residual; a last set of three gates (no residual) gives the per-frame hidden states ``e``.
- A context gate acts on ``x [B, M, P]``: a 1x1 mixing of the context axis M, then a sigmoid weight for every
  entry computed from context of one *range* along M, then another 1x1 mixing of M. Long range: the mean over
  all of M, squeeze-and-excitation over P (the reference's LRD). Middle range: M average-pooled to M // 3
  bins, two k=3 convolutions over the bins, stretched back to M (MRD). Short range: two k=3 convolutions
  over M itself (SRD), so the weight at position t sees positions t-2..t+2 only. Each gate narrows P by a
  reduction ratio (4 in the token mixer, 16 elsewhere, grouped convolutions in the channel-side gates) with
  BatchNorm after each step. In the channel mixer and the last gates M is the frame axis, so the ranges are
  temporal: short, middle and long temporal context decides how much of every channel passes at a frame. In
  the token mixer the axes are swapped (frames are gated, from channel context).
- Hash ``Linear(256 -> bits)`` per frame, ``h = mean over frames of tanh(alpha * y)`` with
  ``alpha = sqrt(epoch + 1)`` while training; codes are ``sign(h)`` (an exact 0 stays 0). Like the reference
  evaluation, encoding uses ``alpha = 1``.

Losses, weights ``0.8 cluster + 0.1 pairwise + 0.01 quantization + 0.01 quadruplet``: every step draws for
each video a partner (with probability 1/2 a tagged-similar video, target +1, else a dissimilar one,
target -1), a similar positive and two dissimilar negatives (the second redrawn once when the two negatives
are tagged similar). The video and its partner are seen through BERT-style frame masking (15% of frames:
80% zeroed, 10% replaced by a random frame, 10% kept); positive and negatives are seen whole.

- cluster: the frame-mean hidden state regresses the (PCA-reduced) centre of its video's pseudo-label, for
  the video and its partner: ``sum ||mean_t e - centre||^2 / (256 * B)`` (no learnable projection).
- pairwise: ``mean (target - h1 . h2 / bits)^2`` over video/partner pairs.
- quantization: ``sum ||h - sign(h)||^2 / (B * bits)`` over the video and its partner. The authors' sign
  passes the gradient straight through, so the term has zero gradient: ``quantization="released"`` (the
  default) reproduces that, ``"paper"`` stops the gradient at the target so the term pulls ``h`` to +-1.
- quadruplet: ``mean relu(bits/4 + d(a, p) - d(a, n1)) + relu(bits/64 + d(a, p) - d(n1, n2))`` with d the
  squared Euclidean distance of continuous codes (4x the Hamming distance for binary ones).

Like the authors' code, each step runs five forward passes (video, partner, positive, two negatives), so
BatchNorm normalises each view by its own batch statistics. The authors mask frames in place in their loader's
copy of the training set, which lasts an epoch: a video met again in the epoch (masked, or as a positive or
negative) carries the earlier masks, and a replacement frame comes from anywhere in that copy.
``masking="in_place"`` (the default) reproduces that; ``"fresh"`` masks a fresh copy of each batch, replacing
from the batch (version 4).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ssvh_bench import (PAIR_SAMPLING, ArtefactCache, Batch, ConfigError, DeepMethod, PseudoNeighbourhood, Related,
                        build_anchor_neighbourhood, register_method, resolve_kmeans_backend)
from ssvh_bench.nn import (MASKINGS, InPlaceMasks, Mlp, anchor_loss, bert_mask, pairwise_similarity_loss,
                           quantization_loss)

RANGES = ("long", "middle", "short")
MIDDLE_POOL = 3  # the middle range pools the context axis into bins of about this many positions
TOKEN_REDUCTION = 4  # the reference's r_min (gates in the token mixer)
CHANNEL_REDUCTION = 16  # the reference's r_max (gates in the channel mixer and after it)
MLP_EXPANSION = 2
MASK_PROBABILITY = 0.15  # BERT-style: of the chosen frames 80% are zeroed, 10% replaced, 10% kept
RELATED_ORDER = ("partner", "positive", "negative1", "negative2")  # a batch's related videos, block by block
LOSS_WEIGHTS = {"cluster": 0.8, "pairwise": 0.1, "quantization": 0.01, "quadruplet": 0.01}
QUANTIZATION = ("released", "paper")  # the authors' zero-gradient term, or the paper's active one


class ContextGate(nn.Module):
    """Gate every entry of ``x [B, M, P]`` by a sigmoid weight computed from context of one range along M.

    ``context`` is M (mixed by 1x1 convolutions before and after), ``gated`` is P (narrowed by ``reduction``
    inside the gate). ``grouped`` uses grouped convolutions for the middle and short ranges.
    """

    def __init__(self, context: int, gated: int, reduction: int, range_: str, *, grouped: bool) -> None:
        super().__init__()
        if range_ not in RANGES:
            raise ValueError(f"range must be one of {RANGES}, got {range_!r}")
        self.range = range_
        self.context = context
        narrow = max(1, gated // reduction)
        self.mix_in = nn.Linear(context, context)
        if range_ == "long":
            self.squeeze = nn.Linear(gated, narrow, bias=False)
            self.excite = nn.Linear(narrow, gated, bias=False)
            nn.init.normal_(self.squeeze.weight, 0, 0.001)
            nn.init.normal_(self.excite.weight, 0, 0.001)
        else:
            groups = math.gcd(gated, narrow) if grouped else 1
            self.squeeze = nn.Conv1d(gated, narrow, kernel_size=3, padding=1, groups=groups, bias=False)
            self.excite = nn.Conv1d(narrow, gated, kernel_size=3, padding=1, groups=groups, bias=False)
            nn.init.kaiming_normal_(self.squeeze.weight, mode="fan_out", nonlinearity="relu")
            nn.init.xavier_normal_(self.excite.weight)
        self.squeeze_norm = nn.BatchNorm1d(narrow)
        self.excite_norm = nn.BatchNorm1d(gated)
        self.mix_out = nn.Linear(context, context)

    def weights(self, z: torch.Tensor) -> torch.Tensor:
        """Sigmoid weights for ``z [B, P, M]`` (already mixed): [B, P, 1] for the long range, else [B, P, M]."""
        if self.range == "long":
            summary = z.mean(dim=2)
        elif self.range == "middle":
            summary = F.adaptive_avg_pool1d(z, max(1, self.context // MIDDLE_POOL))
        else:
            summary = z
        squeezed = F.relu(self.squeeze_norm(self.squeeze(summary)))
        weights = torch.sigmoid(self.excite_norm(self.excite(squeezed)))
        if self.range == "long":
            return weights[:, :, None]
        if self.range == "middle":
            return F.adaptive_avg_pool1d(weights, self.context)
        return weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.mix_in(x.transpose(1, 2))  # [B, P, M]: a linear map of the context axis (a 1x1 convolution)
        return self.mix_out(z * self.weights(z)).transpose(1, 2)


class MultiRangeGates(nn.Module):
    """The sum of a long-, a middle- and a short-range ``ContextGate`` on the same input."""

    def __init__(self, context: int, gated: int, reduction: int, *, grouped: bool) -> None:
        super().__init__()
        self.gates = nn.ModuleDict(
            {range_: ContextGate(context, gated, reduction, range_, grouped=grouped) for range_ in RANGES})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(gate(x) for gate in self.gates.values())


class MixerEncoder(nn.Module):
    """Frames [B, T, F] -> hidden states [B, T, H]: embedding, token mixing, channel mixing, last gates."""

    def __init__(self, feature_dim: int, n_frames: int, hidden_dim: int, dropout: float) -> None:
        super().__init__()
        self.embed = nn.Linear(feature_dim, hidden_dim)
        self.token_mlp = Mlp(n_frames, n_frames * MLP_EXPANSION, dropout)
        self.token_gates = MultiRangeGates(hidden_dim, n_frames, TOKEN_REDUCTION, grouped=False)
        self.channel_mlp = Mlp(hidden_dim, hidden_dim * MLP_EXPANSION, dropout)
        self.channel_gates = MultiRangeGates(n_frames, hidden_dim, CHANNEL_REDUCTION, grouped=True)
        self.output_gates = MultiRangeGates(n_frames, hidden_dim, CHANNEL_REDUCTION, grouped=True)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.embed(frames))
        x = x + self.token_gates(self.token_mlp(x.transpose(1, 2))).transpose(1, 2)
        x = x + self.channel_gates(self.channel_mlp(x))
        return self.output_gates(x)


class MCMSHNetwork(nn.Module):
    def __init__(self, feature_dim: int, n_frames: int, bits: int, hidden_dim: int, dropout: float) -> None:
        super().__init__()
        self.encoder = MixerEncoder(feature_dim, n_frames, hidden_dim, dropout)
        self.hash = nn.Linear(hidden_dim, bits)

    def forward(self, frames: torch.Tensor, alpha: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Continuous codes ``mean_t tanh(alpha * y)`` [B, bits] and hidden states [B, T, H]."""
        hidden = self.encoder(frames)
        return torch.tanh(alpha * self.hash(hidden)).mean(dim=1), hidden


# ---- the loss only MCMSH has (a mean over the batch, as in the reference) ------------------------------------
def quadruplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative1: torch.Tensor,
                    negative2: torch.Tensor) -> torch.Tensor:
    """``mean relu(bits/4 + d(a,p) - d(a,n1)) + relu(bits/64 + d(a,p) - d(n1,n2))``, d squared Euclidean."""
    bits = anchor.shape[1]
    positive_distance = ((anchor - positive) ** 2).sum(dim=1)
    negative_distance = ((anchor - negative1) ** 2).sum(dim=1)
    negatives_distance = ((negative1 - negative2) ** 2).sum(dim=1)
    return (F.relu(bits / 4 + positive_distance - negative_distance)
            + F.relu(bits / 64 + positive_distance - negatives_distance)).mean()


@register_method(
    "mcmsh",
    description="MCMSH (ACM MM 2022): gated MLP-Mixer over frames, anchor-graph pseudo-neighbourhood losses",
    family="two_stage",
    test_params={"hidden_dim": 16, "n_anchors": 20, "epochs": 1, "batch_size": 8},
)
class MCMSH(DeepMethod):
    """MCMSH with the reference's architecture, stage 1, pair sampling, losses and schedule."""

    # 2: partners and masks drawn through the shared blocks (other random streams); 3: the authors' code by
    # default (pseudo-labels and anchor graph on raw features, five forward passes, zero-gradient
    # quantization, pair sampling); 4: the last partial batch is trained on, as the authors' loader does; 5: masks
    # in place, lasting an epoch, as the authors' loader does (``masking="fresh"`` gives version 4's codes)
    version = 5
    drop_last = False

    family = "two_stage"
    stage1_kind = "mcmsh-stage1"

    # The paper's settings are the defaults on the real datasets. synthetic (2,000 videos) must finish in
    # minutes on 2 CPU cores, where the 256-wide model takes ~10 s per step: a 64-wide model (PCA to 64-d),
    # 8 epochs at lr 1e-3, and 120 anchors (about 17 training videos per anchor; FCVID has 23).
    dataset_defaults = {
        "fcvid": {},
        "activitynet": {},
        "yfcc": {},
        "synthetic": {"hidden_dim": 64, "n_anchors": 120, "epochs": 8, "lr": 1e-3},
    }

    display = {"name": "MCMSH", "published": "2022-10", "colour": "#0072B2", "marker": "P"}
    param_rules = {"hidden_dim": "positive", "n_anchors": "positive", "n_nearest": "positive", "dropout": "unit"}
    param_choices = {"quantization": QUANTIZATION, "pair_sampling": PAIR_SAMPLING, "masking": MASKINGS}
    _masks: InPlaceMasks | None = None  # the loader's copy of the training set (``masking="in_place"``)

    def __init__(self, hidden_dim: int = 256, n_anchors: int = 2000, n_nearest: int = 3, dropout: float = 0.5,
                 epochs: int = 56, batch_size: int = 256, lr: float = 3e-4, lr_decay: float = 0.9,
                 lr_decay_every: int = 20, min_lr: float = 1e-4,
                 amp: bool = True, quantization: str = "released", pair_sampling: str = "released",
                 masking: str = "in_place") -> None:
        self.store_params(locals())

    # ---- stage 1 -----------------------------------------------------------------------------------------
    def stage1_settings(self, seed: int) -> dict:
        """Everything stage 1 depends on besides the training data (never the code length)."""
        return {"n_anchors": self.n_anchors, "n_nearest": self.n_nearest, "pca_dim": self.hidden_dim,
                "pca_of": "centres", "seed": seed, "kmeans_backend": resolve_kmeans_backend("auto")}

    def prepare(self, train, *, bits, seed, device, cache_dir, progress):
        if self.hidden_dim < 1 or self.n_nearest < 1:
            raise ConfigError(f"mcmsh: hidden_dim and n_nearest must be >= 1, got {self.hidden_dim} and "
                              f"{self.n_nearest}")
        if self.quantization not in QUANTIZATION:
            raise ConfigError(f"mcmsh: quantization must be one of {QUANTIZATION}, got {self.quantization!r}")
        if self.pair_sampling not in PAIR_SAMPLING:
            raise ConfigError(f"mcmsh: pair_sampling must be one of {PAIR_SAMPLING}, got {self.pair_sampling!r}")
        if self.masking not in MASKINGS:
            raise ConfigError(f"mcmsh: masking must be one of {MASKINGS}, got {self.masking!r}")
        if self.n_anchors < self.hidden_dim:
            raise ConfigError(f"mcmsh: the PCA of the anchors to hidden_dim={self.hidden_dim} dimensions needs "
                              f"n_anchors >= hidden_dim, got n_anchors={self.n_anchors}")
        settings = self.stage1_settings(seed)
        cache = ArtefactCache(cache_dir)
        self.neighbourhood = cache.get_or_build(
            self.stage1_kind, {"train": train.fingerprint(), **settings},
            lambda: build_anchor_neighbourhood(
                train.pooled(), n_anchors=self.n_anchors, n_nearest=self.n_nearest, seed=seed,
                pca_dim=self.hidden_dim, kmeans_backend=settings["kmeans_backend"], progress=progress),
            save=PseudoNeighbourhood.save, load=PseudoNeighbourhood.load)
        self.label_centres = torch.from_numpy(
            self.neighbourhood.centres[self.neighbourhood.pseudo_labels]).to(device)

    # ---- stage 2 -----------------------------------------------------------------------------------------
    def build_model(self, n_frames: int, feature_dim: int, bits: int) -> nn.Module:
        return MCMSHNetwork(feature_dim, n_frames, bits, self.hidden_dim, self.dropout)

    def sample_relations(self, rows: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Per video: a partner with its target (+1 similar / -1 dissimilar), a positive and two negatives."""
        neighbourhood, sampling = self.neighbourhood, self.pair_sampling
        partner, target = neighbourhood.sample_partners(rows, rng, pair_sampling=sampling)
        positive = neighbourhood.sample_similar(rows, rng, sampling)
        negative1 = neighbourhood.sample_dissimilar(rows, rng, sampling)
        negative2 = neighbourhood.sample_dissimilar(rows, rng, sampling)
        tagged = np.asarray(neighbourhood.similar[negative1, negative2]).ravel().astype(bool)
        if tagged.any():  # the reference redraws once when the two negatives are tagged similar
            negative2[tagged] = neighbourhood.sample_dissimilar(rows[tagged], rng, sampling)
        return {"partner": partner, "target": target, "positive": positive, "negative1": negative1,
                "negative2": negative2}

    def related_indices(self, indices, epoch, generator):
        seed = int(torch.randint(2**62, (1,), generator=generator))
        relations = self.sample_relations(indices, np.random.default_rng(seed))
        # read as one block: partners, positives, first negatives, second negatives
        return Related(np.concatenate([relations[name] for name in RELATED_ORDER]), {"target": relations["target"]})

    def on_epoch_start(self, model, epoch, train):
        # the authors' loader masks a copy of the training set held by a worker forked afresh each epoch
        if self.masking == "in_place":
            self._masks = InPlaceMasks(len(train), train.n_frames, MASK_PROBABILITY, train.read)

    def views(self, batch: Batch, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """The masked videos, their masked partners, the positives and both negatives, [B, T, F] each."""
        n_videos = len(batch.indices)
        if self.masking == "fresh":
            partner_frames = batch.related[:n_videos]
            return (bert_mask(batch.features, MASK_PROBABILITY, generator)[0],
                    bert_mask(partner_frames, MASK_PROBABILITY, generator)[0], *batch.related[n_videos:].split(n_videos))
        assert self._masks is not None
        # per video, as the loader's item: mask the video, then its partner; then read all five as they stand
        frames = self._masks.masked_frames(torch.cat((batch.indices, batch.related_indices)),
                                           torch.cat((batch.features, batch.related)), 1 + len(RELATED_ORDER),
                                           generator, n_masked=2)
        return frames.split(n_videos)

    def training_losses(self, model, batch, epoch, generator):
        n_videos = len(batch.indices)
        views = self.views(batch, generator)
        # one pass per view, as the authors: BatchNorm normalises each view by its own batch statistics
        outputs = [model(frames, alpha=math.sqrt(epoch + 1)) for frames in views]
        video, partner, positive, negative1, negative2 = (codes.float() for codes, _ in outputs)
        video_hidden, partner_hidden = (hidden.float().mean(dim=1) for _, hidden in outputs[:2])
        partner_rows = batch.related_indices[:n_videos]
        straight_through = self.quantization == "released"
        losses = {
            "cluster": anchor_loss(video_hidden, self.label_centres[batch.indices])
            + anchor_loss(partner_hidden, self.label_centres[partner_rows]),
            "pairwise": pairwise_similarity_loss(video, partner, batch.extras["target"].float()),
            "quantization": quantization_loss(video, straight_through=straight_through)
            + quantization_loss(partner, straight_through=straight_through),
            "quadruplet": quadruplet_loss(video, positive, negative1, negative2),
        }
        return {"loss": sum(LOSS_WEIGHTS[name] * value for name, value in losses.items()), **losses}

    def encode_batch(self, model, features):
        # the reference evaluates a fresh model, whose alpha is 1; an exact 0 stays 0
        return torch.sign(model(features)[0].float())
