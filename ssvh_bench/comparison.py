"""Comparisons of finished runs: every setting's mAP@K with its interval over seeds and queries, every pair's
difference with its interval and Holm-corrected p-value, which pairs are resolved, and what the measured seed
spread lets the present seeds resolve (``ssvh-bench compare``; the method is in ``ssvh_bench.stats``).

A contender is one setting (a method with its parameters, i.e. one setting id) on one dataset and code length;
its runs are its seeds. Two contenders are compared on the seeds they share (seed i of one paired with seed i
of the other) and on the same queries: runs evaluated on different query sets are refused.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import stats
from .display import method_label, method_rank
from .errors import ConfigError, DataError
from .per_query import PerQuery, load_per_query
from .run_folder import RunFolder

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_TARGET = 0.01  # the difference "seeds needed" is reported for


@dataclass
class Contender:
    """One setting's finished runs, by seed, and their per-query AP."""

    method: str
    overrides: str
    setting_id: str
    runs: dict[int, PerQuery] = field(default_factory=dict)
    shared: str = ""  # overrides every contender has (e.g. dataset.n_train=500): said once, not in each label

    @property
    def label(self) -> str:
        own = ";".join(item for item in self.overrides.split(";") if item and item not in self.shared.split(";"))
        return method_label(self.method, own)

    @property
    def seeds(self) -> list[int]:
        return sorted(self.runs)

    @property
    def queries(self) -> str:
        return next(iter(self.runs.values())).queries

    def matrix(self, k: int, seeds: list[int] | None = None) -> np.ndarray:
        """AP@k as [seeds, queries], rows in ``seeds`` order (default: all of this setting's seeds)."""
        return np.stack([self.runs[seed].ap(k) for seed in (seeds or self.seeds)])

    def oracle_matrix(self, k: int, seeds: list[int] | None = None) -> np.ndarray:
        """The same for the oracle epoch's AP@k (``map@K_oracle``)."""
        return np.stack([self.runs[seed].ap(k, oracle=True) for seed in (seeds or self.seeds)])


@dataclass(frozen=True)
class PairResult:
    """``better`` minus ``worse`` (ordered by mean), on their ``seeds`` in common."""

    better: str
    worse: str
    seeds: list[int]
    difference: stats.Difference
    p_holm: float
    detectable: float  # smallest true difference found with 80% power at the present seeds (nan: one seed)

    @property
    def resolved(self) -> bool:
        return self.p_holm < stats.ALPHA


@dataclass(frozen=True)
class Comparison:
    dataset: str
    bits: int
    k: int
    target: float
    shared: str  # parameters every compared setting has changed alike (dataset.n_train=500), or ""
    estimates: dict[str, stats.Estimate]  # label -> mAP@K of the setting, in decreasing mean
    pairs: list[PairResult]
    seed_std: float  # median over pairs of the seed-to-seed std of the difference (nan: one seed)
    detectable: float  # smallest difference the present seeds resolve (80% power), from seed_std
    n_seeds: int
    seeds_for_target: int | None  # seeds needed to resolve ``target`` (None: the queries limit it)


def load_contenders(results_dir: Path | str, dataset: str, bits: int, methods: list[str] | None = None
                    ) -> list[Contender]:
    """The settings with finished runs of ``dataset`` at ``bits`` (only ``methods`` when given, each of which
    must have one), in display order; a DataError when their query sets differ."""
    from .leaderboard import iter_finished_runs, setting_label

    found: dict[str, Contender] = {}
    for path, config, metrics in iter_finished_runs(Path(results_dir)):
        if config["dataset"] != dataset or int(config["bits"]) != int(bits):
            continue
        if methods and config["method"] not in methods:
            continue
        setting = config.get("setting_id", config["run_id"])
        contender = found.setdefault(setting, Contender(config["method"], setting_label(config), setting))
        contender.runs.setdefault(int(config["seed"]), load_per_query(RunFolder(path), metrics))
    contenders = share_overrides(sorted(found.values(), key=lambda c: (method_rank(c.method), c.overrides)))
    missing = [m for m in (methods or []) if m not in {c.method for c in contenders}]
    if missing:
        raise ConfigError(f"no finished run of {', '.join(missing)} on {dataset} at {bits} bits under "
                          f"{Path(results_dir) / 'runs'}; run it first")
    return contenders


def share_overrides(contenders: list[Contender]) -> list[Contender]:
    """Record in each contender the overrides all of them have (said once, left out of the labels)."""
    shared = set.intersection(*(set(filter(None, c.overrides.split(";"))) for c in contenders)) if contenders else set()
    for contender in contenders:
        contender.shared = ";".join(sorted(shared))
    return contenders


def contenders_from_frame(frame: pd.DataFrame) -> list[Contender]:
    """The settings of a leaderboard frame (one dataset and code length), with their runs' per-query AP."""
    from .leaderboard import per_query_of

    found: dict[str, Contender] = {}
    for row in frame.itertuples(index=False):
        contender = found.setdefault(row.setting_id, Contender(row.method, row.overrides, row.setting_id))
        contender.runs.setdefault(int(row.seed), per_query_of(row.folder))
    return share_overrides(sorted(found.values(), key=lambda c: (method_rank(c.method), c.overrides)))


def check_same_queries(contenders: list[Contender]) -> None:
    for contender in contenders:
        for seed, run in contender.runs.items():
            if run.queries != contenders[0].queries:
                raise DataError(f"{contender.label} (seed {seed}) was evaluated on other queries than "
                                f"{contenders[0].label}; only runs on the same query set can be compared")


def shared_seeds(a: Contender, b: Contender) -> list[int]:
    seeds = sorted(set(a.seeds) & set(b.seeds))
    if not seeds:
        raise ConfigError(f"{a.label} (seeds {_list(a.seeds)}) and {b.label} (seeds {_list(b.seeds)}) share no "
                          f"seed; pairs are compared on matched seeds, so run the same seeds")
    return seeds


def compare_contenders(contenders: list[Contender], k: int, *, dataset: str = "", bits: int = 0,
                       target: float = DEFAULT_TARGET) -> Comparison:
    """Every pair of ``contenders`` at AP@k (see the module docstring)."""
    if len(contenders) < 2:
        names = ", ".join(c.label for c in contenders) or "none"
        raise ConfigError(f"compare needs finished runs of at least two settings on {dataset} at {bits} bits; "
                          f"found {len(contenders)} ({names})")
    check_same_queries(contenders)
    estimates = {c.label: stats.estimate(c.matrix(k)) for c in contenders}
    ranked = sorted(contenders, key=lambda c: -estimates[c.label].mean)
    raw = []
    for i, better in enumerate(ranked):
        for worse in ranked[i + 1:]:
            seeds = shared_seeds(better, worse)
            raw.append((better, worse, seeds, stats.difference(better.matrix(k, seeds), worse.matrix(k, seeds))))
    adjusted = stats.holm([d.p_value for *_, d in raw])
    pairs = []
    for (better, worse, seeds, diff), p_holm in zip(raw, adjusted):
        one = diff.estimate.seed_std ** 2
        found = (math.nan if len(seeds) < 2
                 else stats.detectable(one, diff.estimate.query_var, len(seeds), diff.estimate.n_queries))
        pairs.append(PairResult(better.label, worse.label, seeds, diff, float(p_holm), found))
    spreads = [p.difference.estimate.seed_std for p in pairs if len(p.seeds) > 1]
    seed_std = statistics.median(spreads) if spreads else math.nan
    n_seeds = min(len(p.seeds) for p in pairs)
    query_var = statistics.median(p.difference.estimate.query_var for p in pairs)
    n_queries = pairs[0].difference.estimate.n_queries
    if math.isnan(seed_std):
        found, needed = math.nan, None
    else:
        found = stats.detectable(seed_std ** 2, query_var, n_seeds, n_queries)
        needed = stats.seeds_needed(target, seed_std ** 2, query_var, n_queries)
    ordered = {c.label: estimates[c.label] for c in ranked}
    return Comparison(dataset, bits, k, target, contenders[0].shared, ordered, pairs, seed_std, found, n_seeds, needed)


def compare(results_dir: Path | str, dataset: str, bits: int, *, methods: list[str] | None = None, k: int = 5,
            target: float = DEFAULT_TARGET) -> Comparison:
    """Compare every pair of settings with finished runs of ``dataset`` at ``bits`` at mAP@``k``."""
    if not 0 < target < 1:
        raise ConfigError(f"the target difference must lie between 0 and 1, got {target}")
    contenders = load_contenders(results_dir, dataset, bits, methods)
    return compare_contenders(contenders, k, dataset=dataset, bits=bits, target=target)


def not_distinguishable(contenders: list[Contender], k: int, metric: str = "map") -> tuple[str, set[str]]:
    """The setting id with the best mean mAP@k and the setting ids whose difference from it is not resolved
    (matched seeds and queries, Holm over the comparisons with the best; settings that share no seed or query
    set with the best cannot be told apart from it). ``metric="map_oracle"`` uses the oracle's AP."""
    def matrix(c: Contender, seeds: list[int] | None = None) -> np.ndarray:
        return c.matrix(k, seeds) if metric == "map" else c.oracle_matrix(k, seeds)

    means = {c.setting_id: float(matrix(c).mean()) for c in contenders}
    best = max(contenders, key=lambda c: means[c.setting_id])
    others = [c for c in contenders if c is not best]
    if not others:
        return best.label, set()
    p_values = []
    for other in others:
        seeds = sorted(set(best.seeds) & set(other.seeds))
        comparable = seeds and other.queries == best.queries
        p_values.append(stats.difference(matrix(best, seeds), matrix(other, seeds)).p_value if comparable else 1.0)
    adjusted = stats.holm(p_values)
    return best.setting_id, {o.setting_id for o, p in zip(others, adjusted) if p >= stats.ALPHA}


def verdict_lines(comparison: Comparison) -> list[str]:
    """The comparison in words."""
    resolved = [p for p in comparison.pairs if p.resolved]
    lines = [f"{len(resolved)} of {len(comparison.pairs)} pair(s) resolved at alpha {stats.ALPHA} "
             f"(Holm-corrected over {len(comparison.pairs)} pair(s))"]
    if resolved:
        lines.append("resolved: " + "; ".join(f"{p.better} > {p.worse}" for p in resolved))
    unresolved = [p for p in comparison.pairs if not p.resolved]
    if unresolved:
        lines.append("not resolved: " + "; ".join(f"{p.better} vs {p.worse}" for p in unresolved))
    if math.isnan(comparison.seed_std):
        lines.append("one seed per setting: intervals and tests cover queries only, not training randomness; "
                     "run at least two seeds to measure the seed spread")
    else:
        needed = comparison.seeds_for_target
        lines.append(f"seed-to-seed std of a difference (median over pairs): {comparison.seed_std:.4f}; with "
                     f"{comparison.n_seeds} seeds the smallest difference found with {stats.POWER:.0%} power is "
                     f"{comparison.detectable:.4f}; a difference of {comparison.target:g} needs "
                     + (f"{needed} seeds" if needed is not None else
                        f"more than {stats.MAX_SEEDS} seeds (the query sample limits it)"))
    return lines


def _list(seeds: list[int]) -> str:
    return ",".join(map(str, seeds))

