"""An LSTM whose cell is batch-normalised at every step (SSVH's recurrent unit, Song et al., TIP 2018).

One step, with peepholes from the previous cell into the input and forget gates and from the normalised cell
into the output gate::

    i = sigmoid(x W_xi + h W_hi + b_i + c_prev * p_i)        f = sigmoid(x W_xf + h W_hf + b_f + c_prev * p_f)
    g = tanh(x W_xg + h W_hg + b_g)                          c = f * c_prev + i * g
    c_bn = BN_t(c)                                           o = sigmoid(x W_xo + h W_ho + b_o + c_bn * p_o)
    h = o * c_bn            (``tanh_output=True``: h = o * tanh(c_bn))

and ``c_bn`` (not ``c``) is the cell carried to the next step. ``BN_t`` is step t's own batch normalisation
(every step has its own gamma, beta and running statistics): in training ``(c - mean) / (std + eps)`` with
the batch's mean and ``std = sqrt(mean((c - mean)^2 + eps))``, running statistics updated as
``running = (1 - momentum) * running + momentum * batch``; in eval mode the running statistics; then
``gamma * . + beta``. A unit without input (``input_size=None``) runs on its recurrent state alone.

Initialisation as the reference: input weights Glorot-uniform per gate, recurrent weights orthogonal x 1.1 per
gate, biases zero except the forget gate's (one), peepholes uniform in +-0.1, gamma one, beta zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

GATES = 4  # input, forget, cell input, output: the column blocks of the weights, in this order
ORTHOGONAL_GAIN = 1.1
PEEPHOLE_SCALE = 0.1


class BatchNormLSTM(nn.Module):
    """``n_steps`` steps of the unit above, batch-first: inputs ``[B, n_steps, input_size]``."""

    def __init__(self, input_size: int | None, hidden_size: int, n_steps: int, *, tanh_output: bool = False,
                 momentum: float = 0.01, eps: float = 1e-10) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.n_steps = input_size, hidden_size, n_steps
        self.tanh_output, self.momentum, self.eps = tanh_output, momentum, eps
        self.weight_input = None if input_size is None else nn.Parameter(torch.empty(input_size, GATES * hidden_size))
        self.weight_hidden = nn.Parameter(torch.empty(hidden_size, GATES * hidden_size))
        self.bias = nn.Parameter(torch.zeros(GATES * hidden_size))
        self.peephole = nn.Parameter(torch.empty(3, hidden_size))  # into the input, forget and output gates
        self.gamma = nn.Parameter(torch.ones(n_steps, hidden_size))
        self.beta = nn.Parameter(torch.zeros(n_steps, hidden_size))
        self.register_buffer("running_mean", torch.zeros(n_steps, hidden_size))
        self.register_buffer("running_std", torch.ones(n_steps, hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        hidden = self.hidden_size
        with torch.no_grad():
            for gate in range(GATES):
                columns = slice(gate * hidden, (gate + 1) * hidden)
                if self.weight_input is not None:
                    bound = math.sqrt(6.0 / (self.input_size + hidden))
                    self.weight_input[:, columns].uniform_(-bound, bound)
                nn.init.orthogonal_(self.weight_hidden[:, columns], gain=ORTHOGONAL_GAIN)
            self.bias.zero_()
            self.bias[hidden: 2 * hidden] = 1.0
            self.peephole.uniform_(-PEEPHOLE_SCALE, PEEPHOLE_SCALE)
            self.gamma.fill_(1.0)
            self.beta.zero_()
            self.running_mean.zero_()
            self.running_std.fill_(1.0)

    def normalise(self, cell: torch.Tensor, step: int) -> torch.Tensor:
        """Step ``step``'s batch normalisation of ``cell`` [B, H] (updates its running statistics in training)."""
        if self.training:
            mean = cell.mean(dim=0)
            std = torch.sqrt(((cell - mean) ** 2 + self.eps).mean(dim=0))
            with torch.no_grad():
                self.running_mean[step].lerp_(mean.detach(), self.momentum)
                self.running_std[step].lerp_(std.detach(), self.momentum)
        else:
            mean, std = self.running_mean[step], self.running_std[step]
        return self.gamma[step] * (cell - mean) / (std + self.eps) + self.beta[step]

    def step(self, projected: torch.Tensor | None, hidden: torch.Tensor, cell: torch.Tensor,
             step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: (h, c_bn) from the step's projected inputs ``x W_x`` [B, 4H] (or None) and the previous
        (h, c)."""
        gates = hidden @ self.weight_hidden + self.bias
        if projected is not None:
            gates = gates + projected
        in_gate, forget_gate, cell_input, out_gate = gates.chunk(GATES, dim=-1)
        in_gate = torch.sigmoid(in_gate + cell * self.peephole[0])
        forget_gate = torch.sigmoid(forget_gate + cell * self.peephole[1])
        cell = self.normalise(forget_gate * cell + in_gate * torch.tanh(cell_input), step)
        out_gate = torch.sigmoid(out_gate + cell * self.peephole[2])
        return out_gate * (torch.tanh(cell) if self.tanh_output else cell), cell

    def forward(self, inputs: torch.Tensor | None, state: tuple[torch.Tensor, torch.Tensor] | None = None, *,
                batch_size: int | None = None,
                recurrent: Callable[[torch.Tensor], torch.Tensor] | None = None,
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Hidden states [B, n_steps, H] and the last (h, c_bn); ``state`` defaults to zeros (then
        ``batch_size`` is needed when there are no inputs). ``recurrent`` maps each step's h before the next
        step reads it (SSVH binarises it); the returned states are the unmapped ones."""
        if (inputs is None) != (self.weight_input is None):
            raise ValueError("a BatchNormLSTM built with input_size=None takes no inputs, and only it")
        if state is None:
            rows = inputs.shape[0] if inputs is not None else batch_size
            reference = self.bias if inputs is None else inputs
            zeros = reference.new_zeros(rows, self.hidden_size)
            state = (zeros, zeros)
        hidden, cell = state
        # one matrix product for every step's input projection: the loop only carries the recurrence
        # (unbound once: indexing a step per iteration would cost a full-size gradient buffer per step)
        projected = [None] * self.n_steps if inputs is None else (inputs @ self.weight_input).unbind(1)
        outputs = []
        for step in range(self.n_steps):
            fed = hidden if recurrent is None or step == 0 else recurrent(hidden)
            hidden, cell = self.step(projected[step], fed, cell, step)
            outputs.append(hidden)
        return torch.stack(outputs, dim=1), (hidden, cell)
