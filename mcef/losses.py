"""Losses of MCEF: masked cross-entropy, Soft-HGR (correct, and the reference's defective copy),
NaN-safe self-distillation, and the composite objective.

Every loss sees padded (B, T, ...) tensors plus the (B, T) mask and indexes the valid utterances out
first, so padding never enters a value or a gradient.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from mcef.data.batch import Batch

HGR_MODES = ("correct", "reference")


def masked_cross_entropy(logits: Tensor, labels: Tensor, mask: Tensor, class_weights: Tensor | None = None) -> Tensor:
    """Class-weighted cross-entropy over valid utterances: sum_i w_{y_i} nll_i / sum_i w_{y_i}, like the
    reference's ``NLLLoss(weight=...)``. logits (B, T, C), labels (B, T), mask (B, T). Zero without utterances."""
    valid = mask.bool() & (labels >= 0)
    rows, targets = logits[valid], labels[valid]  # (N, C), (N,)
    if targets.numel() == 0:
        return rows.sum()  # an empty sum: zero, still attached to the graph
    weight = None if class_weights is None else class_weights.to(device=logits.device, dtype=logits.dtype)
    return F.cross_entropy(rows, targets, weight=weight)


def soft_hgr(features: list[Tensor], mask: Tensor, mode: str = "correct") -> Tensor:
    """Soft-HGR over every pair of ``features`` (each (B, T, k)), padded rows excluded.

    ``mode="correct"`` returns the objective of Wang et al. (AAAI 2019) to MAXIMISE, summed over pairs:
    E[f^T g] - 1/2 tr(Cov(f) Cov(g)), with f, g centred over the valid utterances and every expectation a
    mean over the N valid utterances (covariances divide by N, not N - 1). This is exactly the Soft-HGR of
    the batch's empirical distribution: its scale does not grow with the batch, it is finite for N = 1 (zero),
    and for linear features its maximum is 1/2 * sum of the top-k squared sample canonical correlations.

    ``mode="reference"`` returns :func:`soft_hgr_reference` (the published defective loss, abs() included).
    """
    if mode == "reference":
        return soft_hgr_reference(features, mask)
    if mode != "correct":
        raise ValueError(f"soft_hgr: mode must be one of {HGR_MODES}, got {mode!r}")
    valid = mask.bool()
    centred = []
    for f in features:
        rows = f[valid]  # (N, k)
        centred.append(rows - rows.mean(0, keepdim=True))
    n = max(int(valid.sum()), 1)
    covariances = [f.T @ f / n for f in centred]  # (k, k) each
    total = features[0].new_zeros(())
    for i, j in itertools.combinations(range(len(features)), 2):
        inner = (centred[i] * centred[j]).sum() / n  # E[f^T g]
        trace = (covariances[i] * covariances[j]).sum()  # tr(Cov f Cov g); both symmetric
        total = total + inner - 0.5 * trace
    return total


def soft_hgr_reference(features: list[Tensor], mask: Tensor, take_abs: bool = True) -> Tensor:
    """The published MCEF Soft-HGR loss, a FAITHFUL COPY OF A DEFECT, kept to compare numerically.

    Per modality the padded features are zeroed at padding, flattened to (N, D) with N = B * T counting
    the padded rows, and softmaxed over the feature axis (every entry ~1/D; padded rows become uniform).
    Per pair: mapping = sum(f * g) / N (the mean over rows of sum_d f g, not centred); covariance term =
    tr(torch.cov(f) @ torch.cov(g)) / N, where ``torch.cov`` takes rows as variables, so these are N x N
    covariances across samples (each row centred over its D features, divided by D - 1) instead of D x D
    feature covariances; the pair's value is mapping - covariance term / 2. The loss is -(sum over pairs) / N,
    a second division by N. It is negative (the mapping dominates), and the published training adds its
    abs(), which turns "maximise the correlation" into "minimise it". ``take_abs=False`` returns the signed
    loss. Magnitude ~1e-6: it contributes nothing.
    """
    keep = mask.bool().unsqueeze(-1)
    flat = [torch.softmax(f.masked_fill(~keep, 0.0).reshape(-1, f.shape[-1]), dim=-1) for f in features]  # (N, D)
    n = flat[0].shape[0]
    covariances = [torch.cov(f) for f in flat]  # (N, N): the defect
    pairs = flat[0].new_zeros(())
    for i, j in itertools.combinations(range(len(flat)), 2):
        mapping = (flat[i] * flat[j]).sum() / n
        covariance = (covariances[i] * covariances[j]).sum() / n  # = tr(C_i @ C_j) / N for symmetric C, no N^3 matmul
        pairs = pairs + mapping - covariance / 2
    loss = -pairs / n
    return loss.abs() if take_abs else loss


def self_distillation_kl(student_logits: Tensor, teacher_logits: Tensor, mask: Tensor, temperature: float = 1.0) -> Tensor:
    """SDT's self-distillation: KL(softmax(teacher / T) || softmax(student / T)) * T^2, mean over valid
    utterances. The teacher is detached and padded rows are removed before any softmax, so no NaN can arise
    (the reference multiplied teacher probabilities by the mask, undetached). Zero without utterances."""
    valid = mask.bool()
    student, teacher = student_logits[valid], teacher_logits[valid].detach()  # (N, C)
    if student.shape[0] == 0:
        return student.sum()  # an empty sum: zero, still attached to the graph
    log_p_student = F.log_softmax(student / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher / temperature, dim=-1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="sum", log_target=True)
    return kl / student.shape[0] * temperature**2


@dataclass(frozen=True)
class LossWeights:
    """Weights of the composite objective; the defaults are the published MCEF recipe."""

    fused_ce: float = 0.3  # cross-entropy of the fused head
    modality_ce: float = 0.1  # cross-entropy of each modality head (applied to their sum)
    soft_hgr: float = 0.4  # Soft-HGR term (its negative objective in "correct" mode, |reference| in "reference")
    kl: float = 0.0  # self-distillation from the fused head to each modality head (SDT uses 1)
    hgr_mode: Literal["correct", "reference"] = "correct"  # Wang et al.'s, or the published defective copy
    hgr_per_dim: bool = True  # correct mode: divide the objective by the feature size k before weighting
    temperature: float = 1.0  # self-distillation temperature T

    def __post_init__(self):
        if self.hgr_mode not in HGR_MODES:
            raise ValueError(f"LossWeights.hgr_mode: expected one of {HGR_MODES}, got {self.hgr_mode!r}")
        if self.temperature <= 0:
            raise ValueError(f"LossWeights.temperature: expected > 0, got {self.temperature}")


class Objective:
    """The composite training loss; ``objective(output, batch)`` returns every term for logging.

    Keys: "total"; "fused_ce"; "ce_<modality>" per modality head and "modality_ce" (their sum);
    "soft_hgr": the correct Soft-HGR objective (to maximise; always logged, also in reference mode);
    "hgr_loss": the unweighted Soft-HGR term in the total (-soft_hgr, divided by the feature size k when
    ``hgr_per_dim``, or the reference's |loss|);
    "kl": self-distillation summed over modality heads. Terms with weight 0 are computed without gradient.
    Every term is computed in float32 (the model returns float32 outputs; no autocast reaches the losses).
    Soft-HGR terms are zero with fewer than two modalities.
    """

    def __init__(self, weights: LossWeights | None = None, class_weights: Tensor | None = None):
        self.weights = weights or LossWeights()
        self.class_weights = class_weights

    def __call__(self, output, batch: Batch) -> dict[str, Tensor]:
        # Every term in float32 whatever the network's precision: an autocast around the caller ends here.
        with torch.autocast(output.fused_logits.device.type, enabled=False):
            return self._terms(output, batch)

    def _terms(self, output, batch: Batch) -> dict[str, Tensor]:
        w, mask, labels = self.weights, output.mask, batch.labels
        terms = {"fused_ce": masked_cross_entropy(output.fused_logits, labels, mask, self.class_weights)}
        for m, logits in output.logits.items():
            terms[f"ce_{m}"] = masked_cross_entropy(logits, labels, mask, self.class_weights)
        terms["modality_ce"] = sum(terms[f"ce_{m}"] for m in output.logits)
        features = list(output.representations.values())
        zero = output.fused_logits.new_zeros(())
        if len(features) > 1:
            with torch.set_grad_enabled(torch.is_grad_enabled() and w.soft_hgr != 0 and w.hgr_mode == "correct"):
                terms["soft_hgr"] = soft_hgr(features, mask)
            if w.hgr_mode == "correct":
                # Soft-HGR sums over k feature dimensions (its maximum is 1/2 sum of k squared canonical
                # correlations), so unscaled it outweighs the cross-entropy terms by ~k/10 at H = 512 and
                # swamps them; per dimension its maximum is at most 1/2 whatever the hidden size.
                scale = features[0].shape[-1] if w.hgr_per_dim else 1
                terms["hgr_loss"] = -terms["soft_hgr"] / scale
            else:
                with torch.set_grad_enabled(torch.is_grad_enabled() and w.soft_hgr != 0):
                    terms["hgr_loss"] = soft_hgr_reference(features, mask)
        else:
            terms["soft_hgr"] = terms["hgr_loss"] = zero
        with torch.set_grad_enabled(torch.is_grad_enabled() and w.kl != 0):
            terms["kl"] = sum(
                (self_distillation_kl(lg, output.fused_logits, mask, w.temperature) for lg in output.logits.values()),
                zero,
            )
        total = w.fused_ce * terms["fused_ce"] + w.modality_ce * terms["modality_ce"]
        if w.soft_hgr:
            total = total + w.soft_hgr * terms["hgr_loss"]
        if w.kl:
            total = total + w.kl * terms["kl"]
        terms["total"] = total
        return terms
