"""The run store: a run is a directory, identified by a digest of everything that defines it.

The rule, written once here and used by :func:`mcef.train.fit`, :func:`mcef.experiments.sweep`, the book's
chapters and :func:`mcef.evaluate.evaluate`:

    run digest = sha256(config without where or how visibly it runs, fingerprint of the data's content,
                        package version)

"Where or how visibly" are the fields in :data:`NON_DEFINING` (device, paths, names, logging, checkpoint cadence).
The data fingerprint hashes the arrays, labels, speakers and splits themselves, never a file's name or size. A run
directory holds ``run.json`` (its identity, written when training starts), ``config.yaml``, ``metrics.jsonl``,
``summary.json`` when finished, and checkpoints. A finished run is reused only when its digest matches.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import importlib.metadata
import json
import os
import socket
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from mcef.config import ADDED_FIELDS, ConfigError, ExperimentConfig, config_to_dict, load_stored_config
from mcef.data.dataset import DialogueDataset
from mcef.io import fcntl, flock, same_file, storage_error, write_json_atomic

RUN_FILE = "run.json"
LOCK_FILE = ".lock"  # held (flock) by the training writing into the run directory; names it
# Dotted config fields that say where or how visibly a run runs, not what it computes.
NON_DEFINING = ("name", "data.path", "data.cache_dir", "data.text.batch_size", "train.device", "train.progress", "train.checkpoint_every")


def package_version() -> str:
    """The installed version of the ``mcef`` package (part of every run digest)."""
    try:
        return importlib.metadata.version("mcef")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _parent(mapping: dict, dotted: str) -> tuple[dict, str]:
    """(the dict holding the dotted field ``a.b.c``, its last name ``c``); an empty dict when a parent is absent or
    not a mapping (``data.text.finetune: null``)."""
    *parents, leaf = dotted.split(".")
    node = mapping
    for part in parents:
        node = node.get(part) if isinstance(node.get(part), dict) else {}
    return node, leaf


def defining_fields(config: ExperimentConfig | dict) -> dict:
    """The config as a nested dict without the :data:`NON_DEFINING` fields, nor the :data:`mcef.config.ADDED_FIELDS`
    at the value earlier runs computed with (adding a field to the schema leaves every earlier run's digest intact;
    any other value of it defines a new run)."""
    mapping = config_to_dict(config) if isinstance(config, ExperimentConfig) else json.loads(json.dumps(config))
    for dotted in NON_DEFINING:
        node, leaf = _parent(mapping, dotted)
        node.pop(leaf, None)
    for dotted, legacy in ADDED_FIELDS.items():
        node, leaf = _parent(mapping, dotted)
        if leaf in node and node[leaf] == legacy:
            del node[leaf]
    return mapping


def json_digest(payload) -> str:
    """The SHA-256 of ``payload``'s JSON with sorted keys (values JSON cannot hold are written as ``str``)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def config_digest(config: ExperimentConfig | dict) -> str:
    """16 hex digits of the defining fields of ``config``."""
    return json_digest(defining_fields(config))[:16]


def data_fingerprint(dataset: DialogueDataset) -> str:
    """16 hex digits of the dataset's content: every split's dialogue ids in order and, per dialogue, every feature
    array, the speakers and the labels; plus the label and speaker names. Names of files never enter it."""
    digest = hashlib.sha256()
    digest.update(json.dumps([list(dataset.label_names), list(dataset.speaker_names)]).encode())
    for split in sorted(dataset.splits):
        digest.update(f"\0split {split}\0".encode())
        for dialogue_id in dataset.splits[split]:
            dialogue = dataset.dialogues[dialogue_id]
            digest.update(f"\0{dialogue_id}\0".encode())
            for modality in sorted(dialogue.features):
                array = np.ascontiguousarray(dialogue.features[modality], dtype=np.float32)
                digest.update(f"{modality}{array.shape}".encode())
                digest.update(array.tobytes())
            digest.update(np.ascontiguousarray(dialogue.speakers, dtype=np.int64).tobytes())
            digest.update(np.ascontiguousarray(dialogue.labels, dtype=np.int64).tobytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class RunIdentity:
    """What defines a run, and the digest of it."""

    digest: str  # 16 hex digits of the three below
    config_digest: str  # :func:`config_digest` of the run's config
    data_fingerprint: str  # :func:`data_fingerprint` of the data it trains on
    package_version: str  # mcef's version

    @classmethod
    def of(cls, config: ExperimentConfig, fingerprint: str) -> "RunIdentity":
        """The identity of a run of ``config`` on data with ``fingerprint``."""
        parts = {"config_digest": config_digest(config), "data_fingerprint": fingerprint,
                 "package_version": package_version()}
        return cls(digest=json_digest(parts)[:16], **parts)


@dataclass(frozen=True)
class StoredRun:
    """A run directory as the store sees it."""

    path: Path
    identity: RunIdentity | None  # None: not a run of this store (no readable run.json)
    config: dict | None  # its config.yaml, as a mapping
    summary: dict | None  # its summary.json, when finished
    status: str  # "finished" | "diverged" | "partial" | "empty"

    @property
    def finished(self) -> bool:
        return self.status == "finished"


def read_identity(run_dir: str | Path) -> RunIdentity | None:
    """The identity ``run_dir/run.json`` records, or None when there is none (or it cannot be read)."""
    path = Path(run_dir) / RUN_FILE
    try:
        return RunIdentity(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def write_identity(run_dir: str | Path, identity: RunIdentity) -> None:
    """Record ``identity`` in ``run_dir/run.json`` (atomically)."""
    write_json_atomic(Path(run_dir) / RUN_FILE, asdict(identity))


def read_run(run_dir: str | Path) -> StoredRun:
    """What is stored in ``run_dir``: identity, config, summary and status."""
    run_dir = Path(run_dir)
    config_path, summary_path = run_dir / "config.yaml", run_dir / "summary.json"
    config = config_to_dict(load_stored_config(config_path)) if config_path.is_file() else None
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.is_file() else None
    if summary is not None:
        status = "diverged" if summary.get("diverged") else "finished"
    else:
        status = "partial" if (run_dir / "metrics.jsonl").is_file() or (run_dir / "last.pt").is_file() else "empty"
    return StoredRun(run_dir, read_identity(run_dir), config, summary, status)


def differing_fields(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested mappings, with both values."""
    differences = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            differences += differing_fields(a, b, f"{prefix}{key}.")
        elif a != b:
            differences.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return differences


def explain_mismatch(stored: StoredRun, config: ExperimentConfig, identity: RunIdentity) -> str:
    """In words, why the run in ``stored`` is not a run of ``config`` on this data."""
    if stored.identity is None:
        return f"{stored.path} has no {RUN_FILE} (made before the run store, or not a run)"
    reasons = []
    if stored.config is not None:
        reasons += differing_fields(defining_fields(stored.config), defining_fields(config))
    if stored.identity.data_fingerprint != identity.data_fingerprint:
        reasons.append(f"data fingerprint: {stored.identity.data_fingerprint} -> {identity.data_fingerprint}")
    if stored.identity.package_version != identity.package_version:
        reasons.append(f"package version: {stored.identity.package_version} -> {identity.package_version}")
    return f"{stored.path} is a different run ({'; '.join(reasons) or 'digest differs'})"


def reusable(run_dir: str | Path, identity: RunIdentity) -> StoredRun | None:
    """The finished run in ``run_dir`` when its digest is ``identity``'s, else None."""
    stored = read_run(run_dir)
    if stored.finished and stored.identity is not None and stored.identity.digest == identity.digest:
        return stored
    return None


def find_run(root: str | Path, identity: RunIdentity) -> Path | None:
    """The finished run of ``identity``'s digest anywhere under ``root`` (None when there is none)."""
    root = Path(root)
    if not root.is_dir():
        return None
    for marker in sorted(root.rglob(RUN_FILE)):
        stored = read_identity(marker.parent)  # a small JSON: the run itself is read only on a matching digest
        if stored is not None and stored.digest == identity.digest and reusable(marker.parent, identity) is not None:
            return marker.parent
    return None


class RunDirError(ValueError):
    """A run directory that cannot be trained into as asked (in use, or holding a run that would be lost)."""


class RunLockedError(RunDirError):
    """The run directory is locked by another training; the message names the holder."""


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return (f"pid {info['pid']} on {info['host']}, started {info['started']}"
                + (f": {info['command']}" if info.get("command") else ""))
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not yet written its name"


def lock_holder(run_dir: str | Path) -> str | None:
    """Who holds ``run_dir``'s lock, in words, or None when no training does (nothing is created)."""
    path = Path(run_dir) / LOCK_FILE
    if fcntl is None or not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except OSError:
        return _holder(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def run_lock(run_dir: str | Path) -> Iterator[Path]:
    """Hold ``run_dir/.lock`` exclusively (``flock``) for the block, with this process's pid, host, start time and
    command written in it; a :class:`RunLockedError` naming the holder when another process holds it. The kernel
    drops the lock when its process dies (kill -9 included); the file is removed when the block ends."""
    run_dir = Path(run_dir)
    path, fd = run_dir / LOCK_FILE, None
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            if fcntl is None:
                break
            try:
                if not flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB):
                    break  # a file system without locks: the run directory cannot be protected there
            except BlockingIOError:
                holder = _holder(fd)
                os.close(fd)
                fd = None
                raise RunLockedError(f"{run_dir} is in use by another training ({holder}); wait for it to end or "
                                     f"train into another run directory") from None
            if same_file(path, fd, follow_symlinks=True):
                break
            os.close(fd)  # its holder removed the file as we opened it: take the new one
            fd = None
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                "command": " ".join(sys.argv)[:500]}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(info).encode("utf-8"))
    except OSError as err:
        if fd is not None:
            os.close(fd)
        raise storage_error(path, err) from None
    try:
        yield path
    finally:
        try:
            if same_file(path, fd, follow_symlinks=True):
                path.unlink()
        except OSError:
            pass
        os.close(fd)


def list_runs(root: str | Path) -> list[StoredRun]:
    """Every run directory under ``root`` (any depth), in path order."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"run root {str(root)!r} is not a directory")
    marks = {p.parent for pattern in (RUN_FILE, "config.yaml") for p in root.rglob(pattern)}
    return [read_run(path) for path in sorted(marks)]


def runs_table(root: str | Path) -> str:
    """``mcef runs list``: name, digest, data, status and selected metric of every run under ``root``."""
    root = Path(root)
    rows = [("run", "digest", "data", "status", "selected (valid w-F1 -> test w-F1, epoch)")]
    for run in list_runs(root):
        data = (run.summary or {}).get("data", {}).get("name", "?")
        fingerprint = run.identity.data_fingerprint[:8] if run.identity else "-"
        selected = "-"
        if run.finished:
            s = run.summary
            selected = f"{s['valid']['weighted_f1']:.4f} -> {s['test']['weighted_f1']:.4f}, epoch {s['selected_epoch']}"
        rows.append((str(run.path.relative_to(root)) or ".", run.identity.digest if run.identity else "(none)",
                     f"{data} {fingerprint}", run.status, selected))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)

