"""Context-free baselines: one utterance vector in, one emotion out, no dialogue around it.

They tell how much of a result the features alone explain before any conversational model is involved. The
protocol is the project's: fit on train, choose hyper-parameters on valid, evaluate test once with the choice.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from mcef.data.dataset import DialogueDataset
from mcef.metrics import confusion_matrix, scores


@dataclass(frozen=True)
class BaselineResult:
    """A baseline's selection on valid and its single test evaluation."""

    model: str  # e.g. "logistic-regression"
    modality: str  # the features it read
    chosen: dict  # hyper-parameters selected on valid
    valid: dict  # mcef.metrics.scores of the chosen setting on valid
    test: dict  # mcef.metrics.scores on test, computed once with the chosen setting
    search: list[dict] = field(default_factory=list)  # every setting tried with its valid weighted-F1


def split_arrays(dataset: DialogueDataset, split: str, modality: str) -> tuple[np.ndarray, np.ndarray]:
    """Utterance vectors (N, D) and labels (N,) of ``split``, dialogues concatenated."""
    dialogues = dataset.split(split)
    if not dialogues:
        raise ValueError(f"dataset {dataset.name!r} has no dialogue in split {split!r}; a baseline needs train, valid and test")
    if modality not in dataset.modalities:
        raise ValueError(f"dataset {dataset.name!r} has no {modality!r} features; it has {list(dataset.modalities)}")
    return (np.concatenate([d.features[modality] for d in dialogues]),
            np.concatenate([d.labels for d in dialogues]))


def logistic_baseline(dataset: DialogueDataset, modality: str = "text",
                      Cs: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3),  # larger C overfits and is slow to converge
                      class_weights: tuple[str | None, ...] = (None, "balanced"), max_iter: int = 3000) -> BaselineResult:
    """Multinomial logistic regression on standardised utterance vectors; (C, class weighting) chosen by valid
    weighted-F1, then test evaluated once. Deterministic (lbfgs), so one run stands for every seed."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x_train, y_train = split_arrays(dataset, "train", modality)
    x_valid, y_valid = split_arrays(dataset, "valid", modality)
    x_test, y_test = split_arrays(dataset, "test", modality)
    scaler = StandardScaler().fit(x_train)  # train statistics only
    x_train, x_valid, x_test = (scaler.transform(x) for x in (x_train, x_valid, x_test))

    def valid_scores(model) -> dict:
        return scores(confusion_matrix(y_valid, model.predict(x_valid), dataset.n_classes), dataset.label_names)

    best, search = None, []
    for c, weighting in itertools.product(Cs, class_weights):
        model = LogisticRegression(C=c, class_weight=weighting, max_iter=max_iter).fit(x_train, y_train)
        valid = valid_scores(model)
        search.append({"C": c, "class_weight": weighting, "valid_weighted_f1": valid["weighted_f1"]})
        if best is None or valid["weighted_f1"] > best[1]["weighted_f1"]:
            best = (model, valid, {"C": c, "class_weight": weighting})
    model, valid, chosen = best
    test = scores(confusion_matrix(y_test, model.predict(x_test), dataset.n_classes), dataset.label_names)
    return BaselineResult("logistic-regression", modality, chosen, valid, test, search)
