"""What produced an output: code version, input digests, software and device.

:func:`provenance` is recorded in ``train.json`` and ``metrics.json`` so that a number in
a paper can be traced to the code, the inputs and the machine that produced it. It never
fails for want of a git checkout or a CUDA device, and it does not import torch when the
caller has not (the evaluation stage runs on numpy alone).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from xmhash import __version__

_REPO = Path(__file__).resolve().parents[2]


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """``"<algorithm>:<hex>"`` of the file's bytes, read in blocks (features files are large)."""
    with open(path, "rb") as fh:
        return f"{algorithm}:{hashlib.file_digest(fh, algorithm).hexdigest()}"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, timeout=10
    ).stdout.strip()


def git_commit(repo: str | os.PathLike = _REPO) -> str | None:
    """The commit of the checkout the package runs from, with ``-dirty`` when tracked files
    differ from it; ``None`` when the package is not in a git checkout (an installed
    package) or git is missing."""
    repo = Path(repo)
    if not (repo / ".git").exists():  # a directory, or a file in a git worktree
        return None
    try:
        commit = _git(repo, "rev-parse", "HEAD")
        dirty = _git(repo, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def _torch_versions() -> dict[str, str | None]:
    """torch's version and the CUDA it was built for, without importing torch."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return {"torch": torch.__version__, "cuda": torch.version.cuda}
    try:
        dist = importlib.metadata.distribution("torch")
    except importlib.metadata.PackageNotFoundError:
        return {"torch": None, "cuda": None}
    version_py = Path(str(dist.locate_file("torch/version.py")))
    cuda = None
    if version_py.is_file():
        m = re.search(r"^cuda\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", version_py.read_text(), re.M)
        cuda = m.group(1) if m else None
    return {"torch": dist.version, "cuda": cuda}


def _device_name(device: str) -> str | None:
    torch = sys.modules.get("torch")
    if not device.startswith("cuda") or torch is None or not torch.cuda.is_available():
        return platform.processor() or platform.machine() or None
    return torch.cuda.get_device_name(torch.device(device))


def provenance(
    inputs: Mapping[str, str | os.PathLike | None], device: object = "cpu"
) -> dict[str, Any]:
    """A JSON-ready record: xmhash version, git commit (``None`` outside a checkout), the
    sha256 of each named input file (``None`` entries are left out), Python, torch and
    CUDA versions, and the device (with the GPU's name on CUDA)."""
    device = str(device)
    return {
        "xmhash": __version__,
        "git_commit": git_commit(),
        "inputs": {name: file_digest(p) for name, p in inputs.items() if p is not None},
        "python": platform.python_version(),
        **_torch_versions(),
        "device": device,
        "device_name": _device_name(device),
    }
