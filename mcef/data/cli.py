"""`mcef data info PATH`, `mcef data convert PATH OUT`, `mcef data formats` and `mcef data synth OUT`."""

from __future__ import annotations

import argparse
import dataclasses
import re

from mcef.data.dataset import MODALITIES, SPLITS, DialogueDataset
from mcef.data.labels import LABEL_CHOICES, LABEL_SETS
from mcef.data.layouts import layouts_markdown
from mcef.data.project import save_dataset
from mcef.data.readers import TEXT_LAYERS, load_dataset
from mcef.data.synthetic import SyntheticConfig, make_synthetic

PATH_HELP = ("dataset file, peer folder or project directory (a bare name is also looked for in data/), or "
             "text=FILE,audio=FILE,visual=FILE to join modalities of different files by dialogue id")


def _reader_arguments(parser: argparse.ArgumentParser) -> None:
    """The reader's options, named as the config's data section (data.text_layer, data.labels, data.label_set)."""
    parser.add_argument("--text-layer", default="videoText", choices=TEXT_LAYERS,
                        help="text item of files with several (videoText = the file's default)")
    parser.add_argument("--labels", default="emotion", choices=LABEL_CHOICES,
                        help="MELD files with both: the 7 emotions or the 3 sentiments")
    parser.add_argument("--label-set", default=None, choices=list(LABEL_SETS),
                        help="name the label set instead of the one detected (e.g. iemocap-6 for a 6-class file "
                             "whose labels never exceed 3)")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the validation split when the file has none")


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register the ``data`` command group on the top-level sub-parsers."""
    data = sub.add_parser("data", help="inspect, convert and generate datasets")
    data_sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    info = data_sub.add_parser("info", help="summarise a dataset file or directory (any accepted layout)")
    info.add_argument("path", help=PATH_HELP)
    _reader_arguments(info)
    info.set_defaults(func=_info)

    convert = data_sub.add_parser("convert", help="convert any accepted layout to the project format")
    convert.add_argument("path", help=PATH_HELP)
    convert.add_argument("out", help="output directory (project format)")
    _reader_arguments(convert)
    convert.set_defaults(func=_convert)

    formats = data_sub.add_parser("formats", help="the table of accepted peer file layouts and label sets")
    formats.set_defaults(func=_formats)

    defaults = SyntheticConfig()
    synth = data_sub.add_parser("synth", help="write the synthetic dataset in the project format")
    synth.add_argument("out", help="output directory")
    synth.add_argument("--seed", type=int, default=defaults.seed)
    synth.add_argument("--n-train", type=int, default=defaults.n_train, help="training dialogues, validation included")
    synth.add_argument("--n-test", type=int, default=defaults.n_test)
    synth.add_argument("--dims", type=int, nargs=3, default=defaults.dims, metavar=("TEXT", "AUDIO", "VISUAL"))
    synth.add_argument("--informativeness", type=float, nargs=3, default=defaults.informativeness,
                       metavar=("TEXT", "AUDIO", "VISUAL"), help="weight of the shared emotion state per modality")
    synth.set_defaults(func=_synth)


def summarize(dataset: DialogueDataset) -> str:
    """A human-readable summary: source, layout and producer, label set and its origin, splits, class counts,
    modalities, speakers, how valid was made."""
    meta = dataset.meta
    lines = [f"name: {dataset.name}", f"source: {dataset.source}"]
    if meta.get("format"):
        lines.append(f"format: {meta['format']}")
    if meta.get("layout"):
        lines.append(f"layout: {meta['layout']} (produced by {meta.get('producer') or 'unknown'})")
    if meta.get("text_layer"):
        lines.append(f"text layer: {meta['text_layer']}")
    lines.append(_label_line(dataset))
    total_d = sum(len(ids) for ids in dataset.splits.values())
    total_u = sum(len(d) for s in dataset.splits for d in dataset.split(s))
    lines.append(f"dialogues: {total_d:,}  utterances: {total_u:,}")
    width = max(len(n) for n in dataset.label_names)
    header = f"  {'split':<6} {'dialogues':>9} {'utterances':>10}  " + " ".join(f"{n:>{width}}" for n in dataset.label_names)
    lines.append("splits and class counts:")
    lines.append(header)
    for split in SPLITS:
        if split not in dataset.splits:
            continue
        dialogues = dataset.split(split)
        counts = dataset.class_counts(split)
        lines.append(
            f"  {split:<6} {len(dialogues):>9,} {sum(len(d) for d in dialogues):>10,}  "
            + " ".join(f"{c:>{width}}" for c in counts.tolist())
        )
    dims = ", ".join(f"{m} {d}" for m, d in dataset.dims.items()) or "none (transcripts only)"
    lines.append(f"modalities: {dims}")
    has_text = any(d.sentences is not None for d in dataset.dialogues.values())
    lines.append(f"sentences: {'yes' if has_text else 'no'}")
    lines.append(f"speakers: {dataset.n_speakers} ({', '.join(dataset.speaker_names)})")
    lines.append(f"valid split: {dataset.meta.get('valid_split', 'unknown')}")
    return "\n".join(lines)


def parse_path(text: str) -> str | dict[str, str]:
    """``text`` itself, or the mapping modality -> file of ``text=A,audio=B,visual=B``."""
    pairs = text.split(",")
    if all(re.fullmatch(rf"({'|'.join(MODALITIES)})=.+", pair) for pair in pairs):
        mapping = dict(pair.split("=", 1) for pair in pairs)
        if len(mapping) == len(pairs):
            return mapping
    return text


def _load(args: argparse.Namespace) -> DialogueDataset:
    return load_dataset(parse_path(args.path), text_layer=args.text_layer, split_seed=args.split_seed,
                        labels=args.labels, label_set=args.label_set)


def _label_line(dataset: DialogueDataset) -> str:
    """The label set, its classes and where it came from (file / dataset / data.label_set)."""
    name = dataset.meta.get("label_set") or "unnamed"
    line = f"label set: {name} ({dataset.n_classes} classes: {', '.join(dataset.label_names)})"
    if dataset.meta.get("label_set_source"):
        line += f"; from the {dataset.meta['label_set_source']}: {dataset.meta.get('label_set_reason', '')}"
    return line


def _info(args: argparse.Namespace) -> int:
    print(summarize(_load(args)))
    return 0


def _convert(args: argparse.Namespace) -> int:
    print(f"wrote {save_dataset(_load(args), args.out)}")
    return 0


def _formats(args: argparse.Namespace) -> int:
    print(layouts_markdown())
    return 0


def _synth(args: argparse.Namespace) -> int:
    config = dataclasses.replace(
        SyntheticConfig(),
        seed=args.seed,
        n_train=args.n_train,
        n_test=args.n_test,
        dims=tuple(args.dims),
        informativeness=tuple(args.informativeness),
    )
    path = save_dataset(make_synthetic(config), args.out)
    print(f"wrote {path}")
    return 0
