"""The ablation grid: the right variants with the right switches, shared runs trained once, honest aggregation."""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import pytest

from book_helpers import REPO, make_root

from mcef.book import ablations
from mcef.book.common import PROFILE_NAMES, BookRun
from mcef.config import with_changes
from mcef.data.dataset import MODALITIES


@pytest.fixture(scope="module")
def book_root(tmp_path_factory):
    return make_root(tmp_path_factory.mktemp("project"))


@pytest.fixture(scope="module")
def settings(book_root):
    return ablations.ablation_settings("tiny", book_root)


@pytest.fixture(scope="module")
def base(book_root):
    return ablations.base_config("tiny", device="cpu", root=book_root)


@pytest.fixture(scope="module")
def variants(base, settings):
    return ablations.grid(base, settings)


def family(variants, name):
    return [v for v in variants if v.family == name]


def test_grid_has_7_modality_5_loss_and_4_fusion_variants(variants):
    assert [v.label for v in family(variants, "modalities")] == ["T", "A", "V", "TA", "TV", "AV", "TAV"]
    assert len(family(variants, "loss")) == 5
    assert [v.label for v in family(variants, "fusion")] == ["equal", "sdt", "concat", "late"]


def test_modality_variants_are_true_subset_models_with_everything_else_equal(variants, base):
    for v in family(variants, "modalities"):
        expected = tuple(m for m in MODALITIES if ablations.LETTERS[m] in v.label)
        assert v.config.model.modalities == expected
        assert v.config.model.fusion == "equal" and v.config.loss == base.loss


def test_loss_variants_add_terms_in_order(variants, settings):
    loss = {v.label: v.config.loss for v in family(variants, "loss")}
    only = loss["fused CE only"]
    assert only.fused_ce > 0 and only.modality_ce == only.soft_hgr == only.kl == 0
    assert loss["+ modality CE"].modality_ce > 0 and loss["+ modality CE"].soft_hgr == 0
    correct, reference = loss["+ Soft-HGR (correct)"], loss["+ Soft-HGR (reference)"]
    assert correct.soft_hgr == reference.soft_hgr > 0
    assert (correct.hgr_mode, reference.hgr_mode) == ("correct", "reference")
    assert loss["+ SDT KL"].kl == settings.kl > 0 and loss["+ SDT KL"].hgr_mode == "correct"
    assert all(v.config.model.fusion == "equal" and v.config.model.modalities == MODALITIES
               for v in family(variants, "loss"))


def test_fusion_variants_switch_only_the_fusion(variants):
    for v in family(variants, "fusion"):
        assert v.config.model.fusion == v.label
        assert v.config == with_changes(ablations.common_variant(variants).config, name=v.name,
                                        model={"fusion": v.label})


def test_the_full_model_is_one_run_shared_by_all_three_families(variants):
    common = ablations.common_variant(variants)
    assert common.name == "TAV-ce0.3+mce0.1+hgr0.4-equal"
    assert {v.family for v in variants if v.name == common.name} == set(ablations.FAMILIES)
    configs = ablations.distinct_configs(variants)
    assert len(configs) == 7 + 5 + 4 - 2  # the shared run counted once in each of the other two families
    assert len({c.name for c in configs}) == len(configs)


def test_run_names_tell_configs_apart_and_conflicts_are_caught(variants):
    names = {v.name: v.config for v in variants}
    assert len(names) == 14
    clash = replace(variants[0], config=with_changes(variants[0].config, train={"lr": 0.5}))
    with pytest.raises(ValueError, match="share the run name"):
        ablations.distinct_configs([variants[0], clash])


def test_every_profile_sizes_the_base_config_in_yaml():
    smoke = ablations.base_config("smoke", root=REPO)
    assert smoke.model.hidden <= 64 and smoke.train.epochs <= 10 and smoke.model.modalities == MODALITIES
    full = ablations.base_config("full", root=REPO)
    assert (full.model.hidden, full.train.epochs, full.train.lr) == (512, 150, 1e-4)  # the paper recipe
    assert all(ablations.ablation_settings(name, REPO).kl == 0.1 for name in PROFILE_NAMES)


def test_runs_shared_by_families_train_once_and_aggregate(variants, tiny_dataset, tmp_path):
    chosen = [v for v in variants if v.label in ("T", "TAV", "fused CE only", "+ Soft-HGR (correct)", "equal")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = ablations.run_variants(chosen, [0], tiny_dataset, tmp_path)
    assert sorted(r.config.name for r in runs) == sorted({v.name for v in chosen})  # TAV, + Soft-HGR, equal: one run
    assert len(list(tmp_path.glob("ablations/*/seed0/summary.json"))) == 3 and {r.origin for r in runs} == {"trained now"}
    stamp = {p: p.stat().st_mtime_ns for p in tmp_path.glob("ablations/*/seed0/summary.json")}
    again = ablations.run_variants(chosen, [0], tiny_dataset, tmp_path)  # finished runs are read back
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("ablations/*/seed0/summary.json")} == stamp
    assert [r.summary for r in again] == [r.summary for r in runs] and {r.origin for r in again} == {"loaded"}

    frame = ablations.results(chosen, runs)
    assert list(frame["variant"]) == [v.label for v in chosen]
    common = frame[frame["common"]]
    assert len(common) == 3 and (common["delta_wf1_mean"] == 0).all()
    assert (frame["n"] == 1).all() and frame["test_weighted_f1_std"].isna().all()  # one seed: no spread
    text_only = frame[frame["variant"] == "T"].iloc[0]
    run = next(r for r in runs if r.config.name == text_only["run"])
    assert text_only["test_weighted_f1_mean"] == run.summary["test"]["weighted_f1"]
    assert text_only["parameters"] < common["parameters"].iloc[0]

    shown = ablations.format_results(frame)
    assert "TAV *" in shown.index.get_level_values("variant")
    figure = ablations.ablation_figure(frame)
    assert sum(len(trace.x) for trace in figure.data) == len(chosen)


def test_leave_one_out_picks_the_model_trained_without_each_modality(variants):
    without = ablations.leave_one_out(variants)
    assert set(without) == set(MODALITIES)
    for modality, variant in without.items():
        assert variant.family == "modalities"
        assert set(variant.config.model.modalities) == set(MODALITIES) - {modality}


def test_findings_read_the_extremes_and_paired_deltas_off_the_results(variants):
    scores = {"T": 0.60, "A": 0.40, "V": 0.30, "TA": 0.65, "TV": 0.75, "AV": 0.45, "TAV": 0.70,
              "fused CE only": 0.50, "+ modality CE": 0.55, "+ Soft-HGR (reference)": 0.56, "+ SDT KL": 0.68,
              "sdt": 0.69, "concat": 0.66, "late": 0.64}
    by_name = {v.name: scores.get(v.label, scores["TAV"]) for v in variants}
    configs = {v.name: v.config for v in variants}
    runs = [BookRun(with_changes(configs[name], train={"seed": seed}), Path(name), {
        "test": {"weighted_f1": wf1 + 0.01 * seed, "accuracy": wf1 + 0.05}, "valid": {"weighted_f1": wf1},
        "parameters": 1000 + len(name), "wall_time_s": 1.0}, "loaded") for name, wf1 in by_name.items() for seed in (0, 1)]
    facts = ablations.findings(ablations.results(variants, runs))
    assert facts["full_wf1"] == pytest.approx(0.705) and facts["full_acc"] == pytest.approx(0.75)
    assert (facts["best_single"], facts["worst_single"], facts["best_subset"]) == ("T", "V", "TV")
    assert facts["best_single_wf1"] == pytest.approx(0.605) and facts["best_subset_wf1"] == pytest.approx(0.755)
    assert facts["fusion_gain"] == pytest.approx(10.0) and facts["fusion_gain_word"] == "higher"
    assert facts["delta_ce_only"] == pytest.approx(-20.0) and facts["delta_kl"] == pytest.approx(-2.0)
    assert facts["hgr_ref_vs_mce"] == pytest.approx(1.0)
    assert facts["best_loss"] == "+ Soft-HGR (correct)" and facts["best_fusion"] == "equal"
    assert facts["late_delta"] == pytest.approx(-6.0) and facts["sdt_delta"] == pytest.approx(-1.0)
    assert facts["params_equal"] == 1000 + len(ablations.common_variant(variants).name)
    assert facts["spread_note"].startswith("With 2 seeds per variant")
