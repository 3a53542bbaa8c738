"""The run store: a run is reused only when its digest (defining config, data content, package version) matches."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mcef.config import ConfigError, load_config, with_changes
from mcef.data import SyntheticConfig, make_synthetic
from mcef.experiments import sweep
from mcef.runs import (ADDED_FIELDS, RunDirError, RunIdentity, config_digest, data_fingerprint, defining_fields, list_runs,
                       read_run, runs_table)
from mcef.train import fit

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
TINY = SyntheticConfig(n_train=8, n_test=3, dims=(8, 6, 4), min_length=3, max_length=8, valid_fraction=0.25)
OVERRIDES = ["model.hidden=8", "model.n_heads=2", "model.n_self_heads=2", "train.progress=false", "train.epochs=1"]


@pytest.fixture(scope="module")
def tiny():
    return make_synthetic(TINY)


def config(*extra: str):
    return load_config(CONFIGS / "smoke.yaml", [*OVERRIDES, *extra])


def test_digest_ignores_where_and_how_visibly_but_not_what(tiny):
    base = config()
    for harmless in ({"train": {"device": "cpu"}}, {"train": {"progress": True}}, {"name": "renamed"},
                     {"data": {"path": "elsewhere.pkl", "cache_dir": "/tmp/cache"}}, {"train": {"checkpoint_every": 9}}):
        assert config_digest(with_changes(base, **harmless)) == config_digest(base), harmless
    for defining in ({"train": {"lr": 0.5}}, {"train": {"seed": 1}}, {"model": {"hidden": 16}},
                     {"loss": {"soft_hgr": 0.0}}, {"data": {"standardise": True}}):
        assert config_digest(with_changes(base, **defining)) != config_digest(base), defining


def test_a_field_added_later_keeps_earlier_digests_at_the_value_they_computed_with():
    base = config("model.activation=gelu")
    earlier = {section: dict(fields) for section, fields in defining_fields(base).items() if isinstance(fields, dict)}
    assert "activation" not in earlier["model"] and "labels" not in earlier["data"]  # as a run made before them
    assert config_digest(earlier) == config_digest(base)
    assert "window_before" not in earlier["data"]["text"] and "finetune" not in earlier["data"]["text"]
    for new_value in ({"model": {"activation": "gelu_tanh"}}, {"data": {"labels": "sentiment"}},
                      {"data": {"label_set": "iemocap-4"}}, {"data": {"text": {"pooling": "cls"}}},
                      {"data": {"text": {"context": "window", "window_before": 2}}},
                      {"data": {"text": {"finetune": {"epochs": 1}}}},
                      {"data": {"text": {"finetune": {"train_layers": 2}}}}):
        assert config_digest(with_changes(base, **new_value)) != config_digest(base), new_value
    tuned = with_changes(base, data={"text": {"finetune": {"epochs": 1}}})
    assert "train_layers" not in defining_fields(tuned)["data"]["text"]["finetune"]  # at its default: left out
    assert set(ADDED_FIELDS) == {"model.activation", "data.labels", "data.label_set", "data.text.window_before",
                                 "data.text.window_after", "data.text.pooling", "data.text.finetune",
                                 "data.text.finetune.train_layers"}


def test_the_committed_real_text_runs_keep_their_digests():
    for name in ("iemocap_text", "meld_text", "iemocap_finetuned", "meld_finetuned_no_context_long"):
        committed = json.loads((CONFIGS.parent / "book" / "results" / "real_text" / name / "seed0" / "summary.json").read_text())
        current = with_changes(load_config(CONFIGS / "real" / f"{name}.yaml"), train={"seed": 0})
        assert config_digest(current) == committed["provenance"]["config_digest"], name


def test_data_fingerprint_is_of_the_content_not_the_name(tiny):
    renamed = dataclasses.replace(tiny, name="other", source="another file")
    assert data_fingerprint(renamed) == data_fingerprint(tiny)
    first_id = tiny.splits["train"][0]
    dialogue = tiny.dialogues[first_id]
    text = dialogue.features["text"].copy()
    text[0, 0] += 1e-3
    changed = dataclasses.replace(tiny, dialogues={**tiny.dialogues, first_id: dataclasses.replace(
        dialogue, features={**dialogue.features, "text": text})})
    assert data_fingerprint(changed) != data_fingerprint(tiny)
    moved = dataclasses.replace(tiny, splits={**tiny.splits, "train": tiny.splits["train"][1:],
                                              "valid": [first_id, *tiny.splits["valid"]]})
    assert data_fingerprint(moved) != data_fingerprint(tiny)


def test_fit_reuses_a_matching_run_and_never_one_with_another_learning_rate(tiny, tmp_path):
    run_dir = tmp_path / "run"
    first = fit(config(), dataset=tiny, run_dir=run_dir)
    metrics_before = (run_dir / "metrics.jsonl").stat().st_mtime_ns
    again = fit(config("train.device=cpu"), dataset=tiny, run_dir=run_dir)
    assert again == first and (run_dir / "metrics.jsonl").stat().st_mtime_ns == metrics_before
    with pytest.raises(RunDirError, match=r"train.lr: 0.0001 -> 0.05\).*reuse happens automatically when the digest"):
        fit(config("train.lr=0.05"), dataset=tiny, run_dir=run_dir)
    assert (run_dir / "metrics.jsonl").stat().st_mtime_ns == metrics_before  # refused: nothing touched
    other = fit(config("train.lr=0.05"), dataset=tiny, run_dir=run_dir, overwrite=True)
    assert read_run(run_dir).config["train"]["lr"] == 0.05
    assert other["provenance"]["run_digest"] != first["provenance"]["run_digest"]
    assert json.loads((run_dir / "run.json").read_text())["digest"] == other["provenance"]["run_digest"]


def test_sweep_sets_aside_a_run_of_another_config_or_names_the_fields(tiny, tmp_path):
    sweep([config()], [0], tmp_path, dataset=tiny, log=lambda line: None)
    seed_dir = tmp_path / "smoke" / "seed0"
    old = read_run(seed_dir).identity
    with pytest.raises(ConfigError, match=r"train.lr: 0.0001 -> 0.02"):
        sweep([config("train.lr=0.02")], [0], tmp_path, dataset=tiny, retrain=False)
    messages = []
    sweep([config("train.lr=0.02")], [0], tmp_path, dataset=tiny, log=messages.append)
    assert "train.lr: 0.0001 -> 0.02" in messages[0]
    assert read_run(seed_dir).config["train"]["lr"] == 0.02
    aside = tmp_path / "smoke" / f"seed0.stale-{old.digest[:8]}"
    assert read_run(aside).identity == old  # nothing lost
    identity = RunIdentity.of(with_changes(config("train.lr=0.02"), train={"seed": 0}), data_fingerprint(tiny))
    assert read_run(seed_dir).identity == identity
    assert {run.path.name for run in list_runs(tmp_path)} == {"seed0", aside.name}


def test_runs_list_shows_name_digest_data_status_and_metric(tiny, tmp_path):
    fit(config(), dataset=tiny, run_dir=tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "metrics.jsonl").write_text("")
    (tmp_path / "b" / "config.yaml").write_text((tmp_path / "a" / "config.yaml").read_text())
    table = runs_table(tmp_path)
    digest = read_run(tmp_path / "a").identity.digest
    assert digest in table and "finished" in table and "partial" in table and "synthetic" in table
    cli = subprocess.run([sys.executable, "-m", "mcef.cli", "runs", "list", str(tmp_path)], capture_output=True,
                         text=True, check=True)
    assert cli.stdout.strip() == table


def test_evaluate_refuses_own_data_that_changed(tiny, tmp_path, monkeypatch):
    import mcef.features.pipeline
    from mcef.data import DataError
    from mcef.evaluate import evaluate

    fit(config(), dataset=tiny, run_dir=tmp_path / "run")  # trained on `tiny`, its config names the smoke data
    result = evaluate(tmp_path / "run", tiny)
    assert result["same_data_as_training"] is True
    other = make_synthetic(dataclasses.replace(TINY, seed=5))
    monkeypatch.setattr(mcef.features.pipeline, "load_data", lambda data, device="auto": (other, "changed"))
    with pytest.raises(DataError, match="no longer has the content it was trained on"):
        evaluate(tmp_path / "run")
    assert np.isfinite(evaluate(tmp_path / "run", other)["accuracy"])


def test_a_stored_run_made_before_a_field_existed_loads_with_the_value_it_was_computed_with(tiny, tmp_path):
    import yaml

    from mcef.config import load_stored_config, with_added_fields
    from mcef.evaluate import load_run

    run_dir = tmp_path / "old"
    fit(config("model.activation=gelu"), run_dir=run_dir, dataset=tiny)
    stored = yaml.safe_load((run_dir / "config.yaml").read_text())
    del stored["model"]["activation"], stored["data"]["labels"], stored["data"]["label_set"]  # as written before them
    (run_dir / "config.yaml").write_text(yaml.safe_dump(stored))
    old = load_stored_config(run_dir / "config.yaml")
    assert (old.model.activation, old.data.labels, old.data.label_set) == ("gelu", "emotion", None)
    assert read_run(run_dir).identity.digest == RunIdentity.of(old, data_fingerprint(tiny)).digest
    assert with_added_fields({"hidden": 8}, "model") == {"hidden": 8, "activation": "gelu"}
    assert load_run(run_dir, device="cpu")[1].config.activation == "gelu"
