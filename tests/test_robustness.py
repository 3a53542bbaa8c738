"""Missing and corrupted modalities at test time, and the efficiency table."""

from __future__ import annotations

import math
import shutil
import warnings
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from book_helpers import REPO, make_root

from mcef.book import ablations, robustness
from mcef.book.common import load_recipe, section_settings
from mcef.book.robustness import EfficiencySettings
from mcef.config import with_changes
from mcef.data import SyntheticConfig, make_synthetic
from mcef.data.dataset import MODALITIES
from mcef.evaluate import load_run

SMOKE = section_settings("smoke", "efficiency", EfficiencySettings, REPO)


def efficiency(**changes) -> EfficiencySettings:
    """The smoke profile's efficiency settings with ``changes``."""
    return replace(SMOKE, **changes)


def features(dataset, split, modality):
    return np.concatenate([d.features[modality] for d in dataset.split(split)])


def test_zero_changes_only_the_test_features_of_one_modality(tiny_dataset):
    zeroed = robustness.perturb(tiny_dataset, "audio", "zero")
    assert not features(zeroed, "test", "audio").any()
    np.testing.assert_array_equal(features(zeroed, "train", "audio"), features(tiny_dataset, "train", "audio"))
    test_id = tiny_dataset.splits["test"][0]
    assert zeroed.dialogues[test_id].features["text"] is tiny_dataset.dialogues[test_id].features["text"]
    assert features(tiny_dataset, "test", "audio").any()  # the original is untouched


def test_shuffle_permutes_utterances_and_noise_scales_with_the_training_std(tiny_dataset):
    original = features(tiny_dataset, "test", "text")
    shuffled = features(robustness.perturb(tiny_dataset, "text", "shuffle", seed=3), "test", "text")
    assert not np.array_equal(shuffled, original)
    np.testing.assert_array_equal(np.sort(shuffled, axis=0), np.sort(original, axis=0))
    np.testing.assert_array_equal(features(robustness.perturb(tiny_dataset, "text", "noise", scale=0.0), "test", "text"),
                                  original)
    noise = features(robustness.perturb(tiny_dataset, "text", "noise", scale=2.0), "test", "text") - original
    train_std = features(tiny_dataset, "train", "text").std(axis=0)
    assert np.allclose((noise / train_std).std(), 2.0, rtol=0.15)


def test_perturb_rejects_unknown_kinds_and_modalities(tiny_dataset):
    with pytest.raises(ValueError, match="unknown kind"):
        robustness.perturb(tiny_dataset, "text", "blur")
    with pytest.raises(ValueError, match="not 'smell'"):
        robustness.perturb(tiny_dataset, "smell", "zero")


@pytest.fixture(scope="module")
def text_only_run(tmp_path_factory):
    """A small model trained on data where only text carries the emotion (audio and visual are pure nuisance)."""
    from mcef.train import fit

    dataset = make_synthetic(SyntheticConfig(seed=1, n_train=30, n_test=10, dims=(16, 16, 16),
                                             informativeness=(3.0, 0.0, 0.0), prototype_scale=3.0, noise_scale=0.5,
                                             length_log_mean=2.8, min_length=4, max_length=30))
    config = with_changes(load_recipe(REPO / "configs" / "paper.yaml"), name="robust",
                          model={"modalities": list(MODALITIES), "hidden": 16, "dropout": 0.1},
                          train={"epochs": 10, "lr": 3e-3, "batch_size": 4, "early_stopping": 0, "device": "cpu",
                                 "record_oracle_test": False, "checkpoint_every": 10})
    run_dir = tmp_path_factory.mktemp("robust") / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit(config, dataset=dataset, run_dir=run_dir, progress=False)
    return dataset, run_dir


def test_a_useless_modality_can_go_while_corrupting_the_informative_one_hurts(text_only_run):
    dataset, run_dir = text_only_run
    config, model, _ = load_run(run_dir, device="cpu")
    clean = robustness.evaluate_model(model, config, dataset)["accuracy"]
    assert clean > 0.6  # the model did learn from text
    without_visual = robustness.evaluate_model(model, config, robustness.perturb(dataset, "visual", "zero"))["accuracy"]
    noisy_text = robustness.evaluate_model(model, config, robustness.perturb(dataset, "text", "noise", scale=4.0))
    shuffled_text = robustness.evaluate_model(model, config, robustness.perturb(dataset, "text", "shuffle"))
    assert abs(without_visual - clean) < 0.06
    assert clean - noisy_text["accuracy"] > 0.3
    assert clean - shuffled_text["accuracy"] > 0.3


def test_robustness_table_covers_every_condition_and_summarises_over_seeds(text_only_run):
    dataset, run_dir = text_only_run
    settings = efficiency(noise_scales=(1.0, 4.0), draws=2)
    table = robustness.robustness_table({0: run_dir, 1: run_dir}, dataset, settings, device="cpu")
    assert len(table) == 2 * (1 + 3 * (2 + 2))  # per seed: clean + per modality zero, shuffle, two noise scales
    summary = robustness.summarise_robustness(table)
    assert (summary["n"] == 2).all()
    assert robustness.lookup(summary, "none", "clean", "change_weighted_f1_mean") == 0
    assert robustness.lookup(summary, "text", "zero", "weighted_f1_std") == 0  # the same run twice
    text_noise = robustness.lookup(summary, "text", "noise", "change_accuracy_mean", 4.0)
    assert text_noise < robustness.lookup(summary, "visual", "noise", "change_accuracy_mean", 4.0)
    assert robustness.noise_figure(summary).data and robustness.missing_figure(summary, {"text": (0.5, 0.1)}).data


def test_robustness_scores_are_the_tables_rows_stored_beside_each_run(text_only_run, tmp_path):
    from mcef.book.common import BookRun
    from mcef.runs import read_run

    dataset, trained = text_only_run
    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    config, _, _ = load_run(run_dir, device="cpu")
    run = BookRun(config=config, run_dir=run_dir, summary=read_run(run_dir).summary, origin="loaded")
    settings = efficiency(noise_scales=(4.0,), draws=1)
    scores = robustness.robustness_scores([run], dataset, settings, device="cpu")
    direct = robustness.robustness_table({run.seed: run_dir}, dataset, settings, device="cpu")
    pd.testing.assert_frame_equal(scores, direct)
    for weights in run_dir.glob("*.pt"):
        weights.unlink()  # as in the committed results: the stored rows are read, the model is not needed
    again = robustness.robustness_scores([run, run], dataset, settings, device="cpu")
    pd.testing.assert_frame_equal(again.iloc[: len(scores)].reset_index(drop=True), scores)


def test_efficiency_table_has_a_row_per_configuration_and_the_reference_comparison(tiny_dataset):
    settings = efficiency(bench_hidden=8, bench_epochs=1, bench_warmup=0, bench_memory=False)
    table, comparisons = robustness.efficiency_table(settings, ["cpu"], dataset=tiny_dataset, root=REPO)
    assert list(table["configuration"]) == ["equal", "equal, reference emulation", "sdt", "concat", "late"]
    assert (table["device"] == "cpu").all() and (table["hidden"] == 8).all()
    assert (table["train_epoch_s"] > 0).all() and (table["eval_utterances_per_s"] > 0).all()
    params = dict(zip(table["configuration"], table["parameters"]))
    assert params["equal"] == params["equal, reference emulation"] == params["sdt"]
    result = comparisons["cpu"]
    assert result["ours"]["packed"] and not result["baseline"]["packed"]
    assert result["baseline"]["hgr_mode"] == "reference"
    assert result["speedup"] == pytest.approx(result["baseline"]["train_epoch_s"] / result["ours"]["train_epoch_s"])
    assert robustness.efficiency_figure(table).data


def test_profile_settings():
    smoke = robustness.efficiency_settings("smoke", REPO)
    assert smoke.bench_hidden < 512 and not smoke.bench_memory and smoke.noise_scales == (1.0, 4.0)
    assert robustness.efficiency_settings("full", REPO).bench_hidden == 512
    assert robustness.available_devices()[0] == "cpu"


def test_trained_without_gives_mean_and_sample_std_per_modality():
    def run(wf1):
        return SimpleNamespace(summary={"test": {"weighted_f1": wf1}})

    dropped = robustness.trained_without({"text": [run(0.4), run(0.6)], "audio": [run(0.5)]})
    assert dropped["text"][0] == pytest.approx(0.5) and dropped["text"][1] == pytest.approx(0.02 ** 0.5)
    assert dropped["audio"][0] == pytest.approx(0.5) and math.isnan(dropped["audio"][1])


@pytest.mark.slow
def test_the_full_and_bimodal_models_are_chapter_05s_runs_found_by_digest(tiny_dataset, tmp_path):
    root = make_root(tmp_path / "project")
    base = ablations.base_config("tiny", device="cpu", root=root)
    variants = ablations.grid(base, ablations.ablation_settings("tiny", root))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trained = ablations.run_variants([ablations.common_variant(variants), *ablations.leave_one_out(variants).values()],
                                         [0], tiny_dataset, tmp_path / "runs")
        full, without = robustness.robustness_runs("tiny", tiny_dataset, [0], tmp_path / "runs", device="cpu", root=root)
    assert [run.origin for run in [*full, *sum(without.values(), [])]] == ["loaded"] * 4
    assert {run.run_dir for run in [*full, *sum(without.values(), [])]} == {run.run_dir for run in trained}
    assert set(without["audio"][0].config.model.modalities) == {"text", "visual"}
    assert not (tmp_path / "runs" / "robustness").exists()  # nothing trained twice


def fake_summary():
    """A two-seed summary where zeroing text costs 20 points, audio 5, and noise at the top scale 10 and 2."""
    settings = efficiency(noise_scales=(1.0, 4.0))
    wf1 = {("none", "clean"): 0.6, ("text", "zero"): 0.4, ("audio", "zero"): 0.55, ("text", "shuffle"): 0.45,
           ("audio", "shuffle"): 0.58, ("text", 4.0): 0.5, ("audio", 4.0): 0.58, ("text", 1.0): 0.57, ("audio", 1.0): 0.6}
    def key(condition):  # noise conditions are told apart by their scale
        return condition["modality"], condition["scale"] if condition["kind"] == "noise" else condition["kind"] or "clean"

    rows = [{"seed": seed, "modality": c["modality"], "condition": c["condition"], "scale": c["scale"],
             "accuracy": 0.5, "weighted_f1": wf1[key(c)] + 0.01 * seed}
            for seed in (0, 1) for c in robustness.conditions(("text", "audio"), settings)]
    return robustness.summarise_robustness(pd.DataFrame(rows)), settings


def test_robustness_findings_and_display_quote_the_summary():
    summary, settings = fake_summary()
    facts = robustness.robustness_findings(summary, settings.noise_scales)
    assert facts["clean_wf1"] == pytest.approx(0.605)
    assert facts["zero_drop_text"] == pytest.approx(20.0) and facts["zero_drop_audio"] == pytest.approx(5.0)
    assert facts["noise_drop_text"] == pytest.approx(10.0) and facts["shuffle_drop_audio"] == pytest.approx(2.0)
    assert (facts["most_needed"], facts["least_needed"], facts["top_scale"]) == ("text", "audio", 4.0)
    tiny = summary.copy()  # a cost that rounds to zero is shown as 0.0, never -0.0
    tiny.loc[(tiny["modality"] == "audio") & (tiny["condition"] == robustness.CONDITION_NAMES["zero"]),
             "change_weighted_f1_mean"] = 0.0003
    assert str(robustness.robustness_findings(tiny, settings.noise_scales)["zero_drop_audio"]) == "0.0"
    retrained = robustness.retraining_findings(summary, {"text": (0.5, 0.0), "audio": (0.5, 0.0)})
    assert retrained["zeroed_text"] == pytest.approx(0.405) and retrained["retrained_better"] == 1  # text only
    assert retrained["same_size_clean_wf1"] == pytest.approx(0.605) and retrained["without_audio"] == 0.5
    shown = robustness.robustness_display(summary)
    assert list(shown.columns) == robustness.ROBUSTNESS_SHOWN and shown.index.names == ["modality", "condition", "scale"]
    assert shown.loc[("text", robustness.CONDITION_NAMES["zero"], 0.0), "weighted_f1_std"] == pytest.approx(0.007)


def test_bench_findings_and_efficiency_display():
    timing = {"train_epoch_s": 2.34567, "eval_utterances_per_s": 1234.6, "parameters": 99}
    comparisons = {"cpu": {"ours": timing, "baseline": {**timing, "train_epoch_s": 4.69134, "eval_utterances_per_s": 617.3},
                           "speedup": 2.0, "device": "cpu", "speedup_vs_published_reference_cpu_epoch": 6.6}}
    small = robustness.bench_findings(efficiency(bench_hidden=32), comparisons, "smoke")
    assert "H = 32 instead of 512" in small["paper_phrase"] and "not comparable" in small["published_note"]
    assert small["cpu_eval_ratio"] == pytest.approx(2.0) and small["speedups"] == "cpu: 2.00x"
    paper = robustness.bench_findings(efficiency(bench_hidden=512), comparisons, "full")
    assert paper["paper_phrase"] == "the published configuration (H = 512)" and "6.6 times faster" in paper["published_note"]
    assert small["cpu_speed_phrase"] == "2.00 times faster"
    slower = {"cpu": {**comparisons["cpu"], "speedup": 0.8}}
    assert robustness.bench_findings(efficiency(bench_hidden=32), slower, "smoke")["cpu_speed_phrase"] == "1.25 times slower"
    table = pd.DataFrame([{"device": "cpu", "configuration": "equal", **timing}])
    shown = robustness.efficiency_display(table)
    assert shown.loc[("cpu", "equal"), "train_epoch_s"] == 2.346 and shown.loc[("cpu", "equal"), "eval_utterances_per_s"] == 1235
