"""Chapter 04: the training recipe run (or read back from the run store), and what its runs say.

- :func:`chapter_configs`: the profile's ``training_run`` (the paper recipe, ``configs/paper.yaml``, with the
  profile's changes) beside the recipe itself; :func:`recipe_table`, :func:`loss_formula` describe it.
- :func:`run_table`, :func:`metrics_table`, :func:`tidy_curves`: the runs (from
  :func:`mcef.book.common.train_or_reuse`) and their ``metrics.jsonl`` as tidy tables.
- :func:`protocol_gap` and :func:`results_table`: the validation-selected test figures beside the oracle
  test-selected ones (the reference's protocol) per seed, mean ± std, and the published anchors.
- :func:`pooled_confusion`, :func:`fused_embeddings`, :func:`tsne_map`: what the selected checkpoints get right
  and wrong, and how their fused representation arranges the test utterances.
- Figures: :func:`curves_figure`, :func:`protocol_gap_figure`, :func:`confusion_figure`, :func:`class_f1_figure`,
  :func:`embedding_figure`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from mcef.book.common import (SPLIT_COLORS, BookRun, RunRecipe, book_layout, check, load_recipe, run_config,
                               section_settings)
from mcef.config import ExperimentConfig, config_to_dict
from mcef.data.dataset import DialogueDataset
from mcef.experiments import aggregate, mean_std
from mcef.train import read_metrics

# Literature figures on IEMOCAP-6 (percent), every one selected on the test set. Not results of this project.
PUBLISHED = (
    {"model": "MCEF (published)", "accuracy": 70.98, "weighted_f1": None,
     "citation": "MCEF: Multimodal Correlated Equal Fusion Network for Emotion Recognition in Utterance Level"},
    {"model": "SDT (published)", "accuracy": 73.95, "weighted_f1": 74.08,
     "citation": "Ma et al., A Transformer-Based Model With Self-Distillation for Multimodal Emotion Recognition "
                 "in Conversations, IEEE Transactions on Multimedia 2023"},
)  # fmt: skip
PUBLISHED_PROTOCOL = "published, test-selected"
SELECTED_PROTOCOL = "validation-selected, test scored once"  # this book's protocol
ORACLE_PROTOCOL = "oracle test-selected: for literature only"  # the reference's protocol, on the same runs

# Display names of the quantities logged per epoch (metrics.jsonl without the train_/valid_ prefix).
QUANTITY_TITLES = {
    "loss": "total loss",
    "loss_fused_ce": "fused cross-entropy",
    "loss_modality_ce": "modality cross-entropy (sum of heads)",
    "loss_ce_text": "text head cross-entropy",
    "loss_ce_audio": "audio head cross-entropy",
    "loss_ce_visual": "visual head cross-entropy",
    "loss_soft_hgr": "Soft-HGR objective (maximised)",
    "loss_hgr_loss": "Soft-HGR term in the loss",
    "loss_kl": "self-distillation KL",
    "accuracy": "accuracy",
    "weighted_f1": "weighted F1",
    "macro_f1": "macro F1",
    "lr": "learning rate",
}
# Short names for the axes of the per-epoch panels (the panels are narrow).
QUANTITY_AXES = {
    "loss": "total loss", "loss_fused_ce": "fused CE", "loss_modality_ce": "modality CE (sum)",
    "loss_ce_text": "text head CE", "loss_ce_audio": "audio head CE", "loss_ce_visual": "visual head CE",
    "loss_soft_hgr": "Soft-HGR objective", "loss_hgr_loss": "Soft-HGR loss term", "loss_kl": "distillation KL",
    "accuracy": "accuracy", "weighted_f1": "weighted F1", "macro_f1": "macro F1", "lr": "learning rate",
}
LEGEND_BELOW = dict(orientation="h", yanchor="top", y=-0.22, x=0)  # legends under the plot: the text column is narrow


# ----------------------------------------------------------------------------- the recipe


@dataclass(frozen=True)
class TrainingSettings:
    """What the chapter draws from its runs (profile section ``training``; every field given there)."""

    embedding_points: int  # test utterances drawn for the t-SNE map and the silhouette scores
    perplexity: float  # t-SNE perplexity (lowered automatically for very few points)


def training_settings(profile: str, root: str | Path | None = None) -> TrainingSettings:
    """The :class:`TrainingSettings` of ``profile`` (``<root>/configs/profiles/<profile>.yaml``)."""
    return section_settings(profile, "training", TrainingSettings, root)


def chapter_configs(profile: str, *, device: str = "auto", root: str | Path | None = None) -> tuple[ExperimentConfig, ExperimentConfig]:
    """(the chapter's config, the recipe it changes): the profile's ``training_run`` section, on ``device``."""
    recipe = section_settings(profile, "training_run", RunRecipe, root)
    return run_config(profile, "training_run", device=device, root=root), load_recipe(recipe.recipe, root)


def recipe_table(config: ExperimentConfig, recipe: ExperimentConfig) -> pd.DataFrame:
    """Every model, loss and train field of ``config`` beside the ``recipe``'s; ``changed`` marks the differences.

    Fields that do not define the result (device, progress bar, checkpoint interval, oracle record) are left out.
    """
    paper = config_to_dict(recipe)
    ours = config_to_dict(config)
    skip = {"device", "progress", "checkpoint_every", "record_oracle_test"}
    rows = [
        {"field": f"{section}.{key}", "this run": value, "paper recipe": paper[section][key],
         "changed": value != paper[section][key]}
        for section in ("model", "loss", "train") for key, value in ours[section].items() if key not in skip
    ]  # fmt: skip
    table = pd.DataFrame(rows)
    for column in ("this run", "paper recipe"):
        table[column] = table[column].astype(str)
    return table


def loss_formula(config: ExperimentConfig) -> str:
    """The training loss of ``config`` in words, e.g. ``0.3 CE(fused) + 0.1 ΣCE(modality heads) + 0.4 (−Soft-HGR)``;
    terms of weight 0 (logged, not trained on) are left out."""
    loss = config.loss
    hgr = "(−Soft-HGR)" if loss.hgr_mode == "correct" else "|reference Soft-HGR loss|"
    terms = ((loss.fused_ce, "CE(fused)"), (loss.modality_ce, "ΣCE(modality heads)"), (loss.soft_hgr, hgr),
             (loss.kl, "KL(fused → each head)"))  # fmt: skip
    return " + ".join(f"{weight:g} {name}" for weight, name in terms if weight) or "0"


# ----------------------------------------------------------------------------- the runs


def run_table(runs: Iterable[BookRun]) -> pd.DataFrame:
    """One row per run of :func:`mcef.book.common.train_or_reuse`: seed, run_dir, origin, device (where it was
    trained), epochs_run, selected_epoch, stopped_early, wall_time_s."""
    return pd.DataFrame([{"seed": run.seed, "run_dir": str(run.run_dir), "origin": run.origin,
                          **{key: run.summary[key] for key in ("device", "epochs_run", "selected_epoch",
                                                                 "stopped_early", "wall_time_s")}}
                         for run in runs])


# ----------------------------------------------------------------------------- reading a run directory


def metrics_table(run_dir: str | Path) -> pd.DataFrame:
    """``run_dir/metrics.jsonl`` as one row per epoch (columns as logged: ``train_loss``, ``valid_accuracy``, ...)."""
    records = read_metrics(run_dir)
    if not records or "epoch" not in records[0]:
        raise ValueError(f"{Path(run_dir) / 'metrics.jsonl'}: expected one JSON object with key 'epoch' per line "
                         "(is it a run directory of mcef.train.fit?)")
    return pd.DataFrame(records)


def tidy_curves(metrics: Mapping[int, pd.DataFrame]) -> pd.DataFrame:
    """Seed -> :func:`metrics_table`, as long rows: seed, epoch, split (train/valid), quantity, value.

    Every quantity logged for both train and valid is kept (each loss term and metric), plus the learning rate
    (under split ``train``: it is the rate the training epoch ran with).
    """
    frames = []
    for seed, table in metrics.items():
        for split in ("train", "valid"):
            columns = [c for c in table.columns if c.startswith(f"{split}_")]
            long = table.melt(id_vars="epoch", value_vars=columns, var_name="quantity", value_name="value")
            long["quantity"] = long["quantity"].str.slice(len(split) + 1)
            frames.append(long.assign(seed=seed, split=split))
        if "lr" in table:
            frames.append(table[["epoch", "lr"]].rename(columns={"lr": "value"}).assign(seed=seed, split="train", quantity="lr"))
    tidy = pd.concat(frames, ignore_index=True)[["seed", "epoch", "split", "quantity", "value"]]
    both = tidy.groupby("quantity")["split"].nunique()
    keep = set(both[both == 2].index) | {"lr"}
    return tidy[tidy["quantity"].isin(keep)].reset_index(drop=True)


def _quantity_order(quantities: Iterable[str]) -> list[str]:
    present = list(dict.fromkeys(quantities))
    return [q for q in QUANTITY_TITLES if q in present] + [q for q in present if q not in QUANTITY_TITLES]


# ----------------------------------------------------------------------------- protocol gap and results


GAP_METRICS = ("accuracy", "weighted_f1")  # the figures the literature reports


def protocol_gap(summaries: Mapping[int, dict]) -> pd.DataFrame:
    """Per seed (``summaries``: seed -> summary.json): the validation-selected test figure, the oracle (best test
    epoch) figure, and the gap between them.

    Columns: seed, selected_epoch, then per metric of :data:`GAP_METRICS` ``selected_<m>``, ``oracle_<m>``,
    ``oracle_<m>_epoch`` and ``gap_<m>`` = oracle - selected. The oracle looks at every epoch's test figure, the
    selected epoch's included, so the gap is never negative: a negative one fails the page.
    """
    if not summaries:
        raise ValueError("protocol_gap: no run summaries given")
    rows = []
    for seed, summary in summaries.items():
        oracle = summary.get("oracle_best_test")
        if oracle is None:
            raise ValueError(f"seed {seed}: the run has no oracle_best_test record (trained with "
                             "train.record_oracle_test=false); the protocol gap needs it")
        row = {"seed": seed, "selected_epoch": summary["selected_epoch"]}
        for metric in GAP_METRICS:
            row[f"selected_{metric}"] = summary["test"][metric]
            row[f"oracle_{metric}"] = oracle[metric]
            row[f"oracle_{metric}_epoch"] = oracle[f"{metric}_epoch"]
            row[f"gap_{metric}"] = oracle[metric] - summary["test"][metric]
            check(row[f"gap_{metric}"] >= 0, f"protocol_gap: seed {seed}: the oracle {metric} {oracle[metric]:.6f} "
                  f"(epoch {row[f'oracle_{metric}_epoch']}) is below the selected epoch's {summary['test'][metric]:.6f}"
                  f" (epoch {row['selected_epoch']}), although the oracle sees every epoch")
        rows.append(row)
    return pd.DataFrame(rows)


def gap_summary(gap: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample std and n over seeds of every selected/oracle/gap column of :func:`protocol_gap`."""
    columns = [c for c in gap.columns if c.startswith(("selected_", "oracle_", "gap_")) and not c.endswith("epoch")]
    table = aggregate([{"config": "seeds", **row} for row in gap.to_dict("records")], columns)
    return pd.DataFrame(table).drop(columns="config").set_index("metric")


def results_table(gap: pd.DataFrame, data_name: str) -> pd.DataFrame:
    """Our two protocols (mean ± std over seeds, percent) above the published, test-selected anchors.

    Rows: the validation-selected result (this book's protocol), the oracle test-selected figure of the same runs
    (the reference's protocol, for literature comparison only), then :data:`PUBLISHED`.
    """
    summary = gap_summary(gap)
    rows = []
    for kind, protocol in (("selected", SELECTED_PROTOCOL), ("oracle", ORACLE_PROTOCOL)):
        row = {"model": "MCEF (this run)", "protocol": protocol, "data": data_name}
        for metric in GAP_METRICS:
            stats = summary.loc[f"{kind}_{metric}"]
            row[metric] = mean_std(stats["mean"], None if pd.isna(stats["std"]) else stats["std"])
        row["seeds"] = int(summary.loc[f"{kind}_accuracy", "n"])
        rows.append(row)
    for anchor in PUBLISHED:
        rows.append({"model": anchor["model"], "protocol": PUBLISHED_PROTOCOL, "data": "IEMOCAP-6",
                     **{m: "-" if anchor[m] is None else f"{anchor[m]:.2f}" for m in GAP_METRICS}, "seeds": "-"})  # fmt: skip
    table = pd.DataFrame(rows)
    return table.rename(columns={"accuracy": "accuracy (%)", "weighted_f1": "weighted F1 (%)"})


def count_text(n: int, noun: str) -> str:
    """``"1 seed"``, ``"5 seeds"``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def range_text(values: Iterable[float], number: str = "{:.2f}") -> str:
    """The spread of per-seed ``values`` as words: ``"between 0.10 and 1.20"``, ``"0.10 for every seed"``, or
    ``"0.10 (one seed only)"``."""
    values = list(values)
    low, high = min(values), max(values)
    if len(values) == 1:
        return f"{number.format(low)} (one seed only)"
    if low == high:
        return f"{number.format(low)} for every seed"
    return f"between {number.format(low)} and {number.format(high)}"


def probe_comparison(mcef_weighted_f1: float, probe_weighted_f1: float, config: ExperimentConfig) -> dict[str, float | str]:
    """What the chapter says about MCEF's validation-selected test weighted F1 beside the concatenated linear
    probe's on the same data (both fractions), keyed by its glue names: the gap in points, its side, a discussion."""
    gap = 100 * (mcef_weighted_f1 - probe_weighted_f1)
    size = f"H = {config.model.hidden} and at most {config.train.epochs} epochs"
    if gap < 0:
        discussion = (
            f"MCEF scores {-gap:.1f} points of weighted F1 below this probe, although it reads the same features "
            f"and, besides, the whole dialogue. The probe is a convex fit with its regularisation tuned on "
            f"validation; MCEF, here with {size}, is a non-convex fit of which one epoch is kept. A network that "
            "does not match a linear read-out of single utterances has not shown that it uses the context: at "
            "this size, on this evidence, the conversation and the fusion add nothing that a linear map of each "
            "utterance does not already give, and only a larger profile can show whether they do.")
    else:
        discussion = (
            f"MCEF scores {gap:.1f} points of weighted F1 above this probe ({size}): what the network adds over a "
            "linear read-out of each utterance on its own is the dialogue around it and the fusion of the "
            "modalities.")
    return {"probe_gap": abs(gap), "probe_side": "below" if gap < 0 else "above", "probe_discussion": discussion}


# ----------------------------------------------------------------------------- confusion and F1 per class


def pooled_confusion(summaries: Iterable[dict]) -> np.ndarray:
    """Sum of the selected checkpoints' test confusion matrices (rows = true class, columns = predicted)."""
    matrices = [np.asarray(s["test"]["confusion_matrix"], dtype=np.int64) for s in summaries]
    if not matrices:
        raise ValueError("pooled_confusion: no run summaries given")
    return np.sum(matrices, axis=0)


def confusion_facts(confusion: np.ndarray, label_names: Iterable[str], n_seeds: int) -> dict[str, float | int | str]:
    """What the chapter says about a pooled confusion matrix (of ``n_seeds`` runs), keyed by its glue names.

    Totals, the classes with the best and the worst recall, and the most frequent confusion: the largest
    off-diagonal cell, as a share of its true class.
    """
    names = list(label_names)
    recall = confusion.diagonal() / confusion.sum(axis=1)
    off_diagonal = confusion.copy()
    off_diagonal[range(len(names)), range(len(names))] = 0
    true_class, predicted_class = divmod(int(off_diagonal.argmax()), len(names))
    return {
        "confusion_total": int(confusion.sum()),
        "test_support": int(confusion.sum()) // n_seeds,
        "best_recall_label": names[int(recall.argmax())],
        "best_recall": float(recall.max()),
        "worst_recall_label": names[int(recall.argmin())],
        "worst_recall": float(recall.min()),
        "confused_true": names[true_class],
        "confused_predicted": names[predicted_class],
        "confused_share": float(off_diagonal.max() / confusion[true_class].sum()),
    }


def class_f1_facts(table: pd.DataFrame) -> dict[str, float | int | str]:
    """The best and the worst class of :func:`mcef.book.common.class_f1_over_seeds`'s table by mean F1 (and the
    worst one's support)."""
    best = table.loc[table["f1_mean"].idxmax()]
    worst = table.loc[table["f1_mean"].idxmin()]
    return {"best_f1_label": best["label"], "best_f1": float(best["f1_mean"]), "worst_f1_label": worst["label"],
            "worst_f1": float(worst["f1_mean"]), "worst_f1_support": int(worst["support"])}


# ----------------------------------------------------------------------------- the fused representation


@dataclass
class FusedEmbeddings:
    """The vector the fused classifier reads, for every utterance of one split, in loader order."""

    vectors: np.ndarray  # (N, H)
    labels: np.ndarray  # (N,) true class index
    predictions: np.ndarray  # (N,) the fused head's class index
    dialogue_ids: list[str]  # (N,) dialogue of each utterance


def fused_embeddings(model, dataset: DialogueDataset, split: str = "test", *,
                     batch_size: int = 16) -> FusedEmbeddings:
    """Run ``split`` through ``model`` (eval mode, no gradients) and record the input of its fused head.

    A forward pre-hook on ``model.fused_head`` captures that input, so nothing of the forward pass is re-implemented.
    """
    from mcef.data import DialogueLoader

    if model.config.fusion == "late":
        raise ValueError("fused_embeddings: fusion='late' averages the heads' logits and has no fused representation")
    device = next(model.parameters()).device
    captured: list[torch.Tensor] = []
    handle = model.fused_head.register_forward_pre_hook(lambda module, inputs: captured.append(inputs[0].detach()))
    vectors, labels, predictions, dialogue_ids = [], [], [], []
    was_training = model.training
    try:
        model.eval()
        loader = DialogueLoader(dataset, split, batch_size=batch_size, modalities=model.config.modalities, device=device)
        for batch in loader:
            captured.clear()
            with torch.no_grad():
                output = model(batch)
            mask = batch.mask.bool()
            rows = captured[0].float()  # (N, H) packed rows, or (B*T, H) in the padded layout
            if rows.shape[0] != int(mask.sum()):
                rows = rows[mask.reshape(-1)]
            vectors.append(rows.cpu().numpy())
            labels.append(batch.labels[mask].cpu().numpy())
            predictions.append(output.fused_logits.argmax(dim=-1)[mask].cpu().numpy())
            dialogue_ids += [d for d, length in zip(batch.dialogue_ids, mask.sum(dim=1).tolist()) for _ in range(length)]
    finally:
        handle.remove()
        model.train(was_training)
    return FusedEmbeddings(np.concatenate(vectors), np.concatenate(labels), np.concatenate(predictions), dialogue_ids)


def check_recorded_accuracy(embeddings: FusedEmbeddings, summary: dict) -> float:
    """The accuracy of ``embeddings``' predictions, checked to be the test accuracy ``summary`` (the run's
    summary.json) recorded: else the vectors are not those the reported result came from, and the page fails."""
    correct = int((embeddings.predictions == embeddings.labels).sum())
    recorded = round(summary["test"]["accuracy"] * len(embeddings.labels))
    check(correct == recorded, f"the checkpoint run again labels {correct} of {len(embeddings.labels)} test "
          f"utterances correctly, its run recorded {recorded} (accuracy {summary['test']['accuracy']:.6f})")
    return correct / len(embeddings.labels)


def subsample(n: int, max_points: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most ``max_points`` of ``n`` items, drawn without replacement (seeded)."""
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))


def input_features(dataset: DialogueDataset, dialogue_ids: Iterable[str], modalities: Iterable[str]) -> np.ndarray:
    """(N, sum of dims): the input features of the utterances of ``dialogue_ids`` (one entry per utterance, as in
    :class:`FusedEmbeddings`), modalities concatenated, every dimension standardised."""
    ids = list(dict.fromkeys(dialogue_ids))
    blocks = [np.concatenate([np.asarray(dataset.dialogues[d].features[m], dtype=np.float64) for d in ids]) for m in modalities]
    features = np.concatenate(blocks, axis=1)
    return (features - features.mean(axis=0)) / np.maximum(features.std(axis=0), 1e-12)


def tsne_map(vectors: np.ndarray, *, perplexity: float = 30.0, seed: int = 0) -> np.ndarray:
    """(N, 2) scikit-learn t-SNE of ``vectors`` (PCA initialisation; perplexity capped below N / 3)."""
    from sklearn.manifold import TSNE

    n = len(vectors)
    if n < 5:
        raise ValueError(f"tsne_map: t-SNE needs at least 5 points, got {n}")
    perplexity = min(perplexity, (n - 1) / 3)
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
    return tsne.fit_transform(np.asarray(vectors, dtype=np.float64))


def silhouette(vectors: np.ndarray, labels: np.ndarray) -> float:
    """Silhouette of the true labels in ``vectors`` (Euclidean; 1 = tight separate classes, 0 = overlapping)."""
    from sklearn.metrics import silhouette_score

    return float(silhouette_score(vectors, labels))


# ----------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class FusedMap:
    """Chapter 4's map of one run's fused representation: what the page shows of it, small enough to be stored
    beside a run whose weights are not committed."""

    points: np.ndarray  # (n, 2) t-SNE coordinates of the drawn test utterances
    labels: np.ndarray  # (n,) their true class index
    predictions: np.ndarray  # (n,) the fused head's class index
    dim: int  # H of the fused vectors
    accuracy: float  # of every test utterance, run again (checked against the run's summary)
    silhouette_fused: float  # of the true classes, in the fused space, on the drawn utterances
    silhouette_inputs: float  # the same in the standardised input features of every modality concatenated


def fused_map(run: BookRun, dataset: DialogueDataset, *, points: int, perplexity: float, device: str = "auto") -> FusedMap:
    """:func:`fused_embeddings` of ``run``'s selected checkpoint on the test split, ``points`` of them mapped by
    :func:`tsne_map` (seeded by the run's seed), and the silhouettes; stored beside the run
    (:func:`mcef.book.derived.from_weights`: the committed results carry no weights)."""
    from mcef.book.derived import from_weights
    from mcef.evaluate import load_run

    def compute() -> dict:
        _, model, _ = load_run(run.run_dir, device=device)
        embeddings = fused_embeddings(model, dataset, "test", batch_size=run.config.train.batch_size)
        chosen = subsample(len(embeddings.labels), points, seed=run.seed)
        inputs = input_features(dataset, embeddings.dialogue_ids, model.config.modalities)
        labels = embeddings.labels[chosen]
        return {"points": tsne_map(embeddings.vectors[chosen], perplexity=perplexity, seed=run.seed).tolist(),
                "labels": labels.tolist(), "predictions": embeddings.predictions[chosen].tolist(),
                "dim": int(embeddings.vectors.shape[1]), "accuracy": check_recorded_accuracy(embeddings, run.summary),
                "silhouette_fused": silhouette(embeddings.vectors[chosen], labels),
                "silhouette_inputs": silhouette(inputs[chosen], labels)}

    value = from_weights(run, "fused_map", {"points": points, "perplexity": perplexity, "split": "test"}, compute)
    return FusedMap(**{**value, **{k: np.asarray(value[k]) for k in ("points", "labels", "predictions")}})


def curves_figure(tidy: pd.DataFrame, selected_epochs: Mapping[int, int] | None = None,
                  title: str = "Every loss term and metric per epoch") -> go.Figure:  # fmt: skip
    """One panel per quantity of :func:`tidy_curves`: train and valid lines, one per seed (later seeds fainter).

    ``selected_epochs`` (seed -> epoch) draws the first seed's epoch chosen on validation as a dotted line.
    """
    quantities = _quantity_order(tidy["quantity"])
    seeds = list(dict.fromkeys(tidy["seed"]))
    cols = 2  # each panel names its quantity on its y axis; two columns fit the book's text column
    rows = -(-len(quantities) // cols)
    fig = make_subplots(rows=rows, cols=cols, horizontal_spacing=0.16, vertical_spacing=0.35 / rows)
    shown = set()
    for k, quantity in enumerate(quantities):
        row, col = k // cols + 1, k % cols + 1
        for (seed, split), lines in tidy[tidy["quantity"] == quantity].groupby(["seed", "split"], sort=False):
            first = seed == seeds[0]
            fig.add_trace(
                go.Scatter(
                    x=lines["epoch"], y=lines["value"], mode="lines", name=split, legendgroup=split,
                    showlegend=split not in shown, opacity=1.0 if first else 0.35, line_color=SPLIT_COLORS.get(split),
                    hovertemplate=f"{QUANTITY_TITLES.get(quantity, quantity)}, {split}, seed {seed}<br>"
                                  "epoch %{x}: %{y:.4g}<extra></extra>",
                ),
                row=row, col=col,
            )  # fmt: skip
            shown.add(split)
        fig.update_yaxes(title_text=QUANTITY_AXES.get(quantity, quantity), type="log" if quantity == "lr" else None,
                         row=row, col=col)
        fig.update_xaxes(title_text="epoch", title_standoff=4, row=row, col=col)
    if selected_epochs:
        fig.add_vline(x=selected_epochs[seeds[0]], line_dash="dot", line_color="gray", row="all", col="all")
    return book_layout(fig, title, height=210 * rows + 120, legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1))


def protocol_gap_figure(gap: pd.DataFrame,
                        title: str = "Test figures: selected on validation vs oracle, per seed") -> go.Figure:  # fmt: skip
    """Per metric of :data:`GAP_METRICS`, grouped bars per seed: selected on validation beside the oracle."""
    fig = make_subplots(rows=1, cols=len(GAP_METRICS), horizontal_spacing=0.16)
    seeds = [f"seed {s}" for s in gap["seed"]]
    for col, metric in enumerate(GAP_METRICS, start=1):
        for kind, name, color in (("selected", "validation-selected (this book)", SPLIT_COLORS["valid"]),
                                  ("oracle", "oracle, test-selected (reference's protocol)", SPLIT_COLORS["test"])):  # fmt: skip
            fig.add_trace(
                go.Bar(
                    x=seeds, y=gap[f"{kind}_{metric}"], name=name, legendgroup=kind, showlegend=col == 1, marker_color=color,
                    customdata=np.stack([gap["gap_" + metric], gap["selected_epoch"] if kind == "selected"
                                         else gap[f"oracle_{metric}_epoch"]], axis=1),
                    hovertemplate="%{x}: %{y:.4f} (epoch %{customdata[1]})<br>gap %{customdata[0]:.4f}"
                                  f"<extra>{name}</extra>",
                ),
                row=1, col=col,
            )  # fmt: skip
    fig.update_layout(barmode="group")
    low = float(gap[[f"{k}_{m}" for k in ("selected", "oracle") for m in GAP_METRICS]].min().min())
    fig.update_yaxes(range=[max(0.0, low - 0.1), None])
    for col, metric in enumerate(GAP_METRICS, start=1):
        fig.update_yaxes(title_text=f"test {QUANTITY_TITLES[metric]}", row=1, col=col)
        fig.update_xaxes(title_text="seed", row=1, col=col)
    return book_layout(fig, title, legend=LEGEND_BELOW)


def confusion_figure(cm: np.ndarray, label_names: Iterable[str],
                     title: str = "Test confusion matrix (rows: true class)") -> go.Figure:  # fmt: skip
    """Heatmap of ``cm``: colour = share of the true class (row), text = counts."""
    cm = np.asarray(cm)
    names = list(label_names)
    totals = cm.sum(axis=1, keepdims=True)
    shares = np.divide(cm, totals, out=np.zeros(cm.shape, dtype=float), where=totals > 0)
    fig = go.Figure(
        go.Heatmap(
            z=shares, x=names, y=names, colorscale="Blues", zmin=0, zmax=1, text=cm, texttemplate="%{text}",
            colorbar=dict(title="share of row"), hovertemplate="true %{y}, predicted %{x}: %{text} (%{z:.1%})<extra></extra>",
        )
    )  # fmt: skip
    fig.update_yaxes(autorange="reversed", title="true class")
    fig.update_xaxes(title="predicted class")
    return book_layout(fig, title, height=480)


def class_f1_figure(table: pd.DataFrame, title: str = "Test F1 per class (mean over seeds, ± std)") -> go.Figure:
    """Bars of :func:`mcef.book.common.class_f1_over_seeds`, with the seeds' standard deviation as error bars when there are several."""
    error = None if table["f1_std"].isna().all() else dict(type="data", array=table["f1_std"])
    fig = go.Figure(
        go.Bar(
            x=table["label"], y=table["f1_mean"], error_y=error, marker_color=SPLIT_COLORS["test"], customdata=table["support"],
            hovertemplate="%{x}: F1 %{y:.3f} (%{customdata} test utterances)<extra></extra>",
        )
    )  # fmt: skip
    fig.update_yaxes(range=[0, 1], title="test F1")
    fig.update_xaxes(title="true class")
    return book_layout(fig, title)


def embedding_figure(points: np.ndarray, labels: np.ndarray, predictions: np.ndarray, label_names: Iterable[str],
                     title: str = "t-SNE of the fused representation of test utterances") -> go.Figure:  # fmt: skip
    """Scatter of 2-D ``points``, one trace per true class present (coloured by it); hover shows the prediction."""
    names = list(label_names)
    colors = qualitative.Plotly
    fig = go.Figure()
    for c, name in enumerate(names):
        keep = labels == c
        if not keep.any():
            continue
        fig.add_trace(
            go.Scatter(
                x=points[keep, 0], y=points[keep, 1], mode="markers", name=name,
                marker=dict(size=5, color=colors[c % len(colors)]),
                text=[f"true {name}, predicted {names[p]}" for p in predictions[keep]], hovertemplate="%{text}<extra></extra>",
            )
        )  # fmt: skip
    fig.update_xaxes(showticklabels=False, title="t-SNE 1")
    fig.update_yaxes(showticklabels=False, title="t-SNE 2")
    return book_layout(fig, title, height=520)
