"""Real results on real transcripts: MCEF text-only and a context-free baseline on IEMOCAP and MELD.

The grid is one config per corpus (``configs/real/<corpus>_text.yaml``) times five seeds, trained by
:func:`mcef.experiments.sweep` on the text features of :mod:`mcef.features.text` (all-MiniLM-L6-v2 by default),
standardised with training statistics (see :func:`standardise`); IEMOCAP uses all-mpnet-base-v2, chosen on
validation. Runs land in ``<root>/<config name>/seed<seed>/``;
the logistic-regression baseline of :mod:`mcef.features.baselines` (deterministic) lands in
``<root>/baseline_<corpus>.json``. ``python -m mcef.real_results --data ../shared/data --root book/results/real_text``
reproduces everything; the book chapter reads those artifacts and never needs the features themselves.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from mcef.config import ExperimentConfig, load_config
from mcef.data.dataset import DialogueDataset
from mcef.train import read_metrics
from mcef.experiments import aggregate, collect, mean_std, sweep

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {corpus: PROJECT_ROOT / "configs" / "real" / f"{corpus}_text.yaml" for corpus in ("iemocap", "meld")}
SEEDS = (0, 1, 2, 3, 4)
ENCODERS = {"iemocap": "all-mpnet-base-v2", "meld": "all-MiniLM-L6-v2"}  # per corpus; IEMOCAP: chosen on validation
REPRODUCE = "python -m mcef.real_results --data ../shared/data --root book/results/real_text"
HEADLINE = ("accuracy", "weighted_f1", "macro_f1")

# Published text-only figures (percent), each with the protocol it was measured under. Literature constants: they are
# quoted, never computed. "test-selected": the paper reports the best test epoch (no held-out validation selection).
ANCHORS = (
    {"corpus": "iemocap", "model": "SACL-LSTM", "accuracy": 69.08, "weighted_f1": 69.22,
     "protocol": "test-selected, RoBERTa-large features (fine-tuned, COSMIC), mean of 5 seeds",
     "citation": "Hu et al., Supervised Adversarial Contrastive Learning for ERC, ACL 2023"},
    {"corpus": "iemocap", "model": "DialogueCRN", "accuracy": 66.05, "weighted_f1": 66.20,
     "protocol": "test-selected, GloVe TextCNN features (DialogueRNN's), as published",
     "citation": "Hu et al., DialogueCRN: Contextual Reasoning Networks for ERC, ACL 2021"},
    {"corpus": "meld", "model": "SACL-LSTM", "accuracy": None, "weighted_f1": 66.45,
     "protocol": "test-selected, RoBERTa-large features (fine-tuned, COSMIC), mean of 5 seeds",
     "citation": "Hu et al., Supervised Adversarial Contrastive Learning for ERC, ACL 2023"},
    {"corpus": "meld", "model": "DialogueCRN", "accuracy": 60.73, "weighted_f1": 58.39,
     "protocol": "test-selected, GloVe TextCNN features (DialogueRNN's), as published",
     "citation": "Hu et al., DialogueCRN: Contextual Reasoning Networks for ERC, ACL 2021"},
)


# ----------------------------------------------------------------------------------------------- data


def standardise(dataset: DialogueDataset, modality: str = "text") -> DialogueDataset:
    """A copy of ``dataset`` whose ``modality`` vectors are z-scored per dimension with training-split statistics.

    Why: sentence encoders emit unit-norm vectors (entries ~0.05), so after MCEF's bias-free input projection the text
    signal is ~30x smaller than the speaker embedding and the sinusoidal positions added to it, and training crawls.
    """
    train = np.concatenate([d.features[modality] for d in dataset.split("train")])  # (N_train, D)
    mean, std = train.mean(axis=0), train.std(axis=0) + 1e-6
    dialogues = {key: replace(d, features={**d.features, modality: ((d.features[modality] - mean) / std).astype(np.float32)})
                 for key, d in dataset.dialogues.items()}
    return replace(dataset, dialogues=dialogues, source=f"{dataset.source}; {modality} standardised with train statistics")


def real_dataset(corpus: str, data_dir: str | Path, encoder: str = "all-MiniLM-L6-v2",
                 cache_dir: str | Path = PROJECT_ROOT / "data" / "cache") -> DialogueDataset:
    """The text features of ``<data_dir>/<corpus>_text.pkl`` (extracted once, then cached), standardised."""
    from mcef.features.text import TextFeatureConfig, cached_text_features

    source = Path(data_dir) / f"{corpus}_text.pkl"
    if not source.is_file():
        raise FileNotFoundError(f"real {corpus.upper()} transcripts {source} do not exist; expected the file "
                                f"{source.name} in the data directory (e.g. ../shared/data)")
    dataset, cached_at, hit = cached_text_features(source, TextFeatureConfig(encoder=encoder), cache_dir=cache_dir)
    dataset = replace(dataset, source=f"{source} -> {encoder} text features ({'cache' if hit else 'extracted'}: "
                                      f"{Path(cached_at).name})")
    return standardise(dataset)


def real_config(corpus: str, **changes) -> ExperimentConfig:
    """The committed config of ``corpus`` (``configs/real/<corpus>_text.yaml``), with dotted-key ``changes``."""
    return load_config(CONFIGS[corpus], [f"{k}={json.dumps(v)}" for k, v in changes.items()])


# ----------------------------------------------------------------------------------------------- running


def run_baseline(dataset: DialogueDataset) -> dict:
    """The logistic-regression baseline (valid-selected, deterministic) as a JSON-ready dict, with its time."""
    from mcef.features.baselines import logistic_baseline

    started = time.perf_counter()
    result = logistic_baseline(dataset)
    return {**asdict(result), "wall_time_s": time.perf_counter() - started, "data": dataset.source}


def run_all(data_dir: str | Path, root: str | Path, *, seeds=SEEDS, corpora=("iemocap", "meld"),
            encoders: dict = ENCODERS, configs: dict | None = None, max_dialogues: int | None = None,
            log=print) -> dict:
    """Train the 5-seed grid and the baseline of every corpus into ``root``; finished runs are kept. Returns timings.

    ``configs`` replaces the committed config of a corpus; ``max_dialogues`` keeps that many dialogues per split (a
    smoke check of the pipeline, not a result)."""
    from mcef.io import write_json_atomic

    root = Path(root)
    timings = {}
    for corpus in corpora:
        dataset = real_dataset(corpus, data_dir, encoders.get(corpus, "all-MiniLM-L6-v2"))
        if max_dialogues is not None:
            dataset = replace(dataset, splits={k: ids[:max_dialogues] for k, ids in dataset.splits.items()})
        config = (configs or {}).get(corpus) or real_config(corpus)
        if not baseline_path(root, corpus).is_file():
            write_json_atomic(baseline_path(root, corpus), run_baseline(dataset))
        started = time.perf_counter()
        sweep([config], seeds, root, dataset=dataset, progress=False)
        timings[corpus] = time.perf_counter() - started
        for checkpoint in (root / config.name).glob("seed*/*.pt"):
            checkpoint.unlink()  # the artifacts are the figures; checkpoints stay out of git
        log(f"[real] {corpus}: {len(list(seeds))} seeds in {timings[corpus]:.0f} s")
    return timings



# ----------------------------------------------------------------------------------------------- reading the artifacts


def config_name(corpus: str) -> str:
    """The run name of ``corpus``'s committed config (its runs live in ``<root>/<name>/seed<seed>/``)."""
    return load_config(CONFIGS[corpus]).name


def read_runs(root: str | Path, corpus: str, seeds=SEEDS) -> dict[int, dict]:
    """seed -> summary.json of each finished run of ``corpus`` under ``root`` (missing seeds are absent)."""
    base = Path(root) / config_name(corpus)
    return {seed: json.loads((base / f"seed{seed}" / "summary.json").read_text(encoding="utf-8"))
            for seed in seeds if (base / f"seed{seed}" / "summary.json").is_file()}


def baseline_path(root: str | Path, corpus: str) -> Path:
    """Where the logistic baseline of ``corpus`` is recorded."""
    return Path(root) / f"baseline_{corpus}.json"


def read_baselines(root: str | Path) -> dict:
    """corpus -> logistic baseline record of ``<root>/baseline_<corpus>.json`` (corpora without one are absent)."""
    return {corpus: json.loads(baseline_path(root, corpus).read_text(encoding="utf-8"))
            for corpus in CONFIGS if baseline_path(root, corpus).is_file()}


def artifact_problems(root: str | Path, corpus: str, seeds=SEEDS) -> list[str]:
    """What is missing or inconsistent in ``corpus``'s artifacts under ``root`` (empty list: complete)."""
    base = Path(root) / config_name(corpus)
    problems = []
    runs = read_runs(root, corpus, seeds)
    for seed in seeds:
        run_dir = base / f"seed{seed}"
        if seed not in runs:
            problems.append(f"{run_dir}/summary.json is missing")
            continue
        if not (run_dir / "config.yaml").is_file() or not (run_dir / "metrics.jsonl").is_file():
            problems.append(f"{run_dir}: config.yaml or metrics.jsonl is missing")
            continue
        history = read_metrics(run_dir)
        best = max(history, key=lambda h: h["valid_weighted_f1"])  # first epoch among ties, as fit selects
        if runs[seed]["selected_epoch"] != best["epoch"] or runs[seed]["test"]["epoch"] != best["epoch"]:
            problems.append(f"{run_dir}: selected epoch {runs[seed]['selected_epoch']} is not the best validation "
                            f"weighted-F1 epoch {best['epoch']} of metrics.jsonl")
    if corpus not in read_baselines(root):
        problems.append(f"{baseline_path(root, corpus)} is missing")
    return problems


def _stats(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample std (None for one value), as :func:`mcef.experiments.aggregate` reports them."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def result_rows(root: str | Path, corpus: str, seeds=SEEDS) -> list[dict]:
    """The comparison of ``corpus`` as numbers (fractions): ours (validation-selected), ours with the test-selected
    oracle, the logistic baseline, then the published anchors. Each row: model, protocol, n, and per metric of
    HEADLINE its mean and std (None where not defined)."""
    runs = list(read_runs(root, corpus, seeds).values())
    encoder = ENCODERS[corpus]
    rows = []
    for model, key, protocol in (
        ("MCEF text-only (ours)", "test", f"validation-selected epoch, {encoder} features"),
        ("MCEF text-only (ours), oracle", "oracle_best_test",
         "test-selected: each metric at its best test epoch (the literature's protocol), same runs"),
    ):
        if not runs:
            continue
        row = {"model": model, "protocol": protocol, "n": len(runs)}
        for metric in HEADLINE:
            row[metric], row[f"{metric}_std"] = _stats([r[key][metric] for r in runs])
        rows.append(row)
    baseline = read_baselines(root).get(corpus)
    if baseline is not None:
        chosen = ", ".join(f"{k}={v}" for k, v in baseline["chosen"].items())
        rows.append({"model": "logistic regression (ours, context-free)", "n": 1,
                     "protocol": f"validation-selected ({chosen}), {encoder} features, deterministic",
                     **{m: baseline["test"][m] for m in HEADLINE}, **{f"{m}_std": None for m in HEADLINE}})
    for anchor in ANCHORS:
        if anchor["corpus"] == corpus:
            rows.append({"model": f"{anchor['model']} (published)", "protocol": anchor["protocol"], "n": None,
                         **{m: None if anchor.get(m) is None else anchor[m] / 100 for m in HEADLINE},
                         **{f"{m}_std": None for m in HEADLINE}})
    return rows


def results_table(rows: list[dict]):
    """``result_rows`` formatted for the book: percent, ``mean ± std``, "-" where a paper gives no figure."""
    import pandas as pd

    def cell(row: dict, metric: str) -> str:
        return "-" if row[metric] is None else mean_std(row[metric], row[f"{metric}_std"])

    return pd.DataFrame([{"model": r["model"], "accuracy": cell(r, "accuracy"), "weighted-F1": cell(r, "weighted_f1"),
                          "macro-F1": cell(r, "macro_f1"), "runs": "-" if r["n"] is None else str(r["n"]),
                          "protocol": r["protocol"]} for r in rows])


def per_class_rows(root: str | Path, corpus: str, seeds=SEEDS):
    """Per class: test support, MCEF's F1 mean and std over seeds, the logistic baseline's F1 (fractions)."""
    import pandas as pd

    runs = list(read_runs(root, corpus, seeds).values())
    if not runs:
        raise ValueError(f"no finished run of {corpus!r} under {root}")
    names = runs[0]["data"]["label_names"]
    baseline = read_baselines(root).get(corpus)
    table = []
    for i, name in enumerate(names):
        mean, std = _stats([r["test"]["per_class_f1"][name] for r in runs])
        table.append({"class": name, "support": int(np.asarray(runs[0]["test"]["confusion_matrix"])[i].sum()),
                      "mcef_f1": mean, "mcef_f1_std": std,
                      "logistic_f1": None if baseline is None else baseline["test"]["per_class_f1"][name]})
    return pd.DataFrame(table)


def seed_table(root: str | Path, corpus: str, seeds=SEEDS):
    """One row per seed: selected epoch, epochs run, valid and test weighted-F1, oracle test weighted-F1, seconds."""
    import pandas as pd

    return pd.DataFrame([{"seed": seed, "selected epoch": s["selected_epoch"], "epochs run": s["epochs_run"],
                          "valid w-F1": s["valid"]["weighted_f1"], "test acc": s["test"]["accuracy"],
                          "test w-F1": s["test"]["weighted_f1"], "test macro-F1": s["test"]["macro_f1"],
                          "oracle test w-F1": s["oracle_best_test"]["weighted_f1"] if s.get("oracle_best_test") else None,
                          "seconds": s["wall_time_s"]}
                         for seed, s in read_runs(root, corpus, seeds).items()])


def seed_tables(root: str | Path, seeds=SEEDS, corpora=tuple(CONFIGS)):
    """:func:`seed_table` of every corpus, stacked under the corpus name, figures to 4 decimals."""
    import pandas as pd

    return pd.concat({corpus.upper(): seed_table(root, corpus, seeds) for corpus in corpora}).droplevel(1).round(4)


def per_class_figure(tables: dict):
    """Grouped bars per corpus: MCEF text-only test F1 per class (mean ± std over seeds) beside the logistic baseline."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from mcef import plots  # registers the book renderer

    fig = make_subplots(rows=1, cols=len(tables), subplot_titles=[c.upper() for c in tables], horizontal_spacing=0.08)
    for col, (corpus, table) in enumerate(tables.items(), start=1):
        fig.add_bar(x=table["class"], y=table["mcef_f1"] * 100, name="MCEF text-only", marker_color="#4C78A8",
                    error_y=dict(type="data", array=table["mcef_f1_std"].fillna(0) * 100), showlegend=col == 1,
                    row=1, col=col)
        if table["logistic_f1"].notna().all():
            fig.add_bar(x=table["class"], y=table["logistic_f1"].astype(float) * 100, name="logistic regression",
                        marker_color="#F58518", showlegend=col == 1, row=1, col=col)
    fig.update_yaxes(title_text="test F1 (%)", row=1, col=1)
    return plots.book_layout(fig, "Test F1 per class: MCEF text-only (mean ± std over seeds) and the context-free baseline",
                             barmode="group")




RECIPE_FIELDS = ("model.hidden", "model.dropout", "loss.fused_ce", "train.lr", "train.epochs",
                 "train.early_stopping", "train.batch_size", "train.class_weights")  # the recipe rows the chapter shows


def recipe_table(configs: dict = CONFIGS, fields=RECIPE_FIELDS):
    """The committed recipe of each corpus side by side: one row per ``section.field``, one column per corpus."""
    import pandas as pd

    recipes = {corpus: load_config(path) for corpus, path in configs.items()}
    return pd.DataFrame({corpus: [getattr(getattr(config, key.split(".")[0]), key.split(".")[1]) for key in fields]
                         for corpus, config in recipes.items()}, index=list(fields))


def split_sizes(runs: dict[str, dict[int, dict]], seed: int) -> str:
    """The dialogues and utterances of every split of every corpus, as recorded by the ``seed`` run of each."""
    return "; ".join(f"{corpus.upper()}: " + ", ".join(f"{split} {v['dialogues']} dialogues / {v['utterances']} utterances"
                                                      for split, v in corpus_runs[seed]["data"]["splits"].items())
                     for corpus, corpus_runs in runs.items())


def provenance_note(how: str, runs: dict[str, dict[int, dict]], seed: int) -> str:
    """The chapter's opening note (Markdown): where the figures come from, what the runs ran on, the split sizes."""
    first = next(iter(runs.values()))[seed]
    return (f"**Figures:** {how} (with committed artifacts the profile does not change them).  \n"
            f"**Runs made on:** {first['device']} (torch {first['torch_version']}).  \n"
            f"**Splits:** {split_sizes(runs, seed)}.")


def result_facts(corpus: str, rows: list[dict], runs: dict[int, dict]) -> dict[str, float | int | str]:
    """What the chapter says about one corpus, keyed by its glue names (figures in percent).

    ``rows``: :func:`result_rows` (ours, oracle, baseline first); ``runs``: :func:`read_runs` of the corpus.
    """
    ours, oracle, baseline = rows[0], rows[1], rows[2]
    facts = {}
    for metric in HEADLINE:
        facts[f"{corpus}_{metric}"] = ours[metric] * 100
        facts[f"{corpus}_{metric}_std"] = ours[f"{metric}_std"] * 100 if ours[f"{metric}_std"] is not None else 0.0
        facts[f"{corpus}_oracle_{metric}"] = oracle[metric] * 100
        facts[f"{corpus}_logistic_{metric}"] = baseline[metric] * 100
    facts[f"{corpus}_n"] = ours["n"]
    gain = (ours["weighted_f1"] - baseline["weighted_f1"]) * 100
    facts[f"{corpus}_gain"] = abs(gain)
    facts[f"{corpus}_side"] = "above" if gain >= 0 else "below"
    facts[f"{corpus}_minutes"] = sum(s["wall_time_s"] for s in runs.values()) / 60
    return facts


def per_class_display(tables: dict):
    """:func:`per_class_rows` of every corpus for reading: class, support, MCEF F1 (mean ± std) and logistic F1 in percent."""
    import pandas as pd

    return pd.concat({corpus.upper(): t.assign(**{"MCEF F1": [mean_std(m, s) for m, s in zip(t["mcef_f1"], t["mcef_f1_std"])],
                                                  "logistic F1": [f"{v * 100:.2f}" for v in t["logistic_f1"]]})
                      [["class", "support", "MCEF F1", "logistic F1"]] for corpus, t in tables.items()}).droplevel(1)


def read_tuning(artifacts: str | Path = PROJECT_ROOT / "book" / "results" / "real_text"):
    """The tuning record ``<artifacts>/tuning.json`` (validation figures only) as a table, or None when absent."""
    import pandas as pd

    path = Path(artifacts) / "tuning.json"
    if not path.is_file():
        return None
    records = json.loads(path.read_text(encoding="utf-8"))
    return pd.DataFrame([{"corpus": r.get("corpus", "iemocap"), "change": r["change"], "features": r["features"], "valid acc": r["valid"]["accuracy"],
                          "valid w-F1": r["valid"]["weighted_f1"], "valid macro-F1": r["valid"]["macro_f1"],
                          "selected epoch": r["selected_epoch"], "epochs run": r["epochs_run"]}
                         for r in records]).round(4)

# ----------------------------------------------------------------------------------------------- the chapter


def data_folder(data: str = "") -> Path:
    """Where the transcripts are: ``data`` (a folder, or a file inside it), else ``$MCEF_DATA``, else ../shared/data."""
    import os

    if data:
        path = Path(data)
        return path if path.is_dir() else path.parent
    return Path(os.environ.get("MCEF_DATA") or PROJECT_ROOT.parent / "shared" / "data")


def chapter_results(profile: str, data: str, run_root: str | Path, seeds=SEEDS,
                    artifacts: str | Path = PROJECT_ROOT / "book" / "results" / "real_text") -> tuple[Path, str, list]:
    """Train or load: (run root to read, how its figures came to be, seeds behind them).

    Complete committed artifacts are loaded. Otherwise the quick and full profiles train the grid into
    ``<run_root>/real_text``; the smoke profile trains one seed for 3 epochs on 8 dialogues per split, a check that
    the pipeline runs, not a result.
    """
    seeds = list(seeds)
    if all(not artifact_problems(artifacts, corpus, seeds) for corpus in CONFIGS):
        return Path(artifacts), f"loaded from the committed run artifacts in `book/results/real_text`, produced by `{REPRODUCE}`", seeds
    root = Path(run_root) / "real_text"
    folder = data_folder(data)
    if profile == "smoke":
        root = root / "smoke"
        configs = {c: real_config(c, **{"train.epochs": 3}) for c in CONFIGS}
        run_all(folder, root, seeds=seeds[:1], configs=configs, max_dialogues=8, log=lambda _: None)
        return root, ("trained in this build: the committed artifacts are missing, so the smoke profile ran 1 seed for 3 "
                      "epochs on 8 dialogues per split; these numbers check the pipeline and are not results"), seeds[:1]
    run_all(folder, root, seeds=seeds, log=lambda _: None)
    return root, f"trained in this build ({profile} profile) into `{root}`, with the code of `{REPRODUCE}`", seeds


def main(argv: list[str] | None = None) -> int:
    """``python -m mcef.real_results``: train what is missing under ``--root`` and print the table."""
    parser = argparse.ArgumentParser(prog="python -m mcef.real_results", description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data", help="folder holding iemocap_text.pkl and meld_text.pkl")
    parser.add_argument("--root", default="book/results/real_text", help="run root (default: book/results/real_text)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS), help="seeds (default: 0 1 2 3 4)")
    parser.add_argument("--corpora", nargs="+", default=["iemocap", "meld"], choices=["iemocap", "meld"])
    args = parser.parse_args(argv)
    run_all(args.data, args.root, seeds=args.seeds, corpora=args.corpora)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
