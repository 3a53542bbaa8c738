"""Fault injection: kill -9 anywhere, damaged files, concurrent runs, read-only and full disks, Ctrl-C, divergence.

Every case asserts that nothing was lost (resuming gives the uninterrupted run's summary and metrics; a refusal
leaves the files as they were) and that the message names what it is about. A kill is a real SIGKILL of a forked
child (no cleanup code runs, the kernel drops its locks), sent from inside at a seeded point (a patched hook) or
from outside after a seeded delay; Ctrl-C is a real SIGINT to a `mcef train` subprocess.

Run alone with ``pytest -m faults`` (about 55 s on a busy 2-core machine, most of it the Ctrl-C subprocess's
start). The full-disk and read-only cases use a small tmpfs when running as root with mount permitted (as root chmod
has no effect), chmod otherwise, and are skipped with the reason where neither works.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch

import mcef.io
import mcef.train
from mcef.cli import main
from mcef.config import load_config
from mcef.data import SyntheticConfig, load_dataset, make_synthetic, save_dataset
from mcef.experiments import collect, sweep
from mcef.io import StorageError, atomic_path, remove_stale_temporaries
from mcef.losses import Objective
from mcef.runs import LOCK_FILE, RunDirError, RunLockedError, data_fingerprint, read_run
from mcef.train import CheckpointError, fit

pytestmark = [pytest.mark.faults,
              pytest.mark.skipif(not hasattr(os, "fork"), reason="kills a forked child: needs os.fork (POSIX)")]

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"
TINY = SyntheticConfig(n_train=12, n_test=3, dims=(8, 6, 4), min_length=3, max_length=8, valid_fraction=0.34)
# 4 epochs, 4 training batches each; the selected epoch is 3 (best.pt written at epochs 1 and 3).
OVERRIDES = ["model.hidden=8", "model.n_heads=2", "model.n_self_heads=2", "train.progress=false", "train.epochs=4",
             "train.checkpoint_every=1", "train.lr=3e-2", "train.batch_size=2"]
COMPARED = ("selected_epoch", "epochs_run", "stopped_early", "valid", "test", "oracle_best_test")


def config(*extra: str):
    return load_config(CONFIGS / "smoke.yaml", [*OVERRIDES, *extra])


def lines_of(run_dir: Path) -> list[dict]:
    """metrics.jsonl without the timing."""
    return [{k: v for k, v in json.loads(line).items() if k != "epoch_seconds"}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def hidden(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def contents(directory: Path) -> dict[str, bytes]:
    """Every run file's bytes (not the lock file a killed holder left: the next start takes it over)."""
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.name != LOCK_FILE}


@pytest.fixture(scope="module")
def tiny():
    return make_synthetic(TINY)


@pytest.fixture(scope="module")
def reference(tiny, tmp_path_factory):
    """The uninterrupted run, and how many times it calls the objective (every pass, every batch)."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    calls = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the autouse fixture does for each test (it is not yet active for this one)
    with pytest.MonkeyPatch.context() as patch:
        real = Objective.__call__
        patch.setattr(Objective, "__call__", lambda self, *a: calls.append(1) or real(self, *a))
        summary = fit(config(), dataset=tiny, run_dir=run_dir)
    torch.set_num_threads(threads)
    assert summary["selected_epoch"] == 3 and summary["epochs_run"] == 4  # the case the kills are meant to cover
    return {"summary": summary, "lines": lines_of(run_dir), "run_dir": run_dir, "calls": len(calls)}


def assert_same_as_reference(summary: dict, run_dir: Path, reference: dict) -> None:
    for key in COMPARED:
        assert summary[key] == reference["summary"][key], key
    assert lines_of(run_dir) == reference["lines"]
    assert json.loads((run_dir / "summary.json").read_text())["test"] == reference["summary"]["test"]
    assert read_run(run_dir).status == "finished"
    assert hidden(run_dir) == [], "stale temporaries or the lock left behind"


# ------------------------------------------------------------------------------------------- killing a child

def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def in_child(body, *, wait: bool = True) -> int:
    """Run ``body`` in a forked child; its exit code (-9: killed by SIGKILL), or its pid when not ``wait``."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            body()
        except BaseException:
            traceback.print_exc()
            code = 70
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    if not wait:
        return pid
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def kill_at_objective_call(n: int) -> None:
    """SIGKILL at the n-th objective call (any pass: mid-epoch in training, validation, test or the final test)."""
    real, count = Objective.__call__, [0]

    def call(self, *args):
        count[0] += 1
        if count[0] == n:
            die()
        return real(self, *args)
    Objective.__call__ = call


def kill_after_save(name: str, n: int) -> None:
    """SIGKILL right after the n-th complete save of checkpoint ``name`` (e.g. between best.pt and last.pt)."""
    real, count = mcef.train.save_torch_atomic, [0]

    def save(path, obj):
        real(path, obj)
        if Path(path).name == name:
            count[0] += 1
            if count[0] == n:
                die()
    mcef.train.save_torch_atomic = save


def open_failing_at_write(fail, which: int = 1):
    """An ``open`` for mcef.io whose ``which``-th file opened "wb" (a checkpoint being written) calls
    ``fail(file, data)`` instead of writing."""
    count = [0]

    def opener(file, mode="r", *args, **kwargs):
        handle = open(file, mode, *args, **kwargs)
        if mode != "wb":
            return handle
        count[0] += 1
        if count[0] != which:
            return handle

        class Failing:
            def write(self, data):
                fail(handle, data)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                handle.close()
        return Failing()
    return opener


def kill_inside_checkpoint_write(n: int, fraction: float) -> None:
    """SIGKILL in the middle of writing the n-th checkpoint: ``fraction`` of its bytes are in the temporary."""
    def fail(handle, data):
        handle.write(bytes(data)[:int(len(data) * fraction)])
        handle.flush()
        die()
    mcef.io.open = open_failing_at_write(fail, which=n)


def kill_inside_text_write(name: str, n: int, fraction: float) -> None:
    """SIGKILL in the middle of the n-th atomic write of ``name`` (metrics.jsonl, summary.json, ...)."""
    real, count = mcef.io.write_text_atomic, [0]

    def write(path, text):
        if Path(path).name == name:
            count[0] += 1
            if count[0] == n:
                with atomic_path(path) as tmp:
                    tmp.write_text(text[:int(len(text) * fraction)])
                    die()
        return real(path, text)
    mcef.io.write_text_atomic = write
    mcef.train.write_text_atomic = write


SITES = {
    "mid-epoch": lambda rng, ref: kill_at_objective_call(rng.randint(1, ref["calls"])),
    "between best.pt and last.pt": lambda rng, ref: kill_after_save("best.pt", rng.choice([1, 2])),
    "inside a checkpoint write": lambda rng, ref: kill_inside_checkpoint_write(rng.randint(1, 6), rng.random()),
    "inside a metrics.jsonl write": lambda rng, ref: kill_inside_text_write("metrics.jsonl", rng.randint(1, 4),
                                                                           rng.random()),
    "inside the summary.json write": lambda rng, ref: kill_inside_text_write("summary.json", 1, rng.random()),
}
CASES = [(site, 0) for site in SITES] + [(random.Random(seed).choice(sorted(SITES)), seed) for seed in (1, 2, 3)]


@pytest.mark.parametrize("site, seed", CASES, ids=[f"{s}-seed{k}" for s, k in CASES])
def test_kill_at_a_seeded_point_then_resume_gives_the_uninterrupted_run(site, seed, tiny, reference, tmp_path):
    run_dir = tmp_path / "run"
    rng = random.Random(f"{site}/{seed}")

    def train():
        SITES[site](rng, reference)
        fit(config(), dataset=tiny, run_dir=run_dir)

    assert in_child(train) == -signal.SIGKILL
    if "write" in site:
        assert any(name.endswith(".tmp") for name in hidden(run_dir)), "the kill left no temporary to clean up"
    resumed = fit(config(), dataset=tiny, run_dir=run_dir, resume=True)
    assert_same_as_reference(resumed, run_dir, reference)


@pytest.mark.parametrize("seed", [0, 1])
def test_kill_after_a_seeded_delay_then_resume(seed, tiny, reference, tmp_path):
    run_dir = tmp_path / "run"
    pid = in_child(lambda: fit(config(), dataset=tiny, run_dir=run_dir), wait=False)
    time.sleep(random.Random(seed).uniform(0.05, 1.2))  # a forked child trains the run in about a second
    os.kill(pid, signal.SIGKILL)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    assert code in (-signal.SIGKILL, 0)  # 0: it finished first (then resuming simply reuses it)
    resumed = fit(config(), dataset=tiny, run_dir=run_dir, resume=True)
    assert_same_as_reference(resumed, run_dir, reference)


# ------------------------------------------------------------------------------------------- damaged files

@pytest.fixture
def partial(tiny, tmp_path):
    """A run killed right after last.pt of epoch 2 (best.pt holds epoch 1)."""
    run_dir = tmp_path / "partial"

    def train():
        kill_after_save("last.pt", 2)
        fit(config(), dataset=tiny, run_dir=run_dir)

    assert in_child(train) == -signal.SIGKILL
    assert read_run(run_dir).status == "partial"
    return run_dir


def truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


@pytest.mark.parametrize("keep", [0.0, 0.5, 0.99])
def test_truncated_last_pt_resumes_from_best_pt(keep, partial, tiny, reference, capsys):
    truncate(partial / "last.pt", keep)
    resumed = fit(config(), dataset=tiny, run_dir=partial, resume=True)
    err = capsys.readouterr().err
    assert f"{partial / 'last.pt'}: truncated or corrupt checkpoint" in err
    assert f"resuming from {partial / 'best.pt'} (epoch 1), the last good state" in err
    assert_same_as_reference(resumed, partial, reference)


def test_truncated_last_and_best_pt_stop_naming_both_and_keep_the_files(partial, tiny):
    for name in ("last.pt", "best.pt"):
        truncate(partial / name, 0.5)
    before = contents(partial)
    with pytest.raises(CheckpointError, match=r"cannot resume .*last\.pt: truncated or corrupt checkpoint.*"
                                              r"best\.pt: truncated or corrupt checkpoint.*--overwrite"):
        fit(config(), dataset=tiny, run_dir=partial, resume=True)
    assert contents(partial) == before  # nothing lost, nothing removed


def test_best_pt_lost_while_last_pt_is_good_is_a_clear_error(partial, tiny):
    truncate(partial / "best.pt", 0.3)
    with pytest.raises(CheckpointError, match=r"the selected epoch 1's weights are lost .*best\.pt"):
        fit(config(), dataset=tiny, run_dir=partial, resume=True)


@pytest.mark.parametrize("damage", ["emptied", "cut mid-line", "garbage"])
def test_damaged_metrics_jsonl_is_rebuilt_from_the_checkpoint(damage, partial, tiny, reference):
    path = partial / "metrics.jsonl"
    if damage == "emptied":
        path.write_text("")
    elif damage == "cut mid-line":
        truncate(path, 0.6)
    else:
        path.write_bytes(b"\x00\xff{not json\n")
    resumed = fit(config(), dataset=tiny, run_dir=partial, resume=True)
    assert_same_as_reference(resumed, partial, reference)


def test_damaged_metrics_jsonl_without_a_copy_in_the_checkpoint_is_refused_naming_it(partial, tiny):
    for name in ("last.pt", "best.pt"):  # a checkpoint of an earlier version: no "history"
        state = torch.load(partial / name, weights_only=True)
        state.pop("history")
        torch.save(state, partial / name)
    truncate(partial / "metrics.jsonl", 0.6)
    with pytest.raises(CheckpointError, match=r"metrics\.jsonl is damaged .*expected epochs 1 to 2.*--overwrite"):
        fit(config(), dataset=tiny, run_dir=partial, resume=True)


# ------------------------------------------------------------------------------------------- protected run dirs

def test_second_training_into_a_locked_run_dir_fails_naming_the_holder(tiny, reference, tmp_path):
    run_dir = tmp_path / "sweep" / "smoke" / "seed0"  # where sweep would put it

    def slow_training():
        real = Objective.__call__
        Objective.__call__ = lambda self, *a: time.sleep(0.2) or real(self, *a)  # killed long before it ends
        fit(config(), dataset=tiny, run_dir=run_dir)

    pid = in_child(slow_training, wait=False)
    try:
        deadline = time.monotonic() + 60
        while f'"pid": {pid}' not in ((run_dir / LOCK_FILE).read_text() if (run_dir / LOCK_FILE).exists() else ""):
            assert time.monotonic() < deadline, "the child never took the lock"
            time.sleep(0.02)
        for attempt in ({}, {"resume": True}, {"overwrite": True}):
            with pytest.raises(RunLockedError, match=rf"{re.escape(str(run_dir))} is in use by another training "
                                                     rf"\(pid {pid} on {re.escape(socket.gethostname())}, started "):
                fit(config(), dataset=tiny, run_dir=run_dir, **attempt)
        with pytest.raises(RunLockedError, match=f"pid {pid}"):  # sweep never sets a held run aside
            sweep([config("train.lr=0.5")], [0], tmp_path / "sweep", dataset=tiny, log=lambda line: None)
    finally:
        os.kill(pid, signal.SIGKILL)  # the holder dies: the kernel drops its lock
        os.waitpid(pid, 0)
    resumed = fit(config(), dataset=tiny, run_dir=run_dir, resume=True)
    assert_same_as_reference(resumed, run_dir, reference)


def test_plain_rerun_refuses_a_finished_run_of_another_config(tiny, reference, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(reference["run_dir"], run_dir)
    before = contents(run_dir)
    assert fit(config("train.device=cpu"), dataset=tiny, run_dir=run_dir) == reference["summary"]  # same digest
    with pytest.raises(RunDirError, match=r"different run \(train.lr: 0.03 -> 0.01\): a finished run; reuse happens "
                                          r"automatically when the digest matches.*--overwrite"):
        fit(config("train.lr=1e-2"), dataset=tiny, run_dir=run_dir)
    with pytest.raises(RunDirError, match=r"finished run of this same config and data.*--overwrite"):
        fit(config(), dataset=tiny, run_dir=run_dir, reuse=False)
    assert contents(run_dir) == before
    replaced = fit(config("train.lr=1e-2"), dataset=tiny, run_dir=run_dir, overwrite=True)
    assert replaced["provenance"]["run_digest"] != reference["summary"]["provenance"]["run_digest"]


def test_plain_rerun_refuses_a_partial_run_and_overwrite_starts_it_again(partial, tiny, reference, capsys):
    before = contents(partial)
    with pytest.raises(RunDirError, match=r"holds a partial run of this config \(2 of 4 epochs done\).*--resume .*"
                                          r"to continue it or --overwrite"):
        fit(config(), dataset=tiny, run_dir=partial)
    with pytest.raises(RunDirError, match=r"train.lr: 0.03 -> 0.01\): a partial run.*--overwrite"):
        fit(config("train.lr=1e-2"), dataset=tiny, run_dir=partial)
    assert contents(partial) == before
    args = ["train", "--config", str(CONFIGS / "smoke.yaml"), *sum([["--set", o] for o in OVERRIDES], []),
            "--run-dir", str(partial), "--quiet"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "partial run" in err[0] and "--resume" in err[0]
    assert contents(partial) == before
    # --overwrite starts again (the data are the config's own here, so compare with a fresh run of it)
    assert main([*args, "--overwrite"]) == 0
    assert read_run(partial).status == "finished" and hidden(partial) == []


# ------------------------------------------------------------------------------------------- Ctrl-C

CTRL_C_CHILD = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even when started from a background job
import torch
torch.set_num_threads(1)
from mcef.losses import Objective
real = Objective.__call__
Objective.__call__ = lambda self, *a: time.sleep(0.1) or real(self, *a)  # slow enough to be interrupted
from mcef.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_during_mcef_train_is_one_line_exit_130_and_resumable(tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = ["train", "--config", str(CONFIGS / "smoke.yaml"), *sum([["--set", o] for o in OVERRIDES], []),
            "--run-dir", str(run_dir), "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    child = subprocess.Popen([sys.executable, "-c", CTRL_C_CHILD, *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "metrics.jsonl").exists() and child.poll() is None:
            assert time.monotonic() < deadline, "training never started"
            time.sleep(0.02)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=120)
    finally:
        child.kill()
    lines = [line for line in err.splitlines() if line.strip()]
    assert child.returncode == 130, (out, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0] == f"mcef train: interrupted; {run_dir} stays resumable: rerun with --resume to continue"
    assert read_run(run_dir).status == "partial" and hidden(run_dir) == []
    assert main([*args, "--resume"]) == 0  # the config's own data: compare with an uninterrupted run of it
    resumed = json.loads((run_dir / "summary.json").read_text())
    assert main([*args[:-3], "--run-dir", str(tmp_path / "whole"), "--quiet"]) == 0
    whole = json.loads((tmp_path / "whole" / "summary.json").read_text())
    assert all(resumed[key] == whole[key] for key in COMPARED)
    assert lines_of(run_dir) == lines_of(tmp_path / "whole")


# ------------------------------------------------------------------------------------------- full and read-only

def test_disk_full_during_a_checkpoint_write_names_the_path_and_loses_nothing(tiny, reference, tmp_path,
                                                                              monkeypatch, capsys):
    run_dir = tmp_path / "run"

    def full(handle, data):
        handle.write(bytes(data)[:1000])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    # the 4th checkpoint written is best.pt of epoch 3: 1000 bytes of it, then no space
    monkeypatch.setattr(mcef.io, "open", open_failing_at_write(full, which=4), raising=False)
    with pytest.raises(StorageError, match=rf"cannot write {re.escape(str(run_dir / 'best.pt'))}: No space left on "
                                           r"device \(ENOSPC\); nothing was half-written"):
        fit(config(), dataset=tiny, run_dir=run_dir)
    assert hidden(run_dir) == []  # no temporary, no lock
    assert read_run(run_dir).status == "partial"
    monkeypatch.delattr(mcef.io, "open")
    resumed = fit(config(), dataset=tiny, run_dir=run_dir, resume=True)
    assert_same_as_reference(resumed, run_dir, reference)
    # the same through the CLI: one line naming the path, exit 1
    monkeypatch.setattr(mcef.io, "open", open_failing_at_write(full, which=1), raising=False)
    code = main(["train", "--config", str(CONFIGS / "smoke.yaml"), *sum([["--set", o] for o in OVERRIDES], []),
                 "--run-dir", str(tmp_path / "cli"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and f"cannot write {tmp_path / 'cli'}" in err[0] and "ENOSPC" in err[0]
    assert [p for p in (tmp_path / "cli").iterdir() if p.name.endswith(".tmp")] == []


def _mount_permitted() -> str | None:
    """None when this process may mount a tmpfs, else why not."""
    if not sys.platform.startswith("linux"):
        return "tmpfs mounts are a Linux test"
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root (CAP_SYS_ADMIN)"
    if shutil.which("mount") is None or shutil.which("umount") is None:
        return "no mount/umount command"
    return None


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    """A small tmpfs at ``path`` for the block (skips the test, with the reason, where it is not permitted)."""
    why = _mount_permitted()
    if why:
        pytest.skip(why)
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@contextlib.contextmanager
def read_only(path: Path):
    """``path`` made read-only for the block: chmod when not root, else a tmpfs remounted read-only."""
    if os.geteuid() != 0:
        path.mkdir(exist_ok=True)
        os.chmod(path, 0o555)
        try:
            yield path
        finally:
            os.chmod(path, 0o755)
        return
    with tmpfs(path, "1m"):
        done = subprocess.run(["mount", "-o", "remount,ro", str(path)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"remounting read-only is not permitted here: {done.stderr.strip()}; as root chmod has "
                        "no effect")
        yield path


def test_read_only_directory_is_an_error_naming_the_path(tiny, tmp_path, capsys):
    with read_only(tmp_path / "ro") as ro:
        with pytest.raises(StorageError, match=rf"cannot write {re.escape(str(ro / 'run'))}.*(EROFS|EACCES)"):
            fit(config(), dataset=tiny, run_dir=ro / "run")
        with pytest.raises(StorageError, match=rf"cannot write {re.escape(str(ro / 'synth'))}.*(EROFS|EACCES)"):
            save_dataset(tiny, ro / "synth")
        for command in (["train", "--config", str(CONFIGS / "smoke.yaml"), "--run-dir", str(ro / "run"), "--quiet"],
                        ["data", "synth", str(ro / "synth"), *SYNTH]):
            assert main(command) == 1
            [line] = capsys.readouterr().err.strip().splitlines()
            assert f"cannot write {ro}" in line and ("EROFS" in line or "EACCES" in line), line
        assert list(ro.iterdir()) == []


def test_full_tmpfs_names_the_path_and_leaves_nothing_half_written(tiny, tmp_path):
    with tmpfs(tmp_path / "small", "64k") as small:  # room for run.json, config.yaml, metrics; not a checkpoint
        with pytest.raises(StorageError, match=rf"cannot write {re.escape(str(small / 'run'))}/(best|last)\.pt: "
                                               r"No space left on device \(ENOSPC\)"):
            fit(config(), dataset=tiny, run_dir=small / "run")
        assert hidden(small / "run") == []
        assert read_run(small / "run").status == "partial"  # metrics.jsonl was written whole
        with pytest.raises(StorageError, match=rf"cannot write {re.escape(str(small / 'synth'))}: "
                                               r".*(No space left|the file system is full)"):
            save_dataset(make_synthetic(SyntheticConfig(n_train=40, n_test=10, dims=(64, 64, 64))), small / "synth")
        assert sorted(p.name for p in small.iterdir()) == ["run"]


# ------------------------------------------------------------------------------------------- data and features

SYNTH = ["--n-train", "8", "--n-test", "3", "--dims", "4", "3", "2"]


def kill_at_call(module, name: str, n: int) -> None:
    real, count = getattr(module, name), [0]

    def call(*args, **kwargs):
        count[0] += 1
        if count[0] == n:
            die()
        return real(*args, **kwargs)
    setattr(module, name, call)


@pytest.mark.parametrize("n", [1, 3])
def test_kill_during_data_synth_then_rerun(n, tmp_path, capsys):
    out = tmp_path / "data" / "synth"
    assert main(["data", "synth", str(tmp_path / "whole"), *SYNTH]) == 0
    expected = data_fingerprint(load_dataset(tmp_path / "whole"))

    def synth():
        kill_at_call(np, "save", n)  # the n-th array of the dataset being written
        main(["data", "synth", str(out), *SYNTH])

    assert in_child(synth) == -signal.SIGKILL
    assert not out.exists() and any(name.endswith(".tmp") for name in hidden(out.parent))
    assert main(["data", "synth", str(out), *SYNTH]) == 0
    assert hidden(out.parent) == [] and data_fingerprint(load_dataset(out)) == expected


def test_kill_while_replacing_a_dataset_keeps_the_old_one(tmp_path, capsys):
    out = tmp_path / "synth"
    assert main(["data", "synth", str(out), *SYNTH]) == 0
    old = data_fingerprint(load_dataset(out))

    def replace():
        kill_at_call(os, "replace", 2)  # the old one moved aside, the new one not yet in place
        main(["data", "synth", str(out), "--seed", "7", *SYNTH])

    assert in_child(replace) == -signal.SIGKILL
    assert not out.exists()
    remove_stale_temporaries(tmp_path, "synth")  # what the next save does first
    assert data_fingerprint(load_dataset(out)) == old and hidden(tmp_path) == []


class StubEncoder:
    """A sentence encoder stand-in: 3 numbers per text, deterministic."""

    device = "cpu"
    max_seq_length = None
    tokenizer = None

    def encode(self, texts, **kwargs):
        return np.array([[len(t), sum(map(ord, t)) % 97, t.count(" ")] for t in texts], dtype=np.float32)


@pytest.mark.parametrize("where", ["encoding", "writing the cache"])
def test_kill_during_feature_extraction_then_rerun(where, tmp_path):
    from mcef.features import TextFeatureConfig, cached_text_features

    dataset = make_synthetic(SyntheticConfig(n_train=6, n_test=2, dims=(4, 3, 2), min_length=2, max_length=4))
    dataset = dataclasses.replace(dataset, dialogues={
        k: dataclasses.replace(d, sentences=[f"line {i} of {k}" for i in range(len(d))])
        for k, d in dataset.dialogues.items()})
    source = save_dataset(dataset, tmp_path / "transcripts")
    (tmp_path / "encoder").mkdir()
    (tmp_path / "encoder" / "weights").write_text("stub")
    settings = TextFeatureConfig(encoder=str(tmp_path / "encoder"))
    expected, _, _ = cached_text_features(source, settings, cache_dir=tmp_path / "whole", model=StubEncoder())
    cache = tmp_path / "cache"

    def extract():
        if where == "encoding":
            StubEncoder.encode = lambda self, texts, **kw: die()
        else:
            kill_at_call(np, "save", 2)
        cached_text_features(source, settings, cache_dir=cache, model=StubEncoder())

    assert in_child(extract) == -signal.SIGKILL
    if where != "encoding":
        assert any(name.endswith(".tmp") for name in hidden(cache))
    again, path, hit = cached_text_features(source, settings, cache_dir=cache, model=StubEncoder())
    assert not hit and hidden(cache) == [] and [p.name for p in cache.iterdir()] == [path.name]
    for key, dialogue in expected.dialogues.items():
        np.testing.assert_array_equal(again.dialogues[key].features["text"], dialogue.features["text"])


# ------------------------------------------------------------------------------------------- divergence

def nan_objective(term: str, at_training_call: int, only_seed: int | None = None):
    """make_objective whose objective makes ``term`` NaN at the n-th training batch ("gradient": the loss stays
    finite, the gradient is NaN)."""
    real_make = mcef.train.make_objective

    def make(config, weights, device):
        objective, count = real_make(config, weights, device), [0]
        if only_seed is not None and config.train.seed != only_seed:
            return objective

        def call(output, batch):
            terms = objective(output, batch)
            if torch.is_grad_enabled():
                count[0] += 1
                if count[0] == at_training_call:
                    if term == "gradient":  # d/dx [0 * sqrt(0 * x)] = 0 * inf = nan, the value stays 0
                        terms["total"] = terms["total"] + 0 * torch.sqrt(0 * output.fused_logits.sum())
                    else:
                        terms[term] = terms[term] * math.nan
                        terms["total"] = terms["total"] + terms[term]
            return terms
        return call
    return make


@pytest.mark.parametrize("term", ["hgr_loss", "fused_ce", "gradient"])
def test_non_finite_loss_or_gradient_stops_the_run_naming_epoch_batch_and_term(term, tiny, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    monkeypatch.setattr(mcef.train, "make_objective", nan_objective(term, 4 + 3))  # epoch 2, batch 3 of 4
    summary = fit(config(), dataset=tiny, run_dir=run_dir)
    diverged = summary["diverged"]
    assert (diverged["epoch"], diverged["batch"], diverged["batches"], diverged["term"]) == (2, 3, 4, term)
    assert f"diverged at epoch 2, batch 3 of 4 (train" in diverged["message"] and term in diverged["message"]
    for figure in ("test", "valid", "oracle_best_test", "selected_epoch"):
        assert figure not in summary
    assert json.loads((run_dir / "summary.json").read_text()) == summary
    assert read_run(run_dir).status == "diverged"
    assert [line["epoch"] for line in lines_of(run_dir)] == [1]  # nothing of the diverged epoch kept
    assert fit(config(), dataset=tiny, run_dir=run_dir) == summary  # a result: reused like a finished run


def test_a_huge_learning_rate_diverges_and_mcef_train_says_so(tmp_path, capsys):
    code = main(["train", "--config", str(CONFIGS / "smoke.yaml"), *sum([["--set", o] for o in OVERRIDES], []),
                 "--set", "train.lr=1e6", "--run-dir", str(tmp_path / "run"), "--quiet"])
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""  # no test figure printed
    [line] = captured.err.strip().splitlines()
    assert "diverged at epoch " in line and ", batch " in line and "loss term " in line and "train.lr" in line
    assert read_run(tmp_path / "run").status == "diverged"


def test_collect_and_sweep_never_use_a_diverged_run(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(mcef.train, "make_objective", nan_objective("fused_ce", 2, only_seed=1))
    messages = []
    table = sweep([config("train.epochs=1")], [0, 1], tmp_path, dataset=tiny, log=messages.append)
    assert [r["seed"] for r in collect(tmp_path)] == [0]
    assert {row["n"] for row in table} == {1}
    assert any("seed1" in m and "diverged at epoch 1, batch 2" in m for m in messages)
    assert read_run(tmp_path / "smoke" / "seed1").status == "diverged"
