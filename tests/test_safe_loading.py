"""Nothing runs from a file: hostile data pickles and checkpoints are refused before anything is built."""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mcef.data import DataError, load_dataset
from mcef.train import CheckpointError, load_checkpoint


class _Hostile:
    """Unpickling it would run ``touch <marker>``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_data_pickle_that_would_create_a_file_is_refused(tmp_path):
    marker, path = tmp_path / "pwned", tmp_path / "iemocap_multimodal_features.pkl"
    path.write_bytes(pickle.dumps(({"d": [0]}, {"d": ["M"]}, _Hostile(marker)), protocol=2))
    with pytest.raises(DataError) as err:
        load_dataset(path)
    assert str(path) in str(err.value) and "system" in str(err.value) and "nothing in it was run" in str(err.value)
    assert not marker.exists()


def test_the_cli_refuses_it_with_one_line_and_no_traceback(tmp_path):
    marker, path = tmp_path / "pwned", tmp_path / "features.pkl"
    path.write_bytes(pickle.dumps([_Hostile(marker)]))
    done = subprocess.run([sys.executable, "-m", "mcef.cli", "data", "info", str(path)], capture_output=True, text=True)
    assert done.returncode != 0 and "Traceback" not in done.stderr and "refused to load" in done.stderr
    assert not marker.exists()


def test_a_checkpoint_that_would_create_a_file_is_refused(tmp_path):
    marker, path = tmp_path / "pwned", tmp_path / "best.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "extra": _Hostile(marker)}, path)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_checkpoint(path)
    assert not marker.exists()
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)


def test_plain_data_pickles_still_load(tmp_path):
    import numpy as np

    from mcef.data.safe_pickle import safe_load

    payload = ({"a": np.arange(3, dtype=np.float32)}, [np.int64(4)], {"x"}, b"raw")
    path = tmp_path / "plain.pkl"
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        path.write_bytes(pickle.dumps(payload, protocol=protocol))
        loaded = safe_load(path)
        assert loaded[0]["a"].tolist() == [0.0, 1.0, 2.0] and loaded[1][0] == 4 and loaded[2:] == ({"x"}, b"raw")
