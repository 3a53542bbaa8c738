"""Atomic writes: the result looks like a plain write, a failure leaves neither the file nor a temporary."""

import os
import signal
import stat

import pytest

from mcef.io import atomic_path, write_json_atomic, write_text_atomic


def test_atomic_write_has_plain_file_permissions(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    write_text_atomic(tmp_path / "sub" / "atomic.txt", "x")
    assert stat.S_IMODE(os.stat(tmp_path / "sub" / "atomic.txt").st_mode) == stat.S_IMODE(os.stat(plain).st_mode)


def test_failed_write_leaves_nothing(tmp_path):
    write_json_atomic(tmp_path / "a.json", {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "a.json") as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert (tmp_path / "a.json").read_text() == '{\n  "v": 1\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_failed_write_is_a_storage_error_naming_the_target(tmp_path, monkeypatch):
    import errno

    from mcef.io import StorageError

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(StorageError, match=r"cannot write .*a\.json: No space left on device \(ENOSPC\)") as caught:
        write_json_atomic(tmp_path / "a.json", {"v": 1})
    assert isinstance(caught.value, OSError) and isinstance(caught.value, ValueError)
    assert caught.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("directory", [False, True])
def test_ctrl_c_while_a_temporary_is_created_leaves_none(tmp_path, monkeypatch, directory):
    """A Ctrl-C that lands just after tempfile made the file (before its name is known here, where the CI run once
    caught one) is held until the temporary can be removed, then raised."""
    import tempfile

    from mcef.io import make_temporary

    real = tempfile.mkdtemp if directory else tempfile.mkstemp

    def interrupted(*args, **kwargs):
        made = real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)  # Python raises it at its next check, inside tempfile's own code
        return made

    monkeypatch.setattr(tempfile, "mkdtemp" if directory else "mkstemp", interrupted)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (CI may ignore SIGINT)
    try:
        with pytest.raises(KeyboardInterrupt):
            make_temporary(tmp_path / "best.pt", directory=directory)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_while_a_temporary_is_locked_leaves_none(tmp_path, monkeypatch):
    import mcef.io
    from mcef.io import make_temporary

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(mcef.io, "flock", interrupted)
    with pytest.raises(KeyboardInterrupt):
        make_temporary(tmp_path / "best.pt")
    assert list(tmp_path.iterdir()) == []


def test_stale_temporaries_are_removed_but_not_a_live_writers(tmp_path):
    from mcef.io import make_temporary, release, remove_stale_temporaries

    dead, fd = make_temporary(tmp_path / "a.txt")
    release(fd)  # its writer is gone (as after kill -9: the kernel drops the lock)
    other, fd = make_temporary(tmp_path / "b.txt")
    release(fd)
    unrelated = tmp_path / ".notes.tmp"  # not of our naming (no random part): left alone
    unrelated.write_text("x")
    with atomic_path(tmp_path / "c.txt") as live:
        live.write_text("half")
        assert remove_stale_temporaries(tmp_path, "a.txt") == [dead]  # only that target's
        assert remove_stale_temporaries(tmp_path) == [other]
        assert live.exists()  # held by a live writer
    assert (tmp_path / "c.txt").read_text() == "half"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".notes.tmp", "c.txt"]


def test_a_dataset_set_aside_by_a_killed_save_is_put_back(tmp_path):
    from mcef.io import OLD_SUFFIX, make_temporary, release, remove_stale_temporaries

    old, fd = make_temporary(tmp_path / "data", directory=True, suffix=OLD_SUFFIX)
    (old / "dataset").mkdir()
    (old / "dataset" / "index.json").write_text("{}")
    release(fd)
    assert remove_stale_temporaries(tmp_path) == [old]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    assert (tmp_path / "data" / "index.json").read_text() == "{}"
