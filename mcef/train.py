"""Training one run: ``fit(config)`` trains, selects the epoch on validation and writes a run directory.

Run directory (``runs/<name>-<config digest[:8]>/`` by default, a run of the store in :mod:`mcef.runs`), every file
written atomically (a killed write leaves a ``.<name>.<random>.tmp``, removed by the next start):
- ``run.json``: the run's identity (digest of the defining config, the data's content and the package version);
- ``config.yaml``: the complete config (reloads to the same config);
- ``metrics.jsonl``: one line per epoch: every loss term, accuracy, weighted-F1 and macro-F1 on train and valid,
  learning rate, epoch seconds;
- ``summary.json``: the epoch selected on validation weighted-F1, the test figures of that epoch (evaluated once,
  from ``best.pt``, after training), ``oracle_best_test`` (best test figures over all epochs: the reference's
  test-selected protocol, kept for comparison with the literature only), the run's facts and its provenance; for a
  run whose loss or gradient went non-finite, ``diverged`` (epoch, batch, term, message) and no test figure;
- ``best.pt`` / ``last.pt``: tensors and plain values only (model, optimizer, scheduler, RNG and selection state,
  the metrics records so far): enough to resume exactly, loaded with ``weights_only=True``;
- ``.lock`` while a training holds the directory (its pid, host, start time and command).

A finished or partial run is never replaced unless asked (``overwrite=True``); resuming reads ``last.pt``, else
``best.pt`` when ``last.pt`` is damaged, and rebuilds a damaged ``metrics.jsonl`` from the checkpoint.

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
import math
import os
import platform
import random
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mcef.config import ConfigError, ExperimentConfig, config_to_dict, save_config
from mcef.data.dataset import IEMOCAP_LABELS, DialogueDataset
from mcef.device import describe_device, resolve_device
from mcef.io import remove_stale_temporaries, save_torch_atomic, write_json_atomic, write_text_atomic
from mcef.metrics import HEADLINE, confusion_counts, scores
from mcef.model import MCEF, MCEFConfig, count_parameters
from mcef.runs import (RunDirError, RunIdentity, config_digest, data_fingerprint, explain_mismatch, read_run,
                       reusable, run_lock, write_identity)

ORACLE_NOTE = ("best test figure over all epochs, each metric at its own best epoch: the reference's test-selected "
               "protocol, for comparison with the literature only; never used for selection")
RUN_FILES = ("run.json", "metrics.jsonl", "summary.json", "best.pt", "last.pt")


# ----------------------------------------------------------------------------------------------- building blocks

def load_data(config: ExperimentConfig) -> tuple[DialogueDataset, str]:
    """The dataset of ``config.data`` (a fine-tuning seed left to the run set to its seed) and a one-line description
    of where it came from."""
    from mcef.features.pipeline import data_for_run, load_data as load_data_section

    return load_data_section(data_for_run(config), device=config.train.device)


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


def _grad_norm(model) -> torch.Tensor:
    """The total 2-norm of the model's gradients, as a device tensor (no sync)."""
    parameters = list(model.parameters())
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros((), device=parameters[0].device if parameters else "cpu")
    if hasattr(torch.nn.utils, "get_total_norm"):
        return torch.nn.utils.get_total_norm(grads)
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


def _first_nonfinite(batches: list, n_batches: int) -> dict:
    """Where a pass went non-finite: the first batch whose total loss or gradient norm is not finite, with its terms.

    ``batches`` holds per batch (loss terms, gradient norm or None, dialogue ids); read only when the pass's sums
    were not finite, so the batch-by-batch transfers happen only then."""
    for index, (losses, grad_norm, ids) in enumerate(batches, start=1):
        values = {k: float(v) for k, v in losses.items()}
        bad = [k for k, v in values.items() if k != "total" and not math.isfinite(v)]
        if not math.isfinite(values["total"]):
            term = bad[0] if bad else "total"
            return {"batch": index, "batches": n_batches, "term": term, "value": str(values[term]),
                    "terms": bad or ["total"], "dialogues": list(ids[:3])}
        if grad_norm is not None and not math.isfinite(float(grad_norm)):
            return {"batch": index, "batches": n_batches, "term": "gradient", "value": str(float(grad_norm)),
                    "terms": ["gradient norm"], "dialogues": list(ids[:3])}
    return {"batch": None, "batches": n_batches, "term": "total", "value": "nan", "terms": ["total"], "dialogues": []}


def run_epoch(model, loader, objective, n_classes: int, *, optimizer=None) -> dict:
    """One pass over ``loader``: trains when ``optimizer`` is given, else evaluates without gradients.

    The network runs in its own ``config.precision`` (one autocast, inside the model); the objective in float32.
    Returns every loss term averaged over utterances (``loss_<term>``; the total is ``loss``), the (C, C)
    confusion matrix of the fused classifier, and ``nonfinite``: None, or where the total loss or the gradient norm
    first went non-finite (batch, term, value). Sums stay on the device: one transfer per pass, no per-batch sync
    (the per-batch values are read back only when a sum is not finite).
    """
    training = optimizer is not None
    model.train(training)
    sums: dict[str, torch.Tensor] = {}
    n_utterances = grad_sum = None
    cm = None
    batches = []  # (detached loss terms, gradient norm, dialogue ids) per batch: references only
    with torch.set_grad_enabled(training):
        for batch in loader:
            output = model(batch)
            losses = objective(output, batch)
            grad_norm = None
            if training:
                optimizer.zero_grad(set_to_none=True)
                losses["total"].backward()
                grad_norm = _grad_norm(model)
                grad_sum = grad_norm if grad_sum is None else grad_sum + grad_norm
                optimizer.step()
            n = batch.mask.sum()  # utterances in the batch (a device tensor: no sync)
            detached = {key: value.detach().float() for key, value in losses.items()}
            for key, value in detached.items():
                sums[key] = sums.get(key, 0) + value * n
            batches.append((detached, grad_norm, batch.dialogue_ids))
            n_utterances = n if n_utterances is None else n_utterances + n
            predictions = output.fused_logits.detach().argmax(dim=-1)  # (B, T)
            counts = confusion_counts(batch.labels, predictions, n_classes)
            cm = counts if cm is None else cm + counts
    keys = list(sums)
    extra = [grad_sum.float().to(n_utterances.device)] if grad_sum is not None else []
    totals = torch.stack([sums[k] for k in keys] + extra + [n_utterances.float()]).cpu().tolist()
    result = {("loss" if k == "total" else f"loss_{k}"): v / totals[-1] for k, v in zip(keys, totals)}
    result["confusion_matrix"] = cm.cpu().numpy()
    finite = math.isfinite(result["loss"]) and all(math.isfinite(v) for v in totals[len(keys):-1])
    result["nonfinite"] = None if finite else _first_nonfinite(batches, len(batches))
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
    """Where the data came from, how big each split is and, for text encoded here, how (the encoder, its settings
    and, after a fine-tuning, its kept epoch and its own classifier's scores per split)."""
    extra = {"text_features": dataset.meta["text_features"]} if "text_features" in dataset.meta else {}
    return {
        **extra,
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
    diverged: dict | None = None  # where a loss term or the gradient went non-finite (the run then stops)


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
            "oracle": list(selection.oracle), "history": [dict(h) for h in selection.history],
            "seconds": selection.prior_seconds + time.perf_counter() - started}


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
    except FileNotFoundError:
        raise
    except (EOFError, RuntimeError, OSError) as err:
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({type(err).__name__}: {err})") from None


def _notice(message: str) -> None:
    print(f"mcef: {message}", file=sys.stderr, flush=True)


def _last_good_checkpoint(t: Training) -> dict:
    """The newest checkpoint of the run that loads: ``last.pt``, else ``best.pt`` (a notice says so); a
    CheckpointError naming the files when neither does."""
    errors = []
    for name in ("last.pt", "best.pt"):
        path = t.run_dir / name
        if not path.exists():
            continue
        try:
            state = load_checkpoint(path, t.device)
        except CheckpointError as err:
            errors.append(str(err))
            continue
        if errors:
            _notice(f"{errors[0]}; resuming from {path} (epoch {state['epoch']}), the last good state")
        return state
    raise CheckpointError(f"cannot resume {t.run_dir}: {'; '.join(errors) or 'no checkpoint'}; pass --overwrite "
                          f"(overwrite=True) to start the run again")


def _restored_history(t: Training, state: dict) -> list[dict]:
    """Epochs 1..state's epoch of the run's records: the checkpoint's own copy, else metrics.jsonl (complete)."""
    epoch = state["epoch"]
    if "history" in state:
        return [dict(h) for h in state["history"] if h["epoch"] <= epoch]
    path = t.run_dir / "metrics.jsonl"
    try:
        history = [h for h in read_metrics(t.run_dir) if h["epoch"] <= epoch]
    except (ValueError, KeyError, TypeError, OSError) as err:
        history, reason = [], f"unreadable ({type(err).__name__}: {err})"
    else:
        reason = f"holds epochs {[h['epoch'] for h in history]}"
    if [h["epoch"] for h in history] != list(range(1, epoch + 1)):
        raise CheckpointError(f"cannot resume {t.run_dir}: {path} is damaged ({reason}; expected epochs 1 to "
                              f"{epoch}) and the checkpoint has no copy of it; pass --overwrite to start again")
    return history


def restore(t: Training) -> Selection:
    """The state to resume from: the run's last good checkpoint (its digest checked), its records rebuilt."""
    state = _last_good_checkpoint(t)
    if state.get("identity", {}).get("digest") != t.identity.digest:
        raise ConfigError(f"cannot resume: {explain_mismatch(read_run(t.run_dir), t.config, t.identity)}")
    best = t.run_dir / "best.pt"
    if state["best_epoch"] and state["best_epoch"] != state["epoch"]:
        try:  # the selected epoch's weights must still be there
            load_checkpoint(best, t.device)
        except (CheckpointError, FileNotFoundError) as err:
            raise CheckpointError(f"cannot resume {t.run_dir}: the selected epoch {state['best_epoch']}'s weights "
                                  f"are lost ({err}); pass --overwrite to start the run again") from None
    t.model.load_state_dict(state["model"])
    t.optimizer.load_state_dict(state["optimizer"])
    if t.scheduler is not None:
        t.scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    history = _restored_history(t, state)
    _write_metrics(t.run_dir / "metrics.jsonl", history)  # a damaged metrics.jsonl is rebuilt now
    if state["best_epoch"] and state["best_epoch"] == state["epoch"]:
        try:
            load_checkpoint(best, t.device)
        except (CheckpointError, FileNotFoundError):
            save_torch_atomic(best, state)  # the state of the selected epoch is this one
    return Selection(next_epoch=state["epoch"] + 1, best_epoch=state["best_epoch"],
                     best_score=state["best_valid_weighted_f1"], prior_seconds=state["seconds"],
                     oracle=state["oracle"], history=history)


def _divergence(result: dict, epoch: int, split: str) -> dict | None:
    """The divergence record of a pass (None when its loss and gradients stayed finite), with its message."""
    where = result["nonfinite"]
    if where is None:
        return None
    batch = f"batch {where['batch']} of {where['batches']}" if where["batch"] else "a batch"
    what = ("the gradient norm is {value} (every loss term finite)" if where["term"] == "gradient"
            else "loss term {term} is {value}").format(**where)
    also = [t for t in where["terms"] if t != where["term"]]
    message = (f"diverged at epoch {epoch}, {batch} ({split}"
               f"{', dialogues ' + ', '.join(where['dialogues']) if where['dialogues'] else ''}): {what}"
               f"{' (also non-finite: ' + ', '.join(also) + ')' if also else ''}; the run stopped, no test figure "
               f"is reported (try a lower train.lr)")
    return {"epoch": epoch, "split": split, **where, "message": message}


def _epoch(t: Training, epoch: int) -> tuple[dict | None, dict | None, dict | None]:
    """Train one epoch, then evaluate valid (and test, for the oracle record only); (record, oracle, divergence):
    a non-finite loss or gradient gives (None, None, where it happened)."""
    n_classes, labels = t.dataset.n_classes, t.dataset.label_names
    tick = time.perf_counter()
    t.loaders["train"].set_epoch(epoch)
    lr = t.optimizer.param_groups[0]["lr"]
    train = run_epoch(t.model, t.loaders["train"], t.objective, n_classes, optimizer=t.optimizer)
    diverged = _divergence(train, epoch, "train")
    if diverged is not None:
        return None, None, diverged
    valid = run_epoch(t.model, t.loaders["valid"], t.objective, n_classes)
    diverged = _divergence(valid, epoch, "valid")
    if diverged is not None:
        return None, None, diverged
    record = {"epoch": epoch, **epoch_record("train", train, labels), **epoch_record("valid", valid, labels),
              "lr": lr, "epoch_seconds": time.perf_counter() - tick}
    oracle = None
    if t.config.train.record_oracle_test:
        test = run_epoch(t.model, t.loaders["test"], t.objective, n_classes)
        oracle = {"epoch": epoch, **{k: v for k, v in scores(test["confusion_matrix"]).items() if k in HEADLINE}}
    if t.scheduler is not None:
        t.scheduler.step(record["valid_loss"])
    return record, oracle, None


def train_epochs(t: Training, selection: Selection, started: float, show_progress: bool) -> Selection:
    """The epoch loop: train, validate, select on validation weighted-F1, checkpoint, stop early (or on a
    non-finite loss or gradient: ``selection.diverged``, nothing of that epoch kept)."""
    from tqdm.auto import tqdm

    tc = t.config.train
    best_state = None  # snapshot of the selected epoch, written to best.pt at the next checkpoint
    done = selection.next_epoch - 1
    selection.stopped_early = tc.early_stopping > 0 and selection.best_epoch > 0 and \
        done - selection.best_epoch >= tc.early_stopping
    epochs = tqdm(range(selection.next_epoch, tc.epochs + 1), desc=t.config.name, unit="epoch", initial=done,
                  total=tc.epochs, disable=not show_progress, dynamic_ncols=True)
    for epoch in epochs if not selection.stopped_early else ():
        record, oracle, selection.diverged = _epoch(t, epoch)
        if selection.diverged is not None:
            break
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


def _run_facts(t: Training, selection: Selection, started: float) -> dict:
    """The part of ``summary.json`` every run has, diverged or not."""
    facts = provenance(t)
    return {
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


def finish(t: Training, selection: Selection, started: float) -> dict:
    """The single test evaluation (the selected epoch's weights, read back from best.pt) and ``summary.json``;
    for a diverged run, ``summary.json`` records where (``diverged``) and holds no test figure."""
    if selection.diverged is not None:
        summary = {"name": t.config.name, "diverged": selection.diverged, "epochs_run": selection.next_epoch - 1,
                   "note": "a diverged run is a result, not a number: no test figure is evaluated or reported",
                   **_run_facts(t, selection, started)}
        write_json_atomic(t.run_dir / "summary.json", summary)
        return summary
    best = load_checkpoint(t.run_dir / "best.pt", t.device)
    t.model.load_state_dict(best["model"])
    test = run_epoch(t.model, t.loaders["test"], t.objective, t.dataset.n_classes)
    selected = next(h for h in selection.history if h["epoch"] == best["epoch"])
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
        **_run_facts(t, selection, started),
    }
    write_json_atomic(t.run_dir / "summary.json", summary)
    return summary


def default_run_dir(config: ExperimentConfig, runs_root: str | Path = "runs") -> Path:
    """``runs_root/<name>-<first 8 hex of the config digest>``: configs that differ never share it by accident."""
    return Path(runs_root) / f"{config.name}-{config_digest(config)[:8]}"


def _reused(run_dir: Path, identity: RunIdentity) -> dict | None:
    """The summary of the finished (or diverged) run of ``identity``'s digest in ``run_dir``, else None."""
    stored = reusable(run_dir, identity)
    if stored is None and run_dir.is_dir():
        stored = read_run(run_dir)
        same = stored.identity is not None and stored.identity.digest == identity.digest
        stored = stored if stored.status == "diverged" and same else None
    return None if stored is None else stored.summary


def _refusal(stored, config: ExperimentConfig, identity: RunIdentity, same: bool) -> str:
    """Why a plain (re)run does not train into ``stored``'s directory, and what to pass instead."""
    elsewhere = "train into another run directory (the default one differs per config)"
    if stored.status in ("finished", "diverged"):
        if same:
            return (f"{stored.path} holds a {stored.status} run of this same config and data (digest "
                    f"{identity.digest}), which is reused unless retraining is asked. Nothing was changed: pass "
                    f"--overwrite (overwrite=True) to train it again")
        return (f"{explain_mismatch(stored, config, identity)}: a {stored.status} run; reuse happens automatically "
                f"when the digest matches, and this one does not. Nothing was changed: {elsewhere}, or pass "
                f"--overwrite (overwrite=True) to replace it")
    try:
        done = f" ({len(read_metrics(stored.path))} of {config.train.epochs} epochs done)"
    except (OSError, ValueError):
        done = ""
    if same:
        return (f"{stored.path} holds a partial run of this config{done}. Nothing was changed: pass --resume "
                f"(resume=True) to continue it or --overwrite (overwrite=True) to start it again")
    return (f"{explain_mismatch(stored, config, identity)}: a partial run{done}. Nothing was changed: {elsewhere}, or "
            f"pass --overwrite (overwrite=True) to replace it (--resume continues only a run of the same config)")


def claim(run_dir: Path, config: ExperimentConfig, identity: RunIdentity, *, resume: bool, overwrite: bool) -> bool:
    """Whether to resume from a checkpoint in ``run_dir`` (locked by the caller); for a fresh start the run files
    are removed, but only when that loses nothing or ``overwrite``: else a RunDirError says what is there."""
    stored = read_run(run_dir)
    same = stored.identity is not None and stored.identity.digest == identity.digest
    checkpoint = any((run_dir / name).exists() for name in ("last.pt", "best.pt"))
    if resume and checkpoint and (same or not overwrite):
        return True  # restore() checks the checkpoint's own digest
    if (stored.status != "empty" or checkpoint) and not overwrite and not (resume and same):
        raise RunDirError(_refusal(stored, config, identity, same))
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    return False


def fit(config: ExperimentConfig, *, dataset: DialogueDataset | None = None, run_dir: str | Path | None = None,
        runs_root: str | Path = "runs", resume: bool = False, reuse: bool = True, overwrite: bool = False,
        progress: bool | None = None, data_description: str | None = None) -> dict:
    """Train one run of ``config`` and write its run directory; returns the summary dict.

    ``dataset`` (default: the one ``config.data`` names) is used as is. ``run_dir`` defaults to
    :func:`default_run_dir` (``runs_root/<name>-<config digest[:8]>``). A finished (or diverged) run there with the
    same digest (:mod:`mcef.runs`) is reused unless ``reuse=False``. ``resume=True`` continues the same run from
    ``last.pt`` (else ``best.pt``) and ends with the same metrics as an uninterrupted run (a run of another digest
    there is a ConfigError naming what differs). A finished or partial run is never replaced without
    ``overwrite=True``: a RunDirError says what is there. The run directory is locked (``.lock``) while training:
    a second training into it is a RunLockedError naming the holder. ``progress`` overrides
    ``config.train.progress``. A non-finite loss or gradient stops the run: its summary has ``diverged``.
    """
    started = time.perf_counter()
    if dataset is None:
        dataset, data_description = load_data(config)
    data_description = data_description or dataset.source or dataset.name
    _check_splits(dataset, data_description)
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(config, runs_root)
    identity = RunIdentity.of(config, data_fingerprint(dataset))
    summary = _reused(run_dir, identity) if reuse else None
    if summary is not None:
        return summary
    with run_lock(run_dir), deterministic_mode(config.train.deterministic):
        remove_stale_temporaries(run_dir)
        resuming = claim(run_dir, config, identity, resume=resume, overwrite=overwrite)
        training = build(config, dataset, data_description, run_dir, identity)
        selection = restore(training) if resuming else Selection()
        write_identity(run_dir, identity)
        save_config(config, run_dir / "config.yaml")
        show = config.train.progress if progress is None else progress
        selection = train_epochs(training, selection, started, show)
        return finish(training, selection, started)
