"""What a chapter computes from a run's weights, stored beside the run, so that a store without weights shows it.

The committed results (``book/results/paper``) hold each run's config, metrics and summary, never its weights.
What a chapter computes from a trained model (chapter 2's attention maps and fusion weights, chapter 4's map of
the fused representation, chapter 6's scores on corrupted test data) is written to
``<run_dir>/derived/<name>.json``, stamped with the run's digest (config, data, package version) and a digest of
the settings it was computed with. :func:`from_weights` reads the file when both stamps match. Otherwise it computes
the result from the run's selected checkpoint when that is there and the store may be written (a local store, or a
committed one under ``make results-runs``); a committed store without the checkpoint (a fresh clone) raises
:class:`MissingResults`, naming what is stale or missing and the command that produces it. A file whose stamps do
not match is never read as current. :func:`from_data` does the same for what a chapter computes from data alone
(linear probes, timings), stored in ``<run_root>/computed/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping

from mcef.book.common import STORE_FILE, BookRun, MissingResults, read_only_store, store_spec
from mcef.io import write_json_atomic
from mcef.runs import json_digest

DERIVED = "derived"  # the folder of a run directory that holds what was computed from its weights
WEIGHTS = "best.pt"  # the checkpoint selected on validation, the one every derived result comes from


def settings_digest(settings: Mapping[str, Any]) -> str:
    """A short digest of the JSON form of ``settings`` (what, besides the run, decides the result)."""
    return json_digest(settings)[:16]


def _store_root(run_dir: Path) -> Path | None:
    """The run root above ``run_dir`` that has a ``store.yaml`` (committed results), if any."""
    return next((parent for parent in run_dir.parents if (parent / STORE_FILE).is_file()), None)


def _read_stamped(path: Path) -> dict | str:
    """The stamped result stored at ``path`` (a dict with its ``value``), or why there is none."""
    if not path.is_file():
        return f"{path} is missing"
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return f"{path} is unreadable ({err})"
    return stored if isinstance(stored, dict) and "value" in stored else f"{path} is not a stamped result"


def _stale_reason(path: Path, run_digest: str, settings: Mapping[str, Any]) -> str | None:
    """Why ``path`` is not the current result of the run and settings (None when it is)."""
    stored = _read_stamped(path)
    if isinstance(stored, str):
        return stored
    if stored.get("run_digest") != run_digest:
        return f"STALE: {path} was computed from run digest {stored.get('run_digest')}, the run is now {run_digest}"
    if stored.get("settings_digest") != settings_digest(settings):
        return f"STALE: {path} was computed with settings {stored.get('settings')}, now {dict(settings)}"
    return None


def from_weights(run: BookRun, name: str, settings: Mapping[str, Any], compute: Callable[[], Any]) -> Any:
    """The JSON value ``compute()`` returns for ``run``: read from ``<run_dir>/derived/<name>.json`` when stamped
    with the run's digest and ``settings``, else computed (from the run's ``best.pt``) and stored there.

    ``compute`` loads the model itself, so that a current file never needs the weights. Raises
    :class:`MissingResults` when the file is missing or stale and cannot be made here: no weights, or a committed
    store that is read-only (the message names the command that produces it).
    """
    path = run.run_dir / DERIVED / f"{name}.json"
    run_digest = run.summary["provenance"]["run_digest"]
    why = _stale_reason(path, run_digest, settings)
    if why is None:
        return json.loads(path.read_text(encoding="utf-8"))["value"]
    root = _store_root(run.run_dir)
    store = read_only_store(root) if root is not None else None
    weights = (run.run_dir / WEIGHTS).is_file()
    if store is not None or not weights:
        declared = store_spec(root) if root is not None else {}  # as written, also when the environment lifts read-only
        produce = declared.get("produce", f"training run {run.run_dir} again")
        raise MissingResults(f"{why}; it is computed from the run's weights ({WEIGHTS}, never committed), which are "
                             f"{'here' if weights else 'not here'}. Produce it with `{produce}` (resumable; then "
                             f"commit {run.run_dir / DERIVED})")
    value = compute()
    write_json_atomic(path, {"name": name, "run_digest": run_digest, "settings_digest": settings_digest(settings),
                             "settings": dict(settings), "value": value})
    return value


COMPUTED = "computed"  # the folder of a run root that holds results computed from its data, not from a run


def from_data(run_root: str | Path, name: str, stamp: Mapping[str, Any], compute: Callable[[], Any]) -> Any:
    """The JSON value ``compute()`` returns, stored as ``<run_root>/computed/<name>.json`` with ``stamp`` (the data
    fingerprint and the settings it depends on): read when the stamp matches, else computed here. It is written
    where runs may be trained (a local store, or a committed one under ``make results-runs``), so the committed
    results carry what takes minutes to compute (chapter 4's linear probes) and a stale file is never read."""
    path = Path(run_root) / COMPUTED / f"{name}.json"
    digest = settings_digest(stamp)
    stored = _read_stamped(path)
    if isinstance(stored, dict) and stored.get("stamp_digest") == digest:
        return stored["value"]
    value = compute()
    if read_only_store(run_root) is None:
        write_json_atomic(path, {"name": name, "stamp_digest": digest, "stamp": dict(stamp), "value": value})
    return value
