"""Atomic writes: the result looks like a plain write, a failure leaves neither the file nor a temporary."""

import os
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
