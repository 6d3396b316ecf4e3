"""BTH with stage 2 started independently of stage 1 or from stage 1's initial weights, at 2,000 training videos
(benchmarks/fidelity/bth_stage2_init.md).

Five commands:

- ``export DIR [--difficulty D | --clusters SPREAD]``: data at the issue's scale (2,000 training and 1,000
  database videos, 25 frames x 512 features, 20 classes, seed 0) written as FCVID's files
  (``fcv_train_feats.h5``, ``fcv_test_feats.h5``, ``fcv_test_labels.mat``), for both the suite and the authors'
  code to read: the suite's ``synthetic`` generator (at ``difficulty`` D), or with ``--clusters`` non-negative
  Gaussian classes whose per-video spread is SPREAD times the class centres' scale (see ``clusters``);
- ``run DIR --seed S --bits B [B ...] --stage2-init independent|stage1 [...]``: the suite's ``bth`` on those
  files (16 epochs per stage, batch 256, lr 3e-4, 100 anchors; stage 1 is shared through ``--cache-dir`` by every
  bit length and both stage-2 starts of one seed), one JSON line of scores per run;
- ``score DIR CODES.npy [--seed S --bits B --stage2-init I]``: the same scores for codes made elsewhere (the
  authors' code), database order; with the run's description, one JSON line of the same shape as ``run``'s
  (side ``authors``);
- ``table FILE [FILE ...]``: the Markdown tables of the docs from those JSON lines (other lines are skipped):
  per bit length, each start and side with its mean, spread, code health and collapse rate, the suite against
  the authors' code (Welch's interval for the difference of means, Fisher's exact test for the collapse rates),
  and every run;
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
import statistics
import time
from pathlib import Path

import h5py
import numpy as np
import scipy.io
import scipy.stats
import torch

from ssvh_bench import dataset_registry, evaluate, method_registry
from ssvh_bench.health import code_health, collapse
from ssvh_bench.methods.bth import frame_mean_hidden
from ssvh_bench.nn import MASKINGS
from ssvh_bench.train import seed_everything

SIZES = {"n_train": 2000, "n_database": 1000, "n_frames": 25, "feature_dim": 512, "n_classes": 20, "seed": 0}
SETTINGS = {"epochs": 16, "stage1_epochs": 16, "batch_size": 256, "lr": 3e-4, "n_anchors": 100}
CONSTANT = 0.98  # |mean code| of a bit held by at least 99% of the videos


def clusters(spread: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian classes made non-negative as CNN features are: a frame is ``relu`` of its class centre plus a
    per-video offset (``spread`` times the centres' scale) plus per-frame noise of the centres' scale; balanced
    classes, one label each."""
    rng = np.random.default_rng(SIZES["seed"])
    c, t, d = SIZES["n_classes"], SIZES["n_frames"], SIZES["feature_dim"]
    centres = rng.standard_normal((c, d))

    def videos(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.permutation(np.arange(n) % c)
        means = centres[labels] + spread * rng.standard_normal((n, d))
        frames = np.maximum(means[:, None, :] + rng.standard_normal((n, t, d)), 0)
        return frames.astype(np.float32), np.eye(c)[labels]

    (train, _), (database, labels) = videos(SIZES["n_train"]), videos(SIZES["n_database"])
    return train, database, labels


def export(folder: Path, difficulty: float = 1.0, spread: float | None = None) -> None:
    if spread is None:
        splits = dataset_registry.get("synthetic").create(**SIZES, difficulty=difficulty).load()
        train, database = (videos.read(slice(None)) for videos in (splits.train, splits.database))
        labels = splits.database_labels
    else:
        train, database, labels = clusters(spread)
    folder.mkdir(parents=True, exist_ok=True)
    for name, videos in (("fcv_train_feats.h5", train), ("fcv_test_feats.h5", database)):
        with h5py.File(folder / name, "w") as f:
            f["feats"] = np.asarray(videos, dtype=np.float32)
    scipy.io.savemat(folder / "fcv_test_labels.mat", {"labels": np.asarray(labels, dtype=np.float64)})


def scores(codes: np.ndarray, labels: np.ndarray) -> dict:
    codes = np.asarray(codes, dtype=np.int8)
    found = evaluate(codes, codes, labels, labels, ks=(5,), query_is_database=True)
    health = code_health(codes)
    # near-constant bits (the count), where code health counts bits constant over every video
    health["constant_bits"] = int((np.abs(codes.astype(np.float64).mean(axis=0)) >= CONSTANT).sum())
    return {"map@5": round(found["map@5"], 4), "constant_bits": health["constant_bits"],
            "distinct": health["distinct_codes"], "top_share": round(health["top_code_share"], 3),
            "collapsed": bool(collapse(health, codes.shape[1]))}


def database_labels(folder: Path) -> np.ndarray:
    return scipy.io.loadmat(folder / "fcv_test_labels.mat")["labels"]


def run(folder: Path, seed: int, bits: list[int], inits: list[str], masking: str, cache_dir: Path | None) -> None:
    splits = dataset_registry.get("fcvid").create().load(folder)
    for init in inits:
        for b in bits:
            start = time.perf_counter()
            method = method_registry.get("bth").create(**SETTINGS, stage2_init=init, masking=masking)
            method.fit(splits.train, bits=b, seed=seed, cache_dir=cache_dir)
            codes = method.encode(splits.database)
            print(json.dumps({"side": "suite", "version": method.version, "seed": seed, "bits": b,
                              "stage2_init": init, "masking": masking, **scores(codes, splits.database_labels),
                              "seconds": round(time.perf_counter() - start)}), flush=True)


STARTS = {"independent": "independent (default)", "stage1": "`stage1`"}
# who ran, with which masking: the authors' code as released masks in place; with a copy per read it masks afresh
CODES = {("authors", "in_place"): "authors'", ("authors", "fresh"): "authors', copy per read",
         ("suite", "in_place"): "suite", ("suite", "fresh"): "suite, `masking=fresh`"}


def read_rows(files: list[Path]) -> list[dict]:
    """The JSON lines of ``run`` and ``score``; a row without ``masking`` is the authors' code as released or the
    suite's version 5, which masked afresh."""
    rows = {}
    for file in files:
        for line in file.read_text().splitlines():
            if line.startswith("{") and '"side"' in line:
                row = json.loads(line)
                row.setdefault("masking", "in_place" if row["side"] == "authors" else "fresh")
                # a rerun replaces its row
                rows[row["side"], row["bits"], row["stage2_init"], row["masking"], row["seed"]] = row
    return list(rows.values())


def _runs(rows: list[dict], code: tuple[str, str], bits: int, init: str) -> list[dict]:
    return sorted((r for r in rows if ((r["side"], r["masking"]), r["bits"], r["stage2_init"]) == (code, bits, init)),
                  key=lambda r: r["seed"])


def _spread(values: list[float], fmt: str) -> str:
    low, high = fmt.format(min(values)), fmt.format(max(values))
    return low if low == high else f"{low}-{high}"


def _signed(value: float, fmt: str) -> str:
    text = fmt.format(value)
    return fmt.format(0.0) if float(text) == 0 else text  # no "-0.000"


def _welch(suite: list[float], authors: list[float], fmt: str) -> str:
    if min(len(suite), len(authors)) < 2:
        return "-"
    test = scipy.stats.ttest_ind(suite, authors, equal_var=False)
    low, high = (_signed(end, fmt) for end in test.confidence_interval(0.95))
    p = "p<0.01" if test.pvalue < 0.01 else f"p={test.pvalue:.2f}"
    return f"{_signed(statistics.mean(suite) - statistics.mean(authors), fmt)} [{low}, {high}], {p}"


def table(files: list[Path]) -> str:
    rows = read_rows(files)
    out = ["| bits | stage 2 start | code | runs | mAP@5 mean ± sd | mAP@5 range | constant bits | distinct codes | "
           "top share | collapsed |", "|---|---|---|---|---|---|---|---|---|---|"]
    versus = ["| bits | stage 2 start | suite - authors' code | mAP@5 (Welch 95% interval) | constant bits (Welch 95% "
              "interval) | collapse rates, Fisher's exact p |", "|---|---|---|---|---|---|"]
    for bits in sorted({r["bits"] for r in rows}, reverse=True):
        for init, name in STARTS.items():
            found = {code: _runs(rows, code, bits, init) for code in CODES}
            for code, runs in found.items():
                if not runs:
                    continue
                maps = [r["map@5"] for r in runs]
                sd = f" ± {statistics.stdev(maps):.3f}" if len(maps) > 1 else ""
                out.append(f"| {bits} | {name} | {CODES[code]} | {len(runs)} | "
                           f"{statistics.mean(maps):.3f}{sd} | {_spread(maps, '{:.3f}')} | "
                           f"{_spread([r['constant_bits'] for r in runs], '{}')} | "
                           f"{_spread([r['distinct'] for r in runs], '{}')} | "
                           f"{_spread([r['top_share'] for r in runs], '{:.2f}')} | "
                           f"{sum(r['collapsed'] for r in runs)} of {len(runs)} |")
            # like for like, and version 5 (fresh) against the released code
            for ours, theirs in (("in_place", "in_place"), ("fresh", "fresh"), ("fresh", "in_place")):
                suite, authors = found["suite", ours], found["authors", theirs]
                if suite and authors:
                    rates = [[sum(r["collapsed"] for r in runs), sum(not r["collapsed"] for r in runs)]
                             for runs in (suite, authors)]
                    compared = [_welch(*([r[key] for r in runs] for runs in (suite, authors)), fmt)
                                for key, fmt in (("map@5", "{:+.3f}"), ("constant_bits", "{:+.1f}"))]
                    versus.append(f"| {bits} | {name} | {CODES['suite', ours]} - {CODES['authors', theirs]} | "
                                  f"{' | '.join(compared)} | {rates[0][0]} of {sum(rates[0])} vs {rates[1][0]} of "
                                  f"{sum(rates[1])}, p={scipy.stats.fisher_exact(rates).pvalue:.2f} |")
    by_key = {(r["side"], r["masking"], r["bits"], r["stage2_init"], r["seed"]): r for r in rows}
    runs = []  # one table of every run per stage-2 start
    for init in STARTS:
        present = [code for code in CODES if any((r["stage2_init"], (r["side"], r["masking"])) == (init, code)
                                                 for r in rows)]
        if not present:
            continue
        short = "independent" if init == "independent" else "`stage1`"
        table_rows = [f"| bits | seed, {short} start | " + " | ".join(CODES[code] for code in present) + " |",
                      "|---|---|" + "---|" * len(present)]
        for bits, seed in sorted({(r["bits"], r["seed"]) for r in rows if r["stage2_init"] == init},
                                 key=lambda k: (-k[0], k[1])):
            cells = []
            for code in present:
                r = by_key.get((*code, bits, init, seed))
                cells.append("-" if r is None else
                             f"{r['map@5']:.3f}/{r['constant_bits']}{' †' if r['collapsed'] else ''}")
            table_rows.append(f"| {bits} | {seed} | " + " | ".join(cells) + " |")
        runs.append(table_rows)
    return "\n\n".join("\n".join(t) for t in (out, versus, *runs))


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
    exporter = commands.add_parser("export")
    exporter.add_argument("folder", type=Path)
    generator = exporter.add_mutually_exclusive_group()
    generator.add_argument("--difficulty", type=float, default=1.0)
    generator.add_argument("--clusters", type=float, default=None, metavar="SPREAD")
    runner = commands.add_parser("run")
    runner.add_argument("folder", type=Path)
    runner.add_argument("--seed", type=int, required=True)
    runner.add_argument("--bits", type=int, nargs="+", default=[64])
    runner.add_argument("--stage2-init", nargs="+", default=["independent", "stage1"])
    runner.add_argument("--masking", choices=MASKINGS, default="in_place")
    runner.add_argument("--cache-dir", type=Path, default=None)
    scorer = commands.add_parser("score")
    scorer.add_argument("folder", type=Path)
    scorer.add_argument("codes", type=Path)
    scorer.add_argument("--seed", type=int)
    scorer.add_argument("--bits", type=int)
    scorer.add_argument("--stage2-init", choices=list(STARTS))
    scorer.add_argument("--masking", choices=MASKINGS, default="in_place",
                        help="fresh: the authors' code with a copy per read")
    commands.add_parser("table").add_argument("files", type=Path, nargs="+")
    starter = commands.add_parser("start")
    starter.add_argument("folder", type=Path)
    starter.add_argument("--seed", type=int, required=True)
    starter.add_argument("--cache-dir", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.command == "export":
        export(args.folder, args.difficulty, args.clusters)
    elif args.command == "run":
        run(args.folder, args.seed, args.bits, args.stage2_init, args.masking, args.cache_dir)
    elif args.command == "start":
        start(args.folder, args.seed, args.cache_dir)
    elif args.command == "table":
        print(table(args.files))
    else:
        described = {} if args.seed is None else {"side": "authors", "seed": args.seed, "bits": args.bits,
                                                  "stage2_init": args.stage2_init, "masking": args.masking}
        print(json.dumps({**described, **scores(np.load(args.codes), database_labels(args.folder))}))


if __name__ == "__main__":
    main()
