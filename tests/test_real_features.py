"""The README's steps for a user with the real feature files, on a sample file built in the SDT layout: `mcef data
info` names the layout and label set, and a chapter of the smoke book runs on the file and says so at its top."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from book_helpers import REPO
from layout_samples import SAMPLES

MCEF = [sys.executable, "-m", "mcef.cli"]


@pytest.fixture(scope="module")
def sample_file(tmp_path_factory) -> Path:
    return SAMPLES["sdt-iemocap-12"].build(tmp_path_factory.mktemp("data"))


def test_data_info_names_the_layout_its_producer_and_the_label_set(sample_file):
    out = subprocess.run([*MCEF, "data", "info", str(sample_file)], capture_output=True, text=True, check=True).stdout
    assert "layout: sdt-iemocap-12" in out and "SDT" in out
    assert "label set: iemocap-6" in out and "modalities: text 1024, audio 1582, visual 342" in out


def test_a_smoke_chapter_runs_on_the_file_and_says_so(sample_file, tmp_path):
    root = tmp_path / "project"
    for part in ("configs", "notebooks"):
        shutil.copytree(REPO / part, root / part)
    (root / "book").mkdir(parents=True)
    shutil.copy(REPO / "book" / "_toc.yml", root / "book" / "_toc.yml")
    shutil.copy(REPO / "_config.yml", root / "_config.yml")
    done = subprocess.run([*MCEF, "book", "--profile", "smoke", "--data", str(sample_file), "--only", "01",
                           "--no-html", "--root", str(root)], cwd=root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    executed = json.loads((root / "book" / "_generated" / "01_data_exploration.ipynb").read_text())
    outputs = json.dumps([cell.get("outputs", []) for cell in executed["cells"]])
    assert f"**Data:** features from {sample_file} (given path)" in outputs  # the header: it ran on the file
    assert "SDT / MCEF / CFN-ESA / GraphSmile" in outputs and "synthetic default" not in outputs
