"""Results computed from a run's weights and stored beside it: read when current, recomputed or refused when not."""

import json
from pathlib import Path

import pytest

from mcef.book.common import STORE_FILE, TRAIN_MISSING, BookRun, MissingResults
from mcef.book.derived import from_weights


def make_run(root: Path, digest: str = "abc", weights: bool = True) -> BookRun:
    run_dir = root / "mcef" / "seed0"
    run_dir.mkdir(parents=True, exist_ok=True)
    if weights:
        (run_dir / "best.pt").write_bytes(b"")  # from_weights only needs it to be there: compute loads it
    return BookRun(config=None, run_dir=run_dir, summary={"provenance": {"run_digest": digest}}, origin="loaded")


def counting(value):
    calls = []
    return calls, lambda: calls.append(1) or value


def test_computed_once_then_read_while_its_stamps_match(tmp_path):
    run = make_run(tmp_path)
    calls, compute = counting({"points": [[1.0, 2.0]]})
    assert from_weights(run, "map", {"points": 1}, compute) == {"points": [[1.0, 2.0]]}
    assert from_weights(run, "map", {"points": 1}, compute) == {"points": [[1.0, 2.0]]}
    assert len(calls) == 1
    stored = json.loads((run.run_dir / "derived" / "map.json").read_text())
    assert stored["run_digest"] == "abc" and stored["settings"] == {"points": 1}
    # new settings or a retrained run (another digest): computed again, never read as current
    assert from_weights(run, "map", {"points": 2}, compute) and len(calls) == 2
    assert from_weights(make_run(tmp_path, digest="def"), "map", {"points": 2}, compute) and len(calls) == 3


def test_committed_results_are_read_without_weights_and_refused_when_stale(tmp_path, monkeypatch):
    monkeypatch.delenv(TRAIN_MISSING, raising=False)
    run = make_run(tmp_path)
    from_weights(run, "map", {"points": 1}, lambda: [1, 2])
    (tmp_path / STORE_FILE).write_text("read_only: true\nproduce: make results-runs\n")
    (run.run_dir / "best.pt").unlink()
    assert from_weights(run, "map", {"points": 1}, lambda: pytest.fail("recomputed")) == [1, 2]
    with pytest.raises(MissingResults, match=r"STALE: .*map\.json was computed from run digest abc, the run is now "
                                             r"def; .*not here.*`make results-runs`"):
        from_weights(make_run(tmp_path, digest="def", weights=False), "map", {"points": 1}, lambda: [3])
    with pytest.raises(MissingResults, match=r"other\.json is missing"):
        from_weights(run, "other", {}, lambda: [3])


def test_a_read_only_store_is_written_only_when_producing_its_results(tmp_path, monkeypatch):
    (tmp_path / STORE_FILE).write_text("read_only: true\nproduce: make results-runs\n")
    run = make_run(tmp_path)
    monkeypatch.delenv(TRAIN_MISSING, raising=False)
    with pytest.raises(MissingResults, match=r"weights \(best\.pt, never committed\), which are here"):
        from_weights(run, "map", {}, lambda: [1])
    assert not (run.run_dir / "derived").exists()
    monkeypatch.setenv(TRAIN_MISSING, "1")
    assert from_weights(run, "map", {}, lambda: [1]) == [1]


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"run_digest": "abc"}'])
def test_a_damaged_file_is_never_read_as_a_result(tmp_path, content, monkeypatch):
    monkeypatch.delenv(TRAIN_MISSING, raising=False)
    run = make_run(tmp_path, weights=False)
    (run.run_dir / "derived").mkdir()
    (run.run_dir / "derived" / "map.json").write_text(content)
    with pytest.raises(MissingResults, match=r"map\.json"):
        from_weights(run, "map", {}, lambda: [1])


def test_a_computation_from_data_is_stored_with_its_stamp_and_never_read_stale(tmp_path, monkeypatch):
    from mcef.book.derived import from_data

    monkeypatch.delenv(TRAIN_MISSING, raising=False)
    calls, compute = counting({"table": [1]})
    assert from_data(tmp_path, "probes", {"data": "abc"}, compute) == {"table": [1]}
    assert from_data(tmp_path, "probes", {"data": "abc"}, compute) == {"table": [1]} and len(calls) == 1
    assert from_data(tmp_path, "probes", {"data": "def"}, compute) and len(calls) == 2  # another stamp: again
    (tmp_path / STORE_FILE).write_text("read_only: true\nproduce: make results-runs\n")
    assert from_data(tmp_path, "probes", {"data": "ghi"}, compute) and len(calls) == 3
    stored = json.loads((tmp_path / "computed" / "probes.json").read_text())
    assert stored["stamp"] == {"data": "def"}  # a committed store is written only when its results are produced
