from __future__ import annotations


import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from method_helpers import reference_shapes
from ssvh_bench import ArrayFeatures, Batch, ConfigError, DataError, method_registry
from ssvh_bench.cli import app
from ssvh_bench.config import resolve_params
from ssvh_bench.evaluation import evaluate_checkpoint
from ssvh_bench.methods.conmh import VARIANTS, ConMHNetwork
from ssvh_bench.nn import n_visible_frames, sample_views



TINY_ARCHITECTURE = {name: value for name, value in method_registry.get("conmh").test_params.items()
                     if name not in ("epochs", "batch_size")}


def tiny(**params):
    entry = method_registry.get("conmh")
    return entry.create(**{**entry.test_params, **params})


def videos(n=24, frames=5, dim=12, seed=0):
    return ArrayFeatures(np.random.default_rng(seed).normal(size=(n, frames, dim)).astype(np.float32))




def test_small_variant_matches_the_reference_state_dict():
    model = ConMHNetwork(4096, 25, 64, VARIANTS["small"])
    ours = {name: tuple(value.shape) for name, value in model.state_dict().items()}
    assert list(ours) == list(reference_shapes("conmh_small_fcvid64_state_dict.txt"))  # same names, same order
    assert ours == reference_shapes("conmh_small_fcvid64_state_dict.txt")


def test_mask_token_starts_from_a_normal_truncated_at_one_sd():
    torch.manual_seed(0)
    token = ConMHNetwork(12, 5, 16, VARIANTS["mini"]).mask_token.detach()  # 192 values
    # the reference truncates N(0, 0.02) at +-0.02: sd 0.02 * 0.54 = 0.0108 (untruncated, 32% would lie beyond)
    assert token.abs().max() <= 0.02
    assert 0.0095 < token.std() < 0.0122


@pytest.mark.parametrize(("feature_dim", "n_frames", "expected"), [(4096, 25, 12_249_248), (2048, 30, 11_329_696)])
def test_parameter_counts_of_the_published_configurations(feature_dim, n_frames, expected):
    model = ConMHNetwork(feature_dim, n_frames, 64, VARIANTS["small"])
    assert sum(p.numel() for p in model.parameters()) == expected


@pytest.mark.parametrize("n_frames", [25, 30])
@pytest.mark.parametrize("ratio", [0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9])
def test_view_sampler(n_frames, ratio):
    n_videos = 6
    visible, masked = sample_views(n_videos, n_frames, ratio, torch.Generator().manual_seed(0), torch.device("cpu"))
    n_visible = n_frames - int(ratio * n_frames)
    assert visible.shape == (2 * n_videos, n_visible) and masked.shape == (2 * n_videos, n_frames - n_visible)
    for row in range(2 * n_videos):
        shown, hidden = visible[row].tolist(), masked[row].tolist()
        assert shown == sorted(shown) and hidden == sorted(hidden)  # temporal order
        assert sorted(shown + hidden) == list(range(n_frames))  # a partition of the frames
    for video in range(n_videos):
        overlap = set(visible[video].tolist()) & set(visible[n_videos + video].tolist())
        # view 1 = first n_visible of a permutation, view 2 = its last n_visible: disjoint while 2v <= T
        assert len(overlap) == max(0, 2 * n_visible - n_frames)


@pytest.mark.parametrize(("n_frames", "ratio", "n_visible"),
                         [(25, 0.75, 7), (25, 0.5, 13), (25, 0.1, 23), (25, 0.9, 3), (30, 0.5, 15), (30, 0.75, 8),
                          (30, 0.1, 27), (30, 0.9, 3)])
def test_visible_counts_by_hand(n_frames, ratio, n_visible):
    assert n_visible_frames(n_frames, ratio) == n_visible


def test_views_differ_between_generator_states():
    generator = torch.Generator().manual_seed(0)
    first, _ = sample_views(4, 25, 0.75, generator, torch.device("cpu"))
    second, _ = sample_views(4, 25, 0.75, generator, torch.device("cpu"))
    assert not torch.equal(first, second)


def test_forward_backward_every_parameter_gets_a_gradient():
    method = tiny()
    torch.manual_seed(0)
    model = method.build_model(5, 12, 16)
    batch = torch.randn(6, 5, 12)
    losses = method.training_losses(model, Batch(batch, torch.arange(6)), 0, torch.Generator().manual_seed(0))
    assert set(losses) == {"loss", "reconstruction", "contrastive"}
    assert losses["loss"].item() == pytest.approx(
        losses["reconstruction"].item() + method.contrastive_weight * losses["contrastive"].item(), rel=1e-6)
    losses["loss"].backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_reconstruction_targets_are_the_masked_frames():
    method = tiny(mask_ratio=0.5)
    model = method.build_model(4, 3, 8)
    seen = {}

    def spy(visible_frames, visible, masked):
        seen.update(frames=visible_frames, visible=visible, masked=masked)
        return torch.zeros(len(masked), masked.shape[1], 3), torch.ones(len(masked), visible.shape[1], 8)

    batch = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    model.forward = spy
    losses = method.training_losses(model, Batch(batch, torch.arange(2)), 0, torch.Generator().manual_seed(1))
    video = torch.tensor([0, 1, 0, 1])
    for row in range(4):
        torch.testing.assert_close(seen["frames"][row], batch[video[row], seen["visible"][row]])
    # predicting zeros: each view's MSE is the mean square of its masked frames
    expected = sum((batch[video[rows][:, None], seen["masked"][rows]] ** 2).mean() for rows in (slice(0, 2), slice(2, 4)))
    assert losses["reconstruction"].item() == pytest.approx(expected.item())


def test_training_lowers_the_loss_and_codes_have_the_protocol_form(tmp_path):
    data = videos(n=32, frames=6)
    method = tiny(epochs=12, batch_size=16, lr=3e-3).fit(data, bits=16, seed=0, workdir=tmp_path)
    history = (tmp_path / "history.csv").read_text().splitlines()
    assert history[0] == "epoch,loss,reconstruction,contrastive,lr,seconds,videos_per_s"
    first, last = (float(history[i].split(",")[2]) for i in (1, -1))
    assert last < first  # reconstruction error falls
    codes = method.encode(data)
    assert codes.shape == (32, 16) and codes.dtype == np.int8
    assert set(np.unique(codes)) <= {-1, 0, 1}


def test_even_frame_counts_can_give_zero_code_entries():
    method = tiny()
    method.bits = 8
    model = method.build_model(2, 4, 8)
    model.frame_codes = lambda frames: torch.tensor([[[1.0] * 8, [-1.0] * 4 + [1.0] * 4]])
    codes = method.encode_batch(model, torch.zeros(1, 2, 4))
    assert codes.tolist() == [[0, 0, 0, 0, 1, 1, 1, 1]]


def test_learning_rate_schedule():
    method = tiny(lr=1e-4)
    assert [method.learning_rate(e) for e in (0, 19, 20, 40)] == pytest.approx([1e-4, 1e-4, 9e-5, 8.1e-5])
    assert method.learning_rate(10_000) == 1e-5  # floor


def test_dataset_defaults_follow_the_paper():
    entry = method_registry.get("conmh")
    fcvid = resolve_params(entry, {}, dataset="fcvid")
    assert (fcvid["mask_ratio"], fcvid["batch_size"], fcvid["epochs"], fcvid["tau_plus"]) == (0.75, 512, 800, 0.1)
    anet = resolve_params(entry, {}, dataset="activitynet")
    assert (anet["mask_ratio"], anet["tau_plus"], anet["contrastive_weight"], anet["batch_size"], anet["epochs"]) == \
        (0.5, 0.05, 0.2, 128, 500)
    assert resolve_params(entry, {}, dataset="yfcc")["epochs"] == 40
    synthetic = resolve_params(entry, {}, dataset="synthetic")
    assert (synthetic["variant"], synthetic["epochs"], synthetic["batch_size"]) == ("mini", 8, 64)
    assert (synthetic["lr"], synthetic["mask_ratio"], synthetic["tau_plus"]) == (1e-4, 0.75, 0.1)  # the paper's


@pytest.mark.parametrize(("params", "message"), [({"variant": "huge"}, "unknown variant 'huge'"),
                                                 ({"mask_ratio": 0.1}, "leaves 5 of 5 frames visible")])
def test_bad_parameters_are_config_errors(params, message):
    with pytest.raises(ConfigError, match=message):
        tiny(**params).fit(videos(), bits=16, seed=0)


@pytest.mark.parametrize("prefix", ["", "module."])
def test_released_checkpoint_format_loads_with_and_without_module_prefix(tmp_path, prefix):
    data = videos()
    trained = tiny(epochs=2).fit(data, bits=16, seed=0)
    released = {"epoch": 2, "model_state_dict": {prefix + k: v for k, v in trained.model.state_dict().items()}}
    torch.save(released, tmp_path / "conmh.pth")
    loaded = tiny().load_checkpoint(tmp_path / "conmh.pth", bits=16, n_frames=5, feature_dim=12)
    np.testing.assert_array_equal(loaded.encode(data), trained.encode(data))


def test_checkpoint_that_does_not_fit_is_a_data_error(tmp_path):
    trained = tiny(epochs=1).fit(videos(), bits=16, seed=0)
    torch.save({"model_state_dict": trained.model.state_dict()}, tmp_path / "c.pth")
    with pytest.raises(DataError, match=r"does not fit ConMH with 32 bits.*binary.weight \(16, 256\) \(model: \(32, 256\)\)"):
        tiny().load_checkpoint(tmp_path / "c.pth", bits=32, n_frames=5, feature_dim=12)
    with pytest.raises(DataError, match="no checkpoint file"):
        tiny().load_checkpoint(tmp_path / "missing.pth", bits=16, n_frames=5, feature_dim=12)


def test_evaluate_checkpoint_and_cli(tmp_path, tiny_plugins):
    from ssvh_bench import dataset_registry

    splits = dataset_registry.create("tiny-blobs").load()
    trained = tiny(epochs=2).fit(splits.train, bits=16, seed=0)
    torch.save({"model_state_dict": trained.model.state_dict()}, tmp_path / "w.pth")
    metrics = evaluate_checkpoint("conmh", tmp_path / "w.pth", "tiny-blobs", bits=16,
                                  method_params=TINY_ARCHITECTURE, device="cpu")
    assert 0 <= metrics["map@5"] <= 1

    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", "--method", "conmh", "--checkpoint", str(tmp_path / "w.pth"),
                                 "--dataset", "tiny-blobs", "--bits", "16", "--device", "cpu"])
    # the CLI builds ConMH with its defaults (the small variant): the test weights do not fit it
    assert result.exit_code == 2 and "does not fit ConMH" in result.output
    result = runner.invoke(app, ["evaluate", "--method", "conmh"])
    assert result.exit_code == 2 and "--method, --checkpoint and --dataset" in result.output


def test_cli_run_trains_writes_history_and_checkpoint_and_reuses_it(tmp_path, tiny_plugins):
    runner = CliRunner()
    sizes = [f"--set={name}={value}" for name, value in TINY_ARCHITECTURE.items()]
    argv = ["run", "--method", "conmh", "--dataset", "tiny-blobs", "--bits", "16", *sizes, "--set", "epochs=2", "--set", "batch_size=8", "--device", "cpu", "--results-dir", str(tmp_path)]
    result = runner.invoke(app, argv)
    assert result.exit_code == 0, result.output
    folder = next((tmp_path / "runs").glob("*/*/*/*/metrics.json")).parent
    assert {"config.json", "metrics.json", "codes.npz", "history.csv", "checkpoints"} <= {p.name for p in folder.iterdir()}
    assert len((folder / "history.csv").read_text().splitlines()) == 3
    checkpoint = folder / "checkpoints" / "last.pt"
    written = checkpoint.stat().st_mtime_ns
    (folder / "metrics.json").unlink()  # an unfinished run: training is complete, so it only re-encodes
    assert runner.invoke(app, argv).exit_code == 0
    assert checkpoint.stat().st_mtime_ns == written and (folder / "metrics.json").is_file()
