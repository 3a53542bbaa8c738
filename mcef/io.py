"""Atomic file writes: a reader never sees a half-written file, a crash leaves none behind for long.

Every write goes to a temporary beside its target (``.<name>.<random>.tmp``, a file, or a directory for
:func:`mcef.data.save_dataset`) and is renamed onto the target only when complete. While it is being written the
writer holds an exclusive ``flock`` on the temporary, so :func:`remove_stale_temporaries` can tell the leftovers of
a killed writer (no lock: the kernel dropped it with the process) from a write in progress (locked: left alone).
A failed write (disk full, read-only directory, no permission) is a :class:`StorageError` naming the target.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

try:
    import fcntl
except ImportError:  # Windows: no flock; stale temporaries are recognised by age instead
    fcntl = None

TEMP_SUFFIX = ".tmp"
OLD_SUFFIX = ".old"  # save_dataset's set-aside copy of the dataset it replaces
STALE_AGE_S = 3600.0  # without flock: a temporary this old is taken for a dead writer's


class StorageError(OSError, ValueError):
    """A write that failed (disk full, read-only file system, no permission); the message names the path and says
    that the target was left as it was. An OSError (errno kept) and a ValueError (the CLI's clear-error class)."""

    def __init__(self, path: str | os.PathLike, err: OSError, action: str = "write"):
        super().__init__(err.errno, err.strerror or str(err), str(path))
        reason = err.strerror or str(err)
        code = errno.errorcode.get(err.errno or 0)
        if err.errno is None:  # e.g. numpy's "N requested and M written": say when the disk is full
            with contextlib.suppress(OSError):
                stat = os.statvfs(next(p for p in Path(path).parents if p.exists()))
                if stat.f_bavail * stat.f_frsize < 1 << 20:
                    reason += f" (the file system is full: {stat.f_bavail * stat.f_frsize} bytes free)"
        self.message = (f"cannot {action} {path}: {reason}{f' ({code})' if code else ''}; nothing was half-written "
                        f"(an earlier {Path(path).name}, if any, is unchanged)")

    def __str__(self) -> str:
        return self.message


def storage_error(path: str | os.PathLike, err: OSError, action: str = "write") -> StorageError:
    """``err`` as a :class:`StorageError` naming ``path`` (unchanged when it already is one)."""
    return err if isinstance(err, StorageError) else StorageError(path, err, action)


def current_umask() -> int:
    """The process umask (what a plain open() or mkdir() removes from 0o666 / 0o777)."""
    mask = os.umask(0)  # the only portable way to read the umask is to set it
    os.umask(mask)
    return mask


NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP), errno.EINVAL}


def flock(fd: int, operation: int) -> bool:
    """``fcntl.flock``; False (no lock, no error) on a file system without locks (some network mounts), where
    :func:`remove_stale_temporaries` then cannot take the lock either and leaves every temporary alone."""
    try:
        fcntl.flock(fd, operation)
    except OSError as err:
        if err.errno in NO_LOCKS:
            return False
        raise
    return True


def same_file(path: Path, fd: int, *, follow_symlinks: bool = False) -> bool:
    """Whether ``path`` is the file open as ``fd`` (a symlink itself, unless ``follow_symlinks``)."""
    try:
        a, b = os.stat(path, follow_symlinks=follow_symlinks), os.fstat(fd)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def make_temporary(target: str | os.PathLike, *, directory: bool = False,
                   suffix: str = TEMP_SUFFIX) -> tuple[Path, int | None]:
    """A new temporary file (or directory) ``.<name>.<random><suffix>`` beside ``target``, locked by this process.

    Returns its path and the descriptor holding the lock (None without flock); :func:`release` it when done (after
    the rename: the lock then sits on the target's inode and goes with the close). OSError as :class:`StorageError`.
    A Ctrl-C while it runs leaves no temporary behind.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        while True:
            release_interrupts = _hold_interrupts()
            try:
                path, fd = _create(target, directory, suffix)
            except BaseException:
                release_interrupts()
                raise
            try:
                release_interrupts()  # a Ctrl-C that came meanwhile is raised here, where the except removes
                if fd is None or not flock(fd, fcntl.LOCK_EX) or same_file(path, fd):  # not removed by a cleaner
                    return path, fd
            except BaseException:
                _discard(path, fd)
                raise
            os.close(fd)
    except OSError as err:
        raise storage_error(target, err) from None


# Held back while a temporary is created, so that none lands between the file's creation and this process knowing
# its name (tempfile's Python code runs in between). A handler that records it is installed rather than a signal
# mask blocking it: a process-directed signal that one thread blocks goes to another thread, whose handler call the
# main thread would then raise anywhere.
INTERRUPTS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name))


def _hold_interrupts() -> Callable[[], None]:
    """Record Ctrl-C (and SIGTERM where Python handles it) instead of raising it; returns the function that puts
    the handlers back and then raises what was recorded. Only the main thread, where Python raises them, holds."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    recorded: list[tuple[int, Any]] = []
    previous = {sig: signal.getsignal(sig) for sig in INTERRUPTS}
    previous = {sig: handler for sig, handler in previous.items() if callable(handler)}  # not SIG_DFL / SIG_IGN

    def put_back() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for signum, frame in recorded:
            previous[signum](signum, frame)

    try:
        for sig in previous:
            signal.signal(sig, lambda signum, frame: recorded.append((signum, frame)))
    except BaseException:  # a signal raised by a handler not yet replaced: the replaced ones go back first
        put_back()
        raise
    return put_back


def _create(target: Path, directory: bool, suffix: str) -> tuple[Path, int | None]:
    """One new temporary beside ``target`` and a descriptor of it to lock (None without flock)."""
    if directory:
        path = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent))
        return path, (os.open(path, os.O_RDONLY) if fcntl is not None else None)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    if fcntl is None:
        os.close(fd)
        return Path(name), None
    return Path(name), fd


def _discard(path: Path, fd: int | None) -> None:
    """Close and remove a temporary of :func:`_create` that will not be used."""
    release(fd)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def release(fd: int | None) -> None:
    """Close a descriptor of :func:`make_temporary` (dropping its lock)."""
    if fd is not None:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    On any failure the temporary is removed; an OSError (disk full, read-only, no permission) becomes a
    :class:`StorageError` naming ``path``.
    """
    path = Path(path)
    tmp_path, fd = make_temporary(path)
    try:
        # mkstemp creates the file private (0600); give the result the permissions a plain open() would.
        os.chmod(tmp_path, 0o666 & ~current_umask())
        yield tmp_path
        if fd is not None:
            os.fsync(fd)  # the data is on disk before the rename makes it visible (any descriptor of the file)
        else:
            with open(tmp_path, "rb") as written:
                os.fsync(written.fileno())
        os.replace(tmp_path, path)
    except OSError as err:
        tmp_path.unlink(missing_ok=True)
        raise storage_error(path, err) from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    finally:
        release(fd)


def _try_lock(path: Path) -> tuple[bool, int | None]:
    """(free, descriptor holding its lock): whether no live writer holds ``path``."""
    if fcntl is None:
        try:
            return time.time() - path.stat(follow_symlinks=False).st_mtime > STALE_AGE_S, None
        except OSError:
            return False, None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False, None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False, None
    if not same_file(path, fd):
        os.close(fd)
        return False, None
    return True, fd


def _target_of(temporary: Path) -> str:
    """``name`` of ``.<name>.<random>.tmp`` (mkstemp's random part has no dot)."""
    return temporary.name[1:].rsplit(".", 2)[0]


def remove_stale_temporaries(directory: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Remove the temporaries a killed writer left in ``directory`` (only those of target ``name`` when given);
    returns what was removed. A temporary locked by a live writer is left alone. A dataset that
    :func:`mcef.data.save_dataset` had set aside (``.<name>.<random>.old/dataset``) when it was killed is put back
    at ``<name>`` if nothing is there, else removed."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for entry in sorted(directory.iterdir()):
        if not (entry.name.startswith(".") and entry.name.endswith((TEMP_SUFFIX, OLD_SUFFIX))) or entry.is_symlink():
            continue
        if entry.name.count(".") < 3 or (name is not None and _target_of(entry) != name):
            continue
        free, fd = _try_lock(entry)
        if not free:
            continue
        try:
            if entry.name.endswith(OLD_SUFFIX) and entry.is_dir():
                kept, target = entry / "dataset", directory / _target_of(entry)
                if kept.is_dir() and not target.exists():
                    os.replace(kept, target)
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
        except OSError:
            pass  # not ours to remove after all (permissions): leave it
        finally:
            release(fd)
    return removed


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_torch_atomic(path: str | os.PathLike, obj: Any) -> None:
    """``torch.save`` to ``path`` atomically."""
    import torch

    # Serialised in memory, then written by Python: a full disk is then an OSError (ENOSPC) naming the path, where
    # torch's own file writer raises a bare RuntimeError; and an interrupted torch.save never holds a file that
    # gets closed under it (its writer would write to it again at exit, and abort the process).
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        file.write(buffer.getbuffer())
