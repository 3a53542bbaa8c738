"""One precision switch: ``model.precision`` autocasts the network once; every loss term is computed in float32.

The ops are observed below autocast (a TorchDispatchMode sees the dtypes the kernels actually get), on the CPU; the
model opens its autocast on the batch's device type, so CUDA takes the same code path.
"""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from mcef.data import DialogueLoader, make_synthetic, SyntheticConfig
from mcef.losses import LossWeights, Objective
from mcef.model import MCEF, MCEFConfig

MATMULS = {"mm", "bmm", "addmm", "baddbmm", "matmul", "linear"}


class OpDtypes(TorchDispatchMode):
    """Records (op name, dtypes of its tensor outputs) of every aten op run inside the mode."""

    def __init__(self):
        super().__init__()
        self.ops: list[tuple[str, set]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        flat = out if isinstance(out, (tuple, list)) else [out]
        self.ops.append((func.overloadpacket.__name__, {t.dtype for t in flat if isinstance(t, torch.Tensor)}))
        return out

    def matmul_dtypes(self) -> set:
        return set().union(*(d for name, d in self.ops if name in MATMULS))

    def any_bf16(self) -> bool:
        return any(torch.bfloat16 in d for _, d in self.ops)


@pytest.fixture(scope="module")
def batch_and_dataset():
    dataset = make_synthetic(SyntheticConfig(n_train=4, n_test=2, dims=(16, 12, 8), min_length=3, max_length=9))
    batch = next(iter(DialogueLoader(dataset, "train", batch_size=4, device="cpu")))
    return batch, dataset


def model_for(dataset, precision: str) -> MCEF:
    torch.manual_seed(0)
    return MCEF(MCEFConfig(hidden=16, n_heads=4, n_self_heads=2, precision=precision).for_dataset(dataset)).train()


def test_bfloat16_runs_the_blocks_matmuls_in_bf16_and_every_loss_in_float32(batch_and_dataset):
    batch, dataset = batch_and_dataset
    model, objective = model_for(dataset, "bfloat16"), Objective(LossWeights(kl=0.5))
    with OpDtypes() as forward:
        output = model(batch)
    assert forward.matmul_dtypes() == {torch.bfloat16}, forward.matmul_dtypes()
    assert output.fused_logits.dtype == torch.float32
    assert all(r.dtype == torch.float32 for r in output.representations.values())
    with OpDtypes() as loss_ops:
        terms = objective(output, batch)
    assert not loss_ops.any_bf16(), [op for op in loss_ops.ops if torch.bfloat16 in op[1]]
    assert {k: v.dtype for k, v in terms.items()} == {k: torch.float32 for k in terms}
    assert {"fused_ce", "soft_hgr", "hgr_loss", "kl", "total"} <= set(terms)


def test_float32_runs_no_op_in_bf16(batch_and_dataset):
    batch, dataset = batch_and_dataset
    model, objective = model_for(dataset, "float32"), Objective(LossWeights(kl=0.5))
    with OpDtypes() as ops:
        terms = objective(model(batch), batch)
        terms["total"].backward()
    assert not ops.any_bf16()
    assert ops.matmul_dtypes() == {torch.float32}


def test_an_outer_autocast_reaches_neither_the_network_nor_the_losses(batch_and_dataset):
    """The reference-era bug: an autocast opened around model + loss ran the losses (Soft-HGR's covariance
    included) in bf16 and was overridden inside the network. Now the model's own autocast decides."""
    batch, dataset = batch_and_dataset
    model, objective = model_for(dataset, "float32"), Objective()
    with torch.autocast("cpu", dtype=torch.bfloat16), OpDtypes() as ops:
        output = model(batch)
        forward_ops = len(ops.ops)
        terms = objective(output, batch)
    assert not any(torch.bfloat16 in d for _, d in ops.ops[:forward_ops]), "network left float32"
    assert not any(torch.bfloat16 in d for _, d in ops.ops[forward_ops:]), "a loss ran in bf16"
    assert terms["soft_hgr"].dtype == torch.float32


def test_training_has_no_second_precision_switch():
    import mcef.train
    from mcef.config import TrainConfig

    assert not hasattr(mcef.train, "autocast_for")
    assert "bf16" not in {f.name for f in __import__("dataclasses").fields(TrainConfig)}
