"""``extract``: video files -> frame features in the ``folder`` dataset's layout."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .app import app, console, user_errors


@app.command()
@user_errors
def extract(
    video_dir: Path = typer.Argument(..., help="Folder with train/, database/ and optionally query/ video folders."),
    out_dir: Path = typer.Argument(..., help="Where the features go (read it with --dataset folder)."),
    encoder: str = typer.Option("vgg16-fc7", "--encoder", "-e", help="vgg16-fc7 (4096), resnet50-pool5 (2048) or clip (512, needs open_clip)."),
    frames: int = typer.Option(25, "--frames", help="Frames sampled uniformly per video (FCVID, YFCC 25; ActivityNet 30)."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="CSV 'video,labels' (labels separated by ;); default: the class sub-folder names."),
    weights: Optional[str] = typer.Option(None, "--weights", help="Weight file; default torchvision's file in torch hub's cache; 'random' for tests only."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N."),
    batch_frames: int = typer.Option(128, "--batch-frames", help="Frames per forward pass (videos are batched together)."),
    crop: int = typer.Option(224, "--crop", help="Centre crop size (the shorter side is resized to crop*256/224)."),
) -> None:
    """Encode video files into frame features.

    Decode each video, sample frames uniformly, encode them in batches and write the folder dataset's layout;
    a killed extraction resumes (docs/own-data.md).
    """
    from ..extract import extract as run_extract, find_videos

    total = len(find_videos(video_dir))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("videos", total=total)
        manifest = run_extract(video_dir, out_dir, encoder=encoder, frames=frames, labels=labels, weights=weights,
                               device=device, batch_frames=batch_frames, crop=crop,
                               on_video=lambda video, error: progress.advance(task))
    counts = ", ".join(f"{split} {n}" for split, n in manifest.videos.items())
    console.print(f"wrote {counts} videos x {frames} frames x {manifest.settings['dim']} ({encoder}) to {out_dir}",
                  highlight=False, soft_wrap=True)
    for bad in manifest.decode_errors:
        console.print(f"skipped {bad['split']}/{bad['video']}: {bad['error']}", highlight=False, soft_wrap=True,
                      markup=False)
    console.print(f"next: ssvh-bench data check folder --data-root {out_dir}", highlight=False, soft_wrap=True)
