"""The training commands of the CLI: help texts, a smoke train -> evaluate -> predict, clear config errors."""

import json
from pathlib import Path

import pytest

from mcef.cli import main

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
TINY = ["--set", "model.hidden=16", "--set", "model.n_heads=2", "--set", "model.n_self_heads=2", "--set",
        "train.epochs=1"]


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "sweep", "bench"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert f"usage: mcef {command}" in capsys.readouterr().out


def test_train_evaluate_predict_sweep(tmp_path, capsys):
    train = ["train", "--config", str(CONFIGS / "smoke.yaml"), *TINY, "--runs-root", str(tmp_path), "--quiet"]
    assert main(train) == 0
    out = capsys.readouterr().out
    [run] = tmp_path.glob("smoke-*")  # RUNS_ROOT/<name>-<config digest[:8]>
    assert "selected epoch 1" in out and f"run smoke in {run}:" in out
    assert (run / "summary.json").exists()
    assert main([*train, "--set", "train.lr=0.01"]) == 0  # another config: another default run directory
    assert len(list(tmp_path.glob("smoke-*"))) == 2
    capsys.readouterr()
    assert main(["evaluate", str(run), "--split", "valid", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["split"] == "valid"
    assert main(["predict", str(run), "--out", str(tmp_path / "p.json"), "--device", "cpu"]) == 0
    assert "utterance predictions" in capsys.readouterr().out
    assert json.loads((tmp_path / "p.json").read_text())[0]["dialogue_id"]

    args = ["sweep", "--config", str(CONFIGS / "smoke.yaml"), *TINY, "--seeds", "0", "1", "--root",
            str(tmp_path / "sweep"), "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "test_accuracy" in out and " ± " in out
    summary = tmp_path / "sweep" / "smoke" / "seed1" / "summary.json"
    stamp = summary.stat().st_mtime_ns
    assert main(args) == 0  # finished runs are skipped
    assert summary.stat().st_mtime_ns == stamp


@pytest.mark.parametrize("override, message", [
    ("train.lr=fast", "train.lr: expected a number"),
    ("model.dropuot=0.1", "unknown key 'model.dropuot'"),
])
def test_bad_config_is_a_clear_cli_error(override, message, tmp_path, capsys):
    code = main(["train", "--config", str(CONFIGS / "smoke.yaml"), "--set", override, "--runs-root", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and message in err and "smoke.yaml" in err
