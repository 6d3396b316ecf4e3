"""``extract``: from a folder of video files to the ``folder`` dataset's layout (docs/own-data.md).

Input: ``VIDEO_DIR/train/``, ``VIDEO_DIR/database/`` and optionally ``VIDEO_DIR/query/``, each holding video
files, directly or in sub-folders. A video's id is its path in its split folder without the suffix
(``dog/clip1``). Labels (database and query) come from a CSV (``video,labels``, as the folder dataset reads)
or else from the first sub-folder's name.

Each video is decoded with PyAV, ``frames`` frames are sampled by ``uniform_frame_indices`` (the middle frame
of each of ``frames`` equal segments) and encoded in batches across videos. Every finished video is written
at once (atomically) under ``OUT_DIR/.parts/``, so a killed extraction resumes where it stopped and never
redoes a finished video; when every video is done, each split becomes ``SPLIT.npy`` (float32 [videos, frames,
dim]) with ``SPLIT_ids.txt`` and ``SPLIT_labels.npy``, plus ``classes.txt`` and ``manifest.json`` (encoder,
weights, frames, and every video that could not be decoded: such videos are listed and left out, never
replaced by zeros).
"""

from __future__ import annotations

import hashlib
import io
import logging
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .data.label_files import read_csv_labels
from .data.readahead import ReadAhead
from .data.sampling import uniform_frame_indices
from .errors import ConfigError, DataError
from .io import atomic_path, read_json, write_json, write_text

log = logging.getLogger(__name__)
SPLITS = ("train", "database", "query")
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv",
                            ".3gp", ".ts", ".ogv"})
PARTS = ".parts"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Video:
    split: str
    video_id: str
    path: Path


@dataclass
class Manifest:
    """What ``manifest.json`` records about an extraction."""

    settings: dict[str, Any]
    videos: dict[str, int] = field(default_factory=dict)  # split -> videos written
    decode_errors: list[dict[str, str]] = field(default_factory=list)  # {"split", "video", "error"}
    videos_from: str = ""  # recorded, not compared: moving the videos does not stop a resume

    def to_dict(self) -> dict[str, Any]:
        return {**self.settings, "videos_from": self.videos_from, "videos": self.videos,
                "decode_errors": self.decode_errors}


def find_videos(video_dir: Path) -> list[Video]:
    """The video files of each split folder, sorted by id; a ConfigError when train or database is missing."""
    video_dir = Path(video_dir)
    missing = [split for split in ("train", "database") if not (video_dir / split).is_dir()]
    if missing:
        raise ConfigError(f"{video_dir} needs the sub-folders train/ and database/ (and optionally query/); "
                          f"missing: {', '.join(missing)}")
    videos = []
    for split in SPLITS:
        root = video_dir / split
        if root.is_dir():
            found = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
            if not found:
                raise ConfigError(f"{root} holds no video files ({', '.join(sorted(VIDEO_SUFFIXES))})")
            videos += [Video(split, p.relative_to(root).with_suffix("").as_posix(), p) for p in found]
    return videos


def decode_frames(path: Path, n_frames: int) -> np.ndarray:
    """``n_frames`` RGB frames (uint8 [n_frames, H, W, 3]) sampled uniformly; DataError when unreadable or empty."""
    import av

    def read(count: int) -> tuple[list[np.ndarray], int]:
        """The frames sampled for a video of ``count`` frames, and how many frames it really has."""
        wanted = uniform_frame_indices(count, n_frames).tolist() if count else []
        keep = set(wanted)
        picked: dict[int, np.ndarray] = {}
        seen = 0
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError("no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for index, frame in enumerate(container.decode(stream)):
                seen = index + 1
                if index in keep:
                    picked[index] = frame.to_ndarray(format="rgb24")
        return [picked[i] for i in wanted] if seen == count else [], seen

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError("no video stream")
            announced = container.streams.video[0].frames
        frames, seen = read(announced)
        if seen and seen != announced:  # the container's frame count was missing or wrong: sample the real one
            frames, seen = read(seen)
    except av.FFmpegError as error:
        raise DataError(f"cannot decode: {error}") from None
    if not frames:
        raise DataError("no frames decoded (empty video)")
    return np.stack(frames)


def extract(
    video_dir: Path,
    out_dir: Path,
    *,
    encoder: str = "vgg16-fc7",
    frames: int = 25,
    labels: Path | None = None,
    weights: str | None = None,
    device: str = "auto",
    batch_frames: int = 128,
    crop: int = 224,
    on_video: Callable[[Video, str | None], None] | None = None,
) -> Manifest:
    """Extract every video of ``video_dir`` into ``out_dir``, resuming a killed extraction (see the module).

    ``on_video(video, error)`` is called after each video is written (``error`` None) or skipped as unreadable.
    """
    from .devices import resolve_device
    from .frame_encoders import load_encoder

    if frames < 1:
        raise ConfigError(f"--frames must be at least 1, got {frames}")
    video_dir, out_dir = Path(video_dir), Path(out_dir)
    videos = find_videos(video_dir)
    label_rows = read_csv_labels(labels) if labels is not None else None
    device = resolve_device(device)
    model = load_encoder(encoder, weights=weights, device=device, crop=crop)
    settings = {"encoder": encoder, "weights": model.weights, "frames": frames, "crop": crop, "dim": model.dim,
                "frame_sampling": "frame floor((2j+1)L/(2T)) of L, j = 0..T-1 (ssvh_bench.data.sampling)"}
    parts = out_dir / PARTS
    if (out_dir / MANIFEST).is_file() and not parts.exists():
        done = read_json(out_dir / MANIFEST)
        if {k: done.get(k) for k in settings} != settings:
            raise ConfigError(f"{out_dir} already holds an extraction with other settings; use another folder")
        log.info("extract: %s is complete (%s), nothing to do", out_dir, MANIFEST)
        return Manifest(settings, done["videos"], done["decode_errors"], done.get("videos_from", ""))
    _check_same_settings(parts, settings)
    manifest = Manifest(settings, videos_from=str(video_dir.resolve()))
    todo = []
    for video in videos:
        if _part(parts, video).is_file():
            if on_video is not None:
                on_video(video, None)
        else:
            todo.append(video)
    log.info("extract: %d videos, %d already done, %s on %s", len(videos), len(videos) - len(todo), encoder, device)
    errors: dict[Video, str] = {}
    for batch, clips in _batches(todo, frames, batch_frames, model, errors, on_video):
        features = model(clips).numpy().reshape(len(batch), frames, model.dim)
        for video, feature in zip(batch, features):
            _write_part(_part(parts, video), feature)
            if on_video is not None:
                on_video(video, None)
    manifest.decode_errors = [{"split": v.split, "video": v.video_id, "error": e} for v, e in errors.items()]
    _assemble(out_dir, parts, videos, errors, label_rows, manifest)
    return manifest


def _batches(todo: list[Video], frames: int, batch_frames: int, model: Any, errors: dict[Video, str],
             on_video: Callable[[Video, str | None], None] | None) -> Iterator[tuple[list[Video], Any]]:
    """Preprocessed frames of about ``batch_frames`` frames' worth of videos; decoding runs one batch ahead."""
    import torch

    def decoded() -> Iterator[tuple[Video, np.ndarray | None, str | None]]:
        for video in todo:
            try:
                yield video, decode_frames(video.path, frames), None
            except DataError as error:
                yield video, None, str(error)

    batch: list[Video] = []
    clips: list[Any] = []
    reader = ReadAhead(decoded(), depth=4)
    try:
        for video, clip, error in reader:
            if error is not None:
                log.warning("extract: skipped %s/%s: %s", video.split, video.video_id, error)
                errors[video] = error
                if on_video is not None:
                    on_video(video, error)
                continue
            batch.append(video)
            clips.append(model.preprocess(torch.from_numpy(clip)))
            if len(batch) * frames >= batch_frames:
                yield batch, torch.cat(clips)
                batch, clips = [], []
        if batch:
            yield batch, torch.cat(clips)
    finally:
        reader.close()


def _part(parts: Path, video: Video) -> Path:
    return parts / video.split / f"{hashlib.sha1(video.video_id.encode()).hexdigest()[:20]}.npy"


def _write_part(path: Path, feature: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, feature.astype(np.float32))
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def _check_same_settings(parts: Path, settings: dict[str, Any]) -> None:
    """Parts of another extraction (other encoder, weights, frames) must not be mixed with this one."""
    recorded = parts / "settings.json"
    if recorded.is_file():
        earlier = read_json(recorded)
        if earlier != settings:
            changed = sorted(k for k in settings if earlier.get(k) != settings[k])
            raise ConfigError(f"{parts.parent} holds an unfinished extraction with other settings "
                              f"({', '.join(changed)}); finish it with the same options or remove {parts}")
    else:
        write_json(recorded, settings)


def _assemble(out_dir: Path, parts: Path, videos: list[Video], errors: dict[Video, str],
              label_rows: dict[str, set[str]] | None, manifest: Manifest) -> None:
    """Each split's parts into ``SPLIT.npy`` (written through a memory map: memory flat in the videos), its ids
    and labels, then the manifest; the parts go last, so a kill here leaves a resumable folder."""
    kept = {split: [v for v in videos if v.split == split and v not in errors] for split in SPLITS}
    for split in ("train", "database"):
        if not kept[split] and any(v.split == split for v in videos):
            raise DataError(f"extract: no {split} video could be decoded (see the warnings above)")
    names = {split: [_label_names(v, label_rows) for v in kept[split]] for split in ("database", "query")}
    classes = sorted({name for split in names.values() for row in split for name in row})
    if not classes:
        raise DataError("extract: the database videos have no labels: give --labels CSV or put them in class "
                        "sub-folders (database/CLASS/video.mp4)")
    column = {name: i for i, name in enumerate(classes)}
    for split, chosen in kept.items():
        if not chosen:
            continue
        first = np.load(_part(parts, chosen[0]))
        with atomic_path(out_dir / f"{split}.npy") as tmp:
            array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(chosen), *first.shape))
            for row, video in enumerate(chosen):
                array[row] = np.load(_part(parts, video))
            array.flush()
            del array
        write_text(out_dir / f"{split}_ids.txt", "".join(f"{v.video_id}\n" for v in chosen))
        if split in names:
            matrix = np.zeros((len(chosen), len(classes)), dtype=np.uint8)
            for row, label_names in enumerate(names[split]):
                matrix[row, [column[n] for n in label_names]] = 1
            with atomic_path(out_dir / f"{split}_labels.npy") as tmp, open(tmp, "wb") as handle:
                np.save(handle, matrix)
        manifest.videos[split] = len(chosen)
    write_text(out_dir / "classes.txt", "".join(f"{name}\n" for name in classes))
    write_json(out_dir / MANIFEST, manifest.to_dict())
    shutil.rmtree(parts)


def _label_names(video: Video, label_rows: dict[str, set[str]] | None) -> set[str]:
    if label_rows is not None:
        return label_rows.get(video.video_id, set())
    folder, slash, _ = video.video_id.partition("/")
    return {folder} if slash else set()
