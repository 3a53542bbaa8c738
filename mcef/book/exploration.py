"""Chapter 01: what the data looks like before any model, its computations and its figures.

Sizes, speakers, class balance per split, emotion transitions within dialogues, per-modality feature
statistics, and how separable each modality is alone (linear probes: standardised features,
logistic regression, C chosen on the validation split, the test split scored once at that C).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from mcef.book.common import MODALITY_COLORS, SPLIT_COLORS, book_layout
from mcef.data.dataset import SPLITS, DialogueDataset
from mcef.metrics import confusion_matrix, scores


@dataclass(frozen=True)
class ProbeSettings:
    """The linear probes' sizes (profile section ``probe``; every field given there)."""

    c_grid: tuple[float, ...]  # inverse L2 strengths tried; the one with the best validation weighted F1 is kept
    max_iter: int  # iterations of the logistic regression's solver
    max_train_utterances: int  # training utterances above this are subsampled (seeded)


def dialogue_table(dataset: DialogueDataset) -> pd.DataFrame:
    """One row per dialogue: split, length, speakers present, share of the most frequent speaker."""
    rows = []
    for split in SPLITS:
        for dialogue in dataset.split(split):
            counts = np.bincount(dialogue.speakers, minlength=dataset.n_speakers)
            rows.append(
                dict(
                    dialogue=dialogue.id,
                    split=split,
                    length=len(dialogue),
                    speakers_present=int((counts > 0).sum()),
                    top_speaker_share=float(counts.max() / counts.sum()),
                )
            )
    return pd.DataFrame(rows)


def class_balance(dataset: DialogueDataset) -> pd.DataFrame:
    """Utterances per (split, class) with their fraction of the split."""
    rows = []
    for split in SPLITS:
        counts = dataset.class_counts(split)
        for label, count in zip(dataset.label_names, counts):
            rows.append(dict(split=split, label=label, count=int(count), fraction=float(count / max(counts.sum(), 1))))
    return pd.DataFrame(rows)


def emotion_transitions(dataset: DialogueDataset, split: str = "train", speaker: str = "any") -> np.ndarray:
    """(C, C) counts of label[t] -> label[t+1] within dialogues of ``split``.

    ``speaker``: "any" counts every consecutive pair, "same" only pairs spoken by the same speaker,
    "other" only pairs where the speaker changes.
    """
    if speaker not in ("any", "same", "other"):
        raise ValueError(f"speaker must be 'any', 'same' or 'other', got {speaker!r}")
    counts = np.zeros((dataset.n_classes, dataset.n_classes), dtype=np.int64)
    for dialogue in dataset.split(split):
        keep = np.ones(len(dialogue) - 1, dtype=bool)
        same = dialogue.speakers[1:] == dialogue.speakers[:-1]
        if speaker == "same":
            keep = same
        elif speaker == "other":
            keep = ~same
        np.add.at(counts, (dialogue.labels[:-1][keep], dialogue.labels[1:][keep]), 1)
    return counts


def persistence(counts: np.ndarray) -> tuple[float, float]:
    """(observed, chance) probability that the next utterance has the same label.

    Chance is what independent draws from the pairs' marginal class distribution would give.
    """
    total = counts.sum()
    if total == 0:
        return float("nan"), float("nan")
    observed = float(np.trace(counts) / total)
    p_from, p_to = counts.sum(axis=1) / total, counts.sum(axis=0) / total
    return observed, float(p_from @ p_to)


def modality_matrix(dataset: DialogueDataset, split: str, modality: str) -> tuple[np.ndarray, np.ndarray]:
    """All utterances of ``split`` stacked: features (N, D) of ``modality`` ("all" = concatenated) and labels (N,)."""
    dialogues = dataset.split(split)
    names = dataset.modalities if modality == "all" else (modality,)
    features = np.concatenate(
        [np.concatenate([d.features[m] for m in names], axis=1) for d in dialogues], axis=0
    )  # (N, sum D_m)
    labels = np.concatenate([d.labels for d in dialogues])
    return features.astype(np.float64), labels


def feature_statistics(dataset: DialogueDataset, split: str = "train") -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Per-modality summary of the features of ``split``, and each modality's per-dimension std.

    The summary has the dimension, the mean utterance norm, the mean and spread of per-dimension
    standard deviations, the share of (near-)constant dimensions and the ratio of between-class to
    total variance (how much of the variance the emotion labels explain, averaged over dimensions).
    """
    rows, stds = [], {}
    for modality in dataset.modalities:
        x, y = modality_matrix(dataset, split, modality)
        std = x.std(axis=0)
        class_means = np.stack([x[y == c].mean(axis=0) for c in np.unique(y)])  # (C_present, D)
        weights = np.array([(y == c).mean() for c in np.unique(y)])
        between = (weights[:, None] * (class_means - x.mean(axis=0)) ** 2).sum(axis=0)  # (D,)
        total = x.var(axis=0)
        explained = float(np.mean(np.divide(between, total, out=np.zeros_like(total), where=total > 1e-12)))
        stds[modality] = std
        rows.append(
            dict(
                modality=modality,
                dim=x.shape[1],
                utterances=x.shape[0],
                mean_norm=float(np.linalg.norm(x, axis=1).mean()),
                median_dim_std=float(np.median(std)),
                constant_dims=float((std < 1e-6).mean()),
                label_variance_share=explained,
            )
        )
    return pd.DataFrame(rows), stds


@dataclass(frozen=True)
class ProbeResults:
    """Linear-probe outcome: one row per modality, and the validation curve over C."""

    table: pd.DataFrame  # modality, best_c, valid/test accuracy and weighted F1 at best_c
    curves: pd.DataFrame  # modality, c, valid_weighted_f1
    majority_test_accuracy: float  # predicting the training split's majority class on test


def _standardised_splits(dataset: DialogueDataset, modality: str, limit: int, rng) -> dict[str, tuple]:
    """split -> (features, labels) of ``modality``, scaled with training statistics; at most ``limit`` training
    utterances (a seeded subsample)."""
    from sklearn.preprocessing import StandardScaler

    splits = {split: modality_matrix(dataset, split, modality) for split in ("train", "valid", "test")}
    x_train, y_train = splits["train"]
    if limit and len(y_train) > limit:
        keep = rng.choice(len(y_train), size=limit, replace=False)
        splits["train"] = x_train[keep], y_train[keep]
    scaler = StandardScaler().fit(splits["train"][0])
    return {split: (scaler.transform(x), y) for split, (x, y) in splits.items()}


def _fit_probe(splits: dict[str, tuple], settings: ProbeSettings, n_classes: int) -> tuple[dict, list[float], float]:
    """(validation and test figures at the chosen C, validation weighted F1 per C of the grid, the chosen C)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    best, curve = None, []
    for c in settings.c_grid:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = LogisticRegression(C=c, max_iter=settings.max_iter).fit(*splits["train"])
        valid = scores(confusion_matrix(splits["valid"][1], model.predict(splits["valid"][0]), n_classes))
        curve.append(valid["weighted_f1"])
        if best is None or valid["weighted_f1"] > best[1]["weighted_f1"]:
            best = (c, valid, model)
    c, valid, model = best
    test = scores(confusion_matrix(splits["test"][1], model.predict(splits["test"][0]), n_classes))
    return {"valid": valid, "test": test}, curve, c


def linear_probes(dataset: DialogueDataset, settings: ProbeSettings, seed: int = 0) -> ProbeResults:
    """How separable each modality is alone, and all modalities concatenated ("all").

    Standardised features (statistics from train), multinomial logistic regression for every C in
    ``settings.c_grid`` fitted on train, C chosen by validation weighted F1, test scored once at that C.
    """
    rng = np.random.default_rng(seed)
    rows, curves, majority = [], [], None
    for modality in (*dataset.modalities, "all"):
        splits = _standardised_splits(dataset, modality, settings.max_train_utterances, rng)
        if majority is None:
            majority = float((splits["test"][1] == np.bincount(splits["train"][1]).argmax()).mean())
        figures, curve, c = _fit_probe(splits, settings, dataset.n_classes)
        curves += [dict(modality=modality, c=value, valid_weighted_f1=f1) for value, f1 in zip(settings.c_grid, curve)]
        rows.append(dict(modality=modality, best_c=c, valid_accuracy=figures["valid"]["accuracy"],
                         valid_weighted_f1=figures["valid"]["weighted_f1"], test_accuracy=figures["test"]["accuracy"],
                         test_weighted_f1=figures["test"]["weighted_f1"]))
    return ProbeResults(pd.DataFrame(rows), pd.DataFrame(curves), majority)


def stored_probes(dataset: DialogueDataset, settings: ProbeSettings, run_root: str | Path, seed: int = 0) -> ProbeResults:
    """:func:`linear_probes`, stored in the run store with the data's fingerprint and the settings
    (:func:`mcef.book.derived.from_data`): the probes of IEMOCAP-sized data take minutes on a 2-core CPU."""
    from mcef.book.derived import from_data
    from mcef.runs import data_fingerprint

    def compute() -> dict:
        found = linear_probes(dataset, settings, seed=seed)
        return {"table": found.table.to_dict(orient="records"), "curves": found.curves.to_dict(orient="records"),
                "majority_test_accuracy": found.majority_test_accuracy}

    stamp = {"data_fingerprint": data_fingerprint(dataset), "settings": asdict(settings), "seed": seed}
    value = from_data(run_root, f"linear_probes-{stamp['data_fingerprint']}", stamp, compute)
    return ProbeResults(pd.DataFrame(value["table"]), pd.DataFrame(value["curves"]), value["majority_test_accuracy"])


def _join(parts: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def describe_features(statistics: pd.DataFrame) -> str:
    """A sentence on the modalities' sizes and label-explained variance, for whichever modalities are present."""
    sizes = _join([f"{int(r.dim)} {r.modality}" for r in statistics.itertuples()])
    shares = _join([f"{float(r.label_variance_share):.1%} of the variance of a {r.modality} dimension"
                    for r in statistics.itertuples()])
    projection = ("each gets its own projection" if len(statistics) > 1 else "it gets a projection")
    return (f"The features have {sizes} dimensions, and {projection} to the model's hidden size. "
            f"The emotion labels explain, on average over dimensions, {shares}.")


def describe_probes(table: pd.DataFrame, majority_accuracy: float) -> str:
    """A sentence on the probes' test weighted F1 (``table`` indexed by modality, ``"all"`` = concatenated)."""
    singles = table.drop(index="all", errors="ignore")["test_weighted_f1"]
    parts = [f"{m} {v:.3f}" for m, v in singles.items()]
    if "all" in table.index and len(singles) > 1:
        parts.append(f"all {len(singles)} concatenated {table.loc['all', 'test_weighted_f1']:.3f}")
    best = f"Alone, the *{singles.idxmax()}* features separate the emotions best. " if len(singles) > 1 else ""
    return (f"{best}Test weighted F1 of the probes: {_join(parts)}, against a majority-class accuracy of "
            f"{majority_accuracy:.3f}.")


# ----------------------------------------------------------------------------- figures


def dialogue_lengths_figure(table) -> go.Figure:
    """Histogram of dialogue lengths (utterances) per split; ``table`` from :func:`dialogue_table`."""
    fig = go.Figure()
    for split, rows in table.groupby("split", sort=False):
        fig.add_trace(go.Histogram(x=rows["length"], name=split, marker_color=SPLIT_COLORS.get(split), opacity=0.75, nbinsx=20))
    fig.update_layout(barmode="overlay")
    return book_layout(fig, "Dialogue length per split", xaxis_title="utterances per dialogue", yaxis_title="dialogues")


def speaker_share_figure(table) -> go.Figure:
    """Box plot of the share of utterances by each dialogue's most frequent speaker, per split."""
    fig = go.Figure()
    for split, rows in table.groupby("split", sort=False):
        fig.add_trace(go.Box(y=rows["top_speaker_share"], name=split, marker_color=SPLIT_COLORS.get(split), boxpoints="all", jitter=0.4))
    return book_layout(fig, "Share of the most talkative speaker per dialogue", xaxis_title="split", yaxis_title="share of utterances", showlegend=False)


def class_balance_figure(table) -> go.Figure:
    """Grouped bars: fraction of each class per split; ``table`` from :func:`class_balance`."""
    fig = go.Figure()
    for split, rows in table.groupby("split", sort=False):
        fig.add_trace(
            go.Bar(
                x=rows["label"], y=rows["fraction"], name=split, marker_color=SPLIT_COLORS.get(split),
                customdata=rows["count"], hovertemplate="%{x}: %{y:.1%} (%{customdata} utterances)",
            )
        )  # fmt: skip
    fig.update_layout(barmode="group", yaxis_tickformat=".0%")
    return book_layout(fig, "Class balance per split", xaxis_title="emotion", yaxis_title="share of the split's utterances")


def transition_figure(counts: np.ndarray, label_names: Sequence[str], title: str = "Emotion transitions within dialogues") -> go.Figure:
    """Heatmap of P(next label | current label) from (C, C) transition counts."""
    rows = counts.sum(axis=1, keepdims=True)
    probabilities = np.divide(counts, rows, out=np.zeros(counts.shape, dtype=float), where=rows > 0)
    fig = go.Figure(
        go.Heatmap(
            z=probabilities, x=list(label_names), y=list(label_names), colorscale="Blues", zmin=0, zmax=1,
            text=np.round(probabilities, 2), texttemplate="%{text}", customdata=counts,
            hovertemplate="%{y} -> %{x}: %{z:.2f} (%{customdata} pairs)<extra></extra>",
        )
    )  # fmt: skip
    fig.update_yaxes(autorange="reversed", title="current utterance")
    fig.update_xaxes(title="next utterance")
    return book_layout(fig, title, height=480)


def feature_std_figure(stds: dict[str, np.ndarray]) -> go.Figure:
    """Distribution of the per-dimension standard deviation of each modality's features."""
    fig = go.Figure()
    for modality, std in stds.items():
        fig.add_trace(go.Violin(y=std, name=modality, line_color=MODALITY_COLORS.get(modality), box_visible=True, points=False))
    return book_layout(fig, "Per-dimension standard deviation of the features (train)", xaxis_title="modality", yaxis_title="std of one dimension", showlegend=False)


def probe_figure(table, majority_accuracy: float) -> go.Figure:
    """Bars of the linear probes' validation and test weighted F1 per modality, with the majority-class accuracy."""
    fig = go.Figure()
    fig.add_trace(go.Bar(x=table["modality"], y=table["valid_weighted_f1"], name="valid weighted F1", marker_color=SPLIT_COLORS["valid"]))
    fig.add_trace(go.Bar(x=table["modality"], y=table["test_weighted_f1"], name="test weighted F1", marker_color=SPLIT_COLORS["test"]))
    fig.add_hline(y=majority_accuracy, line_dash="dash", annotation_text="majority class (test accuracy)")
    fig.update_layout(barmode="group", yaxis_range=[0, 1])
    return book_layout(fig, "Linear probes: each modality alone, and all concatenated", xaxis_title="features probed",
                       yaxis_title="weighted F1", legend=dict(orientation="h", yanchor="top", y=-0.22, x=0))


def probe_curves_figure(curves) -> go.Figure:
    """Validation weighted F1 of the linear probes against the inverse regularisation C (log axis)."""
    fig = go.Figure()
    for modality, rows in curves.groupby("modality", sort=False):
        fig.add_trace(go.Scatter(x=rows["c"], y=rows["valid_weighted_f1"], mode="lines+markers", name=modality, line_color=MODALITY_COLORS.get(modality)))
    fig.update_xaxes(type="log", title="C (inverse L2 strength)")
    return book_layout(fig, "Choosing C on the validation split", yaxis_title="valid weighted F1")
