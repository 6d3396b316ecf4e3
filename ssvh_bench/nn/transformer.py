"""Pre-LayerNorm transformer block with the parameter names of the MAE-family reference code.

Names (``norm1``, ``attn.qkv.weight``, ``attn.q_bias``, ``attn.v_bias``, ``attn.proj``, ``norm2``,
``mlp.fc1``, ``mlp.fc2``) match released ConMH/VideoMAE checkpoints so their weights load unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .positional import sinusoid_table

LAYER_NORM_EPS = 1e-6


class Attention(nn.Module):
    """Multi-head self-attention; the inner width ``heads * head_dim`` may differ from ``dim``.

    The query and value projections carry a bias, the key projection none (its bias is fixed at zero,
    which changes nothing in softmax attention).
    """

    def __init__(self, dim: int, heads: int, head_dim: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = head_dim or dim // heads
        inner = heads * self.head_dim
        self.qkv = nn.Linear(dim, 3 * inner, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(inner))
        self.v_bias = nn.Parameter(torch.zeros(inner))
        self.proj = nn.Linear(inner, dim)
        self.dropout = dropout
        self.proj_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        bias = torch.cat((self.q_bias, torch.zeros_like(self.q_bias), self.v_bias))
        qkv = F.linear(x, self.qkv.weight, bias).reshape(batch, tokens, 3, self.heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [batch, heads, tokens, head_dim]
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        out = out.transpose(1, 2).reshape(batch, tokens, self.heads * self.head_dim)
        return self.proj_dropout(self.proj(out))


class Mlp(nn.Module):
    """``fc2(dropout(gelu(fc1(x))))`` then dropout, over the last axis (``dim -> hidden -> dim``).

    ``gelu`` is ``"none"`` (exact) or ``"tanh"`` (the tanh approximation, as in BERT-pytorch and BTH)."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0, gelu: str = "none") -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU(approximate=gelu)
        self.fc2 = nn.Linear(hidden, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc2(self.dropout(self.act(self.fc1(x)))))


class StdLayerNorm(nn.Module):
    """``weight * (x - mean) / (std + eps) + bias`` over the last axis, with the unbiased std and eps added
    to the std (the Annotated-Transformer LayerNorm of BERT-pytorch, on which BTH builds); ``nn.LayerNorm``
    uses the biased variance with eps inside the square root."""

    def __init__(self, dim: int, eps: float = LAYER_NORM_EPS) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(-1, keepdim=True)
        return self.weight * (x - mean) / (x.std(-1, keepdim=True) + self.eps) + self.bias


NORMS = {"layer": nn.LayerNorm, "std": StdLayerNorm}


class TransformerBlock(nn.Module):
    """``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``, then ``output_dropout``; LayerNorm eps 1e-6,
    GELU, no dropout by default.

    ``norm`` picks ``nn.LayerNorm`` (``"layer"``) or ``StdLayerNorm`` (``"std"``), ``gelu`` the exact
    (``"none"``) or tanh-approximated (``"tanh"``) GELU; BTH's blocks are ``norm="std", gelu="tanh"`` with an
    output dropout equal to ``dropout``.
    """

    def __init__(self, dim: int, heads: int, *, head_dim: int | None = None, mlp_ratio: float = 4.0,
                 dropout: float = 0.0, norm: str = "layer", gelu: str = "none", output_dropout: float = 0.0) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {sorted(NORMS)}, got {norm!r}")
        self.norm1 = NORMS[norm](dim, eps=LAYER_NORM_EPS)
        self.attn = Attention(dim, heads, head_dim, dropout)
        self.norm2 = NORMS[norm](dim, eps=LAYER_NORM_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dropout, gelu)
        self.output_dropout = nn.Dropout(output_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return self.output_dropout(x + self.mlp(self.norm2(x)))


@dataclass(frozen=True)
class MaskedAutoencoderShape:
    """Widths, depths and heads of a ConMH-style masked autoencoder's encoder and decoder."""

    encoder_dim: int
    encoder_depth: int
    encoder_heads: int
    decoder_dim: int = 192
    decoder_depth: int = 2
    decoder_heads: int = 3


# ConMH's released variants (AutoSSVH, built on ConMH, uses the same)
MASKED_AUTOENCODER_VARIANTS = {
    "small": MaskedAutoencoderShape(256, 12, 6),
    "base": MaskedAutoencoderShape(256, 12, 12),
    "large": MaskedAutoencoderShape(256, 24, 16),
    "mini": MaskedAutoencoderShape(256, 1, 1),
}


def xavier_init(module: nn.Module) -> None:
    """Xavier-uniform linears with zero biases (ConMH's and AutoSSVH's encoder/decoder initialisation)."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def transformer_blocks(dim: int, depth: int, heads: int, head_dim: int | None = None) -> nn.ModuleList:
    return nn.ModuleList(TransformerBlock(dim, heads, head_dim=head_dim) for _ in range(depth))


class FrameEncoder(nn.Module):
    """Frame features -> tokens: ``Linear(F->dim)`` plus a fixed sinusoidal position per frame, the given
    blocks (transformer, Mamba...), a final LayerNorm and a linear head; Xavier-initialised throughout."""

    def __init__(self, feature_dim: int, n_frames: int, blocks: nn.ModuleList, dim: int, out_dim: int) -> None:
        super().__init__()
        self.patch_embed = nn.Linear(feature_dim, dim)
        self.register_buffer("position", sinusoid_table(n_frames, dim), persistent=False)
        self.blocks = blocks
        self.norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.head = nn.Linear(dim, out_dim)
        self.apply(xavier_init)

    def forward(self, frames: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
        """frames [N, n, F] at frame ``positions`` [N, n] in temporal order (None: frames 0..n-1) -> [N, n, out]."""
        position = self.position[: frames.shape[1]] if positions is None else self.position[positions]
        x = self.patch_embed(frames) + position
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


class MaskedDecoder(nn.Module):
    """The masked autoencoders' decoder: the given blocks, a final LayerNorm and a linear head that predicts
    frame features for the last ``n_predicted`` tokens (the masked positions, appended last)."""

    def __init__(self, blocks: nn.ModuleList, dim: int, feature_dim: int) -> None:
        super().__init__()
        self.blocks = blocks
        self.norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.head = nn.Linear(dim, feature_dim)
        self.apply(xavier_init)

    def forward(self, tokens: torch.Tensor, n_predicted: int) -> torch.Tensor:
        for block in self.blocks:
            tokens = block(tokens)
        return self.head(self.norm(tokens[:, -n_predicted:]))
