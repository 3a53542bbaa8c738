"""Chapter 02 library: the fusion network taken apart, block by block, on the model's own modules.

- :func:`parameter_table`: every parameter of an :class:`~mcef.model.MCEF` assigned to the block it belongs to
  (stacked weights are split by group), so that the rows sum exactly to :func:`~mcef.model.count_parameters`;
  :func:`parameter_polynomial` turns the per-block counts into exact polynomials in the hidden size H.
- :func:`shape_trace`: the tensor shapes entering and leaving each top-level module during one forward pass,
  recorded with forward hooks (the model is run, never re-implemented).
- :func:`dialogue_attention`: one dialogue through the model with ``return_attention=True``: attention maps of
  every block and the modality weights of the gated fusion; :func:`attention_summary` condenses them.
- :func:`run_attention`: the attention and fusion weights of a trained run on one dialogue, stored beside it.
- Figures of the chapter: :func:`parameter_bars`, :func:`attention_grid`, :func:`gate_plot`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from mcef.book.common import MODALITY_COLORS, BookRun, book_layout, check
from mcef.data.batch import Batch
from mcef.data.dataset import MODALITIES, DialogueDataset
from mcef.model import MCEF, MCEFConfig, MCEFOutput, count_parameters

# Top-level module of MCEF -> (stage number, stage name), in the order of the forward pass.
STAGES = {
    "input_proj": (1, "input projection"),
    "speaker_embedding": (2, "speaker embedding"),
    "concat_proj": (3, "concatenation"),
    "self_blocks": (3, "self-attention"),
    "cross_blocks": (3, "cross-attention"),
    "view_gates": (4, "sigmoid gate"),
    "reduce": (5, "reduce"),
    "fusion_scorer": (6, "gated fusion"),
    "heads": (7, "modality head"),
    "fused_head": (7, "fused head"),
}
# The reference's own count with IEMOCAP dims (1024/1582/342) and 6 classes (see the book's reference page):
# coefficients of H^2, H and 1. The chapter checks it against the count of our implementation.
REFERENCE_POLYNOMIAL = (73, 3068, 24)


# ----------------------------------------------------------------------------- parameters per block


def group_labels(model: MCEF) -> dict[str, list[str]]:
    """Block label of each group of the stacked modules (``"text<-audio"``, ``"text"``...)."""
    names = model.config.modalities
    if model.config.fusion == "concat":
        selfs = ["fused<-fused"]
    else:
        selfs = [f"{m}<-{m}" for m in names]
    cross = [f"{names[t]}<-{names[s]}" for t, s in model.pairs]
    return {"self_blocks": selfs, "cross_blocks": cross, "view_gates": selfs + cross, "reduce": list(names), "heads": list(names)}


def parameter_table(model: MCEF) -> pd.DataFrame:
    """One row per (block, part): columns stage, stage_name, block, part, parameters.

    Stacked weights (``(G, ...)``) are split into their G blocks; the rows sum to ``count_parameters(model)``
    (checked here: a parameter the table cannot place raises, a total that differs is
    :class:`~mcef.book.common.SelfCheckFailed`).
    """
    labels = group_labels(model)
    rows: dict[tuple[str, str, str], int] = {}
    for name, parameter in model.named_parameters():
        top, *rest = name.split(".")
        if top not in STAGES:
            raise KeyError(f"parameter_table: no stage known for parameter {name!r} of {type(model).__name__}")
        part = rest[-1] if len(rest) == 1 or top == "input_proj" else rest[0]  # e.g. "in_proj", "weight", "bias"
        if top in labels:  # stacked: dimension 0 indexes the blocks
            if parameter.shape[0] != len(labels[top]):
                raise ValueError(f"parameter_table: {name} has {parameter.shape[0]} groups, expected {len(labels[top])}")
            for label, group in zip(labels[top], parameter):
                rows[(top, label, part)] = rows.get((top, label, part), 0) + group.numel()
        else:
            block = rest[0] if top == "input_proj" else STAGES[top][1]
            rows[(top, block, part)] = rows.get((top, block, part), 0) + parameter.numel()
    table = pd.DataFrame(
        [
            {"stage": STAGES[top][0], "stage_name": STAGES[top][1], "block": block, "part": part, "parameters": count}
            for (top, block, part), count in rows.items()
        ]
    )
    total, expected = int(table["parameters"].sum()), count_parameters(model)
    check(total == expected, f"parameter_table: the rows sum to {total:,} parameters, count_parameters counts "
                             f"{expected:,}")
    return table


def per_block(table: pd.DataFrame) -> pd.DataFrame:
    """The parts of ``parameter_table`` summed per block, in forward order."""
    return table.groupby(["stage", "stage_name", "block"], sort=False, as_index=False)["parameters"].sum()


def stage_table(blocks: pd.DataFrame) -> pd.DataFrame:
    """:func:`per_block`'s rows summed per stage: number of blocks, parameters and share of the total."""
    stages = blocks.groupby("stage_name", sort=False)["parameters"].agg(["count", "sum"])
    stages.columns = ["blocks", "parameters"]
    stages["share"] = stages["parameters"] / stages["parameters"].sum()
    return stages


def first_block_parts(parts: pd.DataFrame, stage_name: str) -> pd.DataFrame:
    """The parts of the first block of ``stage_name`` in :func:`parameter_table` (block, part, parameters)."""
    stage = parts[parts["stage_name"] == stage_name]
    return stage[stage["block"] == stage["block"].iloc[0]][["block", "part", "parameters"]].reset_index(drop=True)


def parameter_facts(model: MCEF) -> dict[str, float | int | str]:
    """What the chapter says about where ``model``'s parameters are, keyed by its glue names.

    The per-block table's total (:func:`parameter_table` checks it equals ``count_parameters``), the number of blocks, the attention blocks' share, and the parameters of the input LayerNorms,
    which are built but never applied (``pre_norm=False``).
    """
    parts = parameter_table(model)
    blocks = per_block(parts)
    stages = stage_table(blocks)
    total, counted = int(blocks["parameters"].sum()), count_parameters(model)
    return {
        "table_total": total,
        "counted_total": counted,
        "n_blocks": len(blocks),
        "attention_share": float(stages.loc[["self-attention", "cross-attention"], "share"].sum()),
        "unused_norm": int(parts.loc[parts["part"] == "input_norm", "parameters"].sum()),
    }


def meta_model(config: MCEFConfig) -> MCEF:
    """``MCEF(config)`` with parameters on the meta device: shapes only, no memory, no initialisation cost."""
    with torch.device("meta"):
        return MCEF(config)


def parameter_polynomial(config: MCEFConfig, probe_hidden: tuple[int, ...] = (32, 64, 96, 128)) -> pd.DataFrame:
    """Each block's parameter count as an exact polynomial a H^2 + b H + c in the hidden size H.

    The counts of models built (on the meta device) at the first three ``probe_hidden`` sizes determine the
    coefficients exactly (rational arithmetic); every further size must match them, else ValueError.
    Returns the rows of :func:`per_block` with columns ``h2``, ``h1``, ``h0`` and a readable ``formula``.
    """
    counts = [per_block(parameter_table(meta_model(replace(config, hidden=h)))) for h in probe_hidden]
    keys = ["stage", "stage_name", "block"]
    result = counts[0][keys].copy()
    matrix = [[Fraction(h * h), Fraction(h), Fraction(1)] for h in probe_hidden[:3]]
    coefficients = []
    for i in range(len(result)):
        values = [Fraction(int(c["parameters"].iloc[i])) for c in counts]
        a, b, c = _solve3(matrix, values[:3])
        for h, value in zip(probe_hidden[3:], values[3:]):
            if a * h * h + b * h + c != value:
                raise ValueError(f"parameter_polynomial: block {result['block'].iloc[i]!r} is not quadratic in H")
        if any(x.denominator != 1 for x in (a, b, c)):
            raise ValueError(f"parameter_polynomial: block {result['block'].iloc[i]!r} has non-integer coefficients")
        coefficients.append((int(a), int(b), int(c)))
    result[["h2", "h1", "h0"]] = coefficients
    result["formula"] = [format_polynomial(*c) for c in coefficients]
    return result


POLYNOMIAL_STAGES = {"cross": "cross-attention", "gate": "sigmoid gate", "reduce": "reduce"}  # glue key -> stage


def polynomial_facts(config: MCEFConfig, check_hidden: tuple[int, ...] = (512, 1024)) -> dict[str, int | str]:
    """The parameter count of ``config`` as a polynomial in H, beside the reference's, keyed by the chapter's glue names.

    The summed polynomial must be the reference's (:class:`~mcef.book.common.SelfCheckFailed` otherwise).
    ``formula_<H>`` / ``counted_<H>``: the polynomial at H against a model of the same config built at that size;
    ``formula_<stage>``: one block's polynomial for the stages of :data:`POLYNOMIAL_STAGES`.
    """
    polynomial = parameter_polynomial(config)
    coefficients = tuple(int(polynomial[c].sum()) for c in ("h2", "h1", "h0"))
    check(coefficients == REFERENCE_POLYNOMIAL, f"polynomial_facts: the count of our model is "
          f"{format_polynomial(*coefficients)}, the reference's {format_polynomial(*REFERENCE_POLYNOMIAL)}")
    facts = {"formula": format_polynomial(*coefficients), "reference_formula": format_polynomial(*REFERENCE_POLYNOMIAL)}
    for h in check_hidden:
        facts[f"formula_{h}"] = evaluate_polynomial(coefficients, h)
        facts[f"counted_{h}"] = count_parameters(meta_model(replace(config, hidden=h)))
        check(facts[f"formula_{h}"] == facts[f"counted_{h}"], f"polynomial_facts: at H = {h} the polynomial gives "
              f"{facts[f'formula_{h}']:,} parameters, the model built at that size counts {facts[f'counted_{h}']:,}")
    for key, stage in POLYNOMIAL_STAGES.items():
        facts[f"formula_{key}"] = polynomial.loc[polynomial["stage_name"] == stage, "formula"].iloc[0]
    return facts


def _solve3(matrix: list[list[Fraction]], values: list[Fraction]) -> list[Fraction]:
    """Exact solution of a 3x3 linear system (Gauss-Jordan over the rationals)."""
    rows = [row[:] + [v] for row, v in zip(matrix, values)]
    for col in range(3):
        pivot = next(r for r in range(col, 3) if rows[r][col] != 0)
        rows[col], rows[pivot] = rows[pivot], rows[col]
        rows[col] = [x / rows[col][col] for x in rows[col]]
        for r in range(3):
            if r != col:
                rows[r] = [x - rows[r][col] * y for x, y in zip(rows[r], rows[col])]
    return [row[3] for row in rows]


def format_polynomial(a: int, b: int, c: int) -> str:
    """``73H² + 3068H + 24`` style text (zero terms left out)."""
    terms = [(a, "H²"), (b, "H"), (c, "")]
    text = " + ".join(f"{'' if v == 1 and s else v}{s}" for v, s in terms if v)
    return text or "0"


def evaluate_polynomial(coefficients: tuple[int, int, int], hidden: int) -> int:
    """a H^2 + b H + c at ``hidden``."""
    a, b, c = coefficients
    return a * hidden * hidden + b * hidden + c


# ----------------------------------------------------------------------------- shapes through the forward pass


def traced_modules(model: MCEF) -> dict[str, torch.nn.Module]:
    """The modules whose calls :func:`shape_trace` records: each input projection and every top-level block."""
    modules = {f"input_proj.{m}": module for m, module in model.input_proj.items()}
    modules.update({name: module for name, module in model.named_children() if name in STAGES and name != "input_proj"})
    return modules


def _shapes(value) -> str:
    if isinstance(value, torch.Tensor):
        return str(tuple(value.shape))
    if isinstance(value, (tuple, list)):
        return ", ".join(_shapes(v) for v in value if v is not None and not isinstance(v, (bool, int)) and _shapes(v))
    return ""


def shape_trace(model: MCEF, batch: Batch) -> pd.DataFrame:
    """Run ``model`` on ``batch`` (eval mode, no gradients) and record every traced module call in order.

    Columns: step, module, stage_name, inputs, outputs (tensor shapes; non-tensor arguments left out). The
    position-wise layers work on packed rows ``(N, H)`` (N valid utterances) when ``config.packed``; a final
    row per output of :class:`~mcef.model.MCEFOutput` shows the padded ``(B, T, ...)`` results.
    """
    records = []
    handles = []

    def hook(name):
        def record(module, inputs, output):
            records.append({"module": name, "stage_name": STAGES[name.split(".")[0]][1], "inputs": _shapes(inputs),
                            "outputs": _shapes(output)})  # fmt: skip
        return record

    for name, module in traced_modules(model).items():
        handles.append(module.register_forward_hook(hook(name)))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            output = model(batch)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    for m, tensor in output.representations.items():
        records.append({"module": f"output.representations[{m}]", "stage_name": "output", "inputs": "", "outputs": _shapes(tensor)})
    records.append({"module": "output.fused_logits", "stage_name": "output", "inputs": "", "outputs": _shapes(output.fused_logits)})
    table = pd.DataFrame(records)
    table.insert(0, "step", range(1, len(table) + 1))
    return table


# ----------------------------------------------------------------------------- one dialogue through the model


def dialogue_batch(dataset: DialogueDataset, dialogue_id: str, modalities: tuple[str, ...], device="cpu") -> Batch:
    """A batch holding the one dialogue ``dialogue_id`` (no padding)."""
    dialogue = dataset.dialogues[dialogue_id]
    features = {m: torch.as_tensor(np.asarray(dialogue.features[m], dtype=np.float32), device=device)[None] for m in modalities}
    length = len(dialogue)
    return Batch(
        features=features,  # modality -> (1, T, D_m)
        mask=torch.ones(1, length, dtype=torch.bool, device=device),
        speakers=torch.as_tensor(dialogue.speakers, dtype=torch.long, device=device)[None],
        labels=torch.as_tensor(dialogue.labels, dtype=torch.long, device=device)[None],
        dialogue_ids=[dialogue_id],
    )


def run_with_attention(model: MCEF, batch: Batch) -> MCEFOutput:
    """The model's output on ``batch`` with attention and gate weights (eval mode, no gradients)."""
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            return model(batch.to(next(model.parameters()).device), return_attention=True)
    finally:
        model.train(was_training)


@dataclass
class DialogueAttention:
    """Attention and fusion weights of one dialogue, as numpy arrays (what the chapter shows: heads and features
    averaged, small enough to be stored beside a run whose weights are not committed)."""

    dialogue_id: str
    modalities: tuple[str, ...]
    labels: list[str]  # true emotion of each utterance
    predictions: list[str]  # the fused head's prediction
    speakers: list[str]
    attention: dict[str, np.ndarray]  # "target<-source" -> (T, T) mean over heads; row = query utterance, column = key
    fusion_weights: np.ndarray | None  # (T, M) softmax fusion weight of each modality, mean over the H features

    def to_json(self) -> dict:
        """A JSON form (:func:`mcef.book.derived.from_weights` stores it); :meth:`from_json` reads it back."""
        return {"dialogue_id": self.dialogue_id, "modalities": list(self.modalities), "labels": self.labels,
                "predictions": self.predictions, "speakers": self.speakers,
                "attention": {block: weights.tolist() for block, weights in self.attention.items()},
                "fusion_weights": None if self.fusion_weights is None else self.fusion_weights.tolist()}

    @classmethod
    def from_json(cls, value: dict) -> DialogueAttention:
        weights = value["fusion_weights"]
        return cls(value["dialogue_id"], tuple(value["modalities"]), value["labels"], value["predictions"],
                   value["speakers"], {block: np.asarray(w) for block, w in value["attention"].items()},
                   None if weights is None else np.asarray(weights))


def pick_dialogue(dataset: DialogueDataset, split: str = "test") -> str:
    """The dialogue of ``split`` whose length is the split's median (the first such, in split order)."""
    ids = dataset.splits[split]
    lengths = np.array([len(dataset.dialogues[d]) for d in ids])
    return ids[int(np.argmin(np.abs(lengths - np.median(lengths))))]


def dialogue_attention(model: MCEF, dataset: DialogueDataset, dialogue_id: str) -> DialogueAttention:
    """Run ``dialogue_id`` through ``model`` with ``return_attention=True``."""
    dialogue = dataset.dialogues[dialogue_id]
    output = run_with_attention(model, dialogue_batch(dataset, dialogue_id, model.config.modalities))
    predictions = output.fused_logits[0].argmax(-1).cpu().numpy()
    gates = None if output.gates is None else output.gates[0].float().cpu().numpy()  # (T, M, H)
    return DialogueAttention(
        dialogue_id=dialogue_id,
        modalities=model.config.modalities,
        labels=[dataset.label_names[i] for i in dialogue.labels],
        predictions=[dataset.label_names[i] for i in predictions],
        speakers=[dataset.speaker_names[i] for i in dialogue.speakers],
        attention={k: w[0].float().mean(dim=0).cpu().numpy() for k, w in output.attention.items()},  # (T, T)
        fusion_weights=None if gates is None else gates.mean(axis=2),  # (T, M)
    )


def attention_summary(snapshot: DialogueAttention) -> pd.DataFrame:
    """Per block (heads averaged): mean query-key distance in utterances, share of weight on the query's own
    utterance and its two neighbours, and entropy relative to uniform attention (1 = uniform). The last row,
    ``uniform``, is what attention spread evenly over the dialogue would give."""
    T = len(snapshot.labels)
    distance = np.abs(np.arange(T)[:, None] - np.arange(T)[None, :])  # (T, T)
    maps = dict(snapshot.attention)
    maps["uniform"] = np.full((T, T), 1.0 / T)
    rows = []
    for block, weights in maps.items():
        target, _, source = block.partition("<-")
        entropy = -(weights * np.log(np.clip(weights, 1e-12, None))).sum(axis=1)
        rows.append(
            {
                "block": block,
                "kind": "reference" if not source else "self" if target == source else "cross",
                "mean_distance": float((weights * distance).sum(axis=1).mean()),
                "local_share": float((weights * (distance <= 1)).sum(axis=1).mean()),
                "relative_entropy": float(entropy.mean() / np.log(T)),
            }
        )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- the chapter's model


def run_attention(run: BookRun, dataset: DialogueDataset, dialogue_id: str, *, device: str = "auto") -> DialogueAttention:
    """:func:`dialogue_attention` of ``run``'s checkpoint selected on validation, stored beside the run (the
    committed store has no weights: :func:`mcef.book.derived.from_weights`)."""
    from mcef.book.derived import from_weights
    from mcef.evaluate import load_run

    def compute() -> dict:
        _, model, _ = load_run(run.run_dir, device=device)
        return dialogue_attention(model, dataset, dialogue_id).to_json()

    return DialogueAttention.from_json(from_weights(run, "attention", {"dialogue_id": dialogue_id}, compute))


def run_facts(run: BookRun) -> dict[str, float | int | str]:
    """What the chapter says about the run its model comes from, keyed by its glue names."""
    made = run.summary["provenance"]
    origin = (f"read from the run store {run.run_dir.parent.parent} (trained on {made['device']} on "
              f"{made['date'][:10]}, commit {made['git_commit'][:7]})" if run.origin == "loaded"
              else f"{run.origin} by this chapter (chapter 4 reads it from the run store)")
    return {"run_origin": origin, "run_hidden": run.config.model.hidden, "run_epochs": int(run.summary["epochs_run"]),
            "run_selected": int(run.summary["selected_epoch"]),
            "run_valid_wf1": float(run.summary["valid"]["weighted_f1"])}


# ----------------------------------------------------------------------------- figures


def parameter_bars(blocks: pd.DataFrame, title: str = "Parameters per block") -> go.Figure:
    """Horizontal bars of :func:`per_block`, coloured by stage, largest blocks readable at a glance."""
    fig = go.Figure()
    for stage_name, rows in blocks.groupby("stage_name", sort=False):
        fig.add_trace(
            go.Bar(
                y=[f"{stage_name}: {b}" if b != stage_name else b for b in rows["block"]], x=rows["parameters"],
                orientation="h", name=stage_name, hovertemplate="%{y}: %{x:,} parameters<extra></extra>",
            )
        )  # fmt: skip
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title="parameters", tickformat=",")
    fig.update_yaxes(title="block (stage: block)")
    return book_layout(fig, title, height=max(420, 22 * len(blocks) + 120), showlegend=False)


def attention_grid(snapshot: DialogueAttention, title: str | None = None) -> go.Figure:
    """Heatmaps of every block's attention (heads averaged): rows = target modality, columns = source modality."""
    names = [m for m in MODALITIES if m in snapshot.modalities]
    fig = make_subplots(
        rows=len(names), cols=len(names), shared_xaxes=True, shared_yaxes=True, horizontal_spacing=0.03, vertical_spacing=0.06,
        subplot_titles=[f"{t} <- {s}" for t in names for s in names],
    )  # fmt: skip
    hover = [[f"query {i} ({snapshot.speakers[i]}, {snapshot.labels[i]})<br>key {j} ({snapshot.speakers[j]}, "
              f"{snapshot.labels[j]})" for j in range(len(snapshot.labels))] for i in range(len(snapshot.labels))]  # fmt: skip
    for r, target in enumerate(names, start=1):
        for c, source in enumerate(names, start=1):
            weights = snapshot.attention[f"{target}<-{source}"]  # (T, T)
            fig.add_trace(
                go.Heatmap(
                    z=weights, coloraxis="coloraxis", text=hover,
                    hovertemplate="%{text}<br>weight %{z:.3f}<extra>" + f"{target} <- {source}</extra>",
                ),
                row=r, col=c,
            )  # fmt: skip
    fig.update_yaxes(autorange="reversed")
    for k, name in enumerate(names, start=1):  # rows: the querying (target) modality; columns: the source
        fig.update_yaxes(title_text=f"{name} query", row=k, col=1)
        fig.update_xaxes(title_text=f"{name} key", row=len(names), col=k)
    fig.update_layout(coloraxis=dict(colorscale="Blues", colorbar=dict(title="weight")))
    return book_layout(fig, title or "Attention of every block (mean over heads)", height=760)


def gate_plot(snapshot: DialogueAttention, title: str | None = None) -> go.Figure:
    """Fusion weight of each modality per utterance (mean over features; they sum to 1 per utterance)."""
    weights = snapshot.fusion_weights  # (T, M)
    x = np.arange(len(snapshot.labels))
    hover = [f"utterance {i} ({snapshot.speakers[i]})<br>label {snapshot.labels[i]}, predicted {snapshot.predictions[i]}" for i in x]
    fig = go.Figure()
    for k, modality in enumerate(snapshot.modalities):
        fig.add_trace(
            go.Scatter(
                x=x, y=weights[:, k], mode="lines", stackgroup="weights", name=modality, text=hover,
                line_color=MODALITY_COLORS.get(modality), hovertemplate="%{text}<br>" + modality + ": %{y:.3f}<extra></extra>",
            )
        )  # fmt: skip
    fig.update_yaxes(range=[0, 1], title="fusion weight (mean over features)")
    fig.update_xaxes(title="utterance")
    return book_layout(fig, title or "Fusion weight of each modality per utterance", legend=dict(orientation="h", yanchor="top", y=-0.22, x=0))
