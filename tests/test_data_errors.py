"""Every bad input of issue item 6 gets a clear DataError naming the file, the key and what was expected."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from mcef.data import DataError, load_dataset, save_dataset
from mcef.data.readers import ENV_DATA
from test_data_readers import SDT_KEYS, dump, upstream_tables, write_sdt_iemocap


def first_train(tables) -> str:
    return tables["trainVid"][0]


def test_missing_file_says_where_what_and_how(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_DATA, str(tmp_path))
    with pytest.raises(DataError) as err:
        load_dataset("iemocap_multimodal_features.pkl")
    message = str(err.value)
    assert "not found" in message and str(tmp_path / "iemocap_multimodal_features.pkl") in message
    assert "12-tuple" in message and "MMGCN" in message and "project dataset directory" in message
    assert "data/" in message and "data/README.md" in message


def test_unknown_format(tmp_path):
    path = tmp_path / "features.csv"
    path.write_text("id,label\nSes01,3\n")
    with pytest.raises(DataError, match="unknown format.*features.csv|features.csv.*unknown format"):
        load_dataset(path)
    np.save(tmp_path / "x.npy", np.zeros(3))
    with pytest.raises(DataError, match="unknown format"):
        load_dataset(tmp_path / "x.npy")


def test_directory_without_index(tmp_path):
    with pytest.raises(DataError, match="without index.json"):
        load_dataset(tmp_path)


def test_wrong_tuple_length(tmp_path):
    path = tmp_path / "odd.pkl"
    dump(tuple({} for _ in range(10)), path)
    with pytest.raises(DataError) as err:
        load_dataset(path)
    message = str(err.value)
    # every candidate is named with where it disagreed: the two 10-item layouts at their first split list, the
    # others by their length
    assert "odd.pkl" in message and "a tuple of 10 items and matches no known layout" in message
    assert "mmgcn-meld-10 (MELD_features_raw1.pkl) disagrees at index 7: item 'trainVid' is a dict" in message
    assert "cosmic-iemocap-roberta-10 (iemocap_features_roberta.pkl) disagrees at index 7" in message
    assert "sdt-iemocap-12 12" in message and "mmgcn-iemocap-9 9" in message and "cogmen-iemocap" in message


def test_dialogue_missing_from_a_modality(tiny_dataset, tmp_path):
    def edit(t):
        del t["videoAudio"][first_train(t)]

    path = write_sdt_iemocap(tiny_dataset, tmp_path / "f.pkl", edit)
    with pytest.raises(DataError, match=r"f.pkl: dialogue 'train_000' is missing from 'videoAudio' \(audio\)"):
        load_dataset(path)


def test_inconsistent_feature_dims(tiny_dataset, tmp_path):
    def edit(t):
        did = t["testVid"][0]
        t["videoVisual"][did] = t["videoVisual"][did][:, :5]

    path = write_sdt_iemocap(tiny_dataset, tmp_path / "f.pkl", edit)
    with pytest.raises(DataError, match=r"f.pkl: dialogue 'test_000', modality 'visual': feature dimension 5 differs from 8"):
        load_dataset(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_features_name_dialogue_and_utterance(tiny_dataset, tmp_path, bad):
    def edit(t):
        t["videoText"][first_train(t)][3, 2] = bad

    path = write_sdt_iemocap(tiny_dataset, tmp_path / "f.pkl", edit)
    with pytest.raises(DataError, match=r"f.pkl: dialogue 'train_000', modality 'text', utterance 3: features contain NaN or inf"):
        load_dataset(path)


def test_label_out_of_range(tiny_dataset, tmp_path):
    def edit(t):
        t["videoLabels"][first_train(t)][1] = 6

    path = write_sdt_iemocap(tiny_dataset, tmp_path / "f.pkl", edit)
    with pytest.raises(DataError, match=r"f.pkl: dialogue 'train_000': label 6 at utterance 1 is out of range; expected 0..5"):
        load_dataset(path)


def test_empty_dialogue(tiny_dataset, tmp_path):
    def edit(t):
        did = first_train(t)
        for key in ("videoSpeakers", "videoLabels", "videoSentence"):
            t[key][did] = []
        for key in ("videoText", "roberta2", "roberta3", "roberta4", "videoAudio", "videoVisual"):
            t[key][did] = t[key][did][:0]

    path = write_sdt_iemocap(tiny_dataset, tmp_path / "f.pkl", edit)
    with pytest.raises(DataError, match=r"f.pkl: dialogue 'train_000' is empty"):
        load_dataset(path)


def test_split_naming_unknown_dialogue(tiny_dataset, tmp_path):
    def edit(t):
        t["testVid"].append("Ses99_ghost")

    path = write_sdt_iemocap(tiny_dataset, tmp_path / "f.pkl", edit)
    with pytest.raises(DataError, match=r"f.pkl: split 'testVid' names 1 dialogue\(s\) absent from videoLabels, e.g. 'Ses99_ghost'"):
        load_dataset(path)


def test_truncated_pickle(tiny_dataset, tmp_path):
    full = write_sdt_iemocap(tiny_dataset, tmp_path / "full.pkl").read_bytes()
    path = tmp_path / "cut.pkl"
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(DataError, match=r"cut.pkl: truncated or corrupt pickle"):
        load_dataset(path)


def test_truncated_project_array(tiny_dataset, tmp_path):
    out = save_dataset(tiny_dataset, tmp_path / "ds")
    data = (out / "features_audio.npy").read_bytes()
    (out / "features_audio.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"features_audio.npy"):
        load_dataset(out)


def test_project_index_missing_key(tiny_dataset, tmp_path):
    out = save_dataset(tiny_dataset, tmp_path / "ds")
    index = json.loads((out / "index.json").read_text())
    del index["splits"]
    (out / "index.json").write_text(json.dumps(index))
    with pytest.raises(DataError, match=r"index.json: key 'splits' is missing"):
        load_dataset(out)


def test_bad_speakers_and_non_rectangular_features(tiny_dataset, tmp_path):
    def speakers(t):
        t["videoSpeakers"][first_train(t)][0] = "X"

    with pytest.raises(DataError, match=r"videoSpeakers\['train_000'\] holds \['X'\]; expected 'M' or 'F'"):
        load_dataset(write_sdt_iemocap(tiny_dataset, tmp_path / "a.pkl", speakers))

    def ragged(t):
        did = first_train(t)
        t["videoAudio"][did] = [np.zeros(24), np.zeros(23)] + [np.zeros(24)] * (len(t["videoLabels"][did]) - 2)

    with pytest.raises(DataError, match=r"videoAudio\['train_000'\] is not a rectangular numeric array"):
        load_dataset(write_sdt_iemocap(tiny_dataset, tmp_path / "b.pkl", ragged))


def test_unknown_text_layer(tiny_dataset, tmp_path):
    with pytest.raises(DataError, match="text_layer 'roberta9' is unknown"):
        load_dataset(write_sdt_iemocap(tiny_dataset, tmp_path / "f.pkl"), text_layer="roberta9")


def test_failed_write_leaves_nothing(tiny_dataset, tmp_path, monkeypatch):
    calls = []

    def failing_save(file, arr, *args, **kwargs):
        calls.append(file)
        if len(calls) == 2:
            raise OSError("disk full")
        return original(file, arr, *args, **kwargs)

    original = np.save
    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_dataset(tiny_dataset, tmp_path / "ds")
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_to_overwrite_other_things(tiny_dataset, tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="not an mcef dataset directory"):
        save_dataset(tiny_dataset, tmp_path / "notes")
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"


def test_pickle_that_is_not_a_tuple(tmp_path):
    path = tmp_path / "d.pkl"
    dump({"a": 1}, path)
    with pytest.raises(DataError, match="holds a dict; expected a tuple or list"):
        load_dataset(path)


def test_error_is_a_value_error():
    assert issubclass(DataError, ValueError)
    assert pickle.loads(pickle.dumps(DataError("x"))).args == ("x",)


def test_an_allowed_module_missing_here_is_one_clear_error(tmp_path, monkeypatch):
    """A numpy module this installation lacks (a file of another numpy major version) is a DataError, not a
    traceback: numpy.core <-> numpy._core are tried both ways first."""
    import importlib

    import mcef.data.safe_pickle as safe_pickle

    path = tmp_path / "f.pkl"
    path.write_bytes(pickle.dumps(({"d": np.zeros((2, 3), dtype=np.float32)},), protocol=2))
    real = importlib.import_module

    def without_numpy_internals(name, *args):
        if name.startswith(("numpy._core", "numpy.core")):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real(name, *args)

    monkeypatch.setattr(safe_pickle.importlib, "import_module", without_numpy_internals)
    with pytest.raises(DataError, match=r"f.pkl: the pickle asks for numpy\._?core\.multiarray\._reconstruct, which "
                                        "this installation does not have"):
        safe_pickle.safe_load(path)
