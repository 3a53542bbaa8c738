"""Measured fine-tuning epoch times of each installed encoder and context window on each corpus (issue 12).

    python scripts/finetune_speed.py [--steps 8] [--out book/results/real_text/finetune_speed.json]

For every (corpus, encoder, window) it times ``--steps`` training steps on batches drawn from the epoch's own
length buckets (:func:`mcef.features.finetune.epoch_seconds`) and prints the estimated epoch; the figures and the
machine they were measured on go to ``--out``, which chapter 7 reads. Real transcripts: ../shared/data (MCEF_DATA).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
from pathlib import Path

from mcef.features.finetune import epoch_seconds
from mcef.features.text import FineTuneConfig, TextFeatureConfig, read_transcripts
from mcef.io import atomic_path
from mcef.train import git_commit

CORPORA = {"IEMOCAP": "iemocap_text.pkl", "MELD": "meld_text.pkl"}
SETTINGS = [("all-MiniLM-L6-v2", 0, 64, False, None), ("all-MiniLM-L6-v2", 2, 128, False, None),
            ("all-MiniLM-L6-v2", 4, 192, False, None), ("all-mpnet-base-v2", 0, 64, False, None),
            ("all-mpnet-base-v2", 2, 128, False, None), ("all-mpnet-base-v2", 0, 64, True, None),
            ("all-mpnet-base-v2", 0, 64, False, 4), ("all-mpnet-base-v2", 0, 64, True, 4)]
# (encoder, previous utterances, tokens, bf16 autocast, layers trained from the top: None = all)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--out", default="book/results/real_text/finetune_speed.json")
    args = parser.parse_args()
    import torch

    from mcef.book.robustness import machine_stamp

    data_dir = Path(os.environ.get("MCEF_DATA", "../shared/data"))
    rows = []
    for corpus, name in CORPORA.items():
        dataset = read_transcripts(data_dir / name)
        for encoder, before, tokens, bf16, layers in SETTINGS:
            config = TextFeatureConfig(encoder=encoder, context="window", window_before=before, finetune=FineTuneConfig(
                max_seq_length=tokens, seed=0, bf16=bf16, train_layers=layers))
            row = {"corpus": corpus, **epoch_seconds(dataset, config, steps=args.steps)}
            print(f"{corpus:8s} {encoder:18s} window {before} ({tokens} tokens, mean {row['mean_tokens']:.0f}), "
                  f"{'bf16' if bf16 else 'fp32'}, layers trained {layers or 'all'}: {row['step_seconds']:.2f} s/step, "
                  f"epoch ~{row['epoch_minutes']:.1f} min", flush=True)
            rows.append(row)
    record = {"rows": rows, "machine": machine_stamp(["cpu"]), "commit": git_commit(),
              "date": datetime.date.today().isoformat(), "steps": args.steps, "torch_threads": torch.get_num_threads()}
    with atomic_path(Path(args.out)) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
