"""Mamba (selective state-space) layers with the parameter names of ``mamba_ssm.Mamba`` (v2.0.4).

``Mamba`` computes what mamba-ssm's module computes (its slow path with ``selective_scan_ref``): an input
projection to ``[x; z]``, a causal depthwise convolution and SiLU on ``x``, input-dependent ``dt, B, C``,
the selective scan, a SiLU gate by ``z`` and an output projection. The scan is a plain loop over time, in
float32, which is cheap for the short sequences of video hashing (at most a few dozen frames). On CUDA,
when the optional ``mamba_ssm`` package is importable (``pip install 'ssvh-bench[mamba]'``), its fused scan
kernel is used instead; the parameters are the same tensors either way, so one checkpoint serves both.

``BidirectionalMambaBlock`` is the video-hashing block of S5VH: ``x + DropPath(M1(norm1(x)) +
flip(M2(norm2(flip(x)))))``, optionally with one Mamba for both directions (``tie_directions``).
"""

from __future__ import annotations

import math
from functools import cache

import torch
import torch.nn.functional as F
from torch import nn

from .drop_path import DropPath
from .transformer import LAYER_NORM_EPS


def selective_scan(x: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                   D: torch.Tensor, z: torch.Tensor | None = None, delta_bias: torch.Tensor | None = None,
                   delta_softplus: bool = True) -> torch.Tensor:
    """The selective scan in mamba-ssm's layout, as a sequential loop over time (float32 inside).

    Shapes: ``x``, ``delta``, ``z`` [batch, d, L]; ``A`` [d, n]; ``B``, ``C`` [batch, n, L]; ``D`` and
    ``delta_bias`` [d]. With ``dt = softplus(delta + delta_bias)`` (or without the softplus):
    ``h_t = exp(dt_t * A) * h_{t-1} + dt_t * x_t * B_t``, ``y_t = h_t . C_t + D * x_t`` (h_0 = 0), then
    ``y *= silu(z)``. Returns y [batch, d, L] in the dtype of ``x``.
    """
    dtype = x.dtype
    x, delta, A, B, C, D = (t.float() for t in (x, delta, A, B, C, D))
    if delta_bias is not None:
        delta = delta + delta_bias.float()[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    # time-major, split once: indexing one step at a time would make autograd zero-fill the whole tensor
    # for every step (quadratic in L)
    delta_t = delta.permute(2, 0, 1).unsqueeze(3)  # [L, batch, d, 1]
    decay = torch.exp(delta_t * A).unbind(0)  # L x [batch, d, n]
    drive = (delta_t * x.permute(2, 0, 1).unsqueeze(3) * B.permute(2, 0, 1).unsqueeze(2)).unbind(0)
    readout = C.permute(2, 0, 1).unsqueeze(3).unbind(0)  # L x [batch, n, 1]
    state = x.new_zeros(x.shape[0], x.shape[1], A.shape[1])
    outputs = []
    for step_decay, step_drive, step_readout in zip(decay, drive, readout):
        state = torch.addcmul(step_drive, step_decay, state)
        outputs.append(torch.bmm(state, step_readout))  # [batch, d, 1]
    y = torch.cat(outputs, dim=2) + D[:, None] * x
    if z is not None:
        y = y * F.silu(z.float())
    return y.to(dtype)


@cache
def _cuda_selective_scan():
    """mamba_ssm's fused scan when the package (and its compiled extension) imports, else None."""
    try:
        # newer mamba_ssm releases import without their compiled extension and fail only when called
        import selective_scan_cuda  # noqa: F401
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except ImportError:  # not installed, or installed without its CUDA extension
        return None
    return selective_scan_fn


class Mamba(nn.Module):
    """``mamba_ssm.Mamba(d_model, d_state, d_conv, expand)``: same parameters, names, shapes and init."""

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 dt_min: float = 0.001, dt_max: float = 0.1, dt_init_floor: float = 1e-4) -> None:
        super().__init__()
        self.d_model, self.d_state, self.d_conv = d_model, d_state, d_conv
        self.d_inner = expand * d_model
        self.dt_rank = math.ceil(d_model / 16)
        # registration order gives mamba-ssm's state-dict order: A_log, D, then the submodules
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(self.d_inner, 1))
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=False)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)
        # mamba-ssm's dt initialisation: weights U(+-dt_rank^-0.5); the bias is softplus^-1 of a step size
        # drawn log-uniformly in [dt_min, dt_max]
        nn.init.uniform_(self.dt_proj.weight, -self.dt_rank ** -0.5, self.dt_rank ** -0.5)
        dt = torch.exp(torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_init_floor)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """u [batch, L, d_model] -> [batch, L, d_model]."""
        length = u.shape[1]
        x, z = self.in_proj(u).transpose(1, 2).chunk(2, dim=1)  # each [batch, d_inner, L]
        x = F.silu(self.conv1d(x)[..., :length])  # causal: the first L outputs of the padded convolution
        dt, B, C = self.x_proj(x.transpose(1, 2)).split((self.dt_rank, self.d_state, self.d_state), dim=-1)
        delta = F.linear(dt, self.dt_proj.weight).transpose(1, 2)  # the bias is added inside the scan
        A = -torch.exp(self.A_log.float())
        B, C = B.transpose(1, 2).contiguous(), C.transpose(1, 2).contiguous()
        scan = _cuda_selective_scan() if u.is_cuda else None
        if scan is None:
            y = selective_scan(x, delta, A, B, C, self.D, z, self.dt_proj.bias, delta_softplus=True)
        else:
            y = scan(x.contiguous(), delta.contiguous(), A, B, C, self.D.float(), z.contiguous(),
                     self.dt_proj.bias.float(), delta_softplus=True)
        return self.out_proj(y.transpose(1, 2))


class BidirectionalMambaBlock(nn.Module):
    """``x + DropPath(M1(norm1(x)) + flip_t(M2(norm2(flip_t(x)))))``; no feed-forward sub-layer.

    With ``tie_directions`` the backward Mamba *is* the forward one (``mamba2`` is an alias of ``mamba1``):
    the state dict still lists ``mamba2.*`` keys, equal to ``mamba1.*``, as in S5VH's released checkpoints.
    """

    def __init__(self, dim: int, *, d_state: int = 16, d_conv: int = 4, expand: int = 2, drop_path: float = 0.0,
                 tie_directions: bool = False) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mamba1 = Mamba(dim, d_state, d_conv, expand)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mamba2 = self.mamba1 if tie_directions else Mamba(dim, d_state, d_conv, expand)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [batch, L, dim] -> [batch, L, dim]."""
        forward = self.mamba1(self.norm1(x))
        backward = self.mamba2(self.norm2(x.flip(1))).flip(1)
        return x + self.drop_path(forward + backward)
