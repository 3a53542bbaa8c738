"""The committed real-data artifacts (book/results/real_text) are complete, made by the committed configs, and the
chapter's tables aggregate them correctly. Fast: reads JSON only, needs neither the transcripts nor the features."""

import json
import shutil
import subprocess

import numpy as np
import pytest
from book_helpers import REPO, make_root

from mcef.book import real_results as rr
from mcef.book.common import SelfCheckFailed
from mcef.config import load_config, load_stored_config, save_config, with_changes
from mcef.experiments import aggregate, collect
from mcef.metrics import HEADLINE
from mcef.runs import config_digest
from mcef.train import read_metrics

SETTINGS = rr.real_text_settings("smoke", REPO)
FOUND = rr.corpora(SETTINGS, REPO)
ARTIFACTS = REPO / SETTINGS.artifacts
SEEDS = SETTINGS.seeds
CORPORA = list(FOUND)


def test_the_profiles_name_the_committed_configs_and_their_corpora():
    assert CORPORA == ["iemocap", "meld", "meld-sentiment"] and SEEDS == (0, 1, 2, 3, 4)
    assert FOUND["iemocap"].encoder == "all-mpnet-base-v2" and FOUND["meld"].encoder == "all-MiniLM-L6-v2"
    # MELD-3 is MELD's recipe with the sentiments as labels, nothing else changed
    assert with_changes(FOUND["meld-sentiment"].config, name="meld_text", data={"labels": "emotion"}) == FOUND["meld"].config
    assert all(corpus.config.data.standardise for corpus in FOUND.values())
    commands = rr.reproduce_commands(SETTINGS, FOUND)
    assert "mcef sweep --config configs/real/iemocap_text.yaml --seeds 0 1 2 3 4 --root book/results/real_text" in commands
    assert ("mcef features baseline --config configs/real/meld_text.yaml --out book/results/real_text/baseline_meld.json"
            in commands)


@pytest.mark.parametrize("corpus", CORPORA)
def test_artifacts_are_complete(corpus):
    assert rr.artifact_problems(ARTIFACTS, FOUND[corpus], SEEDS) == []
    runs = rr.read_runs(ARTIFACTS, FOUND[corpus], SEEDS)
    assert sorted(runs) == list(SEEDS)
    for seed, summary in runs.items():
        assert summary["selection"] == "validation weighted-F1"
        assert summary["test"]["epoch"] == summary["selected_epoch"]
        assert summary["data"]["name"] == corpus.removesuffix("-sentiment")
        assert len(summary["data"]["label_names"]) == (3 if corpus == "meld-sentiment" else 6 if corpus == "iemocap" else 7)
        assert FOUND[corpus].encoder in summary["data"]["description"]
        assert "standardised" in summary["data"]["description"]
        labels = summary["data"]["label_names"]
        assert set(summary["test"]["per_class_f1"]) == set(labels)
        assert summary["test"]["n_utterances"] == summary["data"]["splits"]["test"]["utterances"]


@pytest.mark.parametrize("corpus", CORPORA)
def test_selected_epoch_is_the_best_validation_epoch(corpus):
    for seed in SEEDS:
        run_dir = ARTIFACTS / FOUND[corpus].config.name / f"seed{seed}"
        history = read_metrics(run_dir)
        summary = json.loads((run_dir / "summary.json").read_text())
        scores = [h["valid_weighted_f1"] for h in history]
        assert history[int(np.argmax(scores))]["epoch"] == summary["selected_epoch"]
        assert summary["valid"]["weighted_f1"] == pytest.approx(max(scores))
        assert [h["epoch"] for h in history] == list(range(1, summary["epochs_run"] + 1))


@pytest.mark.parametrize("corpus", CORPORA)
def test_runs_were_made_by_the_committed_config(corpus):
    for seed in SEEDS:
        run_dir = ARTIFACTS / FOUND[corpus].config.name / f"seed{seed}"
        expected = with_changes(FOUND[corpus].config, train={"seed": seed})
        assert load_stored_config(run_dir / "config.yaml") == expected  # stored before model.activation: erf GELU
        assert load_stored_config(run_dir / "config.yaml").model.modalities == ("text",)
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["provenance"]["config_digest"] == config_digest(expected)


def test_no_checkpoints_are_committed():
    try:
        tracked = subprocess.run(["git", "ls-files", str(ARTIFACTS)], cwd=REPO, capture_output=True, text=True,
                                 check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    assert [path for path in tracked if path.endswith(".pt")] == []


@pytest.mark.parametrize("corpus", CORPORA)
def test_table_aggregates_the_runs(corpus):
    runs = list(rr.read_runs(ARTIFACTS, FOUND[corpus], SEEDS).values())
    rows = rr.result_rows(ARTIFACTS, FOUND[corpus], SEEDS)
    ours, oracle, baseline = rows[0], rows[1], rows[2]
    assert ours["n"] == oracle["n"] == len(SEEDS)
    for metric in HEADLINE:
        values = np.array([r["test"][metric] for r in runs])
        assert ours[metric] == pytest.approx(values.mean())
        assert ours[f"{metric}_std"] == pytest.approx(values.std(ddof=1))
        assert oracle[metric] == pytest.approx(np.mean([r["oracle_best_test"][metric] for r in runs]))
        assert oracle[metric] >= ours[metric] - 1e-12  # the oracle picks the best test epoch: never below
    # the experiments module agrees
    table = {(r["metric"]): r for r in aggregate(collect(ARTIFACTS, names=[FOUND[corpus].config.name]))}
    assert table["test_weighted_f1"]["mean"] == pytest.approx(ours["weighted_f1"])
    assert table["test_weighted_f1"]["std"] == pytest.approx(ours["weighted_f1_std"])
    assert baseline["weighted_f1"] == rr.read_baselines(ARTIFACTS, [corpus])[corpus]["test"]["weighted_f1"]
    anchors = [r for r in rows if r["model"].endswith("(published)")]
    assert anchors and all(r["protocol"] for r in anchors)
    per_class = rr.class_rows(ARTIFACTS, FOUND[corpus], SEEDS)
    assert per_class["support"].sum() == runs[0]["test"]["n_utterances"]
    for _, row in per_class.iterrows():
        assert row["f1_mean"] == pytest.approx(np.mean([r["test"]["per_class_f1"][row["label"]] for r in runs]))


@pytest.mark.parametrize("corpus", CORPORA)
def test_baseline_choice_is_the_best_validation_setting(corpus):
    baseline = rr.read_baselines(ARTIFACTS, [corpus])[corpus]
    best = max(baseline["search"], key=lambda s: s["valid_weighted_f1"])
    assert {"C": best["C"], "class_weight": best["class_weight"]} == baseline["chosen"]
    assert baseline["valid"]["weighted_f1"] == pytest.approx(best["valid_weighted_f1"])
    assert set(baseline["test"]) >= set(HEADLINE)


def test_tuning_record_holds_validation_figures_only():
    records = json.loads((ARTIFACTS / "tuning.json").read_text())
    assert records
    for record in records:
        assert set(record["valid"]) == set(HEADLINE)
        assert "test" not in json.dumps(record)
    assert len(rr.read_tuning(ARTIFACTS)) == len(records)


def test_results_table_formats_percent_and_marks_missing_figures():
    rows = [{"model": "a", "protocol": "p", "n": 2, "accuracy": 0.5, "accuracy_std": 0.01, "weighted_f1": 0.25,
             "weighted_f1_std": None, "macro_f1": None, "macro_f1_std": None}]
    table = rr.results_table(rows)
    assert table.loc[0, "accuracy"] == "50.00 ± 1.00"
    assert table.loc[0, "weighted-F1"] == "25.00"
    assert table.loc[0, "macro-F1"] == "-"


def test_recipe_table_shows_each_committed_config_field():
    table = rr.recipe_table(FOUND)
    assert list(table.index) == list(rr.RECIPE_FIELDS) and list(table.columns) == CORPORA
    for corpus in CORPORA:
        config = load_config(REPO / FOUND[corpus].config_path)
        assert table.loc["model.hidden", corpus] == config.model.hidden
        assert table.loc["train.lr", corpus] == config.train.lr
        assert table.loc["data.text.encoder", corpus] == FOUND[corpus].encoder
    assert "IEMOCAP: all-mpnet-base-v2, standardised" in rr.features_sentence(FOUND)


def test_split_sizes_and_provenance_quote_the_recorded_splits():
    runs = {corpus: rr.read_runs(ARTIFACTS, FOUND[corpus], SEEDS) for corpus in CORPORA}
    seed = SEEDS[0]
    text = rr.split_sizes(runs, seed)
    for corpus in CORPORA:
        for split, sizes in runs[corpus][seed]["data"]["splits"].items():
            assert f"{split} {sizes['dialogues']} dialogues / {sizes['utterances']} utterances" in text
    assert text.index("IEMOCAP:") < text.index("MELD:")
    note = rr.provenance_note(SETTINGS, FOUND, runs)
    assert note.startswith("**Figures:** read from the committed run artifacts in `book/results/real_text`")
    assert runs["iemocap"][seed]["device"] in note and text in note
    assert all(f"`{command}`" in note for command in rr.reproduce_commands(SETTINGS, FOUND))


@pytest.mark.parametrize("corpus", CORPORA)
def test_result_facts_are_the_rows_in_percent(corpus):
    rows = rr.result_rows(ARTIFACTS, FOUND[corpus], SEEDS)
    runs = rr.read_runs(ARTIFACTS, FOUND[corpus], SEEDS)
    facts = rr.result_facts(corpus, rows, runs)
    corpus = corpus.replace("-", "_")  # the glue names' spelling of meld-sentiment
    assert facts[f"{corpus}_weighted_f1"] == pytest.approx(100 * rows[0]["weighted_f1"])
    assert facts[f"{corpus}_logistic_macro_f1"] == pytest.approx(100 * rows[2]["macro_f1"])
    gain = 100 * (rows[0]["weighted_f1"] - rows[2]["weighted_f1"])
    assert facts[f"{corpus}_gain"] == pytest.approx(abs(gain)) and facts[f"{corpus}_side"] == ("above" if gain >= 0 else "below")
    assert facts[f"{corpus}_minutes"] == pytest.approx(sum(r["wall_time_s"] for r in runs.values()) / 60)
    assert facts[f"{corpus}_n"] == len(SEEDS)


def test_per_class_and_seed_tables_stack_the_corpora():
    per_class = {corpus: rr.class_rows(ARTIFACTS, FOUND[corpus], SEEDS) for corpus in CORPORA}
    shown = rr.per_class_display(per_class)
    assert list(shown.columns) == ["class", "support", "MCEF F1", "logistic F1"]
    assert len(shown.loc["MELD"]) == len(per_class["meld"]) and " ± " in shown.iloc[0]["MCEF F1"]
    assert list(shown.loc["MELD-3", "class"]) == ["neutral", "positive", "negative"]  # MELD's sentiments, labelled MELD-3
    seeds = rr.seed_tables(ARTIFACTS, FOUND, SEEDS)
    assert list(seeds.loc["IEMOCAP", "seed"]) == list(SEEDS)
    assert len(rr.per_class_figure(per_class).data) == 2 * len(CORPORA)


@pytest.fixture
def copied(tmp_path):
    """A project root holding a copy of the committed configs and results."""
    root = make_root(tmp_path)
    shutil.copytree(ARTIFACTS, root / SETTINGS.artifacts)
    return root


def test_incomplete_artifacts_fail_the_chapter_with_the_commands_that_rebuild_them(copied):
    rr.chapter_artifacts("smoke", copied)  # complete: no error
    (copied / SETTINGS.artifacts / "meld_text" / "seed3" / "summary.json").unlink()
    (copied / SETTINGS.artifacts / "baseline_iemocap.json").unlink()
    with pytest.raises(SelfCheckFailed) as failure:
        rr.chapter_artifacts("smoke", copied)
    message = str(failure.value)
    assert "meld_text/seed3/summary.json is missing" in message and "baseline_iemocap.json is missing" in message
    assert "mcef sweep --config configs/real/meld_text.yaml --seeds 0 1 2 3 4 --root book/results/real_text" in message


def test_a_run_made_by_another_config_is_named_with_the_field_that_differs(copied):
    corpus = FOUND["iemocap"]
    run_dir = copied / SETTINGS.artifacts / corpus.config.name / "seed1"
    other = with_changes(corpus.config, train={"seed": 1, "lr": 0.5})
    save_config(other, run_dir / "config.yaml")
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["provenance"] = {**summary.get("provenance", {}), "config_digest": config_digest(other)}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    problems = rr.artifact_problems(copied / SETTINGS.artifacts, corpus, SEEDS)
    assert len(problems) == 1 and "made by another config than configs/real/iemocap_text.yaml" in problems[0]
    assert "train.lr: 0.5 -> 0.001" in problems[0]
