"""`mcef data info PATH` and `mcef data synth OUT`."""

from __future__ import annotations

import argparse
import dataclasses

from mcef.data.dataset import SPLITS, DialogueDataset
from mcef.data.project import save_dataset
from mcef.data.readers import TEXT_LAYERS, load_dataset
from mcef.data.synthetic import SyntheticConfig, make_synthetic


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register the ``data`` command group on the top-level sub-parsers."""
    data = sub.add_parser("data", help="inspect, convert and generate datasets")
    data_sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    info = data_sub.add_parser("info", help="summarise a dataset file or directory (any accepted format)")
    info.add_argument("path", help="dataset file or project directory (a bare name is also looked for in data/)")
    info.add_argument("--text-layer", default="videoText", choices=TEXT_LAYERS, help="text layer of SDT/CFN-ESA files")
    info.add_argument("--split-seed", type=int, default=0, help="seed of the validation split when the file has none")
    info.set_defaults(func=_info)

    convert = data_sub.add_parser("convert", help="convert any accepted format to the project format")
    convert.add_argument("path", help="input dataset file or directory")
    convert.add_argument("out", help="output directory (project format)")
    convert.add_argument("--text-layer", default="videoText", choices=TEXT_LAYERS)
    convert.add_argument("--split-seed", type=int, default=0)
    convert.set_defaults(func=_convert)

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
    """A human-readable summary: source, splits, class counts, modalities, speakers, how valid was made."""
    lines = [f"name: {dataset.name}", f"source: {dataset.source}"]
    if dataset.meta.get("format"):
        lines.append(f"format: {dataset.meta['format']}")
    if dataset.meta.get("text_layer"):
        lines.append(f"text layer: {dataset.meta['text_layer']}")
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


def _info(args: argparse.Namespace) -> int:
    print(summarize(load_dataset(args.path, text_layer=args.text_layer, split_seed=args.split_seed)))
    return 0


def _convert(args: argparse.Namespace) -> int:
    dataset = load_dataset(args.path, text_layer=args.text_layer, split_seed=args.split_seed)
    print(f"wrote {save_dataset(dataset, args.out)}")
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
