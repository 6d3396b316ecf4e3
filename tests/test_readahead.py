"""The training loop reads ahead on every device: one path whose ordering, errors and shutdown CI runs."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from ssvh_bench import ArrayFeatures, DataError
from ssvh_bench import train as train_module
from ssvh_bench.data.readahead import ReadAhead
from tests.test_train import Toy


def read_ahead_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "ssvh-bench-read-ahead"]


def videos(n: int = 40) -> ArrayFeatures:
    return ArrayFeatures(np.random.default_rng(1).normal(size=(n, 3, 8)).astype(np.float32))


def test_items_come_in_the_source_order():
    assert list(ReadAhead(iter(range(500)), depth=3)) == list(range(500))
    assert not read_ahead_threads()


def test_closing_early_stops_the_producer_and_runs_its_clean_up():
    closed = threading.Event()

    def endless():
        try:
            number = 0
            while True:
                yield number
                number += 1
        finally:
            closed.set()

    reader = ReadAhead(endless(), depth=2)
    assert [next(reader) for _ in range(5)] == [0, 1, 2, 3, 4]
    reader.close()
    assert not read_ahead_threads() and reader.queue.qsize() == 0
    with pytest.raises(StopIteration):
        next(reader)
    del reader  # the generator's finally runs once nothing holds it
    assert closed.wait(5)


class Recorded(ReadAhead):
    made: list[Recorded] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        Recorded.made.append(self)


def test_the_loop_reads_ahead_on_the_cpu_and_leaves_no_thread(monkeypatch):
    Recorded.made = []
    monkeypatch.setattr(train_module, "ReadAhead", Recorded)
    Toy(epochs=2).fit(videos(), bits=8, seed=0, device="cpu")
    assert len(Recorded.made) == 2  # one reader per epoch
    assert all(reader.queue.maxsize == train_module.READ_AHEAD_BATCHES for reader in Recorded.made)
    assert not read_ahead_threads()


def test_codes_are_the_same_with_or_without_read_ahead(monkeypatch):
    ahead = Toy(epochs=2).fit(videos(), bits=8, seed=0).encode(videos())

    def inline(source, depth=2):
        return iter(source)

    monkeypatch.setattr(train_module, "ReadAhead", inline)
    assert np.array_equal(Toy(epochs=2).fit(videos(), bits=8, seed=0).encode(videos()), ahead)


def test_a_read_error_in_the_read_ahead_thread_stops_training_with_that_error():
    class Failing(ArrayFeatures):
        reads = 0

        def read(self, indices):
            Failing.reads += 1
            if Failing.reads == 3:
                raise DataError("disk gone at the third batch")
            return super().read(indices)

        def iter_batches(self, batch_size, **options):  # every batch through ``read``
            for indices, _ in super().iter_batches(batch_size, **options):
                yield indices, self.read(indices)

    with pytest.raises(DataError, match="disk gone at the third batch"):
        Toy(epochs=1).fit(Failing(videos().array), bits=8, seed=0)
    assert not read_ahead_threads()


def test_related_videos_are_read_ahead_with_their_batch():
    class Paired(Toy):
        def related_indices(self, indices, epoch, generator):
            partners = torch.randint(0, 40, (len(indices),), generator=generator).numpy()
            return train_module.Related(partners, {"partner": partners})

        def training_losses(self, model, batch, epoch, generator):
            expected = videos().array[batch.extras["partner"].numpy()]
            assert np.array_equal(batch.related.numpy(), expected)
            assert np.array_equal(batch.related_indices.numpy(), batch.extras["partner"].numpy())
            return super().training_losses(model, batch, epoch, generator)

    first = Paired(epochs=2).fit(videos(), bits=8, seed=5).encode(videos())
    assert np.array_equal(Paired(epochs=2).fit(videos(), bits=8, seed=5).encode(videos()), first)
