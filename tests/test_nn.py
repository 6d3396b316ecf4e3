from __future__ import annotations

import math

import pytest
import torch

from ssvh_bench.nn import TransformerBlock, debiased_contrastive_loss, hash_binarize, sign_ste, sinusoid_table


def test_hash_binarize_values_and_gradient_mask():
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0], requires_grad=True)
    codes = hash_binarize(x)
    # x = 0 -> clamp 0.5 -> round-half-to-even 0 -> -1
    assert codes.tolist() == [-1, -1, -1, -1, 1, 1, 1]
    codes.backward(torch.arange(1.0, 8.0))
    # zero where clamp((x+1)/2) is exactly 0, i.e. x <= -1; the identity elsewhere (also above +1)
    assert x.grad.tolist() == [0, 0, 3, 4, 5, 6, 7]


def test_sign_ste_values_and_clipped_gradient():
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0], requires_grad=True)
    codes = sign_ste(x)
    assert codes.tolist() == [-1, -1, -1, 0, 1, 1, 1]
    codes.sum().backward()
    assert x.grad.tolist() == [0, 1, 1, 1, 1, 1, 0]


def dcl_by_loops(view1, view2, temperature, tau_plus):
    items = [v / v.norm() for v in list(view1) + list(view2)]
    batch, count = len(view1), 2 * len(view1)
    n_negatives = count - 2
    losses = []
    for i in range(count):
        partner = (i + batch) % count
        positive = math.exp(float(items[i] @ items[partner]) / temperature)
        negatives = sum(math.exp(float(items[i] @ items[j]) / temperature)
                        for j in range(count) if j not in (i, partner))
        debiased = (negatives - tau_plus * n_negatives * positive) / (1 - tau_plus)
        debiased = max(debiased, n_negatives * math.exp(-1 / temperature))
        losses.append(-math.log(positive / (positive + debiased)))
    return sum(losses) / count


@pytest.mark.parametrize(("temperature", "tau_plus"), [(0.5, 0.1), (0.5, 0.05), (0.2, 0.3)])
def test_debiased_contrastive_loss_matches_direct_formula(temperature, tau_plus):
    generator = torch.Generator().manual_seed(0)
    view1 = torch.randn(5, 6, generator=generator, dtype=torch.float64)
    view2 = view1 + 0.3 * torch.randn(5, 6, generator=generator, dtype=torch.float64)
    loss = debiased_contrastive_loss(view1, view2, temperature=temperature, tau_plus=tau_plus)
    # the loss computes in float32
    assert loss.item() == pytest.approx(dcl_by_loops(view1, view2, temperature, tau_plus), rel=1e-5, abs=1e-6)


def test_debiased_contrastive_clamp_is_reached():
    # two videos with opposite directions, both views identical: each anchor's positive is exp(1/0.5) and its
    # two negatives exp(-1/0.5); the debiased term 2e^-2 - 0.1*2*e^2 < 0 is clamped at N*exp(-1/T) = 2e^-2
    view = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    loss = debiased_contrastive_loss(view, view.clone(), temperature=0.5, tau_plus=0.1)
    assert loss.item() == pytest.approx(-math.log(math.e**2 / (math.e**2 + 2 * math.exp(-2))), rel=1e-6)


def test_transformer_block_parameter_names_and_shapes():
    block = TransformerBlock(256, 6, head_dim=42)
    shapes = {name: tuple(p.shape) for name, p in block.named_parameters()}
    assert shapes == {
        "norm1.weight": (256,), "norm1.bias": (256,),
        "attn.qkv.weight": (756, 256), "attn.q_bias": (252,), "attn.v_bias": (252,),
        "attn.proj.weight": (256, 252), "attn.proj.bias": (256,),
        "norm2.weight": (256,), "norm2.bias": (256,),
        "mlp.fc1.weight": (1024, 256), "mlp.fc1.bias": (1024,),
        "mlp.fc2.weight": (256, 1024), "mlp.fc2.bias": (256,),
    }
    assert block.norm1.eps == 1e-6 and block.norm2.eps == 1e-6


def test_transformer_block_computes_pre_norm_attention_and_mlp():
    torch.manual_seed(0)
    block = TransformerBlock(8, 2, head_dim=3).double()
    for parameter in block.parameters():
        torch.nn.init.normal_(parameter, std=0.3)
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    attn = block.attn
    h = block.norm1(x)
    w = attn.qkv.weight
    q = h @ w[:6].T + attn.q_bias
    k = h @ w[6:12].T  # no key bias
    v = h @ w[12:].T + attn.v_bias
    heads = []
    for head in range(2):
        cols = slice(3 * head, 3 * head + 3)
        weights = torch.softmax(q[..., cols] @ k[..., cols].transpose(1, 2) / math.sqrt(3), dim=-1)
        heads.append(weights @ v[..., cols])
    x1 = x + attn.proj(torch.cat(heads, dim=-1))
    expected = x1 + block.mlp.fc2(torch.nn.functional.gelu(block.mlp.fc1(block.norm2(x1))))
    torch.testing.assert_close(block(x), expected)


def test_sinusoid_table_values():
    table = sinusoid_table(6, 4)
    assert table.shape == (6, 4) and table.dtype == torch.float32
    assert table[0].tolist() == [0.0, 1.0, 0.0, 1.0]
    # dim 4: the second frequency is 1 / 10000^(2/4) = 1/100
    expected = [math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01)]
    assert table[1].tolist() == pytest.approx(expected, abs=1e-7)
    assert table[5, 2].item() == pytest.approx(math.sin(0.05), abs=1e-7)
    assert sinusoid_table(30, 256)[29, 255].item() == pytest.approx(math.cos(29 / 10000 ** (254 / 256)), abs=1e-6)
