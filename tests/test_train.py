from __future__ import annotations

import csv
import os
import signal

import numpy as np
import pytest
import torch
from torch import nn

from ssvh_bench import ArrayFeatures, ConfigError, DeepMethod, Related, TrainingError, TrainingHooks, train_model
from ssvh_bench import interruption
from ssvh_bench.checkpoints import read_model_weights
from ssvh_bench.devices import torch_device
from ssvh_bench.run_folder import CHECKPOINT_DIR, CHECKPOINT_FILE


class Interrupted(Exception):
    """Stands in for a crash or a killed job."""


class Toy(DeepMethod):
    """A small deep method that uses every source of randomness the loop controls (order, generator, dropout)."""

    fail_at_epoch = -1  # not a constructor parameter: a test switch that must not change the run's settings
    nan_at_epoch = -1

    def __init__(self, epochs: int = 4, batch_size: int = 8, lr: float = 0.05, amp: bool = True) -> None:
        self.epochs, self.batch_size, self.lr, self.amp = epochs, batch_size, lr, amp

    def build_model(self, n_frames, feature_dim, bits):
        return nn.Sequential(nn.Linear(feature_dim, 16), nn.Dropout(0.3), nn.Linear(16, bits))

    def learning_rate(self, epoch):
        return self.lr * 0.5**epoch

    def training_losses(self, model, batch, epoch, generator):
        if epoch == self.fail_at_epoch:
            raise Interrupted(f"epoch {epoch}")
        features = batch.features
        noisy = features + 0.1 * torch.randn(features.shape, generator=generator, device=features.device)
        out = torch.tanh(model(noisy.mean(dim=1)))
        spread = out.var(dim=0).mean()
        loss = (1 - out.abs()).mean() - spread
        if epoch == self.nan_at_epoch:
            loss = loss * float("nan")
        return {"loss": loss, "spread": spread}

    def encode_batch(self, model, batch):
        return torch.sign(model(batch.mean(dim=1)))


class RecordingFeatures(ArrayFeatures):
    def __init__(self, array):
        super().__init__(array)
        self.calls = []

    def iter_batches(self, batch_size, **options):
        self.calls.append((batch_size, options))
        yield from super().iter_batches(batch_size, **options)

    def read(self, indices):
        self.calls.append(("read", np.array(indices)))
        return super().read(indices)


def videos(n=20, seed=0):
    return ArrayFeatures(np.random.default_rng(seed).normal(size=(n, 3, 6)).astype(np.float32))


def checkpoint_of(workdir):
    return torch.load(workdir / CHECKPOINT_DIR / CHECKPOINT_FILE, weights_only=True)


def read_history(workdir):
    with open(workdir / "history.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_resume_after_interruption_reproduces_the_uninterrupted_run(tmp_path):
    data = videos()
    full = Toy().fit(data, bits=8, seed=3, workdir=tmp_path / "full", checkpoint_minutes=0)

    broken = Toy()
    broken.fail_at_epoch = 2
    with pytest.raises(Interrupted):
        broken.fit(data, bits=8, seed=3, workdir=tmp_path / "resumed", checkpoint_minutes=0)  # every epoch
    assert checkpoint_of(tmp_path / "resumed")["epochs_done"] == 2
    resumed = Toy().fit(data, bits=8, seed=3, workdir=tmp_path / "resumed", checkpoint_minutes=60)

    np.testing.assert_array_equal(resumed.encode(data), full.encode(data))
    for name, value in full.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value), name
    losses = [[row["loss"] for row in read_history(tmp_path / run)] for run in ("full", "resumed")]
    assert len(losses[0]) == 4 and losses[0] == losses[1]


class Paired(Toy):
    """Toy whose batches each bring, as related videos, the videos ``shift`` places on (shift drawn per batch)."""

    def __init__(self, epochs: int = 2, batch_size: int = 8, lr: float = 0.05, amp: bool = True) -> None:
        super().__init__(epochs, batch_size, lr, amp)
        self.starts, self.seen = [], []

    def related_indices(self, indices, epoch, generator):
        shift = int(torch.randint(1, 3, (1,), generator=generator))
        return Related((indices + shift) % 20, {"shift": np.full(len(indices), shift)})

    def on_epoch_start(self, model, epoch, train):
        self.starts.append((epoch, model.training, len(self.seen)))

    def training_losses(self, model, batch, epoch, generator):
        self.seen.append(batch)
        return super().training_losses(model, batch, epoch, generator)


def test_related_videos_are_read_with_their_batch_and_epoch_start_runs_first():
    data = videos()
    method = Paired().fit(data, bits=8, seed=0)
    # 20 videos, batches of 8, the ragged rest dropped: 2 batches per epoch; the hook runs before each epoch
    assert method.starts == [(0, True, 0), (1, True, 2)]
    assert len(method.seen) == 4
    for batch in method.seen:
        shift = int(batch.extras["shift"][0])
        assert shift in (1, 2) and batch.extras["shift"].tolist() == [shift] * 8
        assert batch.related_indices.tolist() == ((batch.indices + shift) % 20).tolist()
        torch.testing.assert_close(batch.related, torch.from_numpy(data.read(batch.related_indices.numpy())))
    shifts = [int(batch.extras["shift"][0]) for batch in method.seen]
    assert shifts == [int(b.extras["shift"][0]) for b in Paired().fit(data, bits=8, seed=0).seen]  # seeded


class Reconstruct(TrainingHooks):
    """A model that is not a hashing method: it learns to reproduce frame means."""

    epochs, batch_size, lr, amp = 3, 8, 0.05, False
    fail = False  # a test switch: raise if any epoch is trained

    def training_losses(self, model, batch, epoch, generator):
        if self.fail:
            raise Interrupted(f"epoch {epoch}")
        means = batch.features.mean(dim=1)
        loss = ((model(means) - means) ** 2).mean()
        return {"loss": loss}


def test_train_model_trains_bare_hooks_and_writes_where_it_is_told(tmp_path):
    history, checkpoint = tmp_path / "logs" / "h.csv", tmp_path / "state" / "c.pt"
    model = train_model(Reconstruct(), lambda: nn.Linear(6, 6), videos(), seed=0, device="cpu",
                        settings={"what": "reconstruct"}, history_path=history, checkpoint_path=checkpoint)
    with open(history, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["epoch"] for row in rows] == ["0", "1", "2"] and float(rows[2]["loss"]) < float(rows[0]["loss"])
    assert torch.load(checkpoint, weights_only=True)["epochs_done"] == 3
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["c.pt", "h.csv"]  # nothing else
    finished = Reconstruct()
    finished.fail = True
    again = train_model(finished, lambda: nn.Linear(6, 6), videos(), seed=0, device="cpu",
                        settings={"what": "reconstruct"}, checkpoint_path=checkpoint)
    assert torch.equal(again.weight, model.weight)  # loaded from the finished checkpoint, not retrained
    with pytest.raises(TrainingError, match="other settings"):
        train_model(Reconstruct(), lambda: nn.Linear(6, 6), videos(), seed=0, device="cpu",
                    settings={"what": "else"}, checkpoint_path=checkpoint)


def test_other_seed_gives_other_weights(tmp_path):
    data = videos()
    a = Toy(epochs=1).fit(data, bits=8, seed=0)
    b = Toy(epochs=1).fit(data, bits=8, seed=1)
    assert not torch.equal(a.model[0].weight, b.model[0].weight)


def test_finished_run_is_loaded_not_retrained(tmp_path):
    data = videos()
    first = Toy(epochs=2).fit(data, bits=8, seed=0, workdir=tmp_path)
    again = Toy(epochs=2)
    again.fail_at_epoch = 0  # raises if any epoch were trained again
    again.fit(data, bits=8, seed=0, workdir=tmp_path)
    np.testing.assert_array_equal(again.encode(data), first.encode(data))
    assert len(read_history(tmp_path)) == 2


def test_checkpoint_from_other_settings_is_refused(tmp_path):
    Toy(epochs=1).fit(videos(), bits=8, seed=0, workdir=tmp_path)
    with pytest.raises(TrainingError, match="other settings"):
        Toy(epochs=2, lr=0.1).fit(videos(), bits=8, seed=0, workdir=tmp_path)


def test_nan_loss_stops_naming_the_epoch_and_keeps_the_last_good_checkpoint(tmp_path):
    method = Toy(epochs=5)
    method.nan_at_epoch = 2
    with pytest.raises(TrainingError, match=r"training stopped in epoch 2: loss = nan.*2 epochs done"):
        method.fit(videos(), bits=8, seed=0, workdir=tmp_path, checkpoint_minutes=0)
    state = checkpoint_of(tmp_path)
    assert state["epochs_done"] == 2
    assert all(torch.isfinite(value).all() for value in state["model"].values())
    assert len(read_history(tmp_path)) == 2


def test_nan_in_first_epoch_says_there_is_no_checkpoint(tmp_path):
    method = Toy(epochs=2)
    method.nan_at_epoch = 0
    with pytest.raises(TrainingError, match="epoch 0.*no checkpoint"):
        method.fit(videos(), bits=8, seed=0, workdir=tmp_path, checkpoint_minutes=0)


def test_history_columns_and_values(tmp_path):
    Toy(epochs=3).fit(videos(20), bits=8, seed=0, workdir=tmp_path)
    rows = read_history(tmp_path)
    assert list(rows[0]) == ["epoch", "loss", "spread", "lr", "seconds", "videos_per_s"]
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert [float(r["lr"]) for r in rows] == [0.05, 0.025, 0.0125]
    for row in rows:  # 20 videos in batches of 8 with the ragged last batch dropped: 16 per epoch
        assert float(row["videos_per_s"]) * float(row["seconds"]) == pytest.approx(16)


def test_interrupted_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    real_save, saves = torch.save, []

    def failing_second_save(state, path):
        saves.append(path)
        if len(saves) == 2:
            with open(path, "wb") as handle:
                handle.write(b"half a checkpoint")
            raise OSError("disk full")
        real_save(state, path)

    monkeypatch.setattr(torch, "save", failing_second_save)
    with pytest.raises(OSError, match="disk full"):
        Toy(epochs=3).fit(videos(), bits=8, seed=0, workdir=tmp_path, checkpoint_minutes=0)
    monkeypatch.setattr(torch, "save", real_save)
    assert [p.name for p in (tmp_path / CHECKPOINT_DIR).iterdir()] == [CHECKPOINT_FILE]
    assert checkpoint_of(tmp_path)["epochs_done"] == 1
    Toy(epochs=3).fit(videos(), bits=8, seed=0, workdir=tmp_path)
    assert checkpoint_of(tmp_path)["epochs_done"] == 3


def test_each_epoch_reads_whole_batches_of_its_own_seeded_order_and_encoding_reads_in_order():
    data = RecordingFeatures(videos().array)
    method = Toy(epochs=3).fit(data, bits=8, seed=0)
    reads = [indices for kind, indices in data.calls if kind == "read"]
    assert [len(indices) for indices in reads] == [8] * 6  # 20 videos, batch 8: two whole batches per epoch
    epochs = [np.concatenate(reads[i:i + 2]) for i in (0, 2, 4)]
    assert all(len(set(order)) == 16 for order in epochs)  # no video twice in an epoch
    assert len({tuple(order) for order in epochs}) == 3  # and each epoch its own order
    data.calls = []
    method.encode(data)
    assert data.calls[0] == (8, {"shuffle": False})


def test_a_file_backed_split_is_trained_in_its_own_near_sequential_batch_order(tmp_path, monkeypatch):
    from ssvh_bench.data import HDF5Features
    from ssvh_bench.train import ORDER_STREAM, epoch_seed
    from real_layouts import write_features

    data = HDF5Features(write_features(tmp_path / "train.h5", videos(40).array), block_videos=8, window_blocks=2)
    reads = []
    monkeypatch.setattr(HDF5Features, "read", lambda self, index, read=HDF5Features.read: (
        reads.append(np.array(index)), read(self, index))[1])
    Toy(epochs=2).fit(data, bits=8, seed=5)
    expected = [batch for epoch in range(2) for batch in
                data.batch_order(8, shuffle=True, seed=epoch_seed(5, epoch, ORDER_STREAM), drop_last=True)]
    assert all(np.all(np.diff(batch) > 0) for batch in expected)  # sorted within a batch: one pass per read
    assert [batch.tolist() for batch in reads[:len(expected)]] == [batch.tolist() for batch in expected]


def test_training_set_smaller_than_a_batch_is_one_batch(tmp_path):
    Toy(epochs=1, batch_size=64).fit(videos(5), bits=8, seed=0, workdir=tmp_path)
    row = read_history(tmp_path)[0]
    assert float(row["videos_per_s"]) * float(row["seconds"]) == pytest.approx(5)


def test_encode_is_deterministic_in_eval_mode_and_state_dict_round_trips():
    data = videos()
    method = Toy(epochs=1).fit(data, bits=8, seed=0)
    codes = method.encode(data)
    assert codes.dtype == np.int8 and codes.shape == (20, 8)
    assert not method.model.training
    np.testing.assert_array_equal(method.encode(data), codes)  # dropout is off
    copy = Toy().load_state_dict(method.state_dict())
    np.testing.assert_array_equal(copy.encode(data), codes)
    assert method.n_parameters == copy.n_parameters == 6 * 16 + 16 + 16 * 8 + 8


def test_read_model_weights_accepts_loop_checkpoints(tmp_path):
    method = Toy(epochs=1).fit(videos(), bits=8, seed=0, workdir=tmp_path)
    weights = read_model_weights(tmp_path / CHECKPOINT_DIR / CHECKPOINT_FILE)
    assert set(weights) == set(method.model.state_dict())


def test_bad_device_names_are_config_errors():
    with pytest.raises(ConfigError, match="unknown device 'gpu0'"):
        torch_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            torch_device("cuda")
    assert torch_device("cpu") == torch.device("cpu")



@pytest.mark.parametrize("n_videos, sizes", [(36, [8, 8, 8, 8, 4]), (33, [8, 8, 8, 8])])
def test_a_last_partial_batch_is_trained_on_when_the_method_keeps_it_but_never_a_lone_video(n_videos, sizes,
                                                                                            monkeypatch):
    from method_helpers import tiny
    from ssvh_bench.methods.conmh import ConMH

    seen = []
    losses = ConMH.training_losses
    monkeypatch.setattr(ConMH, "training_losses",
                        lambda self, model, batch, epoch, generator: seen.append(len(batch.indices))
                        or losses(self, model, batch, epoch, generator))
    data = ArrayFeatures(np.abs(np.random.default_rng(0).normal(size=(n_videos, 6, 20))).astype(np.float32))
    method = tiny("conmh", batch_size=8, epochs=1)
    assert method.drop_last is False  # the authors' loader keeps it
    method.fit(data, bits=16, seed=0)
    assert sorted(seen, reverse=True) == sizes


def test_checkpoints_are_spaced_by_minutes_of_training_not_by_epochs(tmp_path):
    broken = Toy(epochs=4)
    broken.fail_at_epoch = 3
    with pytest.raises(Interrupted):
        broken.fit(videos(), bits=8, seed=3, workdir=tmp_path, checkpoint_minutes=60)
    assert not (tmp_path / "checkpoints" / "last.pt").exists()  # 3 quick epochs are not 60 minutes
    Toy(epochs=2).fit(videos(), bits=8, seed=3, workdir=tmp_path / "done", checkpoint_minutes=60)
    assert checkpoint_of(tmp_path / "done")["epochs_done"] == 2  # the last epoch is always saved


class AskedToStop(Toy):
    """Toy whose run receives a stop request (as the Slurm warning signal makes one) in epoch ``ask_at``."""

    ask_at = -1

    def training_losses(self, model, batch, epoch, generator):
        if epoch == self.ask_at:
            interruption.request()
        return super().training_losses(model, batch, epoch, generator)


def test_a_stop_request_saves_the_epoch_and_the_run_resumes_to_the_uninterrupted_codes(tmp_path):
    data = videos()
    full = Toy().fit(data, bits=8, seed=3, workdir=tmp_path / "full")
    asked = AskedToStop()
    asked.ask_at = 1
    with interruption.on_signal(signal.SIGUSR2), pytest.raises(interruption.Interrupted, match="after epoch 1"):
        asked.fit(data, bits=8, seed=3, workdir=tmp_path / "resumed", checkpoint_minutes=60)
    assert checkpoint_of(tmp_path / "resumed")["epochs_done"] == 2  # the epoch in progress was finished and saved
    assert not interruption.requested()  # the request ends with the block that listened for it
    resumed = AskedToStop().fit(data, bits=8, seed=3, workdir=tmp_path / "resumed", checkpoint_minutes=60)
    np.testing.assert_array_equal(resumed.encode(data), full.encode(data))


def test_the_warning_signal_becomes_a_stop_request_only_while_listened_for():
    before = signal.getsignal(signal.SIGUSR2)
    with interruption.on_signal(signal.SIGUSR2) as previous:
        assert previous is before and not interruption.requested()
        os.kill(os.getpid(), signal.SIGUSR2)
        assert interruption.requested()
    assert signal.getsignal(signal.SIGUSR2) is before and not interruption.requested()
