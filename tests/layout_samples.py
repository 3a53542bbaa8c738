"""Ground-truth sample files for every ERC feature-file layout that peer projects ship.

Each entry of :data:`SAMPLES` writes a small file (or folder, or pair of files) laid out exactly as the peer project's
own loader unpacks it, and carries what a reader must recover from it: dataset, classes, feature dims, splits (in file
order), speakers and the per-dialogue labels. This module is independent ground truth: it imports none of mcef's
readers, only numpy, pickle and the standard library.

Where the peers' files were written under Python 2 (the conv-emotion / MMGCN ``IEMOCAP_features.pkl`` family), the
samples are real Python 2 protocol-2 pickles made by a small opcode emitter (:func:`py2_dumps`): ``str`` as
SHORT_BINSTRING/BINSTRING, numpy arrays through ``numpy.core.multiarray._reconstruct`` with their bytes as a py2
``str``, sets as ``__builtin__.set``. They load in Python 3 with ``pickle.load(f, encoding="latin1")``.

Conventions verified in the peers' code (see each Sample's ``peer_source``):

* IEMOCAP labels 0..5 = happy, sad, neutral, angry, excited, frustrated; IEMOCAP-4 (COGMEN/CORECT) 0..3 = happy, sad,
  neutral, angry. Speakers 'M'/'F' strings.
* MELD labels 0..6 = neutral, surprise, fear, sadness, joy, disgust, anger; speakers 9-way one-hot lists; dialogue ids
  are ints. conv-emotion's sentiment mapping is 0 neutral, 1 positive, 2 negative (bc-LSTM dataloader docstring; the
  real ``meld_text.pkl`` agrees: joy -> 1, anger -> 2).
* Features of COSMIC origin (RoBERTa, 1024-d) are per dialogue a *list* of 1-D float32 arrays (its extraction script
  does ``[row for row in feat[...].numpy()]``); the other features here are per dialogue a (T, dim) array or a list
  of 1-D arrays as noted per sample.

Use::

    sample = SAMPLES["sdt-iemocap-12"]
    path = sample.build(tmp_path)           # Path, or dict modality -> Path for joined layouts
    sample.labels[vid], sample.splits["train"], sample.dims, sample.features("text")[vid]
"""

from __future__ import annotations

import contextlib
import pickle
import struct
import sys
import types
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

IEMOCAP6 = ("happy", "sad", "neutral", "angry", "excited", "frustrated")
IEMOCAP4 = ("happy", "sad", "neutral", "angry")
MELD7 = ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger")
# conv-emotion's integer mapping of MELD sentiment (bc-LSTM-pytorch/dataloader.py docstring; meld_text.pkl agrees).
MELD_SENTIMENTS = ("neutral", "positive", "negative")

PICKLE3_PROTOCOL = 3  # the default protocol of Python 3.0-3.7, which the peers' Python 3 files were written with

# --------------------------------------------------------------------------------------------------------------------
# Dialogue content (ids, speakers, labels, sentences, sentiments) shared by the layouts of one dataset
# --------------------------------------------------------------------------------------------------------------------

# IEMOCAP: the 9 "train" and 1 "valid" ids follow COSMIC's split (validation separate); files without a validation
# split list train + valid as their training ids (as the real 120 = 108 + 12). Session 5 is the test set.
IEMOCAP_TRAIN = (
    "Ses01F_impro01",
    "Ses01M_script01_2",
    "Ses02F_impro06",
    "Ses02M_script03_1",
    "Ses03F_impro02",
    "Ses03M_impro08a",
    "Ses04F_script02_1",
    "Ses04M_impro07",
    "Ses01F_script03_1",
)
IEMOCAP_VALID = ("Ses02M_impro03",)
IEMOCAP_TEST = ("Ses05F_impro02", "Ses05M_script01_1")

# MELD: integer dialogue ids like the real files (train 0.., dev 1039.., test 1153..).
MELD_TRAIN = (0, 1, 2, 3, 4, 5)
MELD_VALID = (1039,)
MELD_TEST = (1153, 1154)


@dataclass(frozen=True)
class Dialogues:
    """The content of one dataset's sample dialogues, in canonical order (train, valid, test)."""

    dataset: str
    train: tuple
    valid: tuple
    test: tuple
    speakers: Mapping  # id -> list of 'M'/'F' (IEMOCAP) or of 9-way one-hot int lists (MELD)
    labels: Mapping  # id -> list[int]
    sentiments: Mapping | None  # id -> list[int] (MELD, conv-emotion mapping) or None
    sentences: Mapping  # id -> list[str]
    utterance_ids: Mapping  # id -> list (the videoIDs entry)

    @property
    def ids(self) -> tuple:
        return self.train + self.valid + self.test

    @property
    def train_with_valid(self) -> tuple:
        """Training ids of files without a validation split: train then valid (COGMEN takes its dev from the front)."""
        return self.train + self.valid


def _rng(*parts: Any) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(parts).encode()))


@lru_cache(maxsize=None)
def dialogues(dataset: str, n_classes: int | None = None) -> Dialogues:
    """Deterministic dialogues of ``dataset`` ("iemocap" or "meld"); ``n_classes`` 6 or 4 for IEMOCAP.

    Every class occurs in the training dialogues ``train[1]`` and ``train[2]`` (so it is in COSMIC's train split, in
    COGMEN's train part ``trainVid[1:]`` and in every file's trainVid); all splits are non-empty.
    """
    if dataset == "iemocap":
        n_classes = n_classes or 6
        train, valid, test = IEMOCAP_TRAIN, IEMOCAP_VALID, IEMOCAP_TEST
    elif dataset == "meld":
        n_classes = 7
        train, valid, test = MELD_TRAIN, MELD_VALID, MELD_TEST
    else:
        raise ValueError(dataset)
    rng = _rng("dialogues", dataset, n_classes)
    ids = train + valid + test
    lengths = {vid: int(rng.integers(3, 9)) for vid in ids}
    lengths[train[1]], lengths[train[2]] = 7, 8
    labels = {vid: [int(x) for x in rng.integers(0, n_classes, lengths[vid])] for vid in ids}
    forced = list(range(n_classes))
    first = forced[: lengths[train[1]]]
    labels[train[1]][: len(first)] = first
    rest = forced[len(first) :]
    labels[train[2]][: len(rest)] = rest
    speakers: dict = {}
    utterance_ids: dict = {}
    sentences: dict = {}
    sentiments: dict | None = None
    if dataset == "iemocap":
        for vid in ids:
            spk = [("M", "F")[int(x)] for x in rng.integers(0, 2, lengths[vid])]
            spk[0], spk[1] = "F", "M"  # both speakers in every dialogue
            speakers[vid] = spk
            utterance_ids[vid] = [f"{vid}_{s}{i:03d}" for i, s in enumerate(spk)]
            verbs = ("am", "was", "will be")
            sentences[vid] = [f"{vid} utterance {i}: I {verbs[i % 3]} here." for i in range(len(spk))]
    else:
        sentiments = {}
        for vid in ids:
            who = [int(x) for x in rng.integers(0, 9, lengths[vid])]
            speakers[vid] = [[1 if j == w else 0 for j in range(9)] for w in who]
            utterance_ids[vid] = list(range(lengths[vid]))
            # cp1252 apostrophe decoded as latin1, as in the real MELD transcripts
            line = "you must\x92ve had your hands full."
            sentences[vid] = [f"Dialogue {vid} line {i}: {line}" for i in range(lengths[vid])]
            sent = []
            for e in labels[vid]:
                name = MELD7[e]
                if name == "neutral":
                    sent.append(MELD_SENTIMENTS.index("neutral"))
                elif name == "joy":
                    sent.append(MELD_SENTIMENTS.index("positive"))
                elif name == "surprise":
                    sent.append(int(rng.integers(1, 3)))
                else:
                    sent.append(MELD_SENTIMENTS.index("negative"))
            sentiments[vid] = sent
    return Dialogues(
        dataset=dataset,
        train=train,
        valid=valid,
        test=test,
        speakers=types.MappingProxyType(speakers),
        labels=types.MappingProxyType(labels),
        sentiments=None if sentiments is None else types.MappingProxyType(sentiments),
        sentences=types.MappingProxyType(sentences),
        utterance_ids=types.MappingProxyType(utterance_ids),
    )


@lru_cache(maxsize=None)
def feature_matrix(dataset: str, source: str, vid: Any, dim: int, length: int) -> np.ndarray:
    """Deterministic float32 (length, dim) features of one dialogue from one feature ``source`` (read-only)."""
    array = _rng("features", dataset, source, vid, dim).standard_normal((length, dim)).astype(np.float32)
    array.setflags(write=False)
    return array


def _features(d: Dialogues, source: str, dim: int, form: str, ids: tuple | None = None) -> dict:
    """id -> features of ``source`` in the stored ``form``: "array" (T, dim) float32, "rows" (list of 1-D float32),
    "rows64" (list of 1-D float64)."""
    out = {}
    for vid in ids or d.ids:
        m = feature_matrix(d.dataset, source, vid, dim, len(d.labels[vid]))
        if form == "array":
            out[vid] = np.array(m)
        elif form == "rows":
            out[vid] = [np.array(row) for row in m]
        elif form == "rows64":
            out[vid] = [row.astype(np.float64) for row in m]
        else:
            raise ValueError(form)
    return out


# --------------------------------------------------------------------------------------------------------------------
# A Python 2 (cPickle, protocol 2) opcode emitter
# --------------------------------------------------------------------------------------------------------------------


class Py2Set(tuple):
    """A set to be pickled as Python 2's ``__builtin__.set`` with its items in this (deterministic) order."""


class Py2Unicode(str):
    """A text to be pickled as a Python 2 ``unicode`` (BINUNICODE); plain ``str`` becomes a py2 byte ``str``."""


class _Py2Pickler:
    """Writes protocol-2 opcodes as Python 2.7's cPickle did for dicts, lists, tuples, str, int, float, bool, None,
    sets and numpy arrays (numpy 1.x of that era: ``_reconstruct`` + a version-1 state, dtype state version 3)."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.memo: dict[Any, int] = {}

    def dumps(self, obj: Any) -> bytes:
        self.out += b"\x80\x02"
        self.save(obj)
        self.out += b"."
        return bytes(self.out)

    # memo -----------------------------------------------------------------------------------------------------------
    def _put(self, key: Any) -> None:
        index = len(self.memo)
        self.memo[key] = index
        self.out += b"q" + bytes([index]) if index < 256 else b"r" + struct.pack("<I", index)

    def _get(self, key: Any) -> bool:
        index = self.memo.get(key)
        if index is None:
            return False
        self.out += b"h" + bytes([index]) if index < 256 else b"j" + struct.pack("<I", index)
        return True

    def _global(self, module: str, name: str) -> None:
        if not self._get(("global", module, name)):
            self.out += b"c" + module.encode() + b"\n" + name.encode() + b"\n"
            self._put(("global", module, name))

    # objects --------------------------------------------------------------------------------------------------------
    def save(self, obj: Any) -> None:
        if obj is None:
            self.out += b"N"
        elif obj is True or obj is False or isinstance(obj, np.bool_):
            self.out += b"\x88" if obj else b"\x89"
        elif isinstance(obj, (int, np.integer)):
            self._int(int(obj))
        elif isinstance(obj, (float, np.floating)):
            self.out += b"G" + struct.pack(">d", float(obj))
        elif isinstance(obj, Py2Unicode):
            data = str(obj).encode("utf-8")
            self.out += b"X" + struct.pack("<I", len(data)) + data
        elif isinstance(obj, str):
            self._bytes(obj.encode("latin-1"))
        elif isinstance(obj, bytes):
            self._bytes(obj)
        elif isinstance(obj, Py2Set) or isinstance(obj, (set, frozenset)):
            items = list(obj) if isinstance(obj, Py2Set) else sorted(obj)
            self._global("__builtin__", "set" if not isinstance(obj, frozenset) else "frozenset")
            self.save(items)
            self.out += b"\x85R"
        elif isinstance(obj, tuple):
            self._tuple(obj)
        elif isinstance(obj, list):
            self.out += b"]"
            for start in range(0, len(obj), 1000):
                chunk = obj[start : start + 1000]
                if len(chunk) == 1:
                    self.save(chunk[0])
                    self.out += b"a"
                else:
                    self.out += b"("
                    for item in chunk:
                        self.save(item)
                    self.out += b"e"
        elif isinstance(obj, dict):
            self.out += b"}"
            items = list(obj.items())
            for start in range(0, len(items), 1000):
                chunk = items[start : start + 1000]
                if len(chunk) == 1:
                    self.save(chunk[0][0])
                    self.save(chunk[0][1])
                    self.out += b"s"
                else:
                    self.out += b"("
                    for key, value in chunk:
                        self.save(key)
                        self.save(value)
                    self.out += b"u"
        elif isinstance(obj, np.ndarray):
            self._ndarray(obj)
        else:
            raise TypeError(f"py2 emitter: unsupported type {type(obj).__name__}")

    def _int(self, value: int) -> None:
        if 0 <= value < 256:
            self.out += b"K" + bytes([value])
        elif 0 <= value < 65536:
            self.out += b"M" + struct.pack("<H", value)
        elif -(2**31) <= value < 2**31:
            self.out += b"J" + struct.pack("<i", value)
        else:
            data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
            self.out += b"\x8a" + bytes([len(data)]) + data

    def _bytes(self, data: bytes) -> None:
        if len(data) < 256:
            self.out += b"U" + bytes([len(data)]) + data
        else:
            self.out += b"T" + struct.pack("<I", len(data)) + data

    def _tuple(self, items: tuple) -> None:
        if not items:
            self.out += b")"
        elif len(items) <= 3:
            for item in items:
                self.save(item)
            self.out += b"\x85\x86\x87"[len(items) - 1 : len(items)]
        else:
            self.out += b"("
            for item in items:
                self.save(item)
            self.out += b"t"

    def _dtype(self, dtype: np.dtype) -> None:
        if self._get(("dtype", dtype.str)):
            return
        if dtype.kind not in "fiub" or dtype.fields is not None:
            raise TypeError(f"py2 emitter: unsupported dtype {dtype}")
        self._global("numpy", "dtype")
        self._tuple((f"{dtype.kind}{dtype.itemsize}", 0, 1))
        self.out += b"R"
        order = "|" if dtype.itemsize == 1 else "<"
        self._tuple((3, order, None, None, None, -1, -1, 0))
        self.out += b"b"
        self._put(("dtype", dtype.str))

    def _ndarray(self, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array)
        if array.dtype.byteorder == ">":
            raise TypeError("py2 emitter: big-endian arrays are not supported")
        self._global("numpy.core.multiarray", "_reconstruct")
        self._global("numpy", "ndarray")
        self._tuple((0,))
        self._bytes(b"b")
        self.out += b"\x87R"
        self.out += b"("
        self._int(1)
        self._tuple(tuple(int(n) for n in array.shape))
        self._dtype(array.dtype)
        self.out += b"\x89"  # not Fortran-ordered
        self._bytes(array.tobytes())
        self.out += b"tb"


def py2_dumps(obj: Any) -> bytes:
    """``obj`` as Python 2.7's ``cPickle.dumps(obj, 2)`` wrote it (see :class:`_Py2Pickler` for the types)."""
    return _Py2Pickler().dumps(obj)


def _write_py2(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(py2_dumps(obj))
    return path


def _write_py3(path: Path, obj: Any, protocol: int = PICKLE3_PROTOCOL) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    return path


# --------------------------------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Sample:
    """One layout variant: how to write it, and the ground truth a reader must reproduce from it."""

    key: str
    producer: str  # the peer projects whose files have this layout
    description: str
    dataset: str  # "iemocap" | "meld"
    n_classes: int
    label_names: tuple
    sentiment_names: tuple | None  # names of the file's sentiment ints in order, or None when it has no sentiments
    dims: Mapping  # modality -> feature dim, only the modalities the file has ("text", "audio", "visual")
    splits: Mapping  # split -> list of dialogue ids in file order ("train", "test", and "valid" where the file has one)
    n_speakers: int
    python2: bool
    peer_source: str  # repository/path of the loader read, and the indices as it reads them
    filename: str  # the file (or folder) name build() writes, as the peer names it
    top_level: str  # "tuple" | "list" | "dict" | "folder" | "joined"
    length: int | None  # top-level length (None for folder/joined)
    split_container: str = "list"  # "list" or "set" (sets: file order is not preserved by a Python 3 load)
    valid_in_train: bool = False  # True when the "valid" ids are also listed in the file's train ids
    text_layers: int = 1  # RoBERTa layers the file carries (text = the first, i.e. COSMIC's roberta1)
    feature_form: Mapping = field(default_factory=dict)  # modality -> "array" | "rows" | "rows64" (stored form)
    feature_sources: Mapping = field(default_factory=dict)  # modality -> generator source name (internal)
    notes: str = ""
    stand_in: str | None = None  # module path of a stand-in class that loading needs (see stand_in_modules)
    _builder: Callable[[Path], Any] | None = field(default=None, repr=False)

    # ground truth ---------------------------------------------------------------------------------------------------
    @property
    def content(self) -> Dialogues:
        return dialogues(self.dataset, self.n_classes if self.dataset == "iemocap" else None)

    @property
    def ids(self) -> list:
        """Every dialogue id of the file's splits (train, valid unless already in train, test)."""
        seen: list = []
        for split in ("train", "valid", "test"):
            for vid in self.splits.get(split, ()):
                if vid not in seen:
                    seen.append(vid)
        return seen

    # The properties below return fresh copies: mutating them does not change the samples.
    @property
    def labels(self) -> Mapping:
        return {vid: list(self.content.labels[vid]) for vid in self.ids}

    @property
    def speakers(self) -> Mapping:
        """id -> speakers as stored: 'M'/'F' strings (IEMOCAP) or 9-way one-hot int lists (MELD)."""
        return {vid: [s if isinstance(s, str) else list(s) for s in self.content.speakers[vid]] for vid in self.ids}

    @property
    def speaker_indices(self) -> Mapping:
        """id -> speaker index per utterance: 'M' 0 / 'F' 1 (the peers' [1,0] if 'M' else [0,1]), MELD argmax."""
        out = {}
        for vid, spk in self.speakers.items():
            out[vid] = [0 if s == "M" else 1 for s in spk] if self.dataset == "iemocap" else [s.index(1) for s in spk]
        return out

    @property
    def sentiments(self) -> Mapping | None:
        if self.sentiment_names is None:
            return None
        return {vid: list(self.content.sentiments[vid]) for vid in self.ids}

    @property
    def sentences(self) -> Mapping:
        return {vid: list(self.content.sentences[vid]) for vid in self.ids}

    def lengths(self) -> dict:
        return {vid: len(labels) for vid, labels in self.labels.items()}

    def features(self, modality: str) -> dict:
        """id -> the (T, dim) float32 matrix a reader should produce for ``modality`` (read-only arrays)."""
        dim = self.dims[modality]
        source = self.feature_sources[modality]
        return {vid: feature_matrix(self.dataset, source, vid, dim, len(self.content.labels[vid])) for vid in self.ids}

    def label_counts(self, split: str = "train") -> list[int]:
        counts = [0] * self.n_classes
        for vid in self.splits[split]:
            for label in self.content.labels[vid]:
                counts[label] += 1
        return counts

    # writing ----------------------------------------------------------------------------------------------------
    def build(self, directory: Path | str) -> Path | dict[str, Path]:
        """Write the sample under ``directory``; return its path (file or folder), or modality -> file (joined)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        assert self._builder is not None
        return self._builder(directory)


SAMPLES: dict[str, Sample] = {}


def _register(**kwargs: Any) -> Sample:
    sample = Sample(**kwargs)
    if sample.key in SAMPLES:
        raise ValueError(f"duplicate sample key {sample.key}")
    SAMPLES[sample.key] = sample
    return sample


# ---- IEMOCAP and MELD multimodal tuples (SDT / MCEF / CFN-ESA / GraphSmile) ------------------------------------------

_I = dialogues("iemocap", 6)
_M = dialogues("meld")


def _sdt_iemocap_obj() -> tuple:
    d = _I
    ids = d.ids
    return (
        {k: list(d.utterance_ids[k]) for k in ids},
        {k: list(d.speakers[k]) for k in ids},
        {k: list(d.labels[k]) for k in ids},
        _features(d, "roberta1", 1024, "rows"),
        _features(d, "roberta2", 1024, "rows"),
        _features(d, "roberta3", 1024, "rows"),
        _features(d, "roberta4", 1024, "rows"),
        _features(d, "is10", 1582, "array"),
        _features(d, "denseface", 342, "array"),
        {k: list(d.sentences[k]) for k in ids},
        list(d.train_with_valid),
        list(d.test),
    )


_register(
    key="sdt-iemocap-12",
    producer="SDT, MCEF, CFN-ESA, GraphSmile",
    description="iemocap_multimodal_features.pkl: 12-tuple of dicts keyed by dialogue id (COSMIC RoBERTa layers 1-4, "
    "MMGCN IS10 audio and DenseFace visual), then trainVid, testVid lists",
    dataset="iemocap",
    n_classes=6,
    label_names=IEMOCAP6,
    sentiment_names=None,
    dims={"text": 1024, "audio": 1582, "visual": 342},
    splits={"train": list(_I.train_with_valid), "test": list(_I.test)},
    n_speakers=2,
    python2=False,
    peer_source="butterfliesss/SDT dataloader.py IEMOCAPDataset: pickle.load(..., encoding='latin1') -> videoIDs 0, "
    "videoSpeakers 1, videoLabels 2, videoText 3, roberta2 4, roberta3 5, roberta4 6, videoAudio 7, videoVisual 8, "
    "videoSentence 9, trainVid 10, testVid 11; lijfrank-open/CFN-ESA and lijfrank-open/GraphSmile dataloader.py "
    "IEMOCAPDataset(_BERT) read the same 12 items (videoText1..4 at 3..6)",
    filename="iemocap_multimodal_features.pkl",
    top_level="tuple",
    length=12,
    text_layers=4,
    feature_form={"text": "rows", "audio": "array", "visual": "array"},
    feature_sources={"text": "roberta1", "audio": "is10", "visual": "denseface"},
    notes="Top-level container (tuple vs list) is not visible in the loaders (they unpack); tuple used. No "
    "validation split: trainVid = COSMIC train + valid (the real 120 dialogues).",
    _builder=lambda directory: _write_py3(directory / "iemocap_multimodal_features.pkl", _sdt_iemocap_obj()),
)


def _meld_common_lists(d: Dialogues) -> dict:
    ids = d.ids
    return {
        "ids": {k: list(d.utterance_ids[k]) for k in ids},
        "speakers": {k: [list(s) for s in d.speakers[k]] for k in ids},
        "labels": {k: list(d.labels[k]) for k in ids},
        "sentiments": {k: list(d.sentiments[k]) for k in ids},
        "sentences": {k: list(d.sentences[k]) for k in ids},
    }


def _sdt_meld_obj(thirteenth: str) -> tuple:
    d = _M
    c = _meld_common_lists(d)
    last = c["sentiments"] if thirteenth == "sentiment" else list(d.valid)
    return (
        c["ids"],
        c["speakers"],
        c["labels"],
        _features(d, "roberta1", 1024, "rows"),
        _features(d, "roberta2", 1024, "rows"),
        _features(d, "roberta3", 1024, "rows"),
        _features(d, "roberta4", 1024, "rows"),
        _features(d, "meld-audio300", 300, "array"),
        _features(d, "denseface", 342, "array"),
        c["sentences"],
        list(d.train_with_valid),
        list(d.test),
        last,
    )


_SDT_MELD_SOURCE = (
    "butterfliesss/SDT dataloader.py MELDDataset: pickle.load(open(path, 'rb')) (no latin1: a Python 3 file) -> "
    "videoIDs 0, videoSpeakers 1 (one-hot, used as is), videoLabels 2, videoText 3, roberta2 4, roberta3 5, "
    "roberta4 6, videoAudio 7, videoVisual 8, videoSentence 9, trainVid 10, testVid 11, 12 discarded as _"
)

for _variant, _desc, _sent, _splits, _note in (
    (
        "sentiment",
        "13th item = sentiment dict (dialogue id -> list of 0..2)",
        MELD_SENTIMENTS,
        {"train": list(_M.train_with_valid), "test": list(_M.test)},
        "SDT discards item 12; this variant makes it the sentiment dict (conv-emotion mapping 0 neutral, 1 positive, "
        "2 negative). Which of the two variants the real file has was not verifiable.",
    ),
    (
        "devids",
        "13th item = list of dev dialogue ids (also listed in trainVid)",
        None,
        {"train": list(_M.train_with_valid), "valid": list(_M.valid), "test": list(_M.test)},
        "SDT discards item 12; this variant makes it the dev ids, which are also in trainVid (valid_in_train). "
        "Which of the two variants the real file has was not verifiable.",
    ),
):
    _register(
        key=f"sdt-meld-13-{_variant}",
        producer="SDT, MCEF",
        description=f"meld_multimodal_features.pkl: 13-tuple like the IEMOCAP 12-tuple, MELD speakers 9-way one-hot, "
        f"300-d audio; {_desc}",
        dataset="meld",
        n_classes=7,
        label_names=MELD7,
        sentiment_names=_sent,
        dims={"text": 1024, "audio": 300, "visual": 342},
        splits=_splits,
        n_speakers=9,
        python2=False,
        peer_source=_SDT_MELD_SOURCE,
        filename="meld_multimodal_features.pkl",
        top_level="tuple",
        length=13,
        valid_in_train=_variant == "devids",
        text_layers=4,
        feature_form={"text": "rows", "audio": "array", "visual": "array"},
        feature_sources={"text": "roberta1", "audio": "meld-audio300", "visual": "denseface"},
        notes=_note,
        _builder=(lambda v: lambda directory: _write_py3(directory / "meld_multimodal_features.pkl", _sdt_meld_obj(v)))(
            _variant
        ),
    )


def _cfnesa_meld_obj() -> tuple:
    d = _M
    c = _meld_common_lists(d)
    return (
        c["ids"],
        c["speakers"],
        c["labels"],
        c["sentiments"],
        _features(d, "roberta1", 1024, "rows"),
        _features(d, "roberta2", 1024, "rows"),
        _features(d, "roberta3", 1024, "rows"),
        _features(d, "roberta4", 1024, "rows"),
        _features(d, "meld-audio300", 300, "array"),
        _features(d, "denseface", 342, "array"),
        c["sentences"],
        list(d.train_with_valid),
        list(d.test),
        list(d.valid),
    )


_register(
    key="cfnesa-meld-14",
    producer="CFN-ESA, GraphSmile",
    description="meld_multimodal_features.pkl (GraphSmile: meld_multi_features.pkl): 14-tuple with the sentiment dict "
    "at index 3, RoBERTa layers 1-4, audio 300, visual 342, sentences, trainVid, testVid, and a 14th item (dev ids)",
    dataset="meld",
    n_classes=7,
    label_names=MELD7,
    sentiment_names=MELD_SENTIMENTS,
    dims={"text": 1024, "audio": 300, "visual": 342},
    splits={"train": list(_M.train_with_valid), "valid": list(_M.valid), "test": list(_M.test)},
    n_speakers=9,
    python2=False,
    peer_source="lijfrank-open/CFN-ESA dataloader.py MELDDataset and lijfrank-open/GraphSmile dataloader.py "
    "MELDDataset_BERT: pickle.load(open(path, 'rb')) -> videoIDs 0, videoSpeakers 1 (one-hot), videoLabels 2, "
    "videoSentiments 3, videoText1..4 4-7, videoAudio 8, videoVisual 9, videoSentence 10, trainVid 11, testVid 12, "
    "13 discarded as _",
    filename="meld_multimodal_features.pkl",
    top_level="tuple",
    length=14,
    valid_in_train=True,
    text_layers=4,
    feature_form={"text": "rows", "audio": "array", "visual": "array"},
    feature_sources={"text": "roberta1", "audio": "meld-audio300", "visual": "denseface"},
    notes="Both loaders discard item 13 (_); no code found that names it. Since the sentiments are already at index "
    "3, it is taken to be the dev ids (also in trainVid): not verified. The sentiment integer mapping of this file is "
    "not stated by CFN-ESA/GraphSmile (a third-party GraphSmile analysis script assumes 0 negative, 1 neutral, "
    "2 positive); this sample uses conv-emotion's 0 neutral, 1 positive, 2 negative.",
    _builder=lambda directory: _write_py3(directory / "meld_multimodal_features.pkl", _cfnesa_meld_obj()),
)


# ---- MMGCN / conv-emotion MELD -----------------------------------------------------------------------------------


def _mmgcn_meld_obj() -> tuple:
    d = _M
    c = _meld_common_lists(d)
    return (
        c["ids"],
        c["speakers"],
        c["labels"],
        _features(d, "meld-text600", 600, "array"),
        _features(d, "meld-audio300", 300, "array"),
        _features(d, "denseface", 342, "array"),
        c["sentences"],
        list(d.train_with_valid),
        list(d.test),
        c["sentiments"],
    )


_MMGCN_MELD = dict(
    dataset="meld",
    n_classes=7,
    label_names=MELD7,
    sentiment_names=MELD_SENTIMENTS,
    dims={"text": 600, "audio": 300, "visual": 342},
    splits={"train": list(_M.train_with_valid), "test": list(_M.test)},
    n_speakers=9,
    python2=False,
    top_level="tuple",
    length=10,
    feature_form={"text": "array", "audio": "array", "visual": "array"},
    feature_sources={"text": "meld-text600", "audio": "meld-audio300", "visual": "denseface"},
)

_register(
    key="mmgcn-meld-10",
    producer="MMGCN, MM-DFN, M3Net, MultiEMO",
    description="MELD_features_raw1.pkl: 10-tuple videoIDs, videoSpeakers (one-hot), videoLabels, videoText (600), "
    "videoAudio (300), videoVisual (342), videoSentence, trainVid, testVid, sentiments",
    peer_source="hujingwen6666/MMGCN dataloader.py MELDDataset: pickle.load(open(path, 'rb')) -> videoIDs 0, "
    "videoSpeakers 1, videoLabels 2, videoText 3, videoAudio 4, videoVisual 5, videoSentence 6, trainVid 7, "
    "testVid 8, 9 discarded as _ (feiyuchen7/M3NET dataloader.py reads the same; TaoShi1998/MultiEMO "
    "Dataset/MELDDataset.py reads speakers 1, labels 2, trainVid 7, testVid 8 of its Speakers.pkl 10-tuple)",
    filename="MELD_features_raw1.pkl",
    notes="Item 9 is discarded by every loader read; taken to be the sentiment dict as in the bc-LSTM 9-tuple "
    "(conv-emotion mapping): not verified. No validation split (trainVid = train + dev, as in conv-emotion).",
    _builder=lambda directory: _write_py3(directory / "MELD_features_raw1.pkl", _mmgcn_meld_obj()),
    **_MMGCN_MELD,
)


def _bclstm_meld_obj() -> tuple:
    d = _M
    c = _meld_common_lists(d)
    return (
        c["ids"],
        c["speakers"],
        c["labels"],
        _features(d, "meld-text600", 600, "array"),
        _features(d, "meld-audio300", 300, "array"),
        c["sentences"],
        list(d.train_with_valid),
        list(d.test),
        c["sentiments"],
    )


_register(
    key="bclstm-meld-9",
    producer="conv-emotion bc-LSTM-pytorch, DialogueGCN (MELD)",
    description="MELD_features_raw.pkl: 9-tuple videoIDs, videoSpeakers (one-hot), emotion labels, videoText (600), "
    "videoAudio (300), videoSentence, trainVid, testVid, sentiment labels; no visual",
    dataset="meld",
    n_classes=7,
    label_names=MELD7,
    sentiment_names=MELD_SENTIMENTS,
    dims={"text": 600, "audio": 300},
    splits={"train": list(_M.train_with_valid), "test": list(_M.test)},
    n_speakers=9,
    python2=False,
    peer_source="declare-lab/conv-emotion bc-LSTM-pytorch/dataloader.py MELDDataset: pickle.load(open(path, 'rb')) "
    "-> videoIDs 0, videoSpeakers 1, emotion_labels 2, videoText 3, videoAudio 4, videoSentence 5, trainVid 6, "
    "testVid 7, sentiment_labels 8 (docstring: emotion neutral 0 surprise 1 fear 2 sadness 3 joy 4 disgust 5 "
    "anger 6; sentiment neutral 0 positive 1 negative 2); DialogueGCN/dataloader.py MELDDataset reads the same",
    filename="MELD_features_raw.pkl",
    top_level="tuple",
    length=9,
    feature_form={"text": "array", "audio": "array"},
    feature_sources={"text": "meld-text600", "audio": "meld-audio300"},
    notes="Same length as the IEMOCAP 9-tuple: index 5 holds sentences (IEMOCAP: visual features), index 8 "
    "sentiments (IEMOCAP: testVid), speakers are one-hot lists (IEMOCAP: 'M'/'F'). Loaded without latin1: Python 3.",
    _builder=lambda directory: _write_py3(directory / "MELD_features_raw.pkl", _bclstm_meld_obj()),
)


# ---- IEMOCAP 9-tuples (MMGCN / DialogueGCN / COGMEN / CORECT), Python 2 ----------------------------------------------


def _iemocap9_obj(d: Dialogues, dims: tuple[int, int, int], sources: tuple[str, str, str], form: str, sets: bool):
    ids = d.ids
    split = Py2Set if sets else list
    return (
        {k: list(d.utterance_ids[k]) for k in ids},
        {k: list(d.speakers[k]) for k in ids},
        {k: list(d.labels[k]) for k in ids},
        _features(d, sources[0], dims[0], form),
        _features(d, sources[1], dims[1], form),
        _features(d, sources[2], dims[2], form),
        {k: list(d.sentences[k]) for k in ids},
        split(d.train_with_valid),
        split(d.test),
    )


_IEMOCAP9_SOURCE = (
    "{repo}: pickle.load(open(..., 'rb'), encoding='latin1') -> videoIDs 0, videoSpeakers 1 ('M'/'F'), "
    "videoLabels 2, videoText 3, videoAudio 4, videoVisual 5, videoSentence 6, trainVid 7, testVid 8"
)

_register(
    key="mmgcn-iemocap-9",
    producer="MMGCN, MM-DFN, M3Net",
    description="IEMOCAP_features.pkl (MMGCN): Python 2 pickle, 9-tuple; text 100, audio IS10 1582, visual "
    "DenseFace 342; trainVid/testVid lists",
    dataset="iemocap",
    n_classes=6,
    label_names=IEMOCAP6,
    sentiment_names=None,
    dims={"text": 100, "audio": 1582, "visual": 342},
    splits={"train": list(_I.train_with_valid), "test": list(_I.test)},
    n_speakers=2,
    python2=True,
    peer_source=_IEMOCAP9_SOURCE.format(
        repo="hujingwen6666/MMGCN dataloader.py IEMOCAPDataset (feiyuchen7/M3NET dataloader.py the same)"
    ),
    filename="IEMOCAP_features.pkl",
    top_level="tuple",
    length=9,
    feature_form={"text": "rows64", "audio": "rows64", "visual": "rows64"},
    feature_sources={"text": "text100", "audio": "is10", "visual": "denseface"},
    notes="Per-utterance features stored as lists of 1-D float64 arrays (element type of the real file not "
    "verified; the loaders only call torch.FloatTensor on it).",
    _builder=lambda directory: _write_py2(
        directory / "IEMOCAP_features.pkl",
        _iemocap9_obj(_I, (100, 1582, 342), ("text100", "is10", "denseface"), "rows64", sets=False),
    ),
)

_register(
    key="dialoguegcn-iemocap-9-sets",
    producer="conv-emotion DialogueGCN, bc-LSTM-pytorch, DialogueRNN",
    description="IEMOCAP_features.pkl (conv-emotion): Python 2 pickle, 9-tuple; text 100, audio 100, visual 512; "
    "trainVid/testVid as sets",
    dataset="iemocap",
    n_classes=6,
    label_names=IEMOCAP6,
    sentiment_names=None,
    dims={"text": 100, "audio": 100, "visual": 512},
    splits={"train": list(_I.train_with_valid), "test": list(_I.test)},
    n_speakers=2,
    python2=True,
    peer_source=_IEMOCAP9_SOURCE.format(
        repo="declare-lab/conv-emotion DialogueGCN/dataloader.py IEMOCAPDataset (bc-LSTM-pytorch/dataloader.py "
        "the same; docstring hap 0 sad 1 neu 2 ang 3 exc 4 fru 5)"
    ),
    filename="IEMOCAP_features.pkl",
    top_level="tuple",
    length=9,
    split_container="set",
    feature_form={"text": "rows", "audio": "rows", "visual": "rows"},
    feature_sources={"text": "text100", "audio": "audio100", "visual": "visual512"},
    notes="Split ids are py2 sets (__builtin__.set): their order after a Python 3 load is hash order, so compare "
    "splits as sets. The loaders only iterate them ([x for x in trainVid]); whether the real file has sets or "
    "lists was not verified (COGMEN/CORECT slice trainVids, so their copy must have lists: see "
    "dialoguegcn-iemocap-9-lists).",
    _builder=lambda directory: _write_py2(
        directory / "IEMOCAP_features.pkl",
        _iemocap9_obj(_I, (100, 100, 512), ("text100", "audio100", "visual512"), "rows", sets=True),
    ),
)

_register(
    key="dialoguegcn-iemocap-9-lists",
    producer="COGMEN, CORECT (input of preprocess.py), DialogueGCN",
    description="IEMOCAP_features.pkl as COGMEN/CORECT read it: Python 2 pickle, 9-tuple; text 100, audio 100, "
    "visual 512; trainVid/testVid lists",
    dataset="iemocap",
    n_classes=6,
    label_names=IEMOCAP6,
    sentiment_names=None,
    dims={"text": 100, "audio": 100, "visual": 512},
    splits={"train": list(_I.train_with_valid), "test": list(_I.test)},
    n_speakers=2,
    python2=True,
    peer_source=_IEMOCAP9_SOURCE.format(
        repo="Exploration-Lab/COGMEN preprocess.py get_iemocap (slices trainVids[dev_size:], so lists) and "
        "leson502/CORECT_EMNLP2023 preprocess.py get_iemocap"
    ),
    filename="IEMOCAP_features.pkl",
    top_level="tuple",
    length=9,
    feature_form={"text": "rows", "audio": "rows", "visual": "rows"},
    feature_sources={"text": "text100", "audio": "audio100", "visual": "visual512"},
    notes="COGMEN's issue #6 confirms video_text is 100-d in its IEMOCAP pickles.",
    _builder=lambda directory: _write_py2(
        directory / "IEMOCAP_features.pkl",
        _iemocap9_obj(_I, (100, 100, 512), ("text100", "audio100", "visual512"), "rows", sets=False),
    ),
)

_I4 = dialogues("iemocap", 4)

_register(
    key="iemocap-9-4class",
    producer="COGMEN, CORECT (data/iemocap_4/IEMOCAP_features_4.pkl)",
    description="IEMOCAP_features_4.pkl: the 9-tuple layout (text 100, audio 100, visual 512) with 4 classes "
    "0 happy, 1 sad, 2 neutral, 3 angry; trainVid/testVid lists",
    dataset="iemocap",
    n_classes=4,
    label_names=IEMOCAP4,
    sentiment_names=None,
    dims={"text": 100, "audio": 100, "visual": 512},
    splits={"train": list(_I4.train_with_valid), "test": list(_I4.test)},
    n_speakers=2,
    python2=False,
    peer_source=_IEMOCAP9_SOURCE.format(
        repo="Exploration-Lab/COGMEN preprocess.py get_iemocap (args.dataset == 'iemocap_4'; label dict "
        "cogmen/Coach.py {'hap': 0, 'sad': 1, 'neu': 2, 'ang': 3}); leson502/CORECT_EMNLP2023 preprocess.py the same"
    ),
    filename="IEMOCAP_features_4.pkl",
    top_level="tuple",
    length=9,
    feature_form={"text": "rows", "audio": "rows", "visual": "rows"},
    feature_sources={"text": "text100", "audio": "audio100", "visual": "visual512"},
    notes="Loaded with encoding='latin1' by both; whether it was written by Python 2 is not known (written here "
    "as Python 3). Same shape as the 6-class files: only the label range (max 3) and the file name differ.",
    _builder=lambda directory: _write_py3(
        directory / "IEMOCAP_features_4.pkl",
        _iemocap9_obj(_I4, (100, 100, 512), ("text100", "audio100", "visual512"), "rows", sets=False),
    ),
)


# ---- COSMIC RoBERTa lists ------------------------------------------------------------------------------------------


def _cosmic_iemocap_obj() -> list:
    d = _I
    ids = d.ids
    return [
        {k: list(d.speakers[k]) for k in ids},
        {k: list(d.labels[k]) for k in ids},
        _features(d, "roberta1", 1024, "rows"),
        _features(d, "roberta2", 1024, "rows"),
        _features(d, "roberta3", 1024, "rows"),
        _features(d, "roberta4", 1024, "rows"),
        {k: list(d.sentences[k]) for k in ids},
        list(d.train),
        list(d.test),
        list(d.valid),
    ]


_register(
    key="cosmic-iemocap-roberta-10",
    producer="COSMIC (conv-emotion), M3Net (text part), SDT's source of RoBERTa features",
    description="iemocap_features_roberta.pkl: a 10-list speakers, labels, roberta1..4 (1024-d, per dialogue a list "
    "of 1-D float32 arrays), sentences, trainIds, testIds, validIds (lists; valid separate from train)",
    dataset="iemocap",
    n_classes=6,
    label_names=IEMOCAP6,
    sentiment_names=None,
    dims={"text": 1024},
    splits={"train": list(_I.train), "valid": list(_I.valid), "test": list(_I.test)},
    n_speakers=2,
    python2=False,
    peer_source="declare-lab/conv-emotion COSMIC/erc-training/dataloader.py IEMOCAPRobertaCometDataset: "
    "pickle.load(..., encoding='latin1') -> speakers 0, labels 1, roberta1 2, roberta2 3, roberta3 4, roberta4 5, "
    "sentences 6, trainIds 7, testIds 8, validIds 9; written by COSMIC/feature-extraction/"
    "roberta_feature_extract_iemocap.py as pickle.dump([speakers, labels, roberta1, ..., train_ids, test_ids, "
    "valid_ids]) (a list; ids are lists: it computes train_ids + valid_ids + test_ids)",
    filename="iemocap_features_roberta.pkl",
    top_level="list",
    length=10,
    text_layers=4,
    feature_form={"text": "rows"},
    feature_sources={"text": "roberta1"},
    notes="Same top-level length as mmgcn-meld-10 (a tuple): index 0 is speakers here, not utterance ids.",
    _builder=lambda directory: _write_py3(directory / "iemocap_features_roberta.pkl", _cosmic_iemocap_obj()),
)


def _cosmic_meld_obj() -> list:
    d = _M
    c = _meld_common_lists(d)
    return [
        c["speakers"],
        c["labels"],
        c["sentiments"],
        _features(d, "roberta1", 1024, "rows"),
        _features(d, "roberta2", 1024, "rows"),
        _features(d, "roberta3", 1024, "rows"),
        _features(d, "roberta4", 1024, "rows"),
        c["sentences"],
        list(d.train),
        list(d.test),
        list(d.valid),
    ]


_register(
    key="cosmic-meld-roberta-11",
    producer="COSMIC (conv-emotion), M3Net (text part)",
    description="meld_features_roberta.pkl: an 11-list speakers (9-way one-hot), emotion labels, sentiment labels, "
    "roberta1..4 (1024-d rows), sentences, train, test, valid ids (lists; valid separate)",
    dataset="meld",
    n_classes=7,
    label_names=MELD7,
    sentiment_names=MELD_SENTIMENTS,
    dims={"text": 1024},
    splits={"train": list(_M.train), "valid": list(_M.valid), "test": list(_M.test)},
    n_speakers=9,
    python2=False,
    peer_source="declare-lab/conv-emotion COSMIC/erc-training/dataloader.py MELDRobertaCometDataset: "
    "pickle.load(..., encoding='latin1') -> speakers 0 (one-hot, used as is), emotion_labels 1, sentiment_labels 2, "
    "roberta1..4 3-6, sentences 7, trainIds 8, testIds 9, validIds 10; written by COSMIC/feature-extraction/"
    "roberta_feature_extract_meld.py as a list",
    filename="meld_features_roberta.pkl",
    top_level="list",
    length=11,
    text_layers=4,
    feature_form={"text": "rows"},
    feature_sources={"text": "roberta1"},
    notes="Sentiment ints as in the real meld_text.pkl: 0 neutral, 1 positive, 2 negative.",
    _builder=lambda directory: _write_py3(directory / "meld_features_roberta.pkl", _cosmic_meld_obj()),
)


# ---- MultiEMO folders ----------------------------------------------------------------------------------------------

MULTIEMO_DIMS = {"text": 768, "audio": 512, "visual": 1000}
_MULTIEMO_SOURCES = {"text": "emoberta768", "audio": "multiemo-audio512", "visual": "multiemo-visual1000"}
_MULTIEMO_FILES = {"text": "TextFeatures.pkl", "audio": "AudioFeatures.pkl", "visual": "VisualFeatures.pkl"}


def _multiemo_build(directory: Path, dataset: str) -> Path:
    d = _I if dataset == "iemocap" else _M
    folder = directory / ("IEMOCAP" if dataset == "iemocap" else "MELD")
    folder.mkdir(parents=True, exist_ok=True)
    if dataset == "iemocap":
        _write_py2(
            folder / "Speakers.pkl",
            _iemocap9_obj(d, (100, 100, 512), ("text100", "audio100", "visual512"), "rows", sets=False),
        )
    else:
        _write_py3(folder / "Speakers.pkl", _mmgcn_meld_obj())
    for modality, name in _MULTIEMO_FILES.items():
        _write_py3(folder / name, _features(d, _MULTIEMO_SOURCES[modality], MULTIEMO_DIMS[modality], "array"))
    return folder


_register(
    key="multiemo-iemocap-folder",
    producer="MultiEMO",
    description="Data/IEMOCAP/ folder: Speakers.pkl (the Python 2 IEMOCAP_features.pkl 9-tuple; only speakers 1, "
    "labels 2, trainVid 7, testVid 8 are used) beside TextFeatures.pkl (768), AudioFeatures.pkl (512), "
    "VisualFeatures.pkl (1000): dicts dialogue id -> (T, dim) float32 arrays",
    dataset="iemocap",
    n_classes=6,
    label_names=IEMOCAP6,
    sentiment_names=None,
    dims=dict(MULTIEMO_DIMS),
    splits={"train": list(_I.train_with_valid), "test": list(_I.test)},
    n_speakers=2,
    python2=True,
    peer_source="TaoShi1998/MultiEMO Dataset/IEMOCAPDataset.py: _, videoSpeakers, videoLabels, _, _, _, _, trainVid, "
    "testVid = pickle.load(open('Data/IEMOCAP/Speakers.pkl', 'rb'), encoding='latin1'); videoText/Audio/Visual = "
    "pickle.load(open('Data/IEMOCAP/{Text,Audio,Visual}Features.pkl', 'rb')) (no latin1); dims from "
    "Train/TrainMultiEMO.py (roberta_dim 768, D_m_audio 512, D_m_visual 1000)",
    filename="IEMOCAP",
    top_level="folder",
    length=None,
    feature_form={"text": "array", "audio": "array", "visual": "array"},
    feature_sources=dict(_MULTIEMO_SOURCES),
    notes="MultiEMO sorts trainVid and testVid (sorted(self.trainVid)) before use; splits here are in file order. "
    "Speakers.pkl is the Python 2 file (loaded with latin1); its feature items are ignored by MultiEMO. The "
    "per-dialogue container of the three feature files (array vs list) is not verifiable (loader wraps np.array).",
    _builder=lambda directory: _multiemo_build(directory, "iemocap"),
)

_register(
    key="multiemo-meld-folder",
    producer="MultiEMO",
    description="Data/MELD/ folder: Speakers.pkl (the MMGCN MELD_features_raw1 10-tuple; speakers 1, labels 2, "
    "trainVid 7, testVid 8 used) beside TextFeatures.pkl (768), AudioFeatures.pkl (512), VisualFeatures.pkl (1000)",
    dataset="meld",
    n_classes=7,
    label_names=MELD7,
    sentiment_names=None,
    dims=dict(MULTIEMO_DIMS),
    splits={"train": list(_M.train_with_valid), "test": list(_M.test)},
    n_speakers=9,
    python2=False,
    peer_source="TaoShi1998/MultiEMO Dataset/MELDDataset.py: _, videoSpeakers, videoLabels, _, _, _, _, trainVid, "
    "testVid, _ = pickle.load(open('Data/MELD/Speakers.pkl', 'rb')); features as for IEMOCAP",
    filename="MELD",
    top_level="folder",
    length=None,
    feature_form={"text": "array", "audio": "array", "visual": "array"},
    feature_sources=dict(_MULTIEMO_SOURCES),
    notes="Speakers.pkl's item 9 (sentiments here) is discarded by MultiEMO, so sentiment_names is None.",
    _builder=lambda directory: _multiemo_build(directory, "meld"),
)


# ---- M3Net: COSMIC text joined with MMGCN audio/visual ------------------------------------------------------------


def _m3net_build(directory: Path, dataset: str) -> dict[str, Path]:
    if dataset == "iemocap":
        text = _write_py3(directory / "iemocap_features_roberta.pkl", _cosmic_iemocap_obj())
        av = _write_py2(
            directory / "IEMOCAP_features.pkl",
            _iemocap9_obj(_I, (100, 1582, 342), ("text100", "is10", "denseface"), "rows64", sets=False),
        )
    else:
        text = _write_py3(directory / "meld_features_roberta.pkl", _cosmic_meld_obj())
        av = _write_py3(directory / "MELD_features_raw1.pkl", _mmgcn_meld_obj())
    return {"text": text, "audio": av, "visual": av}


_register(
    key="m3net-joined",
    producer="M3Net",
    description="Two files joined by dialogue id: text = roberta1..4 of COSMIC's iemocap_features_roberta.pkl "
    "(10-list), audio (1582) / visual (342) / speakers / labels / splits from MMGCN's Python 2 IEMOCAP_features.pkl",
    dataset="iemocap",
    n_classes=6,
    label_names=IEMOCAP6,
    sentiment_names=None,
    dims={"text": 1024, "audio": 1582, "visual": 342},
    splits={"train": list(_I.train_with_valid), "test": list(_I.test)},
    n_speakers=2,
    python2=True,
    peer_source="feiyuchen7/M3NET dataloader.py IEMOCAPDataset: the 9-tuple of ./IEMOCAP_features/"
    "IEMOCAP_features.pkl (latin1; videoText 3 unused) + _, _, roberta1..4, _, _, _, _ = pickle.load("
    "'./IEMOCAP_features/iemocap_features_roberta.pkl', latin1); keys = trainVid/testVid of the 9-tuple",
    filename="IEMOCAP_features.pkl + iemocap_features_roberta.pkl",
    top_level="joined",
    length=None,
    text_layers=4,
    feature_form={"text": "rows", "audio": "rows64", "visual": "rows64"},
    feature_sources={"text": "roberta1", "audio": "is10", "visual": "denseface"},
    notes="build() returns {'text': roberta file, 'audio': 9-tuple file, 'visual': 9-tuple file}. Splits come from "
    "the 9-tuple (COSMIC's valid ids are in its trainVid); the 9-tuple's own 100-d text is not used.",
    _builder=lambda directory: _m3net_build(directory, "iemocap"),
)

_register(
    key="m3net-meld-joined",
    producer="M3Net",
    description="Two files joined by dialogue id: text = roberta1..4 of COSMIC's meld_features_roberta.pkl "
    "(11-list), audio (300) / visual (342) / speakers / labels / splits from MMGCN's MELD_features_raw1.pkl 10-tuple",
    dataset="meld",
    n_classes=7,
    label_names=MELD7,
    sentiment_names=None,
    dims={"text": 1024, "audio": 300, "visual": 342},
    splits={"train": list(_M.train_with_valid), "test": list(_M.test)},
    n_speakers=9,
    python2=False,
    peer_source="feiyuchen7/M3NET dataloader.py MELDDataset: the 10-tuple of path (no latin1; videoText 3 unused) + "
    "_, _, _, roberta1..4, _, trainIds, testIds, validIds = pickle.load('./MELD_features/meld_features_roberta.pkl', "
    "latin1); keys = trainVid/testVid of the 10-tuple",
    filename="MELD_features_raw1.pkl + meld_features_roberta.pkl",
    top_level="joined",
    length=None,
    text_layers=4,
    feature_form={"text": "rows", "audio": "array", "visual": "array"},
    feature_sources={"text": "roberta1", "audio": "meld-audio300", "visual": "denseface"},
    notes="build() returns {'text': roberta file, 'audio': 10-tuple file, 'visual': 10-tuple file}. M3Net uses no "
    "sentiments (both files carry them).",
    _builder=lambda directory: _m3net_build(directory, "meld"),
)


# ---- COGMEN / CORECT preprocessed sample lists --------------------------------------------------------------------

COGMEN_MODULE = "cogmen.Sample"  # the module COGMEN's pickles name: cogmen/Sample.py
COGMEN_CLASS = "Sample"  # class Sample(vid, speaker, label, text, audio, visual, sentence) + sbert_sentence_embeddings
SBERT_DIM = 768  # paraphrase-distilroberta-base-v1 sentence embeddings


def _make_stand_in_class() -> type:
    def __init__(self, vid, speaker, label, text, audio, visual, sentence, sbert_sentence_embeddings=None):
        self.vid = vid
        self.speaker = speaker
        self.label = label
        self.text = text
        self.audio = audio
        self.visual = visual
        self.sentence = sentence
        self.sbert_sentence_embeddings = sbert_sentence_embeddings

    cls = type(COGMEN_CLASS, (), {"__init__": __init__, "__module__": COGMEN_MODULE})
    cls.__qualname__ = COGMEN_CLASS
    return cls


@contextlib.contextmanager
def stand_in_modules() -> Iterator[type]:
    """Temporarily register ``cogmen`` and ``cogmen.Sample`` (with a stand-in ``Sample`` class) in sys.modules.

    Yields the class. Whatever sys.modules held under those names before is restored afterwards, so nothing leaks
    into the process. Needed both to write COGMEN's pickles and (in tests of our own files only) to load them.
    """
    names = ("cogmen", COGMEN_MODULE)
    saved = {name: sys.modules.get(name, None) for name in names}
    cls = _make_stand_in_class()
    package = types.ModuleType("cogmen")
    package.__path__ = []  # a package, as the real one
    module = types.ModuleType(COGMEN_MODULE)
    module.Sample = cls
    package.Sample = module  # ``import cogmen.Sample`` binds the submodule; pickle looks it up in sys.modules
    sys.modules["cogmen"] = package
    sys.modules[COGMEN_MODULE] = module
    try:
        yield cls
    finally:
        for name in names:
            if saved[name] is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = saved[name]


def _cogmen_splits(d: Dialogues) -> dict[str, list]:
    train_vids = list(d.train_with_valid)
    dev_size = int(len(train_vids) * 0.1)
    return {"train": train_vids[dev_size:], "valid": train_vids[:dev_size], "test": list(d.test)}


def _cogmen_build(directory: Path, n_classes: int) -> Path:
    d = dialogues("iemocap", n_classes)
    splits = _cogmen_splits(d)
    text = _features(d, "text100", 100, "rows")
    audio = _features(d, "audio100", 100, "rows")
    visual = _features(d, "visual512", 512, "rows")
    sbert = _features(d, "sbert768", SBERT_DIM, "array")
    with stand_in_modules() as cls:
        data = {
            key: [
                cls(vid, list(d.speakers[vid]), list(d.labels[vid]), text[vid], audio[vid], visual[vid],
                    list(d.sentences[vid]), sbert[vid])
                for vid in splits[split]
            ]
            for key, split in (("train", "train"), ("dev", "valid"), ("test", "test"))
        }
        name = "data_iemocap.pkl" if n_classes == 6 else "data_iemocap_4.pkl"
        return _write_py3(directory / name, data, protocol=4)


def _corect_build(directory: Path, n_classes: int) -> Path:
    d = dialogues("iemocap", n_classes)
    splits = _cogmen_splits(d)
    audio = _features(d, "audio100", 100, "rows")
    visual = _features(d, "visual512", 512, "rows")
    sbert = _features(d, "sbert768", SBERT_DIM, "array")
    data = {
        key: [
            {
                "vid": vid,
                "speakers": list(d.speakers[vid]),
                "labels": list(d.labels[vid]),
                "audio": audio[vid],
                "visual": visual[vid],
                "text": sbert[vid],
                "sentence": list(d.sentences[vid]),
            }
            for vid in splits[split]
        ]
        for key, split in (("train", "train"), ("dev", "valid"), ("test", "test"))
    }
    name = "data_iemocap.pkl" if n_classes == 6 else "data_iemocap_4.pkl"
    return _write_py3(directory / name, data, protocol=4)


for _n, _suffix in ((6, ""), (4, "-4class")):
    _d = dialogues("iemocap", _n)
    _register(
        key=f"cogmen-iemocap{_suffix}",
        producer="COGMEN",
        description=f"data_iemocap{'_4' if _n == 4 else ''}.pkl: {{'train': [...], 'dev': [...], 'test': [...]}} of "
        f"cogmen.Sample objects (attributes vid, speaker, label, text (100-d rows), audio (100-d rows), visual "
        f"(512-d rows), sentence, sbert_sentence_embeddings ((T, 768) float32)); {_n} classes",
        dataset="iemocap",
        n_classes=_n,
        label_names=IEMOCAP6 if _n == 6 else IEMOCAP4,
        sentiment_names=None,
        dims={"text": SBERT_DIM, "audio": 100, "visual": 512},
        splits=_cogmen_splits(_d),
        n_speakers=2,
        python2=False,
        peer_source="Exploration-Lab/COGMEN preprocess.py get_iemocap/main: cogmen.Sample(vid, video_speakers[vid], "
        "video_labels[vid], video_text[vid], video_audio[vid], video_visual[vid], video_sentence[vid]) for "
        "train_vids = trainVids[dev_size:], dev_vids = trainVids[:dev_size] (dev_size = int(0.1 * len)), test_vids; "
        "saved by cogmen/utils.py save_pkl (pickle.dump); cogmen/Sample.py class Sample sets vid, speaker, label, "
        "text, audio, visual, sentence, sbert_sentence_embeddings = sbert_model.encode(sentence); cogmen/Dataset.py "
        "uses sbert_sentence_embeddings (not .text) as text, dims from train.py dataset_embedding_dims "
        "(a 100, t 768, v 512)",
        filename="data_iemocap.pkl" if _n == 6 else "data_iemocap_4.pkl",
        top_level="dict",
        length=3,
        feature_form={"text": "array", "audio": "rows", "visual": "rows"},
        feature_sources={"text": "sbert768", "audio": "audio100", "visual": "visual512"},
        notes="Objects of class cogmen.Sample.Sample (pickle GLOBAL 'cogmen.Sample Sample'): unpickling needs that "
        "module, so a safe reader must map it, not import it. 'dev' = the first 10% of trainVid (here 1 dialogue), "
        "reported as splits['valid']. The .text attribute is the 100-d IEMOCAP_features text, which COGMEN does not "
        "use; dims['text'] is the SBERT 768.",
        stand_in=COGMEN_MODULE,
        _builder=(lambda n: lambda directory: _cogmen_build(directory, n))(_n),
    )
    _register(
        key=f"corect-iemocap{_suffix}",
        producer="CORECT",
        description=f"data_iemocap{'_4' if _n == 4 else ''}.pkl: {{'train': [...], 'dev': [...], 'test': [...]}} of "
        f"plain dicts with keys vid, speakers, labels, audio (100-d rows), visual (512-d rows), text ((T, 768) "
        f"SBERT float32), sentence; {_n} classes",
        dataset="iemocap",
        n_classes=_n,
        label_names=IEMOCAP6 if _n == 6 else IEMOCAP4,
        sentiment_names=None,
        dims={"text": SBERT_DIM, "audio": 100, "visual": 512},
        splits=_cogmen_splits(_d),
        n_speakers=2,
        python2=False,
        peer_source="leson502/CORECT_EMNLP2023 preprocess.py get_iemocap: dicts {'vid', 'speakers', 'labels', "
        "'audio', 'visual', 'text': sbert_model.encode(video_sentence[vid]), 'sentence'}, same train/dev split as "
        "COGMEN; corect/Dataset.py reads s['text'], s['audio'], s['visual'], s['speakers'], s['labels']",
        filename="data_iemocap.pkl" if _n == 6 else "data_iemocap_4.pkl",
        top_level="dict",
        length=3,
        feature_form={"text": "array", "audio": "rows", "visual": "rows"},
        feature_sources={"text": "sbert768", "audio": "audio100", "visual": "visual512"},
        notes="No custom class (unlike COGMEN): dicts, numpy arrays, lists and str only.",
        _builder=(lambda n: lambda directory: _corect_build(directory, n))(_n),
    )


# --------------------------------------------------------------------------------------------------------------------
# Look-alikes and hostile files
# --------------------------------------------------------------------------------------------------------------------


def lookalike_pairs() -> list[tuple[str, str]]:
    """Pairs of layouts with the same top-level container length/shape that a detector must tell apart."""
    return [
        # 9-tuples: MELD (one-hot speakers, sentences at 5, sentiments at 8) vs IEMOCAP (visual at 5, testVid at 8)
        ("bclstm-meld-9", "mmgcn-iemocap-9"),
        ("bclstm-meld-9", "dialoguegcn-iemocap-9-sets"),
        ("bclstm-meld-9", "dialoguegcn-iemocap-9-lists"),
        ("bclstm-meld-9", "iemocap-9-4class"),
        # IEMOCAP 9-tuples among themselves: dims, split containers, number of classes
        ("mmgcn-iemocap-9", "dialoguegcn-iemocap-9-lists"),
        ("dialoguegcn-iemocap-9-sets", "dialoguegcn-iemocap-9-lists"),
        ("dialoguegcn-iemocap-9-lists", "iemocap-9-4class"),
        # 10 items: COSMIC IEMOCAP list (speakers first) vs MMGCN MELD tuple (utterance ids first)
        ("cosmic-iemocap-roberta-10", "mmgcn-meld-10"),
        # 13-tuples: 13th item sentiment dict vs dev-id list
        ("sdt-meld-13-sentiment", "sdt-meld-13-devids"),
        # 12 vs 13 vs 14: same family, item counts differ by one
        ("sdt-iemocap-12", "sdt-meld-13-devids"),
        ("sdt-meld-13-sentiment", "cfnesa-meld-14"),
        # 11-list COSMIC MELD vs 10-list COSMIC IEMOCAP (sentiments inserted at 2)
        ("cosmic-meld-roberta-11", "cosmic-iemocap-roberta-10"),
        # dict of train/dev/test: COGMEN objects vs CORECT dicts; 6 vs 4 classes
        ("cogmen-iemocap", "corect-iemocap"),
        ("cogmen-iemocap", "cogmen-iemocap-4class"),
        ("corect-iemocap", "corect-iemocap-4class"),
        # folders of the same file names
        ("multiemo-iemocap-folder", "multiemo-meld-folder"),
    ]


MALICIOUS_MARKER = "mcef-layout-samples-pwned"


def write_malicious(directory: Path | str) -> Path:
    """A pickle that calls ``os.system`` (creating a marker file beside it) if loaded with plain pickle.

    Protocol 2 as Python 2 wrote it: a 9-tuple (the IEMOCAP_features.pkl shape) whose first item is the REDUCE of
    GLOBAL 'os system' on a ``touch <marker>`` command, then eight empty dicts; a detector that looks only at the
    length is not enough. A safe loader must refuse it and the marker (``MALICIOUS_MARKER``) must not appear.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "IEMOCAP_features.pkl"
    command = f"touch {directory / MALICIOUS_MARKER}".encode()
    data = bytearray(b"\x80\x02(")  # PROTO 2, MARK
    data += b"cos\nsystem\n"  # GLOBAL os.system
    data += (b"U" + bytes([len(command)]) if len(command) < 256 else b"T" + struct.pack("<I", len(command))) + command
    data += b"\x85R"  # TUPLE1, REDUCE
    data += b"}" * 8  # EMPTY_DICT x 8
    data += b"t."  # TUPLE, STOP
    path.write_bytes(bytes(data))
    return path


UNKNOWN_MODULE = "cogmen_missing_peer.Sample"  # a module that is not installed anywhere
UNKNOWN_CLASS = "Sample"


@contextlib.contextmanager
def _temporary_class(module_name: str, class_name: str, package: str | None = None) -> Iterator[type]:
    names = [n for n in (package, module_name) if n]
    saved = {name: sys.modules.get(name) for name in names}
    cls = type(class_name, (), {"__module__": module_name})
    cls.__qualname__ = class_name
    module = types.ModuleType(module_name)
    setattr(module, class_name, cls)
    if package:
        parent = types.ModuleType(package)
        parent.__path__ = []
        setattr(parent, module_name.rsplit(".", 1)[1], module)
        sys.modules[package] = parent
    sys.modules[module_name] = module
    try:
        yield cls
    finally:
        for name in names:
            if saved[name] is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = saved[name]


def write_unknown_class(directory: Path | str) -> Path:
    """A COGMEN-shaped pickle whose samples are objects of ``cogmen_missing_peer.Sample.Sample``, a module that is not
    installed: loading fails with ModuleNotFoundError unless the reader maps the class."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "data_iemocap.pkl"
    with _temporary_class(UNKNOWN_MODULE, UNKNOWN_CLASS, package=UNKNOWN_MODULE.split(".")[0]) as cls:
        item = cls()
        item.vid = IEMOCAP_TRAIN[0]
        item.label = [0, 1]
        data = {"train": [item], "dev": [], "test": []}
        with open(path, "wb") as f:
            pickle.dump(data, f, protocol=4)
    return path


__all__ = [
    "SAMPLES",
    "Sample",
    "Dialogues",
    "dialogues",
    "feature_matrix",
    "lookalike_pairs",
    "write_malicious",
    "write_unknown_class",
    "stand_in_modules",
    "py2_dumps",
    "Py2Set",
    "Py2Unicode",
    "IEMOCAP6",
    "IEMOCAP4",
    "MELD7",
    "MELD_SENTIMENTS",
    "MULTIEMO_DIMS",
    "COGMEN_MODULE",
    "COGMEN_CLASS",
    "MALICIOUS_MARKER",
    "UNKNOWN_MODULE",
    "UNKNOWN_CLASS",
]
