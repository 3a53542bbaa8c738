"""Chapter 07: the committed real-text results read back, checked and compared (MCEF text-only on IEMOCAP and MELD).

The results are made by the committed configs and the command line, never by this module: per corpus,
``mcef sweep --config configs/real/<corpus>_text.yaml --seeds ... --root book/results/real_text`` (the runs, in
``<root>/<config name>/seed<seed>/``) and ``mcef features baseline --config ... --out <root>/baseline_<corpus>.json``
(the context-free logistic baseline). Which configs, which seeds and where the artifacts are is the profile's
``real_text`` section; the encoder, the standardisation and the recipe are read from the configs themselves.
The chapter checks the artifacts (every run present, its selected epoch the best validation epoch of its log, and,
where its summary records a provenance, its config digest the committed config's) and fails, naming what is wrong
and the commands that rebuild it, when they are not complete. Its second part reads the runs on fine-tuned text
features (the profile's ``real_text_finetuned`` section; see the section "fine-tuned features" below).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mcef.book.common import book_layout, check, class_f1_over_seeds, load_recipe, project_root, section_settings
from mcef.config import ConfigError, ExperimentConfig, load_stored_config, with_changes
from mcef.data.discovery import TRANSCRIPT_FILES
from mcef.experiments import mean_std
from mcef.metrics import HEADLINE
from mcef.runs import config_digest, defining_fields, differing_fields
from mcef.train import read_metrics

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
    {"corpus": "meld-sentiment", "model": "text-CNN", "accuracy": None, "weighted_f1": 64.25,
     "protocol": "context-free CNN on GloVe word vectors, the corpus paper's text baseline, as published",
     "citation": "Poria et al., MELD: A Multimodal Multi-Party Dataset for ERC, ACL 2019"},
)
RECIPE_FIELDS = ("data.text.encoder", "data.standardise", "model.hidden", "model.dropout", "loss.fused_ce", "train.lr",
                 "train.epochs", "train.early_stopping", "train.batch_size", "train.class_weights")  # rows shown


@dataclass(frozen=True)
class RealTextSettings:
    """Where the committed results are and what made them (profile section ``real_text``; every field given)."""

    artifacts: str  # the committed results folder, relative to the project root
    configs: tuple[str, ...]  # the committed config of each corpus, relative to the project root
    seeds: tuple[int, ...]  # the seeds of the committed grid


@dataclass(frozen=True)
class Corpus:
    """One corpus of the chapter: its committed config, and what the config says."""

    name: str  # "iemocap" | "meld" | "meld-sentiment" (MELD's 3 sentiments, data.labels: sentiment)
    config_path: str  # as the profile names it (relative to the project root)
    config: ExperimentConfig

    @property
    def encoder(self) -> str:
        """The sentence encoder of the config's text features."""
        return self.config.data.text.encoder


def corpus_label(name: str) -> str:
    """How the book names a corpus: upper case, and MELD's 3 sentiments as MELD-3."""
    return "MELD-3" if name == "meld-sentiment" else name.upper()


def real_text_settings(profile: str, root: str | Path | None = None) -> RealTextSettings:
    """The :class:`RealTextSettings` of ``profile``."""
    return section_settings(profile, "real_text", RealTextSettings, root)


def corpora(settings: RealTextSettings, root: str | Path | None = None) -> dict[str, Corpus]:
    """Corpus name -> :class:`Corpus` of every committed config: the corpus is the transcript file the config reads,
    suffixed ``-sentiment`` where it reads MELD's sentiments instead of its emotions. Two configs of one corpus are an
    error (each corpus is one row group of the chapter)."""
    found = {}
    for path in settings.configs:
        config = load_recipe(path, root)
        name = dict(TRANSCRIPT_FILES).get(Path(config.data.path or "").name, config.name)
        name += "-sentiment" if config.data.labels == "sentiment" else ""
        if name in found:
            raise ValueError(f"{path} and {found[name].config_path} are both configs of corpus {name!r}; expected one "
                             f"config per corpus")
        found[name] = Corpus(name, path, config)
    return found


def reproduce_commands(settings: RealTextSettings, found: dict[str, Corpus]) -> list[str]:
    """The commands that rebuild the artifacts from the committed configs (run from the project root)."""
    seeds = " ".join(str(s) for s in settings.seeds)
    return [command for corpus in found.values() for command in (
        f"mcef sweep --config {corpus.config_path} --seeds {seeds} --root {settings.artifacts}",
        f"mcef features baseline --config {corpus.config_path} --out {baseline_path(settings.artifacts, corpus.name)}")]


# ----------------------------------------------------------------------------------------------- reading the artifacts


def read_runs(artifacts: str | Path, corpus: Corpus, seeds) -> dict[int, dict]:
    """seed -> summary.json of each finished run of ``corpus`` under ``artifacts`` (missing seeds are absent)."""
    base = Path(artifacts) / corpus.config.name
    return {seed: json.loads((base / f"seed{seed}" / "summary.json").read_text(encoding="utf-8"))
            for seed in seeds if (base / f"seed{seed}" / "summary.json").is_file()}


def baseline_path(artifacts: str | Path, corpus: str) -> Path:
    """Where the logistic baseline of ``corpus`` is recorded."""
    return Path(artifacts) / f"baseline_{corpus}.json"


def read_baselines(artifacts: str | Path, names) -> dict:
    """corpus -> logistic baseline record of ``<artifacts>/baseline_<corpus>.json`` (corpora without one are absent)."""
    return {name: json.loads(baseline_path(artifacts, name).read_text(encoding="utf-8"))
            for name in names if baseline_path(artifacts, name).is_file()}


def _config_problem(run_dir: Path, summary: dict, corpus: Corpus, seed: int) -> str | None:
    """Why the run in ``run_dir`` is not known to be made by the committed config (None when it is)."""
    recorded = (summary.get("provenance") or {}).get("config_digest")
    expected = with_changes(corpus.config, train={"seed": seed})
    if recorded is None:
        return f"{run_dir}: its summary.json records no provenance (made before the run store), so it cannot be shown as current"
    if recorded == config_digest(expected):
        return None
    try:
        differences = differing_fields(defining_fields(load_stored_config(run_dir / "config.yaml")), defining_fields(expected))
    except ConfigError as err:
        differences = [f"its config.yaml does not load ({err})"]
    return (f"{run_dir}: made by another config than {corpus.config_path} (config digest {recorded}, the committed "
            f"config's {config_digest(expected)}): {'; '.join(differences) or 'see the digests'}")


def run_problem(run_dir: Path, summary: dict | None, corpus: Corpus, seed: int) -> str | None:
    """What is missing or inconsistent in one run of the committed grid (None: nothing)."""
    if summary is None:
        return f"{run_dir}/summary.json is missing"
    if not (run_dir / "config.yaml").is_file() or not (run_dir / "metrics.jsonl").is_file():
        return f"{run_dir}: config.yaml or metrics.jsonl is missing"
    best = max(read_metrics(run_dir), key=lambda h: h["valid_weighted_f1"])  # first epoch among ties, as fit selects
    if summary["selected_epoch"] != best["epoch"] or summary["test"]["epoch"] != best["epoch"]:
        return (f"{run_dir}: selected epoch {summary['selected_epoch']} is not the best validation weighted-F1 epoch "
                f"{best['epoch']} of metrics.jsonl")
    return _config_problem(run_dir, summary, corpus, seed)


def artifact_problems(artifacts: str | Path, corpus: Corpus, seeds) -> list[str]:
    """What is missing or inconsistent in ``corpus``'s artifacts under ``artifacts`` (empty list: complete)."""
    runs = read_runs(artifacts, corpus, seeds)
    problems = [run_problem(Path(artifacts) / corpus.config.name / f"seed{seed}", runs.get(seed), corpus, seed)
                for seed in seeds]
    if corpus.name not in read_baselines(artifacts, [corpus.name]):
        problems.append(f"{baseline_path(artifacts, corpus.name)} is missing")
    return [p for p in problems if p]


def chapter_artifacts(profile: str, root: str | Path | None = None) -> tuple[Path, RealTextSettings, dict[str, Corpus]]:
    """(the artifacts folder, the settings, the corpora), checked complete and made by the committed configs;
    :class:`~mcef.book.common.SelfCheckFailed` names every problem and the commands that rebuild the artifacts."""
    settings = real_text_settings(profile, root)
    found = corpora(settings, root)
    artifacts = project_root(root) / settings.artifacts
    problems = [p for corpus in found.values() for p in artifact_problems(artifacts, corpus, settings.seeds)]
    check(not problems, "the committed real-text artifacts are not complete:\n  " + "\n  ".join(problems)
          + "\nrebuild them from the project root with:\n  " + "\n  ".join(reproduce_commands(settings, found)))
    return artifacts, settings, found


# ----------------------------------------------------------------------------------------------- tables and facts


def mean_and_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample std (None for one value), as :func:`mcef.experiments.aggregate` reports them."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def comparison_row(model: str, protocol: str, n: int | None, figures: dict, stds: dict | None = None) -> dict:
    """One comparison row: per metric of HEADLINE its value and std (None where not defined)."""
    return {"model": model, "protocol": protocol, "n": n, **{m: figures.get(m) for m in HEADLINE},
            **{f"{m}_std": (stds or {}).get(m) for m in HEADLINE}}


def row_over_seeds(model: str, protocol: str, figures: list[dict]) -> dict:
    """:func:`comparison_row` of the mean and std over runs of ``figures`` (one dict of HEADLINE metrics per run)."""
    stats = {metric: mean_and_std([f[metric] for f in figures]) for metric in HEADLINE}
    return comparison_row(model, protocol, len(figures), {m: s[0] for m, s in stats.items()},
                          {m: s[1] for m, s in stats.items()})


def result_rows(artifacts: str | Path, corpus: Corpus, seeds) -> list[dict]:
    """The comparison of ``corpus`` as numbers (fractions): ours (validation-selected), ours with the test-selected
    oracle, the logistic baseline, then the published anchors. Each row: model, protocol, n, and per metric of
    HEADLINE its mean and std (None where not defined)."""
    runs = list(read_runs(artifacts, corpus, seeds).values())
    rows = []
    for model, key, protocol in (
        ("MCEF text-only (ours)", "test", f"validation-selected epoch, {corpus.encoder} features"),
        ("MCEF text-only (ours), oracle", "oracle_best_test",
         "test-selected: each metric at its best test epoch (the literature's protocol), same runs"),
    ):
        if runs:
            rows.append(row_over_seeds(model, protocol, [r[key] for r in runs]))
    baseline = read_baselines(artifacts, [corpus.name]).get(corpus.name)
    if baseline is not None:
        chosen = ", ".join(f"{k}={v}" for k, v in baseline["chosen"].items())
        rows.append(comparison_row("logistic regression (ours, context-free)", f"validation-selected ({chosen}), "
                         f"{corpus.encoder} features, deterministic", 1, baseline["test"]))
    return rows + [published_row(a) for a in ANCHORS if a["corpus"] == corpus.name]


def published_row(anchor: dict) -> dict:
    """A quoted literature figure (percent in ``anchor``) as a comparison row (fractions; None where not given)."""
    return comparison_row(f"{anchor['model']} (published)", anchor["protocol"], None,
                          {m: None if anchor.get(m) is None else anchor[m] / 100 for m in HEADLINE})


def results_table(rows: list[dict]) -> pd.DataFrame:
    """``result_rows`` formatted for the book: percent, ``mean ± std``, "-" where a paper gives no figure."""

    def cell(row: dict, metric: str) -> str:
        return "-" if row[metric] is None else mean_std(row[metric], row[f"{metric}_std"])

    return pd.DataFrame([{"model": r["model"], "accuracy": cell(r, "accuracy"), "weighted-F1": cell(r, "weighted_f1"),
                          "macro-F1": cell(r, "macro_f1"), "runs": "-" if r["n"] is None else str(r["n"]),
                          "protocol": r["protocol"]} for r in rows])


def class_rows(artifacts: str | Path, corpus: Corpus, seeds) -> pd.DataFrame:
    """Per class: :func:`mcef.book.common.class_f1_over_seeds` of the runs, and the logistic baseline's F1
    (``logistic_f1``, None without a baseline)."""
    runs = list(read_runs(artifacts, corpus, seeds).values())
    if not runs:
        raise ValueError(f"no finished run of {corpus.name!r} under {artifacts}")
    table = class_f1_over_seeds(runs, runs[0]["data"]["label_names"])
    baseline = read_baselines(artifacts, [corpus.name]).get(corpus.name)
    return table.assign(logistic_f1=[None if baseline is None else baseline["test"]["per_class_f1"][name]
                                     for name in table["label"]])


def seed_table(artifacts: str | Path, corpus: Corpus, seeds) -> pd.DataFrame:
    """One row per seed: selected epoch, epochs run, valid and test weighted-F1, oracle test weighted-F1, seconds."""
    return pd.DataFrame([{"seed": seed, "selected epoch": s["selected_epoch"], "epochs run": s["epochs_run"],
                          "valid w-F1": s["valid"]["weighted_f1"], "test acc": s["test"]["accuracy"],
                          "test w-F1": s["test"]["weighted_f1"], "test macro-F1": s["test"]["macro_f1"],
                          "oracle test w-F1": s["oracle_best_test"]["weighted_f1"] if s.get("oracle_best_test") else None,
                          "seconds": s["wall_time_s"]}
                         for seed, s in read_runs(artifacts, corpus, seeds).items()])


def seed_tables(artifacts: str | Path, found: dict[str, Corpus], seeds) -> pd.DataFrame:
    """:func:`seed_table` of every corpus, stacked under the corpus name, figures to 4 decimals."""
    return pd.concat({corpus_label(name): seed_table(artifacts, corpus, seeds) for name, corpus in found.items()}
                     ).droplevel(1).round(4)


def per_class_figure(tables: dict[str, pd.DataFrame]):
    """Grouped bars per corpus: MCEF text-only test F1 per class (mean ± std over seeds) beside the logistic baseline."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=len(tables), subplot_titles=[corpus_label(c) for c in tables],
                        horizontal_spacing=0.08)
    for col, table in enumerate(tables.values(), start=1):
        fig.add_bar(x=table["label"], y=table["f1_mean"] * 100, name="MCEF text-only", marker_color="#4C78A8",
                    error_y=dict(type="data", array=table["f1_std"].fillna(0) * 100), showlegend=col == 1,
                    row=1, col=col)
        if table["logistic_f1"].notna().all():
            fig.add_bar(x=table["label"], y=table["logistic_f1"].astype(float) * 100, name="logistic regression",
                        marker_color="#F58518", showlegend=col == 1, row=1, col=col)
    for col in range(1, len(tables) + 1):
        fig.update_xaxes(title_text="class", row=1, col=col)
    fig.update_yaxes(title_text="test F1 (%)", row=1, col=1)
    return book_layout(fig, "Test F1 per class: MCEF text-only and a context-free baseline", barmode="group",
                       legend=dict(orientation="h", yanchor="top", y=-0.3, x=0))


def class_f1_cells(table: pd.DataFrame) -> list[str]:
    """Each class's F1 of a :func:`mcef.book.common.class_f1_over_seeds` table as ``mean ± std`` in percent (the
    mean alone for one run)."""
    return [mean_std(m, None if pd.isna(sd) else sd) for m, sd in zip(table["f1_mean"], table["f1_std"])]


def per_class_display(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """:func:`class_rows` of every corpus for reading: class, support, MCEF F1 (mean ± std) and logistic F1 in percent."""
    return pd.concat({corpus_label(corpus): t.assign(**{
        "class": t["label"], "MCEF F1": class_f1_cells(t),
        "logistic F1": ["-" if v is None else f"{v * 100:.2f}" for v in t["logistic_f1"]]})
        [["class", "support", "MCEF F1", "logistic F1"]] for corpus, t in tables.items()}).droplevel(1)


def class_comparison(columns: dict[str, list[dict]]) -> pd.DataFrame:
    """Test F1 per class of several readings of one corpus side by side (percent, mean ± std over runs):
    ``columns`` maps a column title to its runs' ``summary.json`` dicts (or dicts holding just a ``test`` record); an
    empty list gives no column."""
    present = {title: runs for title, runs in columns.items() if runs}
    check(bool(present), "class_comparison: no runs in any column")
    first = next(iter(present.values()))
    table = pd.DataFrame(class_f1_over_seeds(first, first[0]["data"]["label_names"])[["label", "support"]])
    names = list(table["label"])
    for title, runs in present.items():
        table[title] = class_f1_cells(class_f1_over_seeds(runs, names))
    return table.rename(columns={"label": "class"})


def own_classifier_tests(runs: dict[int, dict]) -> list[dict]:
    """The fine-tuned encoder's own classifier's test record of each run, in the shape :func:`class_comparison`
    reads (``data.label_names`` kept)."""
    return [{"test": encoding_record(s)["classifier"]["test"], "data": s["data"]} for s in runs.values()]


def _field(config: ExperimentConfig, dotted: str):
    value = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def recipe_table(found: dict[str, Corpus], fields=RECIPE_FIELDS) -> pd.DataFrame:
    """The committed recipe of each corpus side by side: one row per dotted field, one column per corpus."""
    return pd.DataFrame({name: [_field(corpus.config, key) for key in fields] for name, corpus in found.items()},
                        index=list(fields))


def features_sentence(found: dict[str, Corpus]) -> str:
    """Which text features each corpus uses, as the configs say (encoder, standardisation)."""
    return "; ".join(f"{corpus_label(name)}: {c.encoder}" + (", standardised with training statistics"
                                                             if c.config.data.standardise else "")
                     for name, c in found.items())


def split_sizes(runs: dict[str, dict[int, dict]], seed: int) -> str:
    """The dialogues and utterances of every split of every corpus, as recorded by the ``seed`` run of each."""
    return "; ".join(f"{corpus_label(corpus)}: "
                     + ", ".join(f"{split} {v['dialogues']} dialogues / {v['utterances']} utterances"
                                 for split, v in corpus_runs[seed]["data"]["splits"].items())
                     for corpus, corpus_runs in runs.items())


def provenance_note(settings: RealTextSettings, found: dict[str, Corpus], runs: dict[str, dict[int, dict]]) -> str:
    """The chapter's opening note (Markdown): where the figures come from, what the runs ran on, the split sizes."""
    seed = settings.seeds[0]
    first = next(iter(runs.values()))[seed]
    recorded = first.get("provenance") or {}
    made = f"commit `{recorded['git_commit']}`, {recorded['date']}" if recorded else f"commit `{first['git_commit']}`"
    commands = "; ".join(f"`{command}`" for command in reproduce_commands(settings, found))
    return (f"**Figures:** read from the committed run artifacts in `{settings.artifacts}` (the profile does not "
            f"change them), produced by {commands}.  \n"
            f"**Runs made on:** {first['device']} (torch {first['torch_version']}; {made}).  \n"
            f"**Splits:** {split_sizes(runs, seed)}.")


def glue_prefix(corpus: str) -> str:
    """How a corpus name starts its glue names: ``-`` written ``_`` (``meld_sentiment``), as glue names are
    identifiers."""
    return corpus.replace("-", "_")


def result_facts(corpus: str, rows: list[dict], runs: dict[int, dict]) -> dict[str, float | int | str]:
    """What the chapter says about one corpus, keyed by its glue names (figures in percent).

    ``rows``: :func:`result_rows` (ours, oracle, baseline first); ``runs``: :func:`read_runs` of the corpus. The glue
    names start with the corpus name, ``-`` written ``_`` (``meld_sentiment_weighted_f1``): glue names are identifiers.
    """
    ours, oracle, baseline = rows[0], rows[1], rows[2]
    prefix = glue_prefix(corpus)
    facts = {}
    for metric in HEADLINE:
        facts[f"{prefix}_{metric}"] = ours[metric] * 100
        facts[f"{prefix}_{metric}_std"] = ours[f"{metric}_std"] * 100 if ours[f"{metric}_std"] is not None else 0.0
        facts[f"{prefix}_oracle_{metric}"] = oracle[metric] * 100
        facts[f"{prefix}_logistic_{metric}"] = baseline[metric] * 100
    facts[f"{prefix}_n"] = ours["n"]
    gain = (ours["weighted_f1"] - baseline["weighted_f1"]) * 100
    facts[f"{prefix}_gain"] = abs(gain)
    facts[f"{prefix}_side"] = "above" if gain >= 0 else "below"
    facts[f"{prefix}_minutes"] = sum(s["wall_time_s"] for s in runs.values()) / 60
    return facts


def read_tuning(artifacts: str | Path) -> pd.DataFrame | None:
    """The tuning record ``<artifacts>/tuning.json`` (validation figures only) as a table, or None when absent."""
    path = Path(artifacts) / "tuning.json"
    if not path.is_file():
        return None
    records = json.loads(path.read_text(encoding="utf-8"))
    return pd.DataFrame([{"corpus": r.get("corpus", "iemocap"), "change": r["change"], "features": r["features"],
                          "valid acc": r["valid"]["accuracy"], "valid w-F1": r["valid"]["weighted_f1"],
                          "valid macro-F1": r["valid"]["macro_f1"], "selected epoch": r["selected_epoch"],
                          "epochs run": r["epochs_run"]} for r in records]).round(4)


# ----------------------------------------------------------------------------------------------- fine-tuned features
# Chapter 07, second part: the committed runs on *fine-tuned* text features, beside the frozen ones and the anchors.
#
# A config of the profile's ``real_text_finetuned`` section fine-tunes its encoder as an utterance classifier first
# (``data.text.finetune``; one encoder per seed), then trains MCEF text-only on the fine-tuned features. Each run's
# ``summary.json`` records, under ``data.text_features.encoding``, the fine-tuning itself: the epoch kept on
# validation, its history, and the encoder's own classifier's scores on every split. The context-free logistic
# baseline on the same features is ``<artifacts>/baseline_<config name>_seed<seed>.json``
# (``mcef features baseline --config ... --seed ...``). The epoch times measured for each encoder and window
# (``scripts/finetune_speed.py``) are ``<artifacts>/finetune_speed.json``.
#
# Unlike the frozen grid, this grid may be committed in part (a fine-tuning seed costs about half an hour on the
# 2-core CPU these runs use): the seeds present are shown and counted, the missing ones named with the command that
# makes them; a present run that is inconsistent or made by another config fails the chapter.

# Published text-only figures of systems that fine-tune their encoder end to end (percent), each with its protocol
# and encoder size; shown with the ANCHORS above. Quoted, never computed.
FINE_TUNED_ANCHORS = (
    {"corpus": "iemocap", "model": "EmoBERTa, roberta-base (125M), past context", "weighted_f1": 62.79,
     "protocol": "fine-tuned with previous utterances and speaker names; validation cross-entropy, mean of 5 seeds"},
    {"corpus": "iemocap", "model": "EmoBERTa, roberta-large (355M), past context", "weighted_f1": 64.34,
     "protocol": "fine-tuned with previous utterances and speaker names; validation cross-entropy, mean of 5 seeds"},
    {"corpus": "iemocap", "model": "EmoBERTa, roberta-large (355M), past and future", "weighted_f1": 68.57,
     "protocol": "its best input; validation cross-entropy, mean of 5 seeds"},
    {"corpus": "iemocap", "model": "CoMPM, roberta-large (355M)", "weighted_f1": 69.46,
     "protocol": "fine-tuned with the dialogue context and a pre-trained speaker memory, as published"},
    {"corpus": "meld", "model": "EmoBERTa, roberta-large (355M), past and future", "weighted_f1": 65.61,
     "protocol": "its best input; validation cross-entropy, mean of 5 seeds"},
    {"corpus": "meld", "model": "CoMPM, roberta-large (355M)", "weighted_f1": 66.52,
     "protocol": "fine-tuned with the dialogue context and a pre-trained speaker memory, as published"},
)


def finetuned_settings(profile: str, root: str | Path | None = None) -> RealTextSettings:
    """The :class:`~mcef.book.real_results.RealTextSettings` of ``profile``'s ``real_text_finetuned`` section."""
    return section_settings(profile, "real_text_finetuned", RealTextSettings, root)


def finetuned_baseline_path(artifacts: str | Path, corpus: Corpus, seed: int | str) -> Path:
    """Where the logistic baseline on the features of ``corpus``'s seed-``seed`` encoder is recorded."""
    return Path(artifacts) / f"baseline_{corpus.config.name}_seed{seed}.json"


def baseline_command(settings: RealTextSettings, corpus: Corpus, seed: int | str) -> str:
    """The command that fits the logistic baseline on the features of ``corpus``'s seed-``seed`` encoder."""
    return (f"mcef features baseline --config {corpus.config_path} --seed {seed} "
            f"--out {finetuned_baseline_path(settings.artifacts, corpus, seed)}")


def seed_commands(settings: RealTextSettings, corpus: Corpus, seeds) -> list[str]:
    """The commands that make ``seeds`` of ``corpus`` (run from the project root; the sweep resumes a seed)."""
    listed = " ".join(str(s) for s in seeds)
    return [f"mcef sweep --config {corpus.config_path} --seeds {listed} --root {settings.artifacts}",
            *(baseline_command(settings, corpus, s) for s in seeds)]


def chapter_finetuned(profile: str, root: str | Path | None = None):
    """(artifacts folder, settings, corpus name -> Corpus, corpus name -> {seed: summary}, corpus name -> seeds
    missing) of the fine-tuned grid; every run present is checked (selected epoch, config digest, baseline) and a
    problem fails the chapter, naming it and the commands that remake the run."""
    return checked_grid(finetuned_settings(profile, root), root, baselines=True)


def chapter_controls(profile: str, root: str | Path | None = None):
    """:func:`chapter_finetuned` of the controls (``real_text_controls``: the fine-tuned input with the encoder as
    shipped), whose runs have no per-seed baseline."""
    return checked_grid(section_settings(profile, "real_text_controls", RealTextSettings, root), root, baselines=False)


def chapter_no_context(profile: str, root: str | Path | None = None):
    """:func:`chapter_finetuned` of the no-context arm (``real_text_no_context``: the fine-tuned recipe reading each
    utterance alone), whose runs have no per-seed baseline."""
    return checked_grid(section_settings(profile, "real_text_no_context", RealTextSettings, root), root, baselines=False)


def chapter_longer(profile: str, root: str | Path | None = None):
    """:func:`chapter_finetuned` of the longer fine-tuning (``real_text_longer``: the no-context recipe with more
    epochs), whose runs have no per-seed baseline."""
    return checked_grid(section_settings(profile, "real_text_longer", RealTextSettings, root), root, baselines=False)


def chapter_larger(profile: str, root: str | Path | None = None):
    """:func:`chapter_finetuned` of the larger encoder (``real_text_larger``: the no-context recipe with
    all-mpnet-base-v2, its top layers fine-tuned), whose runs have a per-seed baseline as the fine-tuned grid's."""
    return checked_grid(section_settings(profile, "real_text_larger", RealTextSettings, root), root, baselines=True)


def checked_grid(settings: RealTextSettings, root: str | Path | None, *, baselines: bool):
    """(artifacts folder, settings, corpora, runs, missing seeds) of a grid that may be committed in part; a run
    present that is inconsistent (or, with ``baselines``, lacks its per-seed baseline) fails the chapter."""
    found = corpora(settings, root)
    artifacts = project_root(root) / settings.artifacts
    runs, missing, problems = {}, {}, []
    for name, corpus in found.items():
        runs[name] = read_runs(artifacts, corpus, settings.seeds)
        missing[name] = [s for s in settings.seeds if s not in runs[name]]
        for seed in runs[name]:
            problem = run_problem(artifacts / corpus.config.name / f"seed{seed}", runs[name][seed], corpus, seed)
            if problem is None and baselines and not finetuned_baseline_path(artifacts, corpus, seed).is_file():
                problem = f"{finetuned_baseline_path(artifacts, corpus, seed)} is missing"
            if problem is not None:
                commands = seed_commands(settings, corpus, [seed])
                problems.append(problem + "\n    remake it with: " + "; ".join(commands if baselines else commands[:1]))
    check(not problems, "the committed runs are not consistent:\n  " + "\n  ".join(problems))
    return artifacts, settings, found, runs, missing


def encoding_record(summary: dict) -> dict:
    """The fine-tuning record of a run (``data.text_features.encoding``); a run without one fails the chapter."""
    record = summary["data"].get("text_features", {}).get("encoding", {})
    check(bool(record.get("fine_tuned")), f"run {summary.get('name')!r} (seed {summary.get('seed')}) records no "
          "fine-tuning in data.text_features.encoding")
    return record


def kept_candidate(summary: dict) -> dict:
    """The fine-tuning candidate (class weighting) whose encoder the run's features come from: its history and best
    epoch."""
    record = encoding_record(summary)
    return record["candidates"][record["class_weights"]]


def finetuned_rows(artifacts: str | Path, corpus: Corpus, runs: dict[int, dict], encoder: str = "",
                   variant: str = "") -> list[dict]:
    """Our three readings of the fine-tuned features (fractions, mean and std over the seeds present): the
    encoder's own classifier, MCEF text-only on its features, the logistic regression on them; ``encoder`` and
    ``variant`` as :func:`encoder_rows` takes them (by default the window of the fine-tuned grid)."""
    encoder = encoder or f"{corpus.encoder} fine-tuned, {corpus.config.data.text.window_before} previous utterances"
    baselines = [json.loads(finetuned_baseline_path(artifacts, corpus, seed).read_text(encoding="utf-8"))["test"]
                 for seed in runs]
    return [*encoder_rows(corpus, runs, encoder, variant),
            row_over_seeds(f"logistic regression on its features{variant} (ours)", f"{encoder}; C chosen on validation",
                           baselines)]


def trained_layers(corpus: Corpus) -> str:
    """How much of the encoder a fine-tuned config trains: "every layer", or "its top k layers"."""
    k = corpus.config.data.text.finetune.train_layers
    return "every layer" if k is None else f"its top {k} layers"


def larger_rows(artifacts: str | Path, corpus: Corpus, runs: dict[int, dict]) -> list[dict]:
    """The larger encoder fine-tuned on each utterance alone (``corpus``: the larger config): its own classifier,
    MCEF text-only and the logistic regression on its features, over the seeds present; no row when none is."""
    if not runs:
        return []
    layers = trained_layers(corpus).removeprefix("its ")
    return finetuned_rows(artifacts, corpus, runs, f"{corpus.encoder}, {layers} fine-tuned, the utterance alone",
                          f", {layers} fine-tuned")


def encoder_rows(corpus: Corpus, runs: dict[int, dict], encoder: str, variant: str = "") -> list[dict]:
    """The fine-tuned encoder's own classifier, then MCEF text-only on its features, over ``runs``; ``encoder``
    describes the fine-tuning in the protocol column, ``variant`` is appended to the row names."""
    return [row_over_seeds(f"{corpus.encoder}'s own classifier{variant} (ours)",
                           f"{encoder}; encoder epoch chosen on validation",
                           [encoding_record(s)["classifier"]["test"] for s in runs.values()]),
            row_over_seeds(f"MCEF text-only on its features{variant} (ours)",
                           f"{encoder}; MCEF epoch chosen on validation", [s["test"] for s in runs.values()])]


def frozen_rows(artifacts: str | Path, frozen: Corpus, seeds) -> list[dict]:
    """The frozen-encoder reference of the same corpus: MCEF text-only over the seeds, the logistic baseline."""
    runs = read_runs(artifacts, frozen, seeds)
    rows = [row_over_seeds("MCEF text-only, frozen encoder (ours)", f"{frozen.encoder} as shipped; epoch chosen on "
                           "validation", [s["test"] for s in runs.values()])]
    baseline = read_baselines(artifacts, [frozen.name]).get(frozen.name)
    if baseline is not None:
        rows.append(comparison_row("logistic regression, frozen encoder (ours)", f"{frozen.encoder} as shipped", 1,
                                   baseline["test"]))
    return rows


def control_rows(control: Corpus, runs: dict[int, dict]) -> list[dict]:
    """MCEF text-only on the control's features (the fine-tuned runs' input, read by the encoder as shipped), over
    the seeds present; no row when none is."""
    if not runs:
        return []
    window = control.config.data.text.window_before
    return [row_over_seeds("MCEF text-only, same input, encoder as shipped (ours)",
                           f"{control.encoder} as shipped, {window} previous utterances; epoch chosen on validation",
                           [s["test"] for s in runs.values()])]


def no_context_rows(corpus: Corpus, runs: dict[int, dict]) -> list[dict]:
    """The encoder fine-tuned on each utterance alone (``corpus``: the no-context config): its own classifier, then
    MCEF text-only on its features, over the seeds present; no row when none is."""
    if not runs:
        return []
    return encoder_rows(corpus, runs, f"{corpus.encoder} fine-tuned, the utterance alone", ", no context")


def longer_rows(corpus: Corpus, runs: dict[int, dict]) -> list[dict]:
    """The encoder fine-tuned for longer on each utterance alone (``corpus``: the longer config): its own classifier,
    then MCEF text-only on its features, over the seeds present; no row when none is."""
    if not runs:
        return []
    epochs = corpus.config.data.text.finetune.epochs
    return encoder_rows(corpus, runs, f"{corpus.encoder} fine-tuned up to {epochs} epochs, the utterance alone",
                        f", no context, up to {epochs} epochs")


def valid_weighted_f1(runs: dict[int, dict]) -> float:
    """MCEF's validation weighted F1 in percent, the mean over ``runs``: the figure recipes are chosen by."""
    return 100 * statistics.fmean(s["valid"]["weighted_f1"] for s in runs.values())


def fine_tuning_minutes(runs: dict[int, dict]) -> float:
    """The mean over ``runs`` of the minutes spent fine-tuning the encoder (every candidate, every epoch)."""
    return statistics.fmean(sum(e["seconds"] for c in encoding_record(s)["candidates"].values() for e in c["history"])
                            / 60 for s in runs.values())


def kept_last(runs: dict[int, dict]) -> int:
    """In how many of ``runs`` the encoder's kept epoch is the last one it ran (its validation score still rising)."""
    return sum(c["best_epoch"] == len(c["history"]) for c in map(kept_candidate, runs.values()))


def spread(row: dict) -> str:
    """A row's weighted F1 in percent, with its std over seeds where there are several (:func:`mean_std`)."""
    return mean_std(row["weighted_f1"], row["weighted_f1_std"])


def no_context_sentence(name: str, facts: dict, rows: list[dict], runs: dict[int, dict]) -> str:
    """What the window adds to fine-tuning on one corpus (Markdown; empty without no-context runs), from
    :func:`no_context_rows` of the no-context ``runs`` and the fine-tuned grid's :func:`finetuned_facts`; it ends
    with the validation figures that choose between the two."""
    if not rows:
        return ""
    own, mcef = rows
    key = glue_prefix(name)
    gain = facts[f"{key}_ft_weighted_f1"] - 100 * mcef["weighted_f1"]
    own_gain = facts[f"{key}_ft_own_weighted_f1"] - 100 * own["weighted_f1"]
    window_valid, alone_valid = facts[f"{key}_ft_valid_weighted_f1"], valid_weighted_f1(runs)
    return (f"The window's share: fine-tuned on each utterance alone, the encoder gives MCEF text-only {spread(mcef)} "
            f"on {corpus_label(name)} over {mcef['n']} seed{'s' if mcef['n'] != 1 else ''} (its own classifier "
            f"{spread(own)}), so the window {'adds' if gain >= 0 else 'costs'} MCEF {abs(gain):.1f} points and "
            f"{'adds' if own_gain >= 0 else 'costs'} the encoder's own classifier {abs(own_gain):.1f}. On "
            f"validation, where the choice is made, MCEF scores {window_valid:.2f} with the window and "
            f"{alone_valid:.2f} without it, so a validation choice "
            f"{'keeps the window' if window_valid >= alone_valid else 'reads the utterance alone'}.")


def against(row: dict, runs: dict[int, dict], other_row: dict, other_runs: dict[int, dict]) -> tuple[float, float, float]:
    """(how many points of test weighted F1 MCEF's ``row`` is above ``other_row``, MCEF's mean validation weighted
    F1 over ``runs``, over ``other_runs``): what an arm's sentence compares with the arm it varies."""
    return 100 * (row["weighted_f1"] - other_row["weighted_f1"]), valid_weighted_f1(runs), valid_weighted_f1(other_runs)


def longer_sentence(name: str, corpus: Corpus | None, rows: list[dict], runs: dict[int, dict], alone_rows: list[dict],
                    alone_runs: dict[int, dict]) -> str:
    """What fine-tuning the utterance alone for longer adds on one corpus (Markdown; empty without its runs or
    without the no-context runs it extends), from :func:`longer_rows` and :func:`no_context_rows`."""
    if not rows or not alone_rows:
        return ""
    (own, mcef), (_, alone_mcef) = rows, alone_rows
    tune, kept = corpus.config.data.text.finetune, [kept_candidate(s) for s in runs.values()]
    alone_epochs = max(len(kept_candidate(s)["history"]) for s in alone_runs.values())
    gain, valid, alone_valid = against(mcef, runs, alone_mcef, alone_runs)
    return (f"Fine-tuning longer: with each utterance read alone for at most {tune.epochs} epochs (stopping after "
            f"{tune.early_stopping} without a better validation score; about {fine_tuning_minutes(runs):.0f} "
            f"minutes per seed), the encoder's kept epoch is {statistics.fmean(c['best_epoch'] for c in kept):.1f} "
            f"on average (the last one it ran in {kept_last(runs)} of {mcef['n']} seeds), and MCEF text-only gives "
            f"{spread(mcef)} on {corpus_label(name)} (its own classifier {spread(own)}), {abs(gain):.1f} points "
            f"{'above' if gain >= 0 else 'below'} the {alone_epochs}-epoch fine-tuning of the utterance alone. On "
            f"validation MCEF scores {valid:.2f} against {alone_valid:.2f}, so a validation choice "
            f"{'fine-tunes longer' if valid > alone_valid else 'keeps the shorter fine-tuning'}.")


def larger_sentence(name: str, corpus: Corpus | None, rows: list[dict], runs: dict[int, dict], alone: Corpus | None,
                    alone_rows: list[dict], alone_runs: dict[int, dict]) -> str:
    """What the larger encoder adds on one corpus (Markdown; empty without its runs or without the no-context runs of
    the smaller encoder it replaces), from :func:`larger_rows` and :func:`no_context_rows`."""
    if not rows or not alone_rows:
        return ""
    (own, mcef, logistic), (_, alone_mcef) = rows, alone_rows
    tune = corpus.config.data.text.finetune
    gain, valid, alone_valid = against(mcef, runs, alone_mcef, alone_runs)
    own_valid = 100 * statistics.fmean(encoding_record(s)["classifier"]["valid"]["weighted_f1"] for s in runs.values())
    return (f"The larger encoder: {corpus.encoder} with {trained_layers(corpus)} fine-tuned on each utterance alone"
            f"{' under bfloat16 autocast' if tune.bf16 else ''} (about {fine_tuning_minutes(runs):.0f} minutes of "
            f"fine-tuning per seed) gives MCEF text-only {spread(mcef)} on {corpus_label(name)} over {mcef['n']} "
            f"seed{'s' if mcef['n'] != 1 else ''} (its own classifier {spread(own)}, the logistic regression on its "
            f"features {spread(logistic)}), {abs(gain):.1f} points {'above' if gain >= 0 else 'below'} "
            f"{alone.encoder} fine-tuned the same way ({spread(alone_mcef)}). On validation MCEF scores {valid:.2f} "
            f"against {alone_valid:.2f}, and the larger encoder's own classifier {own_valid:.2f}, so a validation "
            f"choice between the two readings of its features keeps "
            f"{'MCEF' if valid >= own_valid else 'its own classifier'}.")


def recipe_label(corpus: Corpus) -> str:
    """A recipe named by what its config does to the text: the encoder, as shipped or fine-tuned (how much of it,
    for how many epochs), and the context it reads."""
    text = corpus.config.data.text
    tune = text.finetune
    how = (" as shipped" if tune is None else
           f", {trained_layers(corpus).removeprefix('its ')} fine-tuned for up to {tune.epochs} epochs")
    context = {"speaker": "the speaker-tagged utterance", "previous": "the previous utterance and the utterance",
               "window": f"{text.window_before} previous utterances" if text.window_before else "the utterance alone"
               }.get(text.context, "the utterance alone")
    return f"{corpus.encoder}{how}, {context}"


def recipe_candidates(name: str, arms) -> dict[str, dict[int, dict]]:
    """Recipe label (:func:`recipe_label`) -> runs of every recipe of corpus ``name`` among ``arms``, pairs of
    (corpus name -> Corpus, corpus name -> {seed: summary}) as the chapter's grids return them."""
    return {recipe_label(found[name]): runs.get(name, {}) for found, runs in arms if name in found}


def chapter_recipes(profile: str, root: str | Path | None = None) -> dict[str, dict[str, dict[int, dict]]]:
    """Corpus name -> recipe label -> its runs, over every grid of the chapter: the frozen encoders, the fine-tuned
    grid and its arms, the controls (each checked as :func:`checked_grid` checks it)."""
    settings = real_text_settings(profile, root)
    found = corpora(settings, root)
    artifacts = project_root(root) / settings.artifacts
    arms = [(found, {name: read_runs(artifacts, corpus, settings.seeds) for name, corpus in found.items()})]
    for grid in (chapter_finetuned, chapter_no_context, chapter_longer, chapter_larger, chapter_controls):
        _, _, grid_corpora, grid_runs, _ = grid(profile, root)
        arms.append((grid_corpora, grid_runs))
    return {name: recipe_candidates(name, arms) for name in found}


def recipe_choice(candidates: dict[str, dict[int, dict]]) -> tuple[pd.DataFrame, str]:
    """(one row per recipe with runs: its seeds, MCEF's mean validation and test weighted F1 in percent, and which
    one a validation choice keeps; the kept recipe's name). ``candidates``: recipe description -> its runs."""
    rows = [{"recipe": recipe, "seeds": len(runs), "valid w-F1": valid_weighted_f1(runs),
             "test w-F1": spread(row_over_seeds(recipe, "", [s["test"] for s in runs.values()]))}
            for recipe, runs in candidates.items() if runs]
    check(bool(rows), "no recipe has runs to choose from")
    table = pd.DataFrame(rows)
    chosen = table.loc[table["valid w-F1"].idxmax(), "recipe"]  # ties: the first listed
    table["chosen on validation"] = ["yes" if r == chosen else "" for r in table["recipe"]]
    return table, chosen


def choice_facts(choices: dict[str, tuple[pd.DataFrame, str]]) -> dict[str, str]:
    """Per corpus, the recipe a validation choice keeps (:func:`recipe_choice`) and its test weighted F1 over seeds,
    keyed by glue names ``<corpus>_chosen_recipe`` and ``<corpus>_chosen_weighted_f1`` (:func:`glue_prefix`)."""
    facts = {}
    for name, (table, chosen) in choices.items():
        row = table.set_index("recipe").loc[chosen]
        facts[f"{glue_prefix(name)}_chosen_recipe"] = chosen
        facts[f"{glue_prefix(name)}_chosen_weighted_f1"] = row["test w-F1"]
        facts[f"{glue_prefix(name)}_chosen_n"] = int(row["seeds"])
    return facts


def control_sentence(name: str, facts: dict, rows: list[dict], control: Corpus | None = None,
                     frozen: Corpus | None = None) -> str:
    """What the control's ``rows`` say of fine-tuning on one corpus (Markdown; empty without control runs); where
    the ``frozen`` recipe (chapter 7's first part) reads the utterance alone with the ``control``'s encoder, also
    what the window does to the frozen encoder."""
    if not rows:
        return ""
    row, key = rows[0], glue_prefix(name)
    gain = facts[f"{key}_ft_weighted_f1"] - 100 * row["weighted_f1"]
    text = (f"The control isolates fine-tuning: the same input (the target and its previous utterances) read by "
            f"the encoder as shipped gives MCEF text-only {spread(row)} on {corpus_label(name)} over {row['n']} "
            f"seed{'s' if row['n'] != 1 else ''}, so fine-tuning {'adds' if gain >= 0 else 'costs'} "
            f"{abs(gain):.1f} points.")
    if control is not None and frozen is not None and control.encoder == frozen.encoder:
        window = 100 * row["weighted_f1"] - facts[f"{key}_frozen_weighted_f1"]
        text += (f" For the frozen encoder the window itself {'helps' if window >= 0 else 'hurts'}: "
                 f"{abs(window):.1f} points against the utterance read alone "
                 f"({facts[f'{key}_frozen_weighted_f1']:.2f}).")
    return text


def anchor_rows(corpus: str) -> list[dict]:
    """Every published text-only anchor of ``corpus`` (:data:`FINE_TUNED_ANCHORS`, then :data:`ANCHORS`) as rows."""
    return [published_row(a) for a in (*FINE_TUNED_ANCHORS, *ANCHORS) if a["corpus"] == corpus]


def history_table(runs: dict[int, dict]) -> pd.DataFrame:
    """Per seed and fine-tuning epoch: training loss, validation weighted F1, seconds, and whether it was kept."""
    rows = []
    for seed, summary in runs.items():
        kept = kept_candidate(summary)
        for epoch in kept["history"]:
            rows.append({"seed": seed, "epoch": epoch["epoch"], "train loss": round(epoch["train_loss"], 4),
                         "valid w-F1": round(epoch["valid_weighted_f1"], 4), "minutes": round(epoch["seconds"] / 60, 1),
                         "kept": "yes" if epoch["epoch"] == kept["best_epoch"] else ""})
    return pd.DataFrame(rows)


def speed_table(artifacts: str | Path) -> tuple[pd.DataFrame, dict]:
    """The measured epoch times (``finetune_speed.json``) as a table, and the record's machine, commit and date."""
    record = json.loads((Path(artifacts) / "finetune_speed.json").read_text(encoding="utf-8"))
    table = pd.DataFrame([{"corpus": r["corpus"], "encoder": r["encoder"], "previous utterances": r["window_before"],
                           "token limit": r["max_seq_length"], "mean tokens": round(r["mean_tokens"]),
                           "layers trained": r.get("train_layers") or "all", "bf16": "yes" if r["bf16"] else "no",
                           "s / step": r["step_seconds"], "min / epoch": r["epoch_minutes"]} for r in record["rows"]])
    return table, {k: record[k] for k in ("machine", "commit", "date", "steps")}


def encoder_cost_ratio(speed: pd.DataFrame) -> float:
    """How many times longer an epoch of the larger encoder takes than one of the smaller, averaged over the
    (corpus, window) pairs :func:`speed_table` timed with both, every layer trained in float32."""
    if "bf16" in speed:
        speed = speed[(speed["bf16"] == "no") & (speed["layers trained"] == "all")]
    minutes = speed.pivot_table(index=["corpus", "previous utterances"], columns="encoder", values="min / epoch")
    small, large = minutes.mean().sort_values().index[[0, -1]]
    pairs = minutes[[small, large]].dropna()
    check(len(pairs) > 0, "finetune_speed.json times no (corpus, window) with both encoders")
    return float((pairs[large] / pairs[small]).mean())


def bf16_facts(artifacts: str | Path, root: str | Path | None = None) -> dict[str, float | str]:
    """What ``bf16_check.json`` (``scripts/bf16_check.py``) measured: the first fine-tuning epoch of one recipe from
    one seed in float32 and under bfloat16 autocast, as glue facts ``bf16_*`` (validation weighted F1 in percent,
    the speed-up of the epoch, the recipe); a record of another config digest than the committed config's fails."""
    path = Path(artifacts) / "bf16_check.json"
    check(path.is_file(), f"{path} is missing; make it with `python scripts/bf16_check.py`")
    record = json.loads(path.read_text(encoding="utf-8"))
    config = load_recipe(record["config"], root)
    check(config_digest(config) == record["config_digest"], f"{path} was measured with another {record['config']} "
          f"(config digest {record['config_digest']}, now {config_digest(config)}); remake it with "
          "`python scripts/bf16_check.py`")
    fp32, bf16 = (next(r for r in record["rows"] if r["bf16"] is flag) for flag in (False, True))
    return {"bf16_config": record["config"], "bf16_seed": record["seed"],
            "bf16_fp32_valid_weighted_f1": 100 * fp32["valid_weighted_f1"],
            "bf16_valid_weighted_f1": 100 * bf16["valid_weighted_f1"],
            "bf16_speedup": fp32["train_minutes"] / bf16["train_minutes"]}


def partial_speedup(speed: pd.DataFrame) -> float:
    """How many times cheaper an epoch gets with the encoder's top layers alone trained under bfloat16 autocast than
    with every layer trained in float32, averaged over the (corpus, encoder, window) :func:`speed_table` timed
    both ways."""
    key = ["corpus", "encoder", "previous utterances"]
    full = speed[(speed["bf16"] == "no") & (speed["layers trained"] == "all")].set_index(key)["min / epoch"]
    partial = speed[(speed["bf16"] == "yes") & (speed["layers trained"] != "all")].set_index(key)["min / epoch"]
    pairs = full.to_frame("full").join(partial.rename("partial"), how="inner")
    check(len(pairs) > 0, "finetune_speed.json times no encoder both with every layer in float32 and with its top "
          "layers alone in bfloat16")
    return float((pairs["full"] / pairs["partial"]).mean())


def finetuned_facts(name: str, rows: list[dict], frozen: list[dict], runs: dict[int, dict]) -> dict[str, float | int | str]:
    """What the section says of one corpus (percent), keyed by glue names ``<corpus>_ft_*`` (:func:`glue_prefix`);
    ``frozen``: :func:`frozen_rows` of the corpus, empty where it has no frozen-encoder recipe (no comparison facts
    then)."""
    own, mcef, logistic = rows
    prefix = glue_prefix(name)
    facts = {f"{prefix}_ft_n": mcef["n"], f"{prefix}_ft_own_weighted_f1": own["weighted_f1"] * 100,
             f"{prefix}_ft_logistic_weighted_f1": logistic["weighted_f1"] * 100}
    for metric in HEADLINE:
        facts[f"{prefix}_ft_{metric}"] = mcef[metric] * 100
        facts[f"{prefix}_ft_{metric}_std"] = 0.0 if mcef[f"{metric}_std"] is None else mcef[f"{metric}_std"] * 100
    if frozen:
        facts[f"{prefix}_frozen_weighted_f1"] = frozen[0]["weighted_f1"] * 100
        gain = (mcef["weighted_f1"] - frozen[0]["weighted_f1"]) * 100
        facts[f"{prefix}_ft_gain"], facts[f"{prefix}_ft_side"] = abs(gain), "above" if gain >= 0 else "below"
    facts[f"{prefix}_ft_minutes"] = fine_tuning_minutes(runs)
    facts[f"{prefix}_ft_valid_weighted_f1"] = valid_weighted_f1(runs)
    for split in ("train", "valid"):  # how far the encoder fits its own training labels
        facts[f"{prefix}_ft_own_{split}_weighted_f1"] = 100 * statistics.fmean(
            encoding_record(s)["classifier"][split]["weighted_f1"] for s in runs.values())
    facts[f"{prefix}_ft_mcef_epoch"] = statistics.fmean(s["selected_epoch"] for s in runs.values())
    facts[f"{prefix}_ft_kept_last"] = kept_last(runs)
    return facts


def finetuned_sentence(name: str, facts: dict, corpus: Corpus, frozen: Corpus | None, *, longer: bool = False) -> str:
    """The section's finding for one corpus (Markdown), from :func:`finetuned_facts`; ``frozen``: the corpus's
    frozen-encoder recipe (chapter 7's first part), None where it has none (the sentence then compares nothing);
    ``longer``: whether a longer fine-tuning of the corpus is reported after it (:func:`longer_sentence`)."""
    f = {k.removeprefix(f"{glue_prefix(name)}_"): v for k, v in facts.items()}
    tune = corpus.config.data.text
    figure = mean_std(f["ft_weighted_f1"], f["ft_weighted_f1_std"] if f["ft_n"] > 1 else None, scale=1.0)
    against = (f", {f['ft_gain']:.1f} points {f['ft_side']} MCEF on frozen {frozen.encoder} features "
               f"({f['frozen_weighted_f1']:.2f})" if frozen is not None else "")
    return (f"On {corpus_label(name)}, fine-tuning {corpus.encoder} as an utterance classifier with the "
            f"{tune.window_before} previous utterances as context (about {f['ft_minutes']:.0f} minutes of "
            f"fine-tuning per seed on the CPU) gives MCEF text-only a test weighted F1 of {figure} over "
            f"{f['ft_n']} seed{'s' if f['ft_n'] != 1 else ''}{against}. "
            f"The fine-tuned encoder's own classifier scores {f['ft_own_weighted_f1']:.2f} and a context-free "
            f"logistic regression on its features {f['ft_logistic_weighted_f1']:.2f}. The encoder fits the labels "
            f"it was tuned on far better than new ones (weighted F1 {f['ft_own_train_weighted_f1']:.1f} on the "
            f"training split, {f['ft_own_valid_weighted_f1']:.1f} on validation), so the training features MCEF "
            f"learns from are easier than the ones it is tested on, and MCEF's validation score peaks at epoch "
            f"{f['ft_mcef_epoch']:.0f} on average. In {f['ft_kept_last']} of {f['ft_n']} seeds the encoder's "
            f"validation score was best at the last epoch it ran (of at most {tune.finetune.epochs}, over which "
            f"the learning rate decays to zero), so whether a longer fine-tuning helps is "
            f"{'measured below, on the utterance read alone' if longer else 'not measured here'}.")


def pending_sentence(settings: RealTextSettings, corpus: Corpus, missing: list[int], n_present: int, *,
                     baselines: bool = True) -> str:
    """What of the planned grid is not committed yet, and the commands that make it (Markdown; empty when none);
    ``baselines``: whether each seed also has a logistic baseline to fit."""
    if not missing:
        return ""
    sweep = seed_commands(settings, corpus, missing)[0]
    then = f", then, for each seed, `{baseline_command(settings, corpus, 'S')}`" if baselines else ""
    which = f"seed {missing[0]} is" if len(missing) == 1 else f"seeds {', '.join(map(str, missing))} are"
    return (f"**{n_present} of {len(settings.seeds)} planned seeds** of `{corpus.config_path}` are committed; "
            f"{which} made by `{sweep}` (resumable){then}.")
