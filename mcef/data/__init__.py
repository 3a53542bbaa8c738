"""Datasets: one in-memory structure, readers for every peer feature-file layout (the table: ``LAYOUTS``), named
label sets (``LABEL_SETS``), the synthetic default, batching."""

from mcef.data.batch import Batch
from mcef.data.dataset import IEMOCAP_LABELS, MELD_LABELS, MODALITIES, SPLITS, Dialogue, DialogueDataset
from mcef.data.errors import DataError
from mcef.data.labels import LABEL_SETS
from mcef.data.layouts import LAYOUTS
from mcef.data.loader import DialogueLoader
from mcef.data.project import load_project, save_dataset
from mcef.data.readers import ACCEPTED_FORMATS, TEXT_LAYERS, load_dataset, resolve_data_path
from mcef.data.synthetic import IEMOCAP_PRIORS, SyntheticConfig, make_synthetic
from mcef.data.validation import make_valid_split, validate_dataset

__all__ = [
    "ACCEPTED_FORMATS",
    "Batch",
    "DataError",
    "Dialogue",
    "DialogueDataset",
    "DialogueLoader",
    "IEMOCAP_LABELS",
    "IEMOCAP_PRIORS",
    "LABEL_SETS",
    "LAYOUTS",
    "MELD_LABELS",
    "MODALITIES",
    "SPLITS",
    "SyntheticConfig",
    "TEXT_LAYERS",
    "load_dataset",
    "load_project",
    "make_synthetic",
    "make_valid_split",
    "resolve_data_path",
    "save_dataset",
    "validate_dataset",
]
