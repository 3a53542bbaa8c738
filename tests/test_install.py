"""environment.yml, requirements.txt and pyproject.toml describe one environment."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")
REPO = Path(__file__).resolve().parents[1]


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def requirement_lines() -> list[str]:
    lines = (REPO / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def test_environment_yml_installs_requirements_txt_and_its_python_is_allowed():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    deps = env["dependencies"]
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python"))
    version = re.split(r"[=<>]+", python, maxsplit=1)[1]
    assert Version(version) in SpecifierSet(pyproject()["project"]["requires-python"])
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    assert pip == ["-r requirements.txt"]


def test_requirements_pin_torch_within_pyproject_range_and_install_the_package():
    lines = requirement_lines()
    assert "torch==2.13.0" in lines
    torch_spec = next(d for d in pyproject()["project"]["dependencies"] if re.match(r"torch\b", d))
    assert Version("2.13.0") in SpecifierSet(torch_spec[len("torch"):])
    editable = next(line for line in lines if line.startswith("-e ."))
    extras = set(re.fullmatch(r"-e \.\[(.*)\]", editable).group(1).split(","))
    assert {"book", "test"} <= extras <= set(pyproject()["project"]["optional-dependencies"])
