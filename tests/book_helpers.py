"""A tiny project root for the book's tests: the committed configs plus a ``tiny`` profile (every section given)."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

TINY_PROFILE = """\
description: "tests: tiny sizes"
n_seeds: 2
synthetic: {n_train: 9, n_test: 3}
probe: {c_grid: [0.1, 1.0], max_iter: 50, max_train_utterances: 100}
soft_hgr: {n_samples: 200, dim: 4, k: 2, steps: 20, lr: 0.05, n_problems: 1, reference_samples: 100,
           batch_sizes: [2], dialogue_length: 10, hidden: 16}
training_run:
  name: mcef
  recipe: configs/paper.yaml
  changes: {model: {hidden: 16, n_heads: 4, n_self_heads: 2},
            train: {epochs: 4, batch_size: 4, lr: 0.001, checkpoint_every: 4}}
training: {embedding_points: 20, perplexity: 5.0}
ablation_run:
  name: ablation-base
  recipe: configs/paper.yaml
  changes: {model: {modalities: [text, audio, visual], hidden: 8, dropout: 0.0},
            train: {epochs: 1, lr: 0.001, batch_size: 4, early_stopping: 0, record_oracle_test: false,
                    checkpoint_every: 1}}
ablations: {kl: 0.1, n_seeds: 1}
efficiency: {noise_scales: [1.0, 4.0], draws: 2, bench_recipe: configs/paper.yaml, bench_hidden: 8, bench_epochs: 1,
             bench_warmup: 0, bench_memory: false, fusions: [equal, sdt, concat, late]}
real_text: {artifacts: book/results/real_text,
            configs: [configs/real/iemocap_text.yaml, configs/real/meld_text.yaml, configs/real/meld_sentiment_text.yaml],
            seeds: [0, 1, 2, 3, 4]}
real_text_finetuned: {artifacts: book/results/real_text,
                      configs: [configs/real/iemocap_finetuned.yaml, configs/real/meld_finetuned.yaml, configs/real/meld_sentiment_finetuned.yaml],
                      seeds: [0, 1, 2, 3, 4]}
real_text_controls: {artifacts: book/results/real_text,
                     configs: [configs/real/iemocap_window_frozen.yaml, configs/real/meld_window_frozen.yaml, configs/real/meld_sentiment_window_frozen.yaml],
                     seeds: [0, 1, 2, 3, 4]}
real_text_no_context: {artifacts: book/results/real_text, configs: [configs/real/iemocap_finetuned_no_context.yaml, configs/real/meld_finetuned_no_context.yaml,
                                                                     configs/real/meld_sentiment_finetuned_no_context.yaml],
                       seeds: [0, 1, 2, 3, 4]}
real_text_longer: {artifacts: book/results/real_text, configs: [configs/real/iemocap_finetuned_no_context_long.yaml,
                                                                 configs/real/meld_finetuned_no_context_long.yaml],
                   seeds: [0, 1, 2, 3, 4]}
real_text_larger: {artifacts: book/results/real_text, configs: [configs/real/iemocap_finetuned_mpnet.yaml,
                                                                 configs/real/meld_finetuned_mpnet.yaml],
                   seeds: [0, 1, 2, 3, 4]}
"""


def make_root(path: Path) -> Path:
    """``path`` as a project root: a copy of ``configs/`` with the ``tiny`` profile added; returns ``path``."""
    shutil.copytree(REPO / "configs", path / "configs")
    (path / "configs" / "profiles" / "tiny.yaml").write_text(TINY_PROFILE, encoding="utf-8")
    return path
