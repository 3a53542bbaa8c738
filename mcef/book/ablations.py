"""Chapter 05: ablations of MCEF as named config variants, trained over seeds, aggregated and plotted.

Every variant is the base config (the profile's ``ablation_run``: the paper recipe, ``configs/paper.yaml``, sized
by the profile) changed with :func:`mcef.config.with_changes`. Three families:

- ``modalities``: T, A, V, TA, TV, AV, TAV. True unimodal and bimodal models (``model.modalities``): the full
  model's per-modality heads are not unimodal, each already mixes every modality through cross-attention.
- ``loss``: fused CE only; + modality CE; + Soft-HGR (correct); + Soft-HGR (reference); + SDT's KL.
- ``fusion``: equal (MCEF), sdt, concat, late.

A variant's run name spells out its content (modalities, loss terms, fusion), so a config that appears in
several families (TAV + full loss + equal fusion appears in all three) is a single run, trained once. Runs are
looked up in the run store by their digest (config, data, package version; :mod:`mcef.runs`), so a change of
sizes, epochs or data never reuses a stale run, and another chapter rebuilding a variant's config finds it.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mcef.book.common import (BookRun, book_layout, load_profile, run_config, run_figures, section_settings,
                               train_or_reuse)
from mcef.config import ExperimentConfig, config_to_dict, with_changes
from mcef.data.dataset import MODALITIES, DialogueDataset
from mcef.experiments import aggregate, mean_std

LETTERS = {"text": "T", "audio": "A", "visual": "V"}
MODALITY_SETS = ("T", "A", "V", "TA", "TV", "AV", "TAV")
FUSION_VARIANTS = ("equal", "sdt", "concat", "late")
FAMILIES = ("modalities", "loss", "fusion")
METRICS = ("test_accuracy", "test_weighted_f1", "valid_weighted_f1")


@dataclass(frozen=True)
class AblationSettings:
    """What the grid adds to the base config (profile section ``ablations``; every field given there)."""

    kl: float  # weight of SDT's KL term in "+ SDT KL" (the modality CE's weight: SDT weighs the two alike)
    n_seeds: int  # seeds per variant: each seed trains every distinct configuration (14 runs)


def ablation_settings(profile: str, root: str | Path | None = None) -> AblationSettings:
    """The :class:`AblationSettings` of ``profile``."""
    return section_settings(profile, "ablations", AblationSettings, root)


def variant_seeds(profile: str, seeds: str | int | None = "", root: str | Path | None = None) -> list[int]:
    """The seeds every variant is trained with: ``seeds`` ("0,1,2" or an int) when given, else
    ``range(n_seeds)`` of the profile's ``ablations`` section."""
    if seeds is not None and seeds != "":
        return load_profile(profile, root).seeds(seeds)
    return list(range(ablation_settings(profile, root).n_seeds))


def base_config(profile: str, *, device: str = "auto", root: str | Path | None = None) -> ExperimentConfig:
    """The profile's ``ablation_run`` (the paper recipe at the profile's size): every variant starts from it."""
    return run_config(profile, "ablation_run", device=device, root=root)


# ----------------------------------------------------------------------------- the grid


def _weight(value: float) -> str:
    return f"{value:g}"


def variant_name(config: ExperimentConfig) -> str:
    """A run name that says what the run is: modalities, non-zero loss terms with weights, fusion.

    E.g. ``TAV-ce0.3+mce0.1+hgr0.4-equal``; the reference Soft-HGR is ``hgrref``. Within one grid, two configs with
    the same name are the same run (:func:`distinct_configs` checks it); what the name does not say (sizes, data)
    is in the run's digest.
    """
    modalities = config.model.modalities or MODALITIES
    letters = "".join(LETTERS[m] for m in MODALITIES if m in modalities)
    loss = config.loss
    terms = [f"ce{_weight(loss.fused_ce)}"]
    if loss.modality_ce:
        terms.append(f"mce{_weight(loss.modality_ce)}")
    if loss.soft_hgr:
        terms.append(f"{'hgr' if loss.hgr_mode == 'correct' else 'hgrref'}{_weight(loss.soft_hgr)}")
    if loss.kl:
        terms.append(f"kl{_weight(loss.kl)}" + (f"t{_weight(loss.temperature)}" if loss.temperature != 1 else ""))
    return f"{letters}-{'+'.join(terms)}-{config.model.fusion}"


@dataclass(frozen=True)
class Variant:
    """One point of the ablation grid."""

    family: str  # "modalities" | "loss" | "fusion"
    label: str  # what the reader sees, e.g. "TA" or "+ Soft-HGR (reference)"
    config: ExperimentConfig  # named by its content (variant_name)

    @property
    def name(self) -> str:
        return self.config.name


def _named(config: ExperimentConfig) -> ExperimentConfig:
    return with_changes(config, name=variant_name(config))


def loss_changes(kl: float) -> dict[str, dict]:
    """Loss variant label -> loss fields changed from the base config (whose loss is the paper's: CE, modality CE, HGR)."""
    return {
        "fused CE only": {"modality_ce": 0.0, "soft_hgr": 0.0, "kl": 0.0},
        "+ modality CE": {"soft_hgr": 0.0, "kl": 0.0},
        "+ Soft-HGR (correct)": {"hgr_mode": "correct", "kl": 0.0},
        "+ Soft-HGR (reference)": {"hgr_mode": "reference", "kl": 0.0},
        "+ SDT KL": {"hgr_mode": "correct", "kl": kl},
    }


def grid(base: ExperimentConfig, settings: AblationSettings) -> list[Variant]:
    """The 7 + 5 + 4 variants of the three families, in reading order."""
    variants = []
    for letters in MODALITY_SETS:
        modalities = [m for m in MODALITIES if LETTERS[m] in letters]
        variants.append(Variant("modalities", letters, _named(with_changes(base, model={"modalities": modalities}))))
    for label, changes in loss_changes(settings.kl).items():
        variants.append(Variant("loss", label, _named(with_changes(base, loss=changes))))
    for fusion in FUSION_VARIANTS:
        variants.append(Variant("fusion", fusion, _named(with_changes(base, model={"fusion": fusion}))))
    return variants


def common_variant(variants: list[Variant]) -> Variant:
    """The run every family shares (all modalities, the paper's loss, equal fusion)."""
    names = [{v.name for v in variants if v.family == f} for f in FAMILIES]
    shared = set.intersection(*names)
    if len(shared) != 1:
        raise ValueError(f"common_variant: expected exactly one run shared by every family, found {sorted(shared)}")
    return next(v for v in variants if v.name in shared)


def leave_one_out(variants: list[Variant]) -> dict[str, Variant]:
    """Modality -> the "modalities" variant with every modality but that one (e.g. "audio" -> "TV")."""
    labels = {v.label: v for v in variants if v.family == "modalities"}
    return {m: labels["".join(LETTERS[o] for o in MODALITIES if o != m)] for m in MODALITIES}


def distinct_configs(variants: list[Variant]) -> list[ExperimentConfig]:
    """One config per distinct run name (the shared runs once), in grid order."""
    configs: dict[str, ExperimentConfig] = {}
    for variant in variants:
        previous = configs.setdefault(variant.name, variant.config)
        if config_to_dict(previous) != config_to_dict(variant.config):
            raise ValueError(f"two different configs share the run name {variant.name!r}")
    return list(configs.values())


# ----------------------------------------------------------------------------- running


def run_variants(variants: list[Variant], seeds: list[int], dataset: DialogueDataset, run_root: str | Path) -> list[BookRun]:
    """Every distinct run of ``variants`` for every seed: read from the run store, or trained into
    ``run_root/ablations/<name>/seed<seed>``."""
    return train_or_reuse(distinct_configs(variants), seeds, dataset, run_root, folder="ablations")


def results(variants: list[Variant], book_runs: list[BookRun], metrics=METRICS) -> pd.DataFrame:
    """One row per variant: family, label, run name, mean / std / n of each metric, and the paired difference.

    ``delta_wf1_mean`` / ``delta_wf1_std``: test weighted F1 minus the common run's, seed by seed (same seeds, so
    the seed-to-seed variation they share cancels), then mean and sample std over seeds.
    """
    runs = [run_figures(run) for run in book_runs]
    table = {(row["config"], row["metric"]): row for row in aggregate(runs, metrics)}
    common = common_variant(variants).name
    by_seed = {(r["config"], r["seed"]): r["test_weighted_f1"] for r in runs}
    rows = []
    for variant in variants:
        row = {"family": variant.family, "variant": variant.label, "run": variant.name,
               "common": variant.name == common,
               "parameters": next((r["parameters"] for r in runs if r["config"] == variant.name), None)}
        for metric in metrics:
            cell = table.get((variant.name, metric))
            row[f"{metric}_mean"] = cell["mean"] if cell else math.nan
            row[f"{metric}_std"] = cell["std"] if cell and cell["std"] is not None else math.nan
            row["n"] = cell["n"] if cell else 0
        deltas = [by_seed[(variant.name, s)] - by_seed[(common, s)] for (name, s) in by_seed
                  if name == variant.name and (common, s) in by_seed]
        row["delta_wf1_mean"] = statistics.fmean(deltas) if deltas else math.nan
        row["delta_wf1_std"] = statistics.stdev(deltas) if len(deltas) > 1 else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _cell(mean: float, std: float, scale: float = 100.0) -> str:
    if math.isnan(mean):
        return "-"
    return mean_std(mean, None if math.isnan(std) else std, scale=scale)


def format_results(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`results` for reading: percentages as "mean ± std", the shared run marked with a star."""
    shown = pd.DataFrame({
        "family": frame["family"],
        "variant": [f"{v} *" if c else v for v, c in zip(frame["variant"], frame["common"])],
        "test accuracy (%)": [_cell(m, s) for m, s in zip(frame["test_accuracy_mean"], frame["test_accuracy_std"])],
        "test weighted F1 (%)": [_cell(m, s) for m, s in zip(frame["test_weighted_f1_mean"],
                                                             frame["test_weighted_f1_std"])],
        "valid weighted F1 (%)": [_cell(m, s) for m, s in zip(frame["valid_weighted_f1_mean"],
                                                              frame["valid_weighted_f1_std"])],
        "Δ test w-F1 vs * (points)": [_cell(m, s) for m, s in zip(frame["delta_wf1_mean"], frame["delta_wf1_std"])],
        "parameters": frame["parameters"],
        "seeds": frame["n"],
        "run": frame["run"],
    })  # fmt: skip
    return shown.set_index(["family", "variant"])


# ----------------------------------------------------------------------------- the figure

FAMILY_TITLES = {"modalities": "Modalities (true unimodal / bimodal models)", "loss": "Loss terms",
                 "fusion": "Fusion"}
COMMON_COLOR, VARIANT_COLOR = "#E45756", "#4C78A8"


def ablation_figure(frame: pd.DataFrame, metric: str = "test_weighted_f1") -> go.Figure:
    """Dot and error bar (mean ± std over seeds) of ``metric`` for every variant, one panel per family.

    The shared run is drawn in its own colour in every panel, with a dashed line at its mean, so each family
    reads as "better or worse than the full model" at a glance.
    """
    families = [f for f in FAMILIES if f in set(frame["family"])]
    sizes = [int((frame["family"] == f).sum()) for f in families]
    fig = make_subplots(rows=len(families), cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        row_heights=[s / sum(sizes) for s in sizes],
                        subplot_titles=[FAMILY_TITLES[f] for f in families])
    common = frame[frame["common"]]
    for row, family in enumerate(families, start=1):
        part = frame[frame["family"] == family]
        for is_common, color, name in ((False, VARIANT_COLOR, "variant"), (True, COMMON_COLOR, "full model (shared run)")):
            points = part[part["common"] == is_common]
            fig.add_trace(go.Scatter(
                x=points[f"{metric}_mean"], y=points["variant"], mode="markers", name=name,
                marker=dict(size=10, color=color), showlegend=row == 1,
                error_x=dict(type="data", array=points[f"{metric}_std"].fillna(0), visible=True, color=color),
                customdata=points[["n", "run"]], hovertemplate="%{y}: %{x:.3f} (n=%{customdata[0]}, %{customdata[1]})<extra></extra>",
            ), row=row, col=1)  # fmt: skip
        if len(common):
            fig.add_vline(x=float(common[f"{metric}_mean"].iloc[0]), line_dash="dash", line_color=COMMON_COLOR,
                          row=row, col=1)
        fig.update_yaxes(autorange="reversed", row=row, col=1)
    label = metric.replace("_", " ").replace("f1", "F1")
    fig.update_xaxes(title_text=label + " (mean ± std over seeds)", row=len(families), col=1)
    for row, family in enumerate(families, start=1):
        fig.update_yaxes(title_text="variant", row=row, col=1)
    return book_layout(fig, "Ablations: " + label + " per variant", height=180 + 34 * sum(sizes),
                       legend=dict(orientation="h", yanchor="top", y=-0.12, x=0))


# ----------------------------------------------------------------------------- what the chapter says

LOSS_DELTAS = {"ce_only": "fused CE only", "mce": "+ modality CE", "hgr_ref": "+ Soft-HGR (reference)",
               "kl": "+ SDT KL"}  # glue-key suffix -> loss variant whose Δ weighted F1 the chapter quotes


def _direction(value: float) -> str:
    return "higher" if value > 0 else "lower" if value < 0 else "the same"


def _spread_note(n_min: int) -> str:
    if n_min < 2:
        return ("With a single seed there is no spread to judge a difference by: these numbers show that every "
                "variant trains and is evaluated, not which one is better.")
    return (f"With {n_min} seeds per variant, a difference within the error bars (one standard deviation) is not "
            "evidence of a better variant.")


def findings(frame: pd.DataFrame) -> dict[str, float | int | str]:
    """The figures the chapter's findings quote, read from :func:`results`' frame, keyed by their glue names.

    Weighted F1 values are fractions; ``delta_*``, ``*_delta``, ``fusion_gain`` and ``hgr_ref_vs_mce`` are in
    points (×100). The full model is the ``equal`` fusion variant (the shared run). Needs every modality subset,
    the loss variants of :data:`LOSS_DELTAS` plus "+ modality CE", and the equal, sdt, concat and late fusions.
    """
    wf1 = "test_weighted_f1_mean"
    family = {name: frame[frame["family"] == name].set_index("variant") for name in FAMILIES}
    modal, loss, fusion = family["modalities"], family["loss"], family["fusion"]
    full = fusion.loc["equal"]
    unimodal = modal[modal.index.str.len() == 1]
    best_single, best_subset = unimodal[wf1].idxmax(), modal[wf1].idxmax()
    gain = 100 * float(full[wf1] - unimodal.loc[best_single, wf1])
    facts = {
        "full_wf1": float(full[wf1]),
        "full_acc": float(full["test_accuracy_mean"]),
        "spread_note": _spread_note(int(frame["n"].min())),
        "best_single": str(best_single),
        "best_single_wf1": float(unimodal.loc[best_single, wf1]),
        "worst_single": str(unimodal[wf1].idxmin()),
        "worst_single_wf1": float(unimodal[wf1].min()),
        "best_subset": str(best_subset),
        "best_subset_wf1": float(modal.loc[best_subset, wf1]),
        "fusion_gain": abs(gain),
        "fusion_gain_word": _direction(gain),
    }
    facts.update({f"delta_{key}": 100 * float(loss.loc[label, "delta_wf1_mean"]) for key, label in LOSS_DELTAS.items()})
    facts["best_loss"] = str(loss[wf1].idxmax())
    facts["hgr_ref_vs_mce"] = 100 * abs(float(loss.loc["+ Soft-HGR (reference)", wf1] - loss.loc["+ modality CE", wf1]))
    facts["best_fusion"] = str(fusion[wf1].idxmax())
    facts["best_fusion_wf1"] = float(fusion[wf1].max())
    facts.update({f"{name}_delta": 100 * float(fusion.loc[name, "delta_wf1_mean"]) for name in ("late", "concat", "sdt")})
    facts.update({f"params_{name}": int(fusion.loc[name, "parameters"]) for name in ("equal", "late", "concat")})
    return facts
