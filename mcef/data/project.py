"""The project's own dataset format: a directory of .npy arrays and a JSON index (no pickle to read it).

    NAME/index.json           format, version, name, label and speaker names, splits, modality dims,
                              per dialogue its id, utterance offset and length, source, meta
    NAME/features_<m>.npy     (N, D_m) float32, the utterances of every dialogue concatenated
    NAME/speakers.npy         (N,) int64
    NAME/labels.npy           (N,) int64
    NAME/sentences.json       optional: per dialogue its list of utterance texts (or null)

The directory is written under a temporary name beside the target and renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from mcef.data.dataset import MODALITIES, DialogueDataset, dialogues_from_rows
from mcef.data.errors import DataError
from mcef.data.validation import validate_dataset
from mcef.io import current_umask

FORMAT_NAME = "mcef-dataset"
FORMAT_VERSION = 1
INDEX_FILE = "index.json"


def save_dataset(dataset: DialogueDataset, path: str | os.PathLike) -> Path:
    """Write ``dataset`` to the directory ``path`` in the project's format, atomically; returns the path.

    An existing dataset directory at ``path`` is replaced; any other existing file or directory is refused.
    """
    path = Path(path)
    validate_dataset(dataset, f"dataset {dataset.name!r} (being saved to {path})")
    if path.exists() and not (path / INDEX_FILE).is_file():
        raise DataError(f"{path}: exists and is not an mcef dataset directory (no {INDEX_FILE}); refusing to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it private; the dataset gets a plain mkdir's mode
        _write(dataset, tmp)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / "dataset")
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _write(dataset: DialogueDataset, directory: Path) -> None:
    ids = list(dataset.dialogues)
    dialogues = [dataset.dialogues[d] for d in ids]
    lengths = [len(d) for d in dialogues]
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).tolist()
    for m in dataset.modalities:
        np.save(directory / f"features_{m}.npy", np.concatenate([d.features[m] for d in dialogues]).astype(np.float32, copy=False))
    np.save(directory / "speakers.npy", np.concatenate([d.speakers for d in dialogues]).astype(np.int64, copy=False))
    np.save(directory / "labels.npy", np.concatenate([d.labels for d in dialogues]).astype(np.int64, copy=False))
    if any(d.sentences is not None for d in dialogues):
        (directory / "sentences.json").write_text(json.dumps([d.sentences for d in dialogues]), encoding="utf-8")
    index = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "name": dataset.name,
        "label_names": list(dataset.label_names),
        "speaker_names": list(dataset.speaker_names),
        "modalities": dataset.dims,
        "splits": dataset.splits,
        "dialogues": [{"id": d, "offset": int(o), "length": int(n)} for d, o, n in zip(ids, offsets, lengths)],
        "source": dataset.source,
        "meta": dataset.meta,
    }
    (directory / INDEX_FILE).write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")


def is_project_dataset(path: Path) -> bool:
    """Whether ``path`` is a project-format directory (or its index file)."""
    return (path.is_dir() and (path / INDEX_FILE).is_file()) or (path.is_file() and path.name == INDEX_FILE)


def load_project(path: str | os.PathLike, *, mmap: bool = False) -> DialogueDataset:
    """Read a project-format directory; ``mmap`` maps the feature arrays instead of reading them."""
    path = Path(path)
    directory = path.parent if path.name == INDEX_FILE and path.is_file() else path
    index_path = directory / INDEX_FILE
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{index_path}: not valid JSON ({err}); expected the index of an mcef dataset") from err
    if not isinstance(index, dict) or index.get("format") != FORMAT_NAME:
        raise DataError(f"{index_path}: key 'format' is {index.get('format') if isinstance(index, dict) else None!r}; expected {FORMAT_NAME!r}")
    if index.get("version") != FORMAT_VERSION:
        raise DataError(f"{index_path}: key 'version' is {index.get('version')!r}; expected {FORMAT_VERSION}")
    for key in ("name", "label_names", "speaker_names", "modalities", "splits", "dialogues"):
        if key not in index:
            raise DataError(f"{index_path}: key {key!r} is missing; expected it in every mcef dataset index")

    def array(name: str, dtype, ndim: int) -> np.ndarray:
        file = directory / name
        if not file.is_file():
            raise DataError(f"{file}: missing; expected it beside {INDEX_FILE}")
        try:
            x = np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise DataError(f"{file}: unreadable or truncated .npy file ({err})") from err
        if x.dtype != dtype or x.ndim != ndim:
            raise DataError(f"{file}: array is {x.dtype} with {x.ndim} dims; expected {np.dtype(dtype)} with {ndim}")
        return x

    speakers = array("speakers.npy", np.int64, 1)
    labels = array("labels.npy", np.int64, 1)
    n_total = labels.shape[0]
    features = {}
    for m, dim in index["modalities"].items():
        if m not in MODALITIES:
            raise DataError(f"{index_path}: key 'modalities' names {m!r}; expected a subset of {MODALITIES}")
        features[m] = array(f"features_{m}.npy", np.float32, 2)
        if features[m].shape != (n_total, dim):
            raise DataError(f"{directory / f'features_{m}.npy'}: shape {features[m].shape}; expected ({n_total}, {dim})")
    if speakers.shape[0] != n_total:
        raise DataError(f"{directory / 'speakers.npy'}: {speakers.shape[0]} entries; expected {n_total} (one per label)")
    sentences_file = directory / "sentences.json"
    sentences = json.loads(sentences_file.read_text(encoding="utf-8")) if sentences_file.is_file() else None
    if sentences is not None and len(sentences) != len(index["dialogues"]):
        raise DataError(f"{sentences_file}: {len(sentences)} entries; expected one per dialogue ({len(index['dialogues'])})")

    for entry in index["dialogues"]:
        if not isinstance(entry, dict) or not {"id", "offset", "length"} <= entry.keys():
            raise DataError(f"{index_path}: key 'dialogues' has entry {entry!r}; expected keys 'id', 'offset', 'length'")
    ids = [str(entry["id"]) for entry in index["dialogues"]]
    offsets = [int(entry["offset"]) for entry in index["dialogues"]]
    lengths = [int(entry["length"]) for entry in index["dialogues"]]
    for did, offset, length in zip(ids, offsets, lengths):
        if offset < 0 or offset + length > n_total:
            raise DataError(f"{index_path}: dialogue {did!r} spans utterances {offset}..{offset + length}; expected within 0..{n_total}")
    dialogues = dialogues_from_rows(ids, offsets, lengths, features, speakers, labels, sentences)
    dataset = DialogueDataset(
        name=index["name"],
        dialogues=dialogues,
        label_names=tuple(index["label_names"]),
        speaker_names=tuple(index["speaker_names"]),
        splits={k: [str(d) for d in v] for k, v in index["splits"].items()},
        source=index.get("source", ""),
        meta=index.get("meta", {}),
    )
    return validate_dataset(dataset, str(directory))
