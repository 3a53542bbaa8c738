"""Using a finished run: evaluate it on a split of a dataset, predict every utterance of a feature file."""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

from mcef.config import ExperimentConfig, config_from_dict, with_added_fields
from mcef.data.dataset import DialogueDataset
from mcef.data.errors import DataError
from mcef.device import resolve_device
from mcef.io import write_text_atomic
from mcef.metrics import scores

PREDICTION_FORMATS = (".csv", ".json")


def load_run(run_dir: str | Path, *, device: str | torch.device = "auto", checkpoint: str = "best.pt"):
    """(config, model in eval mode, checkpoint dict) of the run in ``run_dir``."""
    from mcef.model import MCEF, MCEFConfig
    from mcef.train import load_checkpoint

    device = resolve_device(device)  # a bad --device is reported first, whatever the run directory holds
    path = Path(run_dir) / checkpoint
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint; is {str(run_dir)!r} a finished run directory?")
    state = load_checkpoint(path, device)
    config = config_from_dict(with_added_fields(state["config"]), str(path))
    model = MCEF(MCEFConfig(**with_added_fields(state["model_config"], "model"))).to(device)
    model.load_state_dict(state["model"])
    model.eval()
    return config, model, state


def _resolve_dataset(config: ExperimentConfig, data: DialogueDataset | str | Path | None) -> DialogueDataset:
    if isinstance(data, DialogueDataset):
        return data
    from mcef.features.pipeline import load_data

    # Another file goes through the run's own data pipeline (text encoder, standardisation), only its path differs.
    from mcef.features.pipeline import data_for_run

    data_section = data_for_run(config) if data is None else replace(data_for_run(config), path=str(data))
    return load_data(data_section, device=config.train.device)[0]


def _check_compatible(state: dict, dataset: DialogueDataset, run_dir) -> tuple[str, ...]:
    """The run's modalities, after checking that ``dataset`` has them with the same dims and labels."""
    mc = state["model_config"]
    modalities = tuple(mc["modalities"])
    for modality, dim in zip(modalities, mc["input_dims"]):
        if dataset.dims.get(modality) != dim:
            raise DataError(f"dataset {dataset.name!r} ({dataset.source}) has {modality} features of dim "
                            f"{dataset.dims.get(modality)}; the run {str(run_dir)!r} was trained on dim {dim}")
    if list(dataset.label_names) != list(state["label_names"]):
        raise DataError(f"dataset {dataset.name!r} has labels {list(dataset.label_names)}; the run "
                        f"{str(run_dir)!r} was trained on {state['label_names']}")
    if dataset.n_speakers > mc["n_speakers"]:
        raise DataError(f"dataset {dataset.name!r} has {dataset.n_speakers} speakers; the run {str(run_dir)!r} "
                        f"knows {mc['n_speakers']}")
    return modalities


def data_notice(run_dir, dataset: DialogueDataset, fingerprint: str, trained_on: str | None) -> str | None:
    """The notice for scoring a run on data other than its training data (None when it is the same data).

    ``fingerprint`` is :func:`mcef.runs.data_fingerprint` of ``dataset``; ``trained_on`` the fingerprint the run's
    checkpoint records (``state["identity"]["data_fingerprint"]``; None for a run that records none: no notice).
    """
    if trained_on is None or fingerprint == trained_on:
        return None
    return (f"the data ({dataset.source or dataset.name}, fingerprint {fingerprint}) is not the data the run "
            f"{str(run_dir)!r} was trained on (fingerprint {trained_on}): the figures describe other data")


def print_data_notice(notice: str | None, command: str = "") -> None:
    """Write ``notice`` (if any) to stderr as one line: ``mcef <command>: notice: ...``."""
    if notice:
        print(f"mcef{' ' + command if command else ''}: notice: {notice}", file=sys.stderr)


def _check_out_path(out_path: Path) -> None:
    if out_path.is_dir():
        raise ValueError(f"--out {out_path}: is a directory; expected a file path ending in "
                         f"{' or '.join(PREDICTION_FORMATS)}")
    if out_path.suffix.lower() not in PREDICTION_FORMATS:
        raise ValueError(f"{out_path}: unknown prediction format {out_path.suffix!r}; expected one of "
                         f"{list(PREDICTION_FORMATS)}")


def evaluate(run_dir: str | Path, dataset: DialogueDataset | str | Path | None = None, split: str = "test", *,
             device: str | torch.device = "auto", checkpoint: str = "best.pt") -> dict:
    """Loss terms, accuracy, weighted-F1, macro-F1, per-class F1 and confusion matrix of a run on ``split``.

    ``dataset`` is a DialogueDataset, a feature file for ``load_dataset``, or None for the run's own data.
    ``data_fingerprint`` and ``same_data_as_training`` say whether it is the data the run was trained on; when it is
    not, ``data_notice`` says so in words (else None) and the notice is also written to stderr.
    """
    from mcef.data import DialogueLoader
    from mcef.runs import data_fingerprint
    from mcef.train import class_weights, make_objective, run_epoch

    config, model, state = load_run(run_dir, device=device, checkpoint=checkpoint)
    own_data = dataset is None
    dataset = _resolve_dataset(config, dataset)
    modalities = _check_compatible(state, dataset, run_dir)
    fingerprint = data_fingerprint(dataset)
    trained_on = state.get("identity", {}).get("data_fingerprint")
    if own_data and trained_on is not None and fingerprint != trained_on:
        raise DataError(f"{run_dir}: the run's own data (data section of its config.yaml) no longer has the content "
                        f"it was trained on (fingerprint {fingerprint}, trained on {trained_on}); pass the data to "
                        f"evaluate explicitly to score the run on it")
    notice = data_notice(run_dir, dataset, fingerprint, trained_on)
    if split not in dataset.splits:
        raise DataError(f"dataset {dataset.name!r} ({dataset.source}) has no split {split!r} (--split); expected one "
                        f"of {sorted(dataset.splits)}")
    device = next(model.parameters()).device
    loader = DialogueLoader(dataset, split, batch_size=config.train.batch_size, modalities=modalities, device=device)
    objective = make_objective(config, class_weights(config, dataset), device)
    result = run_epoch(model, loader, objective, dataset.n_classes)
    losses = {k: v for k, v in result.items() if k.startswith("loss")}
    print_data_notice(notice, "evaluate")
    return {"split": split, "epoch": state["epoch"], "data_fingerprint": fingerprint,
            "same_data_as_training": fingerprint == trained_on, "data_notice": notice, **losses,
            **scores(result["confusion_matrix"], dataset.label_names)}


def predict(run_dir: str | Path, data: DialogueDataset | str | Path, out_path: str | Path, *,
            device: str | torch.device = "auto", checkpoint: str = "best.pt") -> list[dict]:
    """Predict every utterance of every dialogue of ``data``; write CSV or JSON (by ``out_path``'s extension).

    One row per utterance: dialogue_id, utterance (index in the dialogue), speaker, split, label (true label name,
    or "" when unknown), predicted (label name) and ``p_<label>`` per class. Returns the rows.

    When ``data`` is not the data the run was trained on (its :func:`mcef.runs.data_fingerprint` differs from the
    checkpoint's), every row also gets a ``data_notice`` column saying so (in both formats, so the file carries the
    warning; :func:`read_predictions` reads it as a string), and the notice is written to stderr. Rows of the run's
    own data have no such column.
    """
    from mcef.data import DialogueLoader
    from mcef.runs import data_fingerprint

    out_path = Path(out_path)
    _check_out_path(out_path)
    config, model, state = load_run(run_dir, device=device, checkpoint=checkpoint)
    dataset = _resolve_dataset(config, data)
    modalities = _check_compatible(state, dataset, run_dir)
    notice = data_notice(run_dir, dataset, data_fingerprint(dataset),
                         state.get("identity", {}).get("data_fingerprint"))
    extra = {"data_notice": notice} if notice else {}
    device = next(model.parameters()).device
    names = list(dataset.label_names)
    rows = []
    for split in dataset.splits:
        loader = DialogueLoader(dataset, split, batch_size=config.train.batch_size, modalities=modalities,
                                device=device)
        for batch in loader:
            with torch.no_grad():
                logits = model(batch).fused_logits
            probabilities = torch.softmax(logits.float(), dim=-1).tolist()  # (B, T, C): one transfer per batch
            for row, dialogue_id in enumerate(batch.dialogue_ids):
                dialogue = dataset.dialogues[dialogue_id]
                for t in range(len(dialogue)):
                    p = probabilities[row][t]
                    label = int(dialogue.labels[t])
                    rows.append({
                        "dialogue_id": dialogue_id,
                        "utterance": t,
                        "speaker": dataset.speaker_names[int(dialogue.speakers[t])],
                        "split": split,
                        "label": names[label] if 0 <= label < len(names) else "",
                        "predicted": names[max(range(len(p)), key=p.__getitem__)],
                        **{f"p_{name}": v for name, v in zip(names, p)},
                        **extra,
                    })
    if out_path.suffix.lower() == ".json":
        write_text_atomic(out_path, json.dumps(rows, indent=1) + "\n")
    else:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(rows[0]) if rows else ["dialogue_id"])
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(out_path, text.getvalue())
    print_data_notice(notice, "predict")
    return rows


def read_predictions(path: str | Path) -> list[dict]:
    """Rows written by :func:`predict`, with numbers as numbers."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["utterance"] = int(row["utterance"])
        for key in row:
            if key.startswith("p_"):
                row[key] = float(row[key])
    return rows
