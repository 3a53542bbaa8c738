"""From a detected layout to the :class:`DialogueDataset`: every layout's items by role, then one assembly.

:func:`parts_of` turns what ``pickle.load`` returned (a tuple, or COGMEN/CORECT's dict of samples) into
:class:`Parts`, the items by role; :func:`assemble` checks every dialogue of them and builds the dataset, with the
label set chosen by :mod:`mcef.data.labels` and the validation split from the file or a seeded draw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mcef.data import values
from mcef.data.dataset import Dialogue, DialogueDataset
from mcef.data.errors import DataError
from mcef.data.labels import choose_label_set, sentiment_numbering
from mcef.data.layouts import FEATURE_ROLES, SAMPLE_SPLITS, Layout, check_sample
from mcef.data.validation import make_valid_split, validate_dataset


@dataclass(frozen=True)
class ReadOptions:
    """How to read a file: the reader's keyword arguments, as in ``DataConfig``."""

    text_layer: str = "videoText"
    valid_fraction: float = 0.1
    split_seed: int = 0
    labels: str = "emotion"
    label_set: str | None = None
    modalities: tuple[str, ...] | None = None  # None: every modality of the file (joins read only what they take)


@dataclass
class Parts:
    """One file's items by role, not yet checked; ``names`` holds the peer's name of each item, for messages."""

    speakers: object = None
    labels: object = None
    sentiments: object = None
    text: dict = field(default_factory=dict)  # text layer name -> table
    audio: object = None
    visual: object = None
    sentences: object = None
    train: object = None
    test: object = None
    valid: object = None
    extra: object = None  # an item that may be validation ids (CFN-ESA's 14th)
    names: dict = field(default_factory=dict)
    valid_from: str = "the file"  # the split's name in the file, for `mcef data info`


def parts_of(obj, layout: Layout, path: Path) -> Parts:
    """The items of ``obj`` (a file of ``layout``) by role."""
    if layout.container == "samples":
        return _sample_parts(obj, layout, path)
    parts = Parts()
    for item in layout.items:
        value = obj[item.key]
        if item.role == "text":
            parts.text[item.name] = value
        elif item.role == "sentiments_or_valid":  # SDT's MELD 13th item: the sentiments, or validation ids
            role = "sentiments" if isinstance(value, dict) else "valid"
            if value is not None:
                setattr(parts, role, value)
                parts.names[role] = item.name
            continue
        elif item.role in ("ids", "unused"):
            continue
        else:
            setattr(parts, item.role, value)
        parts.names[item.role] = item.name
    return parts


def _sample_parts(obj: dict, layout: Layout, path: Path) -> Parts:
    """COGMEN/CORECT ``{train, dev, test: [sample]}`` as tables keyed by each sample's ``vid``."""
    parts = Parts(valid_from="the file's dev list")
    read = [item for item in layout.items if item.role not in ("vid", "unused")]
    tables: dict[str, dict] = {item.name: {} for item in read}
    seen: dict = {}
    for split in SAMPLE_SPLITS:
        ids = []
        for i, sample in enumerate(obj[split]):
            fields = check_sample(layout, sample, path, f"{split}[{i}]")
            vid = fields["vid"]
            if isinstance(vid, (bool, np.bool_)) or not isinstance(vid, (str, int, np.integer)):
                raise DataError(f"{path}: {split}[{i}] field 'vid' is {vid!r}; expected a dialogue id")
            if vid in seen:
                raise DataError(f"{path}: dialogue {vid!r} is in {seen[vid]} and {split}[{i}]; expected one sample "
                                "per dialogue (files cut into windows of utterances are not supported)")
            seen[vid] = f"{split}[{i}]"
            ids.append(vid)
            for item in read:
                tables[item.name][vid] = fields[item.key]
        setattr(parts, {"train": "train", "dev": "valid", "test": "test"}[split], ids)
    for item in read:
        if item.role == "text":
            parts.text[item.name] = tables[item.name]
        else:
            setattr(parts, item.role, tables[item.name])
        parts.names[item.role] = item.name
    parts.names.update(train="train", test="test", valid="dev")
    return parts


def _splits(parts: Parts, labels: dict, path: Path, options: ReadOptions) -> tuple[list, list, list, str]:
    """(train, valid, test, how valid was made): the file's validation ids when it has them, else a seeded draw."""
    names = parts.names
    train = values.id_list(parts.train, path, names["train"])
    test = values.id_list(parts.test, path, names["test"])
    valid = values.id_list(parts.valid, path, names["valid"]) if parts.valid is not None else None
    ignored = ""
    if valid is None and "extra" in names:  # an item no peer names (CFN-ESA's 14th): validation ids if it is such
        candidate = _ids_or_none(parts.extra)
        if candidate and all(d in labels for d in candidate):
            valid, names["valid"] = candidate, names["extra"]
        else:
            ignored = f"; the {names['extra']} ({type(parts.extra).__name__}, not the file's dialogue ids) is ignored"
    for key, ids in ((names["train"], train), (names["test"], test), (names.get("valid"), valid or [])):
        unknown = [d for d in ids if d not in labels]
        if unknown:
            table = names["sentiments"] if labels is parts.sentiments else names["labels"]
            raise DataError(f"{path}: split {key!r} names {len(unknown)} dialogue(s) absent from {table}, "
                            f"e.g. {unknown[0]!r}; expected every split id to be a dialogue of the file")
    if valid is not None:
        valid_set = set(valid)
        train = [d for d in train if d not in valid_set]  # some files list validation dialogues in trainVid too
        count = f"{len(valid)} dialogue{'' if len(valid) == 1 else 's'}"
        return train, valid, test, f"from {parts.valid_from} ({count}, {names['valid']})"
    train, valid = make_valid_split(train, options.valid_fraction, options.split_seed, where=str(path))
    note = (f"seeded {options.valid_fraction:.0%} of training dialogues ({len(valid)} of {len(train) + len(valid)}, "
            f"split_seed {options.split_seed}){ignored}")
    return train, valid, test, note


def _ids_or_none(obj) -> list | None:
    """``obj`` as a list of dialogue ids, or None when it is not one."""
    if not isinstance(obj, (list, tuple, set, frozenset)):
        return None
    try:
        return values.id_list(obj, "", "")
    except DataError:
        return None


def text_layer_of(layout: Layout, layers: list[str], requested: str, path: Path) -> str:
    """The text item ``requested`` names: itself, or for ``videoText`` (the default) the file's first text layer."""
    if requested in layers:
        return requested
    if requested == "videoText" and layers:
        return layers[0]
    raise DataError(f"{path}: text layer {requested!r} (data.text_layer, --text-layer) is not in this file "
                    f"({layout.description}); it has {layers}")


def _sources(parts: Parts, layout: Layout, path: Path, options: ReadOptions) -> tuple[dict, str | None]:
    """modality -> (peer's name, table) of the features to read, and the text layer read (None: no text)."""
    wanted = options.modalities or FEATURE_ROLES
    sources, layer = {}, None
    if parts.text and "text" in wanted:
        layer = text_layer_of(layout, list(parts.text), options.text_layer, path)
        sources["text"] = (layer, parts.text[layer])
    for modality in ("audio", "visual"):
        if getattr(parts, modality) is not None and modality in wanted:
            sources[modality] = (parts.names[modality], getattr(parts, modality))
    for modality, (key, table) in sources.items():
        values.table(table, path, key, "features")
    return sources, layer


def _dialogue(did, parts: Parts, labels: dict, sources: dict, path: Path, corpus: str) -> tuple[Dialogue, tuple]:
    """Dialogue ``did``, every value checked, and its speakers' names."""
    names = parts.names
    label_key = names["sentiments"] if labels is parts.sentiments else names["labels"]
    dialogue_labels = values.int_labels(labels[did], path, f"{label_key}[{did!r}]")
    for modality, (key, table) in sources.items():
        if did not in table:
            raise DataError(f"{path}: dialogue {did!r} is missing from {key!r} ({modality}); expected every dialogue "
                            "in every modality")
    if did not in parts.speakers:
        raise DataError(f"{path}: dialogue {did!r} is missing from {names['speakers']!r}; expected a speaker per "
                        "utterance")
    speakers, speaker_names = values.speakers(parts.speakers[did], path, f"{names['speakers']}[{did!r}]",
                                              corpus if corpus != "any" else None)
    feats = {m: values.features(table[did], path, f"{key}[{did!r}]") for m, (key, table) in sources.items()}
    sentences = None
    if isinstance(parts.sentences, dict) and did in parts.sentences:
        sentences = values.sentences(parts.sentences[did], path, f"{names['sentences']}[{did!r}]")
    return Dialogue(id=str(did), features=feats, speakers=speakers, labels=dialogue_labels,
                    sentences=sentences), speaker_names


def _renumber_sentiments(dialogues: dict, parts: Parts, path: Path) -> str:
    """Bring the sentiments of ``dialogues`` (in place) to meld-3-sentiment's numbering; the note says what was done."""
    ids = [did for did in dialogues if len(dialogues[did])]
    keyed = {str(did): did for did in parts.labels}
    absent = next((did for did in ids if did not in keyed), None)
    if absent is not None:
        raise DataError(f"{path}: dialogue {absent!r} has sentiments but is missing from {parts.names['labels']!r}; "
                        "expected emotion labels for every dialogue (they check the sentiments' numbering)")
    emotions = [values.int_labels(parts.labels[keyed[did]], path, f"{parts.names['labels']}[{did!r}]") for did in ids]
    if any(len(e) != len(dialogues[did]) for e, did in zip(emotions, ids)):
        raise DataError(f"{path}: the emotion and sentiment labels of a dialogue differ in length; expected one of "
                        "each per utterance")
    if not ids or any(d.labels.min() < 0 or d.labels.max() > 2 for d in (dialogues[i] for i in ids)):
        return ""  # out-of-range sentiments: validate_dataset names the first
    lookup, note = sentiment_numbering(emotions, [dialogues[did].labels for did in ids])
    if lookup is not None:
        for did in ids:
            dialogues[did].labels = lookup[dialogues[did].labels]
    return note


def assemble(parts: Parts, layout: Layout, path: Path, options: ReadOptions, corpus: str | None = None,
             describe: str | None = None) -> DialogueDataset:
    """The checked dataset of ``parts`` (a file of ``layout``; ``corpus`` for layouts of either corpus)."""
    corpus = corpus or layout.corpus
    has_sentiments = parts.sentiments is not None
    # Refuse a request the file cannot meet (sentiments it lacks, a label set of the other corpus) before reading.
    choose_label_set(str(path), corpus, options.labels, options.label_set, has_sentiments=has_sentiments, max_label=-1)
    if has_sentiments:
        values.table(parts.sentiments, path, parts.names["sentiments"], "sentiment labels")
    labels = parts.sentiments if options.labels == "sentiment" and has_sentiments else parts.labels
    values.table(labels, path, parts.names["labels"], "labels")
    values.table(parts.speakers, path, parts.names["speakers"], "speakers")
    if parts.sentences is not None and not parts.text:  # transcripts only: the sentences are the data
        values.table(parts.sentences, path, parts.names["sentences"], "sentences")
    train, valid, test, valid_note = _splits(parts, labels, path, options)
    sources, layer = _sources(parts, layout, path, options)
    dialogues, speaker_names = {}, None
    for did in train + valid + test:
        dialogues[str(did)], names = _dialogue(did, parts, labels, sources, path, corpus)
        speaker_names = speaker_names or (names if len(dialogues[str(did)]) else None)
    sentiment_note = _renumber_sentiments(dialogues, parts, path) if labels is parts.sentiments else None
    top = max((int(d.labels.max()) for d in dialogues.values() if len(d)), default=-1)
    choice = choose_label_set(str(path), corpus, options.labels, options.label_set, has_sentiments=has_sentiments,
                              max_label=top)
    dims = {m: int(d.features[m].shape[1]) for d in list(dialogues.values())[:1] for m in d.features
            if d.features[m].ndim == 2}
    describe = describe or layout.description
    dataset = DialogueDataset(
        name=corpus, dialogues=dialogues, label_names=choice.label_set.names,
        speaker_names=speaker_names or values.IEMOCAP_SPEAKERS,
        splits={"train": [str(d) for d in train], "valid": [str(d) for d in valid], "test": [str(d) for d in test]},
        source=f"{path} ({describe})",
        meta={"format": describe, "layout": layout.key, "producer": layout.producer_for(dims),
              "text_layer": layer, "labels": options.labels if has_sentiments else "emotion",
              "label_set": choice.label_set.name, "label_set_source": choice.source,
              "label_set_reason": choice.reason + (f"; {sentiment_note}" if sentiment_note else ""),
              "valid_split": valid_note},
    )
    return validate_dataset(dataset, str(path))
