"""The MCEF network: per-modality transformers with equal cross-attention fusion.

Architecture (H = ``hidden``), as the reference describes it (see the book's "reference" page):

1. Per modality a bias-free linear map of the input features to H.
2. Speaker embedding (``n_speakers + 1`` rows, the last one for padding) and sinusoidal positions are added.
3. Per target modality m: one self-attention block m<-m (``n_self_heads`` heads) and one cross-attention block
   m<-s per other modality s (queries from m, keys and values from s; ``n_heads`` heads). Each block:
   [pre-LayerNorm], multi-head attention, dropout, residual, then LayerNorm, H->H, GELU (``activation``: the
   published code's tanh approximation by default), dropout, H->H,
   dropout, residual. Padded utterances are masked out of the keys.
4. Every block output passes a sigmoid gate ``sigmoid(W x) * x`` (W bias-free).
5. Per target modality the gated views (ordered by source modality) are concatenated and reduced to H.
6. A shared bias-free H->H scorer rates each modality; a softmax across modalities (per feature) weighs the sum.
7. Heads: per modality ReLU, dropout, linear H->classes; the fused head is a plain linear layer.

Speed: blocks of the same kind are stored stacked (``(G, in, out)`` weights) and run as one batched matmul
per layer, and with ``packed=True`` every position-wise operation runs on the valid utterances only
(``N`` rows instead of ``B * T``); only the attention itself goes back to the padded ``(B, T)`` grid.
In float32 an epoch is then bound by its matmuls; ``precision="bfloat16"`` autocasts them to bf16, about
2.3x faster again on CPUs with AVX512-BF16 (and on GPUs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mcef.data.batch import Batch
from mcef.data.dataset import MODALITIES

FUSIONS = ("equal", "sdt", "concat", "late")
# Feed-forward activation -> the ``approximate`` argument of F.gelu. "gelu_tanh" is the published code's
# 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); "gelu" is the exact erf form.
ACTIVATIONS = {"gelu_tanh": "tanh", "gelu": "none"}
PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16}  # autocast dtype of each precision
LAYER_NORM_EPS = 1e-6  # the reference's (OpenNMT's) LayerNorm epsilon


@dataclass(frozen=True)
class MCEFConfig:
    """Hyper-parameters of :class:`MCEF`; the defaults are the published MCEF model on IEMOCAP.

    ``fusion`` picks the variant compared in the ablations:

    - ``"equal"``: MCEF. Self-attention blocks use ``n_self_heads`` heads (the reference halves SDT's
      ``n_head`` for self-attention), cross-attention blocks use ``n_heads``.
    - ``"sdt"``: SDT's head split, our reading of "MCEF's change vs SDT is n_head/2 for self-attention":
      all blocks, self and cross, use ``n_heads``; everything else (gates, reduce, gated fusion, heads) is
      the same as ``"equal"``, so the parameter count is the same too.
    - ``"concat"``: early fusion. The projected modalities are concatenated along features, mapped to H,
      and pass one self-attention block (``n_heads``) into the fused head; each modality head reads its own
      projected stream.
    - ``"late"``: no cross-attention. Each modality runs its own self-attention block, gate and reduce layer
      into its head; the fused logits are the average of the modality heads' logits.
    """

    modalities: tuple[str, ...] | None = None  # any non-empty subset of MODALITIES; None = every modality of the data
    input_dims: tuple[int, ...] | None = None  # feature size per modality, aligned with modalities; None = the data's
    hidden: int = 512  # H: width of every stream (the paper's 20.7M model; the reference code defaults to 1024)
    n_heads: int = 8  # heads of the cross-attention blocks (and of every block in "sdt" and "concat")
    n_self_heads: int = 4  # heads of the self-attention blocks in "equal" and "late"
    dropout: float = 0.5  # dropout on block inputs, attention weights, residual branches and modality heads
    n_speakers: int | None = None  # speakers per dataset (the embedding gets one extra row for padding); None = the data's
    n_classes: int | None = None  # emotion classes; None = the data's
    fusion: Literal["equal", "sdt", "concat", "late"] = "equal"  # see the class docstring
    pre_norm: bool = False  # apply each block's input LayerNorm; the reference builds it but its one-layer encoders never apply it
    packed: bool = True  # compute position-wise layers on valid utterances only; False = padded grid like the reference
    precision: Literal["float32", "bfloat16"] = "float32"  # autocast of the network (fp32 weights, norms, softmax, outputs, losses)
    activation: Literal["gelu_tanh", "gelu"] = "gelu_tanh"  # feed-forward GELU: the published tanh approximation, or the erf form

    def __post_init__(self):
        if self.modalities is not None:
            object.__setattr__(self, "modalities", tuple(self.modalities))
            unknown = [m for m in self.modalities if m not in MODALITIES]
            if not self.modalities or unknown or len(set(self.modalities)) != len(self.modalities):
                raise ValueError(f"modalities: expected distinct names from {MODALITIES}, got {self.modalities}")
        if self.input_dims is not None:
            object.__setattr__(self, "input_dims", tuple(int(d) for d in self.input_dims))
            if self.modalities is not None and len(self.input_dims) != len(self.modalities):
                raise ValueError(f"input_dims: expected one dimension per modality {self.modalities}, got {self.input_dims}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision: expected one of {tuple(PRECISIONS)}, got {self.precision!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {tuple(ACTIVATIONS)}, got {self.activation!r}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion: expected one of {FUSIONS}, got {self.fusion!r}")
        if self.hidden < 1:
            raise ValueError(f"hidden: expected at least 1, got {self.hidden}")
        for name in ("n_heads", "n_self_heads"):
            heads = getattr(self, name)
            if heads < 1 or self.hidden % heads:
                raise ValueError(f"{name}: expected a divisor of hidden={self.hidden}, got {heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {self.dropout}")
        if (self.n_speakers is not None and self.n_speakers < 1) or (self.n_classes is not None and self.n_classes < 2):
            raise ValueError(f"expected n_speakers >= 1 and n_classes >= 2, got {self.n_speakers} and {self.n_classes}")

    @property
    def is_resolved(self) -> bool:
        """Whether every size the data would otherwise give is set (what :class:`MCEF` needs)."""
        return None not in (self.modalities, self.input_dims, self.n_speakers, self.n_classes)

    @classmethod
    def paper(cls, **overrides) -> "MCEFConfig":
        """The published configuration (IEMOCAP dims 1024/1582/342, H=512, 8 heads, 4 self heads,
        dropout 0.5, 2 speakers, 6 classes), with ``overrides`` applied."""
        values = dict(modalities=MODALITIES, input_dims=(1024, 1582, 342), n_speakers=2, n_classes=6)
        return cls(**{**values, **overrides})

    def for_dataset(self, dataset) -> "MCEFConfig":
        """This config with every unset size taken from ``dataset`` (a :class:`mcef.data.dataset.DialogueDataset`);
        a size that is set must agree with the dataset, else a ValueError says which and why."""
        modalities = self.modalities or dataset.modalities
        missing = [m for m in modalities if m not in dataset.dims]
        if missing:
            raise ValueError(f"modalities: {list(modalities)} asked for, but dataset {dataset.name!r} "
                             f"({dataset.source}) has only {list(dataset.modalities)}")
        dims = tuple(dataset.dims[m] for m in modalities)
        checks = (("input_dims", self.input_dims, dims), ("n_classes", self.n_classes, dataset.n_classes))
        for name, wanted, actual in checks:
            if wanted is not None and wanted != actual:
                raise ValueError(f"{name}: the config says {wanted}, dataset {dataset.name!r} has {actual}")
        if self.n_speakers is not None and self.n_speakers < dataset.n_speakers:
            raise ValueError(f"n_speakers: the config says {self.n_speakers}, dataset {dataset.name!r} has "
                             f"{dataset.n_speakers}")
        return replace(self, modalities=tuple(modalities), input_dims=dims,
                       n_speakers=self.n_speakers or dataset.n_speakers, n_classes=dataset.n_classes)

    @classmethod
    def from_dataset(cls, dataset, **overrides) -> "MCEFConfig":
        """``MCEFConfig(**overrides).for_dataset(dataset)``: modalities, dims, speakers and classes from ``dataset``."""
        return cls(**overrides).for_dataset(dataset)

    @property
    def self_heads(self) -> int:
        """Heads of the self-attention blocks for this fusion variant."""
        return self.n_self_heads if self.fusion in ("equal", "late") else self.n_heads


@dataclass
class MCEFOutput:
    """What :meth:`MCEF.forward` returns; every tensor is padded like the batch (zeros at padding)."""

    representations: dict[str, Tensor]  # modality -> (B, T, H), the features Soft-HGR correlates
    logits: dict[str, Tensor]  # modality -> (B, T, C), the modality heads
    fused_logits: Tensor  # (B, T, C)
    mask: Tensor  # (B, T) bool, the batch's mask
    attention: dict[str, Tensor] | None = None  # "target<-source" -> (B, heads, T, T), on request
    gates: Tensor | None = None  # (B, T, M, H) softmax weights of the gated fusion, on request ("equal"/"sdt")


class StackedLinear(nn.Module):
    """``G`` independent linear layers applied to ``G`` stacked inputs with one batched matmul."""

    def __init__(self, groups: int, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)  # nn.Linear's default initialisation
        self.weight = nn.Parameter(torch.empty(groups, in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(groups, out_features).uniform_(-bound, bound)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        """(G, N, in) -> (G, N, out)."""
        if self.bias is None:
            return torch.bmm(x, self.weight)
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight)


class StackedLayerNorm(nn.Module):
    """``G`` LayerNorms with their own affine parameters over stacked inputs (G, N, H)."""

    def __init__(self, groups: int, hidden: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(groups, hidden))
        self.bias = nn.Parameter(torch.zeros(groups, hidden))

    def forward(self, x: Tensor) -> Tensor:
        normed = F.layer_norm(x, x.shape[-1:], eps=LAYER_NORM_EPS)
        return torch.addcmul(self.bias.unsqueeze(1), normed, self.weight.unsqueeze(1))


class Layout:
    """Moves per-utterance rows between the packed (N, D) form and the padded (B, T, D) grid.

    ``packed=False`` keeps every padded position as a row (N = B * T), the reference's computation.
    """

    def __init__(self, mask: Tensor, packed: bool):
        self.mask = mask
        self.batch_size, self.length = mask.shape
        self.index = mask.reshape(-1).nonzero().squeeze(1) if packed else None
        # Keys are the valid utterances; a padded query attends to itself only, so that a fully padded
        # dialogue has no all-masked softmax row (NaN); its output is discarded anyway.
        eye = torch.eye(self.length, dtype=torch.bool, device=mask.device)
        self.allowed = (mask[:, None, :] | (eye & ~mask[:, :, None])).unsqueeze(1)  # (B, 1, T, T)

    @cached_property
    def attention_bias(self) -> Tensor:
        """(B, 1, T, T) additive mask: 0 where attention is allowed, -inf elsewhere."""
        return torch.zeros(self.allowed.shape, device=self.mask.device).masked_fill_(~self.allowed, float("-inf"))

    def rows(self, grid: Tensor) -> Tensor:
        """(..., B, T, D) -> (..., N, D)."""
        flat = grid.reshape(*grid.shape[:-3], self.batch_size * self.length, grid.shape[-1])
        return flat if self.index is None else flat.index_select(-2, self.index)

    def grid(self, rows: Tensor) -> Tensor:
        """(..., N, D) -> (..., B, T, D); padded positions hold zeros in packed mode."""
        lead, width = rows.shape[:-2], rows.shape[-1]
        if self.index is not None:
            full = rows.new_zeros(*lead, self.batch_size * self.length, width)
            rows = full.index_copy(-2, self.index, rows)
        return rows.reshape(*lead, self.batch_size, self.length, width)

    def output(self, rows: Tensor) -> Tensor:
        """(N, D) -> (B, T, D) float32 with zeros at padding in both modes."""
        grid = self.grid(rows.float())
        return grid if self.index is not None else grid.masked_fill(~self.mask.unsqueeze(-1), 0.0)


class AttentionBlocks(nn.Module):
    """``G`` one-layer transformer encoder blocks (same head count) run together on stacked streams."""

    def __init__(self, groups: int, hidden: int, heads: int, dropout: float, pre_norm: bool, activation: str):
        super().__init__()
        self.approximate = ACTIVATIONS[activation]  # F.gelu's name of the form
        self.hidden, self.heads, self.dropout, self.pre_norm = hidden, heads, dropout, pre_norm
        self.input_norm = StackedLayerNorm(groups, hidden)
        self.in_proj = StackedLinear(groups, hidden, 3 * hidden)  # query | key | value
        self.out_proj = StackedLinear(groups, hidden, hidden)
        self.ff_norm = StackedLayerNorm(groups, hidden)
        self.ff_in = StackedLinear(groups, hidden, hidden)
        self.ff_out = StackedLinear(groups, hidden, hidden)

    def forward(
        self, query: Tensor, source: Tensor | None, layout: Layout, need_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """query: (G, N, H) queries and residual stream; source: (G, N, H) keys and values, None for
        self-attention. Returns (G, N, H) and, if ``need_weights``, the attention weights (G, B, heads, T, T)."""
        H = self.hidden
        q_in = self.input_norm(query) if self.pre_norm else query
        if source is None:
            qkv = layout.grid(self.in_proj(q_in))  # (G, B, T, 3H)
            q, k, v = qkv.split(H, dim=-1)
        else:
            kv_in = self.input_norm(source) if self.pre_norm else source
            w, b = self.in_proj.weight, self.in_proj.bias
            q = layout.grid(torch.baddbmm(b[:, None, :H], q_in, w[:, :, :H]))  # (G, B, T, H)
            k, v = layout.grid(torch.baddbmm(b[:, None, H:], kv_in, w[:, :, H:])).split(H, dim=-1)
        q, k, v = (self._split_heads(t) for t in (q, k, v))  # (G, B, heads, T, H/heads)
        weights = None
        if need_weights or (self.training and self.dropout > 0):
            # Explicit attention when the weights are wanted or dropped out (with the fast dropout below);
            # otherwise the fused kernel.
            scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2)  # (G, B, heads, T, T)
            weights = torch.softmax(scores + layout.attention_bias, dim=-1)
            context = dropout(weights, self.dropout, self.training) @ v
        else:
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=layout.allowed)
        G, B, heads, T, d = context.shape
        context = layout.rows(context.transpose(2, 3).reshape(G, B, T, H))  # (G, N, H)
        x = query + dropout(self.out_proj(context), self.dropout, self.training)
        inner = dropout(F.gelu(self.ff_in(self.ff_norm(x)), approximate=self.approximate), self.dropout, self.training)
        return x + dropout(self.ff_out(inner), self.dropout, self.training), (weights if need_weights else None)

    def _split_heads(self, grid: Tensor) -> Tensor:
        G, B, T, H = grid.shape
        return grid.view(G, B, T, self.heads, H // self.heads).transpose(2, 3)


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Inverted dropout, distributed like ``F.dropout`` but drawn by thresholding uniforms, which is about
    twice as fast on CPU as PyTorch's Bernoulli sampler (dropout is a sizeable share of an epoch here)."""
    if not training or p == 0.0:
        return x
    keep = (torch.rand(x.shape, device=x.device) >= p).to(x.dtype).mul_(1.0 / (1.0 - p))
    return x * keep


def sinusoidal_positions(length: int, hidden: int, device: torch.device | None = None) -> Tensor:
    """(length, hidden) sine/cosine position encodings (Vaswani et al.)."""
    position = torch.arange(length, dtype=torch.float32, device=device).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, hidden, 2, dtype=torch.float32, device=device) * (-math.log(10000.0) / hidden))
    table = torch.zeros(length, hidden, device=device)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)[:, : hidden // 2]
    return table


class MCEF(nn.Module):
    """Multimodal Correlated Equal Fusion network (and its fusion variants, see :class:`MCEFConfig`)."""

    def __init__(self, config: MCEFConfig):
        super().__init__()
        if not config.is_resolved:
            raise ValueError("MCEF: the config leaves modalities, input_dims, n_speakers or n_classes unset; build it "
                             "with MCEFConfig.paper(...) or config.for_dataset(dataset)")
        self.config = config
        H, C, M, p = config.hidden, config.n_classes, len(config.modalities), config.dropout
        self.input_proj = nn.ModuleDict(
            {m: nn.Linear(d, H, bias=False) for m, d in zip(config.modalities, config.input_dims)}
        )
        self.speaker_embedding = nn.Embedding(config.n_speakers + 1, H)
        # Cross blocks in order (target, source), target-major; gates: self blocks first, then cross blocks.
        self.pairs = [(t, s) for t in range(M) for s in range(M) if s != t] if config.fusion in ("equal", "sdt") else []
        self.register_buffer("pair_targets", torch.tensor([t for t, _ in self.pairs], dtype=torch.long), persistent=False)
        self.register_buffer("pair_sources", torch.tensor([s for _, s in self.pairs], dtype=torch.long), persistent=False)
        if config.fusion == "concat":
            self.concat_proj = nn.Linear(M * H, H)
            self.self_blocks = AttentionBlocks(1, H, config.n_heads, p, config.pre_norm, config.activation)
        else:
            self.self_blocks = AttentionBlocks(M, H, config.self_heads, p, config.pre_norm, config.activation)
            if self.pairs:
                self.cross_blocks = AttentionBlocks(len(self.pairs), H, config.n_heads, p, config.pre_norm, config.activation)
            views = 1 + (M - 1 if self.pairs else 0)
            self.view_gates = StackedLinear(M + len(self.pairs), H, H, bias=False)
            self.reduce = StackedLinear(M, views * H, H)
            # view_order[t * views + j]: index into [self outputs, cross outputs] of target t's j-th view
            self.register_buffer("view_order", torch.tensor(self._view_order(M)), persistent=False)
        if self.pairs:
            self.fusion_scorer = nn.Linear(H, H, bias=False)  # shared across modalities
        self.heads = StackedLinear(M, H, C)
        if config.fusion != "late":
            self.fused_head = nn.Linear(H, C)

    def _view_order(self, M: int) -> list[int]:
        if not self.pairs:
            return list(range(M))
        order = []
        for t in range(M):
            for s in range(M):
                order.append(t if s == t else M + self.pairs.index((t, s)))
        return order

    def forward(self, batch: Batch, return_attention: bool = False) -> MCEFOutput:
        """Run the network on a padded batch; ``return_attention`` adds attention and gate weights.
        Every returned tensor is float32, whatever ``config.precision``."""
        dtype = PRECISIONS[self.config.precision]
        with torch.autocast(batch.mask.device.type, dtype=dtype, enabled=dtype is not None):
            return self._forward(batch, return_attention)

    def _forward(self, batch: Batch, return_attention: bool) -> MCEFOutput:
        cfg = self.config
        mask = batch.mask.bool()
        layout = Layout(mask, cfg.packed)
        streams = self._input_streams(batch, layout)  # (M, N, H)
        attention = {} if return_attention else None
        if cfg.fusion == "concat":
            representations, fused_logits, gate_weights = self._early_fusion(streams, layout, attention)
        else:
            representations, fused_logits, gate_weights = self._attention_fusion(streams, layout, attention)
        head_logits = self.heads(dropout(F.relu(representations), cfg.dropout, self.training))  # (M, N, C)
        if fused_logits is None:  # late fusion
            fused_logits = head_logits.mean(0)
        names = cfg.modalities
        return MCEFOutput(
            representations={m: layout.output(r) for m, r in zip(names, representations)},
            logits={m: layout.output(lg) for m, lg in zip(names, head_logits)},
            fused_logits=layout.output(fused_logits),
            mask=mask,
            attention=attention,
            gates=None if gate_weights is None else layout.output(gate_weights.flatten(1)).unflatten(-1, gate_weights.shape[1:]),
        )

    def _early_fusion(self, streams: Tensor, layout: Layout, attention: dict | None):
        """"concat": one transformer block over the concatenated streams; the streams are the representations."""
        M, N, H = streams.shape
        joint = self.concat_proj(streams.permute(1, 0, 2).reshape(N, M * H)).unsqueeze(0)  # (1, N, H)
        fused, weights = self.self_blocks(dropout(joint, self.config.dropout, self.training), None, layout, attention is not None)
        if attention is not None:
            attention["fused<-fused"] = weights[0].float()
        return streams, self.fused_head(fused[0]), None

    def _attention_fusion(self, streams: Tensor, layout: Layout, attention: dict | None):
        """Self (and cross) attention blocks, gates, reduce, gated fusion. Returns the representations
        (M, N, H), the fused logits (N, C) or None for late fusion, and the fusion weights (N, M, H) or None."""
        names, p, training, need_weights = self.config.modalities, self.config.dropout, self.training, attention is not None
        # Each encoder drops out its own copy of its inputs, as the reference's encoders do.
        outputs, weights = self.self_blocks(dropout(streams, p, training), None, layout, need_weights)
        if need_weights:
            attention.update({f"{m}<-{m}": w.float() for m, w in zip(names, weights)})
        if self.pairs:
            query = dropout(streams.index_select(0, self.pair_targets), p, training)  # (P, N, H)
            source = dropout(streams.index_select(0, self.pair_sources), p, training)
            cross, weights = self.cross_blocks(query, source, layout, need_weights)
            outputs = torch.cat([outputs, cross])  # (M + P, N, H)
            if need_weights:
                attention.update({f"{names[t]}<-{names[s]}": w.float() for (t, s), w in zip(self.pairs, weights)})
        gated = outputs * torch.sigmoid(self.view_gates(outputs))
        M, N, H = streams.shape
        views = gated.index_select(0, self.view_order)  # (M * V, N, H), target-major
        views = views.view(M, -1, N, H).permute(0, 2, 1, 3).reshape(M, N, -1)  # (M, N, V * H)
        representations = self.reduce(views)  # (M, N, H)
        if self.config.fusion == "late":
            return representations, None, None
        if M == 1:
            return representations, self.fused_head(representations[0]), None
        weights = torch.softmax(self.fusion_scorer(representations), dim=0)  # (M, N, H), softmax across modalities
        fused_logits = self.fused_head((weights * representations).sum(0))
        return representations, fused_logits, (weights.permute(1, 0, 2) if need_weights else None)

    def _input_streams(self, batch: Batch, layout: Layout) -> Tensor:
        """Projected features + speaker embedding + positions, (M, N, H)."""
        cfg = self.config
        projected = []
        for m, dim in zip(cfg.modalities, cfg.input_dims):
            if m not in batch.features:
                raise KeyError(f"MCEF: the batch has no {m!r} features (it has {sorted(batch.features)}); config wants {cfg.modalities}")
            x = batch.features[m]
            if x.shape[-1] != dim or x.shape[:2] != batch.mask.shape:
                raise ValueError(
                    f"MCEF: batch.features[{m!r}] has shape {tuple(x.shape)}; expected "
                    f"{tuple(batch.mask.shape) + (dim,)} (mask shape + input dim {dim})"
                )
            projected.append(self.input_proj[m](layout.rows(x)))
        T = layout.length
        positions = sinusoidal_positions(T, cfg.hidden, batch.mask.device).expand(layout.batch_size, T, cfg.hidden)
        extra = self.speaker_embedding(layout.rows(batch.speakers.unsqueeze(-1)).squeeze(-1)) + layout.rows(positions)
        return torch.stack(projected) + extra  # (M, N, H)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not) of ``model``."""
    return sum(p.numel() for p in model.parameters())
