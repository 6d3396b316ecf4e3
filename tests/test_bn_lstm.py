from __future__ import annotations

import numpy as np
import pytest
import torch

from ssvh_bench.nn import BatchNormLSTM


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def numpy_unit(weights, inputs, steps, *, train, tanh_output, state, recurrent=None, eps=1e-10, momentum=0.01):
    """The reference's LSTM_Unit / LSTM_Dec step written out per gate, from ``state`` = (h, c); returns hidden
    states, last cell and the running statistics after the steps."""
    wx, wh, b, p = (weights.get(k) for k in ("weight_input", "weight_hidden", "bias", "peephole"))
    gamma, beta = weights["gamma"], weights["beta"]
    running_mean, running_std = weights["running_mean"].copy(), weights["running_std"].copy()
    hidden_size = wh.shape[0]
    h, c = state
    outputs = []
    for t in range(steps):
        fed = h if recurrent is None or t == 0 else recurrent(h)
        blocks = [fed @ wh[:, k * hidden_size:(k + 1) * hidden_size] + b[k * hidden_size:(k + 1) * hidden_size]
                  for k in range(4)]
        if inputs is not None:
            blocks = [block + inputs[:, t] @ wx[:, k * hidden_size:(k + 1) * hidden_size]
                      for k, block in enumerate(blocks)]
        ingate = sigmoid(blocks[0] + c * p[0])
        forgetgate = sigmoid(blocks[1] + c * p[1])
        cell = forgetgate * c + ingate * np.tanh(blocks[2])
        if train:
            m = cell.mean(axis=0)
            std = np.sqrt(((cell - m) ** 2 + eps).mean(axis=0))
            running_mean[t] = (1 - momentum) * running_mean[t] + momentum * m
            running_std[t] = (1 - momentum) * running_std[t] + momentum * std
        else:
            m, std = running_mean[t], running_std[t]
        c = gamma[t] * (cell - m) / (std + eps) + beta[t]
        outgate = sigmoid(blocks[3] + c * p[2])
        h = outgate * (np.tanh(c) if tanh_output else c)
        outputs.append(h)
    return np.stack(outputs, axis=1), c, running_mean, running_std


def randomised(unit, seed=0):
    """The unit with every parameter and running statistic drawn at random (so none is trivially 0 or 1)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in list(unit.parameters()) + list(unit.buffers()):
            tensor.copy_(torch.rand(tensor.shape, generator=generator, dtype=torch.float64) + 0.3)
    return unit


def as_numpy(unit):
    return {name: tensor.detach().numpy().copy() for name, tensor in {**dict(unit.named_parameters()),
                                                                **dict(unit.named_buffers())}.items()}


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("tanh_output", [False, True])
def test_steps_match_the_hand_written_unit(train, tanh_output):
    unit = randomised(BatchNormLSTM(5, 4, 3, tanh_output=tanh_output).double())
    expected_weights = as_numpy(unit)
    inputs = np.random.default_rng(1).normal(size=(6, 3, 5))
    unit.train(train)
    outputs, (hidden, cell) = unit(torch.from_numpy(inputs))
    zeros = np.zeros((6, 4))
    expected, expected_cell, running_mean, running_std = numpy_unit(expected_weights, inputs, 3, train=train,
                                                                    tanh_output=tanh_output, state=(zeros, zeros))
    np.testing.assert_allclose(outputs.detach().numpy(), expected, rtol=1e-10)
    np.testing.assert_allclose(hidden.detach().numpy(), expected[:, -1], rtol=1e-10)
    np.testing.assert_allclose(cell.detach().numpy(), expected_cell, rtol=1e-10)
    # training steps move every step's running statistics towards the batch's; eval leaves them
    np.testing.assert_allclose(unit.running_mean.numpy(), running_mean, rtol=1e-10)
    np.testing.assert_allclose(unit.running_std.numpy(), running_std, rtol=1e-10)
    assert train == (not np.allclose(running_mean, expected_weights["running_mean"]))


def test_a_unit_without_input_from_a_given_state_with_a_binarised_recurrent_state():
    unit = randomised(BatchNormLSTM(None, 4, 3, tanh_output=True).double(), seed=2)
    weights = as_numpy(unit)
    h0, c0 = np.random.default_rng(3).normal(size=(2, 5, 4))
    outputs, _ = unit(None, (torch.from_numpy(h0), torch.from_numpy(c0)), recurrent=torch.sign)
    expected, _, _, _ = numpy_unit(weights, None, 3, train=True, tanh_output=True, state=(h0, c0), recurrent=np.sign)
    np.testing.assert_allclose(outputs.detach().numpy(), expected, rtol=1e-10)
    plain, _ = randomised(BatchNormLSTM(None, 4, 3, tanh_output=True).double(), seed=2)(
        None, (torch.from_numpy(h0), torch.from_numpy(c0)))
    torch.testing.assert_close(plain[:, 0], outputs[:, 0])  # the given h0 itself is not mapped
    assert not torch.allclose(plain[:, 1], outputs[:, 1])  # later steps read sign(h)


def test_batch_normalised_cell_is_centred_and_scaled_on_the_batch_in_training():
    unit = BatchNormLSTM(6, 5, 2)
    unit.train()
    _, (_, cell) = unit(torch.randn(64, 2, 6) * 3 + 1)
    torch.testing.assert_close(cell.mean(dim=0), torch.zeros(5), atol=1e-5, rtol=0)
    torch.testing.assert_close(cell.std(dim=0, unbiased=False), torch.ones(5), atol=1e-4, rtol=0)


def test_initialisation_is_the_references():
    unit = BatchNormLSTM(300, 8, 2)
    bound = (6 / (300 + 8)) ** 0.5
    assert unit.weight_input.abs().max() <= bound and unit.weight_input.abs().max() > 0.9 * bound
    for gate in range(4):
        block = unit.weight_hidden[:, gate * 8:(gate + 1) * 8]
        torch.testing.assert_close(block.T @ block, 1.1**2 * torch.eye(8), atol=1e-5, rtol=0)
    torch.testing.assert_close(unit.bias, torch.cat([torch.zeros(8), torch.ones(8), torch.zeros(16)]))
    assert unit.peephole.abs().max() <= 0.1
    assert torch.equal(unit.gamma, torch.ones(2, 8)) and torch.equal(unit.beta, torch.zeros(2, 8))


def test_inputs_must_match_how_the_unit_was_built():
    with pytest.raises(ValueError, match="takes no inputs"):
        BatchNormLSTM(None, 4, 2)(torch.randn(3, 2, 4))
    with pytest.raises(ValueError, match="takes no inputs"):
        BatchNormLSTM(4, 4, 2)(None, batch_size=3)
