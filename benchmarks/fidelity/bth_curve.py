"""BTH's training curve on the default synthetic data, with what its codes lose (benchmarks/fidelity/bth.md,
"On the default synthetic data: the falling curve").

Trains the suite's ``bth`` with its synthetic defaults (plus any ``--set``) and, before training and after
every stage-2 epoch, scores the database codes (mAP@5/20/100, the query is the database) and prints one JSON
line of code diagnostics:

- ``balance``: mean over bits of |mean code over the database| (0: every bit splits the videos in half);
- ``constant_bits``: bits with the same value for at least 99% of the database videos;
- ``distinct``: different codes among the database videos;
- ``frame_agreement``: mean over videos and bits of |mean over frames of the per-frame codes| (1: every frame
  of a video has the same code);
- ``in_window``: share of per-frame hash-layer outputs x with -1 < x <= 1, where the binariser passes a gradient.

Before training and after the last epoch it also prints what the constant bits are: their mean offset (mean
output over the database) and spread across videos, how many are entirely outside the window (under 1% of
outputs inside), and the share of videos whose code of a frame flips to the bit's unusual value when that
frame (the middle one) is zeroed, as the mask zeroes frames.

Run: ``python benchmarks/fidelity/bth_curve.py --seed 0 [--set reconstruction_weight=0] [--out curve.json]``.
Not run by CI (minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from ssvh_bench import dataset_registry, evaluate, method_registry

SYNTHETIC_DEFAULTS = {"n_anchors": 90, "epochs": 6, "stage1_epochs": 3}


def parse_setting(text: str) -> tuple[str, object]:
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def code_diagnostics(model: torch.nn.Module, videos: torch.Tensor, labels: np.ndarray) -> dict[str, float]:
    """mAP and the code statistics above for the database ``videos`` [N, T, F] (eval mode, no mask)."""
    model.eval()
    with torch.inference_mode():
        outputs = torch.cat([model.hash(model.encoder(videos[i:i + 256])) for i in range(0, len(videos), 256)])
    frame_codes = torch.where(outputs > 0, 1.0, -1.0)  # the binariser's forward: x <= 0 gives -1
    mean_codes = frame_codes.mean(dim=1)
    codes = torch.sign(mean_codes).numpy().astype(np.int8)  # the protocol's codes, as ``encode`` gives them
    found = evaluate(codes, codes, labels, labels, ks=(5, 20, 100), query_is_database=True)
    bit_means = np.abs(codes.astype(np.float64).mean(axis=0))
    return {**{f"map@{k}": round(found[f"map@{k}"], 4) for k in (5, 20, 100)},
            "balance": round(float(bit_means.mean()), 3),
            "constant_bits": int((bit_means >= 0.98).sum()),
            "distinct": len(np.unique(codes, axis=0)),
            "frame_agreement": round(float(mean_codes.abs().mean()), 3),
            "in_window": round(float(((outputs > -1) & (outputs <= 1)).float().mean()), 3)}


def constant_bits_report(model: torch.nn.Module, videos: torch.Tensor) -> dict[str, float]:
    """What the constant bits of ``model`` are (see the module docstring)."""
    model.eval()

    def outputs(frames: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return torch.cat([model.hash(model.encoder(frames[i:i + 256])) for i in range(0, len(frames), 256)])

    clean = outputs(videos)
    usual = torch.sign(torch.where(clean > 0, 1.0, -1.0).mean(dim=1)).mean(dim=0)  # mean video code per bit
    constant = usual.abs() >= 0.98
    middle = videos.shape[1] // 2
    zeroed = videos.clone()
    zeroed[:, middle] = 0
    flipped = torch.where(outputs(zeroed)[:, middle] > 0, 1.0, -1.0) == -torch.sign(usual)
    in_window = ((clean > -1) & (clean <= 1)).float().mean(dim=(0, 1))
    return {"constant_bits": int(constant.sum()),
            "offset": round(float(clean.mean(dim=(0, 1))[constant].abs().mean()), 2),
            "spread": round(float(clean.mean(dim=1).std(dim=0)[constant].mean()), 2),
            "outside_window": int((in_window[constant] < 0.01).sum()),
            "flip_when_zeroed": round(float(flipped[:, constant].float().mean()), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bits", type=int, default=64)
    parser.add_argument("--set", dest="settings", action="append", default=[], type=parse_setting,
                        help="a bth parameter, e.g. reconstruction_weight=0 or epochs=30")
    parser.add_argument("--cache-dir", default=None, help="stage-1 cache shared between runs")
    parser.add_argument("--out", default=None, help="write every row to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    splits = dataset_registry.get("synthetic").create().load()
    videos = torch.from_numpy(splits.database.read(slice(None)))
    method = method_registry.get("bth").create(**{**SYNTHETIC_DEFAULTS, **dict(args.settings)})
    rows = []

    def after_epoch(epoch: int) -> dict[str, float]:
        rows.append({"epoch": epoch + 1, **code_diagnostics(method.model, videos, splits.database_labels)})
        if epoch == -1 or epoch + 1 == method.epochs:
            rows[-1]["constant_bits_report"] = constant_bits_report(method.model, videos)
        print(json.dumps(rows[-1]), flush=True)
        return {}  # the rows are kept here, not in the training history

    method.fit(splits.train, bits=args.bits, seed=args.seed, cache_dir=args.cache_dir, after_epoch=after_epoch)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"seed": args.seed, "settings": dict(args.settings), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
