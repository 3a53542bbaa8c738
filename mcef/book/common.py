"""What every chapter of the book shares: profiles, the data a chapter runs on, its header, runs from the run store,
the figures' look, and the self-checks that fail a page.

- Profiles: a notebook receives only the profile's name (a papermill scalar) and reads its sizes from
  ``configs/profiles/<name>.yaml`` under the project root (the working directory where ``mcef book`` runs, or
  ``root``). Every section maps to a settings dataclass without defaults (:func:`section_settings`): the YAML
  gives every field, and a missing or unknown key is an error naming the profile file and the key.
- Runs: a section of type :class:`RunRecipe` names a recipe in ``configs/`` and the fields the profile changes
  (:func:`run_config`). :func:`train_or_reuse` looks every run up in the run store by its digest
  (:mod:`mcef.runs`), wherever under the run root it lies, and trains only what is missing, so a chapter reads
  another chapter's runs by rebuilding their config, never by a folder name.
- Figures: importing this module registers the ``mcef_book`` Plotly renderer (``"plotly_mimetype+mcef_book"``):
  JupyterLab draws the Plotly mimetype part itself, the Jupyter Book renders the HTML part, which references
  plotly.js served once from the book's static files. Titles are plain text and no figure has a fixed width.
"""

from __future__ import annotations

import os
import typing
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Mapping, TypeVar

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import yaml
from plotly.io._base_renderers import MimetypeRenderer

from mcef.config import ExperimentConfig, load_config, with_changes
from mcef.book.runner import DEFAULT_RUN_ROOT
from mcef.data.dataset import DialogueDataset
from mcef.runs import RunIdentity, data_fingerprint, find_run, read_run

PROFILE_NAMES = ("smoke", "quick", "full", "results")
PROFILES = Path("configs") / "profiles"  # relative to the project root

Settings = TypeVar("Settings")


class ProfileError(ValueError):
    """A profile file that cannot be used: the message names the file, the section and the key."""


class SelfCheckFailed(RuntimeError):
    """A chapter's self-check failed: the page would state something its own numbers contradict."""


def check(condition: bool, message: str) -> None:
    """Raise :class:`SelfCheckFailed` with ``message`` (what differed) unless ``condition`` holds."""
    if not condition:
        raise SelfCheckFailed(message)


def project_root(root: str | Path | None = None) -> Path:
    """``root``, or the project root: the working directory (where ``mcef book`` and papermill run the notebooks) or
    the nearest folder above it holding ``configs/profiles`` (JupyterLab starts a notebook's kernel in ``notebooks/``)."""
    if root is not None:
        return Path(root)
    here = Path.cwd()
    return next((folder for folder in (here, *here.parents) if (folder / PROFILES).is_dir()), here)


# ----------------------------------------------------------------------------- profiles


@dataclass(frozen=True)
class Profile:
    """One run profile, as read from ``configs/profiles/<name>.yaml``."""

    name: str  # smoke | quick | full
    description: str  # what the profile is for, one line (shown at the top of every chapter)
    n_seeds: int  # seeds behind every reported number (the paper recipe: 5)
    path: Path  # the YAML file it came from (named in errors)
    run_root: str = ""  # where its chapters' runs live, relative to the project root; "" = runs/book/<name>
    sections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # part name -> its settings

    def section(self, name: str) -> dict[str, Any]:
        """The settings of part ``name`` (a fresh dict); a clear error if the profile lacks it."""
        if name not in self.sections:
            raise ProfileError(f"{self.path}: profile {self.name!r} has no section {name!r}; "
                               f"it has {sorted(self.sections)}")
        return dict(self.sections[name])

    def seeds(self, seeds: str | int | None = "") -> list[int]:
        """The seeds to run: ``seeds`` as "0,1,2" or an int, or ``range(n_seeds)`` when empty."""
        if seeds is None or seeds == "":
            return list(range(self.n_seeds))
        if isinstance(seeds, int):
            return [seeds]
        try:
            return [int(s) for s in str(seeds).split(",") if s.strip()]
        except ValueError:
            raise ValueError(f"seeds must be comma-separated integers such as '0,1,2', got {seeds!r}") from None


def load_profile(name: str, root: str | Path | None = None) -> Profile:
    """Read profile ``name``: ``<root>/configs/profiles/<name>.yaml`` (root: the working directory)."""
    directory = project_root(root) / PROFILES
    path = directory / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in directory.glob("*.yaml"))
        raise ProfileError(f"unknown profile {name!r}: {path} does not exist; known profiles: {known}")
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise ProfileError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    for key, kind in (("description", str), ("n_seeds", int)):
        if not isinstance(raw.get(key), kind):
            raise ProfileError(f"{path}: key {key!r} must be a {kind.__name__}, got {raw.get(key)!r}")
    if not isinstance(raw.get("run_root", ""), str):
        raise ProfileError(f"{path}: key 'run_root' must be a path relative to the project root, got {raw['run_root']!r}")
    sections = {}
    for key, value in raw.items():
        if key in ("description", "n_seeds", "run_root"):
            continue
        if not isinstance(value, dict):
            raise ProfileError(f"{path}: section {key!r} must be a mapping of settings, got {value!r}")
        sections[key] = MappingProxyType(value)
    return Profile(name=name, description=raw["description"], n_seeds=raw["n_seeds"], path=path,
                   run_root=raw.get("run_root", ""), sections=MappingProxyType(sections))


def section_settings(profile: str | Profile, section: str, cls: type[Settings], root: str | Path | None = None) -> Settings:
    """The settings dataclass ``cls`` filled from ``section`` of ``profile``: every field must be given, none other.

    Lists become tuples where the field is a tuple. A missing or unknown key is a :class:`ProfileError` naming the
    profile file, the section and the keys.
    """
    spec = profile if isinstance(profile, Profile) else load_profile(profile, root)
    values = spec.section(section)
    names = [f.name for f in fields(cls)]
    unknown, missing = sorted(set(values) - set(names)), [n for n in names if n not in values]
    if unknown or missing:
        faults = ([f"has unknown keys {unknown}"] if unknown else []) + ([f"lacks the keys {missing}"] if missing else [])
        raise ProfileError(f"{spec.path}: section {section!r} {'; '.join(faults)}; {cls.__name__} expects exactly {names}")
    hints = typing.get_type_hints(cls)
    for name in names:
        if typing.get_origin(hints[name]) is tuple and isinstance(values[name], list):
            values[name] = tuple(values[name])
    return cls(**values)


# ----------------------------------------------------------------------------- runs from the run store


@dataclass(frozen=True)
class RunRecipe:
    """A profile section that defines an experiment: a recipe in ``configs/`` and the fields changed from it."""

    name: str  # the runs' name: they are trained into <run root>/<folder>/<name>/seed<seed>
    recipe: str  # the recipe YAML, relative to the project root, e.g. configs/paper.yaml
    changes: Mapping[str, Mapping[str, Any]]  # config sections changed from it, e.g. {"model": {"hidden": 64}}


def load_recipe(path: str | Path, root: str | Path | None = None) -> ExperimentConfig:
    """The experiment config of the YAML ``path`` (relative paths from the project root)."""
    path = Path(path)
    return load_config(path if path.is_absolute() else project_root(root) / path)


def run_config(profile: str | Profile, section: str, *, device: str = "auto", root: str | Path | None = None) -> ExperimentConfig:
    """The experiment config of the profile's :class:`RunRecipe` ``section``, on ``device``, without a progress bar."""
    recipe = section_settings(profile, section, RunRecipe, root)
    changes = {key: dict(value) for key, value in recipe.changes.items()}
    changes["train"] = {**changes.get("train", {}), "device": device, "progress": False}
    return with_changes(load_recipe(recipe.recipe, root), name=recipe.name, **changes)


@dataclass(frozen=True)
class BookRun:
    """One finished run a chapter reads."""

    config: ExperimentConfig  # with its seed
    run_dir: Path
    summary: dict  # its summary.json
    origin: str  # "loaded" (found in the store by its digest), "trained now" or "retrained now (...)"

    @property
    def seed(self) -> int:
        return self.config.train.seed


STORE_FILE = "store.yaml"  # in a run root: {read_only: true, produce: "<command>"} marks committed results
TRAIN_MISSING = "MCEF_BOOK_TRAIN_MISSING"  # =1: train what a read-only store lacks (the command that produces it)


class MissingResults(RuntimeError):
    """A read-only run store (committed results) lacks a run a chapter reads: the message names the run, why it is
    missing (absent, or present with another digest: stale) and the command that produces it."""


def store_spec(run_root: str | Path) -> dict | None:
    """The ``store.yaml`` of ``run_root`` as declared ({read_only, produce}), checked; None when there is none."""
    path = Path(run_root) / STORE_FILE
    if not path.is_file():
        return None
    spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(spec, dict) or not isinstance(spec.get("read_only"), bool) or not isinstance(spec.get("produce"), str):
        raise ProfileError(f"{path}: expected the keys read_only (true or false) and produce (the command that "
                           f"trains the runs), got {spec!r}")
    return spec


def read_only_store(run_root: str | Path) -> dict | None:
    """The ``store.yaml`` of ``run_root`` when it declares committed, read-only results and the environment does
    not lift that (``MCEF_BOOK_TRAIN_MISSING=1``); else None."""
    spec = store_spec(run_root)
    return spec if spec is not None and spec["read_only"] and os.environ.get(TRAIN_MISSING) != "1" else None


def _missing(store: dict, run_root: Path, run_dir: Path, run: ExperimentConfig, identity: RunIdentity) -> MissingResults:
    from mcef.runs import explain_mismatch

    stored = read_run(run_dir) if run_dir.is_dir() else None
    why = (f"STALE: {explain_mismatch(stored, run, identity)}" if stored is not None and stored.status != "empty"
           else f"no run of digest {identity.digest} under {run_root}")
    return MissingResults(f"the committed results lack run {run.name!r} seed {run.train.seed}: {why}. This page "
                          f"never trains for hours by surprise; produce the runs with `{store['produce']}` "
                          f"(resumable; then commit {run_root})")


def train_or_reuse(configs: Iterable[ExperimentConfig], seeds: Iterable[int], dataset: DialogueDataset,
                   run_root: str | Path, *, folder: str = "") -> list[BookRun]:
    """Every run of ``configs`` x ``seeds`` on ``dataset``: found in the run store by its digest, else trained.

    A run is looked up by digest under the whole ``run_root`` (another chapter may have trained it under another
    name). A missing one is trained by :func:`mcef.experiments.sweep` into ``run_root/folder/<name>/seed<seed>``;
    a run of another digest found there is set aside by sweep and trained again. A read-only store (committed
    results, :func:`read_only_store`) is never trained into: a missing or stale run raises :class:`MissingResults`.
    """
    from mcef.experiments import run_dir_of, sweep

    fingerprint = data_fingerprint(dataset)
    store = read_only_store(run_root)
    found_runs = []
    for config in configs:
        for seed in seeds:
            run = with_changes(config, train={"seed": int(seed)})
            identity = RunIdentity.of(run, fingerprint)
            run_dir, origin = find_run(run_root, identity), "loaded"
            if run_dir is None and store is not None:
                raise _missing(store, Path(run_root), run_dir_of(Path(run_root) / folder, run), run, identity)
            if run_dir is None:
                notes: list[str] = []
                with warnings.catch_warnings():  # fit imports tqdm.auto, which warns in a kernel without ipywidgets
                    warnings.filterwarnings("ignore", message="IProgress not found")
                    sweep([run], [int(seed)], Path(run_root) / folder, dataset=dataset, progress=False, log=notes.append)
                run_dir = run_dir_of(Path(run_root) / folder, run)
                origin = f"retrained now ({'; '.join(notes)})" if notes else "trained now"
            found_runs.append(BookRun(run, run_dir, read_run(run_dir).summary, origin))
    return found_runs


def training_runs(profile: str, dataset: DialogueDataset, seeds: Iterable[int], run_root: str | Path, *,
                  device: str = "auto", root: str | Path | None = None) -> list[BookRun]:
    """The training chapter's runs (profile section ``training_run``) of ``seeds`` on ``dataset``, by
    :func:`train_or_reuse`: chapters 2 and 6 read the very runs chapter 4 reports."""
    return train_or_reuse([run_config(profile, "training_run", device=device, root=root)], seeds, dataset, run_root)


def run_figures(run: BookRun) -> dict:
    """The row :func:`mcef.experiments.collect` makes of a run (its name as ``config``, its seed, every figure of
    :data:`mcef.experiments.RUN_FIGURES`), for :func:`mcef.experiments.aggregate`."""
    from mcef.experiments import RUN_FIGURES

    row = {"config": run.config.name, "seed": run.seed}
    for key, path in RUN_FIGURES.items():
        value = run.summary
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        row[key] = value
    return row


def default_run_root(run_root: str, profile: str, root: str | Path | None = None) -> Path:
    """``run_root``; when it is empty, the profile's ``run_root`` key (relative to the project root: the results
    profile reads committed runs), else the book's default ``<root>/runs/book/<profile>``."""
    if run_root:
        return Path(run_root)
    declared = load_profile(profile, root).run_root
    return project_root(root) / (declared or DEFAULT_RUN_ROOT / profile)


# ----------------------------------------------------------------------------- the data and the header


def data_sentence(dataset: DialogueDataset, origin: str) -> str:
    """One sentence on ``dataset`` for a chapter header: ``origin`` (e.g. "real feature file"), source, sizes."""
    sizes = ", ".join(
        f"{split} {len(ids)} dialogues / {sum(len(dataset.dialogues[d]) for d in ids)} utterances"
        for split, ids in dataset.splits.items()
    )
    dims = ", ".join(f"{m} {d}-d" for m, d in dataset.dims.items())
    source = dataset.source or "an unknown source"
    what = source if source.startswith(dataset.name) else f"`{dataset.name}` from {source}"
    return f"{origin}: {what} ({sizes}; features {dims})"


def load_book_data(data: str = "", profile: str = "smoke", seed: int = 0, needs: tuple[str, ...] = (),
                   root: str | Path | None = None) -> tuple[DialogueDataset, str]:
    """The dataset a chapter runs on, and a sentence saying which it is (for the chapter header).

    ``data`` given: that file or folder. Empty: what :func:`mcef.data.discovery.discover_data` finds in
    ``<root>/data`` and ``$MCEF_DATA`` (a real feature file, else real transcripts with offline text features). A
    chapter that ``needs`` modalities the found data lacks (fusion needs text, audio and visual), or finds nothing,
    runs on the synthetic default sized by the profile's ``synthetic`` section, and the sentence says why.
    """
    from mcef.data import SyntheticConfig, make_synthetic
    from mcef.data.discovery import discover_data, find_data

    data_dir = project_root(root) / "data"
    choice = find_data(data or None, data_dir=data_dir)
    if choice.kind == "transcripts+text-features" and set(needs) - {"text"}:
        reason = f"the data found ({choice.description}) can give text features only"
    elif choice.kind != "synthetic":
        dataset, choice = discover_data(data or None, data_dir=data_dir)
        if set(needs) <= set(dataset.modalities):
            return dataset, data_sentence(dataset, choice.description)
        reason = f"{choice.description} has only {', '.join(dataset.modalities) or 'no'} features"
    else:
        reason = "no real data was given or found"
    overrides = load_profile(profile, root).section("synthetic")
    dataset = make_synthetic(SyntheticConfig(**{"seed": seed, **overrides}))
    needed = f"; this chapter needs {', '.join(needs)}" if needs else ""
    return dataset, data_sentence(dataset, f"synthetic default ({reason}{needed})")


def chapter_header(data_description: str, profile: str, device: str, seeds: list[int] | None = None,
                   root: str | Path | None = None):
    """The computed lines every chapter shows first: which data, which profile, which device (and seeds).

    Returns an ``IPython.display.Markdown`` object (displayed by the notebook cell).
    """
    from IPython.display import Markdown

    from mcef.device import describe_device, resolve_device

    spec = load_profile(profile, root)
    lines = [
        f"**Data:** {data_description}",
        f"**Profile:** `{spec.name}` ({spec.description})",
        f"**Device:** {describe_device(resolve_device(device))}",
    ]
    if seeds is not None:
        lines.append(f"**Seeds:** {', '.join(str(s) for s in seeds)}")
    return Markdown("  \n".join(lines))


# ----------------------------------------------------------------------------- what several chapters say


def hgr_scaling(config: ExperimentConfig) -> str:
    """How ``config``'s Soft-HGR term is scaled, as a sentence for the chapters that describe the loss."""
    loss, k = config.loss, config.model.hidden
    if not loss.soft_hgr:
        return "The Soft-HGR term has weight 0: it is logged, not trained on."
    if loss.hgr_mode == "reference":
        return ("The Soft-HGR term is the reference's |loss| (chapter 3), whose size chapter 3 measures against the "
                "cross-entropy terms.")
    if loss.hgr_per_dim:
        return (f"The Soft-HGR term is taken per feature dimension: the objective, a sum over the k = H = {k} "
                f"dimensions of the representations (at most k/2 = {k / 2:g}), is divided by k, so it is at most "
                "1/2 and stays on the cross-entropy's scale at any hidden size.")
    return (f"The Soft-HGR term is the raw objective, a sum over the k = H = {k} feature dimensions (at most "
            f"k/2 = {k / 2:g}), not divided by k.")


def class_f1_over_seeds(summaries: Iterable[dict], label_names: Iterable[str]) -> pd.DataFrame:
    """Per class of the runs' ``summary.json`` dicts: mean and sample std over runs of the test F1 (NaN std for one
    run), and the class's test support (one run's count). Columns: label, f1_mean, f1_std, support, seeds."""
    summaries = list(summaries)
    if not summaries:
        raise ValueError("class_f1_over_seeds: no run summaries given")
    names = list(label_names)
    values = np.array([[s["test"]["per_class_f1"][n] for n in names] for s in summaries])  # (runs, C)
    support = np.asarray(summaries[0]["test"]["confusion_matrix"]).sum(axis=1)
    return pd.DataFrame({
        "label": names, "f1_mean": values.mean(axis=0),
        "f1_std": values.std(axis=0, ddof=1) if len(summaries) > 1 else np.full(len(names), np.nan),
        "support": support, "seeds": len(summaries),
    })  # fmt: skip


# ----------------------------------------------------------------------------- the figures' look

RENDERER = "mcef_book"
DEFAULT_RENDERERS = f"plotly_mimetype+{RENDERER}"
FIGURE_HEIGHT = 420  # px; widths are never fixed so figures follow the text column
TEMPLATE = "plotly_white"
SPLIT_COLORS = {"train": "#4C78A8", "valid": "#F58518", "test": "#54A24B"}
MODALITY_COLORS = {"text": "#4C78A8", "audio": "#E45756", "visual": "#72B7B2", "all": "#54A24B"}


class BookHtmlRenderer(MimetypeRenderer):
    """A ``text/html`` part without plotly.js: the page that shows it must load plotly.js itself."""

    def to_mimebundle(self, fig_dict):
        html = pio.to_html(fig_dict, include_plotlyjs=False, include_mathjax=False, full_html=False,
                           default_width="100%", validate=False)
        return {"text/html": html}


def setup_notebook() -> None:
    """Register the book renderer and make ``plotly_mimetype+mcef_book`` the default (idempotent); keep tqdm's
    "IProgress not found" out of the pages (a kernel without ipywidgets draws text progress bars instead, which is
    all the book needs: the sentence encoder and the training loop import tqdm.auto)."""
    pio.renderers[RENDERER] = BookHtmlRenderer()
    pio.renderers.default = DEFAULT_RENDERERS
    warnings.filterwarnings("ignore", message="IProgress not found")


setup_notebook()


def book_layout(fig: go.Figure, title: str, **kwargs) -> go.Figure:
    """The book's shared look, used by every chapter's figures: plain-text title, fixed height, free width."""
    fig.update_layout(title=title, template=TEMPLATE, height=kwargs.pop("height", FIGURE_HEIGHT),
                      margin=dict(l=60, r=20, t=60, b=50), **kwargs)
    return fig
