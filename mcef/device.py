"""Device selection: one parameter, the same code on a laptop CPU and an H100."""

from __future__ import annotations

import re

import torch

DEVICE_KEY = "train.device in the config, --device on the command line"
ACCEPTED_DEVICES = "'auto', 'cpu', 'cuda', 'cuda:N' (N a GPU index of this machine) or 'mps'"
_DEVICE_PATTERN = re.compile(r"(auto|cpu|mps|cuda)(?::(\d+))?")


class DeviceError(ValueError):
    """A device name that is malformed or names hardware this machine does not have."""


def check_device_name(device: str, key: str = DEVICE_KEY) -> str:
    """``device`` lower-cased if it is well formed (whatever this machine has), else a :class:`DeviceError`.

    Accepted: ``auto``, ``cpu``, ``mps``, ``cuda`` and ``cuda:N`` (and ``cpu:0``, ``mps:0``, how torch prints
    those devices). ``key`` names where the value came from, for the message.
    """
    name = str(device).strip().lower()
    match = _DEVICE_PATTERN.fullmatch(name)
    if match is None or (match.group(2) is not None and match.group(1) != "cuda" and int(match.group(2)) != 0) \
            or name.startswith("auto:"):
        why = "only CUDA devices take an index" if match is not None else "not a device name"
        raise DeviceError(f"{key}: {device!r}: {why}; expected {ACCEPTED_DEVICES}")
    return name


def resolve_device(device: str | torch.device = "auto", key: str = DEVICE_KEY) -> torch.device:
    """Return the torch device for ``device``.

    ``"auto"`` picks CUDA when available, then Apple MPS, then the CPU. Any other name must be one of
    :data:`ACCEPTED_DEVICES` and exist on this machine; otherwise a :class:`DeviceError` names ``key``
    (where the value came from) and what is accepted.
    """
    if isinstance(device, torch.device):
        return device
    name = check_device_name(device, key)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"{key}: device {device!r} was asked for, but CUDA is not available on this machine; "
                              "use 'auto' or 'cpu'")
        index = int(name.partition(":")[2] or 0)
        count = torch.cuda.device_count()
        if index >= count:
            raise DeviceError(f"{key}: device {device!r} was asked for, but this machine has {count} CUDA "
                              f"device(s); expected 'cuda' or 'cuda:N' with N in 0..{count - 1}")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceError(f"{key}: device {device!r} was asked for, but MPS is not available on this machine; "
                          "use 'auto' or 'cpu'")
    return torch.device(name)


def describe_device(device: torch.device) -> str:
    """A human-readable name for ``device`` (the GPU model on CUDA)."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type
