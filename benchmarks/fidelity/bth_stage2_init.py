"""BTH with stage 2 started independently of stage 1 or from stage 1's initial weights, at 2,000 training videos
(benchmarks/fidelity/bth.md, "Stage 2's initial weights").

Three commands:

- ``export DIR``: the suite's synthetic data at the issue's scale (2,000 training and 1,000 database videos,
  25 frames x 512 features, 20 classes, generator seed 0) written as FCVID's files (``fcv_train_feats.h5``,
  ``fcv_test_feats.h5``, ``fcv_test_labels.mat``), for both the suite and the authors' code to read;
- ``run DIR --seed S --bits B [B ...] --stage2-init independent|stage1 [...]``: the suite's ``bth`` on those
  files (16 epochs per stage, batch 256, lr 3e-4, 100 anchors; stage 1 is shared through ``--cache-dir`` by every
  bit length and both stage-2 starts of one seed), one JSON line of scores per run;
- ``score DIR CODES.npy``: the same scores for codes made elsewhere (the authors' code), database order;
- ``start DIR --seed S --cache-dir C``: after a run of seed S stored its stage 1 in C, stage 2's anchor term
  before its first step (eval mode, no mask, every training video) for each stage-2 start: how far the fresh
  model's frame-mean hidden states lie from the stage-1 anchor centres they are pulled towards.

Scores (database codes, the database is the query set): mAP@5, ``constant_bits`` (bits with one value for at
least 99% of the videos), ``distinct`` codes, ``top_share`` (the share of videos holding the most common code),
and ``collapsed``: more than half of the bits constant or one code held by more than 10% of the videos.

Not run by CI (minutes per run on one CPU thread).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import h5py
import numpy as np
import scipy.io
import torch

from ssvh_bench import dataset_registry, evaluate, method_registry
from ssvh_bench.methods.bth import frame_mean_hidden
from ssvh_bench.train import seed_everything

SIZES = {"n_train": 2000, "n_database": 1000, "n_frames": 25, "feature_dim": 512, "n_classes": 20, "seed": 0}
SETTINGS = {"epochs": 16, "stage1_epochs": 16, "batch_size": 256, "lr": 3e-4, "n_anchors": 100}
CONSTANT = 0.98  # |mean code| of a bit held by at least 99% of the videos


def export(folder: Path) -> None:
    splits = dataset_registry.get("synthetic").create(**SIZES).load()
    folder.mkdir(parents=True, exist_ok=True)
    for name, videos in (("fcv_train_feats.h5", splits.train), ("fcv_test_feats.h5", splits.database)):
        with h5py.File(folder / name, "w") as f:
            f["feats"] = videos.read(slice(None)).astype(np.float32)
    scipy.io.savemat(folder / "fcv_test_labels.mat", {"labels": splits.database_labels.astype(np.float64)})


def scores(codes: np.ndarray, labels: np.ndarray) -> dict:
    codes = np.asarray(codes, dtype=np.int8)
    found = evaluate(codes, codes, labels, labels, ks=(5,), query_is_database=True)
    constant = int((np.abs(codes.astype(np.float64).mean(axis=0)) >= CONSTANT).sum())
    _, counts = np.unique(codes, axis=0, return_counts=True)
    top_share = float(counts.max() / len(codes))
    return {"map@5": round(found["map@5"], 4), "constant_bits": constant, "distinct": len(counts),
            "top_share": round(top_share, 3),
            "collapsed": bool(constant > codes.shape[1] / 2 or top_share > 0.10)}


def database_labels(folder: Path) -> np.ndarray:
    return scipy.io.loadmat(folder / "fcv_test_labels.mat")["labels"]


def run(folder: Path, seed: int, bits: list[int], inits: list[str], cache_dir: Path | None) -> None:
    splits = dataset_registry.get("fcvid").create().load(folder)
    for init in inits:
        for b in bits:
            start = time.perf_counter()
            method = method_registry.get("bth").create(**SETTINGS, stage2_init=init)
            method.fit(splits.train, bits=b, seed=seed, cache_dir=cache_dir)
            codes = method.encode(splits.database)
            print(json.dumps({"side": "suite", "seed": seed, "bits": b, "stage2_init": init,
                              **scores(codes, splits.database_labels),
                              "seconds": round(time.perf_counter() - start)}), flush=True)


def start(folder: Path, seed: int, cache_dir: Path) -> None:
    train = dataset_registry.get("fcvid").create().load(folder).train
    for init in ("independent", "stage1"):
        method = method_registry.get("bth").create(**SETTINGS, stage2_init=init)
        method.prepare(train, bits=64, seed=seed, device=torch.device("cpu"), cache_dir=cache_dir, progress=False)
        seed_everything(method.init_seed(seed))  # as ``fit`` builds stage 2
        model = method.build_model(train.n_frames, train.feature_dim, 64)
        hidden = frame_mean_hidden(model, train, method.batch_size, torch.device("cpu"))
        centres = method.neighbourhood.centres[method.neighbourhood.pseudo_labels]
        print(json.dumps({"seed": seed, "stage2_init": init,
                          "anchor_term_at_start": round(float(((hidden - centres) ** 2).mean()), 4)}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("export").add_argument("folder", type=Path)
    runner = commands.add_parser("run")
    runner.add_argument("folder", type=Path)
    runner.add_argument("--seed", type=int, required=True)
    runner.add_argument("--bits", type=int, nargs="+", default=[64])
    runner.add_argument("--stage2-init", nargs="+", default=["independent", "stage1"])
    runner.add_argument("--cache-dir", type=Path, default=None)
    scorer = commands.add_parser("score")
    scorer.add_argument("folder", type=Path)
    scorer.add_argument("codes", type=Path)
    starter = commands.add_parser("start")
    starter.add_argument("folder", type=Path)
    starter.add_argument("--seed", type=int, required=True)
    starter.add_argument("--cache-dir", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.command == "export":
        export(args.folder)
    elif args.command == "run":
        run(args.folder, args.seed, args.bits, args.stage2_init, args.cache_dir)
    elif args.command == "start":
        start(args.folder, args.seed, args.cache_dir)
    else:
        print(json.dumps(scores(np.load(args.codes), database_labels(args.folder))))


if __name__ == "__main__":
    main()
