"""Issue 11, item 6: every bad input gets a clear error naming the file, the key and what was expected.

Never a traceback, never silent acceptance: the project-format index, CSV transcripts, peer pickles, devices,
``--out`` paths, bench arguments, config values; and a notice when a run is scored on data it was not trained on.
Every case builds its own tiny input under ``tmp_path``.

Decisions pinned here: ``data.valid_fraction`` is in [0, 1) and 0 means "the file's own validation split" (reading a
file without one is then an error); a CSV whose labels are IEMOCAP's or MELD's but for one or two names rejects those
as typos; ``predict`` on other data adds a ``data_notice`` column to every row (CSV and JSON) and writes the notice to
stderr; a well-formed device this machine lacks (``cuda:3`` here) passes the config and fails where it is used.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mcef.cli import main
from mcef.config import ConfigError, load_config
from mcef.data import DataError, SyntheticConfig, load_dataset, make_synthetic, save_dataset
from mcef.device import DeviceError, resolve_device
from mcef.features.text import read_transcript_csv
from test_data_readers import SDT_KEYS, dump, upstream_tables, write_sdt_iemocap

pytestmark = pytest.mark.faults  # part of the fault-injection suite (issue 11, item 7): `pytest -m faults`

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"


# --- the project format's index.json ------------------------------------------------------------------------------

def _edit_index(dataset, directory: Path, edit) -> Path:
    out = save_dataset(dataset, directory / "ds")
    index = json.loads((out / "index.json").read_text())
    edit(index)
    (out / "index.json").write_text(json.dumps(index))
    return out


def _set(key, value):
    return lambda index: index.__setitem__(key, value)


def _dialogue(i, key, change):
    def edit(index):
        entry = index["dialogues"][i]
        entry[key] = change(entry[key])
    return edit


def _overlap(index):
    index["dialogues"][1]["offset"] -= 2
    index["dialogues"][1]["length"] += 2


INDEX_CASES = {
    # the case: a negative length made dialogue 0 a view of rows that other dialogues own
    "negative length": (_dialogue(0, "length", lambda n: -3), "dialogue 'train_000' has length -3; expected at least 1"),
    "zero length": (_dialogue(0, "length", lambda n: 0), "has length 0; expected at least 1"),
    "negative offset": (_dialogue(1, "offset", lambda o: -1), "dialogue 'train_001' has offset -1"),
    "overlapping offsets": (_overlap, "overlaps dialogue 'train_000'"),
    "gap between dialogues": (_dialogue(0, "length", lambda n: n - 1), "belong to no dialogue"),
    "rows left uncovered": (_dialogue(-1, "length", lambda n: n - 1), "the dialogues cover rows 0..152 but labels.npy has 153"),
    "span past the rows": (_dialogue(-1, "length", lambda n: n + 1), "expected within 0..153"),
    "float offset": (_dialogue(1, "offset", lambda o: o + 0.5), "offset is 13.5; expected a non-negative integer"),
    "string length": (_dialogue(1, "length", lambda n: "x"), "length is 'x'; expected a non-negative integer"),
    "duplicate dialogue id": (lambda i: i["dialogues"][1].__setitem__("id", "train_000"),
                              "lists dialogue 'train_000' more than once"),
    "dialogues not a list": (_set("dialogues", {"a": 1}), "key 'dialogues' is a dict; expected a non-empty list"),
    "label names repeated": (lambda i: i["label_names"].__setitem__(1, "happy"),
                             "key 'label_names' names 'happy' more than once"),
    "too few label names": (lambda i: i.__setitem__("label_names", i["label_names"][:3]),
                            "key 'label_names' has 3 names but labels.npy uses indices up to 5; expected at least 6"),
    "label names a string": (_set("label_names", "abcdef"), "key 'label_names' is 'abcdef'; expected a list of"),
    "speaker names repeated": (_set("speaker_names", ["A", "A"]), "key 'speaker_names' names 'A' more than once"),
    "too few speaker names": (_set("speaker_names", ["A"]), "key 'speaker_names' has 1 names"),
    "splits a list": (lambda i: i.__setitem__("splits", list(i["splits"].values())),
                      "key 'splits' is a list; expected a mapping of split name"),
    "split ids a string": (lambda i: i["splits"].__setitem__("test", "test_000"), "splits.test is a str"),
    "split ids nested": (lambda i: i["splits"].__setitem__("test", [i["splits"]["test"]]),
                         "splits.test holds ['test_000', 'test_001', 'test_002'] (list); expected dialogue ids"),
    "unknown split name": (lambda i: i["splits"].__setitem__("holdout", []), "has split 'holdout'"),
    "split names an unknown dialogue": (lambda i: i["splits"]["test"].append("ghost"),
                                        "splits.test names dialogue 'ghost'"),
    "modalities a list": (lambda i: i.__setitem__("modalities", list(i["modalities"])),
                          "key 'modalities' is a list; expected a mapping"),
    "modality dim not an integer": (lambda i: i["modalities"].__setitem__("text", "16"),
                                    "modalities.text is '16'; expected a positive feature dimension"),
}


@pytest.mark.parametrize("case", list(INDEX_CASES))
def test_bad_project_index_is_a_clear_error(tiny_dataset, tmp_path, case):
    edit, message = INDEX_CASES[case]
    out = _edit_index(tiny_dataset, tmp_path, edit)
    with pytest.raises(DataError) as err:
        load_dataset(out)
    assert str(out / "index.json") in str(err.value)
    assert message in str(err.value)


def test_negative_length_no_longer_leaks_test_rows_into_training(tiny_dataset, tmp_path):
    """The issue's report: with length -3, dialogue 0's rows were rows[0:-3], every test utterance included."""
    out = _edit_index(tiny_dataset, tmp_path, _dialogue(0, "length", lambda n: -3))
    with pytest.raises(DataError, match="train_000"):
        load_dataset(out)


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[: len(b) // 2], "not valid JSON, truncated or damaged"),
    (lambda b: b.replace(b'"synthetic"', b'"synth\xe9tic"', 1), "not UTF-8 text (byte 0xe9"),
    (lambda b: b"", "not valid JSON"),
    (lambda b: b"[1, 2]", "key 'format' is None"),
])
def test_truncated_or_undecodable_index_json(tiny_dataset, tmp_path, damage, message):
    out = save_dataset(tiny_dataset, tmp_path / "ds")
    (out / "index.json").write_bytes(damage((out / "index.json").read_bytes()))
    with pytest.raises(DataError) as err:
        load_dataset(out)
    assert str(out / "index.json") in str(err.value) and message in str(err.value)


def _sentences(dataset, edit=None) -> list:
    sentences = [[f"u{t}" for t in range(len(d))] for d in dataset.dialogues.values()]
    if edit:
        edit(sentences)
    return sentences


@pytest.mark.parametrize("content, message", [
    (lambda ds: json.dumps(_sentences(ds))[:30], "not valid JSON, truncated or damaged"),
    (lambda ds: json.dumps(_sentences(ds, lambda s: s[0].__setitem__(1, None))),
     "dialogue 'train_000', sentence 1 is None; expected a string"),
    (lambda ds: json.dumps(_sentences(ds, lambda s: s[0].pop())), "expected null or a list of 13 strings"),
    (lambda ds: json.dumps(_sentences(ds)[:-1]), "expected a list with one entry per dialogue (12)"),
])
def test_bad_sentences_json(tiny_dataset, tmp_path, content, message):
    out = save_dataset(tiny_dataset, tmp_path / "ds")
    (out / "sentences.json").write_text(content(tiny_dataset))
    with pytest.raises(DataError) as err:
        load_dataset(out)
    assert "sentences.json" in str(err.value) and message in str(err.value)


# --- CSV transcripts ----------------------------------------------------------------------------------------------

HEADER = "dialogue_id,utterance_index,speaker,text,label,split\n"
GOOD = ["d0,0,A,hi,joy,train", "d0,1,B,yo,anger,train", "d1,0,A,hey,neutral,train", "d1,1,B,ok,joy,train",
        "d2,0,A,x,joy,test", "d2,1,B,y,neutral,test"]

CSV_CASES = {
    "short row": (GOOD + ["d2,2,A,short"], "line 8: 4 fields; expected 6"),
    "long row": (GOOD + ["d2,2,A,long,joy,test,extra"], "line 8: 7 fields; expected 6"),
    "unclosed quote": (GOOD[:3] + ['d1,1,B,"unclosed,joy,train'] + GOOD[4:], "line 5: unexpected end of data (an unclosed quote?)"),
    "stray quote after a quoted field": (GOOD + ['d2,2,A,"quoted"rest,joy,test'], "line 8: ',' expected after"),
    "label typo among MELD labels": (GOOD + ["d2,2,A,z,joyy,test"], "line 8: column 'label' has 'joyy', not a MELD label"),
    "gap in utterance indices": (GOOD + ["d2,3,A,z,joy,test"], "dialogue 'd2': column 'utterance_index' jumps from 1 to 3 (line 8)"),
    "indices not starting at 0 or 1": ([r.replace(",0,", ",5,").replace(",1,", ",6,") if r.startswith("d2") else r
                                        for r in GOOD], "dialogue 'd2': column 'utterance_index' starts at 5"),
    "negative utterance index": (GOOD + ["d2,-1,A,z,joy,test"], "line 8: column 'utterance_index' has -1"),
    "empty dialogue id": (GOOD + [",2,A,z,joy,test"], "line 8: column 'dialogue_id' is empty"),
    "empty label": (GOOD + ["d2,2,A,z,,test"], "line 8: column 'label' is empty"),
    "integers mixed with names": (GOOD + ["d2,2,A,z,3,test"], "line 8: column 'label' has '3' but other rows hold names"),
}


def _csv(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "c.csv"
    path.write_text(HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("case", list(CSV_CASES))
def test_bad_csv_transcripts(tmp_path, case):
    rows, message = CSV_CASES[case]
    path = _csv(tmp_path, rows)
    with pytest.raises(DataError) as err:
        read_transcript_csv(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_csv_bytes_that_are_not_utf8(tmp_path):
    path = tmp_path / "c.csv"
    path.write_bytes((HEADER + "\n".join(GOOD) + "\n").replace("hey", "h\xe9y").encode("latin-1"))
    with pytest.raises(DataError, match=r"c.csv, line 4: byte 0xe9 is not UTF-8; expected a UTF-8 CSV"):
        read_transcript_csv(path)


def test_csv_label_outside_the_label_set_is_rejected_not_a_new_class(tmp_path):
    path = _csv(tmp_path, GOOD + ["d2,2,A,z,rage,test"])
    with pytest.raises(DataError, match=r"line 8: column 'label' has 'rage'; expected one of \['joy', 'anger', 'neutral'\]"):
        read_transcript_csv(path, label_names=("joy", "anger", "neutral"))
    with pytest.raises(DataError, match="not a MELD label"):  # without label_names: a likely typo, not a 4th class
        read_transcript_csv(path)
    # a corpus of its own labels (not mostly IEMOCAP's or MELD's) keeps them; 1-based indices are fine
    own = _csv(tmp_path, ["a,1,A,x,pos,train", "a,2,B,y,neg,train", "b,1,A,z,pos,train", "c,1,A,w,neg,test"])
    assert read_transcript_csv(own).label_names == ("neg", "pos")


# --- peer pickles (readers.py) ------------------------------------------------------------------------------------

def _first(t) -> str:
    return t["trainVid"][0]


PICKLE_CASES = {
    "None sentence": (lambda t: t["videoSentence"][_first(t)].__setitem__(1, None),
                      "videoSentence['train_000'][1] is None (NoneType); expected a string"),
    "sentences None": (lambda t: t["videoSentence"].__setitem__(_first(t), None),
                       "videoSentence['train_000'] is NoneType; expected a list of strings"),
    "nested list in split ids": (lambda t: t.__setitem__("testVid", [t["testVid"][:1]] + t["testVid"][1:]),
                                 "item 'testVid' holds ['test_000'] (list) at position 0; expected a flat list"),
    "None in split ids": (lambda t: t["testVid"].append(None), "item 'testVid' holds None (NoneType) at position 3"),
    "repeated split id": (lambda t: t["testVid"].append(t["testVid"][0]), "lists dialogue 'test_000' more than once"),
    "features as strings": (lambda t: t["videoAudio"].__setitem__(
        _first(t), [[str(v) for v in row] for row in t["videoAudio"][_first(t)]]),
        "videoAudio['train_000'] is not a rectangular numeric array (dtype <U"),
    "features a string": (lambda t: t["videoAudio"].__setitem__(_first(t), "0.1 0.2"),
                          "videoAudio['train_000'] is a str; expected an (utterances, dim) array of numbers"),
    "features as booleans": (lambda t: t["videoText"].__setitem__(_first(t), t["videoText"][_first(t)] > 0),
                             "videoText['train_000'] is not a rectangular numeric array (dtype bool"),
    "labels as strings": (lambda t: t["videoLabels"].__setitem__(_first(t), [str(v) for v in t["videoLabels"][_first(t)]]),
                          "videoLabels['train_000'] has shape"),
    "speakers not a dict": (lambda t: t.__setitem__("videoSpeakers", list(t["videoSpeakers"].values())),
                            "item 'videoSpeakers' is a list; expected a dict"),
}


@pytest.mark.parametrize("case", list(PICKLE_CASES))
def test_bad_peer_pickles(tiny_dataset, tmp_path, case):
    edit, message = PICKLE_CASES[case]
    path = write_sdt_iemocap(tiny_dataset, tmp_path / "f.pkl", edit)
    with pytest.raises(DataError) as err:
        load_dataset(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_one_hot_speakers_given_as_strings(tiny_dataset, tmp_path):
    tables = upstream_tables(tiny_dataset, one_hot_speakers=3)
    did = tables["trainVid"][0]
    tables["videoSpeakers"][did] = [[str(v) for v in row] for row in tables["videoSpeakers"][did]]
    dump(tuple(tables[k] for k in SDT_KEYS) + (None,), tmp_path / "meld.pkl")
    with pytest.raises(DataError, match=r"meld.pkl: videoSpeakers\['train_000'\] holds <U1 values"):
        load_dataset(tmp_path / "meld.pkl")


# --- devices ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, message", [
    ("tpu", "'tpu': not a device name"),
    ("cpu:5", "'cpu:5': only CUDA devices take an index"),
    ("mps:1", "'mps:1': only CUDA devices take an index"),
    ("", "'': not a device name"),
    ("cuda:9", "'cuda:9' was asked for, but"),  # no CUDA here, or fewer than 10 GPUs
])
def test_devices_that_do_not_exist(name, message):
    with pytest.raises(DeviceError) as err:
        resolve_device(name)
    text = str(err.value)
    assert message in text and "train.device" in text and "--device" in text
    assert "'auto'" in text and "'cpu'" in text  # what is accepted


@pytest.mark.parametrize("name", ["tpu", "cpu:5", "gpu", "cuda:x"])
def test_malformed_device_in_config_names_the_key(name):
    with pytest.raises(ConfigError, match=rf"train.device \(--device\): '{name}'.*expected 'auto', 'cpu', 'cuda'"):
        load_config(None, [f"train.device={name}"])


def test_config_for_another_machine_still_loads():
    """A well-formed device this machine lacks is checked when used (resolve_device), not when read."""
    assert load_config(None, ["train.device=cuda:3"]).train.device == "cuda:3"


# --- config values ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("override, message", [
    ("data.valid_fraction=1.5", "data.valid_fraction must be in [0, 1)"),
    ("data.valid_fraction=1", "data.valid_fraction must be in [0, 1)"),
    ("data.valid_fraction=-0.1", "data.valid_fraction must be in [0, 1)"),
    ("data.valid_fraction=.nan", "data.valid_fraction must be in [0, 1)"),
    ("data.synthetic={dims: [0, 4, 4]}", "data.synthetic.dims: expected 3 positive integer feature dims"),
    ("data.synthetic={dims: [4, 4]}", "data.synthetic.dims: expected 3 positive integer feature dims"),
    ("data.synthetic={drift_rho: 1.0}", "data.synthetic.drift_rho: expected an AR(1) coefficient in (-1, 1)"),
    ("data.synthetic={valid_fraction: 0}", "data.synthetic.valid_fraction: expected a share in (0, 1)"),
    ("data.synthetic={n_trian: 3}", "unknown key 'data.synthetic.n_trian'"),
    ("loss={fused_ce: 0, modality_ce: 0, soft_hgr: 0, kl: 0}", "every loss weight (loss.fused_ce, loss.modality_ce, "
                                                              "loss.soft_hgr, loss.kl) is 0: nothing to train"),
    ("loss.soft_hgr=-0.4", "loss.soft_hgr must be >= 0"),
    ("train.seed=-1", "train.seed must be in [0, 2**32 - 1]"),
    (f"train.seed={2**32}", "train.seed must be in [0, 2**32 - 1]"),
    ("data.split_seed=-1", "data.split_seed must be a non-negative integer"),
    ("train.plateau_factor=1", "train.plateau_factor must be in (0, 1)"),
    ("train.plateau_factor=1.5", "train.plateau_factor must be in (0, 1)"),
    ("train.plateau_factor=0", "train.plateau_factor must be in (0, 1)"),
    ("train.lr=0", "train.lr must be > 0"),
    ("train.weight_decay=-1", "train.weight_decay must be >= 0"),
])
def test_bad_config_values_name_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert message in str(err.value)


def test_edge_values_that_stay_allowed():
    c = load_config(None, ["train.seed=4294967295", "data.valid_fraction=0", "loss={fused_ce: 0, modality_ce: 0, "
                           "soft_hgr: 0, kl: 1}", "train.plateau_factor=0.99"])
    assert (c.train.seed, c.data.valid_fraction, c.loss.kl) == (2**32 - 1, 0.0, 1.0)


def test_valid_fraction_zero_needs_a_file_with_its_own_valid_split(tiny_dataset, tmp_path):
    with pytest.raises(DataError, match=r"f.pkl: has no validation split of its own and valid_fraction "
                                        r"\(data.valid_fraction\) is 0; expected a share in \(0, 1\)"):
        load_dataset(write_sdt_iemocap(tiny_dataset, tmp_path / "f.pkl"), valid_fraction=0.0)
    tables = upstream_tables(tiny_dataset, one_hot_speakers=2)  # MELD's 13-tuple with validation ids: 0 is fine
    dump(tuple(tables[k] for k in SDT_KEYS) + (list(tiny_dataset.splits["valid"]),), tmp_path / "meld.pkl")
    assert load_dataset(tmp_path / "meld.pkl", valid_fraction=0.0).splits["valid"] == tiny_dataset.splits["valid"]
    with pytest.raises(DataError, match="valid_fraction"):
        load_dataset(write_sdt_iemocap(tiny_dataset, tmp_path / "g.pkl"), valid_fraction=1.0)
    with pytest.raises(DataError, match=r"g.pkl: split_seed \(data.split_seed, --split-seed\) is -1"):
        load_dataset(tmp_path / "g.pkl", split_seed=-1)


@pytest.mark.parametrize("dims", [(0, 4, 4), (4, -1, 4)])
def test_zero_width_synthetic_dims(dims):
    with pytest.raises(DataError, match=r"SyntheticConfig.dims: expected 3 positive integer feature dims"):
        make_synthetic(SyntheticConfig(n_train=3, n_test=1, dims=dims))


# --- the CLI: one line, exit 1, never a traceback -----------------------------------------------------------------

def _cli(capsys, *argv) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    return code, err


def test_out_that_is_a_directory(tiny_dataset, tmp_path, capsys):
    (tmp_path / "outdir").mkdir()
    (tmp_path / "outdir.csv").mkdir()
    for out in ("outdir", "outdir.csv"):
        code, err = _cli(capsys, "predict", str(tmp_path / "no-run"), "--out", str(tmp_path / out))
        assert code == 1 and err.startswith("mcef predict: error: --out ") and "is a directory" in err
    source = save_dataset(tiny_dataset, tmp_path / "source")
    code, err = _cli(capsys, "data", "convert", str(source), str(tmp_path / "outdir"))
    assert code == 1 and err.startswith("mcef data convert: error: ") and "not an mcef dataset directory" in err
    code, err = _cli(capsys, "data", "synth", str(tmp_path / "outdir"), "--n-train", "3", "--n-test", "1",
                     "--dims", "2", "2", "2")
    assert code == 1 and err.startswith("mcef data synth: error: ") and "not an mcef dataset directory" in err
    assert list((tmp_path / "outdir").iterdir()) == []


def test_features_text_out_that_is_a_directory(tmp_path, capsys):
    """From a cache hit (no encoder run): the dataset is then refused at the directory, which is left as it was."""
    from mcef.features.text import TextFeatureConfig, cache_path

    source = _csv(tmp_path, GOOD)
    dataset = read_transcript_csv(source)
    dataset.dialogues.update({k: d.__class__(d.id, {"text": np.zeros((len(d), 3), np.float32)}, d.speakers, d.labels,
                                             d.sentences) for k, d in dataset.dialogues.items()})
    save_dataset(dataset, cache_path(source, TextFeatureConfig(), tmp_path / "cache"))
    (tmp_path / "outdir").mkdir()
    code, err = _cli(capsys, "features", "text", str(source), "--cache-dir", str(tmp_path / "cache"), "--out",
                     str(tmp_path / "outdir"))
    assert code == 1 and err.startswith("mcef features text: error: ") and "not an mcef dataset directory" in err


def test_bench_epochs_zero(capsys):
    code, err = _cli(capsys, "bench", "--epochs", "0", "--device", "cpu")
    assert code == 1 and err == ("mcef bench: error: bench: epochs (--epochs) must be at least 1, the number of timed "
                                 "epochs; got 0")
    code, err = _cli(capsys, "bench", "--dialogues", "0", "--device", "cpu")
    assert code == 1 and "--dialogues" in err
    code, err = _cli(capsys, "bench", "--device", "tpu")
    assert code == 1 and "'tpu': not a device name" in err


def test_train_with_a_bad_device_or_seed_names_the_key(tmp_path, capsys):
    code, err = _cli(capsys, "train", "--device", "cpu:5", "--runs-root", str(tmp_path))
    assert code == 1 and "train.device (--device): 'cpu:5'" in err
    code, err = _cli(capsys, "train", "--set", "train.seed=-3", "--runs-root", str(tmp_path))
    assert code == 1 and "train.seed must be in [0, 2**32 - 1]" in err
    assert not list(tmp_path.iterdir())  # refused before anything was written


def test_os_errors_are_one_line_with_the_file(tiny_dataset, tmp_path, capsys):
    source = save_dataset(tiny_dataset, tmp_path / "source")
    (tmp_path / "a-file").write_text("x")
    code, err = _cli(capsys, "data", "convert", str(source), str(tmp_path / "a-file" / "out"))
    assert code == 1 and err.startswith("mcef data convert: error: ") and "a-file" in err and "\n" not in err


def test_ctrl_c_is_one_line(monkeypatch, capsys):
    import mcef.data.cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(mcef.data.cli, "_info", interrupted)
    code, err = _cli(capsys, "data", "info", "anything")
    assert code == 130 and err == "mcef data info: interrupted"


IN_PROCESS_CASES = {
    "data info": (lambda tmp: ["data", "info", str(tmp / "missing.pkl")], "not found"),
    "features text": (lambda tmp: ["features", "text", str(_csv(tmp, GOOD + ["d2,2,A,short"])), "--cache-dir",
                                   str(tmp / "cache")], "line 8: 4 fields"),
    "evaluate": (lambda tmp: ["evaluate", str(tmp), "--device", "tpu"], "'tpu': not a device name"),
    "predict": (lambda tmp: ["predict", str(tmp), "--device", "cuda:x", "--out", str(tmp / "p.csv")],
                "'cuda:x': not a device name"),
    "runs list": (lambda tmp: ["runs", "list", str(tmp / "nowhere")], "nowhere"),
}


@pytest.mark.parametrize("case", list(IN_PROCESS_CASES))
def test_bad_inputs_are_one_line_errors(tmp_path, capsys, case):
    argv, message = IN_PROCESS_CASES[case]
    code, err = _cli(capsys, *argv(tmp_path))
    assert code == 1 and err.startswith(f"mcef {case}: error: ") and "\n" not in err and message in err, err


def test_bad_inputs_through_the_console_script_never_show_a_traceback(tiny_dataset, tmp_path):
    """Real subprocesses (the `mcef` entry point as users run it), started together to share the start-up time."""
    bad_index = _edit_index(tiny_dataset, tmp_path, _dialogue(0, "length", lambda n: -3))
    cases = {
        "data info": (["data", "info", str(bad_index)], "has length -3"),
        "train": (["train", "--set", "train.plateau_factor=1", "--runs-root", str(tmp_path / "runs")],
                  "train.plateau_factor must be in (0, 1)"),
    }
    env = {"PATH": "/usr/bin:/bin", "MCEF_DATA": str(tmp_path / "none"), "HOME": str(tmp_path),
           "PYTHONPATH": str(REPO)}
    procs = {name: subprocess.Popen([sys.executable, "-m", "mcef.cli", *argv], cwd=tmp_path, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, (argv, _) in cases.items()}
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=300)
        assert "Traceback" not in err, (name, err)
        assert proc.returncode == 1, (name, proc.returncode, err)
        assert err.strip().startswith(f"mcef {name}: error: ") and "\n" not in err.strip(), (name, err)
        assert cases[name][1] in err, (name, err)


# --- scoring a run on data it was not trained on ------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from mcef.train import fit

    data = make_synthetic(SyntheticConfig(n_train=6, n_test=2, dims=(4, 3, 2), min_length=3, max_length=5,
                                          valid_fraction=0.25))
    config = load_config(CONFIGS / "smoke.yaml", ["model.hidden=8", "model.n_heads=2", "model.n_self_heads=2",
                                                  "train.progress=false", "train.epochs=1", "train.device=cpu"])
    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    fit(config, dataset=data, run_dir=run_dir)
    other = make_synthetic(SyntheticConfig(seed=7, n_train=6, n_test=2, dims=(4, 3, 2), min_length=3, max_length=5,
                                           valid_fraction=0.25))
    return run_dir, data, other


def test_evaluate_on_other_data_gives_a_notice(tiny_run, capsys):
    from mcef.evaluate import evaluate

    run_dir, data, other = tiny_run
    same = evaluate(run_dir, data, device="cpu")
    assert same["same_data_as_training"] is True and same["data_notice"] is None
    assert "notice" not in capsys.readouterr().err
    result = evaluate(run_dir, other, device="cpu")
    err = capsys.readouterr().err
    assert result["same_data_as_training"] is False and "is not the data the run" in result["data_notice"]
    assert err.startswith("mcef evaluate: notice: ") and result["data_fingerprint"] in err


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_predict_on_other_data_marks_the_file(tiny_run, tmp_path, capsys, suffix):
    from mcef.evaluate import predict, read_predictions

    run_dir, data, other = tiny_run
    predict(run_dir, data, tmp_path / f"same{suffix}", device="cpu")
    assert "data_notice" not in read_predictions(tmp_path / f"same{suffix}")[0]
    assert "notice" not in capsys.readouterr().err
    predict(run_dir, other, tmp_path / f"other{suffix}", device="cpu")
    assert capsys.readouterr().err.startswith("mcef predict: notice: ")
    rows = read_predictions(tmp_path / f"other{suffix}")
    assert len(rows) == sum(len(d) for d in other.dialogues.values())
    assert all("is not the data the run" in r["data_notice"] for r in rows)
    assert isinstance(rows[0]["utterance"], int) and isinstance(rows[0][f"p_{other.label_names[0]}"], float)
