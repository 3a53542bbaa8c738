"""Checks of one value of a peer pickle (a split list, a dialogue's labels, features, speakers or sentences).

Each check returns the value in the project's form or raises a :class:`DataError` that names the file, the key and
what was expected. The layout detector runs them on one dialogue per item to tell layouts apart; the assembly runs
them on every dialogue, so a file that passes detection but is bad further in gets the same message.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mcef.data.errors import DataError

IEMOCAP_SPEAKERS = ("M", "F")


def id_list(obj, path: Path | str, key: str) -> list:
    """A flat list of distinct dialogue ids (strings or integers); a set is sorted so the order is reproducible."""
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


def table(obj, path: Path | str, key: str, what: str = "values") -> dict:
    """``obj`` itself when it is a dict (dialogue id -> per-utterance values)."""
    if not isinstance(obj, dict):
        raise DataError(f"{path}: item {key!r} is a {type(obj).__name__}; expected a dict of dialogue id -> {what}")
    return obj


def utterance_ids(values, path: Path | str, key: str) -> list:
    """One dialogue's utterance ids (``videoIDs``): a sequence of strings or integers."""
    if values is None or isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__"):
        raise DataError(f"{path}: {key} is {type(values).__name__}; expected a list of utterance ids")
    values = list(values)
    odd = next((v for v in values if not isinstance(v, (str, int, np.integer))), None)
    if odd is not None:
        raise DataError(f"{path}: {key} holds {odd!r} ({type(odd).__name__}); expected utterance ids (strings or "
                        "integers)")
    return values


def sentences(values, path: Path | str, key: str) -> list[str]:
    """One dialogue's transcripts: a list of strings (numpy strings become str, nothing else is accepted)."""
    if values is None or isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__"):
        raise DataError(f"{path}: {key} is {type(values).__name__}; expected a list of strings, one per utterance")
    found = list(values)
    for i, sentence in enumerate(found):
        if not isinstance(sentence, str):
            raise DataError(f"{path}: {key}[{i}] is {sentence!r} ({type(sentence).__name__}); expected a string "
                            "(the utterance's transcript)")
    return [str(sentence) for sentence in found]


def int_labels(values, path: Path | str, key: str) -> np.ndarray:
    """One dialogue's class indices as a 1-d int64 array."""
    if isinstance(values, (str, bytes, dict)) or values is None:
        raise DataError(f"{path}: {key} is a {type(values).__name__}; expected a 1-d list of integer labels")
    try:
        x = np.asarray(values)
    except (ValueError, TypeError) as err:
        raise DataError(f"{path}: {key} is not an array of integers ({err})") from err
    if x.ndim != 1 or (x.size and not np.issubdtype(x.dtype, np.number)):
        raise DataError(f"{path}: {key} has shape {x.shape} and dtype {x.dtype}; expected a 1-d list of integer labels")
    if x.size and not np.all(x == np.round(x)):
        raise DataError(f"{path}: {key} holds non-integer values; expected integer class indices")
    return x.astype(np.int64)


def features(values, path: Path | str, key: str) -> np.ndarray:
    """One dialogue's (utterances, dim) features as float32 (a list of per-utterance vectors is stacked)."""
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


def speakers(values, path: Path | str, key: str, corpus: str | None = None) -> tuple[np.ndarray, tuple[str, ...]]:
    """IEMOCAP 'M'/'F' -> 0/1; MELD one-hot vectors -> their argmax. ``corpus`` ("iemocap"/"meld") demands one form."""
    if values is None or isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__"):
        raise DataError(f"{path}: {key} is a {type(values).__name__}; expected 'M'/'F' strings or one-hot vectors, "
                        "one per utterance")
    values = list(values)
    if all(isinstance(v, str) for v in values):
        unknown = sorted(set(values) - set(IEMOCAP_SPEAKERS))
        if unknown:
            raise DataError(f"{path}: {key} holds {unknown}; expected 'M' or 'F'")
        if corpus == "meld" and values:
            raise DataError(f"{path}: {key} holds 'M'/'F' strings; expected MELD's one-hot speaker vectors")
        return np.array([IEMOCAP_SPEAKERS.index(v) for v in values], dtype=np.int64), IEMOCAP_SPEAKERS
    try:
        x = np.asarray(values)
    except (ValueError, TypeError):
        x = np.asarray(values, dtype=object)
    if x.dtype.kind not in "iufb":
        raise DataError(f"{path}: {key} holds {x.dtype} values (e.g. {values[0]!r}); expected 'M'/'F' "
                        "strings or one-hot vectors of numbers")
    x = x.astype(np.float64)
    if x.ndim == 2 and x.shape[0] == len(values):
        if not np.all(x.sum(axis=1) == 1) or not np.all((x == 0) | (x == 1)):
            raise DataError(f"{path}: {key} holds vectors that are not one-hot; expected one 1 per row")
        if corpus == "iemocap":
            raise DataError(f"{path}: {key} holds one-hot vectors; expected IEMOCAP's 'M'/'F' strings")
        return x.argmax(axis=1).astype(np.int64), tuple(f"speaker{i}" for i in range(x.shape[1]))
    raise DataError(f"{path}: {key} has shape {x.shape}; expected 'M'/'F' strings or one-hot vectors")
