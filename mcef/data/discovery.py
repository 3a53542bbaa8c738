"""Which data to use when nobody names a file: the best real data found, else the synthetic default, and say which.

Order (first found wins):
1. a real multimodal feature file: ``iemocap_multimodal_features.pkl``, ``meld_multimodal_features.pkl``,
   ``IEMOCAP_features.pkl``, ``MELD_features_raw1.pkl``, ``MELD_features_raw.pkl``, ``data_iemocap.pkl`` (COGMEN or
   CORECT), or a project-format directory with two or more modalities, in ``data/`` then in ``$MCEF_DATA``;
2. real transcripts (``iemocap_text.pkl``, ``meld_text.pkl``) in ``data/`` then in ``$MCEF_DATA``, turned into text
   features by the offline sentence encoder and cached under ``data/cache/``;
3. the synthetic default, ``make_synthetic(SyntheticConfig())``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mcef.data.dataset import DialogueDataset

FEATURE_FILES = (  # (file name, corpus), in order of preference
    ("iemocap_multimodal_features.pkl", "iemocap"),
    ("meld_multimodal_features.pkl", "meld"),
    ("IEMOCAP_features.pkl", "iemocap"),
    ("MELD_features_raw1.pkl", "meld"),
    ("MELD_features_raw.pkl", "meld"),
    ("data_iemocap.pkl", "iemocap"),
)
TRANSCRIPT_FILES = (("iemocap_text.pkl", "iemocap"), ("meld_text.pkl", "meld"))
CORPORA = ("iemocap", "meld")

Kind = Literal["features", "transcripts+text-features", "synthetic"]


@dataclass(frozen=True)
class DataChoice:
    """What discovery picked, for people and for programs."""

    kind: Kind  # "features" | "transcripts+text-features" | "synthetic"
    description: str  # one line saying what is used and where it came from
    path: Path | dict | None = None  # the file/directory read, a mapping modality -> file (a join); None: synthetic
    corpus: str | None = None  # "iemocap" / "meld" when known


def search_dirs(data_dir: str | os.PathLike = "data", env_var: str = "MCEF_DATA") -> list[Path]:
    """``data_dir`` then the directory named by ``$env_var`` (when set), without duplicates."""
    dirs = [Path(data_dir)]
    if os.environ.get(env_var):
        dirs.append(Path(os.environ[env_var]))
    unique: dict[Path, Path] = {}
    for d in dirs:
        unique.setdefault(d.resolve(), d)
    return list(unique.values())


def _project_dirs(directory: Path, corpus: str | None) -> list[Path]:
    """Project-format datasets directly under ``directory`` with two or more modalities (cache excluded)."""
    found = []
    for sub in sorted(p for p in directory.iterdir() if p.is_dir() and p.name != "cache") if directory.is_dir() else ():
        try:
            index = json.loads((sub / "index.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if len(index.get("modalities", {})) >= 2 and (corpus is None or index.get("name") == corpus):
            found.append(sub)
    return found


def find_data(path: str | os.PathLike | Mapping | None = None, *, data_dir: str | os.PathLike = "data",
              env_var: str = "MCEF_DATA", corpus: str | None = None) -> DataChoice:
    """Locate the data :func:`discover_data` would use, without reading or extracting anything.

    ``corpus`` ("iemocap" or "meld") restricts the search to that corpus; None prefers IEMOCAP.
    An explicit ``path`` is taken as is ("synthetic" names the synthetic default; a mapping modality -> file is a
    join of modalities of different files by dialogue id).
    """
    if corpus is not None and corpus not in CORPORA:
        raise ValueError(f"corpus {corpus!r} is unknown; expected one of {CORPORA} or None")
    if isinstance(path, Mapping):
        joined = ", ".join(f"{m} from {p}" for m, p in path.items())
        return DataChoice("features", f"features joined by dialogue id: {joined} (given paths)", dict(path))
    if path is not None:
        if str(path) == "synthetic":
            return DataChoice("synthetic", "synthetic data (asked for explicitly)")
        path = Path(path)
        transcripts = {name: c for name, c in TRANSCRIPT_FILES}
        if path.name in transcripts or path.suffix.lower() == ".csv":
            return DataChoice("transcripts+text-features", f"transcripts {path} with offline text features (given path)",
                              path, transcripts.get(path.name))
        return DataChoice("features", f"features from {path} (given path)", path)
    dirs = search_dirs(data_dir, env_var)
    for directory in dirs:
        for name, file_corpus in FEATURE_FILES:
            if (directory / name).is_file() and corpus in (None, file_corpus):
                return DataChoice("features", f"real {file_corpus.upper()} multimodal features from {directory / name}",
                                  directory / name, file_corpus)
        for sub in _project_dirs(directory, corpus):
            return DataChoice("features", f"real multimodal features from the dataset directory {sub}", sub, corpus)
    for directory in dirs:
        for name, file_corpus in TRANSCRIPT_FILES:
            if (directory / name).is_file() and corpus in (None, file_corpus):
                return DataChoice(
                    "transcripts+text-features",
                    f"real {file_corpus.upper()} transcripts from {directory / name} with offline text features "
                    "(text only: no audio or visual features found)", directory / name, file_corpus)
    where = " or ".join(str(d) for d in dirs)
    return DataChoice("synthetic", f"synthetic IEMOCAP-like data: no real feature file or transcripts in {where}")


def discover_data(path: str | os.PathLike | Mapping | None = None, *, data_dir: str | os.PathLike = "data",
                  env_var: str = "MCEF_DATA", corpus: str | None = None, text_config=None, device: str = "auto",
                  cache_dir: str | os.PathLike | None = None) -> tuple[DialogueDataset, DataChoice]:
    """The dataset to use and what it is: ``path`` when given, else the first of the order in this module's
    docstring. Transcripts get text features from :func:`mcef.features.text.cached_text_features` (``text_config``,
    default all-MiniLM-L6-v2), cached under ``cache_dir`` (default ``<data_dir>/cache``)."""
    from mcef.data import SyntheticConfig, load_dataset, make_synthetic

    choice = find_data(path, data_dir=data_dir, env_var=env_var, corpus=corpus)
    if choice.kind == "synthetic":
        return make_synthetic(SyntheticConfig()), choice
    if choice.kind == "features":
        dataset = load_dataset(choice.path)
        if dataset.modalities:
            return dataset, choice
        # A given path that holds transcripts only (no feature arrays): encode them like discovered transcripts.
        choice = DataChoice("transcripts+text-features", f"transcripts {choice.path} with offline text features "
                            "(given path)", choice.path, dataset.name)
    from mcef.features.text import TextFeatureConfig, cached_text_features

    config = text_config or TextFeatureConfig()
    dataset, cached_at, hit = cached_text_features(
        choice.path, config, cache_dir=cache_dir or Path(data_dir) / "cache", device=device)
    how = "read from the cache" if hit else "extracted now and cached"
    described = f"{choice.description}: {config.encoder}, {how} at {cached_at}"
    return dataset, DataChoice(choice.kind, described, choice.path, choice.corpus or dataset.name)
