"""The embedded default: a synthetic conversational dataset with known ground truth.

Each dialogue has two speakers taking turns and an emotion sequence with inertia (a speaker tends to keep
their emotion) and speaker influence (a speaker tends to adopt the other's). A latent emotion state
z_t = prototype[y_t] + smooth drift is shared by all modalities; modality m sees
x_m = (informativeness_m * z_t + nuisance_m,t) A_m + noise, where the nuisance has its own temporal
structure and a per-speaker offset. So fusion helps (the nuisances are independent), a modality with
informativeness 0 is useless, and the correlation between modalities is real (the shared z_t).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from mcef.data.dataset import IEMOCAP_LABELS, MODALITIES, DialogueDataset, dialogues_from_rows
from mcef.data.errors import DataError
from mcef.data.validation import make_valid_split

# Class priors of IEMOCAP's six classes (the reference's class weights are their inverses).
IEMOCAP_PRIORS = (0.086747, 0.144406, 0.227883, 0.160585, 0.127711, 0.252668)


@dataclass(frozen=True)
class SyntheticConfig:
    """Knobs of the synthetic dataset; the defaults mimic IEMOCAP's shape and class balance."""

    seed: int = 0  # everything (structure, features, valid split) is a function of this seed
    n_train: int = 120  # training dialogues, the validation dialogues included
    n_test: int = 31  # test dialogues
    dims: tuple[int, int, int] = (1024, 1582, 342)  # feature dims of text, audio, visual (IEMOCAP's)
    informativeness: tuple[float, float, float] = (2.0, 1.3, 0.8)  # weight of the shared emotion state per modality; 0 = useless
    # (defaults give per-utterance linear probes of about 60% / 44% / 36% test accuracy, 66% on all three)
    class_priors: tuple[float, ...] = IEMOCAP_PRIORS  # marginal class distribution (len = number of classes)
    latent_dim: int = 16  # dimension of the latent emotion state z_t
    prototype_scale: float = 1.0  # norm of the class prototypes, i.e. how far apart the emotions are
    drift_scale: float = 0.3  # std of the continuous drift of z_t around its class prototype
    drift_rho: float = 0.9  # AR(1) coefficient of the drift: smooth within a dialogue
    nuisance_rho: float = 0.7  # AR(1) coefficient of each modality's nuisance (its own temporal structure)
    speaker_offset: float = 0.5  # std of the per-speaker constant in the nuisance (voice, face, style)
    noise_scale: float = 1.0  # std of the white noise added in feature space
    inertia: float = 0.45  # probability that a speaker keeps their own previous emotion
    influence: float = 0.2  # probability that a speaker adopts the other speaker's last emotion
    mood_concentration: float = 2.0  # Dirichlet concentration of a dialogue's emotion mix (small = few emotions per dialogue)
    speaker_switch: float = 0.7  # probability that the next utterance is by the other speaker
    length_log_mean: float = 3.83  # dialogue length ~ lognormal (IEMOCAP: mean 49, median 47)
    length_log_std: float = 0.37
    min_length: int = 8  # dialogue lengths are clipped to [min_length, max_length] (IEMOCAP: 8..110)
    max_length: int = 110
    valid_fraction: float = 0.1  # share of training dialogues held out for validation (seeded by `seed`)

    def __post_init__(self) -> None:
        _check_synthetic_config(self)


def _check_synthetic_config(c: SyntheticConfig) -> None:
    """A DataError naming the field (``SyntheticConfig.<field>``) and what was expected, for the first bad value."""
    import math

    def fail(name: str, expected: str) -> None:
        raise DataError(f"SyntheticConfig.{name}: expected {expected}, got {getattr(c, name)!r}")

    def number(x) -> bool:
        return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and math.isfinite(x)

    def integer(x) -> bool:
        return isinstance(x, (int, np.integer)) and not isinstance(x, bool)

    for name in ("dims", "informativeness", "class_priors"):
        if isinstance(getattr(c, name), (str, bytes)) or not hasattr(getattr(c, name), "__len__"):
            fail(name, "a list of numbers")
    if len(c.dims) != len(MODALITIES) or not all(integer(d) and d >= 1 for d in c.dims):
        fail("dims", f"{len(MODALITIES)} positive integer feature dims, one value per modality {MODALITIES} (a "
                     "zero-width modality has nothing to learn from)")
    if len(c.informativeness) != len(MODALITIES) or not all(number(v) and v >= 0 for v in c.informativeness):
        fail("informativeness", f"{len(MODALITIES)} non-negative numbers, one value per modality {MODALITIES}")
    if (len(c.class_priors) < 2 or not all(number(p) and p > 0 for p in c.class_priors)
            or abs(sum(c.class_priors) - 1.0) > 1e-3):
        fail("class_priors", "at least two positive probabilities summing to 1")
    for name in ("seed", "n_train", "n_test", "latent_dim", "min_length", "max_length"):
        if not integer(getattr(c, name)):
            fail(name, "an integer")
    if not 0 <= c.seed <= 2**32 - 1:
        fail("seed", "an integer in [0, 2**32 - 1]")
    for name in ("n_train", "n_test", "latent_dim", "min_length"):
        if getattr(c, name) < 1:
            fail(name, "an integer >= 1")
    if c.max_length < c.min_length:
        fail("max_length", f"an integer >= min_length ({c.min_length})")
    for name in ("prototype_scale", "drift_scale", "speaker_offset", "noise_scale", "mood_concentration",
                 "length_log_std"):
        if not (number(getattr(c, name)) and getattr(c, name) >= 0):
            fail(name, "a finite number >= 0")
    if not (number(c.mood_concentration) and c.mood_concentration > 0):
        fail("mood_concentration", "a number > 0")
    if not number(c.length_log_mean):
        fail("length_log_mean", "a finite number")
    for name in ("drift_rho", "nuisance_rho"):
        if not (number(getattr(c, name)) and -1 < getattr(c, name) < 1):
            fail(name, "an AR(1) coefficient in (-1, 1)")
    for name in ("inertia", "influence", "speaker_switch"):
        if not (number(getattr(c, name)) and 0 <= getattr(c, name) <= 1):
            fail(name, "a probability in [0, 1]")
    if c.inertia + c.influence > 1.0:
        fail("influence", f"at most 1 - inertia ({1 - c.inertia:g}): inertia + influence is a probability")
    if not (number(c.valid_fraction) and 0 < c.valid_fraction < 1):
        fail("valid_fraction", "a share in (0, 1) of training dialogues to hold out for validation")


def make_synthetic(config: SyntheticConfig = SyntheticConfig()) -> DialogueDataset:
    """Generate the synthetic dataset of ``config``: the same config gives bit-identical arrays."""
    rng = np.random.default_rng(config.seed)
    n_classes, k = len(config.class_priors), config.latent_dim
    priors = np.asarray(config.class_priors, dtype=np.float64)
    priors = priors / priors.sum()
    n_dialogues = config.n_train + config.n_test
    lengths = np.clip(
        np.round(rng.lognormal(config.length_log_mean, config.length_log_std, n_dialogues)),
        config.min_length,
        config.max_length,
    ).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    n_total = int(lengths.sum())

    speakers = np.empty(n_total, dtype=np.int64)
    labels = np.empty(n_total, dtype=np.int64)
    for start, length in zip(starts, lengths):
        _dialogue_turns(rng, config, priors, speakers[start : start + length], labels[start : start + length])

    prototypes = rng.standard_normal((n_classes, k)) * (config.prototype_scale / np.sqrt(k))
    drift = _ar1(rng, (n_total, k), config.drift_rho, starts)
    z = prototypes[labels] + config.drift_scale * drift  # (N, k) shared latent emotion state

    features: dict[str, np.ndarray] = {}
    for m, dim, info in zip(MODALITIES, config.dims, config.informativeness):
        offsets = rng.standard_normal((n_dialogues, 2, k)) * config.speaker_offset
        dialogue_of = np.repeat(np.arange(n_dialogues), lengths)
        nuisance = _ar1(rng, (n_total, k), config.nuisance_rho, starts) + offsets[dialogue_of, speakers]  # (N, k)
        mixing = rng.standard_normal((k, dim)) / np.sqrt(k)  # (k, D_m)
        view = _mix(info * z + nuisance, mixing)  # (N, D_m)
        view += config.noise_scale * rng.standard_normal((n_total, dim), dtype=np.float32)
        features[m] = view

    ids = [f"train_{i:03d}" for i in range(config.n_train)] + [f"test_{i:03d}" for i in range(config.n_test)]
    dialogues = dialogues_from_rows(ids, starts, lengths, features, speakers, labels)
    train, valid = make_valid_split(ids[: config.n_train], config.valid_fraction, config.seed)
    label_names = IEMOCAP_LABELS if n_classes == len(IEMOCAP_LABELS) else tuple(f"class{c}" for c in range(n_classes))
    return DialogueDataset(
        name="synthetic",
        dialogues=dialogues,
        label_names=label_names,
        speaker_names=("A", "B"),
        splits={"train": train, "valid": valid, "test": ids[config.n_train :]},
        source=f"synthetic (seed {config.seed})",
        meta={
            "format": "synthetic",
            "config": dataclasses.asdict(config),
            "valid_split": f"seeded {config.valid_fraction:.0%} of training dialogues "
            f"({len(valid)} of {config.n_train}, seed {config.seed})",
        },
    )


def _dialogue_turns(rng, config: SyntheticConfig, priors, speakers: np.ndarray, labels: np.ndarray) -> None:
    """Fill one dialogue's speakers and emotions in place: a two-speaker Markov chain with inertia and influence."""
    mood = rng.dirichlet(config.mood_concentration * len(priors) * priors)  # mean = priors: marginals kept
    last = [-1, -1]  # each speaker's last emotion
    speaker = int(rng.integers(2))
    uniforms = rng.random((len(labels), 2))
    fresh = rng.choice(len(priors), size=len(labels), p=mood)
    for t in range(len(labels)):
        if t > 0 and uniforms[t, 0] < config.speaker_switch:
            speaker = 1 - speaker
        own, other = last[speaker], last[1 - speaker]
        u = uniforms[t, 1]
        if own >= 0 and u < config.inertia:
            emotion = own
        elif other >= 0 and u < config.inertia + config.influence:
            emotion = other
        else:
            emotion = int(fresh[t])
        speakers[t], labels[t] = speaker, emotion
        last[speaker] = emotion


def _ar1(rng, shape: tuple[int, int], rho: float, starts: np.ndarray) -> np.ndarray:
    """Stationary unit-variance AR(1) processes along axis 0, restarted at every dialogue start.

    The recursion runs as elementwise numpy arithmetic, one time step of every dialogue at once, so that it rounds
    the same on every IEEE-754 machine (no filter routine whose compiler may fuse the multiply-add)."""
    innovations = rng.standard_normal(shape) * np.sqrt(1.0 - rho**2)
    innovations[starts] /= np.sqrt(1.0 - rho**2)  # each dialogue starts from the stationary distribution
    out = innovations.copy()
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.diff(np.append(starts, shape[0]))
    for t in range(1, int(lengths.max())):
        rows = starts[lengths > t] + t  # step t of every dialogue that long
        out[rows] = rho * out[rows - 1] + innovations[rows]
    return out


def _mix(latent: np.ndarray, mixing: np.ndarray) -> np.ndarray:
    """``latent @ mixing`` as float32, computed so that every machine gives the same bits.

    A BLAS product rounds according to its kernel and thread split (OpenBLAS's Haswell and SkylakeX kernels, and one
    against two threads, gave different float32 features, hence another data fingerprint). Here the product is a
    float64 sum over the latent axis, in a fixed order, of elementwise products: IEEE-754 rounds each product and
    each sum correctly, so to the same bits on every machine; the total is rounded once to float32."""
    out = np.zeros((latent.shape[0], mixing.shape[1]))  # (N, D)
    for j in range(latent.shape[1]):
        out += latent[:, j, None] * mixing[None, j, :]
    return out.astype(np.float32)
