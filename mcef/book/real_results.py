"""Chapter 07: the committed real-text results read back, checked and compared (MCEF text-only on IEMOCAP and MELD).

The results are made by the committed configs and the command line, never by this module: per corpus,
``mcef sweep --config configs/real/<corpus>_text.yaml --seeds ... --root book/results/real_text`` (the runs, in
``<root>/<config name>/seed<seed>/``) and ``mcef features baseline --config ... --out <root>/baseline_<corpus>.json``
(the context-free logistic baseline). Which configs, which seeds and where the artifacts are is the profile's
``real_text`` section; the encoder, the standardisation and the recipe are read from the configs themselves.
The chapter checks the artifacts (every run present, its selected epoch the best validation epoch of its log, and,
where its summary records a provenance, its config digest the committed config's) and fails, naming what is wrong
and the commands that rebuild it, when they are not complete.
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

    name: str  # "iemocap" | "meld"
    config_path: str  # as the profile names it (relative to the project root)
    config: ExperimentConfig

    @property
    def encoder(self) -> str:
        """The sentence encoder of the config's text features."""
        return self.config.data.text.encoder


def real_text_settings(profile: str, root: str | Path | None = None) -> RealTextSettings:
    """The :class:`RealTextSettings` of ``profile``."""
    return section_settings(profile, "real_text", RealTextSettings, root)


def corpora(settings: RealTextSettings, root: str | Path | None = None) -> dict[str, Corpus]:
    """Corpus name -> :class:`Corpus` of every committed config (the corpus is the transcript file the config reads)."""
    found = {}
    for path in settings.configs:
        config = load_recipe(path, root)
        name = dict(TRANSCRIPT_FILES).get(Path(config.data.path or "").name, config.name)
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


def _run_problem(run_dir: Path, summary: dict | None, corpus: Corpus, seed: int) -> str | None:
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
    problems = [_run_problem(Path(artifacts) / corpus.config.name / f"seed{seed}", runs.get(seed), corpus, seed)
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


def _stats(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample std (None for one value), as :func:`mcef.experiments.aggregate` reports them."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def _row(model: str, protocol: str, n: int | None, figures: dict, stds: dict | None = None) -> dict:
    """One comparison row: per metric of HEADLINE its value and std (None where not defined)."""
    return {"model": model, "protocol": protocol, "n": n, **{m: figures.get(m) for m in HEADLINE},
            **{f"{m}_std": (stds or {}).get(m) for m in HEADLINE}}


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
            stats = {metric: _stats([r[key][metric] for r in runs]) for metric in HEADLINE}
            rows.append(_row(model, protocol, len(runs), {m: s[0] for m, s in stats.items()},
                             {m: s[1] for m, s in stats.items()}))
    baseline = read_baselines(artifacts, [corpus.name]).get(corpus.name)
    if baseline is not None:
        chosen = ", ".join(f"{k}={v}" for k, v in baseline["chosen"].items())
        rows.append(_row("logistic regression (ours, context-free)", f"validation-selected ({chosen}), "
                         f"{corpus.encoder} features, deterministic", 1, baseline["test"]))
    for anchor in ANCHORS:
        if anchor["corpus"] == corpus.name:
            rows.append(_row(f"{anchor['model']} (published)", anchor["protocol"], None,
                             {m: None if anchor.get(m) is None else anchor[m] / 100 for m in HEADLINE}))
    return rows


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
    return pd.concat({name.upper(): seed_table(artifacts, corpus, seeds) for name, corpus in found.items()}
                     ).droplevel(1).round(4)


def per_class_figure(tables: dict[str, pd.DataFrame]):
    """Grouped bars per corpus: MCEF text-only test F1 per class (mean ± std over seeds) beside the logistic baseline."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=len(tables), subplot_titles=[c.upper() for c in tables], horizontal_spacing=0.08)
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


def per_class_display(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """:func:`class_rows` of every corpus for reading: class, support, MCEF F1 (mean ± std) and logistic F1 in percent."""
    return pd.concat({corpus.upper(): t.assign(**{
        "class": t["label"], "MCEF F1": [mean_std(m, None if pd.isna(s) else s) for m, s in zip(t["f1_mean"], t["f1_std"])],
        "logistic F1": ["-" if v is None else f"{v * 100:.2f}" for v in t["logistic_f1"]]})
        [["class", "support", "MCEF F1", "logistic F1"]] for corpus, t in tables.items()}).droplevel(1)


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
    return "; ".join(f"{name.upper()}: {c.encoder}" + (", standardised with training statistics"
                                                        if c.config.data.standardise else "")
                     for name, c in found.items())


def split_sizes(runs: dict[str, dict[int, dict]], seed: int) -> str:
    """The dialogues and utterances of every split of every corpus, as recorded by the ``seed`` run of each."""
    return "; ".join(f"{corpus.upper()}: " + ", ".join(f"{split} {v['dialogues']} dialogues / {v['utterances']} utterances"
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
