"""Commands ``mcef train``, ``mcef evaluate``, ``mcef predict``, ``mcef sweep`` and ``mcef bench``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _add_config_args(parser: argparse.ArgumentParser, *, many: bool = False) -> None:
    if many:
        parser.add_argument("--config", action="append", required=True, metavar="YAML",
                            help="experiment config file; repeat for a grid (e.g. --config a.yaml --config b.yaml)")
    else:
        parser.add_argument("--config", metavar="YAML", help="experiment config file (default: all defaults)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override a config field, e.g. --set train.lr=1e-4 (repeatable)")


def _add_finished_run_args(parser: argparse.ArgumentParser) -> None:
    """The options shared by the commands that use a finished run (evaluate, predict)."""
    parser.add_argument("run_dir", help="run directory written by `mcef train`")
    parser.add_argument("--data", metavar="PATH", help="feature file or directory (default: the run's own data)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    parser.add_argument("--checkpoint", default="best.pt", help="best.pt (default) or last.pt")


def _data_override(args) -> list[str]:
    return [f"data.path={args.data}"] if getattr(args, "data", None) else []


def _train(args) -> int:
    """``mcef train``: exit 0 on a finished run, 1 on a diverged run (or an error), 130 on Ctrl-C (one line, naming
    the run directory that stays resumable)."""
    run_dir = None
    try:
        from mcef.config import load_config
        from mcef.train import default_run_dir, fit

        overrides = [*args.overrides, *_data_override(args)]
        if args.device:
            overrides.append(f"train.device={args.device}")
        config = load_config(args.config, overrides)
        run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(config, args.runs_root)
        summary = fit(config, run_dir=run_dir, resume=args.resume, reuse=not args.overwrite, overwrite=args.overwrite,
                      progress=False if args.quiet else None)
    except KeyboardInterrupt:
        where = (f"{run_dir} stays resumable: rerun with --resume to continue" if run_dir is not None
                 else "nothing was written")
        print(f"mcef train: interrupted; {where}", file=sys.stderr)
        return 130
    return _print_run(summary, run_dir)  # errors (a full or read-only disk included): one line, by mcef.cli.main


def _print_run(summary: dict, run_dir) -> int:
    if summary.get("diverged"):
        print(f"mcef train: run {summary['name']} in {run_dir} {summary['diverged']['message']}", file=sys.stderr)
        return 1
    test, oracle = summary["test"], summary["oracle_best_test"]
    print(f"run {summary['name']} in {run_dir}: selected epoch {summary['selected_epoch']} (validation weighted-F1 "
          f"{summary['valid']['weighted_f1']:.4f}); test accuracy {test['accuracy']:.4f}, weighted-F1 "
          f"{test['weighted_f1']:.4f}, macro-F1 {test['macro_f1']:.4f}")
    if oracle:
        print(f"  oracle_best_test (test-selected, literature comparison only): accuracy {oracle['accuracy']:.4f}, "
              f"weighted-F1 {oracle['weighted_f1']:.4f}")
    print(f"  {summary['parameters']:,} parameters, {summary['device']}, {summary['wall_time_s']:.1f} s; "
          f"data: {summary['data']['description']}")
    return 0


def _evaluate(args) -> int:
    from mcef.evaluate import evaluate

    result = evaluate(args.run_dir, args.data, split=args.split, device=args.device, checkpoint=args.checkpoint)
    print(json.dumps(result, indent=2))
    return 0


def _predict(args) -> int:
    from mcef.evaluate import predict

    rows = predict(args.run_dir, args.data, args.out, device=args.device, checkpoint=args.checkpoint)
    print(f"wrote {len(rows)} utterance predictions to {args.out}")
    return 0


def _sweep(args) -> int:
    from mcef.experiments import format_table, sweep

    table = sweep(args.config, args.seeds, args.root, overrides=tuple([*args.overrides, *_data_override(args)]),
                  progress=False if args.quiet else None)
    print(format_table(table))
    return 0


def _bench(args) -> int:
    from mcef.bench import bench, format_bench
    from mcef.config import load_config

    config = load_config(args.config, args.overrides)
    dims = dict(zip(("text", "audio", "visual"), args.dims)) if args.dims else None
    result = bench(config, device=args.device, epochs=args.epochs, warmup=args.warmup, baseline=args.baseline,
                   json_path=args.json, n_dialogues=args.dialogues, dims=dims)
    print(format_bench(result))
    return 0


def _runs_list(args) -> int:
    from mcef.runs import runs_table

    print(runs_table(args.root))
    return 0


def add_commands(sub) -> None:
    """Register the training commands on the ``mcef`` sub-parser collection ``sub``."""
    p = sub.add_parser("train", help="train one run and write its run directory",
                       description="Train one run (selection on validation) and write RUNS_ROOT/<name>-<digest>/ "
                                   "(digest: the first 8 hex digits of the config's digest, so that configs that "
                                   "differ never share a directory): run.json, config.yaml, metrics.jsonl, "
                                   "summary.json, best.pt, last.pt. A finished run of the same digest is reused; "
                                   "a finished or partial run is never replaced without --resume or --overwrite; "
                                   "a second training into a directory in use fails, naming the holder. Exit "
                                   "status: 0 finished, 1 error or diverged (non-finite loss), 130 interrupted.")
    _add_config_args(p)
    p.add_argument("--data", metavar="PATH", help="feature file or directory (default: discovered data, else "
                                                  "the synthetic default); same as --set data.path=PATH")
    p.add_argument("--device", help="auto | cpu | cuda | mps (default: the config's train.device)")
    p.add_argument("--runs-root", default="runs", help="parent of the run directory (default: runs)")
    p.add_argument("--run-dir", help="run directory (default: RUNS_ROOT/<config name>-<config digest[:8]>)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from its last good checkpoint (last.pt, else best.pt)")
    p.add_argument("--overwrite", action="store_true",
                   help="train from scratch, replacing what the run directory holds (any finished or partial run, "
                        "including one of the same digest, which is otherwise reused); without it nothing is deleted")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)

    p = sub.add_parser("evaluate", help="evaluate a finished run on a split",
                       description="Print loss terms, accuracy, weighted/macro-F1, per-class F1 and the confusion "
                                   "matrix of a run's best.pt on a split of a dataset, as JSON.")
    _add_finished_run_args(p)
    p.add_argument("--split", default="test", help="train | valid | test (default: test)")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("predict", help="predict every utterance of a feature file",
                       description="Write one row per utterance (dialogue id, utterance index, speaker, split, "
                                   "true label, predicted label, probability per class) as CSV or JSON.")
    _add_finished_run_args(p)
    p.add_argument("--out", required=True, help="output file, .csv or .json")
    p.set_defaults(func=_predict)

    p = sub.add_parser("sweep", help="train a grid of configs x seeds and aggregate",
                       description="Train every config with every seed under ROOT/<name>/seed<k>/ (a finished run "
                                   "of the same digest is reused, a run of another digest set aside and retrained) and print mean ± std over seeds per config.")
    _add_config_args(p, many=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (default: 0)")
    p.add_argument("--root", default="runs/sweep", help="root of the runs (default: runs/sweep)")
    p.add_argument("--data", metavar="PATH", help="feature file or directory for every run")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_sweep)

    p = sub.add_parser("bench", help="time training and evaluation on IEMOCAP-shaped data",
                       description="Train-epoch seconds (median after warm-up), evaluation utterances/s, peak memory "
                                   "and parameter count on 120 random dialogues with IEMOCAP's lengths and dims.")
    _add_config_args(p)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | mps (default: auto)")
    p.add_argument("--epochs", type=int, default=3, help="timed epochs (default: 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up epochs (default: 1)")
    p.add_argument("--baseline", choices=["reference"], help="also time the reference's computation side by side")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    p.add_argument("--dialogues", type=int, help="keep the first N of IEMOCAP's 120 dialogue lengths (a quick check)")
    p.add_argument("--dims", type=int, nargs=3, metavar=("TEXT", "AUDIO", "VISUAL"),
                   help="feature dims instead of IEMOCAP's 1024 1582 342 (a quick check)")
    p.set_defaults(func=_bench)

    runs = sub.add_parser("runs", help="the run store: list runs",
                          description="Runs are directories identified by a digest of their defining config, the "
                                      "fingerprint of their data and the package version (mcef.runs).")
    runs_sub = runs.add_subparsers(dest="runs_command", metavar="SUBCOMMAND", required=True)
    p = runs_sub.add_parser("list", help="name, digest, data, status and selected metric of every run under ROOT")
    p.add_argument("root", help="a run root, e.g. runs or book/results/real_text")
    p.set_defaults(func=_runs_list)
