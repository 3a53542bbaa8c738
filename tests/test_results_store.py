"""The book of results reads a committed, read-only run store: a missing or stale run fails its page with the command
that produces it and trains nothing; the command (MCEF_BOOK_TRAIN_MISSING=1) trains into it; the results profile
points its chapters at the committed store."""

from __future__ import annotations

import pytest
from book_helpers import REPO, make_root

from mcef.book import reporting
from mcef.book.common import (STORE_FILE, TRAIN_MISSING, MissingResults, ProfileError, default_run_root,
                              load_profile, read_only_store, train_or_reuse)
from mcef.config import with_changes

STORE = 'read_only: true\nproduce: "make results-runs"\n'


@pytest.fixture()
def tiny_config(tmp_path):
    root = make_root(tmp_path / "project")
    return reporting.chapter_configs("tiny", device="cpu", root=root)[0]


def test_a_read_only_store_refuses_to_train_a_missing_run_and_names_the_command(tmp_path, tiny_dataset, tiny_config,
                                                                                monkeypatch):
    monkeypatch.delenv(TRAIN_MISSING, raising=False)
    store = tmp_path / "results"
    store.mkdir()
    (store / STORE_FILE).write_text(STORE)
    with pytest.raises(MissingResults, match=r"lack run 'mcef' seed 0: no run of digest .*`make results-runs`"):
        train_or_reuse([tiny_config], [0], tiny_dataset, store)
    assert sorted(p.name for p in store.iterdir()) == [STORE_FILE]  # nothing trained, nothing half-written


def test_the_command_trains_into_the_store_then_the_book_reads_it_and_flags_a_stale_run(tmp_path, tiny_dataset,
                                                                                      tiny_config, monkeypatch):
    store = tmp_path / "results"
    store.mkdir()
    (store / STORE_FILE).write_text(STORE)
    monkeypatch.setenv(TRAIN_MISSING, "1")
    assert read_only_store(store) is None
    trained = train_or_reuse([tiny_config], [0], tiny_dataset, store)
    assert trained[0].origin == "trained now"
    monkeypatch.delenv(TRAIN_MISSING)
    assert train_or_reuse([tiny_config], [0], tiny_dataset, store)[0].origin == "loaded"
    changed = with_changes(tiny_config, train={"lr": 0.002})  # the recipe changed since the runs were committed
    with pytest.raises(MissingResults, match=r"STALE: .*train\.lr.*make results-runs"):
        train_or_reuse([changed], [0], tiny_dataset, store)


def test_a_malformed_store_file_names_the_file_and_the_keys(tmp_path):
    (tmp_path / STORE_FILE).write_text("read_only: yes please\n")
    with pytest.raises(ProfileError, match=r"store.yaml: expected the keys read_only .* and produce"):
        read_only_store(tmp_path)


def test_the_results_profile_reads_the_committed_store():
    profile = load_profile("results", REPO)
    assert profile.run_root == "book/results/paper"
    assert default_run_root("", "results", REPO) == REPO / "book" / "results" / "paper"
    assert default_run_root("", "smoke", REPO) == REPO / "runs" / "book" / "smoke"
    spec = (REPO / "book" / "results" / "paper" / STORE_FILE).read_text()
    assert "read_only: true" in spec and "make results-runs" in spec
    config = reporting.chapter_configs("results", device="cpu", root=REPO)[0]
    assert config.model.hidden == 512 and config.train.epochs == 150  # the paper's scale, not a smoke size


def test_the_book_runner_gives_each_chapter_its_profiles_store():
    """`mcef book --profile results` (the published book) hands every chapter the committed store, never a run root
    of its own where it would train the runs again."""
    from mcef.book.runner import BookParameters, resolve_parameters

    assert resolve_parameters(BookParameters(profile="results"), REPO)["run_root"] == str(REPO / "book" / "results" / "paper")
    assert resolve_parameters(BookParameters(profile="smoke"), REPO)["run_root"] == str(REPO / "runs" / "book" / "smoke")
    assert resolve_parameters(BookParameters(profile="results", run_root="elsewhere"), REPO)["run_root"].endswith("/elsewhere")


def test_a_comparison_is_reproduced_only_when_every_gain_exceeds_its_spread():
    from mcef.book.reproduced import STATUSES, comparison_status

    assert comparison_status({"sdt": (0.02, 0.01), "late": (0.01, 0.005)}) == "reproduced on synthetic data"
    assert comparison_status({"sdt": (0.02, 0.01), "late": (-0.01, 0.005)}) == "not reproduced on synthetic data"
    assert comparison_status({"sdt": (0.005, 0.01)}) == "not reproduced on synthetic data"  # within the spread
    assert comparison_status({"sdt": (0.005, None)}) == "reproduced on synthetic data"  # one seed: no spread
    assert {comparison_status({"x": (1.0, 0.0)}), comparison_status({"x": (-1.0, 0.0)})} <= set(STATUSES)
