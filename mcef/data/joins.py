"""Datasets whose modalities come from different files, matched by dialogue id.

- MultiEMO's folder: ``TextFeatures.pkl``, ``AudioFeatures.pkl``, ``VisualFeatures.pkl`` (dialogue id -> (T, D)
  features) beside ``Speakers.pkl``, a peer tuple layout that gives the speakers, labels and splits.
- A mapping modality -> file (``data.path``), as M3Net joins COSMIC's RoBERTa text with MMGCN's audio and visual.

Dialogue ids, utterance counts, labels or test splits that disagree between two files are an error naming both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from mcef.data import values
from mcef.data.assemble import ReadOptions, assemble, parts_of
from mcef.data.dataset import MODALITIES, DialogueDataset
from mcef.data.errors import DataError
from mcef.data.layouts import LAYOUT_BY_KEY, MULTIEMO_FILES, detect_layout
from mcef.data.validation import validate_dataset

FOLDER_FEATURES = dict(zip(("text", "audio", "visual"), MULTIEMO_FILES[1:]))


def load_folder(path: Path, options: ReadOptions) -> DialogueDataset:
    """MultiEMO's folder: the three feature pickles with the speakers, labels and splits of ``Speakers.pkl``."""
    from mcef.data.readers import _unpickle

    layout = LAYOUT_BY_KEY["multiemo-folder"]
    speakers_file = path / MULTIEMO_FILES[0]
    obj = _unpickle(speakers_file)
    base = detect_layout(obj, speakers_file)
    parts = parts_of(obj, base, speakers_file)
    parts.text, parts.audio, parts.visual = {}, None, None  # Speakers.pkl's own features are not MultiEMO's
    wanted = {m: name for m, name in FOLDER_FEATURES.items() if m in (options.modalities or MODALITIES)}
    missing = [name for name in wanted.values() if not (path / name).is_file()]
    if missing:
        raise DataError(f"{path}: MultiEMO's folder has {MULTIEMO_FILES[0]} but no {missing[0]}; expected "
                        f"{', '.join(MULTIEMO_FILES)}")
    for modality, name in wanted.items():
        file = path / name
        table = values.table(_unpickle(file), file, name, "(T, D) features")
        _check_lengths(table, file, parts.labels, speakers_file, parts)
        if modality == "text":
            parts.text["TextFeatures"] = table
        else:
            setattr(parts, modality, table)
        parts.names[modality] = name
    describe = (f"MultiEMO folder: {', '.join(FOLDER_FEATURES.values())} with the speakers, labels and splits of "
                f"{MULTIEMO_FILES[0]} ({base.description})")
    dataset = assemble(parts, layout, path, options, corpus=base.corpus, describe=describe)
    dataset.meta["speakers_layout"] = base.key
    return dataset


def _check_lengths(table: dict, file: Path, labels: dict, labels_file: Path, parts) -> None:
    """Every dialogue of the splits in ``table`` with one feature row per label of ``labels_file``."""
    ids = [d for split in (parts.train, parts.test, parts.valid) if split is not None for d in split]
    for did in ids:
        if did not in table:
            raise DataError(f"{file}: dialogue {did!r} of {labels_file} is missing; expected the same dialogue ids "
                            "in both files")
        rows, n = len(table[did]), len(labels[did]) if did in labels else None
        if n is not None and rows != n:
            raise DataError(f"{file}: dialogue {did!r} has {rows} feature rows but {labels_file} gives it {n} labels; "
                            "expected one row per utterance in both files")


def load_joined(mapping: Mapping, options: ReadOptions) -> DialogueDataset:
    """Modalities of different files joined by dialogue id; labels, speakers and splits from one of them.

    That base is the first file (in text, audio, visual order) with a validation split of its own, else the first.
    """
    from mcef.data.readers import read_file, resolve_data_path

    files = _modality_files(mapping, resolve_data_path)
    read: dict[Path, DialogueDataset] = {}
    for file in dict.fromkeys(files.values()):
        taken = tuple(m for m, f in files.items() if f == file)
        read[file] = read_file(file, replace(options, modalities=taken))
    base_file = next((f for f, d in read.items() if d.meta.get("valid_split", "").startswith("from")), next(iter(read)))
    base = read[base_file]
    for file, dataset in read.items():
        if file != base_file:
            _check_agree(base, base_file, dataset, file)
    for modality, file in files.items():
        if modality not in read[file].modalities:
            raise DataError(f"{file}: data.path takes its {modality} features, but it has "
                            f"{list(read[file].modalities) or 'no features'}; expected a file with {modality} features")
    dialogues = {did: replace(d, features={m: read[f].dialogues[did].features[m] for m, f in files.items()},
                              sentences=d.sentences if d.sentences is not None else _sentences(read, did))
                 for did, d in base.dialogues.items()}
    described = "; ".join(f"{m} from {f} ({read[f].meta.get('format', 'project dataset')})" for m, f in files.items())
    meta = dict(base.meta, format=f"joined by dialogue id: {described}", layout="joined",
                producer=", ".join(dict.fromkeys(str(read[f].meta.get("producer", "")) for f in files.values())),
                joined={m: str(f) for m, f in files.items()},
                text_layer=read[files["text"]].meta.get("text_layer") if "text" in files else None,
                valid_split=f"{base.meta.get('valid_split', 'unknown')}, of {base_file.name}")
    dataset = replace(base, dialogues=dialogues, source=f"joined by dialogue id: {described}", meta=meta)
    return validate_dataset(dataset, f"the join of {', '.join(str(f) for f in read)}")


def _modality_files(mapping: Mapping, resolve) -> dict[str, Path]:
    """modality -> resolved file, in canonical modality order; a DataError for anything else."""
    if not mapping:
        raise DataError("data.path is an empty mapping; expected modality -> file, e.g. {text: "
                        "iemocap_features_roberta.pkl, audio: IEMOCAP_features.pkl, visual: IEMOCAP_features.pkl}")
    unknown = [k for k in mapping if k not in MODALITIES]
    if unknown:
        raise DataError(f"data.path names modality {unknown[0]!r}; expected a mapping with keys from {MODALITIES} "
                        "(modality -> file)")
    odd = next((k for k, v in mapping.items() if not isinstance(v, (str, Path)) or not str(v)), None)
    if odd is not None:
        raise DataError(f"data.path[{odd!r}] is {mapping[odd]!r}; expected the path of a feature file")
    return {m: resolve(mapping[m]) for m in MODALITIES if m in mapping}


def _check_agree(base: DialogueDataset, base_file: Path, other: DialogueDataset, file: Path) -> None:
    """``other`` has every dialogue of ``base`` with as many utterances, the same labels and the same test split."""
    missing = [d for d in base.dialogues if d not in other.dialogues]
    if missing:
        raise DataError(f"{file} lacks {len(missing)} dialogue(s) of {base_file}, e.g. {missing[0]!r}; expected the "
                        "same dialogue ids in every file of data.path")
    for did, dialogue in base.dialogues.items():
        theirs = other.dialogues[did]
        if len(theirs) != len(dialogue):
            raise DataError(f"dialogue {did!r} has {len(dialogue)} utterances in {base_file} but {len(theirs)} in "
                            f"{file}; expected the same utterances in every file of data.path")
        if not (theirs.labels == dialogue.labels).all() or other.label_names != base.label_names:
            raise DataError(f"dialogue {did!r} has other labels in {file} ({other.meta.get('label_set')}) than in "
                            f"{base_file} ({base.meta.get('label_set')}); expected the same labels in every file")
    if set(other.splits["test"]) != set(base.splits["test"]):
        odd = sorted(set(other.splits["test"]) ^ set(base.splits["test"]))[0]
        raise DataError(f"the test splits of {base_file} and {file} differ (e.g. dialogue {odd!r}); expected the "
                        "same test dialogues in every file of data.path")


def _sentences(read: dict, did: str):
    return next((d.dialogues[did].sentences for d in read.values() if d.dialogues[did].sentences is not None), None)
