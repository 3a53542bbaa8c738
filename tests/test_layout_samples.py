"""Self-tests of tests/layout_samples.py: every builder writes what its Sample declares.

Plain ``pickle.load`` is used here only because these files are our own; COGMEN's stand-in class is registered only
inside the test that loads it.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import sys
from pathlib import Path

import numpy as np
import pytest

from layout_samples import (
    COGMEN_CLASS,
    COGMEN_MODULE,
    IEMOCAP6,
    MALICIOUS_MARKER,
    MELD7,
    SAMPLES,
    UNKNOWN_MODULE,
    Py2Set,
    Py2Unicode,
    Sample,
    lookalike_pairs,
    py2_dumps,
    stand_in_modules,
    write_malicious,
    write_unknown_class,
)

KEYS = sorted(SAMPLES)


def _load(path: Path, sample: Sample | None = None):
    with open(path, "rb") as f:
        if sample is not None and sample.stand_in:
            with stand_in_modules():
                return pickle.load(f, encoding="latin1")
        return pickle.load(f, encoding="latin1")


def _opcodes(path: Path) -> set[str]:
    return {op.name for op, _, _ in pickletools.genops(path.read_bytes())}


def _built(sample: Sample, tmp_path: Path) -> dict[str, Path]:
    out = sample.build(tmp_path / sample.key)
    if isinstance(out, dict):
        return out
    if out.is_dir():
        return {p.name: p for p in sorted(out.iterdir())}
    return {"file": out}


# Index maps of the tuple/list layouts: item -> position, as the peers' loaders unpack them.
TUPLE_INDEX = {
    "sdt-iemocap-12": dict(speakers=1, labels=2, text=3, audio=7, visual=8, sentences=9, train=10, test=11),
    "sdt-meld-13-sentiment": dict(speakers=1, labels=2, text=3, audio=7, visual=8, sentences=9, train=10, test=11,
                                  sentiments=12),
    "sdt-meld-13-devids": dict(speakers=1, labels=2, text=3, audio=7, visual=8, sentences=9, train=10, test=11,
                               valid=12),
    "cfnesa-meld-14": dict(speakers=1, labels=2, sentiments=3, text=4, audio=8, visual=9, sentences=10, train=11,
                           test=12, valid=13),
    "mmgcn-meld-10": dict(speakers=1, labels=2, text=3, audio=4, visual=5, sentences=6, train=7, test=8,
                          sentiments=9),
    "bclstm-meld-9": dict(speakers=1, labels=2, text=3, audio=4, sentences=5, train=6, test=7, sentiments=8),
    "mmgcn-iemocap-9": dict(speakers=1, labels=2, text=3, audio=4, visual=5, sentences=6, train=7, test=8),
    "dialoguegcn-iemocap-9-sets": dict(speakers=1, labels=2, text=3, audio=4, visual=5, sentences=6, train=7, test=8),
    "dialoguegcn-iemocap-9-lists": dict(speakers=1, labels=2, text=3, audio=4, visual=5, sentences=6, train=7, test=8),
    "iemocap-9-4class": dict(speakers=1, labels=2, text=3, audio=4, visual=5, sentences=6, train=7, test=8),
    "cosmic-iemocap-roberta-10": dict(speakers=0, labels=1, text=2, sentences=6, train=7, test=8, valid=9),
    "cosmic-meld-roberta-11": dict(speakers=0, labels=1, sentiments=2, text=3, sentences=7, train=8, test=9, valid=10),
}


def test_the_registry_is_complete_and_consistent():
    expected = {
        "sdt-iemocap-12", "sdt-meld-13-sentiment", "sdt-meld-13-devids", "cfnesa-meld-14", "mmgcn-meld-10",
        "bclstm-meld-9", "mmgcn-iemocap-9", "dialoguegcn-iemocap-9-sets", "iemocap-9-4class",
        "cosmic-iemocap-roberta-10", "cosmic-meld-roberta-11", "multiemo-iemocap-folder", "multiemo-meld-folder",
        "m3net-joined", "cogmen-iemocap", "corect-iemocap",
    }
    assert expected <= set(SAMPLES)
    for key, sample in SAMPLES.items():
        assert sample.key == key
        assert sample.dataset in ("iemocap", "meld")
        assert len(sample.label_names) == sample.n_classes
        assert sample.n_speakers == (2 if sample.dataset == "iemocap" else 9)
        assert set(sample.dims) <= {"text", "audio", "visual"} and sample.dims
        assert set(sample.feature_sources) == set(sample.dims)
        assert {"train", "test"} <= set(sample.splits) <= {"train", "valid", "test"}
        assert all(sample.splits[s] for s in sample.splits), key
        assert sample.peer_source and sample.producer and sample.description
        for a, b in lookalike_pairs():
            assert a in SAMPLES and b in SAMPLES and a != b


@pytest.mark.parametrize("key", KEYS)
def test_every_class_is_in_train_and_splits_are_disjoint_unless_declared(key):
    sample = SAMPLES[key]
    assert all(count > 0 for count in sample.label_counts("train")), key
    train, test = set(sample.splits["train"]), set(sample.splits["test"])
    assert not train & test
    if "valid" in sample.splits:
        valid = set(sample.splits["valid"])
        assert (valid <= train) == sample.valid_in_train
        assert not valid & test
    for vid, labels in sample.labels.items():
        assert 3 <= len(labels) <= 8
        assert all(0 <= x < sample.n_classes for x in labels)
        assert len(sample.speakers[vid]) == len(labels)
    if sample.sentiment_names is not None:
        assert {x for v in sample.sentiments.values() for x in v} == set(range(len(sample.sentiment_names)))


@pytest.mark.parametrize("key", sorted(TUPLE_INDEX))
def test_tuple_and_list_layouts_hold_what_the_peer_loader_unpacks(key, tmp_path):
    sample = SAMPLES[key]
    (path,) = _built(sample, tmp_path).values()
    assert path.name == sample.filename
    obj = _load(path)
    assert type(obj).__name__ == sample.top_level and len(obj) == sample.length
    index = TUPLE_INDEX[key]
    container = set if sample.split_container == "set" else list
    for split in ("train", "test", "valid"):
        if split in index:
            ids = obj[index[split]]
            assert type(ids) is container
            if container is set:
                assert ids == set(sample.splits[split])
            else:
                assert ids == sample.splits[split]
    assert {vid: list(v) for vid, v in obj[index["labels"]].items()} == sample.labels
    speakers = obj[index["speakers"]]
    assert {vid: speakers[vid] for vid in sample.ids} == sample.speakers
    if sample.dataset == "iemocap":
        assert all(s in ("M", "F") and type(s) is str for v in speakers.values() for s in v)
    else:
        assert all(len(s) == 9 and sum(s) == 1 for v in speakers.values() for s in v)
    assert obj[index["sentences"]] == dict(sample.sentences)
    if "sentiments" in index:
        assert obj[index["sentiments"]] == dict(sample.sentiments)
    else:
        assert sample.sentiment_names is None
    for modality, dim in sample.dims.items():
        stored = obj[index[modality]]
        expected = sample.features(modality)
        assert set(stored) == set(expected)
        for vid, value in stored.items():
            form = sample.feature_form[modality]
            assert isinstance(value, list if form.startswith("rows") else np.ndarray)
            matrix = np.asarray(value)
            assert matrix.shape == (len(sample.labels[vid]), dim)
            assert matrix.dtype == (np.float64 if form == "rows64" else np.float32)
            np.testing.assert_array_equal(matrix.astype(np.float32), expected[vid])
    if sample.text_layers == 4:
        for layer in (1, 2, 3):
            other = obj[index["text"] + layer]
            vid = sample.ids[0]
            assert np.asarray(other[vid]).shape == (len(sample.labels[vid]), 1024)
            assert not np.array_equal(np.asarray(other[vid]), sample.features("text")[vid])


def test_the_13th_meld_item_is_a_sentiment_dict_or_a_dev_id_list(tmp_path):
    sentiment = _load(SAMPLES["sdt-meld-13-sentiment"].build(tmp_path / "a"))[12]
    devids = _load(SAMPLES["sdt-meld-13-devids"].build(tmp_path / "b"))[12]
    assert isinstance(sentiment, dict) and all(isinstance(v, list) for v in sentiment.values())
    assert isinstance(devids, list) and all(isinstance(v, int) for v in devids)


def test_meld_and_iemocap_nine_tuples_differ_where_a_detector_must_look(tmp_path):
    meld = _load(SAMPLES["bclstm-meld-9"].build(tmp_path / "m"))
    iemocap = _load(SAMPLES["mmgcn-iemocap-9"].build(tmp_path / "i"))
    vid_m, vid_i = next(iter(meld[1])), next(iter(iemocap[1]))
    assert isinstance(vid_m, int) and isinstance(vid_i, str)
    assert isinstance(meld[1][vid_m][0], list) and iemocap[1][vid_i][0] in ("M", "F")
    assert isinstance(meld[5][vid_m][0], str)  # sentences
    assert isinstance(iemocap[5][vid_i][0], np.ndarray)  # visual
    assert isinstance(meld[8], dict) and isinstance(iemocap[8], list)


PY2_FILE_NAMES = {"IEMOCAP_features.pkl", "Speakers.pkl"}


@pytest.mark.parametrize("key", sorted(k for k in SAMPLES if SAMPLES[k].python2))
def test_python2_samples_are_real_python2_pickles(key, tmp_path):
    paths = [p for p in _built(SAMPLES[key], tmp_path).values() if p.name in PY2_FILE_NAMES]
    assert paths
    for path in paths:
        data = path.read_bytes()
        ops = _opcodes(path)
        assert data[:2] == b"\x80\x02"
        assert "BINUNICODE" not in ops and "SHORT_BINUNICODE" not in ops
        assert {"SHORT_BINSTRING", "BINSTRING"} <= ops
        assert "STACK_GLOBAL" not in ops  # protocol 4 only
        assert b"cnumpy.core.multiarray\n_reconstruct\n" in data and b"cnumpy\ndtype\n" in data
        assert b"numpy._core" not in data and b"builtins" not in data and b"_codecs" not in data
        obj = _load(path)
        assert isinstance(obj, tuple) and len(obj) == 9
        with pytest.raises(UnicodeDecodeError):  # raw float bytes in a py2 str are not ASCII: latin1 is needed
            with open(path, "rb") as f:
                pickle.load(f)


def test_python2_sets_are_builtin_sets():
    data = py2_dumps((Py2Set(["b", "a"]), frozenset({"x"})))
    assert b"c__builtin__\nset\n" in data and b"c__builtin__\nfrozenset\n" in data
    assert pickle.loads(data, encoding="latin1") == ({"a", "b"}, frozenset({"x"}))


def test_python2_emitter_round_trips_every_supported_type():
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    obj = {
        "s": "x" * 300,
        "u": Py2Unicode("caf\u00e9"),
        "ints": [0, 255, 256, 65536, -1, 2**31, -(2**40)],
        "f": 1.5,
        "b": (True, False, None),
        "t": (1, 2, 3, 4),
        "a": [array, array.astype(np.float64), np.arange(3, dtype=np.int64), np.zeros((0, 4), np.float32)],
        "long": list(range(2500)),
        "big": {i: i for i in range(1500)},
    }
    data = py2_dumps(obj)
    ops = {op.name for op, _, _ in pickletools.genops(data)}
    assert "BINSTRING" in ops and "SHORT_BINSTRING" in ops and "BINUNICODE" in ops  # the one unicode only
    assert "BINGET" in ops  # globals and dtypes are memoised, as cPickle did
    back = pickle.loads(data, encoding="latin1")
    assert back["s"] == obj["s"] and back["u"] == "caf\u00e9" and back["ints"] == obj["ints"]
    assert back["f"] == 1.5 and back["b"] == (True, False, None) and back["t"] == (1, 2, 3, 4)
    for got, want in zip(back["a"], obj["a"]):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    assert back["long"] == obj["long"] and back["big"] == obj["big"]
    with pytest.raises(TypeError):
        py2_dumps(object())


def test_python2_pickles_of_the_registry_have_no_binunicode(tmp_path):
    for key in ("mmgcn-iemocap-9", "dialoguegcn-iemocap-9-sets", "dialoguegcn-iemocap-9-lists"):
        path = SAMPLES[key].build(tmp_path / key)
        ops = _opcodes(path)
        assert "BINUNICODE" not in ops and "SHORT_BINUNICODE" not in ops
        assert SAMPLES[key].python2


@pytest.mark.parametrize("key", ["multiemo-iemocap-folder", "multiemo-meld-folder"])
def test_multiemo_folders(key, tmp_path):
    sample = SAMPLES[key]
    folder = sample.build(tmp_path)
    assert folder.is_dir() and folder.name == sample.filename
    assert sorted(p.name for p in folder.iterdir()) == [
        "AudioFeatures.pkl", "Speakers.pkl", "TextFeatures.pkl", "VisualFeatures.pkl"
    ]
    speakers = _load(folder / "Speakers.pkl")
    if sample.dataset == "iemocap":
        assert len(speakers) == 9 and sample.python2
        assert "BINUNICODE" not in _opcodes(folder / "Speakers.pkl")
    else:
        assert len(speakers) == 10
    assert speakers[7] == sample.splits["train"] and speakers[8] == sample.splits["test"]
    assert {k: speakers[1][k] for k in sample.ids} == sample.speakers
    assert {k: speakers[2][k] for k in sample.ids} == sample.labels
    names = {"text": "TextFeatures.pkl", "audio": "AudioFeatures.pkl", "visual": "VisualFeatures.pkl"}
    for modality, name in names.items():
        with open(folder / name, "rb") as f:
            stored = pickle.load(f)  # MultiEMO loads these without latin1
        expected = sample.features(modality)
        assert set(stored) == set(expected)
        for vid, matrix in stored.items():
            assert matrix.shape == (len(sample.labels[vid]), sample.dims[modality]) and matrix.dtype == np.float32
            np.testing.assert_array_equal(matrix, expected[vid])


@pytest.mark.parametrize("key", ["m3net-joined", "m3net-meld-joined"])
def test_m3net_joined_files(key, tmp_path):
    sample = SAMPLES[key]
    paths = sample.build(tmp_path)
    assert set(paths) == {"text", "audio", "visual"} and paths["audio"] == paths["visual"]
    text = _load(paths["text"])
    av = _load(paths["audio"])
    if sample.dataset == "iemocap":
        assert isinstance(text, list) and len(text) == 10 and len(av) == 9
        roberta, audio, visual, train, test = text[2], av[4], av[5], av[7], av[8]
    else:
        assert isinstance(text, list) and len(text) == 11 and len(av) == 10
        roberta, audio, visual, train, test = text[3], av[4], av[5], av[7], av[8]
    assert train == sample.splits["train"] and test == sample.splits["test"]
    for vid in sample.ids:  # every id of the 9/10-tuple's splits is in the RoBERTa file: the join is complete
        n = len(sample.labels[vid])
        np.testing.assert_array_equal(np.asarray(roberta[vid]), sample.features("text")[vid])
        assert np.asarray(audio[vid]).shape == (n, sample.dims["audio"])
        assert np.asarray(visual[vid]).shape == (n, sample.dims["visual"])


@pytest.mark.parametrize("key", ["cogmen-iemocap", "cogmen-iemocap-4class"])
def test_cogmen_samples_name_cogmens_class(key, tmp_path):
    sample = SAMPLES[key]
    path = sample.build(tmp_path)
    assert COGMEN_MODULE not in sys.modules and "cogmen" not in sys.modules  # nothing leaked from building
    data = path.read_bytes()
    assert b"cogmen.Sample" in data and b"Sample" in data
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(data)
    with stand_in_modules() as cls:
        obj = pickle.loads(data)
    assert "cogmen" not in sys.modules and COGMEN_MODULE not in sys.modules
    assert set(obj) == {"train", "dev", "test"}
    splits = {"train": "train", "dev": "valid", "test": "test"}
    for key_, split in splits.items():
        items = obj[key_]
        assert [s.vid for s in items] == sample.splits[split]
        for s in items:
            assert type(s) is cls and type(s).__module__ == COGMEN_MODULE and type(s).__name__ == COGMEN_CLASS
            assert set(vars(s)) == {"vid", "speaker", "label", "text", "audio", "visual", "sentence",
                                    "sbert_sentence_embeddings"}
            n = len(sample.labels[s.vid])
            assert s.label == sample.labels[s.vid] and s.speaker == sample.speakers[s.vid]
            assert np.asarray(s.text).shape == (n, 100)
            assert np.asarray(s.audio).shape == (n, sample.dims["audio"])
            assert np.asarray(s.visual).shape == (n, sample.dims["visual"])
            assert s.sbert_sentence_embeddings.shape == (n, sample.dims["text"])
            np.testing.assert_array_equal(s.sbert_sentence_embeddings, sample.features("text")[s.vid])
            assert s.sentence == sample.sentences[s.vid]


@pytest.mark.parametrize("key", ["corect-iemocap", "corect-iemocap-4class"])
def test_corect_samples_are_plain_dicts(key, tmp_path):
    sample = SAMPLES[key]
    obj = _load(sample.build(tmp_path))
    assert set(obj) == {"train", "dev", "test"}
    for key_, split in {"train": "train", "dev": "valid", "test": "test"}.items():
        assert [s["vid"] for s in obj[key_]] == sample.splits[split]
        for s in obj[key_]:
            assert set(s) == {"vid", "speakers", "labels", "audio", "visual", "text", "sentence"}
            assert s["labels"] == sample.labels[s["vid"]] and s["speakers"] == sample.speakers[s["vid"]]
            np.testing.assert_array_equal(s["text"], sample.features("text")[s["vid"]])
            assert np.asarray(s["audio"]).shape[1] == 100 and np.asarray(s["visual"]).shape[1] == 512


def test_label_conventions():
    assert SAMPLES["sdt-iemocap-12"].label_names == IEMOCAP6 == (
        "happy", "sad", "neutral", "angry", "excited", "frustrated")
    assert SAMPLES["iemocap-9-4class"].label_names == ("happy", "sad", "neutral", "angry")
    assert SAMPLES["mmgcn-meld-10"].label_names == MELD7
    assert SAMPLES["cosmic-meld-roberta-11"].sentiment_names == ("neutral", "positive", "negative")


def test_the_malicious_pickle_calls_os_system_only_if_loaded_unsafely(tmp_path):
    path = write_malicious(tmp_path)
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(path.read_bytes())]
    assert ("GLOBAL", "os system") in ops and ("REDUCE", None) in ops
    assert not (tmp_path / MALICIOUS_MARKER).exists()

    class Refusing(pickle.Unpickler):
        def find_class(self, module, name):
            raise pickle.UnpicklingError(f"refused {module}.{name}")

    with pytest.raises(pickle.UnpicklingError):
        Refusing(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    assert not (tmp_path / MALICIOUS_MARKER).exists()


def test_the_unknown_class_pickle_names_a_missing_module(tmp_path):
    path = write_unknown_class(tmp_path)
    assert UNKNOWN_MODULE.split(".")[0] not in sys.modules
    with pytest.raises(ModuleNotFoundError):
        _load(path)
    assert UNKNOWN_MODULE.encode() in path.read_bytes()


def test_builds_are_deterministic(tmp_path):
    for key in ("sdt-iemocap-12", "mmgcn-iemocap-9", "dialoguegcn-iemocap-9-sets", "cogmen-iemocap"):
        a = SAMPLES[key].build(tmp_path / "a" / key)
        b = SAMPLES[key].build(tmp_path / "b" / key)
        assert a.read_bytes() == b.read_bytes(), key
