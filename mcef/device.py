"""Device selection: one parameter, the same code on a laptop CPU and an H100."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Return the torch device for ``device``.

    ``"auto"`` picks CUDA when available, then Apple MPS, then the CPU. Any other string is
    passed to :class:`torch.device` after checking that the backend exists here.
    """
    if isinstance(device, torch.device):
        return device
    name = str(device).lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for, but CUDA is not available on this machine; use 'auto' or 'cpu'")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {device!r} was asked for, but MPS is not available on this machine; use 'auto' or 'cpu'")
    return torch.device(name)


def describe_device(device: torch.device) -> str:
    """A human-readable name for ``device`` (the GPU model on CUDA)."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type
