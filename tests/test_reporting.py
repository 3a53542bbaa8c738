"""Chapter 04's library: train-or-load, run directories as tables, the protocol gap, figures, fused embeddings."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from mcef import reporting
from mcef.config import with_changes
from mcef.evaluate import load_run
from mcef.metrics import per_class_f1
from mcef.model import MCEF
from mcef.profiles import PROFILE_NAMES

SEEDS = (0, 1)
TINY = reporting.TrainingSettings(
    changes={"model": {"hidden": 16, "n_heads": 4, "n_self_heads": 2},
             "train": {"epochs": 4, "batch_size": 4, "lr": 1e-3, "checkpoint_every": 4}},
    embedding_points=20, perplexity=5.0,
)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_config():
    return reporting.chapter_config(TINY, device="cpu")


@pytest.fixture(scope="module")
def trained(tiny_dataset, tiny_config, tmp_path_factory):
    """Two seeds of the tiny recipe, trained once for the module: (run root, train_or_load table)."""
    root = tmp_path_factory.mktemp("runs")
    return root, reporting.train_or_load(tiny_config, tiny_dataset, SEEDS, root)


@pytest.fixture(scope="module")
def summaries(trained):
    _, runs = trained
    return [reporting.read_summary(path) for path in runs["run_dir"]]


def test_every_profile_scales_the_paper_recipe_into_the_mcef_run():
    for name in PROFILE_NAMES:
        settings = reporting.training_settings(name)
        config = reporting.chapter_config(settings, device="cpu")
        assert config.name == reporting.RUN_NAME == "mcef"
        assert config.train.record_oracle_test and not config.train.progress
        table = reporting.recipe_table(config, reporting.recipe_config(settings))
        changed = set(table.loc[table["changed"], "field"])
        expected = {f"{section}.{key}" for section, values in settings.changes.items() for key in values
                    if key not in ("checkpoint_every",)}  # fmt: skip
        assert changed == expected, name
    full = reporting.chapter_config(reporting.training_settings("full"))
    assert full.train.epochs == 150 and full.model.hidden == 512
    assert reporting.loss_formula(full) == "0.3 CE(fused) + 0.1 ΣCE(modality heads) + 0.4 (−Soft-HGR)"


def test_training_settings_reject_unknown_keys(tmp_path):
    (tmp_path / "odd.yaml").write_text("description: x\nn_seeds: 1\ntraining: {epochz: 3}\n")
    with pytest.raises(KeyError, match="epochz"):
        reporting.training_settings("odd", directory=tmp_path)


def test_train_or_load_trains_then_loads(trained, tiny_dataset, tiny_config):
    root, runs = trained
    assert list(runs["origin"]) == ["trained now"] * len(SEEDS)
    assert [str(root / "mcef" / f"seed{s}") for s in SEEDS] == list(runs["run_dir"])
    stamps = [(root / "mcef" / f"seed{s}" / "summary.json").stat().st_mtime_ns for s in SEEDS]
    again = reporting.train_or_load(tiny_config, tiny_dataset, SEEDS, root)
    assert list(again["origin"]) == ["loaded"] * len(SEEDS)
    assert stamps == [(root / "mcef" / f"seed{s}" / "summary.json").stat().st_mtime_ns for s in SEEDS]
    assert (again["device"] == "cpu").all() and (again["epochs_run"] == 4).all()


def test_train_or_load_retrains_a_run_of_another_config(trained, tiny_dataset, tiny_config, tmp_path):
    root, _ = trained
    shutil.copytree(root / "mcef" / "seed0", tmp_path / "mcef" / "seed0")
    other = replace(tiny_config, train=replace(tiny_config.train, epochs=2, checkpoint_every=2))
    runs = reporting.train_or_load(other, tiny_dataset, [0], tmp_path)
    assert runs["origin"].iloc[0].startswith("retrained") and runs["epochs_run"].iloc[0] == 2


def test_tidy_curves_hold_every_logged_term_for_both_splits_and_the_figure_draws_them(trained):
    _, runs = trained
    metrics = {seed: reporting.read_metrics(path) for seed, path in zip(runs["seed"], runs["run_dir"])}
    curves = reporting.tidy_curves(metrics)
    logged = {c[len("train_"):] for c in metrics[0].columns if c.startswith("train_")}
    assert {"loss", "loss_fused_ce", "loss_soft_hgr", "accuracy", "weighted_f1"} <= logged
    assert set(curves["quantity"]) == logged | {"lr"}
    for quantity in logged:
        rows = curves[curves["quantity"] == quantity]
        assert set(rows["split"]) == {"train", "valid"} and len(rows) == 2 * len(SEEDS) * 4
    first = curves[(curves["seed"] == 0) & (curves["split"] == "valid") & (curves["quantity"] == "accuracy")]
    assert np.allclose(first["value"], metrics[0]["valid_accuracy"])
    fig = reporting.curves_figure(curves, {0: 2})
    assert len(fig.data) == len(SEEDS) * (2 * len(logged) + 1)  # train + valid per term, one lr line, per seed
    assert {t.name for t in fig.data} == {"train", "valid"}
    assert sum(t.showlegend for t in fig.data) == 2


def test_protocol_gap_is_oracle_minus_selected_and_never_negative(trained, summaries):
    root, _ = trained
    gap = reporting.protocol_gap(root, SEEDS)
    assert list(gap["seed"]) == list(SEEDS)
    for metric in reporting.GAP_METRICS:
        assert (gap[f"gap_{metric}"] >= 0).all()  # the oracle sees every epoch, the selected one included
        assert np.allclose(gap[f"selected_{metric}"], [s["test"][metric] for s in summaries])
        assert np.allclose(gap[f"gap_{metric}"], gap[f"oracle_{metric}"] - gap[f"selected_{metric}"])
    stats = reporting.gap_summary(gap)
    assert stats.loc["gap_accuracy", "n"] == len(SEEDS)
    assert stats.loc["gap_accuracy", "mean"] == pytest.approx(gap["gap_accuracy"].mean())
    assert stats.loc["gap_accuracy", "std"] == pytest.approx(gap["gap_accuracy"].std(ddof=1))


def test_results_table_puts_both_protocols_above_the_labelled_published_anchors(trained):
    root, _ = trained
    gap = reporting.protocol_gap(root, SEEDS)
    table = reporting.results_table(gap, "synthetic")
    assert list(table["protocol"]) == [reporting.SELECTED_PROTOCOL, reporting.ORACLE_PROTOCOL] + ["published, test-selected"] * 2
    assert table.loc[0, "accuracy (%)"] == f"{100 * gap['selected_accuracy'].mean():.2f} ± {100 * gap['selected_accuracy'].std():.2f}"
    assert list(table["accuracy (%)"].iloc[2:]) == ["70.98", "73.95"]
    assert table["weighted F1 (%)"].iloc[3] == "74.08" and table["data"].iloc[0] == "synthetic"
    assert list(table["seeds"].iloc[:2]) == [len(SEEDS)] * 2
    fig = reporting.protocol_gap_figure(gap)
    assert len(fig.data) == 2 * len(reporting.GAP_METRICS)
    assert all(len(t.x) == len(SEEDS) for t in fig.data)


def test_protocol_gap_needs_the_oracle_record(trained, tmp_path):
    root, _ = trained
    run = tmp_path / "mcef" / "seed0"
    shutil.copytree(root / "mcef" / "seed0", run)
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "oracle_best_test": None}))
    with pytest.raises(ValueError, match="record_oracle_test"):
        reporting.protocol_gap(tmp_path, [0])
    with pytest.raises(FileNotFoundError, match="no finished run"):
        reporting.protocol_gap(tmp_path, [7])


def test_confusion_sums_to_the_test_support_and_per_class_f1_matches(summaries, tiny_dataset):
    support = tiny_dataset.class_counts("test")
    pooled = reporting.pooled_confusion(summaries)
    assert pooled.sum() == len(summaries) * support.sum()
    assert np.array_equal(pooled.sum(axis=1), len(summaries) * support)
    table = reporting.per_class_f1(summaries, tiny_dataset.label_names)
    expected = np.array([per_class_f1(np.array(s["test"]["confusion_matrix"])) for s in summaries])
    assert np.allclose(table["f1_mean"], expected.mean(axis=0))
    assert np.allclose(table["f1_std"], expected.std(axis=0, ddof=1))
    assert list(table["support"]) == list(support)
    heatmap = reporting.confusion_figure(pooled, tiny_dataset.label_names).data[0]
    rows = np.asarray(heatmap.z).sum(axis=1)
    assert np.allclose(rows[support > 0], 1.0)
    assert reporting.per_class_f1_figure(table).data[0].error_y.array is not None


def test_fused_embeddings_are_the_vectors_behind_the_recorded_result(trained, summaries, tiny_dataset):
    _, runs = trained
    _, model, _ = load_run(runs["run_dir"].iloc[0], device="cpu")
    embeddings = reporting.fused_embeddings(model, tiny_dataset, "test", batch_size=2)
    test_ids = tiny_dataset.splits["test"]
    labels = np.concatenate([tiny_dataset.dialogues[d].labels for d in test_ids])
    assert embeddings.vectors.shape == (len(labels), model.config.hidden)
    assert np.array_equal(embeddings.labels, labels)
    assert list(dict.fromkeys(embeddings.dialogue_ids)) == list(test_ids)
    assert (embeddings.predictions == labels).mean() == pytest.approx(summaries[0]["test"]["accuracy"])
    # The fused head applied to the captured vectors gives the predictions: they are its input.
    with torch.no_grad():
        logits = model.fused_head(torch.as_tensor(embeddings.vectors))
    assert np.array_equal(logits.argmax(-1).numpy(), embeddings.predictions)
    # The padded layout (the reference's computation) yields the same vectors.
    padded = MCEF(replace(model.config, packed=False))
    padded.load_state_dict(model.state_dict())
    again = reporting.fused_embeddings(padded, tiny_dataset, "test", batch_size=2)
    assert np.allclose(again.vectors, embeddings.vectors, atol=1e-4)


def test_tsne_map_silhouette_and_embedding_figure(trained, tiny_dataset):
    _, runs = trained
    _, model, _ = load_run(runs["run_dir"].iloc[0], device="cpu")
    embeddings = reporting.fused_embeddings(model, tiny_dataset, "test")
    chosen = reporting.subsample(len(embeddings.labels), TINY.embedding_points, seed=0)
    assert len(chosen) == TINY.embedding_points and len(set(chosen)) == len(chosen)
    points = reporting.tsne_map(embeddings.vectors[chosen], perplexity=TINY.perplexity)
    assert points.shape == (len(chosen), 2) and np.isfinite(points).all()
    inputs = reporting.input_features(tiny_dataset, embeddings.dialogue_ids, model.config.modalities)
    assert inputs.shape == (len(embeddings.labels), sum(tiny_dataset.dims.values()))
    assert np.allclose(inputs.mean(axis=0), 0.0, atol=1e-8)
    for vectors in (embeddings.vectors[chosen], inputs[chosen]):
        assert -1.0 <= reporting.silhouette(vectors, embeddings.labels[chosen]) <= 1.0
    fig = reporting.embedding_figure(points, embeddings.labels[chosen], embeddings.predictions[chosen], tiny_dataset.label_names)
    present = np.unique(embeddings.labels[chosen])
    assert [t.name for t in fig.data] == [tiny_dataset.label_names[c] for c in present]
    assert sum(len(t.x) for t in fig.data) == len(chosen)
    with pytest.raises(ValueError, match="at least 5"):
        reporting.tsne_map(np.zeros((3, 4)))


def test_words_for_counts_and_spreads():
    assert reporting.count_text(1, "seed") == "1 seed" and reporting.count_text(5, "seed") == "5 seeds"
    assert reporting.range_text([0.5]) == "0.50 (one seed only)"
    assert reporting.range_text([2, 2], "{:d}") == "2 for every seed"
    assert reporting.range_text([0.1, 1.234, 0.5]) == "between 0.10 and 1.23"


def test_hgr_scaling_states_the_per_dimension_division_of_the_loss():
    full = reporting.chapter_config(reporting.training_settings("full"))
    assert full.loss.hgr_per_dim and "divided by k" in reporting.hgr_scaling(full) and "H = 512" in reporting.hgr_scaling(full)
    raw = with_changes(full, loss={"hgr_per_dim": False})
    assert "not divided by k" in reporting.hgr_scaling(raw)
    assert "reference" in reporting.hgr_scaling(with_changes(full, loss={"hgr_mode": "reference"}))


def test_confusion_and_per_class_facts_name_the_extremes():
    confusion = np.array([[8, 2, 0], [1, 5, 4], [0, 0, 10]])  # rows: true class; two seeds pooled
    facts = reporting.confusion_facts(confusion, ["a", "b", "c"], n_seeds=2)
    assert facts["confusion_total"] == 30 and facts["test_support"] == 15
    assert (facts["best_recall_label"], facts["best_recall"]) == ("c", 1.0)
    assert (facts["worst_recall_label"], facts["worst_recall"]) == ("b", 0.5)
    assert (facts["confused_true"], facts["confused_predicted"], facts["confused_share"]) == ("b", "c", 0.4)
    table = pd.DataFrame({"label": ["a", "b", "c"], "f1_mean": [0.7, 0.2, 0.9], "support": [5, 3, 7]})
    assert reporting.per_class_f1_facts(table) == {"best_f1_label": "c", "best_f1": 0.9, "worst_f1_label": "b",
                                                   "worst_f1": 0.2, "worst_f1_support": 3}
