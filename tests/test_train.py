"""The training engine: artifacts, validation-only selection, exact resume, learning, evaluate and predict."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import mcef.data
import mcef.train
from mcef.config import ConfigError, load_config
from mcef.data import DialogueDataset, SyntheticConfig, make_synthetic
from mcef.evaluate import evaluate, predict, read_predictions
from mcef.metrics import confusion_matrix, scores
from mcef.train import fit

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
TINY = SyntheticConfig(n_train=16, n_test=4, dims=(16, 12, 8), min_length=4, max_length=16, valid_fraction=0.25)
TINY_OVERRIDES = ["model.hidden=16", "model.n_heads=2", "model.n_self_heads=2", "train.progress=false",
                  "train.checkpoint_every=1", "train.lr=3e-3"]


def tiny_config(epochs: int = 2, *extra: str):
    return load_config(CONFIGS / "smoke.yaml", [*TINY_OVERRIDES, f"train.epochs={epochs}", *extra])


@pytest.fixture(scope="module")
def tiny():
    return make_synthetic(TINY)


@pytest.fixture(scope="module")
def smoke_run(tiny, tmp_path_factory, device):
    run_dir = tmp_path_factory.mktemp("runs") / "smoke"
    return fit(tiny_config(2, f"train.device={device}"), dataset=tiny, run_dir=run_dir), run_dir


def metric_lines(run_dir: Path) -> list[dict]:
    """metrics.jsonl without the timing field (the only one that may differ between identical runs)."""
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in line.items() if k != "epoch_seconds"} for line in lines]


@pytest.mark.device
def test_smoke_run_writes_every_artifact(smoke_run, tiny, device):
    summary, run_dir = smoke_run
    assert {p.name for p in run_dir.iterdir()} == {"run.json", "config.yaml", "metrics.jsonl", "summary.json", "best.pt", "last.pt"}
    # complete and reloadable
    assert load_config(run_dir / "config.yaml") == tiny_config(2, f"train.device={device}")
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2]
    for split in ("train", "valid"):
        for key in ("loss", "loss_fused_ce", "loss_modality_ce", "loss_soft_hgr", "loss_kl", "accuracy",
                    "weighted_f1", "macro_f1"):
            assert np.isfinite(lines[0][f"{split}_{key}"]), f"{split}_{key}"
    assert lines[0]["lr"] == pytest.approx(3e-3) and lines[0]["epoch_seconds"] > 0
    on_disk = json.loads((run_dir / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    test = summary["test"]
    assert set(test["per_class_f1"]) == set(tiny.label_names)
    assert np.array(test["confusion_matrix"]).sum() == sum(len(d) for d in tiny.split("test"))
    assert "literature" in summary["oracle_best_test"]["note"]
    model = torch.load(run_dir / "best.pt", weights_only=False)
    assert summary["parameters"] == sum(v.numel() for k, v in model["model"].items())
    for key in ("device", "seed", "torch_version", "git_commit", "wall_time_s", "data"):
        assert summary[key] is not None
    assert {"model", "optimizer", "scheduler", "rng", "epoch", "config"} <= set(model)


@pytest.mark.slow
def test_selection_never_reads_test(tiny, tmp_path, monkeypatch):
    """The test split is iterated only for the oracle record and once at the end, and its labels change nothing."""
    iterations = {"test": 0}

    class SpyLoader(mcef.data.DialogueLoader):
        def __init__(self, dataset, split, **kwargs):
            super().__init__(dataset, split, **kwargs)
            self.split_name = split

        def __iter__(self):
            if self.split_name == "test":
                iterations["test"] += 1
            return super().__iter__()

    monkeypatch.setattr(mcef.data, "DialogueLoader", SpyLoader)
    config = tiny_config(5)
    summary = fit(config, dataset=tiny, run_dir=tmp_path / "a")
    assert iterations["test"] == 5 + 1  # one oracle pass per epoch + the final evaluation
    lines = metric_lines(tmp_path / "a")
    assert summary["selected_epoch"] == lines[int(np.argmax([l["valid_weighted_f1"] for l in lines]))]["epoch"]

    # Scramble the test labels: selection, schedule and early stopping must not notice.
    rng = np.random.default_rng(1)
    dialogues = {k: (dataclasses.replace(d, labels=rng.permutation(d.labels) if k in tiny.splits["test"] else d.labels))
                 for k, d in tiny.dialogues.items()}
    scrambled = dataclasses.replace(tiny, dialogues=dialogues)
    other = fit(config, dataset=scrambled, run_dir=tmp_path / "b")
    assert metric_lines(tmp_path / "b") == lines
    assert other["selected_epoch"] == summary["selected_epoch"]

    iterations["test"] = 0
    fit(tiny_config(5, "train.record_oracle_test=false"), dataset=tiny, run_dir=tmp_path / "c")
    assert iterations["test"] == 1
    assert metric_lines(tmp_path / "c") == lines


@pytest.mark.device
def test_resume_equals_uninterrupted_run(tiny, tmp_path, monkeypatch, device):
    config = tiny_config(4, f"train.device={device}")
    full = fit(config, dataset=tiny, run_dir=tmp_path / "full")

    real_save = mcef.train.save_torch_atomic

    def crash_after_epoch_2(path, obj):
        real_save(path, obj)
        if Path(path).name == "last.pt" and obj["epoch"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(mcef.train, "save_torch_atomic", crash_after_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        fit(config, dataset=tiny, run_dir=tmp_path / "resumed")
    monkeypatch.setattr(mcef.train, "save_torch_atomic", real_save)
    assert len(metric_lines(tmp_path / "resumed")) == 2
    resumed = fit(config, dataset=tiny, run_dir=tmp_path / "resumed", resume=True)
    assert metric_lines(tmp_path / "resumed") == metric_lines(tmp_path / "full")
    assert resumed["test"] == full["test"] and resumed["selected_epoch"] == full["selected_epoch"]
    assert resumed["oracle_best_test"] == full["oracle_best_test"]
    with pytest.raises(ConfigError, match=r"different run \(train.lr: 0.003 -> 0.01\)"):
        fit(tiny_config(4, "train.lr=1e-2"), dataset=tiny, run_dir=tmp_path / "resumed", resume=True)


def test_modality_not_in_data_is_a_clear_error(tiny, tmp_path):
    text_only = dataclasses.replace(tiny, dialogues={k: dataclasses.replace(d, features={"text": d.features["text"]})
                                                     for k, d in tiny.dialogues.items()})
    with pytest.raises(ConfigError, match=r"model.modalities: \['text', 'audio'\] asked for, but dataset .* has only \['text'\]"):
        fit(tiny_config(1, "model.modalities=[text, audio]"), dataset=text_only, run_dir=tmp_path / "x")


def test_class_weights_follow_the_reference_on_iemocap(tiny):
    from mcef.data import IEMOCAP_PRIORS

    config = tiny_config(1)
    iemocap = dataclasses.replace(tiny, name="iemocap")
    assert torch.allclose(mcef.train.class_weights(config, iemocap), 1 / torch.tensor(IEMOCAP_PRIORS))
    counts = torch.tensor(tiny.class_counts("train"), dtype=torch.float32)
    assert torch.allclose(mcef.train.class_weights(config, tiny), counts.sum() / counts.clamp(min=1))


@pytest.mark.device
def test_evaluate_reproduces_the_summary(smoke_run, tiny, device):
    summary, run_dir = smoke_run
    result = evaluate(run_dir, tiny, split="test", device=device)
    assert result["accuracy"] == pytest.approx(summary["test"]["accuracy"])
    assert result["confusion_matrix"] == summary["test"]["confusion_matrix"]


@pytest.mark.device
@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_predict_round_trips(smoke_run, tiny, tmp_path, suffix, device):
    summary, run_dir = smoke_run
    out = tmp_path / f"predictions{suffix}"
    rows = predict(run_dir, tiny, out, device=device)
    back = read_predictions(out)
    assert len(back) == sum(len(d) for d in tiny.dialogues.values())
    assert [(r["dialogue_id"], r["utterance"], r["predicted"]) for r in back] == \
           [(r["dialogue_id"], r["utterance"], r["predicted"]) for r in rows]
    first = back[0]
    dialogue = tiny.dialogues[first["dialogue_id"]]
    assert first["speaker"] == tiny.speaker_names[dialogue.speakers[first["utterance"]]]
    probabilities = np.array([[r[f"p_{n}"] for n in tiny.label_names] for r in back])
    assert np.allclose(probabilities.sum(1), 1.0, atol=1e-5)
    assert [r["predicted"] for r in back] == [tiny.label_names[i] for i in probabilities.argmax(1)]
    # The test rows' predictions are exactly the summary's test confusion matrix.
    test_rows = [r for r in back if r["split"] == "test"]
    index = {n: i for i, n in enumerate(tiny.label_names)}
    cm = confusion_matrix([index[r["label"]] for r in test_rows], [index[r["predicted"]] for r in test_rows],
                          tiny.n_classes)
    assert cm.tolist() == summary["test"]["confusion_matrix"]
    with pytest.raises(ValueError, match="unknown prediction format"):
        predict(run_dir, tiny, tmp_path / "p.txt")


def test_metrics_match_scikit_learn():
    from sklearn.metrics import accuracy_score, f1_score

    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 6, 400), rng.integers(0, 5, 400)  # class 5 never predicted
    s = scores(confusion_matrix(y, p, 6))
    assert s["accuracy"] == pytest.approx(accuracy_score(y, p))
    assert s["weighted_f1"] == pytest.approx(f1_score(y, p, average="weighted"))
    assert s["macro_f1"] == pytest.approx(f1_score(y, p, average="macro"))


@pytest.mark.slow
def test_full_model_learns_the_synthetic_default(tmp_path):
    """The synthetic default (fewer, narrower dialogues): well above chance and the majority class, on test.

    Measured at the time of writing: test accuracy 0.407, weighted-F1 0.363 (chance 0.167, majority class 0.272).
    """
    summary = fit(load_config(CONFIGS / "synthetic_small.yaml", ["train.progress=false"]), run_dir=tmp_path / "r")
    cm = np.array(summary["test"]["confusion_matrix"])
    majority = cm.sum(1).max() / cm.sum()
    accuracy = summary["test"]["accuracy"]
    assert accuracy >= 1 / 6 + 0.20, accuracy
    assert accuracy >= majority + 0.10, (accuracy, majority)
    assert summary["test"]["weighted_f1"] >= 0.33


def test_aggregate_mean_std_and_table():
    from mcef.experiments import aggregate, format_table, mean_std

    runs = [{"config": "a", "seed": s, "test_accuracy": v} for s, v in enumerate([0.6, 0.7, 0.8])]
    runs.append({"config": "b", "seed": 0, "test_accuracy": 0.5})
    table = aggregate(runs, metrics=["test_accuracy"])
    a, b = table
    assert (a["config"], a["n"], b["n"], b["std"]) == ("a", 3, 1, None)
    assert a["mean"] == pytest.approx(0.7) and a["std"] == pytest.approx(0.1)
    assert mean_std(a["mean"], a["std"]) == "70.00 ± 10.00"
    text = format_table(table, metrics=["test_accuracy"])
    assert "70.00 ± 10.00" in text and "50.00" in text


def test_missing_validation_split_is_a_clear_error(tiny, tmp_path):
    no_valid = dataclasses.replace(tiny, splits={**tiny.splits, "valid": []})
    with pytest.raises(ConfigError, match="no valid dialogues"):
        fit(tiny_config(1), dataset=no_valid, run_dir=tmp_path / "x")


def test_discovered_synthetic_fallback_honours_data_synthetic(tmp_path, monkeypatch):
    """With no data found, data.path=None falls back to the synthetic data built from data.synthetic's knobs."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MCEF_DATA", str(tmp_path / "nothing"))
    config = load_config(None, ["data.synthetic={n_train: 8, n_test: 3, dims: [4, 5, 6], valid_fraction: 0.25}"])
    dataset, description = mcef.train.load_data(config)
    assert dataset.dims == {"text": 4, "audio": 5, "visual": 6}
    assert len(dataset.dialogues) == 11
    assert "synthetic" in description
