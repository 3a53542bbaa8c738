"""Chapter 7's fine-tuned grid: a part of it may be committed (the rest named with its commands), every run present
is checked against the committed config, and the rows are the runs' own figures. Fast: JSON only."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
from book_helpers import REPO, make_root

from mcef.book import real_results as rr
from mcef.book.common import SelfCheckFailed
from mcef.config import save_config, with_changes
from mcef.runs import config_digest

SETTINGS = rr.finetuned_settings("smoke", REPO)


def scores(weighted_f1: float) -> dict:
    return {"accuracy": weighted_f1 + 0.01, "weighted_f1": weighted_f1, "macro_f1": weighted_f1 - 0.02}


def write_run(root, settings, seed: int, mcef_f1: float, valid_f1: list[float], data: dict) -> rr.Corpus:
    """A run of ``settings``' IEMOCAP config as `mcef sweep` writes it (config, metrics, summary): the selected epoch
    is the best of ``valid_f1``; ``data`` is the summary's data record. Returns the corpus."""
    corpus = rr.corpora(settings, root)["iemocap"]
    config = with_changes(corpus.config, train={"seed": seed})
    run_dir = root / settings.artifacts / corpus.config.name / f"seed{seed}"
    run_dir.mkdir(parents=True)
    save_config(config, run_dir / "config.yaml")
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e, "valid_weighted_f1": f}) + "\n"
                                                   for e, f in enumerate(valid_f1, start=1)))
    best = 1 + int(np.argmax(valid_f1))
    summary = {"name": corpus.config.name, "seed": seed, "selected_epoch": best, "test": {**scores(mcef_f1), "epoch": best},
               "valid": scores(max(valid_f1)),
               "data": data, "provenance": {"config_digest": config_digest(config)}}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return corpus


def fine_tuning_record(own_f1: float) -> dict:
    """A run's ``data`` record of a two-epoch fine-tuning whose own classifier scores ``own_f1`` on every split."""
    history = [{"epoch": 1, "train_loss": 1.2, "valid_accuracy": 0.5, "valid_weighted_f1": 0.55, "seconds": 540.0},
               {"epoch": 2, "train_loss": 0.9, "valid_accuracy": 0.6, "valid_weighted_f1": 0.61, "seconds": 560.0}]
    encoding = {"fine_tuned": True, "class_weights": "none", "selected_epoch": 2,
                "candidates": {"none": {"epoch": 2, "history": history, "best_epoch": 2, "best_valid_weighted_f1": 0.61}},
                "classifier": {split: scores(own_f1) for split in ("train", "valid", "test")}}
    return {"text_features": {"encoding": encoding}}


def fake_run(root, seed: int, mcef_f1: float, own_f1: float, logistic_f1: float) -> None:
    """A run of the committed fine-tuned config (its fine-tuning recorded) and its baseline."""
    corpus = write_run(root, SETTINGS, seed, mcef_f1, [0.5, 0.6, 0.55], fine_tuning_record(own_f1))
    path = rr.finetuned_baseline_path(root / SETTINGS.artifacts, corpus, seed)
    path.write_text(json.dumps({"test": scores(logistic_f1)}))


def control_run(root, seed: int, mcef_f1: float) -> None:
    """A run of the committed control config (the fine-tuned input, the encoder as shipped)."""
    write_run(root, rr.section_settings("smoke", "real_text_controls", rr.RealTextSettings, root), seed, mcef_f1,
              [0.5], {})


@pytest.fixture
def root(tmp_path):
    """A project root with the committed configs and real-text results, without any fine-tuned run."""
    root = make_root(tmp_path)
    shutil.copytree(REPO / SETTINGS.artifacts, root / SETTINGS.artifacts,
                    ignore=shutil.ignore_patterns("*_finetuned", "*_no_context", "*_no_context_long", "*_window_frozen", "*_mpnet",
                                                  "baseline_*_finetuned_*"))
    return root


def test_the_profile_names_the_fine_tuned_config_and_it_fine_tunes_on_training_data_only():
    found = rr.corpora(SETTINGS, REPO)
    assert list(found) == ["iemocap", "meld", "meld-sentiment"]
    assert found["meld-sentiment"].config.data.labels == "sentiment"
    for corpus in found.values():
        tune = corpus.config.data.text
        assert tune.context == "window" and tune.window_before > 0 and tune.finetune is not None
        assert tune.finetune.seed is None  # each run's seed fine-tunes its own encoder
    assert SETTINGS.seeds == (0, 1, 2, 3, 4)


def test_the_committed_fine_tuned_runs_are_consistent():
    artifacts, _, found, runs, missing = rr.chapter_finetuned("smoke", REPO)  # raises on any inconsistent run
    for name in found:
        assert sorted([*runs[name], *missing[name]]) == list(SETTINGS.seeds)
        for summary in runs[name].values():
            record = rr.encoding_record(summary)
            assert record["selected_epoch"] == record["candidates"][record["class_weights"]]["best_epoch"]
            assert set(record["classifier"]) == {"train", "valid", "test"}
    for arm in (rr.chapter_controls, rr.chapter_no_context, rr.chapter_longer, rr.chapter_larger):  # each raises on
        # an inconsistent run
        _, settings, _, runs, missing = arm("smoke", REPO)
        assert all(sorted([*runs[name], *missing[name]]) == list(settings.seeds) for name in runs)


def test_no_run_committed_names_every_seed_and_its_commands(root):
    _, settings, found, runs, missing = rr.chapter_finetuned("smoke", root)
    assert runs == {"iemocap": {}, "meld": {}, "meld-sentiment": {}}
    assert missing == {name: [0, 1, 2, 3, 4] for name in ("iemocap", "meld", "meld-sentiment")}
    text = rr.pending_sentence(settings, found["iemocap"], missing["iemocap"], 0)
    assert text.startswith("**0 of 5 planned seeds**")
    assert ("`mcef sweep --config configs/real/iemocap_finetuned.yaml --seeds 0 1 2 3 4 --root book/results/real_text`"
            in text)
    assert "--seed S --out book/results/real_text/baseline_iemocap_finetuned_seedS.json" in text
    assert rr.pending_sentence(settings, found["iemocap"], [], 5) == ""
    assert "are committed; seed 4 is made by `mcef sweep --config configs/real/iemocap_finetuned.yaml --seeds 4 " in (
        rr.pending_sentence(settings, found["iemocap"], [4], 4))


def test_rows_and_facts_are_the_runs_figures(root):
    fake_run(root, 0, 0.64, 0.60, 0.58)
    fake_run(root, 2, 0.66, 0.62, 0.59)
    artifacts, settings, found, runs, missing = rr.chapter_finetuned("smoke", root)
    assert sorted(runs["iemocap"]) == [0, 2] and missing["iemocap"] == [1, 3, 4] and runs["meld"] == {}
    own, mcef, logistic = rr.finetuned_rows(artifacts, found["iemocap"], runs["iemocap"])
    assert mcef["n"] == 2 and mcef["weighted_f1"] == pytest.approx(0.65)
    assert mcef["weighted_f1_std"] == pytest.approx(np.std([0.64, 0.66], ddof=1))
    assert own["weighted_f1"] == pytest.approx(0.61) and logistic["macro_f1"] == pytest.approx(0.565)
    frozen_corpus = rr.corpora(rr.real_text_settings("smoke", root), root)["iemocap"]
    frozen = rr.frozen_rows(artifacts, frozen_corpus, (0, 1, 2, 3, 4))
    committed = rr.result_rows(artifacts, frozen_corpus, (0, 1, 2, 3, 4))
    assert frozen[0]["weighted_f1"] == pytest.approx(committed[0]["weighted_f1"])
    facts = rr.finetuned_facts("iemocap", [own, mcef, logistic], frozen, runs["iemocap"])
    assert facts["iemocap_ft_weighted_f1"] == pytest.approx(65.0) and facts["iemocap_ft_n"] == 2
    gain = 65.0 - 100 * frozen[0]["weighted_f1"]
    assert facts["iemocap_ft_gain"] == pytest.approx(abs(gain))
    assert facts["iemocap_ft_side"] == ("above" if gain >= 0 else "below")
    assert facts["iemocap_ft_minutes"] == pytest.approx(1100 / 60)
    assert facts["iemocap_ft_own_train_weighted_f1"] == pytest.approx(61.0) and facts["iemocap_ft_mcef_epoch"] == 2
    assert facts["iemocap_ft_kept_last"] == 2  # both fake fine-tunings kept their last epoch
    sentence = rr.finetuned_sentence("iemocap", facts, found["iemocap"], frozen_corpus)
    assert "MCEF on frozen all-mpnet-base-v2 features" in sentence
    one = rr.finetuned_sentence("iemocap", {**facts, "iemocap_ft_n": 1}, found["iemocap"], frozen_corpus)
    assert "65.00 over 1 seed," in one  # no spread from one seed
    assert "65.00 ± 1.41 over 2 seeds" in sentence and "own classifier scores 61.00" in sentence
    assert "In 2 of 2 seeds the encoder's validation score was best at the last epoch it ran (of at most 3" in sentence
    alone = rr.finetuned_facts("iemocap", [own, mcef, logistic], [], runs["iemocap"])  # no frozen recipe (MELD-3)
    assert "iemocap_ft_gain" not in alone and "iemocap_frozen_weighted_f1" not in alone
    assert {k: v for k, v in facts.items() if k in alone} == alone
    alone_sentence = rr.finetuned_sentence("iemocap", alone, found["iemocap"], None)
    assert "65.00 ± 1.41 over 2 seeds. The fine-tuned encoder's own" in alone_sentence and "frozen" not in alone_sentence
    history = rr.history_table(runs["iemocap"])
    assert list(history["kept"]) == ["", "yes", "", "yes"] and list(history["seed"]) == [0, 0, 2, 2]
    shown = rr.results_table([own, mcef, logistic, *frozen, *rr.anchor_rows("iemocap")])
    assert shown["weighted-F1"].iloc[-1] == "66.20" and shown["accuracy"].iloc[-1] == "66.05"  # DialogueCRN
    assert shown["accuracy"].iloc[5] == "-" and shown["model"].iloc[5].startswith("EmoBERTa")
    assert all(set(a) >= {"corpus", "model", "weighted_f1", "protocol"} for a in rr.FINE_TUNED_ANCHORS)


def test_a_run_of_another_config_or_without_its_baseline_fails_the_chapter(root):
    fake_run(root, 1, 0.64, 0.60, 0.58)
    corpus = rr.corpora(SETTINGS, root)["iemocap"]
    run_dir = root / SETTINGS.artifacts / corpus.config.name / "seed1"
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["provenance"]["config_digest"] = "0" * 16
    (run_dir / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(SelfCheckFailed, match="made by another config") as failure:
        rr.chapter_finetuned("smoke", root)
    assert "--seeds 1 --root" in str(failure.value)
    summary["provenance"]["config_digest"] = config_digest(with_changes(corpus.config, train={"seed": 1}))
    (run_dir / "summary.json").write_text(json.dumps(summary))
    rr.finetuned_baseline_path(root / SETTINGS.artifacts, corpus, 1).unlink()
    with pytest.raises(SelfCheckFailed, match="baseline_iemocap_finetuned_seed1.json is missing"):
        rr.chapter_finetuned("smoke", root)


def test_the_measured_epoch_times_are_tabled_with_their_machine():
    table, record = rr.speed_table(REPO / SETTINGS.artifacts)
    assert set(table["encoder"]) == {"all-MiniLM-L6-v2", "all-mpnet-base-v2"} and set(table["corpus"]) == {"IEMOCAP", "MELD"}
    assert (table["min / epoch"] > 0).all() and record["machine"]["cores"] >= 1 and record["steps"] >= 1


def test_a_corpus_is_its_transcript_file_and_label_set_and_two_configs_of_one_corpus_fail(root):
    found = rr.corpora(SETTINGS, root)  # the committed MELD configs: one of the emotions, one of the sentiments
    assert list(found) == ["iemocap", "meld", "meld-sentiment"]
    assert (found["meld"].config.data.labels, found["meld-sentiment"].config.data.labels) == ("emotion", "sentiment")
    assert with_changes(found["meld-sentiment"].config, name="meld_finetuned", data={"labels": "emotion"}) == found["meld"].config
    for corpus, config in (("meld", "meld_finetuned"), ("meld-sentiment", "meld_sentiment_finetuned")):
        copy = root / "configs" / "real" / "copy.yaml"
        save_config(with_changes(found[corpus].config, name="copy"), copy)
        twice = rr.RealTextSettings(SETTINGS.artifacts, (*SETTINGS.configs, str(copy.relative_to(root))), SETTINGS.seeds)
        with pytest.raises(ValueError, match=rf"copy.yaml and configs/real/{config}.yaml are both configs of "
                                             rf"corpus '{corpus}'"):
            rr.corpora(twice, root)


def test_the_controls_read_the_fine_tuned_input_with_the_encoder_as_shipped_and_say_what_fine_tuning_adds(root):
    _, settings, found, runs, missing = rr.chapter_controls("smoke", root)
    assert runs == {"iemocap": {}, "meld": {}, "meld-sentiment": {}} and missing["meld-sentiment"] == [0, 1, 2, 3, 4]
    for name, corpus in found.items():  # the fine-tuned config's input and MCEF recipe, without the fine-tuning
        tuned = rr.corpora(SETTINGS, root)[name].config
        assert corpus.config.data.text == dataclasses.replace(tuned.data.text, finetune=None)
        assert (corpus.config.model, corpus.config.loss, corpus.config.train) == (tuned.model, tuned.loss, tuned.train)
    assert rr.control_rows(found["iemocap"], runs["iemocap"]) == [] and rr.control_sentence("iemocap", {}, []) == ""
    control_run(root, 0, 0.60)
    control_run(root, 3, 0.62)
    _, _, found, runs, missing = rr.chapter_controls("smoke", root)
    assert sorted(runs["iemocap"]) == [0, 3] and missing["iemocap"] == [1, 2, 4]
    rows = rr.control_rows(found["iemocap"], runs["iemocap"])
    assert rows[0]["n"] == 2 and rows[0]["weighted_f1"] == pytest.approx(0.61)
    text = rr.control_sentence("iemocap", {"iemocap_ft_weighted_f1": 65.0}, rows)
    assert "61.00 ± 1.41 on IEMOCAP over 2 seeds, so fine-tuning adds 4.0 points" in text
    assert "costs 6.0 points" in rr.control_sentence("iemocap", {"iemocap_ft_weighted_f1": 55.0}, rows)
    assert "window" not in text.split("points.")[-1]  # the frozen recipe reads another encoder: no window figure
    frozen = rr.corpora(rr.real_text_settings("smoke", root), root)["iemocap"]  # all-mpnet-base-v2, not MiniLM
    assert "window" not in rr.control_sentence("iemocap", {"iemocap_ft_weighted_f1": 65.0}, rows, found["iemocap"],
                                               frozen).split("points.")[-1]
    same = rr.control_sentence("iemocap", {"iemocap_ft_weighted_f1": 65.0, "iemocap_frozen_weighted_f1": 63.5}, rows,
                               found["iemocap"], found["iemocap"])
    assert same.endswith("the window itself hurts: 2.5 points against the utterance read alone (63.50).")
    run_dir = root / settings.artifacts / "iemocap_window_frozen" / "seed3"
    (run_dir / "metrics.jsonl").write_text(json.dumps({"epoch": 2, "valid_weighted_f1": 0.5}) + "\n")
    with pytest.raises(SelfCheckFailed, match="is not the best validation weighted-F1 epoch") as failure:
        rr.chapter_controls("smoke", root)
    assert "mcef sweep --config configs/real/iemocap_window_frozen.yaml --seeds 3" in str(failure.value)
    assert "baseline" not in str(failure.value)
    assert rr.pending_sentence(settings, found["iemocap"], [1], 4, baselines=False).endswith("(resumable).")


def test_the_no_context_arm_fine_tunes_on_the_utterance_alone_and_says_what_the_window_adds(root):
    _, settings, found, runs, missing = rr.chapter_no_context("smoke", root)
    assert runs == {"iemocap": {}, "meld": {}, "meld-sentiment": {}} and missing["meld-sentiment"] == [0, 1, 2, 3, 4]
    for name, corpus in found.items():
        alone, tuned = corpus.config, rr.corpora(SETTINGS, root)[name].config
        assert (alone.data.text.context, alone.data.text.window_before) == ("none", 0)  # the only change: no window
        window = dataclasses.replace(alone.data.text, context="window", window_before=2)
        assert dataclasses.replace(alone, name=tuned.name, data=dataclasses.replace(alone.data, text=window)) == tuned
    assert rr.no_context_rows(found["iemocap"], {}) == [] and rr.no_context_sentence("iemocap", {}, [], {}) == ""
    for seed, mcef_f1, own_f1 in ((1, 0.58, 0.55), (2, 0.60, 0.57)):
        write_run(root, settings, seed, mcef_f1, [0.5, 0.6], fine_tuning_record(own_f1))
    _, _, found, runs, missing = rr.chapter_no_context("smoke", root)
    assert sorted(runs["iemocap"]) == [1, 2] and missing["iemocap"] == [0, 3, 4]
    own, mcef = rr.no_context_rows(found["iemocap"], runs["iemocap"])
    assert (mcef["n"], mcef["weighted_f1"], own["weighted_f1"]) == (2, pytest.approx(0.59), pytest.approx(0.56))
    facts = {"iemocap_ft_weighted_f1": 61.0, "iemocap_ft_own_weighted_f1": 55.0, "iemocap_ft_valid_weighted_f1": 61.0}
    text = rr.no_context_sentence("iemocap", facts, [own, mcef], runs["iemocap"])
    assert text.endswith("59.00 ± 1.41 on IEMOCAP over 2 seeds (its own classifier 56.00 ± 1.41), so the window "
                         "adds MCEF 2.0 points and costs the encoder's own classifier 1.0. On validation, where the "
                         "choice is made, MCEF scores 61.00 with the window and 60.00 without it, so a validation "
                         "choice keeps the window.")  # validation: the best of [0.5, 0.6] in every run
    facts["iemocap_ft_valid_weighted_f1"] = 59.5
    assert rr.no_context_sentence("iemocap", facts, [own, mcef], runs["iemocap"]).endswith("reads the utterance alone.")
    pending = rr.pending_sentence(settings, found["iemocap"], missing["iemocap"], 2, baselines=False)
    assert "--config configs/real/iemocap_finetuned_no_context.yaml --seeds 0 3 4 " in pending


def assert_only_change(config, other, **text_fields) -> None:
    """``config`` is ``other`` but for its name and the ``data.text`` fields that turn it into ``other``."""
    text = dataclasses.replace(config.data.text, **text_fields)
    assert dataclasses.replace(config, name=other.name, data=dataclasses.replace(config.data, text=text)) == other


def longer_record(best_epoch: int, epochs: int) -> dict:
    """:func:`fine_tuning_record` of a fine-tuning that ran ``epochs`` epochs and kept ``best_epoch``."""
    data = fine_tuning_record(0.6)
    candidate = data["text_features"]["encoding"]["candidates"]["none"]
    candidate["history"] = [{**candidate["history"][0], "epoch": e} for e in range(1, epochs + 1)]
    candidate["best_epoch"] = best_epoch
    return data


def test_the_longer_arm_only_fine_tunes_the_utterance_alone_longer_and_says_what_it_adds(root):
    _, settings, found, runs, missing = rr.chapter_longer("smoke", root)
    assert runs == {"iemocap": {}, "meld": {}} and missing["meld"] == [0, 1, 2, 3, 4]
    _, alone_settings, alone_found, _, _ = rr.chapter_no_context("smoke", root)
    for name, corpus in found.items():
        longer, alone = corpus.config, alone_found[name].config
        tune = longer.data.text.finetune
        assert (tune.epochs, tune.early_stopping) == (6, 2) and alone.data.text.finetune.epochs == 3
        # the only change: more epochs, more patience
        assert_only_change(longer, alone, finetune=dataclasses.replace(tune, epochs=3, early_stopping=1))
    assert rr.longer_rows(found["iemocap"], {}) == [] and rr.longer_sentence("iemocap", found["iemocap"], [], {}, [], {}) == ""
    for seed, mcef_f1, kept, ran in ((0, 0.62, 4, 6), (1, 0.60, 5, 5)):
        write_run(root, settings, seed, mcef_f1, [0.5, 0.62], longer_record(kept, ran))
    for seed in (0, 1):
        write_run(root, alone_settings, seed, 0.59, [0.5, 0.6], fine_tuning_record(0.55))
    _, _, found, runs, missing = rr.chapter_longer("smoke", root)
    _, _, alone_found, alone_runs, _ = rr.chapter_no_context("smoke", root)
    assert sorted(runs["iemocap"]) == [0, 1] and missing["iemocap"] == [2, 3, 4]
    rows = rr.longer_rows(found["iemocap"], runs["iemocap"])
    assert rows[1]["weighted_f1"] == pytest.approx(0.61) and "up to 6 epochs" in rows[1]["protocol"]
    alone_rows = rr.no_context_rows(alone_found["iemocap"], alone_runs["iemocap"])
    text = rr.longer_sentence("iemocap", found["iemocap"], rows, runs["iemocap"], alone_rows, alone_runs["iemocap"])
    assert "at most 6 epochs (stopping after 2 without a better validation score" in text
    assert "kept epoch is 4.5 on average (the last one it ran in 1 of 2 seeds)" in text  # seed 1: its last epoch
    assert "61.00 ± 1.41 on IEMOCAP" in text and "2.0 points above the 2-epoch fine-tuning" in text
    assert text.endswith("MCEF scores 62.00 against 60.00, so a validation choice fine-tunes longer.")
    assert rr.longer_sentence("iemocap", found["iemocap"], rows, runs["iemocap"], [], {}) == ""  # nothing to extend


def test_the_larger_arm_only_swaps_the_encoder_of_the_utterance_alone_and_says_what_it_adds(root):
    _, settings, found, runs, missing = rr.chapter_larger("smoke", root)
    assert runs == {"iemocap": {}, "meld": {}} and missing["meld"] == [0, 1, 2, 3, 4]
    _, alone_settings, alone_found, _, _ = rr.chapter_no_context("smoke", root)
    for name, corpus in found.items():
        larger, alone = corpus.config, alone_found[name].config
        tune = larger.data.text.finetune
        assert (larger.data.text.encoder, tune.train_layers, tune.bf16) == ("all-mpnet-base-v2", 4, True)
        # the only changes: the encoder, how much of it is trained, the autocast
        assert_only_change(larger, alone, encoder=alone.data.text.encoder,
                           finetune=dataclasses.replace(tune, train_layers=None, bf16=False))
    assert rr.larger_rows(root / settings.artifacts, found["iemocap"], {}) == []
    for seed, mcef_f1 in ((0, 0.64), (1, 0.62)):
        corpus = write_run(root, settings, seed, mcef_f1, [0.5, 0.63], fine_tuning_record(0.6))
        rr.finetuned_baseline_path(root / settings.artifacts, corpus, seed).write_text(json.dumps({"test": scores(0.61)}))
        write_run(root, alone_settings, seed, 0.59, [0.5, 0.6], fine_tuning_record(0.55))
    _, _, found, runs, missing = rr.chapter_larger("smoke", root)
    _, _, alone_found, alone_runs, _ = rr.chapter_no_context("smoke", root)
    assert sorted(runs["iemocap"]) == [0, 1] and missing["iemocap"] == [2, 3, 4]
    rows = rr.larger_rows(root / settings.artifacts, found["iemocap"], runs["iemocap"])
    assert [r["model"] for r in rows] == ["all-mpnet-base-v2's own classifier, top 4 layers fine-tuned (ours)",
                                          "MCEF text-only on its features, top 4 layers fine-tuned (ours)",
                                          "logistic regression on its features, top 4 layers fine-tuned (ours)"]
    assert "all-mpnet-base-v2, top 4 layers fine-tuned, the utterance alone" in rows[1]["protocol"]
    alone_rows = rr.no_context_rows(alone_found["iemocap"], alone_runs["iemocap"])
    text = rr.larger_sentence("iemocap", found["iemocap"], rows, runs["iemocap"], alone_found["iemocap"], alone_rows,
                              alone_runs["iemocap"])
    assert text.startswith("The larger encoder: all-mpnet-base-v2 with its top 4 layers fine-tuned on each utterance "
                           "alone under bfloat16 autocast (about 18 minutes of fine-tuning per seed)")
    assert "63.00 ± 1.41 on IEMOCAP over 2 seeds" in text and "4.0 points above all-MiniLM-L6-v2" in text
    assert text.endswith("On validation MCEF scores 63.00 against 60.00, and the larger encoder's own classifier "
                         "60.00, so a validation choice between the two readings of its features keeps MCEF.")
    assert rr.larger_sentence("iemocap", found["iemocap"], rows, runs["iemocap"], None, [], {}) == ""
    (root / settings.artifacts / "baseline_iemocap_finetuned_mpnet_seed1.json").unlink()
    with pytest.raises(SelfCheckFailed, match="baseline_iemocap_finetuned_mpnet_seed1.json is missing"):
        rr.chapter_larger("smoke", root)


def test_a_recipe_is_named_by_its_encoder_its_fine_tuning_and_its_context(root):
    labels = {section: {name: rr.recipe_label(c) for name, c in rr.corpora(
        rr.section_settings("smoke", section, rr.RealTextSettings, root), root).items()}
        for section in ("real_text", "real_text_finetuned", "real_text_controls", "real_text_larger")}
    assert labels["real_text"]["iemocap"] == "all-mpnet-base-v2 as shipped, the utterance alone"
    assert labels["real_text_finetuned"]["meld"] == ("all-MiniLM-L6-v2, every layer fine-tuned for up to 3 epochs, "
                                                     "2 previous utterances")
    assert labels["real_text_controls"]["meld-sentiment"] == "all-MiniLM-L6-v2 as shipped, 2 previous utterances"
    assert labels["real_text_larger"]["iemocap"] == ("all-mpnet-base-v2, top 4 layers fine-tuned for up to 3 epochs, "
                                                     "the utterance alone")
    found = rr.corpora(SETTINGS, root)
    both = rr.recipe_candidates("meld-sentiment", [(found, {"meld-sentiment": {0: {}}}), ({}, {})])
    assert both == {labels["real_text_finetuned"]["meld-sentiment"]: {0: {}}}  # an arm without the corpus adds none


def test_validation_chooses_the_recipe_and_the_table_shows_every_one_with_runs():
    def runs(*pairs):
        return {seed: {"valid": {"weighted_f1": v}, "test": scores(t)} for seed, (v, t) in enumerate(pairs)}

    table, chosen = rr.recipe_choice({"frozen": runs((0.62, 0.64), (0.60, 0.62)), "none yet": {},
                                      "tuned": runs((0.63, 0.60)), "alone": runs((0.55, 0.70))})
    assert chosen == "tuned" and list(table["recipe"]) == ["frozen", "tuned", "alone"]  # no runs: no row
    assert table.to_dict("records")[0] == {"recipe": "frozen", "seeds": 2, "valid w-F1": pytest.approx(61.0),
                                           "test w-F1": "63.00 ± 1.41", "chosen on validation": ""}
    assert list(table["chosen on validation"]) == ["", "yes", ""]  # the best test figure is not what chooses
    assert rr.choice_facts({"meld-sentiment": (table, chosen)}) == {
        "meld_sentiment_chosen_recipe": "tuned", "meld_sentiment_chosen_weighted_f1": "60.00",
        "meld_sentiment_chosen_n": 1}
    with pytest.raises(SelfCheckFailed, match="no recipe has runs"):
        rr.recipe_choice({"none": {}})


def test_the_opening_page_quotes_the_recipe_a_validation_choice_keeps(root):
    from mcef.book import reproduced

    claims = {c.claim: c.here for c in reproduced.real_text_claims("smoke", root)}
    assert claims["IEMOCAP with real data"].startswith("text only, chosen on validation (all-mpnet-base-v2 as "
                                                       "shipped, the utterance alone), 5 seeds: weighted F1 ")
    settings = rr.section_settings("smoke", "real_text_larger", rr.RealTextSettings, root)
    corpus = write_run(root, settings, 0, 0.70, [0.5, 0.99], fine_tuning_record(0.6))  # the best validation score
    rr.finetuned_baseline_path(root / settings.artifacts, corpus, 0).write_text(json.dumps({"test": scores(0.6)}))
    claims = {c.claim: c.here for c in reproduced.real_text_claims("smoke", root)}
    assert claims["IEMOCAP with real data"] == ("text only, chosen on validation (all-mpnet-base-v2, top 4 layers "
                                                "fine-tuned for up to 3 epochs, the utterance alone), 1 seed: "
                                                "weighted F1 70.00%")
    assert "all-MiniLM-L6-v2 as shipped" in claims["MELD with real data"]


def test_the_bf16_check_is_read_with_its_config_and_a_stale_one_fails(root):
    artifacts = root / SETTINGS.artifacts
    assert rr.bf16_facts(artifacts, root)["bf16_config"] == "configs/real/iemocap_finetuned_mpnet.yaml"  # committed
    (artifacts / "bf16_check.json").unlink()
    with pytest.raises(SelfCheckFailed, match="bf16_check.json is missing; make it with"):
        rr.bf16_facts(artifacts, root)
    config = "configs/real/iemocap_finetuned_mpnet.yaml"
    rows = [{"bf16": False, "valid_weighted_f1": 0.50, "train_minutes": 3.0},
            {"bf16": True, "valid_weighted_f1": 0.51, "train_minutes": 2.0}]
    record = {"config": config, "config_digest": config_digest(rr.load_recipe(config, root)), "seed": 0, "rows": rows}
    (artifacts / "bf16_check.json").write_text(json.dumps(record))
    assert rr.bf16_facts(artifacts, root) == {
        "bf16_config": config, "bf16_seed": 0, "bf16_fp32_valid_weighted_f1": pytest.approx(50.0),
        "bf16_valid_weighted_f1": pytest.approx(51.0), "bf16_speedup": pytest.approx(1.5)}
    (artifacts / "bf16_check.json").write_text(json.dumps({**record, "config_digest": "0" * 16}))
    with pytest.raises(SelfCheckFailed, match="was measured with another configs/real/iemocap_finetuned_mpnet.yaml"):
        rr.bf16_facts(artifacts, root)


def class_summary(f1: dict[str, float], support: list[int]) -> dict:
    """A summary's test record and label names, with per-class F1 ``f1`` and a diagonal confusion of ``support``."""
    return {"test": {"per_class_f1": f1, "confusion_matrix": np.diag(support).tolist()}, "data": {"label_names": list(f1)}}


def test_the_per_class_comparison_puts_each_reading_beside_the_others():
    frozen = [class_summary({"sad": 0.5, "happy": 0.7}, [3, 4]), class_summary({"sad": 0.7, "happy": 0.7}, [3, 4])]
    tuned = [class_summary({"happy": 0.8, "sad": 0.6}, [4, 3])]  # another order of the same classes
    table = rr.class_comparison({"frozen": frozen, "alone": [], "tuned": tuned})
    assert list(table.columns) == ["class", "support", "frozen", "tuned"]  # no runs: no column
    assert table.to_dict("records") == [{"class": "sad", "support": 3, "frozen": "60.00 ± 14.14", "tuned": "60.00"},
                                        {"class": "happy", "support": 4, "frozen": "70.00 ± 0.00", "tuned": "80.00"}]
    with pytest.raises(SelfCheckFailed, match="no runs in any column"):
        rr.class_comparison({"frozen": []})
    run = {"data": {"label_names": ["sad"], "text_features": {"encoding": {
        "fine_tuned": True, "classifier": {"test": {"per_class_f1": {"sad": 0.4}, "confusion_matrix": [[2]]}}}}}}
    assert rr.class_comparison({"own": rr.own_classifier_tests({0: run})})["own"].tolist() == ["40.00"]


def test_the_cost_ratio_of_the_encoders_is_the_timed_pairs_mean():
    import pandas as pd

    speed = pd.DataFrame([{"corpus": c, "encoder": e, "previous utterances": w, "min / epoch": m} for c, e, w, m in (
        ("IEMOCAP", "small", 0, 2.0), ("IEMOCAP", "large", 0, 12.0), ("IEMOCAP", "small", 4, 5.0),
        ("MELD", "small", 0, 1.0), ("MELD", "large", 0, 4.0))])
    assert rr.encoder_cost_ratio(speed) == pytest.approx((6.0 + 4.0) / 2)  # IEMOCAP window 4 has no large timing
    speed["bf16"], speed["layers trained"] = "no", "all"
    faster = pd.DataFrame([{"corpus": "MELD", "encoder": "large", "previous utterances": 0, "min / epoch": 1.0,
                            "bf16": bf16, "layers trained": layers} for bf16, layers in (("yes", "all"), ("no", 4))])
    assert rr.encoder_cost_ratio(pd.concat([speed, faster])) == pytest.approx(5.0)  # full float32 epochs only
    with pytest.raises(SelfCheckFailed, match="times no encoder both with every layer in float32"):
        rr.partial_speedup(pd.concat([speed, faster]))  # bf16 and top layers, each alone, are not the pair
    partial = faster.iloc[:1].assign(**{"layers trained": 4, "min / epoch": 0.5})
    assert rr.partial_speedup(pd.concat([speed, faster, partial])) == pytest.approx(4.0 / 0.5)
