"""Fast batching: tensors built once, batches padded batch-first, optional length bucketing."""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch

from mcef.data.batch import Batch
from mcef.data.dataset import DialogueDataset
from mcef.data.errors import DataError
from mcef.device import resolve_device


class DialogueLoader:
    """Iterate over one split of ``dataset`` as padded :class:`Batch` es of ``batch_size`` dialogues.

    Every dialogue is converted to tensors on ``device`` once, at construction, so an epoch only pads.
    ``shuffle`` reshuffles every epoch from ``seed + epoch`` (the epoch counts the iterations, or is set
    with :meth:`set_epoch`). ``bucket`` sorts dialogues by length into batches to cut padding; those batches
    are then built once and only their order is shuffled. ``modalities`` selects a subset of the modalities.
    """

    def __init__(
        self,
        dataset: DialogueDataset,
        split: str,
        *,
        batch_size: int = 16,
        shuffle: bool = False,
        bucket: bool = False,
        modalities: tuple[str, ...] | list[str] | None = None,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ) -> None:
        if batch_size < 1:
            raise DataError(f"batch_size must be at least 1, got {batch_size}")
        self.modalities = tuple(dataset.modalities if modalities is None else modalities)
        missing = [m for m in self.modalities if m not in dataset.modalities]
        if missing:
            raise DataError(f"dataset {dataset.name!r} has no modality {missing}; it has {list(dataset.modalities)}")
        self.device = resolve_device(device)
        self.batch_size, self.shuffle, self.bucket, self.seed = batch_size, shuffle, bucket, seed
        self.pad_speaker = dataset.n_speakers
        self.dims = {m: dataset.dims[m] for m in self.modalities}
        dialogues = dataset.split(split)
        self.ids = [d.id for d in dialogues]
        self.lengths = np.array([len(d) for d in dialogues], dtype=np.int64)
        self._features = [
            # np.require copies only read-only (memory-mapped) or non-float32 arrays; torch wants writable memory
            {m: torch.from_numpy(np.require(d.features[m], np.float32, ["C", "W"])).to(self.device) for m in self.modalities}
            for d in dialogues
        ]
        self._speakers = [torch.tensor(d.speakers, dtype=torch.long, device=self.device) for d in dialogues]
        self._labels = [torch.tensor(d.labels, dtype=torch.long, device=self.device) for d in dialogues]
        self._epoch = 0
        self._bucketed: list[Batch] | None = None
        if bucket:
            by_length = np.argsort(-self.lengths, kind="stable")
            self._bucketed = [self._collate(chunk) for chunk in self._chunks(by_length)]

    def __len__(self) -> int:
        return math.ceil(len(self.ids) / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration use the shuffle order of ``epoch``."""
        self._epoch = epoch

    def __iter__(self) -> Iterator[Batch]:
        rng = np.random.default_rng(self.seed + self._epoch)
        self._epoch += 1
        if self._bucketed is not None:
            order = rng.permutation(len(self._bucketed)) if self.shuffle else range(len(self._bucketed))
            return iter([self._bucketed[i] for i in order])
        indices = rng.permutation(len(self.ids)) if self.shuffle else np.arange(len(self.ids))
        return (self._collate(chunk) for chunk in self._chunks(indices))

    def _chunks(self, indices: np.ndarray) -> list[np.ndarray]:
        return [indices[i : i + self.batch_size] for i in range(0, len(indices), self.batch_size)]

    def _collate(self, indices: np.ndarray) -> Batch:
        """Pad the dialogues ``indices`` into one batch, with preallocated tensors and slice copies."""
        b, t = len(indices), int(self.lengths[indices].max())
        features = {m: torch.zeros(b, t, d, device=self.device) for m, d in self.dims.items()}  # (B, T, D_m)
        speakers = torch.full((b, t), self.pad_speaker, dtype=torch.long, device=self.device)  # (B, T)
        labels = torch.full((b, t), -1, dtype=torch.long, device=self.device)  # (B, T)
        mask = torch.zeros(b, t, dtype=torch.bool, device=self.device)  # (B, T)
        for row, i in enumerate(indices):
            n = int(self.lengths[i])
            for m in self.modalities:
                features[m][row, :n] = self._features[i][m]
            speakers[row, :n] = self._speakers[i]
            labels[row, :n] = self._labels[i]
            mask[row, :n] = True
        return Batch(features=features, mask=mask, speakers=speakers, labels=labels, dialogue_ids=[self.ids[i] for i in indices])
