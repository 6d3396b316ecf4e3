from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from method_helpers import fit_interrupted_at, reference_shapes, tiny
from ssvh_bench import ArrayFeatures, ConfigError, method_registry, read_batch
from ssvh_bench.methods.s5vh import S5VH, VARIANTS, S5VHNetwork, initial_hash_centres
from ssvh_bench.nn import BidirectionalMambaBlock, DropPath, Mamba, selective_scan
from ssvh_bench.evaluation import evaluate_checkpoint





def videos(n=24, frames=5, dim=12, seed=0):
    rng = np.random.default_rng(seed)
    centres = 3 * rng.normal(size=(4, dim))
    return ArrayFeatures(np.abs(centres[np.arange(n) % 4][:, None] + rng.normal(size=(n, frames, dim))).astype(np.float32))




# ---- the selective scan and the Mamba layer --------------------------------------------------------------------
def test_scan_equals_a_step_by_step_recurrence():
    g = torch.Generator().manual_seed(0)
    batch, d, n, length = 2, 3, 4, 5
    x, delta, z = (torch.randn(batch, d, length, generator=g, dtype=torch.float64) for _ in range(3))
    A = -torch.rand(d, n, generator=g, dtype=torch.float64) * 2
    B, C = (torch.randn(batch, n, length, generator=g, dtype=torch.float64) for _ in range(2))
    D, bias = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
    expected = torch.zeros(batch, d, length, dtype=torch.float64)
    for b in range(batch):
        for c in range(d):
            h = [0.0] * n
            for t in range(length):
                dt = math.log1p(math.exp(delta[b, c, t].item() + bias[c].item()))  # softplus
                out = 0.0
                for k in range(n):
                    h[k] = math.exp(dt * A[c, k].item()) * h[k] + dt * x[b, c, t].item() * B[b, k, t].item()
                    out += h[k] * C[b, k, t].item()
                out += D[c].item() * x[b, c, t].item()
                gate = z[b, c, t].item()
                expected[b, c, t] = out * gate / (1 + math.exp(-gate))  # silu
    # the scan computes in float32
    got = selective_scan(x, delta, A, B, C, D, z, bias, delta_softplus=True)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_mamba_layer_follows_the_documented_computation():
    torch.manual_seed(0)
    layer = Mamba(6, d_state=3, d_conv=4, expand=2).double()
    assert layer.dt_rank == 1 and layer.d_inner == 12
    u = torch.randn(2, 7, 6, dtype=torch.float64)
    W = layer.in_proj.weight
    xz = u @ W.T
    x, z = xz[..., :12], xz[..., 12:]
    w, b = layer.conv1d.weight[:, 0, :], layer.conv1d.bias
    conv = torch.stack([b + sum(w[:, k] * x[:, t - 3 + k] for k in range(4) if t - 3 + k >= 0) for t in range(7)], 1)
    xs = F.silu(conv)
    proj = xs @ layer.x_proj.weight.T
    dt = F.softplus(proj[..., :1] @ layer.dt_proj.weight.T + layer.dt_proj.bias)
    Bt, Ct = proj[..., 1:4], proj[..., 4:7]
    A = -torch.exp(layer.A_log)
    h = torch.zeros(2, 12, 3, dtype=torch.float64)
    ys = []
    for t in range(7):
        h = torch.exp(dt[:, t, :, None] * A) * h + (dt[:, t] * xs[:, t])[..., None] * Bt[:, t, None, :]
        ys.append((h * Ct[:, t, None, :]).sum(-1) + layer.D * xs[:, t])
    expected = (torch.stack(ys, 1) * F.silu(z)) @ layer.out_proj.weight.T
    torch.testing.assert_close(layer(u), expected, rtol=1e-5, atol=1e-6)


def test_mamba_parameter_shapes_and_init_are_mamba_ssm_s():
    torch.manual_seed(0)
    layer = Mamba(256)
    shapes = {k: tuple(v.shape) for k, v in layer.state_dict().items()}
    assert list(shapes) == ["A_log", "D", "in_proj.weight", "conv1d.weight", "conv1d.bias", "x_proj.weight",
                            "dt_proj.weight", "dt_proj.bias", "out_proj.weight"]
    assert shapes["x_proj.weight"] == (48, 512) and shapes["dt_proj.weight"] == (512, 16)
    assert sum(p.numel() for p in layer.parameters()) == 437_760
    torch.testing.assert_close(layer.A_log[3], torch.log(torch.arange(1.0, 17.0)))
    dt = F.softplus(layer.dt_proj.bias)  # the bias is softplus^-1 of a step in [1e-3, 1e-1]
    assert dt.min() >= 1e-3 - 1e-7 and dt.max() <= 0.1 + 1e-7


def test_tied_block_shares_one_mamba_and_still_lists_the_backward_keys():
    torch.manual_seed(0)
    tied = BidirectionalMambaBlock(8, tie_directions=True)
    assert tied.mamba2 is tied.mamba1
    state = tied.state_dict()
    assert torch.equal(state["mamba2.in_proj.weight"], state["mamba1.in_proj.weight"])
    assert len(list(tied.parameters())) == 4 + 9  # two norms, one Mamba
    x = torch.randn(2, 5, 8)
    expected = x + tied.mamba1(tied.norm1(x)) + tied.mamba1(tied.norm2(x.flip(1))).flip(1)
    torch.testing.assert_close(tied(x), expected)
    untied = BidirectionalMambaBlock(8)
    assert untied.mamba2 is not untied.mamba1
    untied(x).sum().backward()
    assert untied.mamba2.in_proj.weight.grad.abs().sum() > 0


def test_drop_path_drops_whole_samples_in_training_only():
    torch.manual_seed(0)
    drop = DropPath(0.5)
    x = torch.ones(400, 3, 2)
    out = drop(x)
    per_sample = out.reshape(400, -1)
    assert set(per_sample.unique().tolist()) == {0.0, 2.0}
    assert (per_sample == per_sample[:, :1]).all()  # one draw per sample
    assert 120 < (per_sample[:, 0] == 0).sum() < 280
    assert torch.equal(drop.eval()(x), x)


# ---- the released model's state dict and checkpoints -----------------------------------------------------------
def test_small_fcvid64_state_dict_equals_the_released_one():
    torch.manual_seed(0)
    model = S5VHNetwork(4096, 25, 64, 450, VARIANTS["small"], 0.5, tie_directions=True)
    ours = [(name, tuple(value.shape)) for name, value in model.state_dict().items()]
    assert ours == list(reference_shapes("s5vh_small_fcvid64_state_dict.txt").items())
    assert sum(v.numel() for v in model.state_dict().values()) == 9_213_825
    # only the used parameters train: no mamba2 duplicates, no get_token_probs
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 4_848_896
    assert [b.drop_path.rate for b in model.encoder.blocks] == pytest.approx([0, 0.1, 0.2, 0.3, 0.4, 0.5])
    assert model.encoder.blocks[0].mamba1.dt_proj.bias.abs().max() == 0  # Xavier re-init, as released
    assert model.mask_token.abs().max() <= 0.02


def test_released_format_checkpoint_with_the_reference_names_loads(tmp_path):
    g = torch.Generator().manual_seed(1)
    weights = {name: torch.randn(shape, generator=g) * 0.05 for name, shape in reference_shapes("s5vh_small_fcvid64_state_dict.txt").items()}
    for name in list(weights):
        if ".mamba2." in name:  # saved by the released code, the backward Mamba is the forward one
            weights[name] = weights[name.replace(".mamba2.", ".mamba1.")]
    torch.save({"model_state_dict": weights}, tmp_path / "fcv_64.pth")
    method = method_registry.create("s5vh").load_checkpoint(tmp_path / "fcv_64.pth", bits=64, n_frames=25,
                                                            feature_dim=4096)
    loaded = method.model.state_dict()
    assert all(torch.equal(loaded[name], value) for name, value in weights.items())
    codes = method.encode(np.random.default_rng(0).random((3, 25, 4096), dtype=np.float32))
    assert codes.shape == (3, 64) and np.isin(codes, (-1, 1)).all()  # 25 frames: no ties, no zeros


def test_trained_weights_round_trip_through_evaluate_checkpoint(tmp_path, tiny_plugins):
    from ssvh_bench import dataset_registry

    splits = dataset_registry.create("tiny-blobs").load()
    trained = tiny("s5vh").fit(splits.train, bits=16, seed=0)
    torch.save({"model_state_dict": trained.model.state_dict()}, tmp_path / "w.pth")
    params = {k: v for k, v in method_registry.get("s5vh").test_params.items()}
    metrics = evaluate_checkpoint("s5vh", tmp_path / "w.pth", "tiny-blobs", bits=16, method_params=params,
                                  device="cpu")
    loaded = tiny("s5vh").load_checkpoint(tmp_path / "w.pth", bits=16, n_frames=4, feature_dim=16)
    np.testing.assert_array_equal(loaded.encode(splits.database), trained.encode(splits.database))
    assert 0 <= metrics["map@5"] <= 1


def test_cli_evaluates_a_released_format_checkpoint(tmp_path, tiny_plugins):
    from typer.testing import CliRunner

    from ssvh_bench.cli import app

    torch.manual_seed(0)  # the CLI builds the default (released FCVID) configuration
    model = S5VHNetwork(16, 4, 16, 450, VARIANTS["small"], 0.5, tie_directions=True)
    torch.save({"model_state_dict": model.state_dict()}, tmp_path / "fcv_16.pth")
    result = CliRunner().invoke(app, ["evaluate", "--method", "s5vh", "--checkpoint", str(tmp_path / "fcv_16.pth"),
                                      "--dataset", "tiny-blobs", "--bits", "16", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "40 queries x 40 database, 16 bits" in result.output


# ---- losses, labels, schedule -----------------------------------------------------------------------------------
def test_cluster_logits_are_scaled_by_bits_times_temperature():
    method = tiny("s5vh", n_clusters=2)
    model = S5VHNetwork(6, 4, 2, 2, VARIANTS["tiny"], 0.0, True)
    with torch.no_grad():
        model.classifier.weight.copy_(torch.eye(2))
    logits = method.cluster_logits(model, torch.tensor([[1.0, 1.0], [1.0, -1.0]]))  # / (2 bits * 0.5)
    torch.testing.assert_close(logits, torch.tensor([[1.0, 1.0], [1.0, -1.0]]))
    ce = F.cross_entropy(logits, torch.tensor([[1.0, 0.0], [1.0, 0.0]]), reduction="none")
    torch.testing.assert_close(ce, torch.tensor([math.log(2), math.log(1 + math.exp(-2))]))


def test_loss_is_the_weighted_sum_of_its_terms_and_labels_smooth_after_warm_up():
    data = videos()
    method = tiny("s5vh", epochs=1, contrastive_weight=2.5, cluster_weight=0.5, smoothing=0.25)  # labels still one-hot
    method.fit(data, bits=16, seed=0)
    model = method.model
    model.train()
    before = method._labels.clone()
    batch = read_batch(method, data, np.arange(8), epoch=0, generator=torch.Generator())
    losses = method.training_losses(model, batch, 0, torch.Generator().manual_seed(0))
    torch.testing.assert_close(losses["loss"], losses["reconstruction"] + 2.5 * losses["contrastive"]
                               + 0.5 * losses["cluster"])
    assert torch.equal(method._labels, before)  # epoch 0 < warm_up_epoch 1: labels untouched
    method.training_losses(model, batch, 1, torch.Generator().manual_seed(0))
    smoothed = method._labels[:8]
    assert torch.equal(method._labels[8:], before[8:])
    torch.testing.assert_close(smoothed.sum(1), torch.ones(8, dtype=torch.float64))
    assert (smoothed[before[:8] == 1] >= 0.75).all() and (smoothed[before[:8] == 0] <= 0.25).all()
    assert (smoothed[before[:8] == 0] > 0).any()


def test_cosine_learning_rate_schedule():
    method = tiny("s5vh", epochs=10, lr=5e-4, min_lr=1e-5)
    assert method.learning_rate(0) == pytest.approx(5e-4)
    assert method.learning_rate(5) == pytest.approx((5e-4 + 1e-5) / 2)
    assert method.learning_rate(10) == pytest.approx(1e-5)


def test_hash_centres_start_from_hadamard_rows_then_balanced_codes():
    centres = initial_hash_centres(20, 8)
    h = centres[:16]
    np.testing.assert_array_equal(h[:8] @ h[:8].T, 8 * np.eye(8))  # orthogonal Hadamard rows
    np.testing.assert_array_equal(h[8:], -h[:8])
    assert (centres[16:].sum(1) == 0).all() and np.isin(centres, (-1, 1)).all()
    # the paper's switch: the centres initialise the classifier (which still trains, as `.weight.data` would)
    classifier = tiny("s5vh", hash_centres=True, n_clusters=6).build_model(5, 12, 16).classifier.weight
    np.testing.assert_array_equal(classifier.detach().numpy(), initial_hash_centres(6, 16))
    assert classifier.requires_grad
    assert not np.isin(tiny("s5vh", n_clusters=6).build_model(5, 12, 16).classifier.weight.detach().numpy(), (-1, 1)).all()


# ---- stage 1 and end to end -------------------------------------------------------------------------------------
def test_stage1_labels_are_nearest_anchors_and_cached(tmp_path, monkeypatch):
    builds = []
    real = S5VH.pseudo_labels
    monkeypatch.setattr(S5VH, "pseudo_labels", lambda self, *a: builds.append(1) or real(self, *a))
    rng = np.random.default_rng(0)
    cluster = np.arange(40) % 4
    data = ArrayFeatures((20 * np.eye(12)[cluster][:, None] + rng.random((40, 5, 12))).astype(np.float32))
    # k-means++ (scikit-learn) seeds one centre per cluster when clusters are this far apart
    first = tiny("s5vh", epochs=1, kmeans_backend="sklearn").fit(data, bits=16, seed=0, cache_dir=tmp_path)
    assert len(builds) == 1
    labels = first._labels.argmax(1).numpy()
    assert all(len(set(labels[cluster == c])) == 1 for c in range(4)) and len(set(labels)) == 4
    torch.testing.assert_close(first._labels.sum(1), torch.ones(40, dtype=torch.float64))
    second = tiny("s5vh", epochs=1, kmeans_backend="sklearn").fit(data, bits=32, seed=0, cache_dir=tmp_path)
    assert len(builds) == 1  # reused from the cache
    assert torch.equal(second._labels, first._labels)


def test_fit_and_encode_end_to_end_and_paper_switches_change_the_codes():
    data = videos(n=32)
    released = tiny("s5vh", epochs=3).fit(data, bits=16, seed=0)
    codes = released.encode(data)
    assert codes.shape == (32, 16) and np.isin(codes, (-1, 0, 1)).all()
    untied = tiny("s5vh", epochs=3, tie_directions=False).fit(data, bits=16, seed=0)
    assert untied.n_parameters > released.n_parameters
    assert not np.array_equal(untied.encode(data), codes)
    other_labels = tiny("s5vh", epochs=3, label_prediction_like_loss=True).fit(data, bits=16, seed=0)
    assert not torch.equal(other_labels._labels, released._labels)


@pytest.mark.parametrize("params, message", [
    ({"mask_ratio": 0.0}, "mask at least one frame"),
    ({"n_clusters": 100}, "n_clusters must be between"),
    ({"variant": "huge"}, "unknown variant"),
])
def test_bad_parameters_are_config_errors(params, message):
    with pytest.raises(ConfigError, match=message):
        tiny("s5vh", **params).fit(videos(), bits=16, seed=0)


def test_a_run_resumed_after_warm_up_goes_on_with_the_smoothed_pseudo_labels(tmp_path):
    data = videos()
    options = dict(epochs=4, warm_up_epoch=1)
    full = tiny("s5vh", **options).fit(data, bits=16, seed=1, workdir=tmp_path / "full", cache_dir=tmp_path / "cache")
    fit_interrupted_at(tiny("s5vh", **options), 3, data, bits=16, seed=1, workdir=tmp_path / "resumed",
                       cache_dir=tmp_path / "cache")
    resumed = tiny("s5vh", **options).fit(data, bits=16, seed=1, workdir=tmp_path / "resumed",
                                          cache_dir=tmp_path / "cache")
    assert not torch.equal(resumed._labels, F.one_hot(resumed._labels.argmax(dim=1), 4).double())  # smoothed
    torch.testing.assert_close(resumed._labels, full._labels, rtol=0, atol=0)
    np.testing.assert_array_equal(resumed.encode(data), full.encode(data))
