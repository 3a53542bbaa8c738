"""Does bfloat16 autocast hold the accuracy of a fine-tuning? One epoch of a committed fine-tuned recipe, twice.

    python scripts/bf16_check.py [--config configs/real/iemocap_finetuned_mpnet.yaml] [--seed 0]
                                 [--out book/results/real_text/bf16_check.json]

From the same seed (same head, batches and dropout), the first epoch of the config's fine-tuning (its learning-rate
schedule over all its epochs) is run in float32 and under bfloat16 autocast; each reports its training loss, its
validation weighted F1 and its minutes. Only the training and validation splits are read. Chapter 7 reads ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import time
from pathlib import Path

import torch

from mcef.config import load_config
from mcef.features.finetune import (Inputs, _fresh_classifier, _optimizer, _train_epoch, classifier_scores,
                                    dataset_items, run_encoder, split_items)
from mcef.features.text import read_transcripts
from mcef.io import atomic_path
from mcef.runs import config_digest
from mcef.train import git_commit


def first_epoch(dataset, text, bf16: bool) -> dict:
    """Training loss, validation weighted F1 and minutes of the first fine-tuning epoch of ``text`` (its finetune
    section with ``bf16`` set)."""
    text = dataclasses.replace(text, finetune=dataclasses.replace(text.finetune, bf16=bf16))
    tune, device = text.finetune, torch.device("cpu")
    model, tokenizer = _fresh_classifier(text, len(dataset.label_names), device, tune.seed)
    items = dataset_items(dataset, text, tokenizer.sep_token or "|")
    train, valid = (split_items(dataset, items, split) for split in ("train", "valid"))
    inputs = Inputs(tokenizer, tune.max_seq_length, paired=False, device=device, bf16=bf16)
    start = time.perf_counter()
    loss = _train_epoch(model, _optimizer(model, tune), inputs, train, inputs.lengths(train), None, tune, 0, True)
    minutes = (time.perf_counter() - start) / 60
    valid_scores = classifier_scores(run_encoder(model, inputs, valid, 2 * tune.batch_size)[1], valid,
                                     dataset.label_names)
    return {"bf16": bf16, "train_loss": loss, "valid_weighted_f1": valid_scores["weighted_f1"],
            "valid_accuracy": valid_scores["accuracy"], "train_minutes": round(minutes, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/real/iemocap_finetuned_mpnet.yaml")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="book/results/real_text/bf16_check.json")
    args = parser.parse_args()
    from mcef.book.robustness import machine_stamp

    config = load_config(args.config)
    text = config.data.text
    if text.finetune is None or text.context == "window":
        raise SystemExit(f"{args.config}: data.text: expected a fine-tuning of the utterance alone")
    text = dataclasses.replace(text, finetune=dataclasses.replace(text.finetune, seed=args.seed))
    dataset = read_transcripts(Path(config.data.path))
    rows = [first_epoch(dataset, text, bf16) for bf16 in (False, True)]
    for row in rows:
        print(f"{'bf16' if row['bf16'] else 'fp32'}: train loss {row['train_loss']:.4f}, validation weighted F1 "
              f"{row['valid_weighted_f1']:.4f}, {row['train_minutes']:.1f} min", flush=True)
    record = {"config": args.config, "config_digest": config_digest(config), "seed": args.seed, "rows": rows,
              "valid_weighted_f1_gap": rows[1]["valid_weighted_f1"] - rows[0]["valid_weighted_f1"],
              "machine": machine_stamp(["cpu"]), "commit": git_commit(), "date": datetime.date.today().isoformat(),
              "torch_threads": torch.get_num_threads()}
    with atomic_path(Path(args.out)) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
