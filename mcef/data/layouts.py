"""The one table of the peer projects' feature-file layouts, and the detector that tells them apart.

Each :class:`Layout` lists, per item (tuple index, sample field or file), the peer's name for it, its role (what the
reader makes of it) and the type it must have. :func:`detect_layout` checks every item of every candidate of the
right container and length, so two layouts of the same length are told apart by their types, never by length
alone; a file that matches none gets an error listing each candidate and the first item that disagreed.
``mcef data formats`` and the table in data/README.md are both rendered from :data:`LAYOUTS`
(:func:`layouts_markdown`), so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from mcef.data import values
from mcef.data.errors import DataError
from mcef.data.safe_pickle import PeerRecord

FEATURE_ROLES = ("text", "audio", "visual")
# What a reader makes of an item: one name per concept, shared by every layout.
ROLES = ("ids", "speakers", "labels", "sentiments", *FEATURE_ROLES, "sentences", "train", "test", "valid",
         "sentiments_or_valid", "extra", "unused", "vid", "samples")
SPLIT_ROLES = ("train", "test", "valid")


@dataclass(frozen=True)
class Kind:
    """The type an item must have: a check of one dialogue's value, and the words for the table."""

    words: str  # for one dialogue's value, e.g. "list[str 'M'/'F']"
    check: Callable[[Any, str, str], Any] | None  # (value, path, key) -> raises DataError; None: any value


def _speakers_of(corpus: str) -> Callable[[Any, str, str], Any]:
    return lambda value, path, key: values.speakers(value, path, key, corpus)


KINDS = {
    "utterance_ids": Kind("list of utterance ids", values.utterance_ids),
    "speakers_mf": Kind("list[str 'M'/'F']", _speakers_of("iemocap")),
    "speakers_onehot": Kind("list of one-hot speaker vectors", _speakers_of("meld")),
    "labels": Kind("list[int]", values.int_labels),
    "features": Kind("(T, D) float array", values.features),
    "sentences": Kind("list[str]", values.sentences),
    "vid": Kind("dialogue id (str)", None),
}


@dataclass(frozen=True)
class Item:
    """One item of a layout: where it is, the peer's name for it, its role and its kind (a key of KINDS)."""

    key: int | str  # tuple index, or the sample field / file name
    name: str
    role: str
    kind: str | None = None  # None for split ids and the items read by their own rule
    note: str = ""  # appended to the type in the layout table

    def words(self, container: str) -> str:
        """The item's type in words, for the layout table."""
        return f"{self._words(container)}{f' ({self.note})' if self.note else ''}"

    def _words(self, container: str) -> str:
        if self.role in SPLIT_ROLES:
            return "list or set of dialogue ids"
        if self.role == "sentiments_or_valid":
            return "dict id->list[int] (sentiments), or list of dialogue ids (validation), or None"
        if self.role == "extra":
            return "anything (a list of dialogue ids of the file is taken as validation ids, else ignored)"
        if self.role == "samples":
            return "a peer tuple layout above (speakers, labels, splits; its features are not used)"
        value = KINDS[self.kind].words
        return value if container == "samples" else f"dict id->{value}"


@dataclass(frozen=True)
class Layout:
    """One peer file layout: corpus, container, usual file name, producing projects and items."""

    key: str
    corpus: str  # "iemocap", "meld", or "any" (the folder: the corpus of its Speakers.pkl)
    container: str  # "sequence" (tuple or list), "samples" (dict train/dev/test -> samples), "folder"
    file: str
    producers: str
    items: tuple[Item, ...]
    sample_type: str = ""  # "samples" layouts: the class (or "dict") of each sample
    variants: tuple[tuple[tuple[int, ...], str], ...] = ()  # (text, audio, visual dims) -> which producer, for info

    @property
    def description(self) -> str:
        """The layout in words, for messages and ``dataset.meta["format"]``."""
        shape = {"sequence": f"{len(self.items)}-tuple", "samples": f"dict of {self.sample_type} samples",
                 "folder": "folder"}[self.container]
        return f"{self.producers} {self.file} ({shape})"

    def role_items(self, role: str) -> list[Item]:
        """The items of ``role``, in file order."""
        return [item for item in self.items if item.role == role]

    @property
    def text_layers(self) -> list[str]:
        """The names of the text items (the layers ``data.text_layer`` chooses from)."""
        return [item.name for item in self.role_items("text")]

    @property
    def has_sentiments(self) -> bool:
        """Whether files of this layout may carry sentiment labels."""
        return bool(self.role_items("sentiments") or self.role_items("sentiments_or_valid"))

    def producer_for(self, dims: dict[str, int]) -> str:
        """The producing project(s) of a file of this layout with modality ``dims`` (the variants tell them apart)."""
        def fits(shape: tuple[int, ...]) -> bool:
            return all(dims.get(m) in (None, d) for m, d in zip(FEATURE_ROLES, shape)) and bool(dims)

        return next((who for shape, who in self.variants if fits(shape)), self.producers)


def _sequence(key, corpus, file, producers, names_roles, variants=()) -> Layout:
    """A tuple/list layout from (name, role, kind) triples in index order."""
    items = tuple(Item(i, name, role, kind) for i, (name, role, kind) in enumerate(names_roles))
    return Layout(key, corpus, "sequence", file, producers, items, variants=variants)


def _sdt_items(speakers: str) -> list[tuple[str, str, str | None]]:
    return [("videoIDs", "ids", "utterance_ids"), ("videoSpeakers", "speakers", speakers),
            ("videoLabels", "labels", "labels"), ("videoText", "text", "features"), ("roberta2", "text", "features"),
            ("roberta3", "text", "features"), ("roberta4", "text", "features"), ("videoAudio", "audio", "features"),
            ("videoVisual", "visual", "features"), ("videoSentence", "sentences", "sentences"),
            ("trainVid", "train", None), ("testVid", "test", None)]


def _roberta(corpus_labels: list[tuple[str, str, str | None]], speakers: str) -> list[tuple[str, str, str | None]]:
    return [("speakers", "speakers", speakers), *corpus_labels,
            *((f"roberta{i}", "text", "features") for i in range(1, 5)), ("sentences", "sentences", "sentences"),
            ("trainIds", "train", None), ("testIds", "test", None), ("validIds", "valid", None)]


_MMGCN_IEMOCAP_VARIANTS = (((100, 1582, 342), "MMGCN / MM-DFN / M3Net (text 100, audio 1582, visual 342)"),
                           ((100, 100, 512), "DialogueGCN / bc-LSTM / COGMEN / CORECT (text 100, audio 100, "
                                             "visual 512)"))
_COGMEN_FIELDS = (Item("vid", "vid", "vid", "vid"), Item("speaker", "speaker", "speakers", "speakers_mf"),
                  Item("label", "label", "labels", "labels"),
                  Item("text", "text", "unused", "features", "MMGCN's 100-d videoText; not read: COGMEN trains on "
                                                              "sbert_sentence_embeddings"),
                  Item("audio", "audio", "audio", "features"), Item("visual", "visual", "visual", "features"),
                  Item("sentence", "sentence", "sentences", "sentences"),
                  Item("sbert_sentence_embeddings", "sbert", "text", "features"))

LAYOUTS: tuple[Layout, ...] = (
    _sequence("sdt-iemocap-12", "iemocap", "iemocap_multimodal_features.pkl", "SDT / MCEF / CFN-ESA / GraphSmile",
              _sdt_items("speakers_mf")),
    _sequence("sdt-meld-13", "meld", "meld_multimodal_features.pkl", "SDT / MCEF",
              [*_sdt_items("speakers_onehot"), ("13th item", "sentiments_or_valid", None)]),
    _sequence("cfnesa-meld-14", "meld", "meld_multimodal_features.pkl", "CFN-ESA / GraphSmile",
              [("videoIDs", "ids", "utterance_ids"), ("videoSpeakers", "speakers", "speakers_onehot"),
               ("videoLabels", "labels", "labels"), ("videoSentiments", "sentiments", "labels"),
               *_sdt_items("speakers_onehot")[3:], ("14th item", "extra", None)]),
    _sequence("mmgcn-meld-10", "meld", "MELD_features_raw1.pkl", "MMGCN / MM-DFN / M3Net / MultiEMO",
              [("videoIDs", "ids", "utterance_ids"), ("videoSpeakers", "speakers", "speakers_onehot"),
               ("videoLabels", "labels", "labels"), ("videoText", "text", "features"),
               ("videoAudio", "audio", "features"), ("videoVisual", "visual", "features"),
               ("videoSentence", "sentences", "sentences"), ("trainVid", "train", None), ("testVid", "test", None),
               ("videoSentiments", "sentiments", "labels")]),
    _sequence("bclstm-meld-9", "meld", "MELD_features_raw.pkl", "conv-emotion bc-LSTM / DialogueGCN",
              [("videoIDs", "ids", "utterance_ids"), ("videoSpeakers", "speakers", "speakers_onehot"),
               ("videoLabels", "labels", "labels"), ("videoText", "text", "features"),
               ("videoAudio", "audio", "features"), ("videoSentence", "sentences", "sentences"),
               ("trainVid", "train", None), ("testVid", "test", None), ("videoSentiments", "sentiments", "labels")]),
    _sequence("mmgcn-iemocap-9", "iemocap", "IEMOCAP_features.pkl (IEMOCAP_features_4.pkl)",
              "MMGCN / MM-DFN / M3Net / DialogueGCN / bc-LSTM / COGMEN / CORECT / GraphSmile / MultiEMO",
              [("videoIDs", "ids", "utterance_ids"), ("videoSpeakers", "speakers", "speakers_mf"),
               ("videoLabels", "labels", "labels"), ("videoText", "text", "features"),
               ("videoAudio", "audio", "features"), ("videoVisual", "visual", "features"),
               ("videoSentence", "sentences", "sentences"), ("trainVid", "train", None), ("testVid", "test", None)],
              variants=_MMGCN_IEMOCAP_VARIANTS),
    _sequence("cosmic-iemocap-roberta-10", "iemocap", "iemocap_features_roberta.pkl", "COSMIC / M3Net (text)",
              _roberta([("labels", "labels", "labels")], "speakers_mf")),
    _sequence("cosmic-meld-roberta-11", "meld", "meld_features_roberta.pkl", "COSMIC / M3Net (text)",
              _roberta([("emotion_labels", "labels", "labels"), ("sentiment_labels", "sentiments", "labels")],
                       "speakers_onehot")),
    _sequence("cosmic-iemocap-text-6", "iemocap", "iemocap_text.pkl (iemocap.pkl)", "COSMIC feature-extraction input",
              [("speakers", "speakers", "speakers_mf"), ("labels", "labels", "labels"),
               ("sentences", "sentences", "sentences"), ("train_ids", "train", None), ("test_ids", "test", None),
               ("valid_ids", "valid", None)]),
    _sequence("cosmic-meld-text-7", "meld", "meld_text.pkl (meld.pkl)", "COSMIC feature-extraction input",
              [("speakers", "speakers", "speakers_onehot"), ("emotion_labels", "labels", "labels"),
               ("sentiment_labels", "sentiments", "labels"), ("sentences", "sentences", "sentences"),
               ("train_ids", "train", None), ("test_ids", "test", None), ("valid_ids", "valid", None)]),
    Layout("cogmen-iemocap", "iemocap", "samples", "data_iemocap.pkl (data_iemocap_4.pkl)", "COGMEN", _COGMEN_FIELDS,
           sample_type="cogmen.Sample.Sample"),
    Layout("corect-iemocap", "iemocap", "samples", "data_iemocap.pkl (data_iemocap_4.pkl)", "CORECT",
           (Item("vid", "vid", "vid", "vid"), Item("speakers", "speakers", "speakers", "speakers_mf"),
            Item("labels", "labels", "labels", "labels"), Item("audio", "audio", "audio", "features"),
            Item("visual", "visual", "visual", "features"), Item("text", "sbert", "text", "features"),
            Item("sentence", "sentence", "sentences", "sentences")),
           sample_type="dict"),
    Layout("multiemo-folder", "any", "folder", "TextFeatures.pkl + AudioFeatures.pkl + VisualFeatures.pkl + "
           "Speakers.pkl", "MultiEMO",
           (Item("Speakers.pkl", "Speakers.pkl", "samples"), Item("TextFeatures.pkl", "TextFeatures", "text", "features"),
            Item("AudioFeatures.pkl", "AudioFeatures", "audio", "features"),
            Item("VisualFeatures.pkl", "VisualFeatures", "visual", "features"))),
)
LAYOUT_BY_KEY = {layout.key: layout for layout in LAYOUTS}
MULTIEMO_FILES = tuple(str(item.key) for item in LAYOUT_BY_KEY["multiemo-folder"].items)
SAMPLE_SPLITS = ("train", "dev", "test")  # COGMEN/CORECT: dev is the validation split


# --- detection ----------------------------------------------------------------------------------------------------

def check_item(item: Item, value, path, layout: Layout) -> None:
    """Raise the DataError of ``value`` (the item of a sequence layout) when it is not of the item's type.

    Tables are checked on their first dialogue (the assembly checks every one with the same checks and messages).
    """
    if item.role in SPLIT_ROLES:
        values.id_list(value, path, item.name)
    elif item.role == "sentiments_or_valid":
        if isinstance(value, dict):
            _check_first(item.name, value, KINDS["labels"], path)
        elif value is not None:
            values.id_list(value, path, item.name)
    elif item.kind is not None:
        what = "features" if item.role in FEATURE_ROLES else item.role
        _check_first(item.name, values.table(value, path, item.name, what), KINDS[item.kind], path)


def _check_first(name: str, table: dict, kind: Kind, path) -> None:
    for did, value in table.items():
        if kind.check is not None:
            kind.check(value, path, f"{name}[{did!r}]")
        return


def _sample_fields(sample) -> dict | None:
    if isinstance(sample, PeerRecord):
        return getattr(sample, "fields", {})
    return sample if isinstance(sample, dict) else None


def _sample_type(sample) -> str:
    return type(sample).peer_class if isinstance(sample, PeerRecord) else type(sample).__name__


def check_samples(layout: Layout, obj: dict, path) -> None:
    """Raise the DataError of ``obj`` when it is not a ``{train, dev, test}`` dict of ``layout``'s samples."""
    keys = sorted(map(str, obj))
    if keys != sorted(SAMPLE_SPLITS):
        raise DataError(f"{path}: the pickle is a dict with keys {keys}; expected {list(SAMPLE_SPLITS)} (lists of "
                        "samples, dev = validation)")
    for split in SAMPLE_SPLITS:
        if not isinstance(obj[split], list):
            raise DataError(f"{path}: {split!r} is a {type(obj[split]).__name__}; expected a list of samples")
    first = next((s for split in SAMPLE_SPLITS for s in obj[split]), None)
    if first is None:
        raise DataError(f"{path}: the train, dev and test lists are all empty; expected samples")
    if _sample_type(first) != layout.sample_type:
        raise DataError(f"{path}: the samples are {_sample_type(first)} objects; expected {layout.sample_type}")
    check_sample(layout, first, path, "train/dev/test sample 0")


def check_sample(layout: Layout, sample, path, where: str) -> dict:
    """The fields of one sample, every field of ``layout`` present and of its type; else a DataError."""
    fields = _sample_fields(sample)
    if fields is None or _sample_type(sample) != layout.sample_type:
        raise DataError(f"{path}: {where} is a {_sample_type(sample)}; expected a {layout.sample_type} sample")
    for item in layout.items:
        if item.key not in fields:
            raise DataError(f"{path}: {where} has no field {item.key!r} (it has {sorted(fields)}); expected "
                            f"{[i.key for i in layout.items]}")
        kind = KINDS[item.kind]
        if kind.check is not None:
            kind.check(fields[item.key], path, f"{where} field {item.key!r}")
    return fields


def first_disagreement(layout: Layout, obj, path) -> tuple[int | str, str] | None:
    """(item key, message) of the first item of ``obj`` that does not fit ``layout``; None when all fit."""
    if layout.container == "samples":
        if not isinstance(obj, dict):
            return "container", f"the pickle holds a {type(obj).__name__}; expected a dict of train/dev/test samples"
        if sorted(map(str, obj)) != sorted(SAMPLE_SPLITS):
            return "container", (f"the pickle is a dict with keys {sorted(map(str, obj))[:5]}; expected "
                                 f"{list(SAMPLE_SPLITS)} (lists of samples, dev = validation)")
        try:
            check_samples(layout, obj, path)
        except DataError as err:
            return "samples", _without_path(err, path)
        return None
    if not isinstance(obj, (tuple, list)):
        return "container", f"the pickle holds a {type(obj).__name__}; expected a tuple or list"
    if len(obj) != len(layout.items):
        return "length", f"{len(obj)} items; expected {len(layout.items)}"
    for item in layout.items:
        try:
            check_item(item, obj[item.key], path, layout)
        except DataError as err:
            return item.key, _without_path(err, path)
    return None


def _without_path(err: DataError, path) -> str:
    text = str(err)
    return text[len(f"{path}: "):] if text.startswith(f"{path}: ") else text


def detect_layout(obj, path: Path | str) -> Layout:
    """The one layout of :data:`LAYOUTS` that ``obj`` (an unpickled file) matches at every item; else a DataError.

    The error leads with the disagreement of the closest candidate (same container and length, furthest item) and
    lists every candidate layout with its first disagreeing item.
    """
    pickled = [layout for layout in LAYOUTS if layout.container != "folder"]
    found = {layout.key: first_disagreement(layout, obj, path) for layout in pickled}
    matches = [layout for layout in pickled if found[layout.key] is None]
    if len(matches) == 1:
        return matches[0]
    if matches:  # the table is built so that this cannot happen; say so rather than guess
        raise DataError(f"{path}: the file matches several layouts ({', '.join(m.key for m in matches)}); expected "
                        "exactly one (please report this file's layout)")
    raise DataError(_no_layout_message(obj, path, pickled, found))


def _no_layout_message(obj, path, pickled: list[Layout], found: dict) -> str:
    """Lead with the closest candidate's problem, then every candidate and where it disagreed."""
    kind = f"a {type(obj).__name__}" + (f" of {len(obj)} items" if isinstance(obj, (tuple, list)) else "")
    near = [layout for layout in pickled if found[layout.key][0] not in ("container", "length")]
    far = [layout for layout in pickled if layout not in near]
    parts = [f"{layout.key} ({layout.file}) {_at(found[layout.key][0])}{found[layout.key][1]}" for layout in near]
    by_length = [f"{layout.key} {len(layout.items)}" for layout in far if found[layout.key][0] == "length"]
    by_container = [layout.key for layout in far if found[layout.key][0] == "container"]
    if by_length:
        parts.append(f"by length (items expected): {', '.join(by_length)}")
    for reason in dict.fromkeys(found[key][1] for key in by_container):
        keys = [key for key in by_container if found[key][1] == reason]
        parts.append(f"by container: {', '.join(keys)} ({reason})")
    if near:
        best = max(near, key=lambda layout: _order(found[layout.key][0]))
        lead = f"{found[best.key][1]} (closest layout: {best.key}, {best.description}); the pickle is {kind}"
    else:
        lead = f"the pickle is {kind}"
    return (f"{path}: {lead} and matches no known layout. Candidates and the first item that disagreed: "
            f"{'; '.join(parts)}. `mcef data formats` lists the layouts (also in data/README.md)")


def _at(key) -> str:
    return f"disagrees at index {key}: " if isinstance(key, int) else "disagrees: "


def _order(key) -> int:
    """How far a candidate got: the index of its first disagreeing item (sample layouts: past the container)."""
    return key if isinstance(key, int) else 1


# --- the table ----------------------------------------------------------------------------------------------------

def _item_words(layout: Layout, item: Item) -> str:
    where = f"{item.key} {item.name}" if isinstance(item.key, int) else str(item.key)
    if item.role == "text" and item.name != item.key and not isinstance(item.key, int):
        where += f" (text layer {item.name})"
    return f"{where}: {item.words(layout.container)}"


def layout_rows() -> list[tuple[str, str, str, str, str]]:
    """(layout, usual file, items, producers, corpus) per layout, items as 'index name: type' joined by '; '."""
    rows = []
    for layout in LAYOUTS:
        items = "; ".join(_item_words(layout, item) for item in layout.items)
        if layout.container == "samples":
            items = f"dict train/dev/test (dev = validation) -> list of {layout.sample_type} samples with {items}"
        corpus = "IEMOCAP or MELD" if layout.corpus == "any" else layout.corpus.upper()
        rows.append((layout.key, layout.file, items, layout.producers, corpus))
    return rows


def layouts_markdown() -> str:
    """The layout table and the label-set table as Markdown: data/README.md holds exactly this text."""
    from mcef.data.labels import label_set_rows

    lines = ["| layout | usual file | items (index or field, peer's name: type) | producers | corpus |",
             "| --- | --- | --- | --- | --- |"]
    lines += [f"| {' | '.join(row)} |" for row in layout_rows()]
    lines += ["", "| label set | classes (label: name) | where the order comes from |", "| --- | --- | --- |"]
    lines += [f"| {name} | {classes} | {note} |" for name, classes, note in label_set_rows()]
    return "\n".join(lines)
