"""run.log and the experiment trackers (``--logger``), read back with the trackers' own readers: TensorBoard's
EventAccumulator, MlflowClient on the run's store, and W&B's offline run file (when wandb is installed)."""

from __future__ import annotations

import json
import struct

import pytest

import ssvh_bench
from ssvh_bench import tracking, train
from ssvh_bench.errors import ConfigError
from ssvh_bench.run_folder import RunFolder

from conftest import TINY, dataset_options, invoke

CONMH = {"epochs": 4, "batch_size": 16, "encoder_dim": 16, "decoder_dim": 8}
STEPS = [0, 1, 2, 3, 4]  # step 0: the untrained model (--eval-every); step N: after epoch N


@pytest.fixture(autouse=True)
def local_stores(monkeypatch):
    """Each tracker's default store (in the results folder), whatever the environment says."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "WANDB_MODE", "WANDB_API_KEY", "WANDB_PROJECT"):
        monkeypatch.delenv(name, raising=False)


def conmh_run(results_dir, **options):
    return ssvh_bench.run("conmh", "synthetic", bits=16, params=CONMH, dataset_params=TINY, results_dir=results_dir,
                          eval_every=1, checkpoint_minutes=0, **options)[0]


def tensorboard_steps(folder: RunFolder) -> dict[str, list[int]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder.tensorboard))
    events.Reload()  # honours the purge a resumed run asks for
    return {tag: [event.step for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def mlflow_run(results_dir, folder: RunFolder):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{results_dir / tracking.MLFLOW_DB}")
    run_id = folder.read_trackers()["mlflow"]
    history = {key: [m.step for m in client.get_metric_history(run_id, key)]
               for key in client.get_run(run_id).data.metrics}
    return client.get_run(run_id), history


def kill_in_epoch(monkeypatch, epoch: int) -> None:
    from ssvh_bench.methods.conmh import ConMH

    original = ConMH.training_losses

    def dying(self, model, batch, at, generator):
        if at == epoch:
            raise RuntimeError("killed")
        return original(self, model, batch, at, generator)

    monkeypatch.setattr(ConMH, "training_losses", dying)


@pytest.mark.slow
def test_tensorboard_and_mlflow_follow_a_run_and_a_resumed_run_logs_no_step_twice(tmp_path, monkeypatch):
    with monkeypatch.context() as patch:
        kill_in_epoch(patch, 3)  # epochs 0-2 trained and logged; the checkpoint holds 2 (the third is not saved)
        save = train.save_training_checkpoint
        patch.setattr(train, "save_training_checkpoint",
                      lambda path, state: None if state["epochs_done"] == 3 else save(path, state))
        killed = conmh_run(tmp_path, logger="tensorboard,mlflow")
    assert killed.status == "failed"
    folder = RunFolder(killed.folder)
    run, history = mlflow_run(tmp_path, folder)
    assert run.info.status == "FAILED" and history["train/loss"] == [1, 2, 3]

    resumed = conmh_run(tmp_path, logger="tensorboard,mlflow")
    assert resumed.status == "finished" and resumed.folder == killed.folder

    steps = tensorboard_steps(folder)
    assert steps["train/loss"] == [1, 2, 3, 4] and steps["eval/map@20"] == STEPS
    assert steps["health/constant_bits"] == STEPS and steps["health/in_window"] == STEPS
    assert steps["final/map@20"] == [4]
    run, history = mlflow_run(tmp_path, folder)
    assert run.info.status == "FINISHED"
    assert history["train/loss"] == [1, 2, 3, 4] and history["eval/map_at_20"] == STEPS
    assert history["health/top_code_share"] == STEPS and history["final/map_at_20"] == [4]
    assert run.data.metrics["final/map_at_20"] == pytest.approx(resumed.metrics["map@20"])
    assert run.data.metrics["health/distinct_codes"] == resumed.metrics["health"]["distinct_codes"]
    # the resolved configuration as parameters, as the first process logged them
    config = folder.read_config()
    assert run.data.params["method"] == "conmh" and run.data.params["bits"] == "16"
    assert json.loads(run.data.params["method_params.epochs"]) == config["method_params"]["epochs"] == 4
    assert "resumed_at" not in run.data.params

    log = folder.run_log.read_text()
    assert log.count("---- resumed") == 1 and "run failed: killed" in log and "Traceback" in log
    first, second = log.split("---- resumed")
    assert [f"epoch {n}/4" in first for n in (1, 2, 3, 4)] == [True, True, True, False]
    assert [f"epoch {n}/4" in second for n in (1, 2, 3, 4)] == [False, False, True, True]  # epoch 3 is redone
    assert "conmh: code health: constant_bits" in second


@pytest.mark.slow
def test_run_log_gets_every_progress_line_under_quiet_and_config_file_options_apply(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('epochs = 2\nbatch_size = 16\nencoder_dim = 16\ndecoder_dim = 8\n\n[options]\n'
                      'logger = "tensorboard"\neval_every = 1\n')
    result = invoke("--quiet", "run", "-m", "conmh", "-b", "16", "--config", config, "--results-dir", tmp_path,
                    *dataset_options(TINY))
    assert result.exit_code == 0, result.output
    assert "epoch 1/2" not in result.output  # --quiet quiets the terminal only
    folder = RunFolder.all(tmp_path)[0]
    log = folder.run_log.read_text()
    assert "INFO conmh: training on 64 videos" in log and "INFO epoch 1/2  loss" in log and "epoch 2/2" in log
    assert "videos/s" in log and "eta" in log and "map@20" in log and "INFO conmh: evaluating" in log
    assert "resumed" not in log
    assert tensorboard_steps(folder)["eval/map@20"] == [0, 1, 2]  # [options] gave logger and eval_every


def test_an_unknown_or_missing_tracker_is_one_line_before_anything_is_written(tmp_path, monkeypatch):
    result = invoke("run", "-m", "lsh", "--logger", "tensorbord", "--results-dir", tmp_path, *dataset_options(TINY))
    assert result.exit_code == 2
    assert "unknown logger 'tensorbord'; choose from tensorboard, mlflow, wandb" in result.output
    monkeypatch.setitem(tracking.TRACKERS, "mlflow", ("no_such_module_here", "mlflow"))
    result = invoke("run", "-m", "lsh", "--logger", "tensorboard,mlflow", "--results-dir", tmp_path,
                    *dataset_options(TINY))
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1] == (
        "error: --logger mlflow needs the no_such_module_here package: pip install 'ssvh-bench[mlflow]'")
    assert not (tmp_path / "runs").exists()
    with pytest.raises(ConfigError, match="unknown logger 'csv'"):
        ssvh_bench.run("lsh", dataset_params=TINY, results_dir=tmp_path, logger=["tensorboard", "csv"])


def test_tracker_names_and_parameters():
    assert tracking.parse_loggers(" tensorboard, mlflow,tensorboard ") == ("tensorboard", "mlflow")
    assert tracking.parse_loggers(["wandb"]) == ("wandb",) and tracking.parse_loggers("") == ()
    row = {"epoch": 2, "loss": 1.5, "lr": 0.1, "map@20": 0.4, "constant_bits": 3, "in_window": float("nan"),
           "resumed": 1}
    assert tracking.tracker_names(row) == {"train/loss": 1.5, "train/lr": 0.1, "eval/map@20": 0.4,
                                           "health/constant_bits": 3.0}
    assert tracking.flat_params({"method": "itq", "bits": 16, "method_params": {"n_iter": 50, "x": [1, 2]}}) == {
        "method": "itq", "bits": "16", "method_params.n_iter": "50", "method_params.x": "[1, 2]"}


def wandb_records(path):
    """The records of a W&B run file (``run-<id>.wandb``: a header, then LevelDB-log blocks of the library's
    protobuf ``Record``s), as the library's own messages."""
    from wandb.proto import wandb_internal_pb2

    data, block, position, pending, records = path.read_bytes(), 32768, 7, b"", []
    assert data[:4] == b":W&B"
    while position + 7 <= len(data):
        left = block - position % block
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        if left < 7 or (length == 0 and kind == 0):  # the rest of a block is padding
            position += left
            continue
        pending += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


@pytest.mark.slow
def test_wandb_offline_run_holds_the_history(tmp_path):
    pytest.importorskip("wandb")
    result = conmh_run(tmp_path, logger="wandb")
    assert result.status == "finished"
    run_id = RunFolder(result.folder).read_trackers()["wandb"]
    (path,) = (tmp_path / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb")
    rows = [{item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            for record in wandb_records(path) if record.WhichOneof("record_type") == "history"]
    assert [row["_step"] for row in rows] == STEPS
    assert [row["_step"] for row in rows if "train/loss" in row] == [1, 2, 3, 4]
    assert all("eval/map@20" in row and "health/constant_bits" in row for row in rows)
    assert rows[-1]["final/map@20"] == pytest.approx(result.metrics["map@20"])
