"""Fine-tuning a sentence encoder as an utterance classifier with a dialogue context window, then its features.

COSMIC's inputs were RoBERTa fine-tuned as an utterance classifier on the training split; EmoBERTa adds the previous
utterances and the speakers to the input. Here an installed encoder (all-MiniLM-L6-v2, all-mpnet-base-v2) gets a
linear head over its pooled output and is trained on the *training* split only, the epoch kept being the one with
the best *validation* weighted F1 (early stopping on it); the class weighting is chosen on validation among the
candidates of :class:`FineTuneConfig`. The test split is never read while fine-tuning: its features are extracted
afterwards from the kept encoder, and its labels are used once, to score the encoder's own classifier.

The input of utterance *i* is a pair: the target, ``">> <speaker>: <utterance>"``, and its context, the
``window_before`` previous and ``window_after`` following utterances as ``"<speaker>: <utterance>"`` (the
following ones after the tokenizer's separator). Truncation cuts the longer of the two first: the context, unless
the target is longer. Batches are
padded to their longest input (dynamic padding) and drawn from length buckets, so a batch of short utterances
costs what short utterances cost. After every epoch a checkpoint (weights, optimiser, schedule, random states,
history) is written atomically, so an interrupted fine-tuning resumes at the last finished epoch.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from mcef.data.dataset import Dialogue, DialogueDataset
from mcef.features.text import FineTuneConfig, TextFeatureConfig
from mcef.io import atomic_path
from mcef.metrics import confusion_matrix, scores

TARGET_MARK = ">>"  # put before the target utterance, so the encoder can tell it from its context


@dataclass(frozen=True)
class Item:
    """One utterance as the encoder reads it."""

    target: str  # ">> <speaker>: <utterance>"
    context: str  # the window around it (may be empty)
    label: int


def utterance_items(dialogue: Dialogue, speaker_names: tuple[str, ...], before: int, after: int,
                    separator: str, sentences: list[str]) -> list[Item]:
    """The inputs of every utterance of ``dialogue``: target and context window (``sentences``: normalised text)."""
    tagged = [f"{speaker_names[s]}: {t}" for s, t in zip(dialogue.speakers.tolist(), sentences)]
    items = []
    for i, text in enumerate(tagged):
        previous = " ".join(tagged[max(0, i - before):i])
        following = " ".join(tagged[i + 1:i + 1 + after])
        context = f"{previous} {separator} {following}".strip() if following else previous
        items.append(Item(f"{TARGET_MARK} {text}", context, int(dialogue.labels[i])))
    return items


def dataset_items(dataset: DialogueDataset, config: TextFeatureConfig, separator: str) -> dict[str, list[Item]]:
    """Dialogue id -> the items of its utterances under ``config``: a window (context "window") or, for the other
    contexts, the strings :func:`mcef.features.text.utterance_texts` encodes, as targets without context."""
    from mcef.features.text import normalize_text, utterance_texts

    found = {}
    for did, dialogue in dataset.dialogues.items():
        if config.context == "window":
            sentences = [normalize_text(t) if config.normalize_text else t for t in dialogue.sentences]
            found[did] = utterance_items(dialogue, dataset.speaker_names, config.window_before, config.window_after,
                                         separator, sentences)
        else:
            texts = utterance_texts(dialogue, dataset.speaker_names, config, separator)
            found[did] = [Item(t, "", int(y)) for t, y in zip(texts, dialogue.labels.tolist())]
    return found


def split_items(dataset: DialogueDataset, items: dict[str, list[Item]], split: str) -> list[Item]:
    """The items of every utterance of ``split``, dialogue by dialogue in the split's order."""
    return [i for did in dataset.splits[split] for i in items[did]]


class Classifier(nn.Module):
    """The encoder, a pooling of its token vectors, dropout and a linear head. With ``train_layers`` only the top
    ``train_layers`` transformer layers (and the head) are trained: the embeddings and the layers below are frozen
    and stay in eval mode, so autograd stops at the lowest trained layer (a step of all-mpnet-base-v2 with 4 of its
    12 layers trained costs about a third of a full one on a 2-core CPU)."""

    def __init__(self, encoder: nn.Module, n_classes: int, pooling: str, dropout: float = 0.1,
                 train_layers: int | None = None):
        super().__init__()
        self.encoder, self.pooling = encoder, pooling
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, n_classes)
        self.frozen: list[nn.Module] = []  # kept in eval mode by train()
        if train_layers is not None:
            self._freeze_below(train_layers)

    def _freeze_below(self, train_layers: int) -> None:
        layers = self.encoder.encoder.layer  # BERT and MPNet encoders alike
        if not 1 <= train_layers <= len(layers):
            raise ValueError(f"data.text.finetune.train_layers: expected 1 to {len(layers)} (the encoder's "
                             f"transformer layers), got {train_layers}")
        trained = {id(p) for layer in layers[len(layers) - train_layers:] for p in layer.parameters()}
        for parameter in self.encoder.parameters():
            parameter.requires_grad_(id(parameter) in trained)
        self.frozen = [self.encoder.embeddings, *layers[:len(layers) - train_layers]]

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self.frozen:  # no dropout below the trained layers: they act as the encoder as shipped
            module.eval()
        return self

    def pooled(self, batch: dict) -> torch.Tensor:
        """(B, H): the CLS vector, or the mean of the token vectors over the attention mask."""
        hidden = self.encoder(**batch).last_hidden_state  # (B, L, H)
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def forward(self, batch: dict) -> torch.Tensor:
        return self.head(self.dropout(self.pooled(batch)))  # (B, C)


@dataclass(frozen=True)
class Inputs:
    """How items become token batches: the tokenizer, the length limit, whether a context goes with each target."""

    tokenizer: Any
    max_length: int  # tokens of the target and its context together
    paired: bool  # a (target, context) pair per item (a window), else the target alone
    device: torch.device
    bf16: bool = False  # bfloat16 autocast of the forward pass

    def _encode(self, items: list[Item], **kwargs):
        if self.paired:  # the longer of the two is cut first: the context, but for a target longer than it
            return self.tokenizer([i.target for i in items], [i.context for i in items], truncation="longest_first",
                                  max_length=self.max_length, **kwargs)
        return self.tokenizer([i.target for i in items], truncation=True, max_length=self.max_length, **kwargs)

    def batch(self, items: list[Item]) -> dict:
        """The batch of ``items``, padded to its longest input (dynamic padding), on the device."""
        encoded = self._encode(items, padding=True, return_tensors="pt")
        return {k: v.to(self.device) for k, v in encoded.items() if k in ("input_ids", "attention_mask", "token_type_ids")}

    def lengths(self, items: list[Item]) -> np.ndarray:
        """Tokens of each item's input, as :meth:`batch` truncates it."""
        return np.array([len(ids) for ids in self._encode(items)["input_ids"]])

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)


def bucketed_batches(lengths: np.ndarray, batch_size: int, bucket_batches: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of indices, each drawn from a bucket of similar ``lengths`` (dynamic padding wastes little)."""
    order = rng.permutation(len(lengths))
    bucket = batch_size * bucket_batches
    batches = []
    for start in range(0, len(order), bucket):
        chunk = order[start:start + bucket]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def class_weight_vector(kind: str, labels: np.ndarray, n_classes: int) -> torch.Tensor | None:
    """None for "none"; for "train", 1 / the training prior of each class, normalised to mean 1."""
    if kind == "none":
        return None
    if kind != "train":
        raise ValueError(f"data.text.finetune.class_weights: {kind!r} is unknown; expected 'none' or 'train'")
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1), 0.0)
    return torch.tensor(weights / weights[counts > 0].mean(), dtype=torch.float32)


@dataclass
class FineTuneState:
    """What a checkpoint holds besides the weights: the epochs done and their validation scores."""

    epoch: int = 0
    history: list[dict] = field(default_factory=list)  # one row per epoch: train loss, validation scores
    best_epoch: int = 0
    best_valid_weighted_f1: float = -1.0


def _lr_factor(step: int, total: int, warmup: float) -> float:
    """Linear warm-up over the first ``warmup`` share of ``total`` steps, then linear decay to 0."""
    warm = max(1, int(round(warmup * total)))
    return (step + 1) / warm if step < warm else max(0.0, (total - step) / max(1, total - warm))


@torch.no_grad()
def run_encoder(model: Classifier, inputs: Inputs, items: list[Item], batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(pooled vectors (N, H) float32, head logits (N, C) float32) of ``items`` in their order, in eval mode (the
    batches are formed in order of length: less padding)."""
    was_training = model.training
    model.eval()
    vectors = np.zeros((len(items), model.head.in_features), dtype=np.float32)
    logits = np.zeros((len(items), model.head.out_features), dtype=np.float32)
    order = np.argsort(inputs.lengths(items), kind="stable")
    try:
        for start in range(0, len(order), batch_size):
            chosen = order[start:start + batch_size]
            with inputs.autocast():
                pooled = model.pooled(inputs.batch([items[i] for i in chosen]))  # (B, H)
                vectors[chosen] = pooled.float().cpu().numpy()
                logits[chosen] = model.head(pooled).float().cpu().numpy()
    finally:
        model.train(was_training)
    return vectors, logits


def classifier_scores(logits: np.ndarray, items: list[Item], label_names: tuple[str, ...]) -> dict:
    """Accuracy, weighted and macro F1 and per-class F1 of the head's predictions (:func:`mcef.metrics.scores`)."""
    labels = np.array([i.label for i in items])
    return scores(confusion_matrix(labels, logits.argmax(1), len(label_names)), label_names)


def _checkpoint(path: Path, payload: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _resume(model: Classifier, optimizer, workdir: Path) -> FineTuneState:
    """The state of the last finished epoch in ``workdir`` (weights and optimiser loaded), or a fresh one."""
    last = workdir / "last.pt"
    if not last.is_file():
        return FineTuneState()
    saved = torch.load(last, map_location="cpu", weights_only=True)  # tensors and plain containers only
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    return FineTuneState(**saved["state"])


def _optimizer(model: Classifier, tune: FineTuneConfig) -> torch.optim.Optimizer:
    """AdamW over the encoder (``lr``) and the new head (``head_lr``); no weight decay on biases and LayerNorms."""
    groups = []
    for params, lr in ((model.encoder.named_parameters(), tune.lr), (model.head.named_parameters(), tune.head_lr)):
        params = [(n, p) for n, p in params if p.requires_grad]  # frozen layers (train_layers) are left out
        groups.append({"params": [p for n, p in params if p.ndim > 1], "lr": lr, "peak": lr, "weight_decay": tune.weight_decay})
        groups.append({"params": [p for n, p in params if p.ndim <= 1], "lr": lr, "peak": lr, "weight_decay": 0.0})
    return torch.optim.AdamW(groups)


def _train_epoch(model: Classifier, optimizer, inputs: Inputs, items: list[Item], lengths: np.ndarray,
                 weights: torch.Tensor | None, tune: FineTuneConfig, epoch: int, progress: bool) -> float:
    """One epoch over length-bucketed batches; the mean training loss. Seeded by (seed, epoch): a resumed run
    draws the same batches and dropout as an uninterrupted one."""
    from tqdm.auto import tqdm

    torch.manual_seed(tune.seed * 1000 + epoch)
    batches = bucketed_batches(lengths, tune.batch_size, tune.bucket_batches, np.random.default_rng([tune.seed, epoch]))
    total = tune.epochs * len(batches)
    loss_fn = nn.CrossEntropyLoss(weight=None if weights is None else weights.to(inputs.device))
    model.train()
    losses = []
    for k, chosen in enumerate(tqdm(batches, desc=f"fine-tuning, epoch {epoch + 1}/{tune.epochs}", unit="batch",
                                    disable=not progress, leave=False)):
        factor = _lr_factor(epoch * len(batches) + k, total, tune.warmup)
        for group in optimizer.param_groups:
            group["lr"] = group["peak"] * factor
        losses.append(_train_step(model, optimizer, inputs, [items[i] for i in chosen], loss_fn))
    return float(np.mean(losses))


def _train_step(model: Classifier, optimizer, inputs: Inputs, batch: list[Item], loss_fn: nn.Module) -> float:
    """One optimiser step on ``batch`` (gradients clipped to norm 1); its loss."""
    with inputs.autocast():
        logits = model(inputs.batch(batch))  # (B, C)
    loss = loss_fn(logits.float(), torch.tensor([i.label for i in batch], device=inputs.device))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return loss.item()


def train_classifier(model: Classifier, inputs: Inputs, train: list[Item], valid: list[Item], weights,
                     tune: FineTuneConfig, label_names: tuple[str, ...], workdir: Path, *, progress: bool = False,
                     log: Callable[[str], None] = print) -> FineTuneState:
    """Fine-tune ``model`` on ``train``, keeping in ``workdir/best.pt`` the epoch of best validation weighted F1;
    resumes from ``workdir/last.pt``. Only ``train`` and ``valid`` are read."""
    optimizer = _optimizer(model, tune)
    state = _resume(model, optimizer, workdir)
    if state.epoch:
        log(f"fine-tuning resumed after epoch {state.epoch} from {workdir / 'last.pt'}")
    lengths = inputs.lengths(train)
    while state.epoch < tune.epochs and not (tune.early_stopping and state.epoch - state.best_epoch >= tune.early_stopping):
        start = time.perf_counter()
        train_loss = _train_epoch(model, optimizer, inputs, train, lengths, weights, tune, state.epoch, progress)
        valid_scores = classifier_scores(run_encoder(model, inputs, valid, 2 * tune.batch_size)[1], valid, label_names)
        state.epoch += 1
        state.history.append({"epoch": state.epoch, "train_loss": train_loss, "valid_accuracy": valid_scores["accuracy"],
                              "valid_weighted_f1": valid_scores["weighted_f1"],
                              "seconds": round(time.perf_counter() - start, 1)})
        if valid_scores["weighted_f1"] > state.best_valid_weighted_f1:
            state.best_epoch, state.best_valid_weighted_f1 = state.epoch, valid_scores["weighted_f1"]
            _checkpoint(workdir / "best.pt", {"model": model.state_dict()})
        _checkpoint(workdir / "last.pt", {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                          "state": dataclasses.asdict(state)})
        log(f"fine-tuning epoch {state.epoch}/{tune.epochs}: train loss {train_loss:.4f}, validation weighted F1 "
            f"{valid_scores['weighted_f1']:.4f} ({state.history[-1]['seconds']:.0f} s)")
    return state


def _fresh_classifier(config: TextFeatureConfig, n_classes: int, device: torch.device, seed: int):
    """(a Classifier over the encoder as shipped, its tokenizer); the head initialised from ``seed``."""
    from mcef.features.text import load_encoder

    shipped = load_encoder(config.encoder, device=str(device))
    torch.manual_seed(seed)
    train_layers = config.finetune.train_layers if config.finetune else None
    return (Classifier(shipped[0].auto_model, n_classes, config.pooling, train_layers=train_layers).to(device),
            shipped.tokenizer)


def encode_items(dataset: DialogueDataset, config: TextFeatureConfig, *, device: str = "auto", workdir: Path,
                 progress: bool = False, log: Callable[[str], None] = print) -> tuple[dict[str, np.ndarray], dict]:
    """(dialogue id -> (T, H) float32 text features, the record of how they were made) for ``dataset`` under
    ``config``: the encoder as shipped (context "window"), or fine-tuned first (``config.finetune``) on the training
    split, one run per class-weighting candidate in ``workdir/<candidate>``, the candidate and epoch of best
    validation weighted F1 kept. The test split is read only after that choice: its features, and the kept head's
    scores (the encoder's own classifier)."""
    from mcef.device import resolve_device

    target = resolve_device(device)
    tune = config.finetune
    if tune is not None and tune.seed is None:
        raise ValueError("data.text.finetune.seed is null (each run's seed): fine-tuning outside a run needs a seed; "
                         "mcef.features.pipeline.data_for_run sets it from train.seed")
    model, tokenizer = _fresh_classifier(config, len(dataset.label_names), target, tune.seed if tune else 0)
    separator = tokenizer.sep_token or "|"
    items = dataset_items(dataset, config, separator)
    inputs = Inputs(tokenizer, tune.max_seq_length if tune else (config.max_seq_length or tokenizer.model_max_length),
                    paired=config.context == "window" and (config.window_before + config.window_after) > 0,
                    device=target, bf16=bool(tune and tune.bf16))
    record: dict = {"encoder": config.encoder, "fine_tuned": tune is not None, "device": str(target),
                    "torch_threads": torch.get_num_threads()}
    if tune is not None:
        train, valid = (split_items(dataset, items, split) for split in ("train", "valid"))
        labels = np.array([i.label for i in train])
        tried = {}
        for kind in tune.class_weights:
            if tried:  # every candidate starts from the encoder as shipped
                model, _ = _fresh_classifier(config, len(dataset.label_names), target, tune.seed)
            state = train_classifier(model, inputs, train, valid,
                                     class_weight_vector(kind, labels, len(dataset.label_names)), tune,
                                     dataset.label_names, workdir / kind, progress=progress, log=log)
            tried[kind] = state
        chosen = max(tried, key=lambda k: tried[k].best_valid_weighted_f1)  # ties: the first candidate
        model.load_state_dict(torch.load(workdir / chosen / "best.pt", map_location=target, weights_only=True)["model"])
        record.update(class_weights=chosen, selected_epoch=tried[chosen].best_epoch,
                      candidates={k: dataclasses.asdict(v) for k, v in tried.items()})
    features, record["classifier"] = _features_and_scores(model, inputs, dataset, items, tune)
    return features, record


def _features_and_scores(model: Classifier, inputs: Inputs, dataset: DialogueDataset, items: dict[str, list[Item]],
                         tune: FineTuneConfig | None) -> tuple[dict[str, np.ndarray], dict]:
    """Every dialogue's pooled vectors and, after fine-tuning, the head's scores per split (the test split's here,
    once, after every choice was made)."""
    ids = list(dataset.dialogues)
    flat = [i for did in ids for i in items[did]]
    vectors, logits = run_encoder(model, inputs, flat, 2 * (tune.batch_size if tune else 16))
    features, offset = {}, 0
    for did in ids:
        features[did] = vectors[offset:offset + len(items[did])]  # (T, H)
        offset += len(items[did])
    if tune is None:
        return features, {}
    at = dict(zip(ids, np.cumsum([0] + [len(items[d]) for d in ids])))
    split_scores = {}
    for split, dids in dataset.splits.items():
        rows = np.concatenate([np.arange(at[d], at[d] + len(items[d])) for d in dids]) if dids else np.array([], int)
        split_scores[split] = classifier_scores(logits[rows], [flat[r] for r in rows], dataset.label_names)
    return features, split_scores


def epoch_seconds(dataset: DialogueDataset, config: TextFeatureConfig, *, steps: int = 8, device: str = "auto",
                  seed: int = 0) -> dict:
    """A measured estimate of one fine-tuning epoch of ``config`` over ``dataset``'s training split: ``steps``
    training steps on batches drawn at random from the epoch's length-bucketed batches (so their lengths are the
    epoch's), timed after one warm-up step; the epoch is their mean times the number of batches, plus one pass
    over the validation split in eval mode (timed the same way, per utterance)."""
    from mcef.device import resolve_device

    target, tune = resolve_device(device), config.finetune or FineTuneConfig()
    model, tokenizer = _fresh_classifier(config, len(dataset.label_names), target, seed)
    items = dataset_items(dataset, config, tokenizer.sep_token or "|")
    train, valid = (split_items(dataset, items, split) for split in ("train", "valid"))
    inputs = Inputs(tokenizer, tune.max_seq_length, paired=config.context == "window"
                    and config.window_before + config.window_after > 0, device=target, bf16=tune.bf16)
    rng = np.random.default_rng(seed)
    lengths = inputs.lengths(train)
    batches = bucketed_batches(lengths, tune.batch_size, tune.bucket_batches, rng)
    if not 1 <= steps < len(batches):
        raise ValueError(f"epoch_seconds: steps must be from 1 to {len(batches) - 1} (one warm-up step besides them, "
                         f"of the {len(batches)} training batches), got {steps}")
    chosen = [batches[k] for k in rng.choice(len(batches), size=steps + 1, replace=False)]
    optimizer, loss_fn = _optimizer(model, tune), nn.CrossEntropyLoss()
    model.train()
    timings = []
    for batch_indices in chosen:  # the training loop's own step
        start = time.perf_counter()
        _train_step(model, optimizer, inputs, [train[i] for i in batch_indices], loss_fn)
        timings.append(time.perf_counter() - start)
    sample = [valid[i] for i in rng.choice(len(valid), size=min(len(valid), 4 * tune.batch_size), replace=False)]
    start = time.perf_counter()
    run_encoder(model, inputs, sample, 2 * tune.batch_size)
    valid_seconds = (time.perf_counter() - start) / len(sample) * len(valid)
    step = float(np.mean(timings[1:]))  # the first step pays for allocations
    return {"encoder": config.encoder, "window_before": config.window_before, "window_after": config.window_after,
            "max_seq_length": tune.max_seq_length, "batch_size": tune.batch_size, "bf16": tune.bf16,
            "train_layers": tune.train_layers,
            "train_utterances": len(train), "batches": len(batches),
            "mean_tokens": float(lengths.mean()), "step_seconds": round(step, 3),
            "epoch_minutes": round((step * len(batches) + valid_seconds) / 60, 1), "device": str(target),
            "torch_threads": torch.get_num_threads()}
