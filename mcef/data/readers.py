"""Readers for the standard feature files, detected by content, and :func:`load_dataset`.

Accepted inputs (see data/README.md):
- a project-format directory (index.json + .npy arrays), see :mod:`mcef.data.project`;
- SDT / CFN-ESA / MCEF ``iemocap_multimodal_features.pkl``: a 12-tuple (videoIDs, videoSpeakers, videoLabels,
  videoText, roberta2, roberta3, roberta4, videoAudio, videoVisual, videoSentence, trainVid, testVid);
- SDT / CFN-ESA ``meld_multimodal_features.pkl``: the same 12 items plus a 13th (ignored unless it is a list
  of validation dialogue ids); MELD speakers are one-hot vectors;
- MMGCN / DialogueGCN ``IEMOCAP_features.pkl``: a 9-tuple (videoIDs, videoSpeakers, videoLabels, videoText,
  videoAudio, videoVisual, videoSentence, trainVid, testVid), a Python 2 pickle;
- the COSMIC transcript pickles: IEMOCAP [speakers, labels, sentences, train, test, valid] and
  MELD [speakers, emotion labels, sentiment labels, sentences, train, test, valid] (text only, no features).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcef.data.dataset import IEMOCAP_LABELS, MELD_LABELS, Dialogue, DialogueDataset
from mcef.data.errors import DataError
from mcef.data.project import is_project_dataset, load_project
from mcef.data.safe_pickle import safe_load
from mcef.data.validation import make_valid_split, validate_dataset

TEXT_LAYERS = ("videoText", "roberta2", "roberta3", "roberta4")
IEMOCAP_SPEAKERS = ("M", "F")
ENV_DATA = "MCEF_DATA"


@dataclass(frozen=True)
class _Layout:
    """Where each item sits in one upstream pickle (None: absent)."""

    name: str  # dataset name
    description: str  # the format, in words, for messages and `mcef data info`
    length: int  # number of items in the pickled tuple/list
    speakers: int
    labels: int
    sentences: int | None
    text: dict[str, int]  # text layer name -> item index (empty: no text features)
    audio: int | None
    visual: int | None
    train: int
    test: int
    valid: int | None  # validation ids in the file, if any
    label_names: tuple[str, ...]


_LAYOUTS = (
    _Layout("iemocap", "SDT/CFN-ESA iemocap_multimodal_features.pkl (12-tuple)", 12, 1, 2, 9,
            {"videoText": 3, "roberta2": 4, "roberta3": 5, "roberta4": 6}, 7, 8, 10, 11, None, IEMOCAP_LABELS),
    _Layout("meld", "SDT/CFN-ESA meld_multimodal_features.pkl (13-tuple)", 13, 1, 2, 9,
            {"videoText": 3, "roberta2": 4, "roberta3": 5, "roberta4": 6}, 7, 8, 10, 11, 12, MELD_LABELS),
    _Layout("iemocap", "MMGCN/DialogueGCN IEMOCAP_features.pkl (9-tuple, Python 2 pickle)", 9, 1, 2, 6,
            {"videoText": 3}, 4, 5, 7, 8, None, IEMOCAP_LABELS),
    _Layout("iemocap", "COSMIC IEMOCAP transcripts (6-list, text only)", 6, 0, 1, 2, {}, None, None, 3, 4, 5, IEMOCAP_LABELS),
    _Layout("meld", "COSMIC MELD transcripts (7-list, text only)", 7, 0, 1, 3, {}, None, None, 4, 5, 6, MELD_LABELS),
)

ACCEPTED_FORMATS = "a project dataset directory (index.json + .npy), " + "; ".join(
    layout.description for layout in _LAYOUTS
)


def default_data_dirs() -> list[Path]:
    """Where a bare file name is looked for: $MCEF_DATA, then ./data and ../shared/data of the working directory."""
    dirs = [Path(os.environ[ENV_DATA])] if os.environ.get(ENV_DATA) else []
    dirs += [Path.cwd() / "data", Path.cwd().parent / "shared" / "data"]
    return list(dict.fromkeys(dirs))


def resolve_data_path(path: str | os.PathLike) -> Path:
    """``path`` itself if it exists, else the first data directory holding a file of that name."""
    path = Path(path)
    if path.exists():
        return path
    tried = [path]
    if not path.is_absolute():
        for directory in default_data_dirs():
            candidate = directory / path
            if candidate.exists():
                return candidate
            tried.append(candidate)
    raise DataError(
        f"data file {str(path)!r} not found; looked in: {', '.join(str(p) for p in tried)}. "
        f"Accepted formats: {ACCEPTED_FORMATS}. Put the file in the project's data/ directory "
        f"(or set ${ENV_DATA} to its folder); data/README.md lists the files and where to get them."
    )


def load_dataset(
    path: str | os.PathLike,
    *,
    text_layer: str = "videoText",
    valid_fraction: float = 0.1,
    split_seed: int = 0,
) -> DialogueDataset:
    """Read any accepted dataset file or directory, detecting its format by content.

    ``text_layer`` picks the RoBERTa layer of the SDT/CFN-ESA files (videoText, roberta2, roberta3, roberta4).
    Without validation ids in the file, a seeded ``valid_fraction`` of training dialogues is held out
    (``split_seed``); ``dataset.meta["valid_split"]`` says which happened.
    """
    if text_layer not in TEXT_LAYERS:
        raise DataError(f"text_layer {text_layer!r} is unknown; expected one of {TEXT_LAYERS}")
    path = resolve_data_path(path)
    if is_project_dataset(path):
        return load_project(path)
    if path.is_dir():
        raise DataError(f"{path}: a directory without index.json; expected one of: {ACCEPTED_FORMATS}")
    obj = _unpickle(path)
    layout = _detect(obj, path)
    return _read(obj, layout, path, text_layer=text_layer, valid_fraction=valid_fraction, split_seed=split_seed)


def _unpickle(path: Path):
    with open(path, "rb") as f:
        head = f.read(2)
        if not head or head[0] != 0x80 and head[:1] not in (b"(", b"]", b"}"):
            raise DataError(f"{path}: unknown format (neither a pickle nor a project directory); expected one of: {ACCEPTED_FORMATS}")
    return safe_load(path)


def _detect(obj, path: Path) -> _Layout:
    if not isinstance(obj, (tuple, list)):
        raise DataError(f"{path}: the pickle holds a {type(obj).__name__}; expected a tuple or list, one of: {ACCEPTED_FORMATS}")
    for layout in _LAYOUTS:
        if len(obj) == layout.length and isinstance(obj[layout.labels], dict) and not isinstance(obj[layout.train], dict):
            return layout
    lengths = ", ".join(f"{layout.length} ({layout.description})" for layout in _LAYOUTS)
    raise DataError(f"{path}: the pickle is a {type(obj).__name__} of {len(obj)} items; expected one of lengths {lengths}")


def _id_list(obj, path: Path, key: str) -> list:
    if isinstance(obj, (dict, str, bytes)) or not hasattr(obj, "__iter__"):
        raise DataError(f"{path}: item {key!r} is a {type(obj).__name__}; expected a list of dialogue ids")
    ids = list(obj)
    for i, did in enumerate(ids):
        if isinstance(did, (bool, np.bool_)) or not isinstance(did, (str, int, np.integer)):
            raise DataError(f"{path}: item {key!r} holds {did!r} ({type(did).__name__}) at position {i}; expected a "
                            "flat list of dialogue ids (strings or integers), not nested lists")
    ids = [did.item() if isinstance(did, np.integer) else did for did in ids]
    if len(set(ids)) != len(ids):
        repeated = next(d for d in ids if ids.count(d) > 1)
        raise DataError(f"{path}: item {key!r} lists dialogue {repeated!r} more than once; expected each id once")
    return sorted(ids, key=str) if isinstance(obj, (set, frozenset)) else ids


def _table(obj, path: Path, key: str) -> dict:
    if not isinstance(obj, dict):
        raise DataError(f"{path}: item {key!r} is a {type(obj).__name__}; expected a dict of dialogue id -> values")
    return obj


def _sentences(values, path: Path, key: str) -> list[str]:
    """One dialogue's transcripts: a list of strings (numpy strings become str, nothing else is accepted)."""
    if values is None or isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__"):
        raise DataError(f"{path}: {key} is {type(values).__name__}; expected a list of strings, one per utterance")
    sentences = list(values)
    for i, sentence in enumerate(sentences):
        if not isinstance(sentence, str):
            raise DataError(f"{path}: {key}[{i}] is {sentence!r} ({type(sentence).__name__}); expected a string "
                            "(the utterance's transcript)")
    return [str(sentence) for sentence in sentences]


def _read(obj, layout: _Layout, path: Path, *, text_layer: str, valid_fraction: float, split_seed: int) -> DialogueDataset:
    labels_by_id = obj[layout.labels]
    train = _id_list(obj[layout.train], path, "trainVid")
    test = _id_list(obj[layout.test], path, "testVid")
    valid = None
    if layout.valid is not None and not isinstance(obj[layout.valid], dict) and obj[layout.valid] is not None:
        valid = _id_list(obj[layout.valid], path, "validVid")
    for split, ids in (("trainVid", train), ("testVid", test), ("validVid", valid or [])):
        unknown = [d for d in ids if d not in labels_by_id]
        if unknown:
            raise DataError(
                f"{path}: split {split!r} names {len(unknown)} dialogue(s) absent from videoLabels, e.g. {unknown[0]!r}; "
                "expected every split id to be a dialogue of the file"
            )
    if valid is not None:
        valid_set = set(valid)
        train = [d for d in train if d not in valid_set]  # some files list validation dialogues in trainVid too
        valid_note = f"from the file ({len(valid)} dialogues)"
    else:
        train, valid = make_valid_split(train, valid_fraction, split_seed, where=str(path))
        valid_note = f"seeded {valid_fraction:.0%} of training dialogues ({len(valid)} of {len(train) + len(valid)}, split_seed {split_seed})"

    sources = {}
    if layout.text:
        if text_layer not in layout.text:
            raise DataError(f"{path}: text layer {text_layer!r} is not in this format; it has {list(layout.text)}")
        sources["text"] = (text_layer, obj[layout.text[text_layer]])
    if layout.audio is not None:
        sources["audio"] = ("videoAudio", obj[layout.audio])
    if layout.visual is not None:
        sources["visual"] = ("videoVisual", obj[layout.visual])
    for m, (key, table) in sources.items():
        if not isinstance(table, dict):
            raise DataError(f"{path}: item {key!r} is a {type(table).__name__}; expected a dict of dialogue id -> features")

    speaker_table = _table(obj[layout.speakers], path, "videoSpeakers")
    sentence_table = obj[layout.sentences] if layout.sentences is not None else None
    if sentence_table is not None and not layout.text:  # transcripts only: the sentences are the data
        _table(sentence_table, path, "videoSentence")
    dialogues: dict[str, Dialogue] = {}
    speaker_names: tuple[str, ...] | None = None
    for did in train + valid + test:
        labels = _int_array(labels_by_id[did], path, f"videoLabels[{did!r}]")
        for m, (key, table) in sources.items():
            if did not in table:
                raise DataError(f"{path}: dialogue {did!r} is missing from {key!r} ({m}); expected every dialogue in every modality")
        if did not in speaker_table:
            raise DataError(f"{path}: dialogue {did!r} is missing from 'videoSpeakers'; expected a speaker per utterance")
        speakers, names = _speakers(speaker_table[did], path, did)
        speaker_names = speaker_names or names
        features = {m: _features(table[did], path, f"{key}[{did!r}]") for m, (key, table) in sources.items()}
        sentences = None
        if isinstance(sentence_table, dict) and did in sentence_table:
            sentences = _sentences(sentence_table[did], path, f"videoSentence[{did!r}]")
        dialogues[str(did)] = Dialogue(id=str(did), features=features, speakers=speakers, labels=labels, sentences=sentences)

    dataset = DialogueDataset(
        name=layout.name,
        dialogues=dialogues,
        label_names=layout.label_names,
        speaker_names=speaker_names or IEMOCAP_SPEAKERS,
        splits={"train": [str(d) for d in train], "valid": [str(d) for d in valid], "test": [str(d) for d in test]},
        source=f"{path} ({layout.description})",
        meta={
            "format": layout.description,
            "text_layer": text_layer if layout.text else None,
            "valid_split": valid_note,
        },
    )
    return validate_dataset(dataset, str(path))


def _int_array(values, path: Path, key: str) -> np.ndarray:
    try:
        x = np.asarray(values)
    except (ValueError, TypeError) as err:
        raise DataError(f"{path}: {key} is not an array of integers ({err})") from err
    if x.ndim != 1 or (x.size and not np.issubdtype(x.dtype, np.number)):
        raise DataError(f"{path}: {key} has shape {x.shape} and dtype {x.dtype}; expected a 1-d list of integer labels")
    if x.size and not np.all(x == np.round(x)):
        raise DataError(f"{path}: {key} holds non-integer values; expected integer class indices")
    return x.astype(np.int64)


def _features(values, path: Path, key: str) -> np.ndarray:
    if isinstance(values, (str, bytes)):
        raise DataError(f"{path}: {key} is a {type(values).__name__}; expected an (utterances, dim) array of numbers")
    try:
        x = np.asarray(values)
    except (ValueError, TypeError) as err:
        raise DataError(f"{path}: {key} is not a rectangular numeric array ({err}); expected (utterances, dim) floats") from err
    if x.dtype.kind not in "iuf":  # strings, booleans, objects (ragged rows, None): not features
        raise DataError(f"{path}: {key} is not a rectangular numeric array (dtype {x.dtype}"
                        f"{', strings' if x.dtype.kind in 'US' else ''}); expected (utterances, dim) floats")
    if x.ndim != 2:
        raise DataError(f"{path}: {key} has shape {x.shape}; expected (utterances, dim)")
    return x.astype(np.float32, copy=False)


def _speakers(values, path: Path, did) -> tuple[np.ndarray, tuple[str, ...]]:
    """IEMOCAP 'M'/'F' -> 0/1; MELD one-hot vectors -> their argmax."""
    if values is None or isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__"):
        raise DataError(f"{path}: videoSpeakers[{did!r}] is a {type(values).__name__}; expected 'M'/'F' strings or "
                        "one-hot vectors, one per utterance")
    values = list(values)
    if all(isinstance(v, str) for v in values):
        unknown = sorted(set(values) - set(IEMOCAP_SPEAKERS))
        if unknown:
            raise DataError(f"{path}: videoSpeakers[{did!r}] holds {unknown}; expected 'M' or 'F'")
        return np.array([IEMOCAP_SPEAKERS.index(v) for v in values], dtype=np.int64), IEMOCAP_SPEAKERS
    try:
        x = np.asarray(values)
    except (ValueError, TypeError):
        x = np.asarray(values, dtype=object)
    if x.dtype.kind not in "iufb":
        raise DataError(f"{path}: videoSpeakers[{did!r}] holds {x.dtype} values (e.g. {values[0]!r}); expected 'M'/'F' "
                        "strings or one-hot vectors of numbers")
    x = x.astype(np.float64)
    if x.ndim == 2 and x.shape[0] == len(values):
        if not np.all(x.sum(axis=1) == 1) or not np.all((x == 0) | (x == 1)):
            raise DataError(f"{path}: videoSpeakers[{did!r}] holds vectors that are not one-hot; expected one 1 per row")
        return x.argmax(axis=1).astype(np.int64), tuple(f"speaker{i}" for i in range(x.shape[1]))
    raise DataError(f"{path}: videoSpeakers[{did!r}] has shape {x.shape}; expected 'M'/'F' strings or one-hot vectors")
