"""The speed benchmark: figures on IEMOCAP-shaped data and the side-by-side reference emulation."""

import json

import pytest

from mcef.bench import IEMOCAP_TRAIN_LENGTHS, bench, bench_dataset, format_bench, reference_emulation
from mcef.config import load_config
from mcef.data import SyntheticConfig, make_synthetic

SMALL = ["model.hidden=16", "model.n_heads=2", "model.n_self_heads=2"]


def test_bench_data_has_iemocap_shape():
    assert len(IEMOCAP_TRAIN_LENGTHS) == 120 and sum(IEMOCAP_TRAIN_LENGTHS) == 5810
    assert (min(IEMOCAP_TRAIN_LENGTHS), max(IEMOCAP_TRAIN_LENGTHS)) == (8, 110)
    data = bench_dataset()
    assert data.dims == {"text": 1024, "audio": 1582, "visual": 342}
    assert [len(d) for d in data.split("train")] == list(IEMOCAP_TRAIN_LENGTHS)


def test_reference_emulation_switches():
    c = reference_emulation(load_config(None))
    assert (c.model.packed, c.model.precision, c.loss.hgr_mode, c.train.bucket) == (False, "float32", "reference", False)
    assert (c.model.hidden, c.loss.soft_hgr) == (512, 0.4)


@pytest.mark.device
def test_bench_reports_every_figure(tmp_path, device):
    data = make_synthetic(SyntheticConfig(n_train=8, n_test=2, dims=(16, 12, 8), min_length=4, max_length=12))
    config = load_config(None, SMALL)
    result = bench(config, device=device, epochs=2, warmup=1, baseline="reference", json_path=tmp_path / "b.json",
                   dataset=data, memory=False)
    assert json.loads((tmp_path / "b.json").read_text()) == json.loads(json.dumps(result))
    for key in ("ours", "baseline"):
        r = result[key]
        assert len(r["train_epoch_s_all"]) == 2 and r["train_epoch_s"] > 0 and r["eval_utterances_per_s"] > 0
        assert r["parameters"] > 0
    assert result["ours"]["packed"] and not result["baseline"]["packed"]
    assert result["ratio_ours_over_baseline"] == pytest.approx(1 / result["speedup"])
    text = format_bench(result)
    assert "speed-up" in text and "train epoch" in text


@pytest.mark.slow
def test_bench_measures_cpu_memory():
    data = make_synthetic(SyntheticConfig(n_train=8, n_test=2, dims=(16, 12, 8), min_length=4, max_length=12))
    result = bench(load_config(None, SMALL), device="cpu", epochs=1, warmup=0, dataset=data)
    assert result["ours"]["peak_memory_mb"] >= 0 and result["ours"]["memory_method"]
