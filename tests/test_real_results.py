"""The committed real-data artifacts (book/results/real_text) are complete and consistent, and the chapter's table
aggregates them correctly. Fast: reads JSON only, needs neither the transcripts nor the cached features."""

import json

import numpy as np
import pytest

from mcef import real_results as rr
from mcef.config import load_config, with_changes
from mcef.data import SyntheticConfig, make_synthetic
from mcef.experiments import aggregate, collect
from mcef.train import read_metrics

ARTIFACTS = rr.PROJECT_ROOT / "book" / "results" / "real_text"
CORPORA = list(rr.CONFIGS)


@pytest.mark.parametrize("corpus", CORPORA)
def test_artifacts_are_complete(corpus):
    assert rr.artifact_problems(ARTIFACTS, corpus) == []
    runs = rr.read_runs(ARTIFACTS, corpus)
    assert sorted(runs) == list(rr.SEEDS)
    for seed, summary in runs.items():
        assert summary["selection"] == "validation weighted-F1"
        assert summary["test"]["epoch"] == summary["selected_epoch"]
        assert summary["data"]["name"] == corpus
        assert rr.ENCODERS[corpus] in summary["data"]["description"]
        assert "standardised" in summary["data"]["description"]
        labels = summary["data"]["label_names"]
        assert set(summary["test"]["per_class_f1"]) == set(labels)
        assert summary["test"]["n_utterances"] == summary["data"]["splits"]["test"]["utterances"]


@pytest.mark.parametrize("corpus", CORPORA)
def test_selected_epoch_is_the_best_validation_epoch(corpus):
    for seed in rr.SEEDS:
        run_dir = ARTIFACTS / rr.config_name(corpus) / f"seed{seed}"
        history = read_metrics(run_dir)
        summary = json.loads((run_dir / "summary.json").read_text())
        scores = [h["valid_weighted_f1"] for h in history]
        assert history[int(np.argmax(scores))]["epoch"] == summary["selected_epoch"]
        assert summary["valid"]["weighted_f1"] == pytest.approx(max(scores))
        assert [h["epoch"] for h in history] == list(range(1, summary["epochs_run"] + 1))


@pytest.mark.parametrize("corpus", CORPORA)
def test_run_configs_reload_to_the_committed_config(corpus):
    for seed in rr.SEEDS:
        saved = load_config(ARTIFACTS / rr.config_name(corpus) / f"seed{seed}" / "config.yaml")
        assert saved == with_changes(rr.real_config(corpus), train={"seed": seed})
        assert saved.data.modalities == ("text",)


def test_no_checkpoints_are_committed():
    assert list(ARTIFACTS.rglob("*.pt")) == []


@pytest.mark.parametrize("corpus", CORPORA)
def test_table_aggregates_the_runs(corpus):
    runs = list(rr.read_runs(ARTIFACTS, corpus).values())
    rows = rr.result_rows(ARTIFACTS, corpus)
    ours, oracle, baseline = rows[0], rows[1], rows[2]
    assert ours["n"] == oracle["n"] == len(rr.SEEDS)
    for metric in rr.HEADLINE:
        values = np.array([r["test"][metric] for r in runs])
        assert ours[metric] == pytest.approx(values.mean())
        assert ours[f"{metric}_std"] == pytest.approx(values.std(ddof=1))
        assert oracle[metric] == pytest.approx(np.mean([r["oracle_best_test"][metric] for r in runs]))
        assert oracle[metric] >= ours[metric] - 1e-12  # the oracle picks the best test epoch: never below
    # the experiments module agrees
    table = {(r["metric"]): r for r in aggregate(collect(ARTIFACTS, names=[rr.config_name(corpus)]))}
    assert table["test_weighted_f1"]["mean"] == pytest.approx(ours["weighted_f1"])
    assert table["test_weighted_f1"]["std"] == pytest.approx(ours["weighted_f1_std"])
    assert baseline["weighted_f1"] == rr.read_baselines(ARTIFACTS)[corpus]["test"]["weighted_f1"]
    anchors = [r for r in rows if r["model"].endswith("(published)")]
    assert anchors and all(r["protocol"] for r in anchors)
    per_class = rr.per_class_rows(ARTIFACTS, corpus)
    assert per_class["support"].sum() == runs[0]["test"]["n_utterances"]
    for _, row in per_class.iterrows():
        assert row["mcef_f1"] == pytest.approx(np.mean([r["test"]["per_class_f1"][row["class"]] for r in runs]))


@pytest.mark.parametrize("corpus", CORPORA)
def test_baseline_choice_is_the_best_validation_setting(corpus):
    baseline = rr.read_baselines(ARTIFACTS)[corpus]
    best = max(baseline["search"], key=lambda s: s["valid_weighted_f1"])
    assert {"C": best["C"], "class_weight": best["class_weight"]} == baseline["chosen"]
    assert baseline["valid"]["weighted_f1"] == pytest.approx(best["valid_weighted_f1"])
    assert set(baseline["test"]) >= set(rr.HEADLINE)


def test_tuning_record_holds_validation_figures_only():
    records = json.loads((ARTIFACTS / "tuning.json").read_text())
    assert records
    for record in records:
        assert set(record["valid"]) == set(rr.HEADLINE)
        assert "test" not in json.dumps(record)


def test_results_table_formats_percent_and_marks_missing_figures():
    rows = [{"model": "a", "protocol": "p", "n": 2, "accuracy": 0.5, "accuracy_std": 0.01, "weighted_f1": 0.25,
             "weighted_f1_std": None, "macro_f1": None, "macro_f1_std": None}]
    table = rr.results_table(rows)
    assert table.loc[0, "accuracy"] == "50.00 ± 1.00"
    assert table.loc[0, "weighted-F1"] == "25.00"
    assert table.loc[0, "macro-F1"] == "-"


def test_standardise_uses_training_statistics_and_copies():
    dataset = make_synthetic(SyntheticConfig(n_train=10, n_test=4, dims=(8, 4, 4), min_length=3, max_length=6))
    before = {k: d.features["text"].copy() for k, d in dataset.dialogues.items()}
    scaled = rr.standardise(dataset)
    train = np.concatenate([d.features["text"] for d in scaled.split("train")])
    assert np.allclose(train.mean(axis=0), 0, atol=1e-5) and np.allclose(train.std(axis=0), 1, atol=1e-3)
    assert all(np.array_equal(before[k], d.features["text"]) for k, d in dataset.dialogues.items())
    assert scaled.dialogues.keys() == dataset.dialogues.keys() and scaled.splits == dataset.splits


def test_recipe_table_shows_each_committed_config_field():
    table = rr.recipe_table()
    assert list(table.index) == list(rr.RECIPE_FIELDS) and list(table.columns) == CORPORA
    for corpus in CORPORA:
        config = load_config(rr.CONFIGS[corpus])
        assert table.loc["model.hidden", corpus] == config.model.hidden
        assert table.loc["train.lr", corpus] == config.train.lr


def test_split_sizes_and_provenance_quote_the_recorded_splits():
    runs = {corpus: rr.read_runs(ARTIFACTS, corpus) for corpus in CORPORA}
    seed = rr.SEEDS[0]
    text = rr.split_sizes(runs, seed)
    for corpus in CORPORA:
        for split, sizes in runs[corpus][seed]["data"]["splits"].items():
            assert f"{split} {sizes['dialogues']} dialogues / {sizes['utterances']} utterances" in text
    assert text.index("IEMOCAP:") < text.index("MELD:")
    note = rr.provenance_note("read back", runs, seed)
    assert note.startswith("**Figures:** read back") and runs["iemocap"][seed]["device"] in note and text in note


@pytest.mark.parametrize("corpus", CORPORA)
def test_result_facts_are_the_rows_in_percent(corpus):
    rows = rr.result_rows(ARTIFACTS, corpus)
    runs = rr.read_runs(ARTIFACTS, corpus)
    facts = rr.result_facts(corpus, rows, runs)
    assert facts[f"{corpus}_weighted_f1"] == pytest.approx(100 * rows[0]["weighted_f1"])
    assert facts[f"{corpus}_logistic_macro_f1"] == pytest.approx(100 * rows[2]["macro_f1"])
    gain = 100 * (rows[0]["weighted_f1"] - rows[2]["weighted_f1"])
    assert facts[f"{corpus}_gain"] == pytest.approx(abs(gain)) and facts[f"{corpus}_side"] == ("above" if gain >= 0 else "below")
    assert facts[f"{corpus}_minutes"] == pytest.approx(sum(r["wall_time_s"] for r in runs.values()) / 60)
    assert facts[f"{corpus}_n"] == len(rr.SEEDS)


def test_per_class_and_seed_tables_stack_the_corpora():
    per_class = {corpus: rr.per_class_rows(ARTIFACTS, corpus) for corpus in CORPORA}
    shown = rr.per_class_display(per_class)
    assert list(shown.columns) == ["class", "support", "MCEF F1", "logistic F1"]
    assert len(shown.loc["MELD"]) == len(per_class["meld"]) and " ± " in shown.iloc[0]["MCEF F1"]
    seeds = rr.seed_tables(ARTIFACTS)
    assert list(seeds.loc["IEMOCAP", "seed"]) == list(rr.SEEDS)
