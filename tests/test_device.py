"""The device policy and the command line's import cost."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO

from xmhash.device import DeviceError, check_device, resolve_device, wants_gpu


def test_spellings_are_checked_without_a_gpu():
    assert str(resolve_device("cpu")) == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    assert wants_gpu("cuda:1") and not wants_gpu("auto") and not wants_gpu("cpu")
    for bad in ("banana", "gpu", "cuda:x", "", "CPU"):
        with pytest.raises(DeviceError, match=r"--device: .* is not a device; use auto, cpu"):
            check_device(bad, "--device")


def test_a_missing_cuda_device_is_named():
    import torch

    if torch.cuda.is_available():
        spec, match = f"cuda:{torch.cuda.device_count()}", "CUDA device"
    else:
        spec, match = "cuda", "CUDA is not available here; use auto or cpu"
    with pytest.raises(DeviceError, match=match):
        resolve_device(spec, "device")


def test_help_imports_neither_torch_nor_the_methods():
    code = (
        "import sys\n"
        "from xmhash.cli import main\n"
        "try:\n    main(['search', '--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in sys.modules if m == 'torch' or m.startswith('xmhash.methods'))\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"},
    ).stdout
    assert "--device" in out and "HEAVY []" in out
