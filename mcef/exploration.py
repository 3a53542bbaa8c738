"""What the data looks like before any model: the computations behind chapter 01 of the book.

Sizes, speakers, class balance per split, emotion transitions within dialogues, per-modality feature
statistics, and how separable each modality is alone (linear probes: standardised features,
logistic regression, C chosen on the validation split, the test split scored once at that C).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mcef.data.dataset import SPLITS, DialogueDataset
from mcef.metrics import confusion_matrix, scores


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


def linear_probes(
    dataset: DialogueDataset,
    c_grid: list[float],
    max_iter: int = 500,
    max_train_utterances: int | None = None,
    seed: int = 0,
) -> ProbeResults:
    """How separable each modality is alone, and all modalities concatenated ("all").

    Standardised features (statistics from train), multinomial logistic regression for every C in
    ``c_grid`` fitted on train, C chosen by validation weighted F1, test scored once at that C.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    import warnings

    rng = np.random.default_rng(seed)
    rows, curves = [], []
    majority = None
    for modality in (*dataset.modalities, "all"):
        x_train, y_train = modality_matrix(dataset, "train", modality)
        if max_train_utterances and len(y_train) > max_train_utterances:
            keep = rng.choice(len(y_train), size=max_train_utterances, replace=False)
            x_train, y_train = x_train[keep], y_train[keep]
        x_valid, y_valid = modality_matrix(dataset, "valid", modality)
        x_test, y_test = modality_matrix(dataset, "test", modality)
        scaler = StandardScaler().fit(x_train)
        x_train, x_valid, x_test = scaler.transform(x_train), scaler.transform(x_valid), scaler.transform(x_test)
        if majority is None:
            majority = float((y_test == np.bincount(y_train).argmax()).mean())
        best = None
        for c in c_grid:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model = LogisticRegression(C=c, max_iter=max_iter).fit(x_train, y_train)
            valid = scores(confusion_matrix(y_valid, model.predict(x_valid), dataset.n_classes))
            curves.append(dict(modality=modality, c=c, valid_weighted_f1=valid["weighted_f1"]))
            if best is None or valid["weighted_f1"] > best[1]["weighted_f1"]:
                best = (c, valid, model)
        c, valid, model = best
        test = scores(confusion_matrix(y_test, model.predict(x_test), dataset.n_classes))
        rows.append(
            dict(
                modality=modality,
                best_c=c,
                valid_accuracy=valid["accuracy"],
                valid_weighted_f1=valid["weighted_f1"],
                test_accuracy=test["accuracy"],
                test_weighted_f1=test["weighted_f1"],
            )
        )
    return ProbeResults(pd.DataFrame(rows), pd.DataFrame(curves), majority)


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
