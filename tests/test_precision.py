"""``--precision``: the autocast and gradient-scaler paths run on the CPU, are recorded and enter the run id."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from ssvh_bench import ArrayFeatures, ConfigError, DeepMethod, run
from ssvh_bench.config import make_specs
from ssvh_bench.checkpoints import read_model_weights
from ssvh_bench.precision import autocast_dtype
from ssvh_bench.run_folder import RunFolder
from tests.conftest import TINY, dataset_options, invoke

CPU = torch.device("cpu")
# run ids made before --precision existed (commit 73d1565; ConMH's id as it became when checkpoint_every left
# the deep methods' parameters, before the precision merge): precision auto must keep them
PINNED_IDS = {("conmh", 16, 0): "seed0-00783b2b63", ("itq", 16, 1): "seed1-46dacc3cce"}


class Probe(DeepMethod):
    """Records the dtype its model computes in, inside the loop's autocast."""

    def __init__(self, epochs: int = 2, batch_size: int = 8, lr: float = 0.05,
                 amp: bool = True) -> None:
        self.epochs, self.batch_size, self.lr, self.amp = epochs, batch_size, lr, amp
        self.seen: set[torch.dtype] = set()

    def build_model(self, n_frames, feature_dim, bits):
        return nn.Sequential(nn.Linear(feature_dim, 16), nn.Tanh(), nn.Linear(16, bits))

    def training_losses(self, model, batch, epoch, generator):
        out = model(batch.features.mean(dim=1))
        self.seen.add(out.dtype)
        return {"loss": ((1 - torch.tanh(out.float()).abs()) ** 2).mean()}

    def encode_batch(self, model, batch):
        return torch.sign(model(batch.mean(dim=1)))


def videos() -> ArrayFeatures:
    return ArrayFeatures(np.random.default_rng(0).normal(size=(32, 3, 8)).astype(np.float32))


@pytest.mark.parametrize("precision, amp, expected", [
    ("auto", True, None), ("auto", False, None), ("fp32", True, None),
    ("bf16", True, torch.bfloat16), ("fp16", True, torch.float16),
])
def test_cpu_autocast_dtype(precision, amp, expected):
    assert autocast_dtype(CPU, precision, amp) == expected


@pytest.mark.parametrize("precision, dtype", [("auto", torch.float32), ("fp32", torch.float32),
                                              ("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_training_steps_compute_in_the_chosen_precision_and_codes_stay_full_precision(precision, dtype):
    method = Probe().fit(videos(), bits=16, seed=0, precision=precision)
    assert method.seen == {dtype}
    codes = method.encode(videos())
    assert codes.dtype == np.int8 and set(np.unique(codes)) <= {-1, 0, 1}


def test_auto_is_fp32_on_the_cpu_and_bf16_runs_are_reproducible():
    auto = Probe().fit(videos(), bits=16, seed=0).encode(videos())
    fp32 = Probe().fit(videos(), bits=16, seed=0, precision="fp32").encode(videos())
    assert np.array_equal(auto, fp32)
    bf16 = Probe().fit(videos(), bits=16, seed=0, precision="bf16").encode(videos())
    assert np.array_equal(Probe().fit(videos(), bits=16, seed=0, precision="bf16").encode(videos()), bf16)


def test_fp16_steps_go_through_the_gradient_scaler_whose_state_is_checkpointed(tmp_path):
    Probe(epochs=2).fit(videos(), bits=16, seed=0, precision="fp16", workdir=tmp_path)
    state = torch.load(RunFolder(tmp_path).checkpoint, weights_only=False)
    assert state["scaler"] is not None and state["scaler"]["scale"] > 0
    assert state["scaler"]["_growth_tracker"] == 2 * 4  # 2 epochs x 4 batches without an inf gradient
    Probe(epochs=1).fit(videos(), bits=16, seed=0, precision="fp32", workdir=tmp_path / "fp32")
    assert torch.load(RunFolder(tmp_path / "fp32").checkpoint, weights_only=False)["scaler"] is None
    assert read_model_weights(RunFolder(tmp_path).checkpoint)  # a readable checkpoint


def test_auto_keeps_the_run_ids_made_before_precision_existed():
    for (method, bits, seed), run_id in PINNED_IDS.items():
        (spec,) = make_specs([method], "synthetic", [bits], [seed])
        assert spec.precision == "auto" and spec.run_id == run_id


def test_precision_enters_deep_run_ids_and_overrides_but_not_shallow_ones():
    (auto,), (bf16,), (fp16,) = (make_specs(["conmh"], "synthetic", [16], [0], precision=p)
                                 for p in ("auto", "bf16", "fp16"))
    assert len({auto.run_id, bf16.run_id, fp16.run_id}) == 3
    assert bf16.overrides == {"precision": "bf16"} and auto.overrides == {}
    (itq,) = make_specs(["itq"], "synthetic", [16], [1], precision="bf16")
    assert itq.precision == "auto" and itq.run_id == PINNED_IDS[("itq", 16, 1)]


def test_bad_precision_and_a_contradicting_amp_are_one_line_errors():
    with pytest.raises(ConfigError, match="unknown precision 'fp8'; use auto, fp32, bf16, fp16"):
        make_specs(["conmh"], "synthetic", [16], [0], precision="fp8")
    with pytest.raises(ConfigError, match="amp=False already means fp32"):
        make_specs(["conmh"], "synthetic", [16], [0], {"amp": [False]}, precision="bf16")
    result = invoke("run", "-m", "conmh", "-b", "16", "--precision", "fp8")
    assert result.exit_code != 0
    assert "unknown precision 'fp8'" in result.output and "Traceback" not in result.output


def test_a_bf16_run_records_its_precision_in_config_json(tmp_path):
    params = {"variant": "mini", "encoder_dim": 32, "encoder_heads": 2, "decoder_dim": 16, "decoder_depth": 1,
              "decoder_heads": 2, "epochs": 1, "batch_size": 16}
    result = invoke("run", "-m", "conmh", "-b", "16", "--device", "cpu", "--precision", "bf16",
                    *[o for k, v in params.items() for o in ("--set", f"{k}={v}")], *dataset_options(TINY),
                    "--results-dir", tmp_path)
    assert result.exit_code == 0, result.output
    (config_path,) = tmp_path.rglob("config.json")
    config = json.loads(config_path.read_text())
    assert config["precision"] == "bf16" and config["compile"] is False
    (outcome,) = run("conmh", params=params, dataset_params=TINY, bits=16, results_dir=tmp_path, device="cpu",
                     precision="bf16")
    assert outcome.status == "skipped"  # the same run: the API and the command line agree on its id
    assert outcome.spec.run_id == config["run_id"]
