"""Experiment configuration: four frozen sections (data, model, loss, train), YAML in and out, dotted overrides.

The model section is :class:`mcef.model.MCEFConfig` itself and the loss section :class:`mcef.losses.LossWeights`
itself, with their own defaults and validation; the data section embeds :class:`mcef.features.text.TextFeatureConfig`.

A config file only lists what differs from the defaults below; ``save_config`` always writes every field, so the
``config.yaml`` of a run reloads to exactly the config that produced it.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from mcef.features.text import TextFeatureConfig
from mcef.losses import LossWeights
from mcef.model import MCEFConfig


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the file, the key and what was expected."""


@dataclass(frozen=True)
class DataConfig:
    """Where the dialogues come from and how they become feature vectors (every field defines the data)."""

    path: str | dict | None = None  # feature file or directory; None = discovered data (else synthetic); "synthetic" =
    # synthetic; a mapping modality -> file joins modalities of different files by dialogue id (M3Net-style)
    labels: Literal["emotion", "sentiment"] = "emotion"  # which labels of a file carrying both (MELD): 7 emotions or 3 sentiments
    label_set: str | None = None  # a named label set (mcef data formats lists them) overriding the one detected from the file
    text_layer: str = "videoText"  # which text item of a file with several (roberta1..4, sbert; videoText = the file's
    # default: its videoText, else its first text layer)
    valid_fraction: float = 0.1  # share in [0, 1) of training dialogues held out when the file has no valid split;
    # 0 = use the file's own validation split (reading a file without one is then an error, never an empty split)
    split_seed: int = 0  # seed of that held-out draw
    synthetic: dict = field(default_factory=dict)  # overrides of mcef.data.SyntheticConfig for the synthetic data
    text: TextFeatureConfig = field(default_factory=TextFeatureConfig)  # transcripts -> vectors (transcripts only)
    standardise: bool = False  # z-score every feature dimension with training-split statistics
    cache_dir: str = "data/cache"  # where encoded transcripts are cached (relative to the working directory)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, selection and bookkeeping of one run."""

    epochs: int = 150
    batch_size: int = 16  # dialogues per batch
    lr: float = 1e-4  # Adam learning rate
    weight_decay: float = 1e-5  # Adam's L2 penalty (the reference's, not AdamW's decoupled decay)
    plateau_factor: float = 0.5  # ReduceLROnPlateau on the validation loss: multiply lr by this ...
    plateau_patience: int = 7  # ... after this many epochs without improvement; 0 = no scheduler
    early_stopping: int = 20  # stop after this many epochs without a better validation weighted-F1; 0 = off
    class_weights: Literal["auto", "reference", "train", "none"] = "auto"  # auto = reference priors on IEMOCAP-6, else train
    seed: int = 0  # seeds torch, numpy, python and the loader's shuffles
    device: str = "auto"  # auto = cuda, then mps, then cpu
    deterministic: bool = True  # torch.use_deterministic_algorithms(True, warn_only=True)
    bucket: bool = False  # batch dialogues of similar length together (less padding)
    record_oracle_test: bool = True  # evaluate test every epoch for the oracle_best_test record only (never selects)
    checkpoint_every: int = 5  # write last.pt and best.pt every this many epochs (and at the end)
    progress: bool = True  # show a progress bar over epochs


@dataclass(frozen=True)
class ExperimentConfig:
    """One run: name, data, model, loss and training sections."""

    name: str = "run"  # run directory name under the runs root
    data: DataConfig = field(default_factory=DataConfig)
    model: MCEFConfig = field(default_factory=MCEFConfig)  # the network's own config; unset sizes come from the data
    loss: LossWeights = field(default_factory=LossWeights)
    train: TrainConfig = field(default_factory=TrainConfig)


# Fields of earlier versions of the schema, and where they went.
MOVED = {
    "data.modalities": "data.modalities is now model.modalities (the model section is MCEFConfig itself)",
    "train.bf16": "train.bf16 is gone: model.precision (float32 or bfloat16) sets the precision on every device",
}


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if typing.get_origin(tp) is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """``value`` converted to the annotated type ``tp``, or a ConfigError naming ``where``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, where)
            except ConfigError:
                pass
        raise ConfigError(f"{where}: expected {' or '.join(_type_name(o) for o in options)}, got {value!r}")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{where}: expected one of {list(typing.get_args(tp))}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item_type, _ellipsis) = typing.get_args(tp)
        return tuple(_coerce(v, item_type, f"{where}[{i}]") for i, v in enumerate(value))
    if tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        # YAML reads "1e-4" (no dot) as a string; accept it and integers as numbers.
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config field type {tp!r} at {where}")


def _dataclass_of(tp: Any, value: Any) -> type | None:
    """The dataclass a field of type ``tp`` holds ``value`` as (``X`` or ``X | None`` given a mapping), else None."""
    if dataclasses.is_dataclass(tp):
        return tp
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and value is not None:
        return next((o for o in typing.get_args(tp) if dataclasses.is_dataclass(o)), None)
    return None


def _build(cls: type, mapping: Any, source: str, prefix: str = "") -> Any:
    """An instance of dataclass ``cls`` from a (partial) mapping, every key and type checked."""
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'config'}: expected a mapping of {cls.__name__} fields, "
                          f"got {mapping!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in mapping if k not in names]
    moved = [MOVED[prefix + k] for k in unknown if prefix + k in MOVED]
    if moved:
        raise ConfigError(f"{source}: {moved[0]}")
    if unknown:
        raise ConfigError(f"{source}: unknown key {prefix + str(unknown[0])!r}; expected one of "
                          f"{[prefix + n for n in names]}")
    values = {}
    for name in names:
        if name in mapping:
            nested = _dataclass_of(hints[name], mapping[name])
            if nested is not None:
                values[name] = _build(nested, mapping[name], source, f"{prefix}{name}.")
            else:
                values[name] = _coerce(mapping[name], hints[name], f"{source}: {prefix}{name}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'config'}: {err}") from None


SEED_MAX = 2**32 - 1  # numpy's global seed (np.random.seed) takes 0 .. 2**32 - 1
LOSS_TERMS = ("fused_ce", "modality_ce", "soft_hgr", "kl")


def _number_in(value: float, key: str, where: str, *, low: float, high: float | None = None,
               low_open: bool = False, high_open: bool = True, meaning: str = "") -> None:
    """A ConfigError unless ``value`` is finite and within the bounds (open or closed at each end)."""
    import math

    above = value > low if low_open else value >= low
    below = high is None or (value < high if high_open else value <= high)
    if not (math.isfinite(value) and above and below):
        interval = (f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}" if high is not None
                    else f"{'>' if low_open else '>='} {low:g}")
        raise ConfigError(f"{where}: {key} must be {interval}{meaning}, got {value!r}")


def _check(config: ExperimentConfig, where: str) -> ExperimentConfig:
    """Checks of values (ranges, devices, combinations) that the field types alone do not catch."""
    from mcef.device import DeviceError, check_device_name

    train, data, loss = config.train, config.data, config.loss
    positive = {"train.epochs": train.epochs, "train.batch_size": train.batch_size,
                "train.checkpoint_every": train.checkpoint_every}
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"{where}: {key} must be at least 1, got {value}")
    non_negative = {"train.early_stopping": train.early_stopping,
                    "train.plateau_patience": train.plateau_patience}
    for key, value in non_negative.items():
        if value < 0:
            raise ConfigError(f"{where}: {key} must be 0 (off) or a number of epochs, got {value}")
    if not 0 <= train.seed <= SEED_MAX:
        raise ConfigError(f"{where}: train.seed must be in [0, 2**32 - 1] (the range numpy and torch seeds take), "
                          f"got {train.seed}")
    if data.split_seed < 0:
        raise ConfigError(f"{where}: data.split_seed must be a non-negative integer, got {data.split_seed}")
    _number_in(train.plateau_factor, "train.plateau_factor", where, low=0.0, high=1.0, low_open=True,
               meaning=" (the learning rate is multiplied by it on a plateau)")
    _number_in(train.lr, "train.lr", where, low=0.0, low_open=True)
    _number_in(train.weight_decay, "train.weight_decay", where, low=0.0)
    _number_in(data.valid_fraction, "data.valid_fraction", where, low=0.0, high=1.0,
               meaning=" (share of training dialogues held out when the file has no validation split; 0 only for "
                       "files with their own)")
    try:
        check_device_name(train.device, key="train.device (--device)")
    except DeviceError as err:
        raise ConfigError(f"{where}: {err}") from None
    for term in LOSS_TERMS:
        _number_in(getattr(loss, term), f"loss.{term}", where, low=0.0)
    if all(getattr(loss, term) == 0 for term in LOSS_TERMS):
        raise ConfigError(f"{where}: every loss weight ({', '.join('loss.' + t for t in LOSS_TERMS)}) is 0: nothing "
                          "to train; expected at least one weight > 0")
    if data.synthetic:
        _check_synthetic(data.synthetic, where)
    _check_data_source(data, where)
    _check_text(data.text, where)
    if not config.name or "/" in config.name or config.name in (".", ".."):
        raise ConfigError(f"{where}: name must be a plain directory name, got {config.name!r}")
    return config


def _check_data_source(data: DataConfig, where: str) -> None:
    """data.path as a mapping (modality -> file), data.label_set and data.text_layer name things that exist."""
    from mcef.data.dataset import MODALITIES
    from mcef.data.labels import LABEL_SETS
    from mcef.data.readers import TEXT_LAYERS

    if isinstance(data.path, dict):
        if not data.path:
            raise ConfigError(f"{where}: data.path is an empty mapping; expected a file, or modality -> file")
        unknown = [k for k in data.path if k not in MODALITIES]
        if unknown:
            raise ConfigError(f"{where}: data.path names modality {unknown[0]!r}; expected a mapping with keys from "
                              f"{list(MODALITIES)} (modality -> file, joined by dialogue id)")
        odd = next((k for k, v in data.path.items() if not isinstance(v, str) or not v), None)
        if odd is not None:
            raise ConfigError(f"{where}: data.path.{odd}: expected the path of a feature file, got "
                              f"{data.path[odd]!r}")
    if data.label_set is not None:
        if data.label_set not in LABEL_SETS:
            raise ConfigError(f"{where}: data.label_set: expected one of {list(LABEL_SETS)} (mcef data formats lists "
                              f"them) or null, got {data.label_set!r}")
        kind = LABEL_SETS[data.label_set].kind
        if kind != data.labels:
            raise ConfigError(f"{where}: data.label_set {data.label_set!r} names {kind} labels but data.labels is "
                              f"{data.labels!r}; expected data.labels: {kind}")
    if data.text_layer not in TEXT_LAYERS:
        raise ConfigError(f"{where}: data.text_layer: expected one of {list(TEXT_LAYERS)}, got {data.text_layer!r}")


def _check_text(text, where: str) -> None:
    """data.text: a window only with context "window"; fine-tuning sizes in range, weightings known."""
    for side in ("window_before", "window_after"):
        if getattr(text, side) < 0:
            raise ConfigError(f"{where}: data.text.{side} must be >= 0, got {getattr(text, side)}")
        if getattr(text, side) and text.context != "window":
            raise ConfigError(f"{where}: data.text.{side} is {getattr(text, side)} but data.text.context is "
                              f"{text.context!r}; expected context: window")
    tune = text.finetune
    if tune is None:
        return
    for key in ("epochs", "batch_size", "max_seq_length", "bucket_batches"):
        _number_in(getattr(tune, key), f"data.text.finetune.{key}", where, low=1)
    for key in ("lr", "head_lr"):
        _number_in(getattr(tune, key), f"data.text.finetune.{key}", where, low=0.0, low_open=True)
    _number_in(tune.warmup, "data.text.finetune.warmup", where, low=0.0, high=1.0)
    _number_in(tune.weight_decay, "data.text.finetune.weight_decay", where, low=0.0)
    _number_in(tune.early_stopping, "data.text.finetune.early_stopping", where, low=0)
    if tune.train_layers is not None:
        _number_in(tune.train_layers, "data.text.finetune.train_layers", where, low=1)
    if tune.seed is not None:
        _number_in(tune.seed, "data.text.finetune.seed", where, low=0, high=SEED_MAX, high_open=False)
    odd = [w for w in tune.class_weights if w not in ("none", "train")]
    if odd or not tune.class_weights:
        raise ConfigError(f"{where}: data.text.finetune.class_weights: expected a non-empty list of 'none' and "
                          f"'train' (the candidates chosen on validation), got {list(tune.class_weights)}")


def _check_synthetic(fields: dict, where: str) -> None:
    """``data.synthetic`` must be fields of :class:`mcef.data.SyntheticConfig` with valid values."""
    from mcef.data.errors import DataError
    from mcef.data.synthetic import SyntheticConfig

    names = [f.name for f in dataclasses.fields(SyntheticConfig)]
    unknown = [k for k in fields if k not in names]
    if unknown:
        raise ConfigError(f"{where}: unknown key 'data.synthetic.{unknown[0]}'; expected fields of "
                          f"mcef.data.SyntheticConfig: {names}")
    try:
        SyntheticConfig(**fields)
    except (DataError, TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {str(err).replace('SyntheticConfig.', 'data.synthetic.')}") from None


def config_from_dict(mapping: dict, where: str = "config") -> ExperimentConfig:
    """An ExperimentConfig from a nested mapping (missing keys take the defaults)."""
    return _check(_build(ExperimentConfig, mapping, where), where)


def config_to_dict(config: ExperimentConfig) -> dict:
    """Every field of ``config`` as plain YAML-friendly values (tuples become lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.lr=1e-4"`` -> (["train", "lr"], 1e-4); the value is read as YAML (lists, true/false, null)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected KEY=VALUE, e.g. train.lr=1e-4")
    key, raw = text.split("=", 1)
    path = key.strip().split(".")
    if not all(path):
        raise ConfigError(f"override {text!r}: bad key {key!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({err})") from None
    return path, value


def apply_overrides(mapping: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """A copy of ``mapping`` with each dotted ``KEY=VALUE`` override set (nested keys created as needed)."""
    result = yaml.safe_load(yaml.safe_dump(mapping)) or {}
    for text in overrides:
        path, value = parse_override(text)
        node = result
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {part!r} is not a section")
            node = child
        node[path[-1]] = value
    return result


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Read a YAML config (``None`` = all defaults) and apply dotted overrides such as ``train.lr=1e-4``."""
    where = "config" if path is None else str(path)
    mapping: Any = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        try:
            mapping = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({err})") from None
        if not isinstance(mapping, dict):
            raise ConfigError(f"{path}: expected a mapping with sections data/model/loss/train, got {type(mapping).__name__}")
    if overrides:
        where = f"{where} (with overrides {list(overrides)})"
        mapping = apply_overrides(mapping, overrides)
    return config_from_dict(mapping, where)


# Fields added to the schema after runs were stored, with the value those runs computed with (model.activation: runs
# before it used the erf GELU). A run's config.yaml and checkpoint hold every field of their day, so a field absent
# there takes this value, never today's default; :func:`mcef.runs.defining_fields` leaves it out of digests at it.
ADDED_FIELDS = {"model.activation": "gelu", "data.labels": "emotion", "data.label_set": None,
                "data.text.window_before": 0, "data.text.window_after": 0, "data.text.pooling": "mean",
                "data.text.finetune": None, "data.text.finetune.train_layers": None}


def with_added_fields(mapping: dict, section: str | None = None) -> dict:
    """A stored run's complete config ``mapping`` (or its ``section`` alone, e.g. a checkpoint's model config) with
    every :data:`ADDED_FIELDS` it lacks set to the value it was computed with."""
    result = copy.deepcopy(mapping)
    for dotted, legacy in ADDED_FIELDS.items():
        parts = dotted.split(".")
        if section is not None:
            if parts[0] != section:
                continue
            parts = parts[1:]
        node = result
        for part in parts[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and parts[-1] not in node:
            node[parts[-1]] = legacy
    return result


def load_stored_config(path: str | os.PathLike) -> ExperimentConfig:
    """The config of a stored run (its ``config.yaml``), fields added to the schema since at their earlier value."""
    path = Path(path)
    try:
        mapping = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: not a readable YAML config ({err})") from None
    if not isinstance(mapping, dict):
        raise ConfigError(f"{path}: expected a mapping with sections data/model/loss/train, got {type(mapping).__name__}")
    return config_from_dict(with_added_fields(mapping), str(path))


def dump_config(config: ExperimentConfig) -> str:
    """``config`` as complete YAML text."""
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


def save_config(config: ExperimentConfig, path: str | os.PathLike) -> None:
    """Write the complete ``config`` as YAML, atomically."""
    from mcef.io import write_text_atomic

    write_text_atomic(path, dump_config(config))


def with_changes(config: ExperimentConfig, **sections: dict) -> ExperimentConfig:
    """``config`` with some fields replaced, e.g. ``with_changes(c, name="x", train={"seed": 1})``."""
    mapping = config_to_dict(config)
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(mapping.get(key), dict):
            mapping[key] = {**mapping[key], **value}
        else:
            mapping[key] = value
    return config_from_dict(mapping, "config")
