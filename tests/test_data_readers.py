"""Every reader on small files built here in the exact upstream layouts, plus the project format."""

from __future__ import annotations

import io
import pickle
import struct

import numpy as np
import pytest

from mcef.data import (
    IEMOCAP_LABELS,
    MELD_LABELS,
    DialogueDataset,
    load_dataset,
    save_dataset,
)


class Py2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2 did (BINSTRING opcodes), so the file needs encoding='latin1' to load."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_string(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = save_py2_string
    dispatch[bytes] = save_py2_string


def dump_py2(obj, path) -> None:
    """Pickle ``obj`` like Python 2's cPickle (protocol 2, byte strings, numpy under numpy.core)."""
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    path.write_bytes(buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n"))


def dump(obj, path, protocol: int = 4) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)


def upstream_tables(ds: DialogueDataset, one_hot_speakers: int = 0) -> dict:
    """The upstream dicts (videoIDs, videoSpeakers, ...) of ``ds``; train = train + valid as upstream does."""
    ids = ds.splits["train"] + ds.splits["valid"] + ds.splits["test"]
    d = ds.dialogues

    def speakers(did):
        if one_hot_speakers:
            return [np.eye(one_hot_speakers, dtype=np.int64)[s].tolist() for s in d[did].speakers]
        return ["M" if s == 0 else "F" for s in d[did].speakers]

    text = {i: d[i].features["text"].astype(np.float64) for i in ids}  # upstream files hold float64 arrays
    return {
        "videoIDs": {i: [f"{i}_u{t}" for t in range(len(d[i]))] for i in ids},
        "videoSpeakers": {i: speakers(i) for i in ids},
        "videoLabels": {i: d[i].labels.tolist() for i in ids},
        "videoText": text,
        "roberta2": {i: x + 2.0 for i, x in text.items()},
        "roberta3": {i: x + 3.0 for i, x in text.items()},
        "roberta4": {i: x + 4.0 for i, x in text.items()},
        "videoAudio": {i: d[i].features["audio"].astype(np.float64) for i in ids},
        "videoVisual": {i: d[i].features["visual"].astype(np.float64) for i in ids},
        "videoSentence": {i: [f"utterance {t} of {i}" for t in range(len(d[i]))] for i in ids},
        "trainVid": ds.splits["train"] + ds.splits["valid"],
        "testVid": list(ds.splits["test"]),
    }


SDT_KEYS = ("videoIDs", "videoSpeakers", "videoLabels", "videoText", "roberta2", "roberta3", "roberta4",
            "videoAudio", "videoVisual", "videoSentence", "trainVid", "testVid")
MMGCN_KEYS = ("videoIDs", "videoSpeakers", "videoLabels", "videoText", "videoAudio", "videoVisual",
              "videoSentence", "trainVid", "testVid")


def write_sdt_iemocap(ds, path, edit=None):
    """Write ``ds`` as SDT's 12-tuple; ``edit(tables)`` may corrupt the tables first."""
    tables = upstream_tables(ds)
    if edit:
        edit(tables)
    dump(tuple(tables[k] for k in SDT_KEYS), path)
    return path


def assert_same_content(loaded: DialogueDataset, original: DialogueDataset, modalities) -> None:
    for did, dialogue in original.dialogues.items():
        got = loaded.dialogues[did]
        np.testing.assert_array_equal(got.labels, dialogue.labels)
        np.testing.assert_array_equal(got.speakers, dialogue.speakers)
        for m in modalities:
            np.testing.assert_array_equal(got.features[m], dialogue.features[m])


def test_sdt_iemocap_12_tuple(tiny_dataset, tmp_path):
    path = write_sdt_iemocap(tiny_dataset, tmp_path / "iemocap_multimodal_features.pkl")
    ds = load_dataset(path, split_seed=3)
    assert ds.name == "iemocap" and ds.label_names == IEMOCAP_LABELS and ds.speaker_names == ("M", "F")
    assert ds.dims == tiny_dataset.dims
    assert_same_content(ds, tiny_dataset, ("text", "audio", "visual"))
    assert ds.splits["test"] == tiny_dataset.splits["test"]
    assert sorted(ds.splits["train"] + ds.splits["valid"]) == sorted(tiny_dataset.splits["train"] + tiny_dataset.splits["valid"])
    assert len(ds.splits["valid"]) == 1 and "seeded" in ds.meta["valid_split"]
    first = ds.splits["test"][0]
    assert ds.dialogues[first].sentences[0] == f"utterance 0 of {first}"
    assert ds.dialogues[first].features["text"].dtype == np.float32


@pytest.mark.parametrize("layer, offset", [("videoText", 0.0), ("roberta2", 2.0), ("roberta3", 3.0), ("roberta4", 4.0)])
def test_sdt_text_layer_choice(tiny_dataset, tmp_path, layer, offset):
    path = write_sdt_iemocap(tiny_dataset, tmp_path / "f.pkl")
    ds = load_dataset(path, text_layer=layer)
    did = ds.splits["test"][0]
    expected = (tiny_dataset.dialogues[did].features["text"].astype(np.float64) + offset).astype(np.float32)
    np.testing.assert_array_equal(ds.dialogues[did].features["text"], expected)
    assert ds.meta["text_layer"] == layer


def test_sdt_meld_13_tuple(tiny_dataset, tmp_path):
    tables = upstream_tables(tiny_dataset, one_hot_speakers=9)
    sentiment = {i: [0] * len(v) for i, v in tables["videoLabels"].items()}
    path = tmp_path / "meld_multimodal_features.pkl"
    dump(tuple(tables[k] for k in SDT_KEYS) + (sentiment,), path)
    ds = load_dataset(path)
    assert ds.name == "meld" and ds.label_names == MELD_LABELS and ds.n_speakers == 9
    assert_same_content(ds, tiny_dataset, ("text", "audio", "visual"))
    assert "seeded" in ds.meta["valid_split"]


def test_sdt_meld_13th_item_as_valid_ids(tiny_dataset, tmp_path):
    tables = upstream_tables(tiny_dataset, one_hot_speakers=9)
    path = tmp_path / "meld.pkl"
    dump(tuple(tables[k] for k in SDT_KEYS) + (list(tiny_dataset.splits["valid"]),), path)
    ds = load_dataset(path)
    assert ds.splits == tiny_dataset.splits
    assert ds.meta["valid_split"].startswith("from the file")


def test_mmgcn_9_tuple_python2_pickle(tiny_dataset, tmp_path):
    tables = upstream_tables(tiny_dataset)
    tables["videoText"] = {i: list(x) for i, x in tables["videoText"].items()}  # MMGCN keeps per-utterance vectors
    path = tmp_path / "IEMOCAP_features.pkl"
    dump_py2(tuple(tables[k] for k in MMGCN_KEYS), path)
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(path.read_bytes())  # it really is a Python 2 pickle
    ds = load_dataset(path)
    assert ds.name == "iemocap" and ds.meta["format"].startswith("MMGCN")
    assert_same_content(ds, tiny_dataset, ("text", "audio", "visual"))
    did = ds.splits["train"][0]
    assert ds.dialogues[did].sentences[1] == f"utterance 1 of {did}"


def test_transcript_pickles_iemocap_and_meld(tiny_dataset, tmp_path):
    t = upstream_tables(tiny_dataset)
    iemocap = tmp_path / "iemocap_text.pkl"
    dump_py2([t["videoSpeakers"], t["videoLabels"], t["videoSentence"], tiny_dataset.splits["train"],
              tiny_dataset.splits["test"], tiny_dataset.splits["valid"]], iemocap)
    ds = load_dataset(iemocap)
    assert ds.modalities == () and ds.dims == {}
    assert ds.splits == tiny_dataset.splits
    assert_same_content(ds, tiny_dataset, ())
    m = upstream_tables(tiny_dataset, one_hot_speakers=9)
    meld = tmp_path / "meld_text.pkl"
    sentiment = {i: [1] * len(v) for i, v in m["videoLabels"].items()}
    dump([m["videoSpeakers"], m["videoLabels"], sentiment, m["videoSentence"], tiny_dataset.splits["train"],
          tiny_dataset.splits["test"], tiny_dataset.splits["valid"]], meld, protocol=2)
    ds = load_dataset(meld)
    assert ds.name == "meld" and ds.n_speakers == 9 and ds.modalities == ()
    assert_same_content(ds, tiny_dataset, ())


def test_project_format_round_trip_and_conversion(tiny_dataset, tmp_path):
    path = write_sdt_iemocap(tiny_dataset, tmp_path / "f.pkl")
    ds = load_dataset(path)
    out = save_dataset(ds, tmp_path / "converted")
    assert sorted(p.name for p in out.iterdir()) == [
        "features_audio.npy", "features_text.npy", "features_visual.npy", "index.json", "labels.npy",
        "sentences.json", "speakers.npy",
    ]
    back = load_dataset(out)
    assert back.splits == ds.splits and back.label_names == ds.label_names and back.meta == ds.meta
    assert_same_content(back, ds, ("text", "audio", "visual"))
    assert [back.dialogues[d].sentences for d in ds.dialogues] == [ds.dialogues[d].sentences for d in ds.dialogues]
    assert load_dataset(out / "index.json").splits == ds.splits  # the index file itself is accepted too


def test_save_replaces_an_existing_dataset(tiny_dataset, tmp_path):
    save_dataset(tiny_dataset, tmp_path / "ds")
    save_dataset(tiny_dataset, tmp_path / "ds")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no temporary or backup left behind
    assert load_dataset(tmp_path / "ds").splits == tiny_dataset.splits


def test_real_iemocap_transcripts(real_data):
    ds = load_dataset(real_data / "iemocap_text.pkl")
    assert len(ds.dialogues) == 151
    assert sum(len(d) for d in ds.dialogues.values()) == 7433
    assert [len(ds.splits[s]) for s in ("train", "valid", "test")] == [108, 12, 31]
    assert ds.class_counts("test").tolist() == [144, 245, 384, 170, 299, 381]
    assert ds.modalities == () and ds.speaker_names == ("M", "F")
    assert ds.meta["valid_split"].startswith("from the file")


def test_real_meld_transcripts(real_data):
    ds = load_dataset(real_data / "meld_text.pkl")
    assert len(ds.dialogues) == 1432 and ds.n_speakers == 9 and ds.label_names == MELD_LABELS
    assert [len(ds.splits[s]) for s in ("train", "valid", "test")] == [1038, 114, 280]
    assert ds.class_counts("test").sum() == 2610
