"""Shared fixtures: small synthetic datasets and the location of the real transcript pickles."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from mcef.data import DialogueDataset, SyntheticConfig, make_synthetic

REPO = Path(__file__).resolve().parents[1]

# A dozen short dialogues with tiny dims: generated in milliseconds, enough for every shape and loop test.
TINY_CONFIG = SyntheticConfig(
    seed=0, n_train=9, n_test=3, dims=(16, 24, 8), length_log_mean=2.5, length_log_std=0.4, min_length=4, max_length=20
)


@pytest.fixture(scope="session")
def tiny_config() -> SyntheticConfig:
    """The config of ``tiny_dataset`` (dims 16/24/8, 8 train / 1 valid / 3 test dialogues of 4-20 utterances)."""
    return TINY_CONFIG


@pytest.fixture(scope="session")
def tiny_dataset() -> DialogueDataset:
    """A tiny synthetic dataset; treat it as read-only (it is shared by the whole session)."""
    return make_synthetic(TINY_CONFIG)


@pytest.fixture(scope="session")
def small_dataset() -> DialogueDataset:
    """The default synthetic dataset's structure (151 dialogues, ~7.4k utterances) with small dims 16/16/16."""
    return make_synthetic(SyntheticConfig(dims=(16, 16, 16)))


def real_data_dir() -> Path | None:
    """The folder with the real transcript pickles: $MCEF_DATA, else ../shared/data beside the repository."""
    for candidate in (os.environ.get("MCEF_DATA"), REPO.parent / "shared" / "data"):
        if candidate and (Path(candidate) / "iemocap_text.pkl").is_file():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The real data folder, or skip the test with the reason."""
    found = real_data_dir()
    if found is None:
        pytest.skip("real transcript pickles not found: set MCEF_DATA or put ../shared/data beside the repository")
    return found


@pytest.fixture(scope="session")
def device() -> str:
    """The device of the tests marked ``device``: $MCEF_TEST_DEVICE (e.g. ``cuda``), default ``cpu``.

    ``MCEF_TEST_DEVICE=cuda pytest -m device`` runs those tests on the GPU; a device that is not there is an error.
    """
    from mcef.device import resolve_device

    name = os.environ.get("MCEF_TEST_DEVICE", "").strip() or "cpu"
    resolve_device(name)  # raises, naming the device, when it is not available here
    return name


@pytest.fixture(autouse=True)
def one_thread():
    """Test tensors are small: intra-op threads only add overhead (and stall badly on a shared, loaded CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
