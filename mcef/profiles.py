"""Run profiles of the book: how big every experiment is, from a CI smoke run to the paper recipe.

A notebook receives only the profile's name (a papermill scalar) and reads its settings here. Each
profile is one YAML file, ``configs/profiles/<name>.yaml``: a one-line description, the number of
seeds, and one mapping per part of the project (``synthetic``, ``probe``, ``soft_hgr``, ``train``...)
that the library function of that part reads with :meth:`Profile.section`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, TypeVar

import yaml

PROFILE_NAMES = ("smoke", "quick", "full")
PROFILES_DIR = Path(__file__).resolve().parent.parent / "configs" / "profiles"

Settings = TypeVar("Settings")


@dataclass(frozen=True)
class Profile:
    """One run profile, as read from ``configs/profiles/<name>.yaml``."""

    name: str  # smoke | quick | full
    description: str  # what the profile is for, one line (shown at the top of every chapter)
    n_seeds: int  # seeds behind every reported number (the paper recipe: 5)
    path: Path  # the YAML file it came from (named in errors)
    sections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # part name -> its settings

    def section(self, name: str) -> dict[str, Any]:
        """The settings of part ``name`` (a fresh dict); a clear error if the profile lacks it."""
        if name not in self.sections:
            raise KeyError(f"profile {self.name!r} ({self.path}) has no section {name!r}; it has {sorted(self.sections)}")
        return dict(self.sections[name])

    def seeds(self, seeds: str | int | None = "") -> list[int]:
        """The seeds to run: ``seeds`` as "0,1,2" or an int, or ``range(n_seeds)`` when empty."""
        if seeds is None or seeds == "":
            return list(range(self.n_seeds))
        if isinstance(seeds, int):
            return [seeds]
        try:
            return [int(s) for s in str(seeds).split(",") if s.strip()]
        except ValueError:
            raise ValueError(f"seeds must be comma-separated integers such as '0,1,2', got {seeds!r}") from None


def load_profile(name: str, directory: str | Path | None = None) -> Profile:
    """Read profile ``name`` (smoke, quick, full, or any ``<name>.yaml`` in ``directory``)."""
    directory = Path(directory) if directory is not None else PROFILES_DIR
    path = directory / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in directory.glob("*.yaml"))
        raise ValueError(f"unknown profile {name!r}: {path} does not exist; known profiles: {known}")
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    for key, kind in (("description", str), ("n_seeds", int)):
        if not isinstance(raw.get(key), kind):
            raise ValueError(f"{path}: key {key!r} must be a {kind.__name__}, got {raw.get(key)!r}")
    sections = {}
    for key, value in raw.items():
        if key in ("description", "n_seeds"):
            continue
        if not isinstance(value, dict):
            raise ValueError(f"{path}: section {key!r} must be a mapping of settings, got {value!r}")
        sections[key] = MappingProxyType(value)
    return Profile(
        name=name, description=raw["description"], n_seeds=raw["n_seeds"], path=path, sections=MappingProxyType(sections)
    )


def section_settings(profile: str, section: str, defaults: Mapping[str, Settings], fallback: Settings,
                     directory: str | Path | None = None) -> Settings:
    """A chapter's settings dataclass for ``profile``: its ``section`` over ``defaults[profile]`` (``fallback``
    for a profile without defaults). Lists become tuples where the field's default is a tuple; an unknown key
    is a clear error naming the profile file and the known keys."""
    spec = load_profile(profile, directory)
    base = defaults.get(spec.name, fallback)
    values = dict(spec.sections.get(section, {}))
    known = {f.name for f in fields(base)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise KeyError(f"{spec.path}: section {section!r} has unknown keys {unknown}; expected {sorted(known)}")
    for key, value in values.items():
        if isinstance(getattr(base, key), tuple) and isinstance(value, list):
            values[key] = tuple(value)
    return replace(base, **values)
