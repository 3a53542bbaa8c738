"""Classification metrics from a confusion matrix: accuracy, weighted-F1, macro-F1, per-class F1.

Everything derives from one (C, C) confusion matrix, so an epoch only needs to add up counts on the device and
move C*C integers to the CPU once. Definitions match scikit-learn's ``f1_score`` (``average="weighted"`` and
``average="macro"`` over the labels present in the true or the predicted labels).
"""

from __future__ import annotations

import numpy as np
import torch


def confusion_counts(labels: torch.Tensor, predictions: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(C, C) int64 counts, rows = true class, columns = predicted class; entries of ``labels`` < 0 are ignored."""
    keep = labels >= 0
    flat = labels[keep] * n_classes + predictions[keep]  # (N,) index into the flattened matrix
    return torch.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def confusion_matrix(labels, predictions, n_classes: int) -> np.ndarray:
    """(C, C) numpy confusion matrix of integer label and prediction arrays."""
    cm = confusion_counts(torch.as_tensor(np.asarray(labels), dtype=torch.long),
                          torch.as_tensor(np.asarray(predictions), dtype=torch.long), n_classes)
    return cm.numpy()


def per_class_f1(cm: np.ndarray) -> np.ndarray:
    """F1 of each class (0 where a class is neither present nor predicted)."""
    cm = np.asarray(cm, dtype=np.float64)
    true_positive = np.diag(cm)
    denominator = cm.sum(axis=0) + cm.sum(axis=1)  # predicted + actual = 2 TP + FP + FN
    return np.divide(2 * true_positive, denominator, out=np.zeros_like(true_positive), where=denominator > 0)


def scores(cm: np.ndarray, label_names: tuple[str, ...] | list[str] | None = None) -> dict:
    """Accuracy, weighted-F1, macro-F1, per-class F1 and the confusion matrix of ``cm`` as plain JSON values."""
    cm = np.asarray(cm, dtype=np.int64)
    n_classes = cm.shape[0]
    names = list(label_names) if label_names is not None else [str(c) for c in range(n_classes)]
    total = int(cm.sum())
    support = cm.sum(axis=1)
    f1 = per_class_f1(cm)
    present = (support + cm.sum(axis=0)) > 0  # classes scikit-learn's macro average includes
    return {
        "accuracy": float(np.trace(cm) / total) if total else 0.0,
        "weighted_f1": float((f1 * support).sum() / total) if total else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class_f1": {name: float(v) for name, v in zip(names, f1)},
        "confusion_matrix": cm.tolist(),
        "n_utterances": total,
    }


HEADLINE = ("accuracy", "weighted_f1", "macro_f1")  # the scalar metrics logged every epoch
