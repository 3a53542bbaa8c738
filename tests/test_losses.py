"""Losses: masked cross-entropy, Soft-HGR (against NumPy, gradcheck, the Gaussian optimum, the reference's
defect), self-distillation without NaN, and the composite objective."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mcef.data.batch import Batch
from mcef.losses import (
    LossWeights,
    Objective,
    masked_cross_entropy,
    self_distillation_kl,
    soft_hgr,
    soft_hgr_reference,
)
from mcef.model import MCEFOutput


def padded(lengths, width, n_features=3, seed=0, dtype=torch.float32):
    """``n_features`` random (B, T, width) tensors, zero at padding, and the (B, T) mask."""
    generator = torch.Generator().manual_seed(seed)
    mask = torch.arange(max(lengths))[None] < torch.tensor(lengths)[:, None]
    features = [
        (torch.randn(len(lengths), max(lengths), width, generator=generator, dtype=dtype) * mask[..., None])
        for _ in range(n_features)
    ]
    return features, mask


def numpy_soft_hgr(features, mask):
    """Wang et al.'s Soft-HGR of the empirical distribution of the valid rows, summed over pairs."""
    rows = [f.detach().double().numpy()[mask.numpy()] for f in features]
    total = 0.0
    for f, g in itertools.combinations(rows, 2):
        f0, g0 = f - f.mean(0), g - g.mean(0)
        inner = np.mean(np.einsum("nk,nk->n", f0, g0))
        total += inner - 0.5 * np.trace(np.cov(f0.T, bias=True) @ np.cov(g0.T, bias=True))
    return total


def numpy_reference_soft_hgr(features, mask, take_abs=True):
    """The published loss, written out independently in float64 with np.cov (rows as variables): per pair,
    mapping = mean over rows of sum_d f g, covariance term = tr(cov(f) cov(g)) / N, value = mapping - term / 2;
    loss = -(sum over pairs) / N, on softmax(features) with padded rows zeroed first; training takes abs()."""
    flat = []
    for f in features:
        x = f.detach().double().numpy() * mask.numpy()[..., None]
        x = x.reshape(-1, x.shape[-1])  # (N, D), padded rows included
        e = np.exp(x - x.max(1, keepdims=True))
        flat.append(e / e.sum(1, keepdims=True))
    n = flat[0].shape[0]
    pairs = 0.0
    for f, g in itertools.combinations(flat, 2):
        mapping = np.mean(np.sum(f * g, axis=1))
        covariance = np.trace(np.cov(f) @ np.cov(g)) / n
        pairs += mapping - covariance / 2
    loss = -pairs / n
    return abs(loss) if take_abs else loss


def test_masked_cross_entropy_is_weighted_nll_over_valid_rows():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 4, generator=generator)
    labels = torch.randint(0, 4, (3, 5), generator=generator)
    mask = torch.arange(5)[None] < torch.tensor([5, 2, 3])[:, None]
    labels = labels.masked_fill(~mask, -1)
    logits_padded = logits.masked_fill(~mask[..., None], 1e4)  # garbage at padding must not matter
    weights = torch.tensor([1.0, 2.0, 0.5, 3.0])
    expected = torch.nn.NLLLoss(weight=weights)(F.log_softmax(logits[mask], -1), labels[mask])
    assert torch.allclose(masked_cross_entropy(logits_padded, labels, mask, weights), expected)
    assert torch.allclose(masked_cross_entropy(logits, labels, mask), F.cross_entropy(logits[mask], labels[mask]))
    empty = torch.zeros(2, 3, dtype=torch.bool)
    assert masked_cross_entropy(logits[:2, :3], labels[:2, :3], empty).item() == 0.0


def test_soft_hgr_matches_numpy_with_padding():
    features, mask = padded([7, 3, 1, 5], width=6, n_features=3, seed=1)
    assert soft_hgr(features, mask).item() == pytest.approx(numpy_soft_hgr(features, mask), rel=1e-5, abs=1e-6)
    two = features[:2]
    assert soft_hgr(two, mask).item() == pytest.approx(numpy_soft_hgr(two, mask), rel=1e-5, abs=1e-6)


def test_soft_hgr_ignores_padding_and_batch_size():
    features, mask = padded([6, 4], width=5, seed=2)
    value = soft_hgr(features, mask)
    # garbage in padded rows changes nothing
    noisy = [f + 100.0 * (~mask[..., None]) for f in features]
    assert torch.allclose(soft_hgr(noisy, mask), value, atol=1e-6)
    # the same empirical distribution twice as large (every dialogue repeated) gives the same value
    doubled = [torch.cat([f, f]) for f in features]
    assert torch.allclose(soft_hgr(doubled, torch.cat([mask, mask])), value, atol=1e-6)


def test_soft_hgr_gradcheck_float64():
    features, mask = padded([4, 2, 3], width=3, seed=3, dtype=torch.float64)
    features = [f.requires_grad_() for f in features]
    assert torch.autograd.gradcheck(lambda *fs: soft_hgr(list(fs), mask), features)


def test_soft_hgr_single_utterance_is_zero_not_nan():
    features, mask = padded([1], width=4, seed=4)
    features = [f.requires_grad_() for f in features]
    value = soft_hgr(features, mask)
    value.backward()
    assert value.item() == 0.0
    assert all(torch.isfinite(f.grad).all() for f in features)


def gaussian_pair(correlations, dim, n, seed):
    """(x, y) of dimension ``dim`` each with canonical correlations ``correlations``, linearly mixed."""
    rng = np.random.default_rng(seed)
    rho = np.zeros(dim)
    rho[: len(correlations)] = correlations
    a, b = rng.standard_normal((n, dim)), rng.standard_normal((n, dim))
    u, v = a, rho * a + np.sqrt(1 - rho**2) * b
    mix_x = np.linalg.qr(rng.standard_normal((dim, dim)))[0] * rng.uniform(0.7, 1.5, dim)
    mix_y = np.linalg.qr(rng.standard_normal((dim, dim)))[0] * rng.uniform(0.7, 1.5, dim)
    return u @ mix_x, v @ mix_y


def sample_canonical_correlations(x, y):
    def whiten(z):
        z = z - z.mean(0)
        cov = z.T @ z / len(z)
        values, vectors = np.linalg.eigh(cov)
        return z @ vectors / np.sqrt(values)

    wx, wy = whiten(x), whiten(y)
    return np.linalg.svd(wx.T @ wy / len(x), compute_uv=False)


def optimise_linear_maps(x, y, k, loss_fn, steps=100, seed=0):
    torch.manual_seed(seed)
    x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    wf = (0.1 * torch.randn(x.shape[1], k)).requires_grad_()
    wg = (0.1 * torch.randn(y.shape[1], k)).requires_grad_()
    mask = torch.ones(1, len(x), dtype=torch.bool)
    optimiser = torch.optim.Adam([wf, wg], lr=0.1)
    for _ in range(steps):
        optimiser.zero_grad()
        loss_fn([(x @ wf)[None], (y @ wg)[None]], mask).backward()
        optimiser.step()
    with torch.no_grad():
        return soft_hgr([(x @ wf)[None], (y @ wg)[None]], mask).item()


@pytest.mark.parametrize("k", [2, 3])
def test_soft_hgr_maximum_is_half_sum_of_squared_canonical_correlations(k):
    x, y = gaussian_pair([0.9, 0.7, 0.5, 0.2], dim=6, n=4000, seed=k)
    target = 0.5 * np.sum(sample_canonical_correlations(x, y)[:k] ** 2)
    reached = optimise_linear_maps(x, y, k, lambda fs, m: -soft_hgr(fs, m))
    assert reached == pytest.approx(target, rel=0.02)
    assert target == pytest.approx(0.5 * np.sum(np.array([0.81, 0.49, 0.25])[:k]), rel=0.03)


def test_reference_soft_hgr_reproduces_published_computation_and_is_negligible():
    features, mask = padded([40, 25, 33, 10, 38, 17], width=512, seed=5)  # IEMOCAP-like: D = H = 512, N = 240
    value = soft_hgr_reference(features, mask)
    assert value.item() == pytest.approx(numpy_reference_soft_hgr(features, mask), rel=1e-4)
    assert soft_hgr(features, mask, mode="reference").item() == value.item()
    assert 0 < value.item() < 1e-4  # softmaxed features: ~1/D per entry, the term contributes nothing
    # it counts padded rows: more padding changes it (the correct objective does not)
    more = [F.pad(f, (0, 0, 0, 5)) for f in features]
    more_mask = F.pad(mask, (0, 5))
    assert soft_hgr_reference(more, more_mask).item() != pytest.approx(value.item(), rel=1e-3)
    assert soft_hgr(more, more_mask).item() == pytest.approx(soft_hgr(features, mask).item(), abs=1e-6)


def test_reference_soft_hgr_is_the_published_loss_where_its_covariance_term_matters():
    # N = 960 rows (2 dialogues x 480), D = 512, features x 10: the softmax is peaked, so the covariance term is a
    # large share of the value and a missing / N in it would move the loss by tens of percent.
    lengths = [480, 400]
    features, mask = padded(lengths, width=512, seed=11)
    features = [10 * f for f in features]
    signed = soft_hgr_reference(features, mask, take_abs=False)
    assert signed.item() == pytest.approx(numpy_reference_soft_hgr(features, mask, take_abs=False), rel=1e-5)
    assert soft_hgr_reference(features, mask).item() == pytest.approx(abs(signed.item()), rel=1e-7)
    without_second_n = numpy_reference_soft_hgr_without_covariance_n(features, mask)
    assert abs(without_second_n / signed.item() - 1) > 0.05  # the regime tells the two formulas apart


def numpy_reference_soft_hgr_without_covariance_n(features, mask):
    """The earlier, wrong reading of the published loss: the covariance term without its / N."""
    flat = [torch.softmax((f * mask[..., None]).reshape(-1, f.shape[-1]).double(), -1).numpy() for f in features]
    n = flat[0].shape[0]
    return sum(-((f * g).sum() / n - 0.5 * np.trace(np.cov(f) @ np.cov(g))) / n
               for f, g in itertools.combinations(flat, 2))


def test_reference_abs_turns_maximisation_into_minimisation():
    features, mask = padded([8, 5], width=12, seed=6)
    features = [f.requires_grad_() for f in features]
    signed = soft_hgr_reference(features, mask, take_abs=False)  # the published loss before abs(): -objective
    assert signed.item() < 0
    grad_signed = torch.autograd.grad(signed, features)
    grad_abs = torch.autograd.grad(soft_hgr_reference(features, mask), features)
    cosine = F.cosine_similarity(torch.cat([g.flatten() for g in grad_abs]), torch.cat([g.flatten() for g in grad_signed]), dim=0)
    assert cosine.item() < -0.99  # descending |loss| ascends the loss: the correlation is pushed down

    def reference_correlation(fs):
        flat = [torch.softmax((f * mask[..., None]).reshape(-1, f.shape[-1]), -1) for f in fs]
        return sum((a * b).sum() for a, b in itertools.combinations(flat, 2))

    step = [(f - 1e3 * g).detach() for f, g in zip(features, grad_abs)]
    assert reference_correlation(step) < reference_correlation([f.detach() for f in features])


def test_optimising_reference_soft_hgr_does_not_reach_the_optimum():
    x, y = gaussian_pair([0.9, 0.7, 0.5, 0.2], dim=6, n=300, seed=7)  # small n: the reference builds n x n covariances
    target = 0.5 * np.sum(sample_canonical_correlations(x, y)[:2] ** 2)
    reached = optimise_linear_maps(x, y, 2, soft_hgr_reference, steps=60)
    assert reached < 0.5 * target


def test_self_distillation_kl_is_nan_free_and_masked():
    generator = torch.Generator().manual_seed(8)
    mask = torch.zeros(3, 6, dtype=torch.bool)
    mask[0, :1] = True
    mask[2, :4] = True
    student = torch.randn(3, 6, 5, generator=generator)
    teacher = torch.randn(3, 6, 5, generator=generator)
    student[~mask] = float("inf")  # whatever sits at padding must not leak in
    teacher[~mask] = -float("inf")
    teacher[2, 0] = torch.tensor([200.0, -200.0, 0.0, 0.0, 0.0])  # a saturated teacher row
    student.requires_grad_()
    teacher.requires_grad_()
    kl = self_distillation_kl(student, teacher, mask, temperature=2.0)
    kl.backward()
    assert torch.isfinite(kl) and torch.isfinite(student.grad).all()
    assert teacher.grad is None  # the teacher is detached
    s, t = student.detach()[mask] / 2.0, teacher.detach()[mask] / 2.0
    p = torch.softmax(t, -1)
    manual = (p * (torch.log_softmax(t, -1) - torch.log_softmax(s, -1))).sum(-1).mean() * 4.0
    assert torch.allclose(kl, manual, atol=1e-5)
    same = self_distillation_kl(teacher.detach(), teacher.detach(), mask)
    assert same.abs().item() < 1e-6
    assert self_distillation_kl(student, teacher, torch.zeros_like(mask)).item() == 0.0


def fake_output(lengths, classes=4, hidden=5, seed=9):
    features, mask = padded(lengths, hidden, n_features=3, seed=seed)
    generator = torch.Generator().manual_seed(seed + 1)
    logits = [torch.randn(len(lengths), max(lengths), classes, generator=generator).requires_grad_() for _ in range(4)]
    labels = torch.randint(0, classes, mask.shape, generator=generator).masked_fill(~mask, -1)
    names = ("text", "audio", "visual")
    output = MCEFOutput(
        representations={m: f.requires_grad_() for m, f in zip(names, features)},
        logits=dict(zip(names, logits[:3])),
        fused_logits=logits[3],
        mask=mask,
    )
    batch = Batch(features={}, mask=mask, speakers=torch.zeros_like(labels), labels=labels, dialogue_ids=[])
    return output, batch


def test_objective_combines_its_terms_with_the_weights():
    output, batch = fake_output([5, 3, 4])
    class_weights = torch.tensor([1.0, 2.0, 3.0, 4.0])
    weights = LossWeights(kl=0.7, temperature=2.0)
    terms = Objective(weights, class_weights)(output, batch)
    assert {"total", "fused_ce", "modality_ce", "ce_text", "ce_audio", "ce_visual", "soft_hgr", "hgr_loss", "kl"} <= set(terms)
    mask, labels = batch.mask, batch.labels
    assert torch.allclose(terms["ce_audio"], masked_cross_entropy(output.logits["audio"], labels, mask, class_weights))
    assert torch.allclose(terms["modality_ce"], terms["ce_text"] + terms["ce_audio"] + terms["ce_visual"])
    assert torch.allclose(terms["soft_hgr"], soft_hgr(list(output.representations.values()), mask))
    k = next(iter(output.representations.values())).shape[-1]
    expected = 0.3 * terms["fused_ce"] + 0.1 * terms["modality_ce"] - 0.4 * terms["soft_hgr"] / k + 0.7 * terms["kl"]
    assert torch.allclose(terms["total"], expected)
    raw = Objective(LossWeights(kl=0.7, temperature=2.0, hgr_per_dim=False), class_weights)(output, batch)
    assert torch.allclose(raw["total"] - terms["total"], -0.4 * terms["soft_hgr"] * (1 - 1 / k))
    terms["total"].backward()
    assert all(torch.isfinite(f.grad).all() for f in output.representations.values())


def test_objective_reference_mode_adds_the_absolute_published_value():
    output, batch = fake_output([6, 2])
    terms = Objective(LossWeights(hgr_mode="reference"))(output, batch)
    reference = soft_hgr_reference(list(output.representations.values()), batch.mask)
    assert torch.allclose(terms["hgr_loss"], reference)
    expected = 0.3 * terms["fused_ce"] + 0.1 * terms["modality_ce"] + 0.4 * reference
    assert torch.allclose(terms["total"], expected)
    assert terms["kl"].item() >= 0 and not terms["kl"].requires_grad  # weight 0: logged only


def test_objective_is_finite_with_one_utterance_dialogues_and_one_class():
    output, batch = fake_output([1, 1, 1])
    batch.labels = batch.labels.clamp(max=0).masked_fill(~batch.mask, -1)  # every label is class 0
    terms = Objective(LossWeights(kl=1.0), torch.ones(4))(output, batch)
    terms["total"].backward()
    assert all(torch.isfinite(v) for v in terms.values())
    for tensor in [*output.representations.values(), *output.logits.values(), output.fused_logits]:
        assert torch.isfinite(tensor.grad).all()


def test_loss_weights_validate():
    with pytest.raises(ValueError, match="hgr_mode"):
        LossWeights(hgr_mode="wrong")
    with pytest.raises(ValueError, match="temperature"):
        LossWeights(temperature=0)
    with pytest.raises(ValueError, match="mode"):
        soft_hgr(*padded([2], 3, 2), mode="nope")
