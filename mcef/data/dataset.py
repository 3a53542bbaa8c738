"""The one in-memory structure every reader produces and every model consumes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MODALITIES = ("text", "audio", "visual")
SPLITS = ("train", "valid", "test")
IEMOCAP_LABELS = ("happy", "sad", "neutral", "angry", "excited", "frustrated")
MELD_LABELS = ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger")


@dataclass
class Dialogue:
    """One conversation: utterances in order, every array indexed by utterance."""

    id: str
    features: dict[str, np.ndarray]  # modality -> (T, D_m) float32; any subset of MODALITIES
    speakers: np.ndarray  # (T,) int64, index into DialogueDataset.speaker_names
    labels: np.ndarray  # (T,) int64, index into DialogueDataset.label_names
    sentences: list[str] | None = None  # utterance transcripts when known

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def dialogues_from_rows(
    ids, offsets, lengths, features: dict[str, np.ndarray], speakers: np.ndarray, labels: np.ndarray,
    sentences: list | None = None,
) -> dict[str, Dialogue]:
    """Dialogues ``ids`` as views of utterance-concatenated arrays: dialogue i owns rows offset_i .. offset_i + length_i."""
    dialogues = {}
    for i, (did, offset, length) in enumerate(zip(ids, offsets, lengths)):
        rows = slice(offset, offset + length)
        dialogues[did] = Dialogue(
            id=did,
            features={m: x[rows] for m, x in features.items()},
            speakers=speakers[rows],
            labels=labels[rows],
            sentences=sentences[i] if sentences is not None else None,
        )
    return dialogues


@dataclass
class DialogueDataset:
    """Dialogues with their label names, speaker names and train/valid/test dialogue ids."""

    name: str  # e.g. "iemocap", "meld", "synthetic"
    dialogues: dict[str, Dialogue]
    label_names: tuple[str, ...]
    speaker_names: tuple[str, ...]
    splits: dict[str, list[str]]  # "train" / "valid" / "test" -> dialogue ids, disjoint
    source: str = ""  # where it came from, in words (file path and format, or synthetic settings)
    meta: dict = field(default_factory=dict)  # format-specific facts worth keeping (e.g. text layer)

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modalities present in every dialogue, in canonical order."""
        first = next(iter(self.dialogues.values()))
        return tuple(m for m in MODALITIES if m in first.features)

    @property
    def dims(self) -> dict[str, int]:
        """Feature dimension of each modality present."""
        first = next(iter(self.dialogues.values()))
        return {m: int(first.features[m].shape[1]) for m in self.modalities}

    @property
    def n_classes(self) -> int:
        return len(self.label_names)

    @property
    def n_speakers(self) -> int:
        return len(self.speaker_names)

    def split(self, name: str) -> list[Dialogue]:
        """The dialogues of split ``name`` in the order of the split list."""
        if name not in self.splits:
            raise KeyError(f"dataset {self.name!r} has no split {name!r}; it has {sorted(self.splits)}")
        return [self.dialogues[d] for d in self.splits[name]]

    def class_counts(self, split: str) -> np.ndarray:
        """Utterances per class in ``split``, shape (n_classes,)."""
        counts = np.zeros(self.n_classes, dtype=np.int64)
        for dialogue in self.split(split):
            counts += np.bincount(dialogue.labels, minlength=self.n_classes)
        return counts
