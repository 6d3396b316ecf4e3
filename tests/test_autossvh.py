from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from method_helpers import fit_interrupted_at, reference_shapes, tiny
from ssvh_bench import ArrayFeatures, ConfigError, dataset_registry, method_registry, read_batch
from ssvh_bench.cli import app
from ssvh_bench.config import resolve_params
from ssvh_bench.methods.autossvh import (VARIANTS, AutoSSVHNetwork, FrameSampler, ReversedChoice,
                                         cluster_temperatures, prototype_loss)





def videos(n=32, frames=6, dim=12, seed=0):
    rng = np.random.default_rng(seed)
    centres = 3 * rng.normal(size=(4, dim))
    return ArrayFeatures(np.abs(centres[np.arange(n) % 4][:, None] + rng.normal(size=(n, frames, dim))))




# ---- architecture and released checkpoints ------------------------------------------------------------------
def test_small_variant_matches_the_released_state_dict():
    model = AutoSSVHNetwork(4096, 25, 64, VARIANTS["small"], 0.0)
    ours = {name: tuple(value.shape) for name, value in model.state_dict().items()}
    assert list(ours) == list(reference_shapes("autossvh_small_fcvid64_state_dict.txt"))  # same names, same order
    assert ours == reference_shapes("autossvh_small_fcvid64_state_dict.txt")


@pytest.mark.parametrize(("feature_dim", "n_frames", "expected"), [(4096, 25, 12_386_402), (2048, 30, 11_467_810)])
def test_parameter_counts_of_the_released_configurations(feature_dim, n_frames, expected):
    model = AutoSSVHNetwork(feature_dim, n_frames, 64, VARIANTS["small"], 0.0)
    assert sum(p.numel() for p in model.state_dict().values()) == expected


@pytest.fixture
def fcvid_shaped(tiny_plugins):
    """``tiny-fcvid``: tiny-blobs with FCVID's frame count and feature size."""
    from conftest import TinyBlobs

    class TinyFcvid(TinyBlobs):
        def __init__(self) -> None:
            super().__init__(n=8, frames=25, dim=4096)

    dataset_registry.register("tiny-fcvid", description="tiny, FCVID-shaped")(TinyFcvid)
    yield "tiny-fcvid"
    dataset_registry.unregister("tiny-fcvid")


def test_a_checkpoint_with_the_released_names_evaluates_through_the_cli(tmp_path, fcvid_shaped):
    generator = torch.Generator().manual_seed(0)
    weights = {name: torch.randn(shape, generator=generator) for name, shape in reference_shapes("autossvh_small_fcvid64_state_dict.txt").items()}
    torch.save({"model_state_dict": weights}, tmp_path / "fcv_64.pth")
    method = method_registry.get("autossvh").create()
    method.load_checkpoint(tmp_path / "fcv_64.pth", bits=64, n_frames=25, feature_dim=4096)
    for name, value in method.model.state_dict().items():
        torch.testing.assert_close(value, weights[name], rtol=0, atol=0)
    result = CliRunner().invoke(app, ["evaluate", "--method", "autossvh", "--checkpoint", str(tmp_path / "fcv_64.pth"),
                                      "--dataset", fcvid_shaped, "--bits", "64", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "8 queries x 8 database, 64 bits" in result.output


# ---- losses -------------------------------------------------------------------------------------------------
def test_prototype_loss_by_hand():
    codes = torch.tensor([[2.0, 0.0], [0.0, 3.0]])  # normalised inside: e1, e2
    centroids = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    temperatures = torch.tensor([0.5, 0.5, 1.0])
    # clusters 0 and 1 are in the batch; cluster 2 is the only absent one, so it is the one negative drawn
    loss = prototype_loss(codes, torch.tensor([0, 1]), centroids, temperatures, torch.Generator().manual_seed(0))
    row0 = -math.log(math.exp(2) / (math.exp(2) + math.exp(0) + math.exp(-1)))  # logits 2, 0, -1
    row1 = -math.log(math.exp(2) / (math.exp(0) + math.exp(2) + math.exp(0)))  # logits 0, 2, 0
    assert loss.item() == pytest.approx((row0 + row1) / 2, rel=1e-6)


def test_prototype_loss_keeps_duplicate_prototypes_as_negatives():
    codes = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    centroids = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    temperatures = torch.ones(3)
    loss = prototype_loss(codes, torch.tensor([0, 0]), centroids, temperatures, torch.Generator().manual_seed(0))
    # columns: cluster 0 twice (one the target, one a negative), then both absent clusters
    expected = -math.log(math.e / (2 * math.e + 1 + math.exp(-1)))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_cluster_temperatures_by_hand():
    labels = np.array([0, 0, 1, 1, 1, 2])
    squared = np.array([1.0, 9.0, 4.0, 4.0, 4.0, 0.0])
    d0, d1 = 2 / math.log(12), 2 / math.log(13)  # mean distance / ln(size + 10); cluster 2 (one video) gets d0
    # numpy's linear percentiles of (d1, d0, d0): 10th = d1 + 0.2 (d0 - d1), 90th = d0
    low = d1 + 0.2 * (d0 - d1)
    clipped = np.array([d0, low, d0])
    np.testing.assert_allclose(cluster_temperatures(squared, labels, 3, 0.2), 0.2 * clipped / clipped.mean())


def test_clusters_of_identical_codes_do_not_get_zero_temperature():
    labels = np.array([0, 0, 1, 1, 2, 2])
    squared = np.array([0.0, 0.0, 1.0, 1.0, 4.0, 4.0])
    temperatures = cluster_temperatures(squared, labels, 3, 0.2)
    assert (temperatures > 0).all() and temperatures.mean() == pytest.approx(0.2)


def test_total_loss_and_prototype_term_from_the_warmup_epoch():
    method = tiny("autossvh", warmup_epochs=1)
    data = videos()
    method.bits = 16
    method.prepare(data, bits=16, seed=0, device=torch.device("cpu"), cache_dir=None, progress=False)
    torch.manual_seed(0)
    model = method.build_model(6, 12, 16)
    batch = read_batch(method, data, np.arange(16), epoch=0, generator=torch.Generator())
    before = method.training_losses(model, batch, 0, torch.Generator().manual_seed(0))
    assert before["prototype"].item() == 0
    method.on_epoch_start(model, 1, data)
    after = method.training_losses(model, batch, 1, torch.Generator().manual_seed(0))
    assert after["prototype"].item() > 0
    assert after["loss"].item() == pytest.approx(
        after["reconstruction"].item() + method.contrastive_weight * after["contrastive"].item()
        + method.prototype_weight * after["prototype"].item(), rel=1e-6)
    after["loss"].backward()
    assert model.binary.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("backend", ["faiss", "sklearn"])
def test_clustering_runs_once_per_epoch_from_the_warmup(monkeypatch, backend):
    method = tiny("autossvh", kmeans_backend=backend, epochs=4, warmup_epochs=2)
    data = videos()
    calls = []
    refresh = method.refresh_clusterings
    monkeypatch.setattr(method, "refresh_clusterings",
                        lambda model, train: calls.append(len(train)) or refresh(model, train))
    method.fit(data, bits=16, seed=0)
    assert calls == [len(data)] * 2  # epochs 2 and 3
    assert [len(c.centroids) for c in method._clusterings] == [4, 6, 8]
    assert [len(c.centroids) for c in method._clusterings] == [4, 6, 8]


# ---- the adversarial sampler --------------------------------------------------------------------------------
def test_sampler_picks_distinct_ascending_frames_and_returns_their_tokens():
    torch.manual_seed(0)
    sampler = FrameSampler(8)
    tokens = torch.randn(5, 10, 8)
    chosen, keep = sampler(tokens, 4, torch.Generator().manual_seed(1))
    assert chosen.shape == (5, 4, 8) and keep.shape == (5, 4)
    for row in keep.tolist():
        assert row == sorted(set(row)) and all(0 <= p < 10 for p in row)
    torch.testing.assert_close(chosen, tokens.gather(1, keep[..., None].expand(-1, -1, 8)))


def test_the_scores_decide_which_frames_are_kept():
    sampler = FrameSampler(8)
    sampler.importance_score.forward = lambda tokens: torch.tensor([0.0, 1e6, 0.0, 0.0, 1e6, 0.0]).expand(3, 6)
    _, keep = sampler(torch.randn(3, 6, 8), 2, torch.Generator().manual_seed(0))
    assert keep.tolist() == [[1, 4]] * 3


def test_with_equal_frame_counts_the_two_samplers_mask_different_frames():
    random_masked, _, _ = masked_positions(tiny("autossvh", mask_ratio=0.5))
    adversarial_masked, _, _ = masked_positions(tiny("autossvh", mask_ratio=0.5, sampler="adversarial"))
    assert random_masked.shape == adversarial_masked.shape == (32, 3)
    assert (random_masked != adversarial_masked).any(dim=1).sum() >= 16


def test_reversed_choice_gradients_by_hand():
    tokens = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]], requires_grad=True)
    weights = torch.tensor([[1.0, 0.0]], requires_grad=True)
    out = ReversedChoice.apply(tokens, weights)
    (out * torch.tensor([[[1.0, 1.0], [2.0, 2.0]]])).sum().backward()
    assert tokens.grad.tolist() == [[[1.0, 1.0], [0.0, 0.0]]]
    assert weights.grad.tolist() == [[-3.0, -14.0]]  # -(1*1 + 1*2), -(2*3 + 2*4)


def masked_positions(method, seed=0):
    torch.manual_seed(0)
    model = method.build_model(6, 12, 16)
    seen = []
    reconstruct = model.reconstruct
    model.reconstruct = lambda codes, visible, masked: seen.append(masked) or reconstruct(codes, visible, masked)
    batch = read_batch(method, videos(), np.arange(16), epoch=0, generator=torch.Generator())
    losses = method.training_losses(model, batch, 0, torch.Generator().manual_seed(seed))
    return seen[0], losses, model


def test_adversarial_sampler_changes_the_masked_frames_and_trains_the_scorer():
    random_masked, _, random_model = masked_positions(tiny("autossvh"))
    adversarial_masked, losses, model = masked_positions(tiny("autossvh", sampler="adversarial"))
    # mask_ratio 0.75 of 6 frames: random views keep 6 - int(4.5) = 2, the sampler int(6 * 0.25) = 1
    assert random_masked.shape == (32, 4) and adversarial_masked.shape == (32, 5)
    for row in adversarial_masked.tolist():
        assert row == sorted(set(row)) and all(0 <= p < 6 for p in row)
    losses["loss"].backward()
    scorer = model.encoder.sample_net.importance_score
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in scorer.parameters())
    assert not any(p.requires_grad for p in random_model.encoder.sample_net.parameters())
    assert not model.encoder.sample_net.temperature.requires_grad  # dead in the released model


def test_released_training_leaves_the_sampler_untouched():
    method = tiny("autossvh")
    torch.manual_seed(3)
    initial = method.build_model(6, 12, 16).encoder.sample_net.state_dict()
    method.fit(videos(), bits=16, seed=3)
    for name, value in method.model.encoder.sample_net.state_dict().items():
        torch.testing.assert_close(value, initial[name], rtol=0, atol=0)


# ---- training, defaults, errors -----------------------------------------------------------------------------
@pytest.mark.parametrize("sampler", ["random", "adversarial"])
def test_fit_logs_every_term_and_encodes_protocol_codes(tmp_path, sampler):
    data = videos()
    method = tiny("autossvh", sampler=sampler, epochs=3, lr=3e-3).fit(data, bits=16, seed=0, workdir=tmp_path)
    lines = (tmp_path / "history.csv").read_text().splitlines()
    assert lines[0] == "epoch,loss,reconstruction,contrastive,prototype,lr,seconds,videos_per_s"
    prototype = [float(line.split(",")[4]) for line in lines[1:]]
    assert prototype[0] == 0 and all(p > 0 for p in prototype[1:])  # warmup_epochs = 1
    codes = method.encode(data)
    assert codes.shape == (32, 16) and set(np.unique(codes)) <= {-1, 0, 1}


def test_dataset_defaults_follow_the_released_configs():
    entry = method_registry.get("autossvh")
    fcvid = resolve_params(entry, {}, dataset="fcvid")
    assert (fcvid["variant"], fcvid["sampler"], fcvid["mask_ratio"], fcvid["batch_size"], fcvid["epochs"]) == \
        ("small", "random", 0.75, 512, 805)
    assert (fcvid["contrastive_weight"], fcvid["prototype_weight"], fcvid["warmup_epochs"], fcvid["n_clusters"],
            fcvid["kmeans_temperature"], fcvid["min_lr"], fcvid["input_dropout"]) == \
        (1.0, 0.01, 100, (250, 500, 1000), 0.2, 1e-5, 0.0)
    anet = resolve_params(entry, {}, dataset="activitynet")
    assert (anet["mask_ratio"], anet["tau_plus"], anet["contrastive_weight"], anet["batch_size"], anet["epochs"],
            anet["min_lr"], anet["n_clusters"], anet["input_dropout"]) == \
        (0.5, 0.05, 0.2, 128, 800, 1e-6, (250, 400, 600), 0.2)
    synthetic = resolve_params(entry, {}, dataset="synthetic")
    assert (synthetic["variant"], synthetic["lr"], synthetic["prototype_weight"]) == ("tiny", 1e-4, 0.01)


def test_learning_rate_schedule():
    method = tiny("autossvh")
    assert [method.learning_rate(e) for e in (0, 19, 20, 40)] == pytest.approx([1e-4, 1e-4, 9e-5, 8.1e-5])
    assert method.learning_rate(10_000) == 1e-5


@pytest.mark.parametrize(("params", "message"), [({"variant": "huge"}, "unknown variant 'huge'"),
                                                 ({"sampler": "greedy"}, "unknown sampler 'greedy'"),
                                                 ({"n_clusters": (4, 0)}, "n_clusters must be positive"),
                                                 ({"mask_ratio": 0.1}, "leaves 6 of 6 frames visible")])
def test_bad_parameters_are_config_errors(params, message):
    with pytest.raises(ConfigError, match=message):
        tiny("autossvh", **params).fit(videos(), bits=16, seed=0)



def test_a_resumed_run_reclusters_and_ends_with_the_uninterrupted_codes(tmp_path):
    data = videos()
    full = tiny("autossvh", epochs=4).fit(data, bits=16, seed=1, workdir=tmp_path / "full")
    fit_interrupted_at(tiny("autossvh", epochs=4), 3, data, bits=16, seed=1,
                       workdir=tmp_path / "resumed")
    resumed = tiny("autossvh", epochs=4).fit(data, bits=16, seed=1, workdir=tmp_path / "resumed")
    np.testing.assert_array_equal(resumed.encode(data), full.encode(data))
    # every logged loss, the prototype term of the re-clustered epoch 3 included, equals the uninterrupted run's
    terms = [[line.split(",")[:5] for line in (tmp_path / run / "history.csv").read_text().splitlines()]
             for run in ("full", "resumed")]
    assert len(terms[0]) == 5 and terms[0] == terms[1]
