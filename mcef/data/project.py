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
from pathlib import Path

import numpy as np

from mcef.data.dataset import MODALITIES, DialogueDataset, dialogues_from_rows
from mcef.data.errors import DataError
from mcef.data.validation import validate_dataset
from mcef.io import OLD_SUFFIX, current_umask, make_temporary, release, remove_stale_temporaries, storage_error

FORMAT_NAME = "mcef-dataset"
FORMAT_VERSION = 1
INDEX_FILE = "index.json"


def save_dataset(dataset: DialogueDataset, path: str | os.PathLike) -> Path:
    """Write ``dataset`` to the directory ``path`` in the project's format, atomically; returns the path.

    An existing dataset directory at ``path`` is replaced; any other existing file or directory is refused. What a
    killed earlier save of ``path`` left beside it is cleaned up first (:func:`mcef.io.remove_stale_temporaries`);
    a failed write (disk full, read-only) is a StorageError naming ``path``, with nothing half-written left.
    """
    path = Path(path)
    validate_dataset(dataset, f"dataset {dataset.name!r} (being saved to {path})")
    remove_stale_temporaries(path.parent, path.name)
    if path.exists() and not (path / INDEX_FILE).is_file():
        raise DataError(f"{path}: exists and is not an mcef dataset directory (no {INDEX_FILE}); refusing to overwrite it")
    tmp, held = make_temporary(path, directory=True)
    old = held_old = None
    try:
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it private; the dataset gets a plain mkdir's mode
        _write(dataset, tmp)
        if path.exists():
            old, held_old = make_temporary(path, directory=True, suffix=OLD_SUFFIX)
            os.replace(path, old / "dataset")
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise storage_error(path, err) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        release(held)
        release(held_old)
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


def _read_json(file: Path, what: str):
    """The JSON value in ``file``, or a DataError naming it (unreadable bytes, truncated or invalid JSON)."""
    try:
        text = file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{file}: not UTF-8 text (byte {err.object[err.start]:#04x} at offset {err.start}); "
                        f"expected {what} as UTF-8 JSON") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{file}: not valid JSON, truncated or damaged ({err}); expected {what}") from None


def _int_field(value, index_path: Path, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataError(f"{index_path}: {where} is {value!r}; expected a non-negative integer")
    return value


def _names(index: dict, key: str, index_path: Path, used: int) -> tuple[str, ...]:
    """``index[key]``: a list of distinct non-empty strings, enough for the largest index ``used`` in the arrays."""
    names = index[key]
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise DataError(f"{index_path}: key {key!r} is {names!r}; expected a list of non-empty strings")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(f"{index_path}: key {key!r} names {repeated[0]!r} more than once ({names}); expected "
                        "distinct names")
    if len(names) < used:
        array = "labels.npy" if key == "label_names" else "speakers.npy"
        raise DataError(f"{index_path}: key {key!r} has {len(names)} names but {array} uses indices up to "
                        f"{used - 1}; expected at least {used} names")
    if not names:
        raise DataError(f"{index_path}: key {key!r} is empty; expected at least one name")
    return tuple(names)


def _dialogue_rows(index: dict, index_path: Path, n_total: int) -> tuple[list[str], list[int], list[int]]:
    """Ids, offsets and lengths of ``index['dialogues']``, checked to tile the rows 0..n_total exactly once."""
    entries = index["dialogues"]
    if not isinstance(entries, list) or not entries:
        found = repr(entries) if not entries else f"a {type(entries).__name__}"
        raise DataError(f"{index_path}: key 'dialogues' is {found}; expected a non-empty list of entries with keys "
                        "'id', 'offset', 'length'")
    ids, offsets, lengths = [], [], []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not {"id", "offset", "length"} <= entry.keys():
            raise DataError(f"{index_path}: key 'dialogues' has entry {entry!r}; expected keys 'id', 'offset', 'length'")
        did = entry["id"]
        if not isinstance(did, str) or not did:
            raise DataError(f"{index_path}: dialogues[{i}].id is {did!r}; expected a non-empty string")
        offset = _int_field(entry["offset"], index_path, f"dialogues[{i}] ({did!r}) offset")
        length = _int_field(entry["length"], index_path, f"dialogues[{i}] ({did!r}) length")
        if offset < 0:
            raise DataError(f"{index_path}: dialogue {did!r} has offset {offset}; expected a row in 0..{n_total - 1}")
        if length < 1:
            raise DataError(f"{index_path}: dialogue {did!r} has length {length}; expected at least 1 utterance "
                            "(a non-positive length would make it share rows with other dialogues)")
        if offset + length > n_total:
            raise DataError(f"{index_path}: dialogue {did!r} spans utterances {offset}..{offset + length}; expected "
                            f"within 0..{n_total} (the rows of labels.npy)")
        ids.append(did)
        offsets.append(offset)
        lengths.append(length)
    if len(set(ids)) != len(ids):
        repeated = next(d for d in ids if ids.count(d) > 1)
        raise DataError(f"{index_path}: key 'dialogues' lists dialogue {repeated!r} more than once; expected each "
                        "id once")
    end, previous = 0, None
    for i in sorted(range(len(ids)), key=lambda k: offsets[k]):
        if offsets[i] < end:
            raise DataError(f"{index_path}: dialogue {ids[i]!r} (utterances {offsets[i]}..{offsets[i] + lengths[i]}) "
                            f"overlaps dialogue {previous!r} (up to {end}); expected every row to belong to exactly one "
                            "dialogue")
        if offsets[i] > end:
            raise DataError(f"{index_path}: rows {end}..{offsets[i]} belong to no dialogue (the next, {ids[i]!r}, "
                            f"starts at {offsets[i]}); expected the dialogues' offsets and lengths to cover the rows "
                            "exactly")
        end, previous = offsets[i] + lengths[i], ids[i]
    if end != n_total:
        raise DataError(f"{index_path}: the dialogues cover rows 0..{end} but labels.npy has {n_total} rows; expected "
                        "the dialogues' offsets and lengths to cover the rows exactly")
    return ids, offsets, lengths


def _splits(index: dict, index_path: Path, known: set[str]) -> dict[str, list[str]]:
    from mcef.data.dataset import SPLITS

    splits = index["splits"]
    if not isinstance(splits, dict):
        raise DataError(f"{index_path}: key 'splits' is a {type(splits).__name__}; expected a mapping of split name "
                        f"({', '.join(SPLITS)}) to a list of dialogue ids")
    for name, ids in splits.items():
        if name not in SPLITS:
            raise DataError(f"{index_path}: key 'splits' has split {name!r}; expected names among {SPLITS}")
        if not isinstance(ids, list):
            raise DataError(f"{index_path}: splits.{name} is a {type(ids).__name__}; expected a list of dialogue ids")
        for did in ids:
            if not isinstance(did, str):
                raise DataError(f"{index_path}: splits.{name} holds {did!r} ({type(did).__name__}); expected dialogue "
                                "ids (strings), not nested lists")
            if did not in known:
                raise DataError(f"{index_path}: splits.{name} names dialogue {did!r}, which key 'dialogues' does not "
                                "list; expected ids of the file's dialogues")
    return {name: list(ids) for name, ids in splits.items()}


def _read_index(index_path: Path) -> dict:
    """The project index at ``index_path``, its format, version and top-level keys checked."""
    index = _read_json(index_path, "the index of an mcef dataset")
    if not isinstance(index, dict) or index.get("format") != FORMAT_NAME:
        raise DataError(f"{index_path}: key 'format' is {index.get('format') if isinstance(index, dict) else None!r}; expected {FORMAT_NAME!r}")
    if index.get("version") != FORMAT_VERSION:
        raise DataError(f"{index_path}: key 'version' is {index.get('version')!r}; expected {FORMAT_VERSION}")
    for key in ("name", "label_names", "speaker_names", "modalities", "splits", "dialogues"):
        if key not in index:
            raise DataError(f"{index_path}: key {key!r} is missing; expected it in every mcef dataset index")
    if not isinstance(index["name"], str):
        raise DataError(f"{index_path}: key 'name' is {index['name']!r}; expected a string")
    if not isinstance(index.get("source", ""), str) or not isinstance(index.get("meta", {}), dict):
        raise DataError(f"{index_path}: key 'source' must be a string and key 'meta' a mapping")
    if not isinstance(index["modalities"], dict):
        raise DataError(f"{index_path}: key 'modalities' is a {type(index['modalities']).__name__}; expected a "
                        f"mapping of modality ({', '.join(MODALITIES)}) to feature dimension")
    return index


def _read_array(file: Path, dtype, ndim: int, mmap: bool) -> np.ndarray:
    """One .npy array of a project dataset (never unpickled), its dtype and rank checked."""
    if not file.is_file():
        raise DataError(f"{file}: missing; expected it beside {INDEX_FILE}")
    try:
        x = np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{file}: unreadable or truncated .npy file ({err})") from err
    if x.dtype != dtype or x.ndim != ndim:
        raise DataError(f"{file}: array is {x.dtype} with {x.ndim} dims; expected {np.dtype(dtype)} with {ndim}")
    return x


def _read_features(directory: Path, index: dict, n_total: int, mmap: bool) -> dict[str, np.ndarray]:
    """Modality -> (n_total, dim) float32 features, as the index declares them."""
    index_path, features = directory / INDEX_FILE, {}
    for m, dim in index["modalities"].items():
        if m not in MODALITIES:
            raise DataError(f"{index_path}: key 'modalities' names {m!r}; expected a subset of {MODALITIES}")
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise DataError(f"{index_path}: modalities.{m} is {dim!r}; expected a positive feature dimension")
        features[m] = _read_array(directory / f"features_{m}.npy", np.float32, 2, mmap)
        if features[m].shape != (n_total, dim):
            raise DataError(f"{directory / f'features_{m}.npy'}: shape {features[m].shape}; expected ({n_total}, {dim})")
    return features


def _read_sentences(sentences_file: Path, ids: list, lengths: list) -> list | None:
    """Per dialogue its list of sentences (or None), from the optional ``sentences.json``."""
    if not sentences_file.is_file():
        return None
    sentences = _read_json(sentences_file, "one list of sentences (or null) per dialogue")
    if not isinstance(sentences, list) or len(sentences) != len(ids):
        raise DataError(f"{sentences_file}: {len(sentences) if isinstance(sentences, list) else type(sentences).__name__} "
                        f"entries; expected a list with one entry per dialogue ({len(ids)})")
    for did, length, entry in zip(ids, lengths, sentences):
        if entry is None:
            continue
        if not isinstance(entry, list) or len(entry) != length:
            raise DataError(f"{sentences_file}: the entry of dialogue {did!r} is "
                            f"{len(entry) if isinstance(entry, list) else type(entry).__name__} sentences; expected "
                            f"null or a list of {length} strings, one per utterance")
        bad = next((i for i, s in enumerate(entry) if not isinstance(s, str)), None)
        if bad is not None:
            raise DataError(f"{sentences_file}: dialogue {did!r}, sentence {bad} is {entry[bad]!r}; expected a "
                            "string per utterance")
    return sentences


def load_project(path: str | os.PathLike, *, mmap: bool = False) -> DialogueDataset:
    """Read a project-format directory; ``mmap`` maps the feature arrays instead of reading them.

    Everything is checked before it is used: the index's keys and types, label and speaker names (distinct, enough
    for the arrays), splits (a mapping of known split names to lists of known ids), and that the dialogues' offsets
    and lengths tile the rows exactly once (no negative length, overlap or gap). A problem is a DataError naming the
    file and the key.
    """
    path = Path(path)
    directory = path.parent if path.name == INDEX_FILE and path.is_file() else path
    index_path = directory / INDEX_FILE
    index = _read_index(index_path)
    speakers = _read_array(directory / "speakers.npy", np.int64, 1, mmap)
    labels = _read_array(directory / "labels.npy", np.int64, 1, mmap)
    n_total = labels.shape[0]
    features = _read_features(directory, index, n_total, mmap)
    if speakers.shape[0] != n_total:
        raise DataError(f"{directory / 'speakers.npy'}: {speakers.shape[0]} entries; expected {n_total} (one per label)")
    label_names = _names(index, "label_names", index_path, int(labels.max()) + 1 if n_total else 0)
    speaker_names = _names(index, "speaker_names", index_path, int(speakers.max()) + 1 if n_total else 0)
    for file, x in (("labels.npy", labels), ("speakers.npy", speakers)):
        if n_total and x.min() < 0:
            raise DataError(f"{directory / file}: holds {int(x.min())}; expected indices >= 0")
    ids, offsets, lengths = _dialogue_rows(index, index_path, n_total)
    splits = _splits(index, index_path, set(ids))
    sentences = _read_sentences(directory / "sentences.json", ids, lengths)
    dialogues = dialogues_from_rows(ids, offsets, lengths, features, speakers, labels, sentences)
    dataset = DialogueDataset(name=index["name"], dialogues=dialogues, label_names=label_names,
                              speaker_names=speaker_names, splits=splits, source=index.get("source", ""),
                              meta=index.get("meta", {}))
    return validate_dataset(dataset, str(directory))
