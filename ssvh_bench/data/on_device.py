"""The training split kept in device memory for a whole run (``--data-on-device``).

On a GPU the loop otherwise reads every batch on the host, pins it and copies it over; with the split
resident on the device a batch is one ``index_select`` there. ``plan_data_on_device`` decides (and says,
with the memory estimate) before anything is written; ``DeviceFeatures`` holds the split.

Choices: ``auto`` keeps the split on a CUDA device when float32 storage takes at most ``AUTO_SHARE`` of the
free memory (never on the CPU, where the host path already is memory); ``yes`` keeps it in float32 and
``float16`` in half precision (half the memory; features are rounded to float16 once, then computed on in
float32), failing with one line when it does not fit. ``no`` reads batches on the host. On the CPU ``yes`` /
``float16`` keep the split as one torch tensor in host memory (the same code path; useful to test it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError
from .features import VideoFeatures, require_finite

if TYPE_CHECKING:  # torch is imported on use: ``import ssvh_bench`` stays light
    import torch

DATA_ON_DEVICE = ("auto", "yes", "no", "float16")
AUTO_SHARE = 0.5  # of the free GPU memory: the model, its activations, encoding and evaluation need the rest
LOAD_CHUNK_BYTES = 256 * 2**20  # host memory used while copying the split over


@dataclass(frozen=True)
class DevicePlan:
    """Where the training split lives for a run: ``dtype`` None means on the host (batches copied over)."""

    dtype: str | None
    message: str

    @property
    def on_device(self) -> bool:
        return self.dtype is not None


def check_choice(choice: str) -> str:
    if choice not in DATA_ON_DEVICE:
        raise ConfigError(f"data_on_device must be one of {', '.join(DATA_ON_DEVICE)}, got {choice!r}")
    return choice


def plan_data_on_device(choice: str, shape: tuple[int, int, int], device: str) -> DevicePlan:
    """Decide where a training split of ``shape`` lives on ``device`` ("cpu", "cuda", "cuda:N"); a ConfigError
    when ``yes`` / ``float16`` ask for more than the free memory. The message states the estimate."""
    check_choice(choice)
    if choice == "no":
        return DevicePlan(None, "training split read on the host (--data-on-device no)")
    dtype = "float16" if choice == "float16" else "float32"
    need = int(np.prod(shape)) * (2 if dtype == "float16" else 4)
    size = f"training split {shape[0]:,} x {shape[1]} x {shape[2]} {dtype} = {_gib(need)}"
    if not device.startswith("cuda"):
        if choice == "auto":
            return DevicePlan(None, f"{size}, read on the host (CPU run)")
        return DevicePlan(dtype, f"{size}, held as one tensor in host memory (CPU run)")
    import torch

    free, _ = torch.cuda.mem_get_info(torch.device(device))
    where = f"{device} has {_gib(free)} free"
    if choice == "auto":
        if need <= AUTO_SHARE * free:
            return DevicePlan(dtype, f"{size}; {where}: kept on the device")
        half = "; --data-on-device float16 would fit" if need / 2 <= free else ""
        return DevicePlan(None, f"{size}; {where} (auto needs {_gib(need / AUTO_SHARE)}): read on the host{half}")
    if need > free:
        raise ConfigError(f"--data-on-device {choice}: the {size} does not fit in {device} ({_gib(free)} free); "
                          "use --data-on-device no" + ("" if dtype == "float16" else " or float16"))
    return DevicePlan(dtype, f"{size}; {where}: kept on the device")


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.2f} GiB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:.1f} MiB"


class DeviceFeatures(VideoFeatures):
    """A split copied once into a torch tensor on ``device`` (float32 or float16 storage); ``gather`` gives
    batches on the device in float32. Every video is checked for NaN / inf while it is copied."""

    def __init__(self, videos: VideoFeatures, device: str, dtype: str = "float32") -> None:
        import torch

        self.device = torch.device(device)
        self.source = videos  # whose batch order the held split keeps (a file's differs from a permutation)
        self.tensor = torch.empty(videos.shape, dtype=getattr(torch, dtype), device=self.device)
        step = max(1, LOAD_CHUNK_BYTES // (4 * videos.n_frames * videos.feature_dim))
        for start in range(0, len(videos), step):
            block = videos.read(slice(start, start + step))
            require_finite(block, np.arange(start, start + len(block)), "training split")
            self.tensor[start:start + len(block)] = torch.from_numpy(np.ascontiguousarray(block))

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.tensor.shape)  # type: ignore[return-value]

    def read(self, indices: np.ndarray | slice) -> np.ndarray:
        """Host copies (float32), for work outside the loop (k-means, fingerprints)."""
        import torch

        if not isinstance(indices, slice):
            indices = torch.as_tensor(np.asarray(indices, dtype=np.int64), device=self.device)
        return self.tensor[indices].float().cpu().numpy()

    def batch_order(self, batch_size: int, *, shuffle: bool = False, seed: int | None = None,
                    drop_last: bool = False) -> Iterator[np.ndarray]:
        """The source split's batches, so training on the held split sees the batches the host path sees."""
        return self.source.batch_order(batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last)

    def gather(self, indices: np.ndarray) -> torch.Tensor:
        """float32 [n, T, D] on the device of the videos at ``indices``, with no host round trip."""
        import torch

        index = torch.from_numpy(np.asarray(indices, dtype=np.int64)).to(self.device, non_blocking=True)
        return self.tensor.index_select(0, index).float()
