from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ssvh_bench.nn import (KEPT, REPLACED, UNTOUCHED, ZEROED, ZEROED_SOURCE, InPlaceMasks, Mlp, TransformerBlock,
                           anchor_loss, bert_mask, debiased_contrastive_loss, frames_shown, hash_binarize,
                           pairwise_similarity_loss, quantization_loss, sign_ste, sinusoid_table)


def test_hash_binarize_values_and_gradient_mask():
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 3.0], requires_grad=True)
    codes = hash_binarize(x)
    # x = 0 -> clamp 0.5 -> round-half-to-even 0 -> -1
    assert codes.tolist() == [-1, -1, -1, -1, 1, 1, 1, 1]
    codes.backward(torch.arange(1.0, 9.0))
    # the authors' in-place clamp: the identity for -1 < x <= 1, zero at x <= -1 and above +1
    assert x.grad.tolist() == [0, 0, 3, 4, 5, 6, 0, 0]


def test_std_layer_norm_uses_the_unbiased_std_with_eps_on_the_std():
    from ssvh_bench.nn import StdLayerNorm

    x = torch.tensor([[1.0, 2.0, 3.0, 6.0]])
    # mean 3; unbiased std sqrt((4 + 1 + 0 + 9) / 3)
    std = math.sqrt(14 / 3)
    expected = [(v - 3) / (std + 1e-6) for v in (1.0, 2.0, 3.0, 6.0)]
    torch.testing.assert_close(StdLayerNorm(4)(x), torch.tensor([expected]))
    assert not torch.allclose(torch.nn.LayerNorm(4, eps=1e-6)(x), torch.tensor([expected]), atol=1e-3)


def test_tanh_gelu_and_block_output_dropout():
    mlp = Mlp(1, 1, gelu="tanh")
    # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) at x = 1 (exact GELU: 0.841345)
    assert mlp.act(torch.tensor(1.0)).item() == pytest.approx(0.5 * (1 + math.tanh(math.sqrt(2 / math.pi) * 1.044715)))
    block = TransformerBlock(8, 1, output_dropout=0.5)
    x = torch.randn(4, 6, 8, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    zeros = (block.train()(x) == 0).float().mean().item()
    assert 0.3 < zeros < 0.7  # about half the outputs dropped
    assert not (block.eval()(x) == 0).any()


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


def test_mlp_by_hand():
    torch.manual_seed(0)
    mlp = Mlp(2, 3)
    with torch.no_grad():
        mlp.fc1.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        mlp.fc1.bias.copy_(torch.tensor([0.0, 0.0, -1.0]))
        mlp.fc2.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 2.0]]))
        mlp.fc2.bias.copy_(torch.tensor([0.5, 0.0]))
    # fc1([1, -1]) = [1, -1, -1]; exact GELU: x * Phi(x) gives [0.841345, -0.158655, -0.158655]
    gelu_1, gelu_minus_1 = 0.8413447, -0.1586553
    expected = torch.tensor([[gelu_1 + 0.5, gelu_minus_1 + 2 * gelu_minus_1]])
    torch.testing.assert_close(mlp(torch.tensor([[1.0, -1.0]])), expected)
    assert [name for name, _ in mlp.named_parameters()] == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]


def test_bert_masking_proportions_and_what_each_kind_does():
    n_videos, n_frames = 4000, 25
    # every frame carries a distinct value, so a replaced frame can be traced to a frame of the batch
    frames = torch.arange(n_videos * n_frames, dtype=torch.float32).reshape(n_videos, n_frames, 1) + 1
    frames = frames.expand(n_videos, n_frames, 3).contiguous()
    original = frames.clone()
    masked, kind = bert_mask(frames, 0.15, torch.Generator().manual_seed(0))
    torch.testing.assert_close(frames, original)  # not masked in place
    selected = kind != UNTOUCHED
    n_selected = selected.sum().item()
    assert n_selected / kind.numel() == pytest.approx(0.15, abs=0.005)  # 100k frames: std 0.001
    shares = {k: (kind == k).sum().item() / n_selected for k in (ZEROED, REPLACED, KEPT)}
    assert shares[ZEROED] == pytest.approx(0.8, abs=0.01)
    assert shares[REPLACED] == pytest.approx(0.1, abs=0.01)
    assert shares[KEPT] == pytest.approx(0.1, abs=0.01)
    assert (masked[kind == ZEROED] == 0).all()
    unchanged = (kind == UNTOUCHED) | (kind == KEPT)
    torch.testing.assert_close(masked[unchanged], original[unchanged])
    replaced = masked[kind == REPLACED]
    assert (replaced >= 1).all() and (replaced <= n_videos * n_frames).all()
    assert (replaced == replaced[:, :1]).all()  # a whole frame of the batch, not a mix
    # sources are spread over the batch, not the frame's own position
    assert (replaced[:, 0] != original[kind == REPLACED][:, 0]).float().mean() > 0.99


def by_hand(rows):
    """Draws for ``InPlaceMasks.apply`` on 2 items of 2 reads of 4 frames: ``rows`` maps (item, read, frame) to
    "zero", "keep" or the (video, frame) copied into it; every other frame is not selected."""
    shape = (2, 2, 4)
    selected, action = np.zeros(shape, bool), np.zeros(shape)
    source_video, source_frame = np.zeros(shape, int), np.zeros(shape, int)
    for where, what in rows.items():
        selected[where] = True
        action[where] = {"zero": 0.5, "keep": 0.95}.get(what, 0.85)
        if what not in ("zero", "keep"):
            source_video[where], source_frame[where] = what
    return selected, action, source_video, source_frame


def test_in_place_masks_by_hand():
    Z = ZEROED_SOURCE
    masks = InPlaceMasks(n_videos=3, n_frames=4, mask_prob=0.15)  # frame (n, t) is source 4n + t
    shown = masks.apply(np.array([[0, 1], [1, 2]]), *by_hand({
        (0, 0, 1): "zero", (0, 0, 3): (1, 2),  # item 0 reads video 0: (1, 2) is still original, source 6
        (0, 1, 2): "zero", (0, 1, 3): "keep",  # then video 1
        (1, 0, 0): (0, 1),  # item 1 reads video 1 again: a copy of the zeroed (0, 1)
        (1, 1, 1): (0, 3),  # then video 2: (0, 3) shows what it copied, source 6
    }))
    np.testing.assert_array_equal(shown, [[[0, Z, 2, 6], [4, 5, Z, 7]],
                                          [[Z, 5, Z, 7], [8, 6, 10, 11]]])  # video 1 carries item 0's mask
    masks.reset()
    np.testing.assert_array_equal(masks.source, np.arange(12).reshape(3, 4))


def test_in_place_masks_a_video_read_twice_in_one_item_shows_both_masks():
    Z = ZEROED_SOURCE
    masks = InPlaceMasks(n_videos=3, n_frames=4, mask_prob=0.15)
    shown = masks.apply(np.array([[2, 2], [0, 0]]), *by_hand({(0, 0, 0): "zero", (0, 1, 3): "zero"}))
    np.testing.assert_array_equal(shown[0], [[Z, 9, 10, Z], [Z, 9, 10, Z]])
    np.testing.assert_array_equal(shown[1], [[0, 1, 2, 3], [0, 1, 2, 3]])


def test_in_place_masks_reads_the_unmasked_videos_as_the_copy_stands():
    Z = ZEROED_SOURCE
    masks = InPlaceMasks(n_videos=2, n_frames=3, mask_prob=0.15)
    selected = np.array([[[True, False, False]], [[False, False, True]]])  # one masked video per item
    shown = masks.apply(np.array([[1, 0], [0, 1]]), selected, np.full((2, 1, 3), 0.5), np.zeros((2, 1, 3), int),
                        np.zeros((2, 1, 3), int))
    # item 0 zeroes frame 0 of video 1 and reads video 0 whole; item 1 zeroes frame 2 of video 0 and reads video 1
    np.testing.assert_array_equal(shown, [[[Z, 4, 5], [0, 1, 2]], [[0, 1, Z], [Z, 4, 5]]])


def test_in_place_masks_proportions_and_pile_up_by_simulation():
    n_videos, n_frames = 4000, 25
    masks = InPlaceMasks(n_videos, n_frames, mask_prob=0.15)
    once = masks.mask(np.arange(n_videos)[:, None], torch.Generator().manual_seed(0))[:, 0]
    zeroed = (once == ZEROED_SOURCE).mean()
    assert zeroed == pytest.approx(0.15 * 0.8, abs=0.005)  # 100k frames: std 0.001
    moved = (once != ZEROED_SOURCE) & (once != np.arange(n_videos * n_frames).reshape(n_videos, n_frames))
    # replaced by another frame: 1.5% of frames, a few of which copy a frame zeroed earlier in the epoch
    assert moved.mean() == pytest.approx(0.15 * 0.1 * (1 - 0.12 / 2), abs=0.002)
    twice = masks.mask(np.arange(n_videos)[:, None], torch.Generator().manual_seed(1))  # same epoch
    assert (twice == ZEROED_SOURCE).mean() == pytest.approx(1 - (1 - 0.12) ** 2, abs=0.006)


def test_frames_shown_reads_the_videos_the_batch_lacks():
    n_videos, n_frames = 5, 3
    every = np.arange(n_videos * n_frames * 2, dtype=np.float32).reshape(n_videos, n_frames, 2)
    reads = []

    def read(indices):
        reads.append(indices.tolist())
        return every[indices]

    batch_videos = np.array([3, 1, 3])  # repeats are fine
    sources = np.array([[9, ZEROED_SOURCE, 4], [0, 14, 3]])  # (3, 0), zero, (1, 1); (0, 0), (4, 2), (1, 0)
    shown = frames_shown(sources, batch_videos, torch.from_numpy(every[batch_videos]), read)
    assert reads == [[0, 4]]
    expected = np.stack([[every[3, 0], np.zeros(2), every[1, 1]], [every[0, 0], every[4, 2], every[1, 0]]])
    np.testing.assert_array_equal(shown.numpy(), expected)


def test_mask_is_drawn_from_the_generator():
    frames = torch.ones(6, 10, 2)
    first = bert_mask(frames, 0.5, torch.Generator().manual_seed(1))[1]
    again = bert_mask(frames, 0.5, torch.Generator().manual_seed(1))[1]
    other = bert_mask(frames, 0.5, torch.Generator().manual_seed(2))[1]
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_anchor_loss_by_hand():
    mean_hidden = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    centres = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    assert anchor_loss(mean_hidden, centres).item() == pytest.approx((1 + 4 + 1) / 4)


def test_pairwise_similarity_loss_by_hand():
    codes1 = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    codes2 = torch.tensor([[1.0, -1.0], [1.0, 1.0]])
    # similarities 0 and 1; targets +1 and -1: (1 - 0)^2 and (-1 - 1)^2
    assert pairwise_similarity_loss(codes1, codes2, torch.tensor([1.0, -1.0])).item() == pytest.approx(2.5)


def test_quantization_loss_by_hand_pulls_towards_the_sign():
    codes = torch.tensor([[0.5, -1.0], [-0.25, 0.0]], requires_grad=True)
    loss = quantization_loss(codes)
    assert loss.item() == pytest.approx((0.25 + 0 + 0.5625 + 0) / 4)
    loss.backward()
    # d/dh (h - sign h)^2 / 4 = (h - sign h) / 2: negative for 0.5 (pushed up), positive for -0.25
    torch.testing.assert_close(codes.grad, torch.tensor([[-0.25, 0.0], [0.375, 0.0]]))
    assert quantization_loss(codes, reduction="sum").item() == pytest.approx(0.25 + 0.5625)
    with pytest.raises(ValueError, match="reduction"):
        quantization_loss(codes, reduction="max")


def test_bert_mask_zeroes_replaces_or_keeps_a_fifth_of_the_frames():
    n_videos, n_frames = 400, 25
    videos = torch.arange(1, n_videos * n_frames + 1, dtype=torch.float32).reshape(n_videos, n_frames, 1)
    masked = bert_mask(videos, 0.15, torch.Generator().manual_seed(0))[0]
    zeroed = (masked == 0).float().mean().item()
    replaced = ((masked != videos) & (masked != 0)).float().mean().item()
    assert zeroed == pytest.approx(0.12, abs=0.01)
    assert replaced == pytest.approx(0.015, abs=0.005)
    assert set(masked[masked != 0].tolist()) <= set(videos.flatten().tolist())  # replacements are real frames
    assert torch.equal(videos, torch.arange(1, n_videos * n_frames + 1, dtype=torch.float32).reshape_as(videos))


def test_two_view_reconstruction_is_twice_the_masked_mse_and_returns_each_views_mean_code():
    from ssvh_bench.nn import two_view_reconstruction

    frames = torch.full((3, 8, 2), 1.5)
    seen = {}

    def model(visible_frames, visible, masked):
        seen.update(visible=visible, masked=masked)
        codes = torch.where(torch.arange(6)[:, None, None] < 3, 1.0, -1.0).expand(6, visible.shape[1], 4)
        return torch.zeros(6, masked.shape[1], 2), codes

    loss, mean_codes = two_view_reconstruction(model, frames, 0.75, torch.Generator().manual_seed(0))
    assert loss.item() == pytest.approx(2 * 1.5 ** 2)
    assert seen["visible"].shape == (6, 2) and seen["masked"].shape == (6, 6)
    assert torch.equal(mean_codes, torch.tensor([[1.0] * 4] * 3 + [[-1.0] * 4] * 3))


def test_straight_through_quantization_keeps_the_value_and_has_zero_gradient():
    codes = torch.tensor([[0.3, -0.8], [0.9, -0.1]], requires_grad=True)
    released = quantization_loss(codes, straight_through=True)
    # (0.7^2 + 0.2^2 + 0.1^2 + 0.9^2) / 4
    assert released.item() == pytest.approx((0.49 + 0.04 + 0.01 + 0.81) / 4)
    released.backward()
    assert codes.grad.abs().max().item() == 0.0
    codes.grad = None
    quantization_loss(codes).backward()  # the paper's term: 2 (h - sign h) / 4
    torch.testing.assert_close(codes.grad, torch.tensor([[-0.35, 0.1], [-0.05, 0.45]]))
