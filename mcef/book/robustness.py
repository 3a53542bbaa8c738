"""Chapter 06: how fast each configuration runs, and how a trained model copes with a bad modality.

- Robustness: a trained run is evaluated on test data where one modality is missing or corrupted
  (:func:`perturb`): ``zero`` replaces its features with zeros, ``noise`` adds Gaussian noise scaled by each
  feature dimension's training standard deviation, ``shuffle`` permutes its feature vectors across the split's
  utterances (each utterance gets another utterance's vector: realistic values, no information about this one).
  A missing modality is zeroed rather than removed: a model trained on three modalities has no way to run
  without one, while zero features make its bias-free input projection output exactly zero, so the stream
  carries only the speaker and position codes. Models trained without the modality are the ablation's
  bimodal runs (chapter 05), rebuilt from the profile's ``ablation_run`` and read from the run store by their
  digest (:func:`robustness_runs`); :func:`robustness_table` evaluates, :func:`summarise_robustness` averages seeds.
- Efficiency: :func:`efficiency_table` runs :func:`mcef.bench.bench` for every fusion variant on every available
  device; the equal-fusion (paper) configuration is timed side by side with the reference emulation.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch

from mcef.bench import REFERENCE_CPU_EPOCH_S
from mcef.book.common import (MODALITY_COLORS, BookRun, book_layout, load_recipe, run_config, section_settings,
                               train_or_reuse)
from mcef.config import ExperimentConfig, with_changes
from mcef.data.dataset import MODALITIES, DialogueDataset

KINDS = ("zero", "noise", "shuffle")
LEGEND_BELOW = dict(orientation="h", yanchor="top", y=-0.22, x=0)  # legends under the plot: the text column is narrow
CONDITION_NAMES = {"clean": "clean", "zero": "missing (zeroed)", "shuffle": "shuffled across utterances",
                   "noise": "Gaussian noise"}


@dataclass(frozen=True)
class EfficiencySettings:
    """Sizes of chapter 06 (profile section ``efficiency``; every field given there)."""

    noise_scales: tuple[float, ...]  # noise std, in units of each dimension's training std
    draws: int  # noise and shuffle draws averaged per run
    bench_recipe: str  # the benchmarked recipe, relative to the project root (configs/paper.yaml)
    bench_hidden: int  # H of the benchmarked configurations (512: the paper's model)
    bench_epochs: int  # timed epochs per configuration (the median is reported)
    bench_warmup: int  # untimed epochs first
    bench_memory: bool  # measure peak memory too (one more epoch; on CPU in a fresh process)
    fusions: tuple[str, ...]  # configurations benchmarked


def efficiency_settings(profile: str, root: str | Path | None = None) -> EfficiencySettings:
    """The :class:`EfficiencySettings` of ``profile``."""
    return section_settings(profile, "efficiency", EfficiencySettings, root)


# ----------------------------------------------------------------------------- the models


def robustness_runs(profile: str, dataset: DialogueDataset, seeds: list[int], run_root: str | Path, *,
                    device: str = "auto", root: str | Path | None = None) -> tuple[list[BookRun], dict[str, list[BookRun]]]:
    """(the full model's runs, modality -> the runs of the model trained without it), one per seed.

    The configs are rebuilt from the profile's ``ablation_run`` (the full model is its base, the others drop one
    modality), so chapter 05's runs of the same configs are found in the run store by their digest; missing ones are
    trained into ``run_root/robustness``.
    """
    base = run_config(profile, "ablation_run", device=device, root=root)
    modalities = base.model.modalities or MODALITIES
    without = {m: with_changes(base, name=f"{base.name}-without-{m}",
                               model={"modalities": [o for o in modalities if o != m]}) for m in modalities}
    full = train_or_reuse([base], seeds, dataset, run_root, folder="robustness")
    return full, {m: train_or_reuse([config], seeds, dataset, run_root, folder="robustness")
                  for m, config in without.items()}


# ----------------------------------------------------------------------------- perturbed test data


def perturb(dataset: DialogueDataset, modality: str, kind: str, *, scale: float = 0.0, seed: int = 0,
            split: str = "test") -> DialogueDataset:
    """A copy of ``dataset`` whose ``modality`` features are replaced in the dialogues of ``split`` only.

    ``kind``: ``"zero"`` (zeros), ``"noise"`` (plus N(0, (scale * std_d)^2) per dimension d, std_d measured on the
    training split), ``"shuffle"`` (feature vectors permuted across all utterances of the split). Other dialogues
    and modalities share the original arrays (nothing is copied that is not changed).
    """
    if kind not in KINDS:
        raise ValueError(f"perturb: unknown kind {kind!r}; expected one of {KINDS}")
    if modality not in dataset.modalities:
        raise ValueError(f"perturb: dataset {dataset.name!r} has modalities {dataset.modalities}, not {modality!r}")
    rng = np.random.default_rng(seed)
    ids = dataset.splits[split]
    blocks = [dataset.dialogues[d].features[modality] for d in ids]
    stacked = np.concatenate(blocks)  # (N, D) every utterance of the split
    if kind == "zero":
        changed = np.zeros_like(stacked)
    elif kind == "noise":
        train = np.concatenate([d.features[modality] for d in dataset.split("train")])  # (N_train, D)
        std = train.std(axis=0, keepdims=True)  # (1, D)
        changed = stacked + (scale * std * rng.standard_normal(stacked.shape)).astype(stacked.dtype)
    else:
        changed = stacked[rng.permutation(len(stacked))]
    dialogues = dict(dataset.dialogues)
    start = 0
    for dialogue_id, block in zip(ids, blocks):
        original = dataset.dialogues[dialogue_id]
        features = {**original.features, modality: changed[start : start + len(block)]}
        dialogues[dialogue_id] = replace(original, features=features)
        start += len(block)
    return replace(dataset, dialogues=dialogues)


def evaluate_model(model, config: ExperimentConfig, dataset: DialogueDataset, split: str = "test") -> dict:
    """Accuracy, weighted F1 and macro F1 of ``model`` (trained with ``config``) on ``split`` of ``dataset``."""
    from mcef.data import DialogueLoader
    from mcef.metrics import scores
    from mcef.train import class_weights, make_objective, run_epoch

    device = next(model.parameters()).device
    loader = DialogueLoader(dataset, split, batch_size=config.train.batch_size, modalities=model.config.modalities,
                            device=device)
    objective = make_objective(config, class_weights(config, dataset), device)
    result = run_epoch(model, loader, objective, dataset.n_classes)
    figures = scores(result["confusion_matrix"], dataset.label_names)
    return {"accuracy": figures["accuracy"], "weighted_f1": figures["weighted_f1"], "macro_f1": figures["macro_f1"]}


def conditions(modalities: tuple[str, ...], settings: EfficiencySettings) -> list[dict]:
    """Every test condition: clean, then per modality zeroed, shuffled and each noise scale."""
    found = [{"modality": "none", "condition": "clean", "kind": None, "scale": 0.0}]
    for modality in modalities:
        found.append({"modality": modality, "condition": CONDITION_NAMES["zero"], "kind": "zero", "scale": 0.0})
        found.append({"modality": modality, "condition": CONDITION_NAMES["shuffle"], "kind": "shuffle", "scale": 0.0})
        for scale in settings.noise_scales:
            found.append({"modality": modality, "condition": CONDITION_NAMES["noise"], "kind": "noise", "scale": scale})
    return found


def robustness_table(run_dirs: dict[int, str], dataset: DialogueDataset, settings: EfficiencySettings, *,
                     device: str = "auto", split: str = "test") -> pd.DataFrame:
    """Scores of each run (``{seed: run_dir}``) under every condition of :func:`conditions`.

    One row per (seed, modality, condition, scale); random conditions are averaged over ``settings.draws``
    draws (draw ``k`` of every run uses seed ``k``, so all runs see the same corrupted data).
    """
    from mcef.evaluate import load_run

    rows = []
    for seed, run_dir in run_dirs.items():
        config, model, _ = load_run(run_dir, device=device)
        for condition in conditions(model.config.modalities, settings):
            kind = condition["kind"]
            draws = 1 if kind in (None, "zero") else settings.draws
            scores = []
            for draw in range(draws):
                data = dataset if kind is None else perturb(dataset, condition["modality"], kind,
                                                            scale=condition["scale"], seed=draw, split=split)
                scores.append(evaluate_model(model, config, data, split))
            rows.append({"seed": seed, **{k: v for k, v in condition.items() if k != "kind"},
                         **{k: float(np.mean([s[k] for s in scores])) for k in scores[0]}})
    return pd.DataFrame(rows)


def robustness_scores(runs: list[BookRun], dataset: DialogueDataset, settings: EfficiencySettings, *,
                      device: str = "auto", split: str = "test") -> pd.DataFrame:
    """:func:`robustness_table` of every run, each computed once from its selected checkpoint and stored beside it
    (:func:`mcef.book.derived.from_weights`: the committed results carry no weights)."""
    from mcef.book.derived import from_weights

    stamp = {"noise_scales": list(settings.noise_scales), "draws": settings.draws, "split": split}
    frames = []
    for run in runs:
        def compute(run: BookRun = run) -> list[dict]:
            table = robustness_table({run.seed: run.run_dir}, dataset, settings, device=device, split=split)
            return table.to_dict(orient="records")

        frames.append(pd.DataFrame(from_weights(run, "robustness", stamp, compute)))
    return pd.concat(frames, ignore_index=True)


def summarise_robustness(table: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample std and n over seeds of every condition, with the change from the clean score (paired by seed; negative = worse)."""
    clean = table[table["condition"] == "clean"].set_index("seed")
    table = table.assign(change_accuracy=table["accuracy"] - table["seed"].map(clean["accuracy"]),
                         change_weighted_f1=table["weighted_f1"] - table["seed"].map(clean["weighted_f1"]))
    keys = ["modality", "condition", "scale"]
    grouped = table.groupby(keys, sort=False)
    summary = grouped[["accuracy", "weighted_f1", "change_accuracy", "change_weighted_f1"]].agg(["mean", "std"])
    summary.columns = [f"{metric}_{stat}" for metric, stat in summary.columns]
    summary["n"] = grouped.size()
    return summary.reset_index()


def lookup(summary: pd.DataFrame, modality: str, condition: str, column: str, scale: float = 0.0) -> float:
    """One number of :func:`summarise_robustness`'s table (``condition`` as a key of CONDITION_NAMES)."""
    rows = summary[(summary["modality"] == modality) & (summary["condition"] == CONDITION_NAMES[condition])
                   & np.isclose(summary["scale"], scale)]
    if len(rows) != 1:
        raise KeyError(f"lookup: no single row for {modality!r}, {condition!r}, scale {scale}")
    return float(rows[column].iloc[0])


ROBUSTNESS_SHOWN = ["accuracy_mean", "accuracy_std", "weighted_f1_mean", "weighted_f1_std",
                    "change_weighted_f1_mean", "n"]  # the columns of the chapter's robustness table


def robustness_display(summary: pd.DataFrame) -> pd.DataFrame:
    """:func:`summarise_robustness`'s table for reading: means and stds to 3 decimals, indexed by condition."""
    shown = summary.copy()
    for column in [c for c in shown.columns if c.endswith(("_mean", "_std"))]:
        shown[column] = shown[column].round(3)
    return shown.set_index(["modality", "condition", "scale"])[ROBUSTNESS_SHOWN]


def robustness_findings(summary: pd.DataFrame, noise_scales: tuple[float, ...]) -> dict[str, float | int | str]:
    """What the chapter says about the corruptions, keyed by its glue names.

    Per modality of ``summary``: the cost in points of weighted F1 (clean minus corrupted, ×100) of zeroing,
    shuffling and the largest noise scale; then the modalities whose zeroing costs most and least.
    """
    modalities = [m for m in summary["modality"].unique() if m != "none"]
    top_scale = max(noise_scales)

    def cost(modality: str, kind: str, scale: float = 0.0) -> float:  # to the 0.1 point the page shows; no -0.0
        return round(-100 * lookup(summary, modality, kind, "change_weighted_f1_mean", scale), 1) + 0.0

    zero_drop = {m: cost(m, "zero") for m in modalities}
    facts = {"clean_wf1": lookup(summary, "none", "clean", "weighted_f1_mean"), "top_scale": float(top_scale)}
    for m in modalities:
        facts[f"zero_drop_{m}"] = float(zero_drop[m])
        facts[f"shuffle_drop_{m}"] = float(cost(m, "shuffle"))
        facts[f"noise_drop_{m}"] = float(cost(m, "noise", top_scale))
    facts["most_needed"] = max(zero_drop, key=zero_drop.get)
    facts["least_needed"] = min(zero_drop, key=zero_drop.get)
    return facts


def retraining_findings(summary: pd.DataFrame, trained_without: dict[str, tuple[float, float]]) -> dict[str, float | int]:
    """The full model with a modality zeroed (``summary``, a model of the same size as those of
    ``trained_without``) against the model trained without it: both scores per modality, the full model's clean
    score, and for how many modalities the retrained model scores higher."""
    zeroed = {m: lookup(summary, m, "zero", "weighted_f1_mean") for m in trained_without}
    facts: dict[str, float | int] = {"same_size_clean_wf1": lookup(summary, "none", "clean", "weighted_f1_mean")}
    for m in trained_without:
        facts[f"without_{m}"] = float(trained_without[m][0])
        facts[f"zeroed_{m}"] = zeroed[m]
    facts["retrained_better"] = sum(bool(trained_without[m][0] > zeroed[m]) for m in trained_without)
    return facts


def cost_note(facts: Mapping[str, float | int | str]) -> str:
    """The sentence after the costs that :func:`robustness_findings` lists: which of them are negative, if any.

    A negative cost is a corrupted score above the clean one; the sentence names those corruptions, or says
    that every corruption lowered the score."""
    kinds = {"zero_drop": "zeroing", "shuffle_drop": "shuffling", "noise_drop": "noise on"}
    negative = [f"{label} {key.rsplit('_', 1)[1]} ({value:+.1f})" for key, value in facts.items()
                for prefix, label in kinds.items() if key.startswith(prefix + "_") and float(value) < 0]
    if not negative:
        return "Every corruption lowers the score."
    which = negative[0] if len(negative) == 1 else ", ".join(negative[:-1]) + " and " + negative[-1]
    return f"A negative cost means the score went up under that corruption: {which}."


def noise_figure(summary: pd.DataFrame, metric: str = "weighted_f1") -> go.Figure:
    """Test ``metric`` against the noise scale, one line per corrupted modality (scale 0 = clean), mean ± std."""
    clean = summary[summary["condition"] == "clean"]
    fig = go.Figure()
    for modality, rows in summary[summary["condition"] == CONDITION_NAMES["noise"]].groupby("modality", sort=False):
        x = [0.0, *rows["scale"]]
        y = [float(clean[f"{metric}_mean"].iloc[0]), *rows[f"{metric}_mean"]]
        error = [float(clean[f"{metric}_std"].fillna(0).iloc[0]), *rows[f"{metric}_std"].fillna(0)]
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=f"noise on {modality}",
                                 line_color=MODALITY_COLORS.get(modality),
                                 error_y=dict(type="data", array=error, visible=True)))
    fig.update_xaxes(title="noise std / feature std (0 = clean)")
    label = metric.replace("_", " ").replace("f1", "F1")
    return book_layout(fig, f"Test {label} when one modality gets Gaussian noise",
                       yaxis_title=f"test {label} (mean ± std over seeds)", legend=LEGEND_BELOW)


def trained_without(without: dict[str, list[BookRun]], metric: str = "weighted_f1") -> dict[str, tuple[float, float]]:
    """Modality -> (mean, sample std; NaN for one seed) of the test ``metric`` of the runs trained without it."""
    values = {m: [run.summary["test"][metric] for run in runs] for m, runs in without.items()}
    return {m: (statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else math.nan) for m, v in values.items()}


def missing_figure(summary: pd.DataFrame, trained_without: dict[str, tuple[float, float]] | None = None,
                   metric: str = "weighted_f1") -> go.Figure:
    """Grouped bars per modality: zeroed, shuffled and (when given) a model trained without it; clean as a line.

    ``trained_without``: modality -> (mean, std) of the test ``metric`` of the model trained without it.
    """
    clean = float(summary.loc[summary["condition"] == "clean", f"{metric}_mean"].iloc[0])
    fig = go.Figure()
    for kind, color in (("zero", "#E45756"), ("shuffle", "#F58518")):
        rows = summary[summary["condition"] == CONDITION_NAMES[kind]]
        fig.add_trace(go.Bar(x=rows["modality"], y=rows[f"{metric}_mean"], name=CONDITION_NAMES[kind],
                             marker_color=color, error_y=dict(type="data", array=rows[f"{metric}_std"].fillna(0))))
    if trained_without:
        modalities = list(trained_without)
        fig.add_trace(go.Bar(x=modalities, y=[trained_without[m][0] for m in modalities],
                             name="trained without it (ch. 5)", marker_color="#72B7B2",
                             error_y=dict(type="data", array=[0 if math.isnan(trained_without[m][1]) else
                                                              trained_without[m][1] for m in modalities])))
    fig.add_hline(y=clean, line_dash="dash", annotation_text="all modalities, clean")
    fig.update_layout(barmode="group")
    return book_layout(fig, "A missing or shuffled modality at test time", xaxis_title="modality affected",
                       yaxis_title=f"test {metric.replace('_', ' ').replace('f1', 'F1')} (mean ± std over seeds)",
                       legend=LEGEND_BELOW)


# ----------------------------------------------------------------------------- efficiency


def available_devices() -> list[str]:
    """The devices timed here: the CPU always, CUDA when present."""
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def bench_configs(settings: EfficiencySettings, root: str | Path | None = None) -> dict[str, ExperimentConfig]:
    """Fusion variant -> the recipe ``settings.bench_recipe`` with that fusion, at ``settings.bench_hidden``."""
    recipe = load_recipe(settings.bench_recipe, root)
    return {f: with_changes(recipe, name=f"bench-{f}-h{settings.bench_hidden}",
                            model={"hidden": settings.bench_hidden, "fusion": f}) for f in settings.fusions}


def efficiency_table(settings: EfficiencySettings, devices: list[str], *, seed: int = 0,
                     dataset: DialogueDataset | None = None,
                     root: str | Path | None = None) -> tuple[pd.DataFrame, dict[str, dict]]:
    """Parameters, training-epoch seconds, evaluation throughput (and peak memory) per configuration and device.

    Returns the table (one row per device and configuration; the equal-fusion configuration also as its
    reference emulation) and, per device, the full :func:`mcef.bench.bench` result of the equal-fusion
    configuration timed side by side with the reference emulation. ``dataset`` replaces the IEMOCAP-shaped
    random data (for tests).
    """
    from mcef.bench import bench

    rows, comparisons = [], {}
    for device in devices:
        for fusion, config in bench_configs(settings, root).items():
            result = bench(config, device=device, epochs=settings.bench_epochs,
                           warmup=settings.bench_warmup, baseline="reference" if fusion == "equal" else None,
                           seed=seed, memory=settings.bench_memory, dataset=dataset)
            if fusion == "equal":
                comparisons[device] = result
            for key, label in (("ours", fusion), ("baseline", f"{fusion}, reference emulation")):
                if key not in result:
                    continue
                r = result[key]
                rows.append({"device": result["device"], "configuration": label, "hidden": r["hidden"],
                             "parameters": r["parameters"], "train_epoch_s": r["train_epoch_s"],
                             "eval_utterances_per_s": r["eval_utterances_per_s"],
                             "peak_memory_mb": r["peak_memory_mb"]})
    return pd.DataFrame(rows), comparisons


def machine_stamp(devices: list[str]) -> dict:
    """What a timing depends on besides its settings: the CPU model, core and thread counts, torch, the GPUs timed."""
    import os
    import platform

    from mcef.device import describe_device

    cpu = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "devices": [describe_device(torch.device(d)) for d in devices]}


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        return []


def stored_efficiency(settings: EfficiencySettings, devices: list[str], run_root: str | Path, *,
                      seed: int = 0) -> tuple[pd.DataFrame, dict[str, dict], dict]:
    """:func:`efficiency_table`, its comparisons and the :func:`machine_stamp` of the machine that measured them,
    stored in the run store (:func:`mcef.book.derived.from_data`): the paper-sized timings take minutes, so they are
    measured once per settings and device types and then reported as measured there, on any machine that reads
    them (as a paper reports its hardware); removing the file measures them again."""
    from dataclasses import asdict

    from mcef.book.derived import from_data

    def compute() -> dict:
        table, comparisons = efficiency_table(settings, devices, seed=seed)
        return {"table": table.to_dict(orient="records"), "comparisons": comparisons,
                "machine": machine_stamp(devices)}

    stamp = {"settings": asdict(settings), "seed": seed, "devices": list(devices)}
    value = from_data(run_root, "efficiency", stamp, compute)
    return pd.DataFrame(value["table"]), value["comparisons"], value["machine"]


def machine_sentence(machine: dict) -> str:
    """Where the timings were measured, for the page: CPU model, cores, torch threads, torch, the devices timed."""
    return (f"{machine['cpu']} ({machine['cores']} cores, {machine['torch_threads']} torch threads), torch "
            f"{machine['torch']}; devices timed: {', '.join(machine['devices'])}")


def efficiency_display(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`efficiency_table` for reading: epoch seconds to 3 decimals, throughput to whole utterances."""
    shown = table.copy()
    shown["train_epoch_s"] = shown["train_epoch_s"].round(3)
    shown["eval_utterances_per_s"] = shown["eval_utterances_per_s"].round(0)
    return shown.set_index(["device", "configuration"])


def bench_findings(settings: EfficiencySettings, comparisons: dict[str, dict], profile: str) -> dict[str, float | int | str]:
    """What the chapter says about ours against the reference emulation, keyed by its glue names.

    ``comparisons``: :func:`efficiency_table`'s per-device bench results; the first device's figures are quoted
    (the CPU, always timed first), the training speed-up of every device is listed.
    """
    paper_size = settings.bench_hidden == 512
    first = next(iter(comparisons.values()))
    published = first.get("speedup_vs_published_reference_cpu_epoch")
    return {
        "paper_phrase": "the published configuration (H = 512)" if paper_size else
        f"a reduced version of the published configuration (H = {settings.bench_hidden} instead of 512, to fit "
        f"the {profile} profile's time budget; the quick and full profiles time H = 512)",
        "cpu_ours_s": float(first["ours"]["train_epoch_s"]),
        "cpu_reference_s": float(first["baseline"]["train_epoch_s"]),
        "cpu_speedup": float(first["speedup"]),
        "cpu_speed_phrase": f"{first['speedup']:.2f} times faster" if first["speedup"] >= 1
        else f"{1 / first['speedup']:.2f} times slower",
        "cpu_eval_ratio": float(first["ours"]["eval_utterances_per_s"] / first["baseline"]["eval_utterances_per_s"]),
        "paper_parameters": int(first["ours"]["parameters"]),
        "speedups": "; ".join(f"{r['device']}: {r['speedup']:.2f}x" for r in comparisons.values()),
        "published_note": f"Against the reference's own epoch time on this project's 2-core CPU "
        f"({REFERENCE_CPU_EPOCH_S} s, measured elsewhere, so not side by side) ours is {published:.1f} "
        "times faster." if paper_size and published else
        f"The reference's own CPU epoch time ({REFERENCE_CPU_EPOCH_S} s at H = 512) is not comparable "
        "at this size.",
    }  # fmt: skip


def efficiency_figure(table: pd.DataFrame) -> go.Figure:
    """Bars of the training-epoch time per configuration, one group per device (log scale: devices differ)."""
    fig = go.Figure()
    for device, rows in table.groupby("device", sort=False):
        fig.add_trace(go.Bar(x=rows["configuration"], y=rows["train_epoch_s"], name=device,
                             customdata=rows["eval_utterances_per_s"],
                             hovertemplate="%{x}: %{y:.3f} s per epoch, %{customdata:.0f} utt/s evaluation"))
    fig.update_layout(barmode="group")
    fig.update_yaxes(type="log")
    return book_layout(fig, "Seconds per training epoch (IEMOCAP-shaped data)", xaxis_title="configuration",
                       yaxis_title="seconds per epoch (log scale)", legend=dict(title="device"))
