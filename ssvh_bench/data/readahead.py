"""Bounded read-ahead: produce items in a background thread so disk reads overlap the consumer's compute.

At most ``depth`` finished items wait in the queue (plus the one the producer is building and the one the
consumer holds), so memory is bounded by the item size, not by the length of the stream.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

Item = TypeVar("Item")

_DONE = object()
_POLL_SECONDS = 0.05


class ReadAhead(Iterator[Item]):
    """Iterate ``source`` in a background thread, at most ``depth`` items ahead of the consumer.

    Exceptions raised by the producer surface in the consumer. ``close()`` (also called when the consumer
    drops or finishes the iterator) stops the producer and waits for its thread.
    """

    def __init__(self, source: Iterable[Item], depth: int = 2) -> None:
        if depth < 1:
            raise ValueError(f"read-ahead depth must be at least 1, got {depth}")
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(iter(source),), daemon=True,
                                        name="ssvh-bench-read-ahead")
        self._thread.start()

    def _produce(self, items: Iterator[Item]) -> None:
        try:
            for item in items:
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as error:  # handed to the consumer, which re-raises it
            self._put(error)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self.queue.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def __next__(self) -> Item:
        if self._stop.is_set():
            raise StopIteration
        item = self.queue.get()
        if item is _DONE:
            self.close()
            raise StopIteration
        if isinstance(item, BaseException):
            self.close()
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        self._drain()  # unblocks a producer waiting on the full queue
        self._thread.join()
        self._drain()  # what that producer put in before it saw the stop

    def _drain(self) -> None:
        """Free queued items now rather than when the iterator is collected."""
        while True:
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break

    def __del__(self) -> None:
        if hasattr(self, "_thread") and not self._stop.is_set():  # a failed constructor started no thread
            self.close()
