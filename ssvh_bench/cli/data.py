"""Commands about dataset files: where to get them (info), verify a local copy (check), float16 copies (convert)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..config import parse_assignments
from ..data import FileDataset, HDF5Features, NpyFeatures
from ..data.file_dataset import user_config_path
from ..data.hdf5 import convert_to_float16, float16_sibling
from ..data.labels import label_statistics
from ..errors import ConfigError
from ..registry import dataset_registry
from .app import DatasetParamOption, app, console, user_errors

data_app = typer.Typer(no_args_is_help=True, help="Dataset files: where to get them, check a copy, convert it.")
app.add_typer(data_app, name="data")

DataRoot = typer.Option(None, "--data-root", envvar="SSVH_BENCH_DATA",
                        help="Folder with the dataset's files, or with a subfolder named after it [env SSVH_BENCH_DATA].")


def file_datasets() -> dict[str, type[FileDataset]]:
    """Registered datasets that are read from files, by name."""
    return {entry.name: entry.factory for entry in dataset_registry.list()
            if isinstance(entry.factory, type) and issubclass(entry.factory, FileDataset)}


def file_dataset(name: str, **params: object) -> FileDataset:
    dataset = dataset_registry.create(name, **params)
    if not isinstance(dataset, FileDataset):
        raise ConfigError(f"{name} is not read from files; file datasets: {', '.join(file_datasets())}")
    return dataset


@data_app.command("info")
@user_errors
def info() -> None:
    """List the file datasets, the files each needs and where to obtain them."""
    table = Table(title="datasets read from files", title_justify="left")
    for column in ("dataset", "split", "feature files (HDF5 key feats)", "label files (.mat key)"):
        table.add_column(column, overflow="fold")
    sources = set()
    for name, factory in file_datasets().items():
        sources.add(factory.layout.source)
        for split_name, split in factory.layout.splits().items():
            labels = f"{', '.join(split.labels)} ({split.label_key})" if split.labels else ""
            table.add_row(name, split_name, ", ".join(split.features), labels)
        if factory.layout.query is None:
            table.add_row(name, "query", "= database", "")
    console.print(table)
    sizes = ", ".join(f"{name} {factory.layout.disk_gb:g} GB" for name, factory in file_datasets().items())
    console.print(f"Disk space of the feature files as float32: {sizes} (half after ssvh-bench data convert "
                  "DATASET --float16).", highlight=False)
    for source in sorted(sources):
        console.print(f"{source}.", highlight=False)
    for entry in dataset_registry.list():
        if entry.name not in file_datasets() and getattr(entry.factory, "needs_data_root", False):
            console.print(f"{entry.name}: {entry.description}.", highlight=False, soft_wrap=True)
    console.print(
        "Point ssvh-bench at them with --data-root DIR (or SSVH_BENCH_DATA), or in "
        f"{user_config_path()}: data_root = \"/data\" or a [data_root] table (fcvid = \"/data/fcvid\"). "
        "A root may hold the files directly or in a subfolder named after the dataset. "
        "Verify a copy with: ssvh-bench data check DATASET",
        markup=False, highlight=False,
    )


@data_app.command("check")
@user_errors
def check(
    dataset: str = typer.Argument(..., help="fcvid, activitynet, yfcc or folder."),
    data_root: Optional[Path] = DataRoot,
    float16: bool = typer.Option(False, "--float16", help="Check the float16 copies instead of the originals."),
    dataset_param: list[str] = DatasetParamOption,
) -> None:
    """Validate a local copy (files, keys, shapes, dtypes, label counts, NaN in sampled blocks) and describe it."""
    params = {k: v[0] for k, v in parse_assignments(dataset_param, option="--dataset-param").items()}
    if float16:
        params["float16"] = True
    plugin = dataset_registry.create(dataset, **params)
    if not hasattr(plugin, "folder"):
        raise ConfigError(f"{dataset} is not read from files; file datasets: {', '.join(file_datasets())}, folder")
    folder = plugin.folder(data_root)
    splits = plugin.load(data_root)
    features = {"train": splits.train, "database": splits.database, "query": splits.query}
    files = Table(title=f"{dataset} in {folder}", title_justify="left")
    for column in ("split", "file", "videos x frames x dim", "dtype", "size on disk"):
        files.add_column(column)
    for split_name, split in features.items():
        for path, shape, dtype in _files(split):
            files.add_row(split_name, path.name, shape, dtype, _size(path.stat().st_size))
    console.print(files)

    labels = Table(title="labels", title_justify="left")
    for column in ("split", "videos", "classes", "labels/video mean (max)", "unlabelled videos",
                   "videos/class min / median / max", "empty classes"):
        labels.add_column(column)
    label_sets = [("database", splits.database_labels)]
    if splits.query_labels is not None:
        label_sets.append(("query", splits.query_labels))
    for split_name, matrix in label_sets:
        stats = label_statistics(matrix)
        labels.add_row(split_name, str(stats["videos"]), str(stats["classes"]),
                       f"{stats['labels_per_video_mean']:.2f} ({stats['labels_per_video_max']})",
                       str(stats["unlabelled_videos"]),
                       f"{stats['videos_per_class_min']} / {stats['videos_per_class_median']:g} / "
                       f"{stats['videos_per_class_max']}",
                       str(stats["empty_classes"]))
    console.print(labels)
    queries = "the database itself" if splits.query_is_database else f"{len(splits.query)} separate videos"
    for split_name, split in features.items():
        if split is not None:  # file datasets check while loading; this covers every dataset
            split.check_finite(f"{dataset} {split_name} features")
    console.print(f"queries: {queries}; videos are {splits.train.n_frames} frames x {splits.train.feature_dim} "
                  f"features. No NaN/inf in the sampled blocks. {dataset} is ready.", highlight=False)


def _files(split: object) -> list[tuple[Path, str, str]]:
    """(file, videos x frames x dim as stored, dtype) of each file behind a split."""
    split = getattr(split, "base", split)  # a resampled view (SampledFeatures) shows the files it reads
    if isinstance(split, HDF5Features):
        return [(path, f"{stop - start} x {split.n_frames} x {split.feature_dim}", str(dtype))
                for path, dtype, start, stop in zip(split.paths, split.file_dtypes, split.offsets, split.offsets[1:])]
    if isinstance(split, NpyFeatures):
        return [(split.path, " x ".join(map(str, split.shape)), str(split.array.dtype))]
    return []


@data_app.command("convert")
@user_errors
def convert(
    dataset: str = typer.Argument(..., help="fcvid, activitynet or yfcc."),
    float16: bool = typer.Option(False, "--float16", help="Write float16 copies (*.f16.h5) beside the files."),
    data_root: Optional[Path] = DataRoot,
    force: bool = typer.Option(False, "--force", help="Rewrite copies that already exist."),
) -> None:
    """Write a one-time float16 copy of every feature file; use it with --dataset-param float16=true."""
    if not float16:
        raise ConfigError("data convert needs a target format: --float16 (the only one offered)")
    plugin = file_dataset(dataset)
    folder = plugin.folder(data_root)
    plugin.load(data_root)  # validate the originals before spending time on copies
    written = 0
    for split in plugin.layout.splits().values():
        for name in split.features:
            target = float16_sibling(folder / name)
            if target.is_file() and not force:
                console.print(f"{target.name} exists, kept (--force rewrites it)", highlight=False)
                continue
            convert_to_float16(folder / name, target, progress=sys.stderr.isatty())
            console.print(f"wrote {target.name} ({_size(target.stat().st_size)})", highlight=False)
            written += 1
    console.print(f"{written} float16 file(s) written in {folder}; use them with "
                  f"ssvh-bench run --dataset {dataset} --dataset-param float16=true", highlight=False)


def _size(n_bytes: float) -> str:
    for unit in ("B", "KB", "MB"):
        if n_bytes < 1024:
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.1f} GB"
