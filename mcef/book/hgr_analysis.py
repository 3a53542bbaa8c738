"""Chapter 03: Soft-HGR checked numerically, its computations and its figures.

On jointly Gaussian views with known canonical correlations, linear features trained by gradient
ascent on :func:`mcef.losses.soft_hgr` reach the known optimum 1/2 * sum of the top-k squared
canonical correlations. Beside it, the published reference computation: its N x N covariance, its
softmax that shrinks the loss to ~1e-6, the padding it counts, and the abs() that reverses the
direction of training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch

from mcef.book.common import book_layout
from mcef.losses import soft_hgr, soft_hgr_reference


@dataclass(frozen=True)
class SoftHgrSettings:
    """Sizes of chapter 03 (profile section ``soft_hgr``; every field given there)."""

    n_samples: int  # samples per Gaussian problem
    dim: int  # dimension of each view
    k: int  # feature dimension learnt per view
    steps: int  # gradient-ascent steps
    lr: float  # Adam learning rate of the ascent
    n_problems: int  # problems with different canonical correlations
    reference_samples: int  # samples of the reference-loss run (its N x N covariance is slow)
    batch_sizes: tuple[int, ...]  # dialogues per batch for the covariance and magnitude measurements
    dialogue_length: int  # utterances per dialogue (IEMOCAP: ~49)
    hidden: int  # feature size D (the paper's H)


@dataclass(frozen=True)
class GaussianViews:
    """Two views x, y of jointly Gaussian data whose canonical correlations are known."""

    x: torch.Tensor  # (N, dim)
    y: torch.Tensor  # (N, dim)
    rhos: np.ndarray  # (dim,) population canonical correlations, descending (zeros past the correlated ones)


def gaussian_views(rhos, dim: int, n_samples: int, seed: int = 0) -> GaussianViews:
    """Sample x = u A, y = v B where (u_i, v_i) are unit-variance pairs with correlation rhos[i].

    A and B are random well-conditioned invertible mixings, so the canonical correlations of (x, y)
    are exactly ``rhos`` (padded with zeros to ``dim``), while no coordinate of x or y shows them.
    """
    rhos = np.sort(np.asarray(rhos, dtype=np.float64))[::-1]
    if len(rhos) > dim or rhos.min() < 0 or rhos.max() >= 1:
        raise ValueError(f"need at most dim={dim} canonical correlations in [0, 1), got {rhos}")
    rho = np.zeros(dim)
    rho[: len(rhos)] = rhos
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((n_samples, dim))
    v = rho * u + np.sqrt(1 - rho**2) * rng.standard_normal((n_samples, dim))

    def mixing() -> np.ndarray:
        q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
        return q * rng.uniform(0.5, 2.0, size=dim)  # orthogonal times scales: condition number <= 4

    x, y = u @ mixing(), v @ mixing()
    return GaussianViews(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32), rho)


def canonical_correlations(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> np.ndarray:
    """Sample canonical correlations of (x, y), descending: singular values of the whitened cross-covariance."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x, y = x - x.mean(0), y - y.mean(0)
    n = len(x)

    def inverse_sqrt(c: np.ndarray) -> np.ndarray:
        values, vectors = np.linalg.eigh(c)
        return vectors @ np.diag(1 / np.sqrt(np.maximum(values, 1e-12))) @ vectors.T

    whitened = inverse_sqrt(x.T @ x / n) @ (x.T @ y / n) @ inverse_sqrt(y.T @ y / n)
    return np.clip(np.linalg.svd(whitened, compute_uv=False), 0, 1)


def soft_hgr_optimum(rhos: np.ndarray, k: int) -> float:
    """The maximum of Soft-HGR over k-dimensional linear features: 1/2 * sum of the top-k rho^2."""
    return 0.5 * float(np.sum(np.sort(rhos)[::-1][:k] ** 2))


@dataclass(frozen=True)
class AscentResult:
    """A linear Soft-HGR fit: the objective along the steps, and the features it ends with."""

    objective: np.ndarray  # (steps,) correct Soft-HGR of the current features at each step
    features: tuple[torch.Tensor, torch.Tensor]  # final f(x), g(y), each (N, k)


def fit_linear_features(
    views: GaussianViews, k: int, steps: int, lr: float, loss: str = "correct", seed: int = 0
) -> AscentResult:
    """Train f(x) = x W_f, g(y) = y W_g with Adam.

    ``loss="correct"`` maximises Soft-HGR (minimises its negative). ``loss="reference"`` minimises the
    published loss ``|soft_hgr_reference|`` as the published training does. Either way the recorded
    curve is the correct Soft-HGR objective of the current features, so the two runs can be compared.
    """
    if loss not in ("correct", "reference"):
        raise ValueError(f"loss must be 'correct' or 'reference', got {loss!r}")
    generator = torch.Generator().manual_seed(seed)
    dim = views.x.shape[1]
    w_f = (torch.randn(dim, k, generator=generator) / dim**0.5).requires_grad_()
    w_g = (torch.randn(dim, k, generator=generator) / dim**0.5).requires_grad_()
    optimizer = torch.optim.Adam([w_f, w_g], lr=lr)
    mask = torch.ones(1, len(views.x), dtype=torch.bool)  # the whole sample as one "dialogue"
    history = []
    for _ in range(steps):
        f, g = (views.x @ w_f).unsqueeze(0), (views.y @ w_g).unsqueeze(0)  # (1, N, k)
        objective = soft_hgr([f, g], mask, mode="correct")
        history.append(float(objective.detach()))
        to_minimise = -objective if loss == "correct" else soft_hgr_reference([f, g], mask)
        optimizer.zero_grad()
        to_minimise.backward()
        optimizer.step()
    with torch.no_grad():
        return AscentResult(np.array(history), (views.x @ w_f, views.y @ w_g))


def optimum_problems(n_problems: int, dim: int, k: int, n_samples: int, steps: int, lr: float, seed: int = 0) -> list[dict]:
    """Fit Soft-HGR on ``n_problems`` random Gaussian problems; each row: theory vs optimum reached.

    ``theory`` uses the population correlations, ``sample_optimum`` the sample's own canonical
    correlations (the exact maximum on the data the fit sees), ``reached`` the fit's last value.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for problem in range(n_problems):
        n_correlated = int(rng.integers(1, dim + 1))
        rhos = np.sort(rng.uniform(0.05, 0.95, size=n_correlated))[::-1]
        views = gaussian_views(rhos, dim, n_samples, seed=seed + 1000 + problem)
        result = fit_linear_features(views, k, steps, lr, seed=seed + problem)
        rows.append(
            dict(
                problem=problem,
                theory=soft_hgr_optimum(views.rhos, k),
                sample_optimum=soft_hgr_optimum(canonical_correlations(views.x, views.y), k),
                reached=float(result.objective[-1]),
            )
        )
    return rows


def covariance_shapes(batch_sizes, dialogue_length: int, hidden: int) -> list[dict]:
    """Covariance size per modality for batches of dialogues: reference N x N (N = B * T) vs correct D x D."""
    rows = []
    for b in batch_sizes:
        n = b * dialogue_length
        rows.append(dict(batch_size=b, utterances=n, reference_entries=n * n, correct_entries=hidden * hidden))
    return rows


def reference_magnitudes(batch_sizes, dialogue_length: int, hidden: int, seed: int = 0) -> list[dict]:
    """Both losses on the same random unit-variance features (3 modalities, half-padded batches).

    Returns per batch size: the correct objective, the signed and abs reference values, the mean
    softmax entry against 1/D, and the reference value when the same utterances are padded twice as long.
    """
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for b in batch_sizes:
        shared = torch.randn(b, dialogue_length, hidden, generator=generator)
        features = [shared + torch.randn(b, dialogue_length, hidden, generator=generator) for _ in range(3)]  # (B, T, D)
        lengths = torch.randint(dialogue_length // 2, dialogue_length + 1, (b,), generator=generator)
        mask = torch.arange(dialogue_length)[None, :] < lengths[:, None]  # (B, T)
        padded = [torch.cat([f, torch.zeros_like(f)], dim=1) for f in features]  # (B, 2T, D): same utterances, more padding
        padded_mask = torch.cat([mask, torch.zeros_like(mask)], dim=1)
        softmaxed = torch.softmax(features[0][mask], dim=-1)  # (N, D)
        rows.append(
            dict(
                batch_size=b,
                correct=float(soft_hgr(features, mask)),
                correct_padded=float(soft_hgr(padded, padded_mask)),
                reference_signed=float(soft_hgr_reference(features, mask, take_abs=False)),
                reference_abs=float(soft_hgr_reference(features, mask)),
                reference_padded=float(soft_hgr_reference(padded, padded_mask)),
                softmax_mean_entry=float(softmaxed.mean()),
                softmax_max_entry=float(softmaxed.max()),
                one_over_d=1.0 / hidden,
            )
        )
    return rows


# ----------------------------------------------------------------------------- figures

CORRECT_COLOR, REFERENCE_COLOR = "#4C78A8", "#E45756"
LEGEND_BELOW = dict(orientation="h", yanchor="top", y=-0.22, x=0)  # legends under the plot: the text column is narrow


def ascent_figure(objective: np.ndarray, theory: float, sample_optimum: float) -> go.Figure:
    """The Soft-HGR objective along gradient ascent, with the population and sample optima as lines."""
    fig = go.Figure(go.Scatter(y=objective, mode="lines", name="Soft-HGR of the current features", line_color=CORRECT_COLOR))
    fig.add_hline(y=theory, line_dash="dash", line_color="black", annotation_text="1/2 sum of top-k rho^2 (population)")
    fig.add_hline(y=sample_optimum, line_dash="dot", line_color="gray", annotation_text="same, sample rho", annotation_position="bottom right")
    fig.update_yaxes(range=[min(0.0, theory) - 0.1, max(theory, sample_optimum) * 1.15])
    return book_layout(fig, "Gradient ascent reaches the canonical-correlation optimum", xaxis_title="step",
                       yaxis_title="Soft-HGR objective", legend=LEGEND_BELOW)


def optima_figure(rows) -> go.Figure:
    """Optimum reached against the theoretical optimum, one point per Gaussian problem, with y = x."""
    theory = [r["theory"] for r in rows]
    sample = [r["sample_optimum"] for r in rows]
    reached = [r["reached"] for r in rows]
    low, high = 0.0, max(theory + sample + reached) * 1.1
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[low, high], y=[low, high], mode="lines", name="reached = optimum", line=dict(color="gray", dash="dash")))
    fig.add_trace(go.Scatter(x=theory, y=reached, mode="markers", name="vs population rho", marker=dict(size=10, color=CORRECT_COLOR)))
    fig.add_trace(go.Scatter(x=sample, y=reached, mode="markers", name="vs sample rho", marker=dict(size=10, symbol="x", color="black")))
    return book_layout(fig, "Optimum reached on each Gaussian problem", xaxis_title="1/2 sum of top-k rho^2",
                       yaxis_title="Soft-HGR reached", legend=LEGEND_BELOW)


def covariance_figure(rows) -> go.Figure:
    """Entries of one covariance matrix per batch size: the reference's N x N against the correct D x D."""
    batch = [str(r["batch_size"]) for r in rows]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=batch, y=[r["reference_entries"] for r in rows], name="reference: N x N (N = utterances)", marker_color=REFERENCE_COLOR))
    fig.add_trace(go.Bar(x=batch, y=[r["correct_entries"] for r in rows], name="correct: D x D (D = features)", marker_color=CORRECT_COLOR))
    fig.update_layout(barmode="group")
    fig.update_yaxes(type="log")
    return book_layout(fig, "Size of one covariance matrix", xaxis_title="dialogues per batch",
                       yaxis_title="entries (log scale)", legend=LEGEND_BELOW)


def magnitudes_figure(rows) -> go.Figure:
    """|value| of the correct objective and of the reference loss on the same features (log scale)."""
    batch = [str(r["batch_size"]) for r in rows]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=batch, y=[abs(r["correct"]) for r in rows], name="correct Soft-HGR, |value|", marker_color=CORRECT_COLOR))
    fig.add_trace(go.Bar(x=batch, y=[r["reference_abs"] for r in rows], name="reference loss, |value|", marker_color=REFERENCE_COLOR))
    fig.update_layout(barmode="group")
    fig.update_yaxes(type="log", exponentformat="power")
    return book_layout(fig, "The reference loss is orders of magnitude smaller", xaxis_title="dialogues per batch",
                       yaxis_title="absolute value (log scale)", legend=LEGEND_BELOW)


def direction_figure(correct_run: np.ndarray, reference_run: np.ndarray, optimum: float) -> go.Figure:
    """The correct Soft-HGR objective while training with the correct loss and with |reference loss|."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(y=correct_run, mode="lines", name="trained on the correct loss (-Soft-HGR)", line_color=CORRECT_COLOR))
    fig.add_trace(go.Scatter(y=reference_run, mode="lines", name="trained on the reference loss (abs)", line_color=REFERENCE_COLOR))
    fig.add_hline(y=optimum, line_dash="dash", line_color="black", annotation_text="optimum")
    return book_layout(fig, "Same start, opposite directions: abs() reverses the ascent", xaxis_title="step",
                       yaxis_title="correct Soft-HGR objective", legend=LEGEND_BELOW)


def correlations_figure(true_rhos: np.ndarray, learned: dict[str, np.ndarray], k: int) -> go.Figure:
    """Top-k canonical correlations of the data and of the features each training ended with."""
    index = [f"#{i + 1}" for i in range(k)]
    fig = go.Figure(go.Bar(x=index, y=np.asarray(true_rhos)[:k], name="data (population)", marker_color="gray"))
    colors = {"correct": CORRECT_COLOR, "reference": REFERENCE_COLOR}
    for name, rhos in learned.items():
        fig.add_trace(go.Bar(x=index, y=np.asarray(rhos)[:k], name=f"features trained on the {name} loss", marker_color=colors.get(name)))
    fig.update_layout(barmode="group", yaxis_range=[0, 1])
    return book_layout(fig, "Canonical correlations captured by the learnt features", xaxis_title="canonical pair",
                       yaxis_title="correlation", legend=LEGEND_BELOW)
