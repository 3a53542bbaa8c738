"""Named label sets, and which one a file's labels are: from the file, the corpus, or ``data.label_set``.

The name is kept in ``dataset.meta["label_set"]`` and where it came from in ``dataset.meta["label_set_source"]``:
``"file"`` (what the file holds decided it: its sentiment labels, or labels that never exceed 3), ``"dataset"``
(the corpus' standard set for that layout) or ``"data.label_set"`` (the config's override).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mcef.data.dataset import IEMOCAP_LABELS, MELD_LABELS
from mcef.data.errors import DataError

LABEL_CHOICES = ("emotion", "sentiment")  # data.labels
SOURCES = ("file", "dataset", "data.label_set")


@dataclass(frozen=True)
class LabelSet:
    """One named set of class names, in the order of the integer labels of the files that use it."""

    name: str
    corpus: str  # "iemocap" or "meld"
    kind: str  # "emotion" or "sentiment"
    names: tuple[str, ...]
    note: str  # where the order comes from, for `mcef data formats`


LABEL_SETS = {s.name: s for s in (
    LabelSet("iemocap-6", "iemocap", "emotion", IEMOCAP_LABELS,
             "IEMOCAP's 6 classes as every peer file numbers them (hap 0 ... fru 5)"),
    LabelSet("iemocap-4", "iemocap", "emotion", IEMOCAP_LABELS[:4],
             "the 4-class IEMOCAP files (COGMEN, CORECT, GraphSmile): labels 0-3, named as COGMEN maps them "
             "(hap 0, sad 1, neu 2, ang 3)"),
    LabelSet("meld-7", "meld", "emotion", MELD_LABELS, "MELD's 7 emotions (neutral 0 ... anger 6)"),
    # The order is the files' own: COSMIC's meld.pkl and bc-LSTM's MELD_features_raw.pkl number the sentiments
    # neutral 0, positive 1, negative 2 (every joy utterance of the real meld_text.pkl has sentiment 1, every anger
    # utterance 2), not alphabetically.
    LabelSet("meld-3-sentiment", "meld", "sentiment", ("neutral", "positive", "negative"),
             "MELD's 3 sentiments as its files number them (neutral 0, positive 1, negative 2)"),
)}


@dataclass(frozen=True)
class LabelChoice:
    """The label set a reader settled on, and why."""

    label_set: LabelSet
    source: str  # one of SOURCES
    reason: str  # one line for `mcef data info`


def choose_label_set(where: str, corpus: str, labels: str, label_set: str | None, *, has_sentiments: bool,
                     max_label: int) -> LabelChoice:
    """The label set of a file of ``corpus`` read with ``labels`` (data.labels) and ``label_set`` (data.label_set).

    ``max_label`` is the largest label of the chosen kind in the file (-1 when it has none).
    A request the file cannot meet (sentiments of a file without them, a label set of another corpus or kind)
    is a DataError naming ``where``.
    """
    if labels not in LABEL_CHOICES:
        raise DataError(f"{where}: labels (data.labels, --labels) is {labels!r}; expected one of {LABEL_CHOICES}")
    if labels == "sentiment" and not has_sentiments:
        raise DataError(f"{where}: data.labels (--labels) is 'sentiment', but this file carries no sentiment labels; "
                        "expected a MELD file that has them (the MELD 9-, 10-, 13- (with a sentiment dict) and "
                        "14-tuples, COSMIC's MELD files; `mcef data formats` lists them), or labels: emotion")
    if label_set is not None:
        chosen = _override(where, corpus, labels, label_set)
        return LabelChoice(chosen, "data.label_set", f"set by data.label_set (--label-set) {label_set!r}")
    if labels == "sentiment":
        return LabelChoice(LABEL_SETS["meld-3-sentiment"], "file", "its sentiment labels (data.labels: sentiment)")
    if corpus == "iemocap" and 0 <= max_label <= 3:
        return LabelChoice(LABEL_SETS["iemocap-4"], "file",
                           "inferred from the file: its labels never exceed 3 (no excited, no frustrated), as in the "
                           "4-class IEMOCAP files of COGMEN, CORECT and GraphSmile; the file alone cannot say more, "
                           "so set data.label_set (--label-set) iemocap-6 if it is a 6-class file")
    name = "iemocap-6" if corpus == "iemocap" else "meld-7"
    return LabelChoice(LABEL_SETS[name], "dataset", f"the standard {corpus.upper()} emotion classes")


def _override(where: str, corpus: str, labels: str, name: str) -> LabelSet:
    """``data.label_set`` checked against the file's corpus and ``data.labels``."""
    if name not in LABEL_SETS:
        raise DataError(f"{where}: label set (data.label_set, --label-set) {name!r} is unknown; expected one of "
                        f"{list(LABEL_SETS)}")
    chosen = LABEL_SETS[name]
    if chosen.corpus != corpus:
        raise DataError(f"{where}: label set {name!r} (data.label_set) is for {chosen.corpus.upper()}, but the file "
                        f"holds {corpus.upper()}; expected one of "
                        f"{[n for n, s in LABEL_SETS.items() if s.corpus == corpus]}")
    if chosen.kind != labels:
        raise DataError(f"{where}: label set {name!r} (data.label_set) names {chosen.kind} labels, but data.labels "
                        f"(--labels) is {labels!r}; expected data.labels: {chosen.kind} with it")
    return chosen


# MELD emotions (meld-7 indices) whose sentiment is fixed by MELD's annotation: neutral is neutral, joy positive,
# fear/sadness/disgust/anger negative (surprise can be either, so it says nothing).
_EMOTION_SENTIMENT = {"neutral": (0,), "positive": (4,), "negative": (2, 3, 5, 6)}


def sentiment_numbering(emotions: list[np.ndarray], sentiments: list[np.ndarray]) -> tuple[np.ndarray | None, str]:
    """How the file numbers its sentiments, read off the emotion labels of the same utterances.

    Returns (lookup, note): ``lookup[file value]`` is the meld-3-sentiment index, or None when the file already uses
    that numbering or the emotions cannot tell (the note says which). Why: CFN-ESA/GraphSmile do not state their
    numbering, and a file numbered otherwise would otherwise be read with every sentiment misnamed.
    """
    emotion, sentiment = np.concatenate(emotions), np.concatenate(sentiments)
    standard = LABEL_SETS["meld-3-sentiment"].names
    found = {}
    for name, group in _EMOTION_SENTIMENT.items():
        values_of = sentiment[np.isin(emotion, group)]
        if not values_of.size:
            return None, f"numbering assumed ({', '.join(f'{i} {n}' for i, n in enumerate(standard))}): the file has " \
                         f"no {name} emotion to check it against"
        counts = np.bincount(values_of, minlength=3)
        if counts.max() < 0.8 * values_of.size or counts.argmax() > 2:
            return None, f"numbering assumed: the {name} emotions have mixed sentiments {counts.tolist()}"
        found[name] = int(counts.argmax())
    if len(set(found.values())) < 3:
        return None, f"numbering assumed: the emotions map to sentiments {found}"
    if all(found[name] == i for i, name in enumerate(standard)):
        return None, "numbering checked against the emotion labels (neutral 0, positive 1, negative 2)"
    lookup = np.zeros(3, dtype=np.int64)
    for i, name in enumerate(standard):
        lookup[found[name]] = i
    order = ", ".join(f"{v} {n}" for n, v in sorted(found.items(), key=lambda kv: kv[1]))
    return lookup, f"renumbered: the file numbers its sentiments {order} (read off its emotion labels)"


def label_set_rows() -> list[tuple[str, str, str]]:
    """(name, classes in label order, note) per label set, for `mcef data formats` and data/README.md."""
    return [(s.name, ", ".join(f"{i} {n}" for i, n in enumerate(s.names)), s.note) for s in LABEL_SETS.values()]
