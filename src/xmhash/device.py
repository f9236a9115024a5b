"""Where computation runs: one device policy for every stage and the command line.

A device is written ``auto`` (the first CUDA device when one is visible, else the CPU),
``cpu``, ``cuda`` or ``cuda:N``. The spelling is checked without importing torch, so the
workflow and the command line can validate it cheaply; :func:`resolve_device` imports
torch only when it is called.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
_SPEC = re.compile(r"^(auto|cpu|cuda(:[0-9]+)?)$")


class DeviceError(ValueError):
    """A device that is misspelt or not present on this machine; the message says which."""


def check_device(spec: str, where: str = "device") -> str:
    """``spec`` unchanged if it is a device spelling this project accepts, else
    :class:`DeviceError` naming ``where`` (a config key or a command-line option)."""
    if not isinstance(spec, str) or not _SPEC.match(spec):
        raise DeviceError(f"{where}: {spec!r} is not a device; use {DEVICE_CHOICES}")
    return spec


def wants_gpu(spec: str) -> bool:
    """Whether a job run on ``spec`` must be given a GPU by the scheduler."""
    return check_device(spec).startswith("cuda")


def resolve_device(spec: str = "auto", where: str = "device") -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cpu``, ``cuda``, ``cuda:N`` as given,
    provided that device exists here."""
    import torch

    check_device(spec, where)
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"{where}: {spec!r} requested but CUDA is not available here; "
                f"use auto or cpu, or run on a machine with a GPU"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceError(
                f"{where}: {spec!r} requested but this machine has {count} CUDA "
                f"device(s) (cuda:0 to cuda:{count - 1})"
            )
    return device
