"""Throughput of ``ssvh-bench extract``: videos/s for 25 frames at 224 x 224, VGG16 fc7 and ResNet-50 pool5.

Writes ``--videos`` clips of ``--seconds`` seconds at 25 fps, 320 x 240 (MPEG-4, PyAV) into a temporary
folder, then for each encoder (random weights: throughput does not depend on their values) measures, side by
side in one run: (a) the whole ``extract`` (decode, sample 25 frames, preprocess, encode, write) and (b) the
encoder alone on 25 preprocessed frames per video. CUDA is used when present (``--device``).

    python benchmarks/bench_extract.py --videos 4 --device cpu
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from ssvh_bench.extract import extract
from ssvh_bench.frame_encoders import load_encoder

FRAMES = 25


def write_clip(path: Path, n_frames: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    base = np.random.default_rng(seed).integers(0, 200, size=(240, 320, 3))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for i in range(n_frames):
            image = np.clip(base + (i % 50), 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--encoders", default="resnet50-pool5,vgg16-fc7")
    args = parser.parse_args()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "videos"
        for split in ("train", "database"):
            for i in range(args.videos):
                write_clip(root / split / f"class{i % 2}" / f"{split}{i}.mp4", int(args.seconds * 25), seed=i)
        n_videos = 2 * args.videos
        print(f"{n_videos} videos of {args.seconds:g} s, 320x240; {FRAMES} frames at 224x224 each; device {device}; "
              f"torch threads {torch.get_num_threads()}")
        for name in args.encoders.split(","):
            encoder = load_encoder(name, weights="random", device=device)
            frames = torch.randint(0, 255, (FRAMES, 240, 320, 3), dtype=torch.uint8)
            encoder(encoder.preprocess(frames))  # warm-up
            started = time.perf_counter()
            for _ in range(args.videos):
                encoder(encoder.preprocess(frames))
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            alone = args.videos / (time.perf_counter() - started)
            started = time.perf_counter()
            extract(root, Path(tmp) / f"out-{name}", encoder=name, weights="random", frames=FRAMES, device=device)
            whole = n_videos / (time.perf_counter() - started)
            print(f"{name:15s} extract {whole:7.2f} videos/s   encoder alone {alone:7.2f} videos/s   "
                  f"ratio {whole / alone:.2f}")


if __name__ == "__main__":
    main()
