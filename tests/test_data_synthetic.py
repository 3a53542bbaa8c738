"""The synthetic default: determinism, bit-identical round trip, IEMOCAP-like shape, and its knobs."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from mcef.data import IEMOCAP_LABELS, IEMOCAP_PRIORS, SyntheticConfig, load_dataset, make_synthetic, save_dataset
from mcef.data.cli import summarize


def arrays(ds):
    return [(did, m, x) for did, d in ds.dialogues.items() for m, x in [*d.features.items(), ("s", d.speakers), ("y", d.labels)]]


def test_same_seed_same_bits_and_round_trip(tiny_config, tmp_path):
    a, b = make_synthetic(tiny_config), make_synthetic(tiny_config)
    assert a.splits == b.splits
    for (da, ma, xa), (db, mb, xb) in zip(arrays(a), arrays(b), strict=True):
        assert (da, ma) == (db, mb) and xa.dtype == xb.dtype and xa.tobytes() == xb.tobytes()
    save_dataset(a, tmp_path / "one")
    save_dataset(b, tmp_path / "two")
    for name in ("features_text.npy", "features_audio.npy", "features_visual.npy", "labels.npy", "speakers.npy", "index.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    back = load_dataset(tmp_path / "one")
    assert back.name == "synthetic" and back.splits == a.splits and back.dims == a.dims
    for (da, ma, xa), (db, mb, xb) in zip(arrays(a), arrays(back), strict=True):
        assert (da, ma) == (db, mb) and xa.dtype == xb.dtype and xa.tobytes() == xb.tobytes()
    other = make_synthetic(dataclasses.replace(tiny_config, seed=1))
    assert not np.array_equal(other.dialogues["test_000"].features["text"][:4], a.dialogues["test_000"].features["text"][:4])


# The committed book of results (book/results/paper) finds its runs by this fingerprint of the default dataset.
DEFAULT_FINGERPRINT = "9f2053960a7b90da"


def test_default_bits_depend_on_neither_blas_kernel_nor_thread_count():
    """OpenBLAS's Haswell and SkylakeX kernels, and one against two threads, rounded a float32 product differently;
    the generator uses no BLAS product, so every setting gives the pinned fingerprint."""
    script = ("from mcef.data import SyntheticConfig, make_synthetic; from mcef.runs import data_fingerprint; "
              "print(data_fingerprint(make_synthetic(SyntheticConfig())))")
    settings = [{}, {"OMP_NUM_THREADS": "1"}, {"OPENBLAS_CORETYPE": "Haswell"},
                {"OPENBLAS_CORETYPE": "Sandybridge", "OMP_NUM_THREADS": "1"}]
    printed = {}
    for extra in settings:
        done = subprocess.run([sys.executable, "-c", script], env={**os.environ, **extra}, capture_output=True,
                              text=True, check=True)
        printed[str(extra)] = done.stdout.strip()
    assert set(printed.values()) == {DEFAULT_FINGERPRINT}, printed


def test_default_shape_is_iemocap_like(small_dataset):
    ds = small_dataset
    assert ds.label_names == IEMOCAP_LABELS and ds.speaker_names == ("A", "B")
    assert [len(ds.splits[s]) for s in ("train", "valid", "test")] == [108, 12, 31]
    lengths = np.array([len(d) for d in ds.dialogues.values()])
    assert 6500 < lengths.sum() < 8500 and 40 < lengths.mean() < 58 and lengths.min() >= 8 and lengths.max() <= 110
    counts = sum(ds.class_counts(s) for s in ("train", "valid", "test"))
    assert np.abs(counts / counts.sum() - np.array(IEMOCAP_PRIORS)).max() < 0.07
    same = np.mean([np.mean(d.labels[1:] == d.labels[:-1]) for d in ds.dialogues.values()])
    assert 0.45 < same < 0.75  # emotions persist (inertia), IEMOCAP: 0.56
    switches = np.mean([np.mean(d.speakers[1:] != d.speakers[:-1]) for d in ds.dialogues.values()])
    assert 0.6 < switches < 0.8  # two speakers mostly alternating
    assert "seeded 10%" in summarize(ds)


def test_default_size_generates_fast():
    start = time.perf_counter()
    ds = make_synthetic()
    elapsed = time.perf_counter() - start
    assert ds.dims == {"text": 1024, "audio": 1582, "visual": 342}
    assert elapsed < 5.0, f"default synthetic generation took {elapsed:.1f} s"


def probe_accuracy(ds, modalities) -> float:
    """Test accuracy of a per-utterance logistic-regression probe trained on the train split."""

    def xy(split):
        dialogues = ds.split(split)
        x = np.concatenate([np.concatenate([d.features[m] for m in modalities], axis=1) for d in dialogues])
        return x, np.concatenate([d.labels for d in dialogues])

    probe = LogisticRegression(max_iter=500).fit(*xy("train"))
    return probe.score(*xy("test"))


@pytest.mark.slow
def test_informativeness_knob_and_fusion():
    ds = make_synthetic(SyntheticConfig(dims=(16, 16, 16), informativeness=(2.0, 0.0, 1.0), seed=2))
    text, audio, visual = (probe_accuracy(ds, [m]) for m in ("text", "audio", "visual"))
    fused = probe_accuracy(ds, ["text", "visual"])
    majority = ds.class_counts("test").max() / ds.class_counts("test").sum()
    assert text > audio + 0.2 and visual > audio + 0.05
    assert audio < majority + 0.05  # informativeness 0: nothing beyond the majority class
    assert fused > text + 0.02  # independent nuisances: fusing two views helps


def test_modalities_share_the_latent_state():
    # Audio and visual see the same z_t: their best linear correlation is high when both are informative,
    # and vanishes when one is not.
    def top_correlation(ds):
        x = np.concatenate([d.features["audio"] for d in ds.dialogues.values()])
        y = np.concatenate([d.features["visual"] for d in ds.dialogues.values()])
        x, y = x - x.mean(0), y - y.mean(0)
        qx, qy = np.linalg.qr(x)[0], np.linalg.qr(y)[0]
        return np.linalg.svd(qx.T @ qy, compute_uv=False)[0]  # first canonical correlation

    both = top_correlation(make_synthetic(SyntheticConfig(dims=(16, 16, 16), informativeness=(1.0, 3.0, 3.0))))
    one = top_correlation(make_synthetic(SyntheticConfig(dims=(16, 16, 16), informativeness=(1.0, 0.0, 3.0))))
    assert both > 3 * one, (both, one)  # `one` is the sampling-noise level of 16 x 16 dims on ~7.5k utterances


def test_config_is_frozen_and_checked():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SyntheticConfig().seed = 3
    with pytest.raises(ValueError, match="class_priors"):
        SyntheticConfig(class_priors=(0.5, 0.6))
    with pytest.raises(ValueError, match="one value per modality"):
        SyntheticConfig(dims=(4, 4))


def test_saved_dataset_directory_has_plain_permissions(tmp_path):
    """save_dataset's directory (built under mkdtemp) is as readable as one made by a plain mkdir."""
    import os
    import stat

    (tmp_path / "plain").mkdir()
    saved = save_dataset(make_synthetic(SyntheticConfig(n_train=4, n_test=2, dims=(3, 4, 5), valid_fraction=0.25)),
                         tmp_path / "saved")
    mode = stat.S_IMODE(os.stat(saved).st_mode)
    assert mode == stat.S_IMODE(os.stat(tmp_path / "plain").st_mode)
