from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from real_layouts import write_fcvid
from method_helpers import fit_interrupted_at
from ssvh_bench import ArrayFeatures, Batch, ConfigError, dataset_registry, evaluate, method_registry
from ssvh_bench.cli import app
from ssvh_bench.methods import ssvh as ssvh_module
from ssvh_bench.methods.ssvh import (ClippedMomentumSGD, coarse_steps, neighbourhood_similarity,
                                     reconstruction_targets)


def tiny(**params):
    entry = method_registry.get("ssvh")
    return entry.create(**{**entry.test_params, **params})


def videos(n=24, frames=6, dim=10, seed=0):
    return ArrayFeatures(np.random.default_rng(seed).normal(size=(n, frames, dim)).astype(np.float32))


def prepared(method, data, bits=8):
    """The method as the loop leaves it right before the first batch."""
    method.bits, method.device = bits, torch.device("cpu")
    method.prepare(data, bits=bits, seed=0, device=method.device, cache_dir=None, progress=False)
    torch.manual_seed(0)
    model = method.build_model(data.n_frames, data.feature_dim, bits)
    method.build_optimizer(model)
    method.on_epoch_start(model, 0, data)
    return model


def toy_directions():
    """Two groups of 2-d directions (degrees 0, 10, 25 and 90, 100, 115); video 0 is 50x longer, so the
    Euclidean nearest video of video 1 would be 2 while the cosine one is 0."""
    angles = np.radians([0, 10, 25, 90, 100, 115])
    pooled = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    pooled[0] *= 50
    return pooled.astype(np.float32)


def test_coarse_lstm_reads_every_stride_th_output_ending_at_the_last_frame():
    assert coarse_steps(24, 2) == list(range(1, 24, 2))  # the reference: frames 1, 3, ..., 23
    assert coarse_steps(5, 2) == [0, 2, 4]
    assert coarse_steps(7, 3) == [0, 3, 6]
    assert coarse_steps(4, 1) == [0, 1, 2, 3]


def test_reconstruction_targets_are_the_frames_forward_backward_and_their_mean():
    clip = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)
    targets = reconstruction_targets(clip, 4)
    torch.testing.assert_close(targets["forward"], clip[:, [0, 1, 2, 3]])
    torch.testing.assert_close(targets["backward"], clip[:, [3, 2, 1, 0]])
    torch.testing.assert_close(targets["mean"], clip[:, :4].mean(dim=1))


def test_reconstruction_loss_sums_squared_errors_of_the_three_decoders():
    data = videos(n=6, frames=5, dim=3)
    method = tiny(max_frames=4, batch_size=2)
    model = prepared(method, data)
    batch = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)
    # decoders predicting zeros: each error is the sum of squares of its target
    model.forward = lambda clip: (torch.zeros(2, 8), {"forward": torch.zeros(2, 4, 3), "backward": torch.zeros(2, 4, 3),
                                                     "mean": torch.zeros(2, 3)})
    losses = method.training_losses(model, Batch(batch, torch.tensor([0, 1])), 0, torch.Generator())
    frames = batch[:, :4]
    expected = (2 * (frames**2).sum() + 4 * (frames.mean(dim=1) ** 2).sum()) / 3
    assert losses["reconstruction"].item() == pytest.approx(expected.item())


def test_codes_use_only_the_first_max_frames_frames():
    data = videos(n=4, frames=6, dim=5)
    method = tiny(max_frames=4)
    model = prepared(method, data)
    clip = torch.randn(3, 6, 5)
    changed = clip.clone()
    changed[:, 4:] = 100.0
    torch.testing.assert_close(model.relaxed_codes(clip), model.relaxed_codes(changed))
    assert not torch.allclose(model.relaxed_codes(clip), model.relaxed_codes(clip.flip(1)))  # order matters


def test_forward_backward_every_parameter_gets_a_gradient():
    data = videos()
    method = tiny()
    model = prepared(method, data)
    indices = torch.tensor([0, 5, 7, 11, 20])
    batch = torch.from_numpy(data.read(indices.numpy()))
    losses = method.training_losses(model, Batch(batch, indices), 0, torch.Generator().manual_seed(0))
    assert set(losses) == {"loss", "neighbourhood", "quantization", "reconstruction"}
    w = method.neighbourhood_weight
    assert losses["loss"].item() == pytest.approx(
        w * (losses["neighbourhood"].item() + 0.2 * losses["quantization"].item())
        + (1 - w) * losses["reconstruction"].item(), rel=1e-5)
    losses["loss"].backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        # the frame-mean decoder's fine unit runs one step from zeros: its recurrent weights only decay (L2),
        # as the reference's
        assert (parameter.grad.abs().sum() > 0) == (name != "mean_decoder.fine.weight_hidden"), name


def test_neighbourhood_term_runs_over_a_memory_that_starts_at_zero_and_is_updated_batch_by_batch():
    data = videos(n=20)
    method = tiny(batch_size=3)
    model = prepared(method, data)
    similar = torch.from_numpy(method.similarity.toarray()).float()
    memory = torch.zeros(20, 8)
    for indices in (torch.tensor([3, 4, 9]), torch.tensor([0, 4, 17])):
        batch = torch.from_numpy(data.read(indices.numpy()))
        losses = method.training_losses(model, Batch(batch, indices), 0, torch.Generator())
        # the dense sum over every training video, with the memory as the reference's: earlier batches' codes,
        # zeros for videos not seen yet, and this batch's live codes
        live = model.relaxed_codes(batch)
        memory[indices] = live.detach()
        dense = ((live @ memory.T / 8 - similar[indices]) ** 2).sum()
        assert losses["neighbourhood"].item() == pytest.approx(dense.item(), rel=1e-5)
        torch.testing.assert_close(method.memory, memory)
    assert (memory.abs().sum(dim=1) == 0).sum() == 15  # 5 videos seen, the rest still zero


def test_a_short_batch_is_padded_with_zero_videos_up_to_batch_size_unless_asked_not_to():
    data = videos(n=20)
    indices = torch.tensor([2, 5, 6])
    batch = torch.from_numpy(data.read(indices.numpy()))
    for pad, rows in ((True, 8), (False, 3)):
        method = tiny(pad_last_batch=pad)
        model = prepared(method, data)
        seen = []
        model.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
        method.training_losses(model, Batch(batch, indices), 0, torch.Generator())
        assert seen[0].shape[0] == rows
        torch.testing.assert_close(seen[0][:3], batch)
        assert (seen[0][3:] == 0).all()
        assert method.memory[indices].abs().sum() > 0 and method.memory.abs().sum(dim=1).count_nonzero() == 3


def test_neighbourhood_by_hand_cosine_k2_1():
    similar = neighbourhood_similarity(toy_directions(), k1=1, k2=1).toarray()
    # K1-NN (cosine): 0->1, 1->0, 2->1, 3->4, 4->3, 5->4; each video's set {itself, its NN}, symmetrised
    expected = np.zeros((6, 6), dtype=bool)
    for block in (0, 3):
        for i, j in [(0, 0), (0, 1), (1, 1), (1, 2), (2, 2)]:
            expected[block + i, block + j] = expected[block + j, block + i] = True
    np.testing.assert_array_equal(similar, expected)


def test_neighbourhood_by_hand_cosine_k2_2():
    similar = neighbourhood_similarity(toy_directions(), k1=1, k2=2).toarray()
    # video 2's set {2, 1} overlaps its own (2) and those of 0 and 1 (1 each; the tie goes to 0): union {0, 1, 2}
    expected = np.zeros((6, 6), dtype=bool)
    expected[:3, :3] = expected[3:, 3:] = True
    np.testing.assert_array_equal(similar, expected)


@pytest.mark.parametrize(("k1", "k2"), [(0, 1), (2, 0), (2, 4)])
def test_bad_neighbourhood_sizes_are_config_errors(k1, k2):
    with pytest.raises(ConfigError, match=r"need k1 >= 1 and 1 <= k2 <= k1 \+ 1"):
        neighbourhood_similarity(toy_directions(), k1=k1, k2=k2)


def test_neighbourhood_artefact_is_cached_once_and_reused_across_bits(tmp_path, monkeypatch):
    calls = []
    original = ssvh_module.neighbourhood_similarity
    monkeypatch.setattr(ssvh_module, "neighbourhood_similarity", lambda *a: calls.append(a) or original(*a))
    data = videos(n=16)
    first = tiny().fit(data, bits=8, seed=0, cache_dir=tmp_path)
    second = tiny().fit(data, bits=16, seed=1, cache_dir=tmp_path)
    assert len(calls) == 1
    folders = list((tmp_path / "ssvh-neighbourhood").iterdir())
    assert len(folders) == 1
    key = json.loads((folders[0] / "key.json").read_text())["key"]
    assert key == {"train": data.fingerprint(), "k1": 3, "k2": 2, "pooling": "frame mean", "metric": "cosine"}
    assert (first.similarity != second.similarity).nnz == 0
    tiny(k1=4).fit(data, bits=8, seed=0, cache_dir=tmp_path)
    assert len(calls) == 2 and len(list((tmp_path / "ssvh-neighbourhood").iterdir())) == 2


def test_optimizer_steps_by_hand():
    weight = torch.nn.Parameter(torch.tensor([1.0, 1.0]))
    optimizer = ClippedMomentumSGD([weight], lr=0.1, momentum=0.9, step_clip=0.03, decay=0.5, decay_steps=1,
                                   l2_penalty=0.0)
    weight.grad = torch.tensor([0.5, 0.1])
    optimizer.step()  # velocity -0.05 clipped to -0.03; -0.01 kept
    torch.testing.assert_close(weight.detach(), torch.tensor([0.97, 0.99]))
    weight.grad = torch.tensor([0.0, 0.2])
    optimizer.step()  # lr 0.1 * 0.5**1: velocity 0.9 * v - 0.05 * g
    torch.testing.assert_close(weight.detach(), torch.tensor([0.97 - 0.027, 0.99 - 0.009 - 0.01]))


def test_optimizer_l2_penalty_pulls_weights_to_zero():
    weight = torch.nn.Parameter(torch.tensor([2.0]))
    optimizer = ClippedMomentumSGD([weight], lr=0.1, momentum=0.0, step_clip=1.0, decay=1.0, decay_steps=1,
                                   l2_penalty=0.25)
    weight.grad = torch.zeros(1)
    optimizer.step()  # the reference's penalty 0.25 / 2 * w^2 has the gradient 0.25 * w = 0.5
    torch.testing.assert_close(weight.detach(), torch.tensor([1.95]))


def test_codes_are_the_signs_of_the_hidden_state_with_zero_to_minus_one():
    data = videos(n=16)
    method = tiny(epochs=2).fit(data, bits=8, seed=0)
    codes = method.encode(data)
    assert codes.shape == (16, 8) and codes.dtype == np.int8 and set(np.unique(codes)) == {-1, 1}
    model = method.model
    model.relaxed_codes = lambda clip: torch.tensor([[0.5, 0.0, -2.0]])
    assert method.encode_batch(model, torch.zeros(1, 6, 10)).tolist() == [[1, -1, -1]]


def test_bad_sizes_are_config_errors():
    with pytest.raises(ConfigError, match="stride must be >= 1"):
        tiny(stride=0).fit(videos(), bits=8, seed=0)


@pytest.mark.slow
def test_cli_run_on_synthetic_beats_chance(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, [
        "run", "--method", "ssvh", "--dataset", "synthetic", "--bits", "16", "--results-dir", str(tmp_path),
        "--device", "cpu",
        "--set", "max_frames=8", "--set", "epochs=30", "--set", "batch_size=64",
        "--dataset-param", "n_train=512", "--dataset-param", "n_database=300", "--dataset-param", "n_frames=8",
        "--dataset-param", "feature_dim=32", "--dataset-param", "n_classes=6", "--dataset-param", "difficulty=0.3",
        "--dataset-param", "label_overlap=0.0",
    ])
    assert result.exit_code == 0, result.output
    (metrics_file,) = tmp_path.glob("runs/synthetic/16/ssvh/*/metrics.json")
    metrics = json.loads(metrics_file.read_text())
    # 5 classes: a random ranking (or one code for every video) scores about 0.12 (AP@5 divides by 5); the
    # model first collapses to one code, then separates the classes (about 0.77 after these 240 updates)
    assert metrics["map@5"] > 0.4, metrics["map@5"]


def test_the_encoders_cells_are_batch_normalised_and_the_codes_of_a_random_batch_are_balanced():
    data = videos(n=64, frames=6, dim=10)
    method = tiny(max_frames=6)
    model = prepared(method, data, bits=16)
    clip = torch.randn(64, 6, 10) * 2 + 3
    relaxed, cell = model.encoder(clip)
    # in training every unit's cell is centred and scaled on the batch (gamma 1, beta 0 at initialisation)
    torch.testing.assert_close(cell.mean(dim=0), torch.zeros(16), atol=1e-5, rtol=0)
    torch.testing.assert_close(cell.std(dim=0, unbiased=False), torch.ones(16), atol=1e-4, rtol=0)
    # h = outgate * cell with a positive outgate: each bit is the cell's sign, so it splits the batch
    torch.testing.assert_close(torch.sign(relaxed), torch.sign(cell))
    share = (relaxed > 0).float().mean(dim=0)
    assert ((share > 0.2) & (share < 0.8)).all(), share


def random_code_map(codes, labels):
    """mAP@5 of random codes of the same shape: the chance level."""
    random = np.where(np.random.default_rng(0).random(codes.shape) > 0.5, 1, -1).astype(np.int8)
    return evaluate(random, random, labels, labels, ks=(5,), query_is_database=True)["map@5"]


def tiny_splits(kind, tmp_path):
    if kind == "synthetic":
        return dataset_registry.create("synthetic", n_train=256, n_database=200, n_frames=6, feature_dim=64,
                                       n_classes=8).load(None)
    return dataset_registry.create("fcvid").load(write_fcvid(tmp_path, n_train=128, n_database=100, frames=4, dim=24))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["synthetic", "fcvid"])
@pytest.mark.parametrize("bits", [16, 32, 64])
def test_codes_use_every_bit_and_retrieve_far_above_chance(kind, bits, tmp_path):
    splits = tiny_splits(kind, tmp_path)
    # larger steps than the paper's so that 128 updates (enough for the BatchNorms' running statistics,
    # momentum 0.01) learn something
    method = tiny(epochs=8, batch_size=16, lr=1e-2, step_clip=1e-2).fit(splits.train, bits=bits, seed=0)
    codes = method.encode(splits.database)
    share = (codes == 1).mean(axis=0)
    assert ((share > 0) & (share < 1)).all(), f"constant bits: {np.flatnonzero((share == 0) | (share == 1))}"
    labels = splits.database_labels
    found = evaluate(codes, codes, labels, labels, ks=(5,), query_is_database=True)["map@5"]
    assert found > random_code_map(codes, labels) + 0.15, found  # chance is about 0.3 on both


@pytest.mark.parametrize("own", [False, True])
def test_forward_decoders_in_between_steps_read_the_backward_decoders_coarse_outputs_as_the_reference(own):
    data = videos(n=8, frames=4, dim=5)
    method = tiny(max_frames=4, forward_decoder_own_coarse=own)
    model = prepared(method, data)
    model.eval()  # running statistics: recomputing the coarse outputs below gives the same values
    seen = []
    reconstruct = model.forward_decoder.reconstruct
    model.forward_decoder.reconstruct = lambda inputs: seen.append(inputs) or reconstruct(inputs)
    clip = torch.randn(3, 4, 5)
    model(clip)
    relaxed, cell = model.encoder(clip)
    state = (torch.sign(relaxed), cell)
    own_coarse = model.forward_decoder.coarse_outputs(state)
    backward_coarse = model.backward_decoder.coarse_outputs(state)
    expected = [own_coarse[:, 0], backward_coarse[:, 0] if not own else own_coarse[:, 0],
                own_coarse[:, 1], backward_coarse[:, 1] if not own else own_coarse[:, 1]]
    torch.testing.assert_close(seen[0], torch.stack(expected, dim=1))



def test_a_resumed_run_restores_the_memory_and_ends_with_the_uninterrupted_codes(tmp_path):
    data = videos(n=20)
    full = tiny(epochs=3).fit(data, bits=8, seed=1, workdir=tmp_path / "full")
    fit_interrupted_at(tiny(epochs=3), 2, data, bits=8, seed=1, workdir=tmp_path / "resumed")
    resumed = tiny(epochs=3).fit(data, bits=8, seed=1, workdir=tmp_path / "resumed")
    np.testing.assert_array_equal(resumed.encode(data), full.encode(data))
    torch.testing.assert_close(resumed.memory, full.memory, rtol=0, atol=0)
    assert full.memory.abs().sum(dim=1).count_nonzero() == 20
