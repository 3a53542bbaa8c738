"""Chapter 04's module: runs from the run store, run directories as tables, the protocol gap, figures, fused embeddings."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from book_helpers import REPO, make_root

from mcef.book import reporting
from mcef.book.common import (PROFILE_NAMES, ProfileError, RunRecipe, SelfCheckFailed, class_f1_over_seeds,
                              hgr_scaling, section_settings, train_or_reuse)
from mcef.config import with_changes
from mcef.evaluate import load_run
from mcef.metrics import per_class_f1
from mcef.model import MCEF

SEEDS = (0, 1)
@pytest.fixture(scope="module")
def book_root(tmp_path_factory):
    return make_root(tmp_path_factory.mktemp("project"))


@pytest.fixture(scope="module")
def tiny_config(book_root):
    return reporting.chapter_configs("tiny", device="cpu", root=book_root)[0]


@pytest.fixture(scope="module")
def settings(book_root):
    return reporting.training_settings("tiny", book_root)


@pytest.fixture(scope="module")
def trained(tiny_dataset, tiny_config, tmp_path_factory):
    """Two seeds of the tiny recipe, trained once for the module: (run root, the runs)."""
    root = tmp_path_factory.mktemp("runs")
    return root, train_or_reuse([tiny_config], SEEDS, tiny_dataset, root)


@pytest.fixture(scope="module")
def summaries(trained):
    return [run.summary for run in trained[1]]


def test_every_profile_scales_the_paper_recipe_into_the_mcef_run():
    for name in PROFILE_NAMES:
        config, recipe = reporting.chapter_configs(name, device="cpu", root=REPO)
        assert config.name == "mcef" and config.train.record_oracle_test and not config.train.progress
        table = reporting.recipe_table(config, recipe)
        changed = set(table.loc[table["changed"], "field"])
        changes = section_settings(name, "training_run", RunRecipe, REPO).changes
        expected = {f"{section}.{key}" for section, values in changes.items() for key in values
                    if key not in ("checkpoint_every",)}  # fmt: skip
        assert changed == expected, name
    full = reporting.chapter_configs("full", root=REPO)[0]
    assert full.train.epochs == 150 and full.model.hidden == 512
    assert reporting.loss_formula(full) == "0.3 CE(fused) + 0.1 ΣCE(modality heads) + 0.4 (−Soft-HGR)"


def test_training_settings_reject_unknown_and_missing_keys(tmp_path):
    make_root(tmp_path)
    (tmp_path / "configs" / "profiles" / "odd.yaml").write_text("description: x\nn_seeds: 1\ntraining: {epochz: 3}\n")
    with pytest.raises(ProfileError, match=r"odd\.yaml: section 'training' has unknown keys \['epochz'\]; lacks "
                                           r"the keys \['embedding_points', 'perplexity'\]"):
        reporting.training_settings("odd", tmp_path)


def test_train_or_reuse_trains_then_loads(trained, tiny_dataset, tiny_config):
    root, runs = trained
    assert [run.origin for run in runs] == ["trained now"] * len(SEEDS)
    assert [root / "mcef" / f"seed{s}" for s in SEEDS] == [run.run_dir for run in runs]
    stamps = [(root / "mcef" / f"seed{s}" / "summary.json").stat().st_mtime_ns for s in SEEDS]
    again = reporting.run_table(train_or_reuse([tiny_config], SEEDS, tiny_dataset, root))
    assert list(again["origin"]) == ["loaded"] * len(SEEDS)
    assert stamps == [(root / "mcef" / f"seed{s}" / "summary.json").stat().st_mtime_ns for s in SEEDS]
    assert (again["device"] == "cpu").all() and (again["epochs_run"] == 4).all()


def test_train_or_reuse_retrains_a_run_of_another_config(trained, tiny_dataset, tiny_config, tmp_path):
    root, _ = trained
    shutil.copytree(root / "mcef" / "seed0", tmp_path / "mcef" / "seed0")
    other = replace(tiny_config, train=replace(tiny_config.train, epochs=2, checkpoint_every=2))
    runs = reporting.run_table(train_or_reuse([other], [0], tiny_dataset, tmp_path))
    assert runs["origin"].iloc[0].startswith("retrained now") and "train.epochs: 4 -> 2" in runs["origin"].iloc[0]
    assert runs["epochs_run"].iloc[0] == 2
    assert len(list(tmp_path.glob("mcef/seed0.stale-*"))) == 1  # the other run is set aside, never deleted


def test_tidy_curves_hold_every_logged_term_for_both_splits_and_the_figure_draws_them(trained):
    _, runs = trained
    metrics = {run.seed: reporting.metrics_table(run.run_dir) for run in runs}
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


def test_protocol_gap_is_oracle_minus_selected_and_never_negative(summaries):
    gap = reporting.protocol_gap(dict(zip(SEEDS, summaries)))
    assert list(gap["seed"]) == list(SEEDS)
    for metric in reporting.GAP_METRICS:
        assert (gap[f"gap_{metric}"] >= 0).all()  # the oracle sees every epoch, the selected one included
        assert np.allclose(gap[f"selected_{metric}"], [s["test"][metric] for s in summaries])
        assert np.allclose(gap[f"gap_{metric}"], gap[f"oracle_{metric}"] - gap[f"selected_{metric}"])
    stats = reporting.gap_summary(gap)
    assert stats.loc["gap_accuracy", "n"] == len(SEEDS)
    assert stats.loc["gap_accuracy", "mean"] == pytest.approx(gap["gap_accuracy"].mean())
    assert stats.loc["gap_accuracy", "std"] == pytest.approx(gap["gap_accuracy"].std(ddof=1))


def test_results_table_puts_both_protocols_above_the_labelled_published_anchors(summaries):
    gap = reporting.protocol_gap(dict(zip(SEEDS, summaries)))
    table = reporting.results_table(gap, "synthetic")
    assert list(table["protocol"]) == [reporting.SELECTED_PROTOCOL, reporting.ORACLE_PROTOCOL] + ["published, test-selected"] * 2
    assert table.loc[0, "accuracy (%)"] == f"{100 * gap['selected_accuracy'].mean():.2f} ± {100 * gap['selected_accuracy'].std():.2f}"
    assert list(table["accuracy (%)"].iloc[2:]) == ["70.98", "73.95"]
    assert table["weighted F1 (%)"].iloc[3] == "74.08" and table["data"].iloc[0] == "synthetic"
    assert list(table["seeds"].iloc[:2]) == [len(SEEDS)] * 2
    fig = reporting.protocol_gap_figure(gap)
    assert len(fig.data) == 2 * len(reporting.GAP_METRICS)
    assert all(len(t.x) == len(SEEDS) for t in fig.data)


def test_protocol_gap_needs_the_oracle_record(summaries):
    with pytest.raises(ValueError, match="record_oracle_test"):
        reporting.protocol_gap({0: {**summaries[0], "oracle_best_test": None}})
    with pytest.raises(ValueError, match="no run summaries"):
        reporting.protocol_gap({})


def test_a_negative_protocol_gap_fails_the_page(summaries):
    oracle = {**summaries[0]["oracle_best_test"], "accuracy": summaries[0]["test"]["accuracy"] - 0.25}
    with pytest.raises(SelfCheckFailed, match="seed 1: the oracle accuracy .* is below the selected epoch's"):
        reporting.protocol_gap({0: summaries[0], 1: {**summaries[0], "oracle_best_test": oracle}})


def test_confusion_sums_to_the_test_support_and_per_class_f1_matches(summaries, tiny_dataset):
    support = tiny_dataset.class_counts("test")
    pooled = reporting.pooled_confusion(summaries)
    assert pooled.sum() == len(summaries) * support.sum()
    assert np.array_equal(pooled.sum(axis=1), len(summaries) * support)
    table = class_f1_over_seeds(summaries, tiny_dataset.label_names)
    expected = np.array([per_class_f1(np.array(s["test"]["confusion_matrix"])) for s in summaries])
    assert np.allclose(table["f1_mean"], expected.mean(axis=0))
    assert np.allclose(table["f1_std"], expected.std(axis=0, ddof=1))
    assert list(table["support"]) == list(support)
    heatmap = reporting.confusion_figure(pooled, tiny_dataset.label_names).data[0]
    rows = np.asarray(heatmap.z).sum(axis=1)
    assert np.allclose(rows[support > 0], 1.0)
    assert reporting.class_f1_figure(table).data[0].error_y.array is not None


def test_fused_embeddings_are_the_vectors_behind_the_recorded_result(trained, summaries, tiny_dataset):
    _, runs = trained
    _, model, _ = load_run(runs[0].run_dir, device="cpu")
    embeddings = reporting.fused_embeddings(model, tiny_dataset, "test", batch_size=2)
    test_ids = tiny_dataset.splits["test"]
    labels = np.concatenate([tiny_dataset.dialogues[d].labels for d in test_ids])
    assert embeddings.vectors.shape == (len(labels), model.config.hidden)
    assert np.array_equal(embeddings.labels, labels)
    assert list(dict.fromkeys(embeddings.dialogue_ids)) == list(test_ids)
    assert reporting.check_recorded_accuracy(embeddings, summaries[0]) == pytest.approx(summaries[0]["test"]["accuracy"])
    other = {**summaries[0], "test": {**summaries[0]["test"], "accuracy": summaries[0]["test"]["accuracy"] + 0.5}}
    with pytest.raises(SelfCheckFailed, match="its run recorded"):
        reporting.check_recorded_accuracy(embeddings, other)
    # The fused head applied to the captured vectors gives the predictions: they are its input.
    with torch.no_grad():
        logits = model.fused_head(torch.as_tensor(embeddings.vectors))
    assert np.array_equal(logits.argmax(-1).numpy(), embeddings.predictions)
    # The padded layout (the reference's computation) yields the same vectors.
    padded = MCEF(replace(model.config, packed=False))
    padded.load_state_dict(model.state_dict())
    again = reporting.fused_embeddings(padded, tiny_dataset, "test", batch_size=2)
    assert np.allclose(again.vectors, embeddings.vectors, atol=1e-4)


def test_tsne_map_silhouette_and_embedding_figure(trained, tiny_dataset, settings):
    _, runs = trained
    _, model, _ = load_run(runs[0].run_dir, device="cpu")
    embeddings = reporting.fused_embeddings(model, tiny_dataset, "test")
    chosen = reporting.subsample(len(embeddings.labels), settings.embedding_points, seed=0)
    assert len(chosen) == settings.embedding_points and len(set(chosen)) == len(chosen)
    points = reporting.tsne_map(embeddings.vectors[chosen], perplexity=settings.perplexity)
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
    full = reporting.chapter_configs("full", root=REPO)[0]
    assert full.loss.hgr_per_dim and "divided by k" in hgr_scaling(full) and "H = 512" in hgr_scaling(full)
    raw = with_changes(full, loss={"hgr_per_dim": False})
    assert "not divided by k" in hgr_scaling(raw)
    assert "reference" in hgr_scaling(with_changes(full, loss={"hgr_mode": "reference"}))


def test_confusion_and_per_class_facts_name_the_extremes():
    confusion = np.array([[8, 2, 0], [1, 5, 4], [0, 0, 10]])  # rows: true class; two seeds pooled
    facts = reporting.confusion_facts(confusion, ["a", "b", "c"], n_seeds=2)
    assert facts["confusion_total"] == 30 and facts["test_support"] == 15
    assert (facts["best_recall_label"], facts["best_recall"]) == ("c", 1.0)
    assert (facts["worst_recall_label"], facts["worst_recall"]) == ("b", 0.5)
    assert (facts["confused_true"], facts["confused_predicted"], facts["confused_share"]) == ("b", "c", 0.4)
    table = pd.DataFrame({"label": ["a", "b", "c"], "f1_mean": [0.7, 0.2, 0.9], "support": [5, 3, 7]})
    assert reporting.class_f1_facts(table) == {"best_f1_label": "c", "best_f1": 0.9, "worst_f1_label": "b",
                                                   "worst_f1": 0.2, "worst_f1_support": 3}
