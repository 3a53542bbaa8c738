"""Every figure of the book, as a function returning a Plotly figure; notebooks only call them.

Importing this module registers the ``mcef_book`` renderer and makes ``"plotly_mimetype+mcef_book"``
the default: JupyterLab draws the Plotly mimetype part itself, the Jupyter Book renders the HTML part,
which references plotly.js served once from the book's static files (no CDN, no 4.8 MB per page).
Titles are plain text (no LaTeX: it would show raw in the book) and no figure has a fixed width.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.io._base_renderers import MimetypeRenderer

RENDERER = "mcef_book"
DEFAULT_RENDERERS = f"plotly_mimetype+{RENDERER}"
FIGURE_HEIGHT = 420  # px; widths are never fixed so figures follow the text column
TEMPLATE = "plotly_white"
SPLIT_COLORS = {"train": "#4C78A8", "valid": "#F58518", "test": "#54A24B"}
MODALITY_COLORS = {"text": "#4C78A8", "audio": "#E45756", "visual": "#72B7B2", "all": "#54A24B"}


class BookHtmlRenderer(MimetypeRenderer):
    """A ``text/html`` part without plotly.js: the page that shows it must load plotly.js itself."""

    def to_mimebundle(self, fig_dict):
        html = pio.to_html(
            fig_dict,
            include_plotlyjs=False,
            include_mathjax=False,
            full_html=False,
            default_width="100%",
            validate=False,
        )
        return {"text/html": html}


def setup_notebook() -> None:
    """Register the book renderer and make ``plotly_mimetype+mcef_book`` the default (idempotent)."""
    pio.renderers[RENDERER] = BookHtmlRenderer()
    pio.renderers.default = DEFAULT_RENDERERS


setup_notebook()


def book_layout(fig: go.Figure, title: str, **kwargs) -> go.Figure:
    """The book's shared look, used by every chapter's figures: plain-text title, fixed height, free width."""
    fig.update_layout(
        title=title, template=TEMPLATE, height=kwargs.pop("height", FIGURE_HEIGHT), margin=dict(l=60, r=20, t=60, b=50), **kwargs
    )
    return fig


# ----------------------------------------------------------------------------- chapter 01: the data


def dialogue_lengths(table) -> go.Figure:
    """Histogram of dialogue lengths (utterances) per split; ``table`` from ``exploration.dialogue_table``."""
    fig = go.Figure()
    for split, rows in table.groupby("split", sort=False):
        fig.add_trace(go.Histogram(x=rows["length"], name=split, marker_color=SPLIT_COLORS.get(split), opacity=0.75, nbinsx=20))
    fig.update_layout(barmode="overlay")
    return book_layout(fig, "Dialogue length per split", xaxis_title="utterances per dialogue", yaxis_title="dialogues")


def speaker_share(table) -> go.Figure:
    """Box plot of the share of utterances by each dialogue's most frequent speaker, per split."""
    fig = go.Figure()
    for split, rows in table.groupby("split", sort=False):
        fig.add_trace(go.Box(y=rows["top_speaker_share"], name=split, marker_color=SPLIT_COLORS.get(split), boxpoints="all", jitter=0.4))
    return book_layout(fig, "Share of the most talkative speaker per dialogue", yaxis_title="share of utterances", showlegend=False)


def class_balance(table) -> go.Figure:
    """Grouped bars: fraction of each class per split; ``table`` from ``exploration.class_balance``."""
    fig = go.Figure()
    for split, rows in table.groupby("split", sort=False):
        fig.add_trace(
            go.Bar(
                x=rows["label"], y=rows["fraction"], name=split, marker_color=SPLIT_COLORS.get(split),
                customdata=rows["count"], hovertemplate="%{x}: %{y:.1%} (%{customdata} utterances)",
            )
        )  # fmt: skip
    fig.update_layout(barmode="group", yaxis_tickformat=".0%")
    return book_layout(fig, "Class balance per split", yaxis_title="share of the split's utterances")


def transition_heatmap(counts: np.ndarray, label_names: Sequence[str], title: str = "Emotion transitions within dialogues") -> go.Figure:
    """Heatmap of P(next label | current label) from (C, C) transition counts."""
    rows = counts.sum(axis=1, keepdims=True)
    probabilities = np.divide(counts, rows, out=np.zeros(counts.shape, dtype=float), where=rows > 0)
    fig = go.Figure(
        go.Heatmap(
            z=probabilities, x=list(label_names), y=list(label_names), colorscale="Blues", zmin=0, zmax=1,
            text=np.round(probabilities, 2), texttemplate="%{text}", customdata=counts,
            hovertemplate="%{y} -> %{x}: %{z:.2f} (%{customdata} pairs)<extra></extra>",
        )
    )  # fmt: skip
    fig.update_yaxes(autorange="reversed", title="current utterance")
    fig.update_xaxes(title="next utterance")
    return book_layout(fig, title, height=480)


def feature_std(stds: dict[str, np.ndarray]) -> go.Figure:
    """Distribution of the per-dimension standard deviation of each modality's features."""
    fig = go.Figure()
    for modality, std in stds.items():
        fig.add_trace(go.Violin(y=std, name=modality, line_color=MODALITY_COLORS.get(modality), box_visible=True, points=False))
    return book_layout(fig, "Per-dimension standard deviation of the features (train)", yaxis_title="std of one dimension", showlegend=False)


def probe_results(table, majority_accuracy: float) -> go.Figure:
    """Bars of the linear probes' validation and test weighted F1 per modality, with the majority-class accuracy."""
    fig = go.Figure()
    fig.add_trace(go.Bar(x=table["modality"], y=table["valid_weighted_f1"], name="valid weighted F1", marker_color=SPLIT_COLORS["valid"]))
    fig.add_trace(go.Bar(x=table["modality"], y=table["test_weighted_f1"], name="test weighted F1", marker_color=SPLIT_COLORS["test"]))
    fig.add_hline(y=majority_accuracy, line_dash="dash", annotation_text="majority class (test accuracy)")
    fig.update_layout(barmode="group", yaxis_range=[0, 1])
    return book_layout(fig, "Linear probes: each modality alone, and all concatenated", yaxis_title="weighted F1")


def probe_curves(curves) -> go.Figure:
    """Validation weighted F1 of the linear probes against the inverse regularisation C (log axis)."""
    fig = go.Figure()
    for modality, rows in curves.groupby("modality", sort=False):
        fig.add_trace(go.Scatter(x=rows["c"], y=rows["valid_weighted_f1"], mode="lines+markers", name=modality, line_color=MODALITY_COLORS.get(modality)))
    fig.update_xaxes(type="log", title="C (inverse L2 strength)")
    return book_layout(fig, "Choosing C on the validation split", yaxis_title="valid weighted F1")


# ----------------------------------------------------------------------------- chapter 03: Soft-HGR

CORRECT_COLOR, REFERENCE_COLOR = "#4C78A8", "#E45756"


def soft_hgr_ascent(objective: np.ndarray, theory: float, sample_optimum: float) -> go.Figure:
    """The Soft-HGR objective along gradient ascent, with the population and sample optima as lines."""
    fig = go.Figure(go.Scatter(y=objective, mode="lines", name="Soft-HGR of the current features", line_color=CORRECT_COLOR))
    fig.add_hline(y=theory, line_dash="dash", line_color="black", annotation_text="1/2 sum of top-k rho^2 (population)")
    fig.add_hline(y=sample_optimum, line_dash="dot", line_color="gray", annotation_text="same, sample rho", annotation_position="bottom right")
    fig.update_yaxes(range=[min(0.0, theory) - 0.1, max(theory, sample_optimum) * 1.15])
    return book_layout(fig, "Gradient ascent on Soft-HGR reaches the canonical-correlation optimum", xaxis_title="step", yaxis_title="objective")


def soft_hgr_optima(rows) -> go.Figure:
    """Optimum reached against the theoretical optimum, one point per Gaussian problem, with y = x."""
    theory = [r["theory"] for r in rows]
    sample = [r["sample_optimum"] for r in rows]
    reached = [r["reached"] for r in rows]
    low, high = 0.0, max(theory + sample + reached) * 1.1
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[low, high], y=[low, high], mode="lines", name="reached = optimum", line=dict(color="gray", dash="dash")))
    fig.add_trace(go.Scatter(x=theory, y=reached, mode="markers", name="vs population rho", marker=dict(size=10, color=CORRECT_COLOR)))
    fig.add_trace(go.Scatter(x=sample, y=reached, mode="markers", name="vs sample rho", marker=dict(size=10, symbol="x", color="black")))
    return book_layout(fig, "Optimum reached on each Gaussian problem", xaxis_title="1/2 sum of top-k rho^2", yaxis_title="Soft-HGR reached")


def covariance_sizes(rows) -> go.Figure:
    """Entries of one covariance matrix per batch size: the reference's N x N against the correct D x D."""
    batch = [str(r["batch_size"]) for r in rows]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=batch, y=[r["reference_entries"] for r in rows], name="reference: N x N (N = utterances)", marker_color=REFERENCE_COLOR))
    fig.add_trace(go.Bar(x=batch, y=[r["correct_entries"] for r in rows], name="correct: D x D (D = features)", marker_color=CORRECT_COLOR))
    fig.update_layout(barmode="group")
    fig.update_yaxes(type="log")
    return book_layout(fig, "Size of one covariance matrix", xaxis_title="dialogues per batch", yaxis_title="entries (log scale)")


def loss_magnitudes(rows) -> go.Figure:
    """|value| of the correct objective and of the reference loss on the same features (log scale)."""
    batch = [str(r["batch_size"]) for r in rows]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=batch, y=[abs(r["correct"]) for r in rows], name="correct Soft-HGR, |value|", marker_color=CORRECT_COLOR))
    fig.add_trace(go.Bar(x=batch, y=[r["reference_abs"] for r in rows], name="reference loss, |value|", marker_color=REFERENCE_COLOR))
    fig.update_layout(barmode="group")
    fig.update_yaxes(type="log", exponentformat="power")
    return book_layout(fig, "On the same features: after its softmax the reference loss is orders of magnitude smaller", xaxis_title="dialogues per batch", yaxis_title="absolute value (log scale)")


def training_direction(correct_run: np.ndarray, reference_run: np.ndarray, optimum: float) -> go.Figure:
    """The correct Soft-HGR objective while training with the correct loss and with |reference loss|."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(y=correct_run, mode="lines", name="trained on the correct loss (-Soft-HGR)", line_color=CORRECT_COLOR))
    fig.add_trace(go.Scatter(y=reference_run, mode="lines", name="trained on the reference loss (abs)", line_color=REFERENCE_COLOR))
    fig.add_hline(y=optimum, line_dash="dash", line_color="black", annotation_text="optimum")
    return book_layout(fig, "Same start, opposite directions: the abs() turns maximisation into minimisation", xaxis_title="step", yaxis_title="correct Soft-HGR objective")


def canonical_correlation_bars(true_rhos: np.ndarray, learned: dict[str, np.ndarray], k: int) -> go.Figure:
    """Top-k canonical correlations of the data and of the features each training ended with."""
    index = [f"#{i + 1}" for i in range(k)]
    fig = go.Figure(go.Bar(x=index, y=np.asarray(true_rhos)[:k], name="data (population)", marker_color="gray"))
    colors = {"correct": CORRECT_COLOR, "reference": REFERENCE_COLOR}
    for name, rhos in learned.items():
        fig.add_trace(go.Bar(x=index, y=np.asarray(rhos)[:k], name=f"features trained on the {name} loss", marker_color=colors.get(name)))
    fig.update_layout(barmode="group", yaxis_range=[0, 1])
    return book_layout(fig, "Canonical correlations captured by the learnt features", xaxis_title="canonical pair", yaxis_title="correlation")
