"""Consistency checks every reader runs, and the seeded validation split."""

from __future__ import annotations

import numpy as np

from mcef.data.dataset import MODALITIES, SPLITS, DialogueDataset
from mcef.data.errors import DataError


def make_valid_split(train_ids: list[str], fraction: float, seed: int, *,
                     where: str = "the data") -> tuple[list[str], list[str]]:
    """Hold out a seeded ``fraction`` of whole training dialogues; returns (train, valid) in file order.

    Called only for data without a validation split of its own, so ``fraction`` must be in (0, 1): 0 (allowed in
    ``data.valid_fraction`` for files that bring their own validation split) is an error here, naming ``where``.
    At least one dialogue is held out when there are two or more training dialogues, and at least one is kept.
    """
    import math
    import numbers

    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not math.isfinite(fraction) \
            or not 0.0 <= fraction < 1.0:
        raise DataError(f"{where}: valid_fraction (data.valid_fraction) is {fraction!r}; expected a share in (0, 1) "
                        "of training dialogues to hold out for validation")
    if fraction == 0:
        raise DataError(f"{where}: has no validation split of its own and valid_fraction (data.valid_fraction) is 0; "
                        "expected a share in (0, 1) of training dialogues to hold out for validation (0 is only "
                        "allowed for files with their own validation split)")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise DataError(f"{where}: split_seed (data.split_seed, --split-seed) is {seed!r}; expected a non-negative "
                        "integer")
    n_valid = int(round(fraction * len(train_ids)))
    if n_valid == 0 and len(train_ids) >= 2:
        n_valid = 1
    n_valid = min(n_valid, max(len(train_ids) - 1, 0))  # never the whole training split
    chosen = set(np.random.default_rng(seed).permutation(len(train_ids))[:n_valid].tolist())
    train = [d for i, d in enumerate(train_ids) if i not in chosen]
    valid = [d for i, d in enumerate(train_ids) if i in chosen]
    return train, valid


def validate_dataset(dataset: DialogueDataset, origin: str) -> DialogueDataset:
    """Check ``dataset`` thoroughly; raise :class:`DataError` naming ``origin`` (the file) on the first problem.

    Checks: at least one dialogue; no empty dialogue; every dialogue has the same modalities, each a finite
    float32 (T, D_m) array with one row per label and the same D_m everywhere; labels and speakers in range;
    sentences (when given) one per utterance; the splits are known names, disjoint, and list only known dialogues.
    """
    if not dataset.dialogues:
        raise DataError(f"{origin}: the dataset has no dialogues; expected at least one")
    first_id, first = next(iter(dataset.dialogues.items()))
    modalities = tuple(m for m in MODALITIES if m in first.features)
    dims = {m: first.features[m].shape[-1] for m in modalities}
    for did, dialogue in dataset.dialogues.items():
        n = len(dialogue.labels)
        where = f"{origin}: dialogue {did!r}"
        if n == 0:
            raise DataError(f"{where} is empty (0 utterances); expected at least one utterance per dialogue")
        unknown = set(dialogue.features) - set(MODALITIES)
        if unknown:
            raise DataError(f"{where} has unknown modalities {sorted(unknown)}; expected a subset of {MODALITIES}")
        if tuple(m for m in MODALITIES if m in dialogue.features) != modalities:
            raise DataError(
                f"{where} has modalities {sorted(dialogue.features)} but dialogue {first_id!r} has "
                f"{list(modalities)}; expected the same modalities in every dialogue"
            )
        if dialogue.labels.ndim != 1 or dialogue.speakers.shape != dialogue.labels.shape:
            raise DataError(
                f"{where}: speakers have shape {dialogue.speakers.shape} and labels {dialogue.labels.shape}; "
                "expected two 1-d arrays of the same length"
            )
        for m in modalities:
            x = dialogue.features[m]
            if x.ndim != 2 or x.shape[0] != n:
                raise DataError(f"{where}, modality {m!r}: features have shape {x.shape}; expected ({n}, D), one row per label")
            if x.shape[1] != dims[m]:
                raise DataError(
                    f"{where}, modality {m!r}: feature dimension {x.shape[1]} differs from {dims[m]} in dialogue "
                    f"{first_id!r}; expected one dimension per modality"
                )
            finite = np.isfinite(x).all(axis=1)
            if not finite.all():
                bad = int(np.flatnonzero(~finite)[0])
                raise DataError(
                    f"{where}, modality {m!r}, utterance {bad}: features contain NaN or inf "
                    f"({int((~finite).sum())} bad utterances in this dialogue); expected finite values"
                )
        _check_range(dialogue.labels, dataset.n_classes, f"{where}: label", dataset.label_names)
        _check_range(dialogue.speakers, dataset.n_speakers, f"{where}: speaker", dataset.speaker_names)
        if dialogue.sentences is not None:
            if isinstance(dialogue.sentences, (str, bytes)) or not isinstance(dialogue.sentences, (list, tuple)):
                raise DataError(f"{where}: sentences are a {type(dialogue.sentences).__name__}; expected a list of "
                                "strings, one per utterance")
            if len(dialogue.sentences) != n:
                raise DataError(f"{where} has {len(dialogue.sentences)} sentences for {n} utterances; expected one per utterance")
            bad = next((i for i, s in enumerate(dialogue.sentences) if not isinstance(s, str)), None)
            if bad is not None:
                raise DataError(f"{where}: sentence {bad} is {dialogue.sentences[bad]!r} "
                                f"({type(dialogue.sentences[bad]).__name__}); expected a string per utterance")
    _check_splits(dataset, origin)
    return dataset


def _check_range(values: np.ndarray, n: int, what: str, names: tuple[str, ...]) -> None:
    bad = (values < 0) | (values >= n)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{what} {int(values[i])} at utterance {i} is out of range; expected 0..{n - 1} ({', '.join(names)})")


def _check_splits(dataset: DialogueDataset, origin: str) -> None:
    unknown_splits = set(dataset.splits) - set(SPLITS)
    if unknown_splits:
        raise DataError(f"{origin}: unknown split names {sorted(unknown_splits)}; expected {SPLITS}")
    seen: dict[str, str] = {}
    for split, ids in dataset.splits.items():
        if isinstance(ids, (str, bytes, dict)) or not isinstance(ids, (list, tuple)):
            raise DataError(f"{origin}: split {split!r} is a {type(ids).__name__}; expected a list of dialogue ids")
        odd = next((d for d in ids if not isinstance(d, str)), None)
        if odd is not None:
            raise DataError(f"{origin}: split {split!r} holds {odd!r} ({type(odd).__name__}); expected dialogue ids "
                            "(strings), not nested lists")
        missing = [d for d in ids if d not in dataset.dialogues]
        if missing:
            raise DataError(
                f"{origin}: split {split!r} names {len(missing)} unknown dialogue(s), e.g. {missing[0]!r}; "
                "expected every split id to be a dialogue of the file"
            )
        for d in ids:
            if d in seen:
                raise DataError(f"{origin}: dialogue {d!r} is in both split {seen[d]!r} and split {split!r}; expected disjoint splits")
            seen[d] = split
