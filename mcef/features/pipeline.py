"""From a config's data section to the dataset a run trains on: find, read or encode, standardise.

Every setting that changes the vectors is a field of :class:`mcef.config.DataConfig` (the text encoder and its
context, text normalisation, standardisation), so a run's ``config.yaml`` alone rebuilds its data.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from mcef.config import ConfigError, DataConfig, ExperimentConfig
from mcef.data.dataset import DialogueDataset


def standardise(dataset: DialogueDataset) -> DialogueDataset:
    """A copy of ``dataset`` whose every modality is z-scored per dimension with training-split statistics.

    Why: sentence encoders emit unit-norm vectors (entries ~0.05), so after MCEF's bias-free input projection the text
    signal is ~30x smaller than the speaker embedding and the sinusoidal positions added to it, and training crawls.
    """
    stats = {}
    for modality in dataset.modalities:
        train = np.concatenate([d.features[modality] for d in dataset.split("train")])  # (N_train, D)
        stats[modality] = train.mean(axis=0), train.std(axis=0) + 1e-6
    dialogues = {key: replace(d, features={m: ((x - stats[m][0]) / stats[m][1]).astype(np.float32) if m in stats else x
                                           for m, x in d.features.items()})
                 for key, d in dataset.dialogues.items()}
    return replace(dataset, dialogues=dialogues, source=f"{dataset.source}; standardised with train statistics")


def _synthetic(data: DataConfig) -> DialogueDataset:
    from mcef.data import SyntheticConfig, make_synthetic

    try:
        return make_synthetic(SyntheticConfig(**data.synthetic))
    except TypeError as err:
        raise ConfigError(f"data.synthetic: {err}; expected fields of mcef.data.SyntheticConfig") from None


def label_options(data: DataConfig) -> dict:
    """data.labels and data.label_set for the reader, only where they differ from the defaults (so the cache keys
    of transcripts encoded before these fields existed stay the same)."""
    options = {}
    if data.labels != "emotion":
        options["labels"] = data.labels
    if data.label_set is not None:
        options["label_set"] = data.label_set
    return options


def _encoded_transcripts(data: DataConfig, path: Path, device: str) -> tuple[DialogueDataset, str]:
    from mcef.features.text import cached_text_features

    dataset, cached_at, hit = cached_text_features(path, data.text, cache_dir=data.cache_dir, device=device,
                                                   valid_fraction=data.valid_fraction, split_seed=data.split_seed,
                                                   **label_options(data))
    how = "read from the cache" if hit else "extracted now and cached"
    return dataset, f"transcripts {path} -> {data.text.encoder} text features ({how}: {Path(cached_at).name})"


def _corpus_asked(data: DataConfig) -> str | None:
    """The corpus the label settings imply for discovered data (sentiments are MELD's), or None."""
    from mcef.data.labels import LABEL_SETS

    if data.label_set in LABEL_SETS:
        return LABEL_SETS[data.label_set].corpus
    return "meld" if data.labels == "sentiment" else None


def data_for_run(config: ExperimentConfig) -> DataConfig:
    """``config.data`` with a fine-tuning seed left to the run (``data.text.finetune.seed: null``) set to its
    ``train.seed``: each seed of a sweep then fine-tunes its own encoder."""
    tune = config.data.text.finetune
    if tune is None or tune.seed is not None:
        return config.data
    return replace(config.data, text=replace(config.data.text, finetune=replace(tune, seed=config.train.seed)))


def load_data(data: DataConfig, *, device: str = "auto") -> tuple[DialogueDataset, str]:
    """The dataset of ``data`` and a one-line description of where it came from.

    ``data.path``: None = discovered data (a real feature file, else real transcripts, else the synthetic default;
    see :mod:`mcef.data.discovery`; MELD first when ``data.labels`` is sentiment or ``data.label_set`` names a MELD
    set), ``"synthetic"`` = the synthetic data of ``data.synthetic``, a mapping modality -> file = modalities of
    different files joined by dialogue id, else a feature file, dataset directory or transcript file.
    ``data.labels`` / ``data.label_set`` choose the labels. Transcripts are encoded by ``data.text`` (cached under
    ``data.cache_dir``). ``device`` runs the text encoder when features have to be extracted.
    """
    from mcef.data import load_dataset
    from mcef.data.discovery import find_data

    choice = find_data(data.path, corpus=_corpus_asked(data) if data.path is None else None)
    if choice.kind == "synthetic":
        dataset = _synthetic(data)
        description = f"{choice.description}: {dataset.source}" if data.path is None else dataset.source
    elif choice.kind == "features":
        dataset = load_dataset(choice.path, text_layer=data.text_layer, valid_fraction=data.valid_fraction,
                               split_seed=data.split_seed, labels=data.labels, label_set=data.label_set)
        description = choice.description
        if not dataset.modalities:  # a file of transcripts without feature arrays: encode its text
            dataset, description = _encoded_transcripts(data, Path(choice.path), device)
    else:
        dataset, description = _encoded_transcripts(data, Path(choice.path), device)
    if data.standardise:
        dataset = standardise(dataset)
        description += "; standardised with train statistics"
    return dataset, description
