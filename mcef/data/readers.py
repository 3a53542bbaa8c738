"""Reading any accepted dataset: :func:`load_dataset`, detected by content, and where a bare file name is found.

Accepted (see data/README.md and ``mcef data formats``): a project-format directory (index.json + .npy arrays, see
:mod:`mcef.data.project`); every peer pickle layout of :data:`mcef.data.layouts.LAYOUTS` (SDT / MCEF / CFN-ESA /
GraphSmile, MMGCN / MM-DFN / M3Net, conv-emotion, COSMIC, COGMEN, CORECT); MultiEMO's folder of feature pickles
beside its ``Speakers.pkl``; and a mapping modality -> file that joins modalities of different files by dialogue id
(M3Net joins COSMIC's RoBERTa text with MMGCN's audio and visual).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from mcef.data import values
from mcef.data.assemble import ReadOptions, assemble, parts_of
from mcef.data.dataset import MODALITIES, DialogueDataset
from mcef.data.errors import DataError
from mcef.data.joins import load_folder, load_joined
from mcef.data.labels import LABEL_CHOICES, LABEL_SETS
from mcef.data.layouts import LAYOUTS, MULTIEMO_FILES, detect_layout
from mcef.data.project import is_project_dataset, load_project
from mcef.data.safe_pickle import safe_load

# Text layers a file may have; "videoText" (the default) also names the first text layer of files without one
# called so (COSMIC: roberta1; CORECT: its SBERT vectors; MultiEMO: TextFeatures).
TEXT_LAYERS = ("videoText", "roberta1", "roberta2", "roberta3", "roberta4", "sbert", "TextFeatures")
IEMOCAP_SPEAKERS = values.IEMOCAP_SPEAKERS
ENV_DATA = "MCEF_DATA"

ACCEPTED_FORMATS = "a project dataset directory (index.json + .npy), " + "; ".join(
    layout.description for layout in LAYOUTS
) + "; a mapping modality -> file (data.path) joining files by dialogue id"


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
    path: str | os.PathLike | Mapping,
    *,
    text_layer: str = "videoText",
    valid_fraction: float = 0.1,
    split_seed: int = 0,
    labels: str = "emotion",
    label_set: str | None = None,
) -> DialogueDataset:
    """Read any accepted dataset file, directory or mapping modality -> file, detecting each layout by content.

    ``text_layer`` picks the text item (TEXT_LAYERS; a file without the one asked for is an error naming those it
    has). ``labels`` ("emotion" or "sentiment") picks MELD's 7 emotions or 3 sentiments where a file has both;
    ``label_set`` names the label set (``mcef data formats`` lists them) instead of the one detected.
    Without validation ids in the file, a seeded ``valid_fraction`` of training dialogues is held out
    (``split_seed``). ``dataset.meta`` says which layout, producer, label set (and why) and validation split.
    """
    options = _options(text_layer, valid_fraction, split_seed, labels, label_set)
    if isinstance(path, Mapping):
        return load_joined(path, options)
    return read_file(resolve_data_path(path), options)


def _options(text_layer, valid_fraction, split_seed, labels, label_set) -> ReadOptions:
    if text_layer not in TEXT_LAYERS:
        raise DataError(f"text_layer {text_layer!r} is unknown; expected one of {TEXT_LAYERS}")
    if labels not in LABEL_CHOICES:
        raise DataError(f"labels {labels!r} (data.labels, --labels) is unknown; expected one of {LABEL_CHOICES}")
    if label_set is not None and label_set not in LABEL_SETS:
        raise DataError(f"label set {label_set!r} (data.label_set, --label-set) is unknown; expected one of "
                        f"{list(LABEL_SETS)}")
    return ReadOptions(text_layer=text_layer, valid_fraction=valid_fraction, split_seed=split_seed, labels=labels,
                       label_set=label_set)


def read_file(path: Path, options: ReadOptions) -> DialogueDataset:
    """One resolved file or directory of any accepted kind."""
    if is_project_dataset(path):
        return _checked_project(load_project(path), path, options)
    if path.is_dir():
        if (path / MULTIEMO_FILES[0]).is_file():
            return load_folder(path, options)
        raise DataError(f"{path}: a directory without index.json (and not MultiEMO's folder: no "
                        f"{MULTIEMO_FILES[0]}); expected one of: {ACCEPTED_FORMATS}")
    return _read_pickle(path, options)


def _read_pickle(path: Path, options: ReadOptions, *, corpus: str | None = None) -> DialogueDataset:
    obj = _unpickle(path)
    layout = detect_layout(obj, path)
    return assemble(parts_of(obj, layout, path), layout, path, options, corpus)


def _checked_project(dataset: DialogueDataset, path: Path, options: ReadOptions) -> DialogueDataset:
    """A project dataset keeps the labels it was converted with: a request for others is an error."""
    stored = dataset.meta.get("label_set")
    if options.label_set is not None and options.label_set != stored:
        raise DataError(f"{path}: a project dataset keeps the label set it was written with ({stored or 'unnamed'}: "
                        f"{', '.join(dataset.label_names)}); data.label_set {options.label_set!r} cannot change it. "
                        "Convert the source file again with --label-set")
    if options.labels == "sentiment" and dataset.meta.get("labels") != "sentiment":
        raise DataError(f"{path}: a project dataset keeps the labels it was written with (emotion); data.labels "
                        "'sentiment' cannot change them. Convert the source file again with --labels sentiment")
    return dataset


def _unpickle(path: Path):
    with open(path, "rb") as f:
        head = f.read(2)
        if not head or head[0] != 0x80 and head[:1] not in (b"(", b"]", b"}"):
            raise DataError(f"{path}: unknown format (neither a pickle nor a project directory); expected one of: "
                            f"{ACCEPTED_FORMATS}")
    return safe_load(path)


__all__ = ["ACCEPTED_FORMATS", "ENV_DATA", "MODALITIES", "TEXT_LAYERS", "default_data_dirs", "load_dataset",
           "read_file", "resolve_data_path"]
