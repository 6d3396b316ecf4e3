from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ssvh_bench import (ArrayFeatures, ArtefactCache, ConfigError, dataset_registry, evaluate, method_registry,
                        read_batch)
from ssvh_bench.cli import app
from ssvh_bench.config import resolve_params
from ssvh_bench.methods import mcmsh as mcmsh_module
from ssvh_bench.methods.mcmsh import LOSS_WEIGHTS, MCMSH, ContextGate, quadruplet_loss
from test_pinned_codes import BITS, fixed_videos

# version 4's entry in tests/data/pinned_codes.json (each batch masked on a fresh copy)
VERSION_4_PIN = "c1501b668a7c6e9c141751e04166bd91d0aebb54cc4323a02b196b516ef30847"


def tiny(**params) -> MCMSH:
    entry = method_registry.get("mcmsh")
    return entry.create(**{**entry.test_params, **params})


def two_groups(n_per_group=20, frames=5, dim=20, seed=0) -> ArrayFeatures:
    """Videos 0..n-1 near +4 * ones, videos n..2n-1 near -4 * ones: two groups far apart."""
    rng = np.random.default_rng(seed)
    sign = np.repeat([1.0, -1.0], n_per_group)
    return ArrayFeatures(4 * sign[:, None, None] + rng.normal(size=(2 * n_per_group, frames, dim)))


def test_forward_backward_every_parameter_gets_a_gradient():
    videos = two_groups()
    method = tiny().fit(videos, bits=16, seed=0)
    model = method.model
    model.train()
    batch = read_batch(method, videos, np.arange(12), epoch=3, generator=torch.Generator().manual_seed(1))
    losses = method.training_losses(model, batch, 3, torch.Generator().manual_seed(0))
    assert set(losses) == {"loss", *LOSS_WEIGHTS}
    expected = sum(LOSS_WEIGHTS[name] * losses[name].item() for name in LOSS_WEIGHTS)
    assert losses["loss"].item() == pytest.approx(expected, rel=1e-6)
    losses["loss"].backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_published_configuration_shapes():
    model = tiny(hidden_dim=256).build_model(25, 4096, 64)
    codes, hidden = model(torch.randn(3, 25, 4096))
    assert codes.shape == (3, 64) and hidden.shape == (3, 25, 256)
    assert codes.abs().max() <= 1
    gates = model.encoder.channel_gates.gates
    assert gates["short"].squeeze.groups == 16 and gates["short"].squeeze.out_channels == 16  # 256 / r_max
    assert model.encoder.token_gates.gates["long"].squeeze.out_features == 6  # 25 frames / r_min


def gate_weights_after_change(range_: str, changed_frame: int, n_frames: int = 24) -> torch.Tensor:
    """How much the gate's weights at frame 0 move when one frame of the context changes."""
    torch.manual_seed(0)
    gate = ContextGate(n_frames, 64, 16, range_, grouped=True).eval()  # context axis = frames
    for parameter in gate.parameters():  # unit-scale weights, so that every dependence shows
        torch.nn.init.normal_(parameter)
    z = torch.randn(4, 64, n_frames)
    changed = z.clone()
    changed[:, :, changed_frame] = torch.randn(4, 64)
    with torch.no_grad():
        before, after = gate.weights(z), gate.weights(changed)
    return (after[..., 0] - before[..., 0]).abs().max()


@pytest.mark.parametrize(("range_", "reach"), [("short", 2), ("middle", 8), ("long", 23)])
def test_gates_see_only_their_temporal_range(range_, reach):
    # short: two k=3 convolutions (frames 0..2); middle: bins of 3 frames, two k=3 convolutions over bins
    # (frames 0..8); long: the whole clip
    assert gate_weights_after_change(range_, reach) > 1e-4
    if reach + 1 < 24:
        assert gate_weights_after_change(range_, reach + 1) == 0
        assert gate_weights_after_change(range_, 23) == 0


def test_gate_output_shapes():
    x = torch.randn(3, 7, 32)  # [B, context, gated]
    for range_ in ("long", "middle", "short"):
        gate = ContextGate(7, 32, 16, range_, grouped=True)
        assert gate(x).shape == x.shape
        expected = (3, 32, 1) if range_ == "long" else (3, 32, 7)
        assert gate.weights(x.transpose(1, 2)).shape == expected
    with pytest.raises(ValueError, match="range must be one of"):
        ContextGate(7, 32, 16, "medium", grouped=True)


def test_stage1_on_two_separated_groups(tmp_path):
    videos = two_groups()
    method = tiny(epochs=0).fit(videos, bits=16, seed=0, cache_dir=tmp_path)
    neighbourhood = method.neighbourhood
    group = np.repeat([0, 1], 20)
    labels = neighbourhood.pseudo_labels
    # no anchor is the pseudo-label of videos from both groups
    assert not set(labels[group == 0]) & set(labels[group == 1])
    rows, cols = neighbourhood.similar.nonzero()
    assert len(rows) > 0 and (group[rows] == group[cols]).all()
    assert neighbourhood.centres.shape[1] == 16  # PCA to the hidden width
    torch.testing.assert_close(method.label_centres, torch.from_numpy(neighbourhood.centres[labels]))
    # the partner / positive samplers honour the tags: similar partners and positives stay in the group
    relations = method.sample_relations(np.arange(40), np.random.default_rng(0))
    similar_partner = relations["target"] == 1
    assert (group[relations["partner"][similar_partner]] == group[similar_partner]).all()
    assert (group[relations["positive"]] == group).all()


def test_stage1_is_built_once_for_every_code_length(tmp_path, monkeypatch):
    builds = []  # a reused stage 1 builds no anchor neighbourhood
    real = mcmsh_module.build_anchor_neighbourhood
    monkeypatch.setattr(mcmsh_module, "build_anchor_neighbourhood", lambda *a, **k: builds.append(1) or real(*a, **k))
    videos = two_groups()
    first = tiny(epochs=0).fit(videos, bits=16, seed=0, cache_dir=tmp_path)
    first_built = len(builds) == 1
    second = tiny(epochs=0).fit(videos, bits=32, seed=0, cache_dir=tmp_path)
    assert first_built and not len(builds) == 2
    (folder,) = (tmp_path / MCMSH.stage1_kind).iterdir()
    key = ArtefactCache.read_key(folder)["key"]
    assert "bits" not in key and key["n_anchors"] == 20 and key["pca_dim"] == 16 and key["seed"] == 0
    np.testing.assert_array_equal(first.neighbourhood.anchors, second.neighbourhood.anchors)
    tiny(epochs=0).fit(videos, bits=16, seed=1, cache_dir=tmp_path)
    assert len(builds) == 2  # a new setting


def test_quadruplet_loss_margins_by_hand():
    anchor = torch.tensor([[1.0, 1, 1, 1], [1, 1, 1, 1]])
    positive = torch.tensor([[1.0, 1, 1, -1], [1, 1, 1, -1]])  # d(a, p) = 4
    negative1 = torch.tensor([[-1.0, 1, 1, 1], [-1, 1, 1, 1]])  # d(a, n1) = 4
    negative2 = torch.tensor([[-1.0, -1, -1, -1], [-1, 1, 1, 1]])  # d(n1, n2) = 12, then 0
    # bits 4: margins 1 and 1/16. Row 1: relu(1 + 4 - 4) + relu(1/16 + 4 - 12) = 1; row 2: 1 + 4.0625
    expected = (1 + 1 + 4.0625) / 2
    assert quadruplet_loss(anchor, positive, negative1, negative2).item() == pytest.approx(expected)
    far = torch.full((1, 4), -1.0)
    assert quadruplet_loss(anchor[:1], anchor[:1], far, -far).item() == 0  # d(a,n1) = 16 >= 1, d(n1,n2) = 16


def test_encoding_uses_alpha_one_and_keeps_exact_zeros():
    method = tiny()
    model = method.build_model(2, 4, 8)
    seen = {}

    def spy(frames, alpha=1.0):
        seen["alpha"] = alpha
        return torch.tensor([[0.5, -0.5, 0.0, 0.2, -0.2, 0.0, 1.0, -1.0]]), None

    model.forward = spy
    assert method.encode_batch(model, torch.zeros(1, 2, 4)).tolist() == [[1, -1, 0, 1, -1, 0, 1, -1]]
    assert seen["alpha"] == 1.0


def test_training_sharpens_tanh_with_the_epoch(tmp_path):
    method = tiny()
    method.fit(two_groups(), bits=16, seed=0)
    alphas = []
    real_forward = method.model.forward
    method.model.forward = lambda frames, alpha=1.0: (alphas.append(alpha), real_forward(frames, alpha))[1]
    for epoch in (0, 3):
        batch = read_batch(method, two_groups(), np.arange(4), epoch=epoch, generator=torch.Generator())
        method.training_losses(method.model, batch, epoch, torch.Generator().manual_seed(0))
    assert alphas == pytest.approx([1.0] * 5 + [2.0] * 5)  # five passes per step


def test_learning_rate_schedule_and_dataset_defaults():
    method = tiny(lr=3e-4)
    assert [method.learning_rate(e) for e in (0, 19, 20, 40, 55)] == pytest.approx([3e-4, 3e-4, 2.7e-4, 2.43e-4,
                                                                                  2.43e-4])
    assert method.learning_rate(1000) == 1e-4  # floor
    entry = method_registry.get("mcmsh")
    for dataset in ("fcvid", "activitynet", "yfcc"):
        params = resolve_params(entry, {}, dataset=dataset)
        assert (params["n_anchors"], params["hidden_dim"], params["batch_size"], params["epochs"], params["lr"]) \
            == (2000, 256, 256, 56, 3e-4)
    assert entry.family == "two_stage"


@pytest.mark.slow
def test_cli_run_on_tiny_synthetic_data_is_above_chance(tmp_path):
    dataset_params = {"n_train": 300, "n_database": 200, "n_frames": 6, "feature_dim": 32, "n_classes": 8}
    arguments = ["run", "--method", "mcmsh", "--dataset", "synthetic", "--bits", "16", "--device", "cpu",
                 "--results-dir", str(tmp_path)]
    for key, value in dataset_params.items():
        arguments += ["--dataset-param", f"{key}={value}"]
    for key, value in {"hidden_dim": 16, "n_anchors": 30, "epochs": 10, "batch_size": 32, "lr": 1e-2}.items():
        arguments += ["--set", f"{key}={value}"]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    (metrics_file,) = tmp_path.glob("runs/synthetic/16/mcmsh/*/metrics.json")
    metrics = json.loads(metrics_file.read_text())
    assert (tmp_path / "cache" / MCMSH.stage1_kind).is_dir()

    labels = dataset_registry.create("synthetic", **dataset_params).load().database_labels
    random_codes = np.where(np.random.default_rng(0).random((len(labels), 16)) < 0.5, 1, -1).astype(np.int8)
    chance = evaluate(random_codes, random_codes, labels, labels, query_is_database=True)
    assert metrics["map@20"] > chance["map@20"] + 0.05


def test_fresh_masking_gives_version_4_codes():
    data = fixed_videos()
    codes = tiny(masking="fresh").fit(data, bits=BITS, seed=3).encode(data)
    assert hashlib.sha256(np.ascontiguousarray(codes, dtype=np.int8).tobytes()).hexdigest() == VERSION_4_PIN


def test_masks_pile_up_within_an_epoch_and_the_unmasked_views_show_them():
    videos = two_groups()
    method = tiny().fit(videos, bits=16, seed=0)
    batch = read_batch(method, videos, np.arange(12), epoch=0, generator=torch.Generator().manual_seed(1))
    # video 0 is its own positive (the tags include the diagonal)
    related_indices, related = batch.related_indices.clone(), batch.related.clone()
    related_indices[12], related[12] = 0, batch.features[0]
    batch = dataclasses.replace(batch, related_indices=related_indices, related=related)
    method.on_epoch_start(method.model, 0, videos)

    def zeroed_frames(views):  # per view: the share of all-zero frames
        return [(view == 0).all(dim=2).float().mean().item() for view in views]

    first = method.views(batch, torch.Generator().manual_seed(0))
    again = method.views(batch, torch.Generator().manual_seed(0))  # the copy already carries the first masks
    assert 0.02 < min(zeroed_frames(first[:2])) and max(zeroed_frames(first[:2])) < 0.3
    assert sum(zeroed_frames(again)) > sum(zeroed_frames(first)) + 0.1
    # positives, negatives: not masked themselves, so what they show was masked in this epoch's earlier reads
    assert (first[0][0] == 0).all(dim=1).any()
    torch.testing.assert_close(first[2][0], first[0][0], rtol=0, atol=0)
    method.on_epoch_start(method.model, 1, videos)
    for fresh, old in zip(method.views(batch, torch.Generator().manual_seed(0)), first):
        torch.testing.assert_close(fresh, old, rtol=0, atol=0)


def test_too_few_anchors_for_the_pca_is_a_config_error():
    with pytest.raises(ConfigError, match="masking must be one of"):
        tiny(masking="copy").fit(two_groups(), bits=16, seed=0)
    with pytest.raises(ConfigError, match="needs n_anchors >= hidden_dim, got n_anchors=8"):
        tiny(n_anchors=8).fit(two_groups(), bits=16, seed=0)


def test_each_view_gets_its_own_forward_pass_and_batchnorm_statistics():
    videos = two_groups()
    method = tiny().fit(videos, bits=16, seed=0)
    model = method.model.train()
    batch = read_batch(method, videos, np.arange(12), epoch=0, generator=torch.Generator().manual_seed(1))
    norm = model.encoder.output_gates.gates["short"].excite_norm
    inputs = []
    norm.register_forward_hook(lambda module, args, output: inputs.append(args[0].detach().clone()))
    before = norm.running_mean.clone()
    method.training_losses(model, batch, 0, torch.Generator().manual_seed(0))
    # the authors' five passes (train.py:59-63): video, partner, positive, two negatives, 12 videos each
    assert [len(x) for x in inputs] == [12] * 5
    expected = before
    for x in inputs:  # running statistics updated once per view, each with that view's batch mean
        expected = 0.9 * expected + 0.1 * x.mean(dim=(0, 2))
    torch.testing.assert_close(norm.running_mean, expected)


@pytest.mark.parametrize("quantization", ["released", "paper"])
def test_quantization_term_gradient(quantization):
    videos = two_groups()
    method = tiny(quantization=quantization).fit(videos, bits=16, seed=0)
    model = method.model.train()
    model.zero_grad(set_to_none=True)  # training leaves its last step's gradients
    batch = read_batch(method, videos, np.arange(12), epoch=0, generator=torch.Generator().manual_seed(1))
    losses = method.training_losses(model, batch, 0, torch.Generator().manual_seed(0))
    assert losses["quantization"].item() > 0
    losses["quantization"].backward()
    largest = max(p.grad.abs().max().item() for p in model.parameters() if p.grad is not None)
    # released: LBSign passes the gradient straight through, so the two paths cancel exactly
    assert (largest == 0.0) if quantization == "released" else (largest > 0)


def test_pseudo_labels_come_from_the_raw_features():
    videos = two_groups()
    method = tiny(epochs=0).fit(videos, bits=16, seed=0)
    neighbourhood = method.neighbourhood
    assert neighbourhood.features.shape == (40, 20)  # the raw frame-mean features, not PCA-reduced
    assert neighbourhood.centres.shape[1] == 16  # the cluster term's targets are the PCA-reduced centres
    with pytest.raises(ConfigError, match="quantization must be one of"):
        tiny(quantization="off").fit(videos, bits=16, seed=0)
