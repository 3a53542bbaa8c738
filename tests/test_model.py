"""The MCEF network: exact parameter counts, packed == padded, padding invariance, every fusion variant and
modality subset, attention and gate weights, NaN safety, and a full-size forward + backward."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mcef.data.batch import Batch
from mcef.data.dataset import Dialogue, DialogueDataset
from mcef.losses import LossWeights, Objective
from mcef.model import FUSIONS, MCEF, AttentionBlocks, MCEFConfig, count_parameters

SMALL_DIMS = {"text": 20, "audio": 30, "visual": 10}
IEMOCAP_DIMS = {"text": 1024, "audio": 1582, "visual": 342}


def make_batch(lengths, dims=SMALL_DIMS, n_speakers=2, n_classes=6, seed=0):
    """A padded batch of random dialogues of the given lengths (padding as the data layer pads)."""
    generator = torch.Generator().manual_seed(seed)
    B, T = len(lengths), max(lengths)
    mask = torch.arange(T)[None] < torch.tensor(lengths)[:, None]
    features = {m: torch.randn(B, T, d, generator=generator) * mask[..., None] for m, d in dims.items()}
    speakers = torch.randint(0, n_speakers, (B, T), generator=generator).masked_fill(~mask, n_speakers)
    labels = torch.randint(0, n_classes, (B, T), generator=generator).masked_fill(~mask, -1)
    return Batch(features, mask, speakers, labels, [f"d{i}" for i in range(B)])


def pad_batch(batch, extra_steps, extra_dialogues, n_speakers=2):
    """The same dialogues with more padding: longer T and empty dialogues appended."""
    def grow(x, value):
        x = F.pad(x, (0, 0, 0, extra_steps) if x.dim() == 3 else (0, extra_steps), value=value)
        shape = (extra_dialogues, *x.shape[1:])
        return torch.cat([x, torch.full(shape, value, dtype=x.dtype)])

    return Batch(
        features={m: grow(x, 0.0) for m, x in batch.features.items()},
        mask=grow(batch.mask, False),
        speakers=grow(batch.speakers, n_speakers),
        labels=grow(batch.labels, -1),
        dialogue_ids=batch.dialogue_ids + [f"pad{i}" for i in range(extra_dialogues)],
    )


def small_config(modalities=("text", "audio", "visual"), **overrides):
    values = dict(modalities=modalities, input_dims=tuple(SMALL_DIMS[m] for m in modalities), hidden=16,
                  n_heads=4, n_self_heads=2)
    values.update(overrides)
    return MCEFConfig.paper(**values)


def twin(config, **overrides):
    """Two models with the same weights, the second with ``overrides`` applied to its config."""
    torch.manual_seed(0)
    first = MCEF(config)
    second = MCEF(replace(config, **overrides))
    second.load_state_dict(first.state_dict())
    return first, second


@pytest.mark.parametrize("hidden, expected", [(512, 20_707_352), (1024, 79_687_704)])
def test_paper_configuration_counts_the_reference_parameters(hidden, expected):
    config = MCEFConfig.paper(hidden=hidden)
    assert count_parameters(MCEF(config)) == expected == 73 * hidden**2 + 3068 * hidden + 24
    assert count_parameters(MCEF(replace(config, fusion="sdt"))) == expected


def test_paper_defaults():
    config = MCEFConfig.paper()
    assert config.modalities == ("text", "audio", "visual") and config.input_dims == (1024, 1582, 342)
    assert (config.hidden, config.n_heads, config.n_self_heads, config.dropout) == (512, 8, 4, 0.5)
    assert (config.n_speakers, config.n_classes, config.fusion) == (2, 6, "equal")


def test_feed_forward_activation_is_the_published_tanh_gelu():
    assert MCEFConfig.paper().activation == "gelu_tanh" and MCEFConfig().activation == "gelu_tanh"
    x = torch.linspace(-6, 6, 2001, dtype=torch.float64)
    published = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    erf_form = 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))
    for activation, expected in (("gelu_tanh", published), ("gelu", erf_form)):
        block = AttentionBlocks(1, 4, 2, 0.0, False, activation)  # the form its feed-forward layer applies
        assert F.gelu(x, approximate=block.approximate).sub(expected).abs().max() < 1e-12
    assert (published - erf_form).abs().max() > 1e-4  # the two forms differ: the choice is observable
    with pytest.raises(ValueError, match="activation"):
        MCEFConfig(activation="relu")


def test_activation_changes_the_network_output():
    config = MCEFConfig.paper(hidden=16, n_heads=2, n_self_heads=1, dropout=0.0, input_dims=(6, 5, 4))
    outputs = []
    for activation in ("gelu_tanh", "gelu"):
        torch.manual_seed(0)
        model = MCEF(replace(config, activation=activation)).eval()
        generator = torch.Generator().manual_seed(1)
        batch = Batch(features={m: 3 * torch.randn(1, 5, d, generator=generator) for m, d in zip(config.modalities, config.input_dims)},
                      mask=torch.ones(1, 5, dtype=torch.bool), speakers=torch.zeros(1, 5, dtype=torch.long),
                      labels=torch.zeros(1, 5, dtype=torch.long), dialogue_ids=["d"])
        outputs.append(model(batch).fused_logits)
    assert not torch.allclose(outputs[0], outputs[1])


def test_from_dataset_takes_shapes_from_the_data():
    rng = np.random.default_rng(0)
    dialogue = Dialogue(
        id="a",
        features={"text": rng.standard_normal((4, 7), dtype=np.float32), "visual": rng.standard_normal((4, 3), dtype=np.float32)},
        speakers=np.zeros(4, dtype=np.int64),
        labels=np.zeros(4, dtype=np.int64),
    )
    dataset = DialogueDataset("toy", {"a": dialogue}, ("x", "y", "z"), ("A", "B", "C"), {"train": ["a"]})
    config = MCEFConfig.from_dataset(dataset, hidden=8, n_heads=2, n_self_heads=1)
    assert (config.modalities, config.input_dims, config.n_classes, config.n_speakers) == (("text", "visual"), (7, 3), 3, 3)
    assert MCEFConfig.from_dataset(dataset, modalities=("visual",)).input_dims == (3,)
    with pytest.raises(ValueError, match="audio"):
        MCEFConfig.from_dataset(dataset, modalities=("audio",))


def test_bad_configs_and_batches_name_the_problem():
    with pytest.raises(ValueError, match="modalities"):
        MCEFConfig(modalities=("smell",), input_dims=(3,))
    with pytest.raises(ValueError, match="input_dims"):
        MCEFConfig(modalities=("text",), input_dims=(3, 4))
    with pytest.raises(ValueError, match="unset"):
        MCEF(MCEFConfig())  # sizes left to the data must be resolved first (for_dataset / paper)
    with pytest.raises(ValueError, match="fusion"):
        MCEFConfig(fusion="average")
    with pytest.raises(ValueError, match="n_self_heads"):
        MCEFConfig(n_self_heads=3)
    model = MCEF(small_config())
    batch = make_batch([3, 2])
    with pytest.raises(KeyError, match="visual"):
        model(Batch({m: x for m, x in batch.features.items() if m != "visual"}, batch.mask, batch.speakers, batch.labels, []))
    with pytest.raises(ValueError, match="audio"):
        model(Batch({**batch.features, "audio": batch.features["audio"][..., :5]}, batch.mask, batch.speakers, batch.labels, []))


@pytest.mark.parametrize("fusion", FUSIONS)
def test_packed_and_padded_computations_agree(fusion):
    packed, padded = twin(small_config(fusion=fusion), packed=False)
    batch = make_batch([6, 1, 4, 3])
    for model in (packed, padded):
        model.eval()
    a, b = packed(batch), padded(batch)
    mask = batch.mask
    assert torch.allclose(a.fused_logits, b.fused_logits, atol=1e-5)
    for m in a.logits:
        assert torch.allclose(a.logits[m], b.logits[m], atol=1e-5)
        assert torch.allclose(a.representations[m], b.representations[m], atol=1e-5)
        assert (a.representations[m][~mask] == 0).all() and (b.representations[m][~mask] == 0).all()


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("packed", [True, False])
def test_padding_changes_no_valid_output_or_loss(fusion, packed):
    model = MCEF(small_config(fusion=fusion, packed=packed)).eval()
    objective = Objective(LossWeights(kl=1.0))
    batch = make_batch([5, 2, 3])
    more = pad_batch(batch, extra_steps=4, extra_dialogues=2)
    a, b = model(batch), model(more)
    B, T = batch.mask.shape
    assert torch.allclose(a.fused_logits, b.fused_logits[:B, :T], atol=1e-5)
    for m in a.representations:
        assert torch.allclose(a.representations[m], b.representations[m][:B, :T], atol=1e-5)
    for key, value in objective(a, batch).items():
        assert torch.allclose(value, objective(b, more)[key], atol=1e-5), key


@pytest.mark.device
@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("modalities", [("text",), ("audio", "visual"), ("text", "audio", "visual")])
def test_every_variant_and_subset_trains_without_nan(fusion, modalities, device):
    config = small_config(modalities, fusion=fusion)
    model = MCEF(config).to(device).train()
    batch = make_batch([7, 1, 1, 4], dims={m: SMALL_DIMS[m] for m in modalities})
    batch.labels = batch.labels.clamp(max=2).masked_fill(~batch.mask, -1)  # classes 3..5 absent
    batch = batch.to(device)
    output = model(batch)
    B, T = batch.mask.shape
    assert set(output.representations) == set(output.logits) == set(modalities)
    assert all(r.shape == (B, T, 16) for r in output.representations.values())
    assert all(lg.shape == (B, T, 6) for lg in output.logits.values()) and output.fused_logits.shape == (B, T, 6)
    terms = Objective(LossWeights(kl=1.0), class_weights=(torch.rand(6) + 0.5).to(device))(output, batch)
    terms["total"].backward()
    assert all(torch.isfinite(v) for v in terms.values())
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    if fusion == "late":
        assert torch.allclose(output.fused_logits, torch.stack(list(output.logits.values())).mean(0))


def test_attention_and_gate_weights_on_request():
    model = MCEF(small_config()).eval()
    batch = make_batch([5, 3])
    plain = model(batch)
    assert plain.attention is None and plain.gates is None
    output = model(batch, return_attention=True)
    assert torch.allclose(output.fused_logits, plain.fused_logits, atol=1e-5)  # explicit path == SDPA path
    names = ("text", "audio", "visual")
    assert set(output.attention) == {f"{t}<-{s}" for t in names for s in names}
    self_weights, cross_weights = output.attention["text<-text"], output.attention["text<-audio"]
    assert self_weights.shape == (2, 2, 5, 5) and cross_weights.shape == (2, 4, 5, 5)  # 2 self heads, 4 cross heads
    assert torch.allclose(cross_weights.sum(-1)[batch.mask[:, None].expand(-1, 4, -1)], torch.tensor(1.0))
    assert (cross_weights[1, :, :3, 3:] == 0).all()  # padded keys get no weight
    assert output.gates.shape == (2, 5, 3, 16)
    assert torch.allclose(output.gates.sum(2)[batch.mask], torch.tensor(1.0), atol=1e-6)
    sdt = MCEF(small_config(fusion="sdt")).eval()(batch, return_attention=True)
    assert sdt.attention["text<-text"].shape == (2, 4, 5, 5)  # SDT: every block has n_heads
    concat = MCEF(small_config(fusion="concat")).eval()(batch, return_attention=True)
    assert set(concat.attention) == {"fused<-fused"} and concat.gates is None


def test_dropout_makes_training_stochastic_and_eval_deterministic():
    model = MCEF(small_config())
    batch = make_batch([4, 4])
    model.train()
    assert not torch.allclose(model(batch).fused_logits, model(batch).fused_logits)
    model.eval()
    assert torch.equal(model(batch).fused_logits, model(batch).fused_logits)


@pytest.mark.device
def test_bfloat16_precision_is_close_and_float32_out(device):
    fp32, bf16 = twin(small_config(hidden=32, n_heads=8, n_self_heads=4), precision="bfloat16")
    batch = make_batch([6, 3]).to(device)
    a, b = fp32.to(device).eval()(batch), bf16.to(device).eval()(batch)
    assert b.fused_logits.dtype == torch.float32
    scale = a.fused_logits[batch.mask].abs().max()
    assert (a.fused_logits - b.fused_logits)[batch.mask].abs().max() < 0.05 * scale


@pytest.mark.slow
@pytest.mark.device
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_full_size_forward_backward_on_sixteen_iemocap_dialogues(precision, device):
    torch.manual_seed(0)
    lengths = [110, 8, 47, 53, 62, 44, 38, 26, 69, 51, 33, 60, 45, 57, 29, 41]  # IEMOCAP-like, 773 utterances
    batch = make_batch(lengths, dims=IEMOCAP_DIMS).to(device)
    model = MCEF(MCEFConfig.paper(precision=precision)).to(device).train()
    for hgr_mode in ("correct", "reference"):
        terms = Objective(LossWeights(hgr_mode=hgr_mode, kl=0.5))(model(batch), batch)
        model.zero_grad()
        terms["total"].backward()
        assert all(torch.isfinite(v) for v in terms.values()), terms
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
