"""Grids of runs: configs x seeds, finished runs skipped, summaries aggregated into a tidy table.

Run ``seed`` of config ``name`` lives in ``root/<name>/seed<seed>/``. The table has one row per (config, metric):
mean, sample standard deviation and the number of seeds behind them. Plain lists of dicts: pandas optional.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Iterable

from mcef.config import ConfigError, ExperimentConfig, load_config, with_changes

# Per-run figures collected from summary.json: column name -> path in the summary.
RUN_FIGURES = {
    "test_accuracy": ("test", "accuracy"),
    "test_weighted_f1": ("test", "weighted_f1"),
    "test_macro_f1": ("test", "macro_f1"),
    "valid_accuracy": ("valid", "accuracy"),
    "valid_weighted_f1": ("valid", "weighted_f1"),
    "oracle_test_accuracy": ("oracle_best_test", "accuracy"),
    "oracle_test_weighted_f1": ("oracle_best_test", "weighted_f1"),
    "selected_epoch": ("selected_epoch",),
    "parameters": ("parameters",),
    "wall_time_s": ("wall_time_s",),
}


def run_dir_of(root: str | Path, config: ExperimentConfig) -> Path:
    """Where the run of ``config`` (its name and seed) lives under ``root``."""
    return Path(root) / config.name / f"seed{config.train.seed}"


def sweep(configs: Iterable[ExperimentConfig | str | os.PathLike], seeds: Iterable[int], root: str | Path = "runs/sweep",
          *, overrides: tuple[str, ...] = (), dataset=None, progress: bool | None = None, retrain: bool = True,
          log=print) -> list[dict]:
    """Train every config with every seed into ``root/<name>/seed<seed>/``; return :func:`aggregate`.

    A finished run is reused only when its digest (:mod:`mcef.runs`) matches, a partial one of the same digest is
    resumed, a diverged one is logged and left out of the table. A run of another digest is set aside as
    ``seed<seed>.stale-<digest>`` (never deleted; never while another training holds it) and trained again, or, with
    ``retrain=False``, refused with a ConfigError naming the fields that differ. ``configs`` are ExperimentConfigs or
    YAML paths (``overrides`` apply to the paths); ``dataset`` replaces the configs' own data.
    """
    from mcef.runs import RunIdentity, RunLockedError, data_fingerprint, explain_mismatch, lock_holder, read_run
    from mcef.train import fit, load_data

    loaded = [c if isinstance(c, ExperimentConfig) else load_config(c, overrides) for c in configs]
    names = [c.name for c in loaded]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"sweep: several configs are named {duplicates}; give each a distinct `name`")
    seeds = list(seeds)
    for config in loaded:
        tune = config.data.text.finetune
        per_seed = dataset is None and tune is not None and tune.seed is None  # each seed fine-tunes its encoder
        data, description = (dataset, None) if dataset is not None or per_seed else load_data(config)
        for seed in seeds:
            run = with_changes(config, train={"seed": seed})
            if per_seed:
                data, description = load_data(run)
            fingerprint = data_fingerprint(data)
            run_dir = run_dir_of(root, run)
            identity = RunIdentity.of(run, fingerprint)
            stored = read_run(run_dir) if run_dir.is_dir() else None
            if stored is not None and stored.status != "empty" and (
                    stored.identity is None or stored.identity.digest != identity.digest):
                reason = explain_mismatch(stored, run, identity)
                if not retrain:
                    raise ConfigError(f"sweep: {reason}; rerun with retrain to train it again")
                holder = lock_holder(run_dir)
                if holder is not None:
                    raise RunLockedError(f"sweep: {run_dir} is in use by another training ({holder}); not set aside")
                aside = run_dir.with_name(f"{run_dir.name}.stale-{stored.identity.digest[:8] if stored.identity else 'old'}")
                while aside.exists():
                    aside = aside.with_name(aside.name + "+")
                run_dir.rename(aside)
                log(f"[sweep] {reason}: set aside as {aside.name}, training again")
            summary = fit(run, dataset=data, data_description=description, run_dir=run_dir, resume=True,
                          progress=progress)
            if summary.get("diverged"):
                log(f"[sweep] {run_dir}: {summary['diverged'].get('message', 'diverged')}; left out of the table")
    return aggregate(collect(root, names=names, seeds=seeds))


def _dig(summary: dict, path: tuple[str, ...]):
    for key in path:
        if not isinstance(summary, dict) or summary.get(key) is None:
            return None
        summary = summary[key]
    return summary


def collect(root: str | Path, *, names: Iterable[str] | None = None, seeds: Iterable[int] | None = None) -> list[dict]:
    """One flat dict per finished run under ``root`` (optionally only these config names and seeds); a diverged run
    (``diverged`` in its summary) has no figures and is left out."""
    root = Path(root)
    wanted_names = None if names is None else set(names)
    wanted_seeds = None if seeds is None else {int(s) for s in seeds}
    runs = []
    for path in sorted(root.glob("*/seed*/summary.json")):
        if not path.parent.name[len("seed"):].isdigit():
            continue  # a run set aside by sweep (seed<k>.stale-<digest>)
        name, seed = path.parent.parent.name, int(path.parent.name[len("seed"):])
        if (wanted_names is not None and name not in wanted_names) or (wanted_seeds is not None and seed not in wanted_seeds):
            continue
        summary = json.loads(path.read_text(encoding="utf-8"))
        if summary.get("diverged"):
            continue
        runs.append({"config": name, "seed": seed, **{k: _dig(summary, p) for k, p in RUN_FIGURES.items()}})
    return runs


def aggregate(runs: list[dict], metrics: Iterable[str] | None = None) -> list[dict]:
    """Tidy table: one row {config, metric, mean, std, n} per config and metric (std: sample, None for n < 2)."""
    metrics = list(RUN_FIGURES) if metrics is None else list(metrics)
    table = []
    for name in dict.fromkeys(r["config"] for r in runs):
        for metric in metrics:
            values = [r[metric] for r in runs if r["config"] == name and r.get(metric) is not None]
            if not values:
                continue
            n = len(values)
            mean = sum(values) / n
            std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
            table.append({"config": name, "metric": metric, "mean": mean, "std": std, "n": n})
    return table


def mean_std(mean: float, std: float | None, *, scale: float = 100.0, digits: int = 2) -> str:
    """``"67.21 ± 0.84"`` (scaled, e.g. to percent); ``"67.21"`` when there is no spread to report."""
    text = f"{mean * scale:.{digits}f}"
    return text if std is None else f"{text} ± {std * scale:.{digits}f}"


def format_table(table: list[dict], metrics: Iterable[str] = ("test_accuracy", "test_weighted_f1", "test_macro_f1"),
                 *, scale: float = 100.0, digits: int = 2) -> str:
    """A plain-text table: configs as rows, ``metrics`` as columns (mean ± std), and the number of seeds."""
    metrics = list(metrics)
    names = list(dict.fromkeys(row["config"] for row in table))
    cells = {(row["config"], row["metric"]): row for row in table}
    header = ["config", *metrics, "n"]
    lines = [header]
    for name in names:
        present = [cells[(name, m)] for m in metrics if (name, m) in cells]
        lines.append([name, *(mean_std(cells[(name, m)]["mean"], cells[(name, m)]["std"], scale=scale, digits=digits)
                              if (name, m) in cells else "-" for m in metrics),
                      str(max((c["n"] for c in present), default=0))])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)
