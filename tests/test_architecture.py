"""Chapter 02's library: parameter table, polynomial, shape trace, attention maps, train-or-load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from book_helpers import make_root

from mcef.book import architecture as arch
from mcef.book.common import SelfCheckFailed, load_book_data
from mcef.data import DialogueLoader
from mcef.data.dataset import MODALITIES
from mcef.model import MCEF, MCEFConfig, count_parameters

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def book_root(tmp_path_factory) -> Path:
    return make_root(tmp_path_factory.mktemp("project"))


@pytest.fixture(scope="module")
def tiny_model(tiny_dataset) -> MCEF:
    torch.manual_seed(0)
    return MCEF(MCEFConfig.from_dataset(tiny_dataset, hidden=16, n_heads=4, n_self_heads=2)).eval()


@pytest.fixture(scope="module")
def padded_batch(tiny_dataset):
    batch = next(iter(DialogueLoader(tiny_dataset, "train", batch_size=4)))
    assert not batch.mask.all(), "the test needs a batch with padding"
    return batch


def test_parameter_table_sums_to_the_paper_count():
    model = arch.meta_model(MCEFConfig.paper())
    table = arch.parameter_table(model)
    assert int(table["parameters"].sum()) == count_parameters(model) == 20_707_352
    blocks = arch.per_block(table)
    assert int(blocks["parameters"].sum()) == 20_707_352
    counts = blocks.groupby("stage_name", sort=False)["block"].count()
    assert counts["self-attention"] == 3 and counts["cross-attention"] == 6 and counts["sigmoid gate"] == 9
    # every attention block has the same size, and its parts add up to 6H^2 + 10H
    attention = blocks[blocks["stage_name"].isin(["self-attention", "cross-attention"])]["parameters"]
    assert set(attention) == {6 * 512**2 + 10 * 512}


@pytest.mark.parametrize("fusion", ["equal", "sdt", "concat", "late"])
def test_parameter_table_sums_for_every_fusion(tiny_dataset, fusion):
    model = MCEF(MCEFConfig.from_dataset(tiny_dataset, hidden=16, n_heads=4, n_self_heads=2, fusion=fusion))
    table = arch.parameter_table(model)
    assert int(table["parameters"].sum()) == count_parameters(model)
    assert (table["parameters"] > 0).all()


def test_parameter_polynomial_matches_the_reference_and_the_counts():
    polynomial = arch.parameter_polynomial(MCEFConfig.paper())
    coefficients = tuple(int(polynomial[c].sum()) for c in ("h2", "h1", "h0"))
    assert coefficients == arch.REFERENCE_POLYNOMIAL == (73, 3068, 24)
    for hidden, expected in ((512, 20_707_352), (1024, 79_687_704)):
        assert arch.evaluate_polynomial(coefficients, hidden) == expected
        assert count_parameters(arch.meta_model(MCEFConfig.paper(hidden=hidden))) == expected
    assert arch.format_polynomial(*coefficients) == "73H² + 3068H + 24"
    assert arch.format_polynomial(1, 0, 0) == "H²"


@pytest.mark.parametrize("packed", [True, False])
def test_shape_trace(tiny_dataset, padded_batch, packed):
    model = MCEF(MCEFConfig.from_dataset(tiny_dataset, hidden=16, n_heads=4, n_self_heads=2, packed=packed))
    trace = arch.shape_trace(model, padded_batch).set_index("module")
    B, T = padded_batch.mask.shape
    N = padded_batch.n_utterances if packed else B * T
    H, C, M, P = 16, tiny_dataset.n_classes, 3, 6
    for m, dim in tiny_dataset.dims.items():
        assert trace.loc[f"input_proj.{m}", "inputs"] == str((N, dim))
        assert trace.loc[f"input_proj.{m}", "outputs"] == str((N, H))
    assert trace.loc["self_blocks", "inputs"] == str((M, N, H))
    assert trace.loc["self_blocks", "outputs"] == str((M, N, H))
    assert trace.loc["cross_blocks", "inputs"] == f"{(P, N, H)}, {(P, N, H)}"
    assert trace.loc["cross_blocks", "outputs"] == str((P, N, H))
    assert trace.loc["view_gates", "outputs"] == str((M + P, N, H))
    assert trace.loc["reduce", "inputs"] == str((M, N, 3 * H))
    assert trace.loc["reduce", "outputs"] == str((M, N, H))
    assert trace.loc["heads", "outputs"] == str((M, N, C))
    assert trace.loc["fused_head", "outputs"] == str((N, C))
    assert trace.loc["output.representations[text]", "outputs"] == str((B, T, H))
    assert trace.loc["output.fused_logits", "outputs"] == str((B, T, C))
    # the hooks are gone afterwards
    assert all(not module._forward_hooks for module in arch.traced_modules(model).values())


def test_attention_rows_sum_to_one_on_valid_keys_and_zero_on_padding(tiny_model, padded_batch):
    output = arch.run_with_attention(tiny_model, padded_batch)
    mask = padded_batch.mask
    assert set(output.attention) == {f"{t}<-{s}" for t in ("text", "audio", "visual") for s in ("text", "audio", "visual")}
    for block, weights in output.attention.items():
        heads = 2 if block.split("<-")[0] == block.split("<-")[1] else 4
        assert weights.shape == (mask.shape[0], heads) + (mask.shape[1],) * 2
        valid_rows = weights.permute(0, 2, 1, 3)[mask]  # (N, heads, T): valid queries only
        keys = mask.repeat_interleave(mask.sum(1), dim=0)[:, None, :].expand_as(valid_rows)  # each row's dialogue
        torch.testing.assert_close(valid_rows.sum(-1), torch.ones(valid_rows.shape[:2]))
        assert torch.all(valid_rows[~keys] == 0)
    gates = output.gates  # (B, T, M, H): softmax across modalities at valid utterances, zero at padding
    torch.testing.assert_close(gates[mask].sum(1), torch.ones(int(mask.sum()), gates.shape[-1]))
    assert torch.all(gates[~mask] == 0)
    assert tiny_model.training is False


def test_dialogue_attention(tiny_model, tiny_dataset):
    dialogue_id = arch.pick_dialogue(tiny_dataset, "test")
    lengths = [len(tiny_dataset.dialogues[d]) for d in tiny_dataset.splits["test"]]
    T = len(tiny_dataset.dialogues[dialogue_id])
    assert T == sorted(lengths)[len(lengths) // 2]
    snapshot = arch.dialogue_attention(tiny_model, tiny_dataset, dialogue_id)
    assert len(snapshot.labels) == len(snapshot.predictions) == len(snapshot.speakers) == T
    for weights in snapshot.attention.values():
        np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(snapshot.fusion_weights.sum(1), 1.0, rtol=1e-5)
    again = arch.DialogueAttention.from_json(json.loads(json.dumps(snapshot.to_json())))
    assert again.labels == snapshot.labels and again.attention.keys() == snapshot.attention.keys()
    np.testing.assert_allclose(again.fusion_weights, snapshot.fusion_weights)
    summary = arch.attention_summary(snapshot).set_index("block")
    assert summary.loc["uniform", "relative_entropy"] == pytest.approx(1.0)
    assert ((summary["relative_entropy"] > 0) & (summary["relative_entropy"] <= 1 + 1e-6)).all()
    assert ((summary["local_share"] > 0) & (summary["local_share"] <= 1 + 1e-6)).all()
    figure = arch.attention_grid(snapshot)
    assert sum(trace.type == "heatmap" for trace in figure.data) == 9
    assert len(arch.gate_plot(snapshot).data) == 3


@pytest.mark.slow
def test_training_run_is_the_training_chapters_run_and_its_attention_outlives_its_weights(tiny_dataset, tmp_path, book_root):
    from mcef.book.common import STORE_FILE, MissingResults, training_runs
    from mcef.evaluate import load_run

    run, = training_runs("tiny", tiny_dataset, [0], tmp_path, device="cpu", root=book_root)
    assert run.origin == "trained now" and run.config.model.hidden == 16
    assert arch.run_facts(run)["run_origin"].startswith("trained now by this chapter")
    dialogue_id = arch.pick_dialogue(tiny_dataset, "test")
    snapshot = arch.run_attention(run, tiny_dataset, dialogue_id, device="cpu")
    _, model, _ = load_run(run.run_dir, device="cpu")
    direct = arch.dialogue_attention(model, tiny_dataset, dialogue_id)
    np.testing.assert_allclose(snapshot.attention["text<-audio"], direct.attention["text<-audio"], rtol=1e-6)
    assert (run.run_dir / "derived" / "attention.json").is_file()
    # the training chapter's run of the same config is the same run: found by its digest, wherever it lies
    moved = tmp_path / "elsewhere" / "renamed"
    moved.parent.mkdir()
    shutil.move(str(run.run_dir), moved)
    found, = training_runs("tiny", tiny_dataset, [0], tmp_path, device="cpu", root=book_root)
    assert found.origin == "loaded" and found.run_dir == moved
    assert arch.run_facts(found)["run_origin"].startswith(f"read from the run store {tmp_path} (trained on cpu on ")
    # committed results carry no weights: the stored maps are read, never recomputed
    (tmp_path / STORE_FILE).write_text("read_only: true\nproduce: make results-runs\n")
    for weights in moved.glob("*.pt"):
        weights.unlink()
    again = arch.run_attention(found, tiny_dataset, dialogue_id, device="cpu")
    np.testing.assert_allclose(again.fusion_weights, snapshot.fusion_weights)
    other = next(d for d in tiny_dataset.splits["test"] if d != dialogue_id)
    with pytest.raises(MissingResults, match=r"STALE: .*attention\.json was computed with settings .*not here.*`make results-runs`"):
        arch.run_attention(found, tiny_dataset, other, device="cpu")


def test_book_data_without_three_modalities_uses_synthetic(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "iemocap_text.pkl").write_bytes(b"")  # discovery would find transcripts: text only
    shutil.copytree(REPO / "configs" / "profiles", tmp_path / "configs" / "profiles")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MCEF_DATA", raising=False)
    dataset, description = load_book_data("", "smoke", seed=0, needs=MODALITIES)
    assert dataset.name == "synthetic" and set(dataset.modalities) == {"text", "audio", "visual"}
    assert "text features only" in description and "synthetic default" in description


def test_stage_table_and_parameter_facts_account_for_every_parameter():
    model = arch.meta_model(MCEFConfig.paper())
    blocks = arch.per_block(arch.parameter_table(model))
    stages = arch.stage_table(blocks)
    assert stages.loc["cross-attention", "blocks"] == 6 and stages["parameters"].sum() == 20_707_352
    assert stages["share"].sum() == pytest.approx(1.0)
    facts = arch.parameter_facts(model)
    assert facts["table_total"] == facts["counted_total"] == 20_707_352
    assert facts["n_blocks"] == len(blocks)
    assert facts["attention_share"] == pytest.approx(9 * (6 * 512**2 + 10 * 512) / 20_707_352)
    assert facts["unused_norm"] == 9 * 2 * 512  # one input LayerNorm (weight and bias) per attention block
    parts = arch.first_block_parts(arch.parameter_table(model), "cross-attention")
    assert parts["block"].nunique() == 1 and parts["parameters"].sum() == 6 * 512**2 + 10 * 512


def test_polynomial_facts_check_the_formula_against_built_models():
    facts = arch.polynomial_facts(MCEFConfig.paper(), check_hidden=(512,))
    assert facts["formula"] == facts["reference_formula"] == "73H² + 3068H + 24"
    assert facts["formula_512"] == facts["counted_512"] == 20_707_352
    assert facts["formula_gate"] and facts["formula_cross"].startswith("6H²")


def test_a_count_that_differs_from_the_reference_fails_the_page(monkeypatch):
    with pytest.raises(SelfCheckFailed, match="the reference's 73H² \\+ 3068H \\+ 24"):
        arch.polynomial_facts(MCEFConfig.paper(n_classes=7), check_hidden=(512,))  # one more class: another count
    monkeypatch.setattr(arch, "count_parameters", lambda model: 1)
    with pytest.raises(SelfCheckFailed, match="rows sum to 20,707,352 parameters, count_parameters counts 1"):
        arch.parameter_facts(arch.meta_model(MCEFConfig.paper()))
