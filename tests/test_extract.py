"""``ssvh-bench extract``: tiny videos written by PyAV (one unreadable, one empty) through random-weight encoders
on the CPU; features of the documented shape, bad files listed and skipped, resume without redoing videos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import invoke
from ssvh_bench.errors import ConfigError
from ssvh_bench.extract import decode_frames, extract
from ssvh_bench.frame_encoders import ResNet50, VGG16, FrameEncoder, load_encoder

av = pytest.importorskip("av")
SMALL = {"encoder": "resnet50-pool5", "weights": "random", "frames": 3, "crop": 32, "device": "cpu"}


def write_video(path: Path, n_frames: int, seed: int, size: tuple[int, int] = (40, 56)) -> Path:
    """An MPEG-4 clip whose frames get brighter over time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    base = np.random.default_rng(seed).integers(0, 200, size=(*size, 3))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = size[1], size[0], "yuv420p"
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(np.clip(base + 6 * i, 0, 255).astype(np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture
def videos(tmp_path) -> Path:
    """train: 3 clips + an unreadable file; database: 2 classes of 2 clips + an empty file; query: 2 clips."""
    root = tmp_path / "videos"
    for i in range(3):
        write_video(root / "train" / f"t{i}.mp4", 5 + i, seed=i)
    (root / "train" / "broken.mp4").write_bytes(b"this is not a video" * 10)
    for name, label in (("a0", "cats"), ("a1", "cats"), ("b0", "dogs"), ("b1", "dogs")):
        write_video(root / "database" / label / f"{name}.mp4", 6, seed=hash(name) % 100)
    (root / "database" / "dogs" / "empty.mp4").write_bytes(b"")
    write_video(root / "query" / "cats" / "q0.mp4", 4, seed=7)
    write_video(root / "query" / "dogs" / "q1.mp4", 9, seed=8)
    (root / "database" / "notes.txt").write_text("not a video, ignored")
    return root


def test_decoded_frames_follow_the_sampling_rule(tmp_path):
    path = write_video(tmp_path / "clip.mp4", 7, seed=0)
    with av.open(str(path)) as container:
        every = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    np.testing.assert_array_equal(decode_frames(path, 3), every[[1, 3, 5]])  # floor((2j+1) 7 / 6)
    np.testing.assert_array_equal(decode_frames(path, 9), every[[0, 1, 1, 2, 3, 4, 5, 5, 6]])


def test_extract_writes_the_layout_and_lists_bad_videos(videos, tmp_path):
    out = tmp_path / "features"
    manifest = extract(videos, out, **SMALL)
    assert manifest.videos == {"train": 3, "database": 4, "query": 2}
    assert sorted((e["split"], e["video"]) for e in manifest.decode_errors) == [("database", "dogs/empty"),
                                                                               ("train", "broken")]
    assert np.load(out / "train.npy").shape == (3, 3, 2048) and np.load(out / "train.npy").dtype == np.float32
    assert (out / "database_ids.txt").read_text().split() == ["cats/a0", "cats/a1", "dogs/b0", "dogs/b1"]
    assert (out / "classes.txt").read_text().split() == ["cats", "dogs"]
    assert np.load(out / "database_labels.npy").tolist() == [[1, 0], [1, 0], [0, 1], [0, 1]]
    assert np.load(out / "query_labels.npy").tolist() == [[1, 0], [0, 1]]
    recorded = json.loads((out / "manifest.json").read_text())
    assert recorded["encoder"] == "resnet50-pool5" and recorded["weights"] == "random" and recorded["frames"] == 3
    assert len(recorded["decode_errors"]) == 2 and not (out / ".parts").exists()
    features = np.load(out / "database.npy")
    assert np.isfinite(features).all() and (np.abs(features).sum(axis=(1, 2)) > 0).all()  # never zeros


def test_labels_from_a_csv(videos, tmp_path):
    csv = tmp_path / "labels.csv"
    csv.write_text("video,labels\ncats/a0,pet;small\ndogs/b1,pet\nq0-missing,x\ncats/q0,small\n")
    out = tmp_path / "features"
    extract(videos, out, labels=csv, **SMALL)
    assert (out / "classes.txt").read_text().split() == ["pet", "small"]
    assert np.load(out / "database_labels.npy").tolist() == [[1, 1], [0, 0], [0, 0], [1, 0]]
    assert np.load(out / "query_labels.npy").tolist() == [[0, 1], [0, 0]]


def test_resume_after_a_kill_redoes_no_finished_video(videos, tmp_path, monkeypatch):
    out = tmp_path / "features"
    done: list[str] = []

    def killed_after_four(video, error):
        if error is None:
            done.append(video.video_id)
        if len(done) == 4:
            raise KeyboardInterrupt  # as a kill: the four videos written so far stay on disk

    with pytest.raises(KeyboardInterrupt):
        extract(videos, out, on_video=killed_after_four, **SMALL)
    assert len(list((out / ".parts").rglob("*.npy"))) == 4 and not (out / "manifest.json").exists()

    encoded: list[int] = []
    original = FrameEncoder.__call__
    monkeypatch.setattr(FrameEncoder, "__call__", lambda self, images: encoded.append(len(images)) or original(self, images))
    extract(videos, out, **SMALL)
    assert sum(encoded) == (9 - 4) * SMALL["frames"]  # only the five videos not done before
    fresh = tmp_path / "fresh"
    extract(videos, fresh, **SMALL)
    for split in ("train", "database", "query"):
        np.testing.assert_allclose(np.load(out / f"{split}.npy"), np.load(fresh / f"{split}.npy"), rtol=1e-4, atol=1e-4)  # batches differ
    encoded.clear()
    extract(videos, out, **SMALL)  # complete: nothing to do
    assert encoded == []
    with pytest.raises(ConfigError, match="other settings"):
        extract(videos, out, **{**SMALL, "frames": 4})


def test_encoders_use_torchvision_names_and_load_weights_from_the_hub_cache(tmp_path, monkeypatch):
    keys = set(ResNet50().state_dict())
    assert {"conv1.weight", "bn1.running_var", "layer1.0.downsample.1.weight", "layer4.2.bn3.num_batches_tracked",
            "fc.bias"} <= keys and len(keys) == 320  # torchvision's resnet50 state dict has 320 entries
    vgg = VGG16()
    keys = set(vgg.state_dict())
    assert {k for k in keys if k.startswith("classifier.")} == {f"classifier.{i}.{p}" for i in (0, 3, 6)
                                                                for p in ("weight", "bias")}
    assert {"features.0.weight", "features.28.bias"} <= keys and len(keys) == 32  # 13 convolutions, 3 linears
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert vgg.eval()(images).shape == (2, 4096)

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(ConfigError, match="resnet50-0676ba61.pth are not in"):
        load_encoder("resnet50-pool5")
    random = load_encoder("resnet50-pool5", weights="random", crop=32, seed=3)
    (tmp_path / "torch" / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(random.model.state_dict(), tmp_path / "torch" / "hub" / "checkpoints" / "resnet50-0676ba61.pth")
    cached = load_encoder("resnet50-pool5", crop=32)
    assert cached.weights.endswith("resnet50-0676ba61.pth")
    frames = torch.randint(0, 255, (2, 40, 56, 3), dtype=torch.uint8)
    torch.testing.assert_close(cached(cached.preprocess(frames)), random(random.preprocess(frames)))
    with pytest.raises(ConfigError, match="unknown encoder"):
        load_encoder("alexnet")


def test_preprocessing_resizes_the_shorter_side_and_crops_the_centre():
    encoder = FrameEncoder("id", torch.nn.Identity(), 3, "random", device="cpu", crop=224, mean=(0, 0, 0), std=(1, 1, 1))
    assert encoder.resize == 256
    frames = torch.full((1, 300, 400, 3), 255, dtype=torch.uint8)
    images = encoder.preprocess(frames)
    assert images.shape == (1, 3, 224, 224) and torch.allclose(images, torch.ones_like(images))


@pytest.mark.slow
def test_videos_to_leaderboard_through_the_command_line(videos, tmp_path):
    """The docs page's path: extract, data check, run a shallow and a deep method, leaderboard."""
    out, results = tmp_path / "features", tmp_path / "results"
    result = invoke("extract", videos, out, "--encoder", "resnet50-pool5", "--weights", "random", "--frames", "3",
                    "--crop", "32", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "skipped train/broken" in result.output and "skipped database/dogs/empty" in result.output
    assert invoke("data", "check", "folder", "--data-root", out).exit_code == 0
    result = invoke("run", "-m", "lsh,conmh", "-d", "folder", "--data-root", out, "-b", "16", "--set",
                    "conmh.epochs=1", "--results-dir", results)
    assert result.exit_code == 0, result.output
    board = invoke("leaderboard", "--results-dir", results)
    assert board.exit_code == 0 and "folder" in board.output
