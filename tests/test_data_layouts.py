"""Every peer file layout read from the independent samples of tests/layout_samples.py, plus the layout table.

For each sample: the right dataset, classes, speakers, labels, features and splits, a 2-epoch training, the
look-alike pairs the detector must tell apart, MELD sentiments, label-set inference and override, joins that
disagree, and hostile or unknown-class pickles refused in one line.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from layout_samples import (
    MALICIOUS_MARKER,
    SAMPLES,
    UNKNOWN_MODULE,
    feature_matrix,
    lookalike_pairs,
    write_malicious,
    write_unknown_class,
)
from mcef.cli import main
from mcef.config import DataConfig, load_config
from mcef.data import DataError, load_dataset
from mcef.data.layouts import LAYOUT_BY_KEY, LAYOUTS, detect_layout, first_disagreement, layouts_markdown
from mcef.data.safe_pickle import safe_load

REPO = Path(__file__).resolve().parents[1]

# sample key -> the layout of mcef.data.layouts that reads it (a new sample must be added here)
EXPECTED_LAYOUT = {
    "sdt-iemocap-12": "sdt-iemocap-12", "sdt-meld-13-sentiment": "sdt-meld-13", "sdt-meld-13-devids": "sdt-meld-13",
    "cfnesa-meld-14": "cfnesa-meld-14", "mmgcn-meld-10": "mmgcn-meld-10", "bclstm-meld-9": "bclstm-meld-9",
    "mmgcn-iemocap-9": "mmgcn-iemocap-9", "dialoguegcn-iemocap-9-sets": "mmgcn-iemocap-9",
    "dialoguegcn-iemocap-9-lists": "mmgcn-iemocap-9", "iemocap-9-4class": "mmgcn-iemocap-9",
    "cosmic-iemocap-roberta-10": "cosmic-iemocap-roberta-10", "cosmic-meld-roberta-11": "cosmic-meld-roberta-11",
    "multiemo-iemocap-folder": "multiemo-folder", "multiemo-meld-folder": "multiemo-folder",
    "m3net-joined": "joined", "m3net-meld-joined": "joined",
    "cogmen-iemocap": "cogmen-iemocap", "cogmen-iemocap-4class": "cogmen-iemocap",
    "corect-iemocap": "corect-iemocap", "corect-iemocap-4class": "corect-iemocap",
}
KEYS = sorted(SAMPLES)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    """Every sample written once: key -> path (or modality -> path for joins)."""
    root = tmp_path_factory.mktemp("samples")
    return {key: sample.build(root / key) for key, sample in SAMPLES.items()}


@pytest.fixture(scope="module")
def read(built) -> dict:
    """Every sample read with the defaults: key -> DialogueDataset."""
    return {key: load_dataset(path) for key, path in built.items()}


def test_every_sample_has_a_layout():
    assert set(SAMPLES) <= set(EXPECTED_LAYOUT), "a new sample: add the layout that reads it to EXPECTED_LAYOUT"


def _ids(ids) -> set[str]:
    return {str(d) for d in ids}


@pytest.mark.parametrize("key", KEYS)
def test_each_sample_reads_with_its_classes_speakers_features_and_splits(key, read):
    sample, ds = SAMPLES[key], read[key]
    assert ds.meta["layout"] == EXPECTED_LAYOUT[key]
    assert ds.name == sample.dataset and ds.label_names == tuple(sample.label_names)
    assert ds.n_classes == sample.n_classes and ds.n_speakers == sample.n_speakers and ds.dims == dict(sample.dims)
    assert ds.meta["label_set"] == f"{sample.dataset}-{sample.n_classes}"
    assert ds.meta["label_set_source"] == ("file" if sample.n_classes == 4 else "dataset")
    for vid, labels in sample.labels.items():
        dialogue = ds.dialogues[str(vid)]
        assert dialogue.labels.tolist() == labels
        assert dialogue.speakers.tolist() == sample.speaker_indices[vid]
        assert dialogue.sentences == sample.sentences[vid]
    for modality in sample.dims:
        for vid, expected in sample.features(modality).items():
            np.testing.assert_array_equal(ds.dialogues[str(vid)].features[modality], expected)
    assert set(ds.splits["test"]) == _ids(sample.splits["test"])
    train = _ids(sample.splits["train"])
    if "valid" in sample.splits:  # the file's own validation split is used, and left out of training
        assert set(ds.splits["valid"]) == _ids(sample.splits["valid"])
        assert set(ds.splits["train"]) == train - _ids(sample.splits["valid"])
        assert ds.meta["valid_split"].startswith("from")
    else:
        assert set(ds.splits["train"]) | set(ds.splits["valid"]) == train
        # joins take a validation split of one of their files (COSMIC's), others hold a seeded one out
        assert ds.meta["valid_split"].startswith("from" if sample.top_level == "joined" else "seeded")


def test_the_producer_is_named_by_the_dims_of_the_9_tuple(read):
    assert read["mmgcn-iemocap-9"].meta["producer"].startswith("MMGCN / MM-DFN / M3Net (text 100, audio 1582")
    assert read["dialoguegcn-iemocap-9-lists"].meta["producer"].startswith("DialogueGCN / bc-LSTM / COGMEN / CORECT")
    assert read["cogmen-iemocap"].meta["producer"] == "COGMEN" and read["corect-iemocap"].meta["producer"] == "CORECT"


# --- 2 epochs on each --------------------------------------------------------------------------------------------

TINY = ["model.hidden=8", "model.n_heads=2", "model.n_self_heads=2", "train.progress=false", "train.epochs=2",
        "train.checkpoint_every=2", "train.record_oracle_test=false", "train.batch_size=4", "train.lr=3e-3"]


@pytest.mark.parametrize("key", KEYS)
def test_two_epochs_train_on_each_sample(key, read, tmp_path):
    from mcef.train import fit

    ds = read[key]
    summary = fit(load_config(REPO / "configs" / "smoke.yaml", TINY), dataset=ds, run_dir=tmp_path / "run")
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and summary["epochs_run"] == 2 and not summary.get("diverged")
    assert summary["data"]["label_names"] == list(ds.label_names) and summary["data"]["dims"] == ds.dims
    assert np.isfinite(summary["test"]["weighted_f1"]) and summary["test"]["n_utterances"] == sum(
        len(d) for d in ds.split("test"))


# --- look-alikes ------------------------------------------------------------------------------------------------

def _unpickled(path) -> object:
    return safe_load(path)


@pytest.mark.parametrize("pair", lookalike_pairs(), ids=lambda pair: f"{pair[0]}~{pair[1]}")
def test_lookalike_layouts_are_told_apart(pair, built, read):
    a, b = pair
    first, second = read[a], read[b]
    for key, ds in ((a, first), (b, second)):  # each is read as what it is
        assert ds.meta["layout"] == EXPECTED_LAYOUT[key] and ds.name == SAMPLES[key].dataset
        assert ds.n_classes == SAMPLES[key].n_classes and ds.dims == dict(SAMPLES[key].dims)
    if EXPECTED_LAYOUT[a] != EXPECTED_LAYOUT[b] and not Path(built[a]).is_dir():
        # the detector refuses a's file as b's layout at a named item, and b's as a's
        for this, other in ((a, b), (b, a)):
            disagreement = first_disagreement(LAYOUT_BY_KEY[EXPECTED_LAYOUT[other]], _unpickled(built[this]),
                                              built[this])
            assert disagreement is not None and disagreement[1]
    else:  # the same layout: what tells them apart is read from the content
        differences = {k for k in ("name", "label_set", "producer", "valid_split")
                       if (first.name if k == "name" else first.meta[k]) != (second.name if k == "name" else
                                                                              second.meta[k])}
        assert differences or first.dims != second.dims or first.splits != second.splits


def test_meld_and_iemocap_9_tuples_disagree_where_they_differ(built):
    meld = _unpickled(built["bclstm-meld-9"])
    iemocap = _unpickled(built["mmgcn-iemocap-9"])
    as_iemocap = first_disagreement(LAYOUT_BY_KEY["mmgcn-iemocap-9"], meld, "m")
    as_meld = first_disagreement(LAYOUT_BY_KEY["bclstm-meld-9"], iemocap, "i")
    assert as_iemocap[0] == 1 and "one-hot" in as_iemocap[1]  # one-hot speakers where IEMOCAP has 'M'/'F'
    assert as_meld[0] == 1 and "'M'/'F'" in as_meld[1]
    assert detect_layout(meld, "m").key == "bclstm-meld-9" and detect_layout(iemocap, "i").key == "mmgcn-iemocap-9"


def test_a_file_of_no_layout_lists_every_candidate(built, tmp_path):
    obj = list(_unpickled(built["bclstm-meld-9"]))
    obj[5] = {k: np.zeros((len(v), 3)) for k, v in obj[2].items()}  # visual where the sentences are
    obj[8] = list(obj[7])  # and a list where the sentiments are
    path = tmp_path / "odd.pkl"
    path.write_bytes(pickle.dumps(tuple(obj)))
    with pytest.raises(DataError) as err:
        load_dataset(path)
    message = str(err.value)
    assert str(path) in message and "matches no known layout" in message
    for layout in LAYOUTS:
        if layout.container != "folder":
            assert layout.key in message
    assert "bclstm-meld-9 (MELD_features_raw.pkl) disagrees at index 5" in message
    assert "mmgcn-iemocap-9 (IEMOCAP_features.pkl (IEMOCAP_features_4.pkl)) disagrees at index 1" in message


# --- labels: sentiments, label sets -------------------------------------------------------------------------------

WITH_SENTIMENTS = ["sdt-meld-13-sentiment", "cfnesa-meld-14", "mmgcn-meld-10", "bclstm-meld-9",
                   "cosmic-meld-roberta-11", "multiemo-meld-folder", "m3net-meld-joined"]


@pytest.mark.parametrize("key", WITH_SENTIMENTS)
def test_meld_sentiments_can_be_chosen(key, built):
    sample = SAMPLES[key]
    ds = load_dataset(built[key], labels="sentiment")
    assert ds.label_names == ("neutral", "positive", "negative") and ds.meta["label_set"] == "meld-3-sentiment"
    assert ds.meta["labels"] == "sentiment" and "checked against the emotion labels" in ds.meta["label_set_reason"]
    for vid in sample.ids:
        assert ds.dialogues[str(vid)].labels.tolist() == list(sample.content.sentiments[vid])


@pytest.mark.parametrize("key", ["sdt-meld-13-devids", "sdt-iemocap-12", "cosmic-iemocap-roberta-10"])
def test_sentiment_of_a_file_without_them_is_a_clear_error(key, built):
    with pytest.raises(DataError, match="data.labels .*'sentiment', but this file carries no sentiment labels"):
        load_dataset(built[key], labels="sentiment")


def test_sentiments_numbered_otherwise_are_renumbered(built, tmp_path):
    obj = list(_unpickled(built["cfnesa-meld-14"]))
    as_third_party = {0: 1, 1: 2, 2: 0}  # negative 0, neutral 1, positive 2
    obj[3] = {vid: [as_third_party[s] for s in v] for vid, v in obj[3].items()}
    path = tmp_path / "meld_multimodal_features.pkl"
    path.write_bytes(pickle.dumps(tuple(obj)))
    ds = load_dataset(path, labels="sentiment")
    assert "renumbered: the file numbers its sentiments 0 negative, 1 neutral, 2 positive" in ds.meta["label_set_reason"]
    for vid, expected in SAMPLES["cfnesa-meld-14"].sentiments.items():
        assert ds.dialogues[str(vid)].labels.tolist() == expected


def test_label_set_override_and_its_errors(built):
    six = load_dataset(built["iemocap-9-4class"], label_set="iemocap-6")
    assert six.n_classes == 6 and six.meta["label_set_source"] == "data.label_set"
    four = load_dataset(built["iemocap-9-4class"])
    assert "inferred from the file: its labels never exceed 3" in four.meta["label_set_reason"]
    with pytest.raises(DataError, match=r"label [45] at utterance \d+ is out of range; expected 0..3"):
        load_dataset(built["mmgcn-iemocap-9"], label_set="iemocap-4")
    with pytest.raises(DataError, match="label set 'iemocap-4' .* is for IEMOCAP, but the file holds MELD"):
        load_dataset(built["mmgcn-meld-10"], label_set="iemocap-4")
    with pytest.raises(DataError, match="names sentiment labels, but data.labels .* is 'emotion'"):
        load_dataset(built["mmgcn-meld-10"], label_set="meld-3-sentiment")
    with pytest.raises(DataError, match="label set 'meld-9' .* is unknown"):
        load_dataset(built["mmgcn-meld-10"], label_set="meld-9")


def test_text_layers(built):
    sample = SAMPLES["cosmic-iemocap-roberta-10"]
    ds = load_dataset(built["cosmic-iemocap-roberta-10"], text_layer="roberta3")
    vid = sample.splits["test"][0]
    expected = feature_matrix("iemocap", "roberta3", vid, 1024, len(sample.labels[vid]))
    np.testing.assert_array_equal(ds.dialogues[vid].features["text"], expected)
    assert ds.meta["text_layer"] == "roberta3"
    assert load_dataset(built["cosmic-iemocap-roberta-10"]).meta["text_layer"] == "roberta1"
    assert load_dataset(built["cogmen-iemocap"]).meta["text_layer"] == "sbert"
    with pytest.raises(DataError, match=r"text layer 'roberta2' .* is not in this file .*; it has \['videoText'\]"):
        load_dataset(built["mmgcn-iemocap-9"], text_layer="roberta2")


# --- joins and folders that disagree --------------------------------------------------------------------------------

def test_joined_files_that_disagree_name_both(built, tmp_path):
    files = built["m3net-joined"]
    obj = list(_unpickled(files["audio"]))
    vid = SAMPLES["m3net-joined"].splits["test"][0]
    for index in (1, 2, 3, 4, 5, 6):  # one utterance fewer in every item of one dialogue
        obj[index][vid] = obj[index][vid][:-1]
    short = tmp_path / "IEMOCAP_features.pkl"
    short.write_bytes(pickle.dumps(tuple(obj)))
    with pytest.raises(DataError) as err:
        load_dataset({"text": files["text"], "audio": short})
    assert str(files["text"]) in str(err.value) and str(short) in str(err.value) and vid in str(err.value)
    for index in (1, 2, 3, 4, 5, 6):
        del obj[index][vid]
    obj[8] = [d for d in obj[8] if d != vid]
    short.write_bytes(pickle.dumps(tuple(obj)))
    with pytest.raises(DataError, match=f"lacks 1 dialogue.*{vid}.*same dialogue ids"):
        load_dataset({"text": files["text"], "audio": short})
    with pytest.raises(DataError, match="data.path names modality 'txt'"):
        load_dataset({"txt": files["text"]})
    with pytest.raises(DataError, match="takes its visual features, but it has"):
        load_dataset({"text": files["text"], "visual": files["text"]})


def test_a_multiemo_folder_whose_files_disagree(built, tmp_path):
    import shutil

    folder = tmp_path / "IEMOCAP"
    shutil.copytree(built["multiemo-iemocap-folder"], folder)
    audio = pickle.loads((folder / "AudioFeatures.pkl").read_bytes())
    vid = next(iter(audio))
    audio[vid] = audio[vid][:-1]
    (folder / "AudioFeatures.pkl").write_bytes(pickle.dumps(audio))
    with pytest.raises(DataError, match=rf"AudioFeatures.pkl: dialogue '{vid}' has \d+ feature rows but .*Speakers.pkl "
                                        r"gives it \d+ labels"):
        load_dataset(folder)
    (folder / "VisualFeatures.pkl").unlink()
    with pytest.raises(DataError, match="has Speakers.pkl but no VisualFeatures.pkl"):
        load_dataset(folder)


def test_cogmen_windows_of_one_dialogue_are_refused(built, tmp_path):
    from layout_samples import stand_in_modules

    with stand_in_modules():  # our own file: plain pickle is fine here
        data = pickle.loads(Path(built["cogmen-iemocap"]).read_bytes())
        data["train"].append(data["train"][0])
        path = tmp_path / "data_iemocap_4_split_8.pkl"
        path.write_bytes(pickle.dumps(data))
    with pytest.raises(DataError, match="is in train.0. and train.\\d+.; expected one sample per dialogue"):
        load_dataset(path)


# --- hostile and unknown classes ----------------------------------------------------------------------------------

def test_a_malicious_pickle_is_refused_and_nothing_runs(tmp_path, capsys):
    path = write_malicious(tmp_path)
    with pytest.raises(DataError, match="refused to load: the pickle asks for os.system.*nothing in it was run"):
        load_dataset(path)
    assert main(["data", "info", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "os.system" in err
    assert not (tmp_path / MALICIOUS_MARKER).exists()


def test_an_unknown_class_is_named_in_one_line(tmp_path, capsys):
    path = write_unknown_class(tmp_path)
    with pytest.raises(DataError, match=f"asks for {UNKNOWN_MODULE}.Sample, which is not data"):
        load_dataset(path)
    assert main(["data", "info", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mcef data info: error: ") and err.count("\n") == 1 and UNKNOWN_MODULE in err


# --- the table, the CLI, the config -------------------------------------------------------------------------------

def test_the_readme_table_is_the_code_table():
    text = (REPO / "data" / "README.md").read_text(encoding="utf-8")
    begin = text.index("<!-- layouts:begin")
    start, end = text.index("\n", begin) + 1, text.index("<!-- layouts:end -->")
    assert text[start:end].strip() == layouts_markdown().strip()
    for line in layouts_markdown().splitlines():
        if line.startswith("| ") and not line.startswith("| ---"):
            assert line.count(" | ") in (2, 4), line  # no cell holds a '|' of its own


def test_data_formats_prints_the_table(capsys):
    assert main(["data", "formats"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == layouts_markdown().strip()
    assert "| cogmen-iemocap |" in out and "| meld-3-sentiment |" in out


def test_data_info_names_layout_producer_and_label_set(built, capsys):
    assert main(["data", "info", str(built["iemocap-9-4class"])]) == 0
    out = capsys.readouterr().out
    assert "layout: mmgcn-iemocap-9 (produced by DialogueGCN / bc-LSTM / COGMEN / CORECT" in out
    assert "label set: iemocap-4 (4 classes: happy, sad, neutral, angry); from the file: inferred" in out
    assert main(["data", "info", str(built["iemocap-9-4class"]), "--label-set", "iemocap-6"]) == 0
    assert "label set: iemocap-6 (6 classes" in capsys.readouterr().out
    assert main(["data", "info", str(built["cfnesa-meld-14"]), "--labels", "sentiment"]) == 0
    out = capsys.readouterr().out
    assert "label set: meld-3-sentiment (3 classes: neutral, positive, negative); from the file" in out
    files = built["m3net-joined"]
    assert main(["data", "info", f"text={files['text']},audio={files['audio']},visual={files['visual']}"]) == 0
    assert "layout: joined" in capsys.readouterr().out


def test_the_config_passes_labels_label_set_and_a_path_mapping(built):
    from mcef.features.pipeline import load_data

    files = {m: str(p) for m, p in built["m3net-meld-joined"].items()}
    dataset, description = load_data(DataConfig(path=files, labels="sentiment"))
    assert dataset.meta["layout"] == "joined" and dataset.meta["label_set"] == "meld-3-sentiment"
    assert "joined by dialogue id" in description
    dataset, _ = load_data(DataConfig(path=str(built["iemocap-9-4class"]), label_set="iemocap-6"))
    assert dataset.n_classes == 6
    config = load_config(None, [f"data.path={{text: {files['text']}, audio: {files['audio']}}}"])
    assert config.data.path == {"text": files["text"], "audio": files["audio"]}
