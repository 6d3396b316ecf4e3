"""ConMH: contrastive masked autoencoders for self-supervised video hashing (Wang et al., AAAI 2023).

An encoder sees only the visible frames of a video (in temporal order) and turns each into a ±1 code; a
small decoder reconstructs the masked frames from those codes. Each video gives two views from one random
frame permutation (view 1 sees its first ``n_visible`` frames, view 2 its last ``n_visible``), and a
debiased contrastive loss pulls the two views' mean codes together. Parameter names follow the reference
code, so its released checkpoints load unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ssvh_bench import ConfigError, DeepMethod, register_method, step_decay_lr
from ssvh_bench.nn import LAYER_NORM_EPS, TransformerBlock, debiased_contrastive_loss, hash_binarize, sinusoid_table

ENCODER_OUTPUT_DIM = 256  # width of the encoder's head, the input of the hash layer


@dataclass(frozen=True)
class Architecture:
    encoder_dim: int
    encoder_depth: int
    encoder_heads: int
    decoder_dim: int = 192
    decoder_depth: int = 2
    decoder_heads: int = 3


VARIANTS = {
    "small": Architecture(256, 12, 6),
    "base": Architecture(256, 12, 12),
    "large": Architecture(256, 24, 16),
    "mini": Architecture(256, 1, 1),
    "test": Architecture(32, 1, 2, decoder_dim=16, decoder_depth=1, decoder_heads=2),  # for unit tests only
}


def xavier_init(module: nn.Module) -> None:
    """Xavier-uniform linears with zero biases (the reference's encoder/decoder initialisation)."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class Encoder(nn.Module):
    def __init__(self, feature_dim: int, n_frames: int, dim: int, depth: int, heads: int) -> None:
        super().__init__()
        self.patch_embed = nn.Linear(feature_dim, dim)
        self.register_buffer("position", sinusoid_table(n_frames, dim), persistent=False)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, head_dim=dim // heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.head = nn.Linear(dim, ENCODER_OUTPUT_DIM)
        self.apply(xavier_init)

    def forward(self, frames: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
        """frames [N, n, F] at frame ``positions`` [N, n] (None: all frames 0..n-1) -> [N, n, 256]."""
        position = self.position[: frames.shape[1]] if positions is None else self.position[positions]
        x = self.patch_embed(frames) + position
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


class Decoder(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, feature_dim: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.head = nn.Linear(dim, feature_dim)
        self.apply(xavier_init)

    def forward(self, tokens: torch.Tensor, n_predicted: int) -> torch.Tensor:
        """Features predicted for the last ``n_predicted`` tokens."""
        for block in self.blocks:
            tokens = block(tokens)
        return self.head(self.norm(tokens[:, -n_predicted:]))


class ConMHNetwork(nn.Module):
    def __init__(self, feature_dim: int, n_frames: int, bits: int, architecture: Architecture) -> None:
        super().__init__()
        a = architecture
        self.mask_token = nn.Parameter(torch.zeros(1, 1, a.decoder_dim))
        self.encoder = Encoder(feature_dim, n_frames, a.encoder_dim, a.encoder_depth, a.encoder_heads)
        self.decoder = Decoder(a.decoder_dim, a.decoder_depth, a.decoder_heads, feature_dim)
        self.encoder_to_decoder = nn.Linear(bits, a.decoder_dim, bias=False)
        self.binary = nn.Linear(ENCODER_OUTPUT_DIM, bits)
        self.ln = nn.LayerNorm(bits)
        self.register_buffer("decoder_position", sinusoid_table(n_frames, a.decoder_dim), persistent=False)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def frame_codes(self, frames: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """±1 code per frame, [N, n, bits]."""
        return hash_binarize(self.ln(self.binary(self.encoder(frames, positions))))

    def forward(self, visible_frames: torch.Tensor, visible: torch.Tensor,
                masked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruct the frames at positions ``masked`` [N, m] from those at ``visible`` [N, v].

        Returns the reconstruction [N, m, F] and the visible frames' codes [N, v, bits].
        """
        codes = self.frame_codes(visible_frames, visible)
        visible_tokens = self.encoder_to_decoder(codes) + self.decoder_position[visible]
        mask_tokens = self.mask_token + self.decoder_position[masked]
        tokens = torch.cat((visible_tokens, mask_tokens.to(visible_tokens.dtype)), dim=1)
        return self.decoder(tokens, masked.shape[1]), codes


def n_visible_frames(n_frames: int, mask_ratio: float) -> int:
    return n_frames - int(mask_ratio * n_frames)


def sample_views(n_videos: int, n_frames: int, mask_ratio: float, generator: torch.Generator,
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Visible and masked frame positions of two views per video, built for the whole batch at once.

    Rows 0..B-1 are view 1 (the first ``n_visible`` frames of a random permutation), rows B..2B-1 view 2
    (its last ``n_visible``); positions within a row are in temporal order. Returns ([2B, v], [2B, T - v]).
    """
    n_visible = n_visible_frames(n_frames, mask_ratio)
    order = torch.rand(n_videos, n_frames, generator=generator, device=device).argsort(dim=1)
    visible = torch.cat((order[:, :n_visible], order[:, n_frames - n_visible:]))
    masked = torch.cat((order[:, n_visible:], order[:, : n_frames - n_visible]))
    return visible.sort(dim=1).values, masked.sort(dim=1).values


@register_method(
    "conmh",
    description="ConMH (AAAI 2023): masked-frame reconstruction from codes + debiased contrast of two views",
    family="deep",
    test_params={"variant": "test", "epochs": 1, "batch_size": 8},
)
class ConMH(DeepMethod):
    """ConMH with the reference's architecture, views, loss and schedule (defaults: FCVID settings)."""

    dataset_defaults = {
        "fcvid": {"epochs": 800, "batch_size": 512},
        "activitynet": {"mask_ratio": 0.5, "tau_plus": 0.05, "contrastive_weight": 0.2, "batch_size": 128,
                        "epochs": 500},
        "yfcc": {"epochs": 40},
        # runtime only (about 90 s on one CPU core); every loss and optimiser setting stays the paper's
        "synthetic": {"variant": "mini", "epochs": 8, "batch_size": 64},
    }

    def __init__(self, variant: str = "small", mask_ratio: float = 0.75, epochs: int = 800, batch_size: int = 512,
                 lr: float = 1e-4, lr_decay: float = 0.9, lr_decay_every: int = 20, min_lr: float = 1e-5,
                 temperature: float = 0.5, tau_plus: float = 0.1, contrastive_weight: float = 1.0,
                 checkpoint_every: int = 10, amp: bool = True) -> None:
        self.variant = variant
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
        self.checkpoint_every = checkpoint_every
        self.amp = amp

    def build_model(self, n_frames: int, feature_dim: int, bits: int) -> nn.Module:
        if self.variant not in VARIANTS:
            raise ConfigError(f"conmh: unknown variant {self.variant!r}; choose from {', '.join(VARIANTS)}")
        n_visible = n_visible_frames(n_frames, self.mask_ratio)
        if not 1 <= n_visible < n_frames:
            raise ConfigError(f"conmh: mask_ratio {self.mask_ratio} leaves {n_visible} of {n_frames} frames "
                              "visible; it must mask at least one frame and keep at least one")
        return ConMHNetwork(feature_dim, n_frames, bits, VARIANTS[self.variant])

    def learning_rate(self, epoch: int) -> float:
        return step_decay_lr(epoch, self.lr, self.lr_decay, self.lr_decay_every, self.min_lr)

    def training_losses(self, model, batch, indices, epoch, generator):
        n_videos, n_frames, _ = batch.shape
        visible, masked = sample_views(n_videos, n_frames, self.mask_ratio, generator, batch.device)
        video = torch.arange(n_videos, device=batch.device).repeat(2)[:, None]
        reconstruction, codes = model(batch[video, visible], visible, masked)
        # the reference sums one MSE per view; both views mask equally many frames, so that sum is twice
        # the MSE over both (computed without slicing, whose backward would zero-fill the full tensor)
        reconstruction_loss = 2 * F.mse_loss(reconstruction.float(), batch[video, masked])
        mean_codes = codes.float().mean(dim=1)
        contrastive = debiased_contrastive_loss(mean_codes[:n_videos], mean_codes[n_videos:],
                                                temperature=self.temperature, tau_plus=self.tau_plus)
        return {"loss": reconstruction_loss + self.contrastive_weight * contrastive,
                "reconstruction": reconstruction_loss, "contrastive": contrastive}

    def encode_batch(self, model, batch):
        # the protocol's codes: per-frame codes averaged over frames, then sign (an exact 0 stays 0)
        return torch.sign(model.frame_codes(batch).float().mean(dim=1))
