"""ConMH: contrastive masked autoencoders for self-supervised video hashing (Wang et al., AAAI 2023).

An encoder sees only the visible frames of a video (in temporal order) and turns each into a ±1 code; a
small decoder reconstructs the masked frames from those codes. Each video gives two views from one random
frame permutation (view 1 sees its first ``n_visible`` frames, view 2 its last ``n_visible``), and a
debiased contrastive loss pulls the two views' mean codes together. Parameter names follow the reference
code, so its released checkpoints load unchanged.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from ssvh_bench import ConfigError, DeepMethod, register_method
from ssvh_bench.nn import (MASKED_AUTOENCODER_VARIANTS, FrameEncoder, MaskedAutoencoderShape, MaskedDecoder,
                           check_visible_frames, debiased_contrastive_loss, hash_binarize, n_visible_frames,
                           sinusoid_table, transformer_blocks, two_view_reconstruction)

ENCODER_OUTPUT_DIM = 256  # width of the encoder's head, the input of the hash layer


Architecture = MaskedAutoencoderShape
VARIANTS = MASKED_AUTOENCODER_VARIANTS


class ConMHNetwork(nn.Module):
    def __init__(self, feature_dim: int, n_frames: int, bits: int, architecture: Architecture) -> None:
        super().__init__()
        a = architecture
        self.mask_token = nn.Parameter(torch.zeros(1, 1, a.decoder_dim))
        self.encoder = FrameEncoder(feature_dim, n_frames, transformer_blocks(a.encoder_dim, a.encoder_depth, a.encoder_heads,
                                    head_dim=a.encoder_dim // a.encoder_heads), a.encoder_dim, ENCODER_OUTPUT_DIM)
        self.decoder = MaskedDecoder(transformer_blocks(a.decoder_dim, a.decoder_depth, a.decoder_heads), a.decoder_dim,
                                     feature_dim)
        self.encoder_to_decoder = nn.Linear(bits, a.decoder_dim, bias=False)
        self.binary = nn.Linear(ENCODER_OUTPUT_DIM, bits)
        self.ln = nn.LayerNorm(bits)
        self.register_buffer("decoder_position", sinusoid_table(n_frames, a.decoder_dim), persistent=False)
        # the reference's trunc_normal_ cuts at one sd (+-0.02), not at torch's default +-2
        nn.init.trunc_normal_(self.mask_token, std=0.02, a=-0.02, b=0.02)

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


@register_method(
    "conmh",
    description="ConMH (AAAI 2023): masked-frame reconstruction from codes + debiased contrast of two views",
    family="deep",
    test_params={"variant": "mini", "encoder_dim": 32, "encoder_heads": 2, "decoder_dim": 16, "decoder_depth": 1,
                 "decoder_heads": 2, "epochs": 1, "batch_size": 8},
)
class ConMH(DeepMethod):
    """ConMH with the reference's architecture, views, loss and schedule (defaults: FCVID settings)."""

    # 2: the hash layer's gradient stops above +1, as the authors' in-place clamp; 3: the last partial
    # batch of an epoch is trained on, as the authors' loader does; 4: the mask token starts from a normal
    # truncated at +-0.02 (one sd), as the authors' trunc_normal_
    version = 4
    drop_last = False

    param_choices = {"variant": tuple(VARIANTS)}
    dataset_defaults = {
        "fcvid": {"epochs": 800, "batch_size": 512},
        "activitynet": {"mask_ratio": 0.5, "tau_plus": 0.05, "contrastive_weight": 0.2, "batch_size": 128,
                        "epochs": 500},
        "yfcc": {"epochs": 40},
        # runtime only (about 90 s on one CPU core); every loss and optimiser setting stays the paper's
        "synthetic": {"variant": "mini", "epochs": 8, "batch_size": 64},
    }

    display = {"name": "ConMH", "published": "2023-02", "colour": "#D55E00", "marker": "o"}
    param_rules = {"temperature": "positive", "contrastive_weight": "non_negative", "mask_ratio": "open_unit",
                   "tau_plus": "unit"}

    def __init__(self, variant: str = "small", mask_ratio: float = 0.75, epochs: int = 800, batch_size: int = 512,
                 lr: float = 1e-4, lr_decay: float = 0.9, lr_decay_every: int = 20, min_lr: float = 1e-5,
                 temperature: float = 0.5, tau_plus: float = 0.1, contrastive_weight: float = 1.0,
                 amp: bool = True, encoder_dim: int | None = None,
                 encoder_depth: int | None = None, encoder_heads: int | None = None, decoder_dim: int | None = None,
                 decoder_depth: int | None = None, decoder_heads: int | None = None) -> None:
        self.store_params(locals())

    @property
    def architecture(self) -> Architecture:
        """The variant's architecture with every size given explicitly (not None) in its place."""
        if self.variant not in VARIANTS:
            raise ConfigError(f"conmh: unknown variant {self.variant!r}; choose from {', '.join(VARIANTS)}")
        sizes = {name: getattr(self, name) for name in vars(VARIANTS[self.variant]) if getattr(self, name) is not None}
        return replace(VARIANTS[self.variant], **sizes)

    def build_model(self, n_frames: int, feature_dim: int, bits: int) -> nn.Module:
        architecture = self.architecture
        check_visible_frames(n_visible_frames(n_frames, self.mask_ratio), n_frames, self.mask_ratio, "conmh")
        return ConMHNetwork(feature_dim, n_frames, bits, architecture)

    def training_losses(self, model, batch, epoch, generator):
        n_videos = len(batch.features)
        reconstruction_loss, mean_codes = two_view_reconstruction(model, batch.features, self.mask_ratio, generator)
        contrastive = debiased_contrastive_loss(mean_codes[:n_videos], mean_codes[n_videos:],
                                                temperature=self.temperature, tau_plus=self.tau_plus)
        return {"loss": reconstruction_loss + self.contrastive_weight * contrastive,
                "reconstruction": reconstruction_loss, "contrastive": contrastive}

    def encode_batch(self, model, features):
        # the protocol's codes: per-frame codes averaged over frames, then sign (an exact 0 stays 0)
        return torch.sign(model.frame_codes(features).float().mean(dim=1))
