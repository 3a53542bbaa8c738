"""Training one run: ``fit(config)`` trains, selects the epoch on validation and writes a run directory.

Run directory (``runs/<name>/``, a run of the store in :mod:`mcef.runs`), every file written atomically:
- ``run.json``: the run's identity (digest of the defining config, the data's content and the package version);
- ``config.yaml``: the complete config (reloads to the same config);
- ``metrics.jsonl``: one line per epoch: every loss term, accuracy, weighted-F1 and macro-F1 on train and valid,
  learning rate, epoch seconds;
- ``summary.json``: the epoch selected on validation weighted-F1, the test figures of that epoch (evaluated once,
  from ``best.pt``, after training), ``oracle_best_test`` (best test figures over all epochs: the reference's
  test-selected protocol, kept for comparison with the literature only), the run's facts and its provenance;
- ``best.pt`` / ``last.pt``: tensors and plain values only (model, optimizer, scheduler, RNG and selection state):
  enough to resume exactly, loaded with ``weights_only=True``.

Selection, the learning-rate schedule and early stopping read validation figures only; the test split is read
for the oracle record (if ``train.record_oracle_test``) and once at the end.

``fit`` reads as four steps: :func:`build` (data, model, objective, optimiser, loaders), :func:`restore` (a
checkpoint's state, when resuming), :func:`train_epochs` (the epoch loop) and :func:`finish` (the one test
evaluation and the summary).
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import json
import os
import platform
import random
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mcef.config import ConfigError, ExperimentConfig, config_to_dict, save_config
from mcef.data.dataset import IEMOCAP_LABELS, DialogueDataset
from mcef.device import describe_device, resolve_device
from mcef.io import save_torch_atomic, write_json_atomic, write_text_atomic
from mcef.metrics import HEADLINE, confusion_counts, scores
from mcef.model import MCEF, MCEFConfig, count_parameters
from mcef.runs import RunIdentity, data_fingerprint, explain_mismatch, read_run, reusable, write_identity

ORACLE_NOTE = ("best test figure over all epochs, each metric at its own best epoch: the reference's test-selected "
               "protocol, for comparison with the literature only; never used for selection")
RUN_FILES = ("run.json", "metrics.jsonl", "summary.json", "best.pt", "last.pt")


# ----------------------------------------------------------------------------------------------- building blocks

def load_data(config: ExperimentConfig) -> tuple[DialogueDataset, str]:
    """The dataset of ``config.data`` and a one-line description of where it came from."""
    from mcef.features.pipeline import load_data as load_data_section

    return load_data_section(config.data, device=config.train.device)


def model_config(config: ExperimentConfig, dataset: DialogueDataset) -> MCEFConfig:
    """``config.model`` with the sizes it leaves unset taken from ``dataset`` (a ConfigError if they disagree)."""
    try:
        return config.model.for_dataset(dataset)
    except ValueError as err:
        raise ConfigError(f"model.{err}") from None


def class_weights(config: ExperimentConfig, dataset: DialogueDataset) -> torch.Tensor | None:
    """Per-class loss weights 1/prior: IEMOCAP's published priors on IEMOCAP-6 (``auto``), else training priors."""
    mode = config.train.class_weights
    is_iemocap6 = "iemocap" in dataset.name.lower() and tuple(dataset.label_names) == IEMOCAP_LABELS
    if mode == "none":
        return None
    if mode == "reference" or (mode == "auto" and is_iemocap6):
        from mcef.data.synthetic import IEMOCAP_PRIORS

        if dataset.n_classes != len(IEMOCAP_PRIORS):
            raise ConfigError(f"train.class_weights='reference' needs IEMOCAP's 6 classes; "
                              f"dataset {dataset.name!r} has {dataset.n_classes}")
        priors = np.asarray(IEMOCAP_PRIORS, dtype=np.float64)
    else:
        counts = dataset.class_counts("train").astype(np.float64)
        priors = np.maximum(counts, 1.0) / counts.sum()  # an absent class gets a large but finite weight
    return torch.tensor(1.0 / priors, dtype=torch.float32)


def make_objective(config: ExperimentConfig, weights: torch.Tensor | None, device: torch.device):
    """The training objective of ``config.loss`` with ``weights``, on ``device``."""
    from mcef.losses import Objective

    return Objective(config.loss, class_weights=None if weights is None else weights.to(device))


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (every device)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every global RNG state as tensors and plain values (a checkpoint loads with ``weights_only=True``)."""
    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state = {"python": [version, list(internal), gauss],
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` captured."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.cpu().numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"].cpu())  # a checkpoint loaded with map_location="cuda" moved it
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def run_epoch(model, loader, objective, n_classes: int, *, optimizer=None) -> dict:
    """One pass over ``loader``: trains when ``optimizer`` is given, else evaluates without gradients.

    The network runs in its own ``config.precision`` (one autocast, inside the model); the objective in float32.
    Returns every loss term averaged over utterances (``loss_<term>``; the total is ``loss``) and the (C, C)
    confusion matrix of the fused classifier. Sums stay on the device: one transfer per pass, no per-batch sync.
    """
    training = optimizer is not None
    model.train(training)
    sums: dict[str, torch.Tensor] = {}
    n_utterances = None
    cm = None
    with torch.set_grad_enabled(training):
        for batch in loader:
            output = model(batch)
            losses = objective(output, batch)
            if training:
                optimizer.zero_grad(set_to_none=True)
                losses["total"].backward()
                optimizer.step()
            n = batch.mask.sum()  # utterances in the batch (a device tensor: no sync)
            for key, value in losses.items():
                sums[key] = sums.get(key, 0) + value.detach().float() * n
            n_utterances = n if n_utterances is None else n_utterances + n
            predictions = output.fused_logits.detach().argmax(dim=-1)  # (B, T)
            counts = confusion_counts(batch.labels, predictions, n_classes)
            cm = counts if cm is None else cm + counts
    keys = list(sums)
    totals = torch.stack([sums[k] for k in keys] + [n_utterances.float()]).cpu().tolist()
    result = {("loss" if k == "total" else f"loss_{k}"): v / totals[-1] for k, v in zip(keys, totals)}
    result["confusion_matrix"] = cm.cpu().numpy()
    return result


def epoch_record(prefix: str, result: dict, label_names) -> dict:
    """Flat metrics of one pass: ``<prefix>_loss...`` and ``<prefix>_accuracy`` etc."""
    record = {f"{prefix}_{k}": v for k, v in result.items() if k.startswith("loss")}
    figures = scores(result["confusion_matrix"], label_names)
    record.update({f"{prefix}_{k}": figures[k] for k in HEADLINE})
    return record


def git_commit(directory: str | Path = ".") -> str:
    """The git commit of the working directory's project (``-dirty`` when the tree has changes), or ``"unknown"``."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=directory,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def describe_data(dataset: DialogueDataset, description: str) -> dict:
    """Where the data came from and how big each split is."""
    return {
        "name": dataset.name,
        "description": description,
        "modalities": list(dataset.modalities),
        "dims": dataset.dims,
        "label_names": list(dataset.label_names),
        "splits": {s: {"dialogues": len(ids), "utterances": int(sum(len(dataset.dialogues[d]) for d in ids))}
                   for s, ids in dataset.splits.items()},
    }


@contextlib.contextmanager
def deterministic_mode(enabled: bool):
    """Deterministic algorithms (warn only where none exists) for the duration of a run, restored after."""
    previous = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it to be deterministic
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The epoch records of ``run_dir/metrics.jsonl``, in order ([] before the first epoch was written)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _write_metrics(path: Path, lines: list[dict]) -> None:
    write_text_atomic(path, "".join(json.dumps(line) + "\n" for line in lines))


def _oracle_best(history: list[dict]) -> dict | None:
    """Best test figure over epochs, each headline metric with the epoch it came from."""
    if not history:
        return None
    best: dict[str, Any] = {"note": ORACLE_NOTE}
    for key in HEADLINE:
        top = max(history, key=lambda h: h[key])  # first epoch among ties
        best[key] = top[key]
        best[f"{key}_epoch"] = top["epoch"]
    return best


# ----------------------------------------------------------------------------------------------- fit

@dataclass
class Training:
    """Everything :func:`build` makes for one run."""

    config: ExperimentConfig
    dataset: DialogueDataset
    description: str  # where the data came from, in words
    identity: RunIdentity
    run_dir: Path
    device: torch.device
    model_config: MCEFConfig  # config.model resolved for the dataset
    class_weights: torch.Tensor | None
    model: MCEF
    objective: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any  # ReduceLROnPlateau, or None when train.plateau_patience is 0
    loaders: dict  # split -> DialogueLoader


@dataclass
class Selection:
    """What the epoch loop carries from epoch to epoch (and a checkpoint restores)."""

    next_epoch: int = 1
    best_epoch: int = 0
    best_score: float = -1.0
    prior_seconds: float = 0.0  # training time of the sittings before this one
    oracle: list = field(default_factory=list)  # per-epoch test headline figures, for the oracle record only
    history: list = field(default_factory=list)  # the metrics.jsonl records
    stopped_early: bool = False


def _check_splits(dataset: DialogueDataset, description: str) -> None:
    empty = [split for split in ("train", "valid", "test") if not dataset.splits.get(split)]
    if empty:
        raise ConfigError(f"dataset {dataset.name!r} ({description}) has no {empty[0]} dialogues; training needs "
                          f"train, valid (set data.valid_fraction > 0 if the file has none) and test splits")


def build(config: ExperimentConfig, dataset: DialogueDataset, description: str, run_dir: Path,
          identity: RunIdentity) -> Training:
    """Model, objective, optimiser, scheduler and loaders of a run, seeded by ``train.seed``."""
    from mcef.data import DialogueLoader

    tc = config.train
    device = resolve_device(tc.device)
    mcfg = model_config(config, dataset)
    weights = class_weights(config, dataset)
    seed_everything(tc.seed)
    model = MCEF(mcfg).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    scheduler = (torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=tc.plateau_factor,
                                                            patience=tc.plateau_patience)
                 if tc.plateau_patience > 0 else None)
    # The loader shuffles epoch e with seed + e: spread the run seeds apart so that runs never share orders.
    loaders = {split: DialogueLoader(dataset, split, batch_size=tc.batch_size, shuffle=split == "train",
                                     bucket=tc.bucket, modalities=mcfg.modalities, device=device,
                                     seed=tc.seed * 100_003)
               for split in ("train", "valid", "test")}
    return Training(config, dataset, description, identity, run_dir, device, mcfg, weights, model,
                    make_objective(config, weights, device), optimizer, scheduler, loaders)


def training_state(t: Training, selection: Selection, epoch: int, started: float) -> dict:
    """A checkpoint: tensors and plain values only."""
    return {"model": t.model.state_dict(), "optimizer": t.optimizer.state_dict(),
            "scheduler": t.scheduler.state_dict() if t.scheduler is not None else None,
            "rng": rng_state(), "epoch": epoch, "config": config_to_dict(t.config),
            "identity": asdict(t.identity), "model_config": asdict(t.model_config),
            "label_names": list(t.dataset.label_names), "speaker_names": list(t.dataset.speaker_names),
            "best_epoch": selection.best_epoch, "best_valid_weighted_f1": selection.best_score,
            "oracle": list(selection.oracle), "seconds": selection.prior_seconds + time.perf_counter() - started}


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded safely or is damaged; the message names the file."""


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict:
    """A checkpoint written by :func:`fit`, loaded without running code from it (``weights_only=True``)."""
    import pickle

    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: refused to load: it holds more than tensors and plain values, so loading it "
                              f"could run code ({first_line}); nothing in it was run") from None
    except (EOFError, RuntimeError) as err:
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({type(err).__name__}: {err})") from None


def restore(t: Training, resume: bool) -> Selection:
    """The state to start from: the run's last checkpoint when resuming the same run, else a fresh start
    (removing an earlier run's files from the run directory)."""
    checkpoint = next((t.run_dir / n for n in ("last.pt", "best.pt") if (t.run_dir / n).exists()), None)
    if not (resume and checkpoint is not None):
        for stale in RUN_FILES:
            (t.run_dir / stale).unlink(missing_ok=True)
        return Selection()
    state = load_checkpoint(checkpoint, t.device)
    if state.get("identity", {}).get("digest") != t.identity.digest:
        raise ConfigError(f"cannot resume: {explain_mismatch(read_run(t.run_dir), t.config, t.identity)}")
    t.model.load_state_dict(state["model"])
    t.optimizer.load_state_dict(state["optimizer"])
    if t.scheduler is not None:
        t.scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    history = [line for line in read_metrics(t.run_dir) if line["epoch"] <= state["epoch"]]
    return Selection(next_epoch=state["epoch"] + 1, best_epoch=state["best_epoch"],
                     best_score=state["best_valid_weighted_f1"], prior_seconds=state["seconds"],
                     oracle=state["oracle"], history=history)


def _epoch(t: Training, epoch: int) -> tuple[dict, dict | None]:
    """Train one epoch, then evaluate valid (and test, for the oracle record only)."""
    n_classes, labels = t.dataset.n_classes, t.dataset.label_names
    tick = time.perf_counter()
    t.loaders["train"].set_epoch(epoch)
    lr = t.optimizer.param_groups[0]["lr"]
    train = run_epoch(t.model, t.loaders["train"], t.objective, n_classes, optimizer=t.optimizer)
    valid = run_epoch(t.model, t.loaders["valid"], t.objective, n_classes)
    record = {"epoch": epoch, **epoch_record("train", train, labels), **epoch_record("valid", valid, labels),
              "lr": lr, "epoch_seconds": time.perf_counter() - tick}
    oracle = None
    if t.config.train.record_oracle_test:
        test = run_epoch(t.model, t.loaders["test"], t.objective, n_classes)
        oracle = {"epoch": epoch, **{k: v for k, v in scores(test["confusion_matrix"]).items() if k in HEADLINE}}
    if t.scheduler is not None:
        t.scheduler.step(record["valid_loss"])
    return record, oracle


def train_epochs(t: Training, selection: Selection, started: float, show_progress: bool) -> Selection:
    """The epoch loop: train, validate, select on validation weighted-F1, checkpoint, stop early."""
    from tqdm.auto import tqdm

    tc = t.config.train
    best_state = None  # snapshot of the selected epoch, written to best.pt at the next checkpoint
    done = selection.next_epoch - 1
    selection.stopped_early = tc.early_stopping > 0 and selection.best_epoch > 0 and \
        done - selection.best_epoch >= tc.early_stopping
    epochs = tqdm(range(selection.next_epoch, tc.epochs + 1), desc=t.config.name, unit="epoch", initial=done,
                  total=tc.epochs, disable=not show_progress, dynamic_ncols=True)
    for epoch in epochs if not selection.stopped_early else ():
        record, oracle = _epoch(t, epoch)
        selection.history.append(record)
        if oracle is not None:
            selection.oracle.append(oracle)
        if record["valid_weighted_f1"] > selection.best_score:
            selection.best_epoch, selection.best_score = epoch, record["valid_weighted_f1"]
            best_state = copy.deepcopy(training_state(t, selection, epoch, started))
        epochs.set_postfix(loss=f"{record['train_loss']:.3f}", valid_wf1=f"{record['valid_weighted_f1']:.3f}",
                           best=selection.best_epoch)
        selection.next_epoch = epoch + 1
        selection.stopped_early = tc.early_stopping > 0 and epoch - selection.best_epoch >= tc.early_stopping
        _write_metrics(t.run_dir / "metrics.jsonl", selection.history)
        if epoch % tc.checkpoint_every == 0 or epoch == tc.epochs or selection.stopped_early:
            if best_state is not None:
                save_torch_atomic(t.run_dir / "best.pt", best_state)
                best_state = None
            save_torch_atomic(t.run_dir / "last.pt", training_state(t, selection, epoch, started))
        if selection.stopped_early:
            break
    epochs.close()
    if best_state is not None:
        save_torch_atomic(t.run_dir / "best.pt", best_state)
    return selection


def provenance(t: Training) -> dict:
    """Where a result came from: commit, digests, data fingerprint, package, device, date."""
    return {"git_commit": git_commit(), "run_digest": t.identity.digest, "config_digest": t.identity.config_digest,
            "data_fingerprint": t.identity.data_fingerprint, "package_version": t.identity.package_version,
            "device": describe_device(t.device), "torch_version": torch.__version__,
            "python_version": platform.python_version(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def finish(t: Training, selection: Selection, started: float) -> dict:
    """The single test evaluation (the selected epoch's weights, read back from best.pt) and ``summary.json``."""
    best = load_checkpoint(t.run_dir / "best.pt", t.device)
    t.model.load_state_dict(best["model"])
    test = run_epoch(t.model, t.loaders["test"], t.objective, t.dataset.n_classes)
    selected = next(h for h in selection.history if h["epoch"] == best["epoch"])
    facts = provenance(t)
    summary = {
        "name": t.config.name,
        "selection": "validation weighted-F1",
        "selected_epoch": best["epoch"],
        "epochs_run": selection.next_epoch - 1,
        "stopped_early": selection.stopped_early,
        "valid": {k: selected[f"valid_{k}"] for k in HEADLINE},
        "test": {"epoch": best["epoch"], "loss": test["loss"],
                 **scores(test["confusion_matrix"], t.dataset.label_names)},
        "oracle_best_test": _oracle_best(selection.oracle),
        "parameters": count_parameters(t.model),
        "device": facts["device"],
        "seed": t.config.train.seed,
        "torch_version": facts["torch_version"],
        "python_version": facts["python_version"],
        "git_commit": facts["git_commit"],
        "wall_time_s": selection.prior_seconds + time.perf_counter() - started,
        "class_weights": None if t.class_weights is None else t.class_weights.tolist(),
        "data": describe_data(t.dataset, t.description),
        "provenance": facts,
    }
    write_json_atomic(t.run_dir / "summary.json", summary)
    return summary


def fit(config: ExperimentConfig, *, dataset: DialogueDataset | None = None, run_dir: str | Path | None = None,
        runs_root: str | Path = "runs", resume: bool = False, reuse: bool = True, progress: bool | None = None,
        data_description: str | None = None) -> dict:
    """Train one run of ``config`` and write its run directory; returns the summary dict.

    ``dataset`` (default: the one ``config.data`` names) is used as is. ``run_dir`` defaults to
    ``runs_root/config.name``. A finished run there with the same digest (:mod:`mcef.runs`) is reused unless
    ``reuse=False``. ``resume=True`` continues the same run from ``last.pt`` (else ``best.pt``) and ends with the same
    metrics as an uninterrupted run (a run of another digest there is a ConfigError naming what differs); without
    it an existing run directory is overwritten. ``progress`` overrides ``config.train.progress``.
    """
    started = time.perf_counter()
    if dataset is None:
        dataset, data_description = load_data(config)
    data_description = data_description or dataset.source or dataset.name
    _check_splits(dataset, data_description)
    run_dir = Path(run_dir) if run_dir is not None else Path(runs_root) / config.name
    identity = RunIdentity.of(config, data_fingerprint(dataset))
    stored = reusable(run_dir, identity) if reuse else None
    if stored is not None:
        return stored.summary
    with deterministic_mode(config.train.deterministic):
        training = build(config, dataset, data_description, run_dir, identity)
        selection = restore(training, resume)
        write_identity(run_dir, identity)
        save_config(config, run_dir / "config.yaml")
        show = config.train.progress if progress is None else progress
        selection = train_epochs(training, selection, started, show)
        return finish(training, selection, started)
