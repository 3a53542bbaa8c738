"""A padded batch of dialogues: the only thing the model and the losses see."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Batch:
    """Dialogues padded batch-first to the longest one in the batch.

    Padding positions hold zeros in ``features``, ``pad_speaker`` in ``speakers`` and -1 in ``labels``.
    """

    features: dict[str, torch.Tensor]  # modality -> (B, T, D_m) float32
    mask: torch.Tensor  # (B, T) bool, True for a real utterance
    speakers: torch.Tensor  # (B, T) int64; padding = n_speakers (the extra embedding row)
    labels: torch.Tensor  # (B, T) int64; padding = -1
    dialogue_ids: list[str]

    @property
    def batch_size(self) -> int:
        return int(self.mask.shape[0])

    @property
    def n_utterances(self) -> int:
        return int(self.mask.sum())

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        """The same batch on ``device``."""
        return Batch(
            features={m: x.to(device, non_blocking=non_blocking) for m, x in self.features.items()},
            mask=self.mask.to(device, non_blocking=non_blocking),
            speakers=self.speakers.to(device, non_blocking=non_blocking),
            labels=self.labels.to(device, non_blocking=non_blocking),
            dialogue_ids=self.dialogue_ids,
        )
