"""A fixture that counts the tensor operations which make the host wait for the device.

On CUDA, ``.item()``, ``float(t)``, ``bool(t)`` (an ``if`` on a tensor), ``.cpu()``,
``.tolist()``, ``torch.nonzero`` and boolean-mask indexing block until the device has
caught up. The fixture counts them when xmhash code calls them (torch's own internal
uses, such as the CPU step counters of Adam, are not counted), so a test on CPU can show
that a training step never makes the host wait.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field

import pytest
import torch

METHODS = ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__")


@dataclass
class HostSyncs:
    calls: list[str] = field(default_factory=list)
    active: bool = True

    def record(self, what: str) -> None:
        if not self.active:
            return
        frame = sys._getframe(2)
        name = frame.f_code.co_filename
        if "xmhash" in name:
            self.calls.append(f"{what} at {name}:{frame.f_lineno}")

    @contextlib.contextmanager
    def watching(self):
        """Count inside the ``with`` block (for tests that set ``active = False``)."""
        before, self.active = self.active, True
        try:
            yield
        finally:
            self.active = before


@pytest.fixture
def host_syncs(monkeypatch) -> HostSyncs:
    syncs = HostSyncs()

    def counting(original, what):
        def wrapper(*args, **kwargs):
            syncs.record(what)
            return original(*args, **kwargs)

        return wrapper

    for name in METHODS:
        monkeypatch.setattr(torch.Tensor, name, counting(getattr(torch.Tensor, name), name))
    monkeypatch.setattr(torch, "nonzero", counting(torch.nonzero, "nonzero"))
    monkeypatch.setattr(torch.Tensor, "nonzero", counting(torch.Tensor.nonzero, "nonzero"))
    getitem = torch.Tensor.__getitem__

    def masked_getitem(self, index):
        parts = index if isinstance(index, tuple) else (index,)
        if any(isinstance(p, torch.Tensor) and p.dtype == torch.bool for p in parts):
            syncs.record("boolean-mask index")
        return getitem(self, index)

    monkeypatch.setattr(torch.Tensor, "__getitem__", masked_getitem)
    return syncs
