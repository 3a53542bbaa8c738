"""Training one run: ``fit(config)`` trains, selects the epoch on validation and writes a run directory.

Run directory (``runs/<name>/``), every file written atomically:
- ``config.yaml``: the complete config (reloads to the same config);
- ``metrics.jsonl``: one line per epoch: every loss term, accuracy, weighted-F1 and macro-F1 on train and valid,
  learning rate, epoch seconds;
- ``summary.json``: the epoch selected on validation weighted-F1, the test figures of that epoch (evaluated once,
  from ``best.pt``, after training), ``oracle_best_test`` (best test figures over all epochs: the reference's
  test-selected protocol, kept for comparison with the literature only), and the run's facts;
- ``best.pt`` / ``last.pt``: model, optimizer, scheduler, RNG and selection state: enough to resume exactly.

Selection, the learning-rate schedule and early stopping read validation figures only; the test split is read
for the oracle record (if ``train.record_oracle_test``) and once at the end.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import platform
import random
import subprocess
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mcef.config import ConfigError, ExperimentConfig, config_to_dict, save_config
from mcef.data.dataset import IEMOCAP_LABELS, DialogueDataset
from mcef.device import describe_device, resolve_device
from mcef.io import save_torch_atomic, write_json_atomic, write_text_atomic
from mcef.metrics import HEADLINE, confusion_counts, scores

ORACLE_NOTE = ("best test figure over all epochs, each metric at its own best epoch: the reference's test-selected "
               "protocol, for comparison with the literature only; never used for selection")


# ----------------------------------------------------------------------------------------------- building blocks

def load_data(config: ExperimentConfig) -> tuple[DialogueDataset, str]:
    """The dataset of ``config.data`` and a one-line description of where it came from."""
    from mcef.data import make_synthetic

    data = config.data
    if data.path is None:
        # Discovery picks the data; the synthetic fallback still honours data.synthetic and real features
        # data.text_layer / valid_fraction / split_seed.
        from mcef.data.discovery import find_data

        choice = find_data(None)
        if choice.kind == "synthetic":
            return make_synthetic(_synthetic_config(data)), choice.description
        if choice.kind == "features":
            dataset = _load_features(data, choice.path)
            if dataset.modalities:
                return dataset, choice.description
    elif data.path == "synthetic":
        synthetic = _synthetic_config(data)
        dataset = make_synthetic(synthetic)
        return dataset, dataset.source or f"synthetic ({synthetic})"
    else:
        dataset = _load_features(data, data.path)
        if dataset.modalities:
            return dataset, dataset.source or str(data.path)
    # Transcripts without feature arrays: discovery encodes their text (and caches the features).
    from mcef.data.discovery import discover_data

    dataset, choice = discover_data(data.path)
    return dataset, choice.description


def _synthetic_config(data):
    from mcef.data import SyntheticConfig

    try:
        return SyntheticConfig(**data.synthetic)
    except TypeError as err:
        raise ConfigError(f"data.synthetic: {err}; expected fields of mcef.data.SyntheticConfig") from None


def _load_features(data, path) -> DialogueDataset:
    from mcef.data import load_dataset

    return load_dataset(path, text_layer=data.text_layer, valid_fraction=data.valid_fraction,
                        split_seed=data.split_seed)


def select_modalities(config: ExperimentConfig, dataset: DialogueDataset) -> tuple[str, ...]:
    """The modalities the model uses: ``data.modalities`` (checked against the dataset) or all the dataset has."""
    if config.data.modalities is None:
        return dataset.modalities
    missing = [m for m in config.data.modalities if m not in dataset.modalities]
    if missing:
        raise ConfigError(f"data.modalities asks for {missing}, but dataset {dataset.name!r} ({dataset.source}) "
                          f"has only {list(dataset.modalities)}")
    return tuple(config.data.modalities)


def model_config(config: ExperimentConfig, dataset: DialogueDataset):
    """The MCEFConfig of ``config.model`` for ``dataset``."""
    from mcef.model import MCEFConfig

    try:
        return MCEFConfig.from_dataset(dataset, modalities=select_modalities(config, dataset), **asdict(config.model))
    except ValueError as err:
        raise ConfigError(f"model: {err}") from None


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
    from mcef.losses import LossWeights, Objective

    objective = Objective(LossWeights(**asdict(config.loss)),
                          class_weights=None if weights is None else weights.to(device))
    return objective.to(device) if isinstance(objective, torch.nn.Module) else objective


def autocast_for(device: torch.device, bf16: bool):
    """bf16 autocast on CUDA when asked for; a no-op context elsewhere."""
    if bf16 and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (every device)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every global RNG state, to restore a run bit for bit."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` captured."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())  # a checkpoint loaded with map_location="cuda" moved it
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def run_epoch(model, loader, objective, n_classes: int, *, optimizer=None, autocast=None) -> dict:
    """One pass over ``loader``: trains when ``optimizer`` is given, else evaluates without gradients.

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
            with autocast or contextlib.nullcontext():
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


def git_commit() -> str:
    """The project's git commit (with ``-dirty`` when the tree has changes), or ``"unknown"``."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
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


# ----------------------------------------------------------------------------------------------- fit

def read_metrics(run_dir: str | Path) -> list[dict]:
    """The epoch records of ``run_dir/metrics.jsonl``, in order ([] before the first epoch was written)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _write_metrics(path: Path, lines: list[dict]) -> None:
    write_text_atomic(path, "".join(json.dumps(line) + "\n" for line in lines))


def run_defining(mapping: dict) -> dict:
    """The config fields a resumed run must share with the interrupted one (not where or how visibly it runs)."""
    train = {k: v for k, v in mapping["train"].items() if k not in ("device", "progress", "checkpoint_every")}
    return {**mapping, "train": train}


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


def fit(config: ExperimentConfig, *, dataset: DialogueDataset | None = None, run_dir: str | Path | None = None,
        runs_root: str | Path = "runs", resume: bool = False, progress: bool | None = None,
        data_description: str | None = None) -> dict:
    """Train one run of ``config`` and write its run directory; returns the summary dict.

    ``dataset`` (default: the one ``config.data`` names) is used as is. ``run_dir`` defaults to
    ``runs_root/config.name``. ``resume=True`` continues from ``last.pt`` (else ``best.pt``) of ``run_dir`` and ends
    with the same metrics as an uninterrupted run; without it an existing run directory is overwritten.
    ``progress`` overrides ``config.train.progress``.
    """
    from tqdm.auto import tqdm

    from mcef.data import DialogueLoader
    from mcef.model import MCEF, count_parameters

    started = time.perf_counter()
    tc = config.train
    if dataset is None:
        dataset, data_description = load_data(config)
    data_description = data_description or dataset.source or dataset.name
    empty = [split for split in ("train", "valid", "test") if not dataset.splits.get(split)]
    if empty:
        raise ConfigError(f"dataset {dataset.name!r} ({data_description}) has no {empty[0]} dialogues; training needs "
                          f"train, valid (set data.valid_fraction > 0 if the file has none) and test splits")
    run_dir = Path(run_dir) if run_dir is not None else Path(runs_root) / config.name
    device = resolve_device(tc.device)
    mcfg = model_config(config, dataset)
    modalities = tuple(mcfg.modalities)
    weights = class_weights(config, dataset)

    with deterministic_mode(tc.deterministic):
        seed_everything(tc.seed)
        model = MCEF(mcfg).to(device)
        objective = make_objective(config, weights, device)
        optimizer = torch.optim.Adam(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
        scheduler = (torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=tc.plateau_factor,
                                                                patience=tc.plateau_patience)
                     if tc.plateau_patience > 0 else None)
        # The loader shuffles epoch e with seed + e: spread the run seeds apart so that runs never share orders.
        loaders = {split: DialogueLoader(dataset, split, batch_size=tc.batch_size, shuffle=split == "train",
                                         bucket=tc.bucket, modalities=modalities, device=device,
                                         seed=tc.seed * 100_003)
                   for split in ("train", "valid", "test")}
        autocast = autocast_for(device, tc.bf16)

        start_epoch, best_epoch, best_score, prior_seconds = 1, 0, -1.0, 0.0
        oracle: list[dict] = []
        metrics_path = run_dir / "metrics.jsonl"
        checkpoint_path = next((run_dir / n for n in ("last.pt", "best.pt") if (run_dir / n).exists()), None)
        if resume and checkpoint_path is not None:
            state = torch.load(checkpoint_path, map_location=device, weights_only=False)
            if run_defining(state["config"]) != run_defining(config_to_dict(config)):
                raise ConfigError(f"{checkpoint_path}: cannot resume: the run was started with a different config "
                                  f"(only train.device, train.progress and train.checkpoint_every may change)")
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if scheduler is not None:
                scheduler.load_state_dict(state["scheduler"])
            set_rng_state(state["rng"])
            start_epoch = state["epoch"] + 1
            best_epoch, best_score = state["best_epoch"], state["best_valid_weighted_f1"]
            oracle, prior_seconds = state["oracle"], state["seconds"]
            history = [line for line in read_metrics(run_dir) if line["epoch"] <= state["epoch"]]
        else:
            history = []
            for stale in ("metrics.jsonl", "summary.json", "best.pt", "last.pt"):
                (run_dir / stale).unlink(missing_ok=True)
        save_config(config, run_dir / "config.yaml")

        def training_state(epoch: int) -> dict:
            return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "rng": rng_state(), "epoch": epoch, "config": config_to_dict(config),
                    "model_config": asdict(mcfg), "label_names": list(dataset.label_names),
                    "speaker_names": list(dataset.speaker_names), "best_epoch": best_epoch,
                    "best_valid_weighted_f1": best_score, "oracle": list(oracle),
                    "seconds": prior_seconds + time.perf_counter() - started}

        best_state = None  # snapshot of the selected epoch, written to best.pt at the next checkpoint
        epochs = tqdm(range(start_epoch, tc.epochs + 1), desc=config.name, unit="epoch", initial=start_epoch - 1,
                      total=tc.epochs, disable=not (tc.progress if progress is None else progress), dynamic_ncols=True)
        epoch = start_epoch - 1
        stopped_early = tc.early_stopping > 0 and best_epoch > 0 and epoch - best_epoch >= tc.early_stopping
        for epoch in epochs if not stopped_early else ():
            tick = time.perf_counter()
            loaders["train"].set_epoch(epoch)
            lr = optimizer.param_groups[0]["lr"]
            train = run_epoch(model, loaders["train"], objective, dataset.n_classes, optimizer=optimizer,
                              autocast=autocast)
            valid = run_epoch(model, loaders["valid"], objective, dataset.n_classes, autocast=autocast)
            seconds = time.perf_counter() - tick
            record = {"epoch": epoch, **epoch_record("train", train, dataset.label_names),
                      **epoch_record("valid", valid, dataset.label_names), "lr": lr, "epoch_seconds": seconds}
            if tc.record_oracle_test:
                test = run_epoch(model, loaders["test"], objective, dataset.n_classes, autocast=autocast)
                oracle.append({"epoch": epoch, **{k: v for k, v in scores(test["confusion_matrix"]).items()
                                                  if k in HEADLINE}})
            if scheduler is not None:
                scheduler.step(valid["loss"])
            history.append(record)
            if record["valid_weighted_f1"] > best_score:
                best_epoch, best_score = epoch, record["valid_weighted_f1"]
                best_state = copy.deepcopy(training_state(epoch))
            epochs.set_postfix(loss=f"{record['train_loss']:.3f}", valid_wf1=f"{record['valid_weighted_f1']:.3f}",
                               best=best_epoch)
            stopped_early = tc.early_stopping > 0 and epoch - best_epoch >= tc.early_stopping
            _write_metrics(metrics_path, history)
            if epoch % tc.checkpoint_every == 0 or epoch == tc.epochs or stopped_early:
                if best_state is not None:
                    save_torch_atomic(run_dir / "best.pt", best_state)
                    best_state = None
                save_torch_atomic(run_dir / "last.pt", training_state(epoch))
            if stopped_early:
                break
        epochs.close()
        if best_state is not None:
            save_torch_atomic(run_dir / "best.pt", best_state)

        # The single test evaluation: the selected epoch's weights, read back from best.pt.
        best = torch.load(run_dir / "best.pt", map_location=device, weights_only=False)
        model.load_state_dict(best["model"])
        test = run_epoch(model, loaders["test"], objective, dataset.n_classes, autocast=autocast)

    selected = next(h for h in history if h["epoch"] == best["epoch"])
    summary = {
        "name": config.name,
        "selection": "validation weighted-F1",
        "selected_epoch": best["epoch"],
        "epochs_run": epoch,
        "stopped_early": stopped_early,
        "valid": {k: selected[f"valid_{k}"] for k in HEADLINE},
        "test": {"epoch": best["epoch"], "loss": test["loss"],
                 **scores(test["confusion_matrix"], dataset.label_names)},
        "oracle_best_test": _oracle_best(oracle),
        "parameters": count_parameters(model),
        "device": describe_device(device),
        "seed": tc.seed,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "git_commit": git_commit(),
        "wall_time_s": prior_seconds + time.perf_counter() - started,
        "class_weights": None if weights is None else weights.tolist(),
        "data": describe_data(dataset, data_description),
    }
    write_json_atomic(run_dir / "summary.json", summary)
    return summary
