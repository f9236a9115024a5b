"""Reading community ``.mat`` files: MATLAB v5 (scipy) and v7.3 (HDF5, h5py).

v7.3 arrays come back transposed (MATLAB is column-major); :func:`load_mat` returns
them in MATLAB's orientation, like scipy does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from xmhash.data.datasets.base import DatasetError, require


def load_mat(path: Path) -> dict[str, Any]:
    require(path, "a .mat file")
    import h5py
    import scipy.io

    if h5py.is_hdf5(path):  # v7.3
        with h5py.File(path, "r") as f:
            return {k: np.asarray(f[k][()]).T for k in f.keys() if isinstance(f[k], h5py.Dataset)}
    try:
        return {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    except Exception as e:  # scipy raises many kinds on a damaged file
        raise DatasetError(f"{path}: not a readable .mat file ({e})") from None


def take(
    mat: dict[str, Any], path: Path | str, key: str, *, rows: int | None = None, ndim: int = 2
) -> np.ndarray:
    """``mat[key]`` as a float array of ``ndim`` dims (and ``rows`` rows if given);
    errors name ``path`` (the user's file)."""
    if key not in mat:
        raise DatasetError(f"{path}: key {key!r} missing (keys: {sorted(mat)})")
    arr = np.asarray(mat[key])
    if ndim == 1:
        arr = arr.reshape(-1)
    if arr.ndim != ndim or (rows is not None and arr.shape[0] != rows):
        want = f"({rows if rows is not None else 'N'}{', D' if ndim == 2 else ''})"
        raise DatasetError(f"{path}: {key} has shape {arr.shape}, expected {want}")
    return arr


def class_ids_to_multihot(ids: np.ndarray, path: Path, key: str) -> np.ndarray:
    """1-based (or 0-based) class ids, or an (N, C) 0/1 matrix, as (N, C) uint8."""
    ids = np.asarray(ids)
    if ids.ndim == 2 and ids.shape[1] > 1:
        return (ids > 0).astype(np.uint8)
    ids = ids.reshape(-1).astype(np.int64)
    base = 1 if ids.min() >= 1 else 0
    if ids.min() < 0:
        raise DatasetError(f"{path}: {key} has negative class ids")
    y = np.zeros((len(ids), int(ids.max()) - base + 1), np.uint8)
    y[np.arange(len(ids)), ids - base] = 1
    return y
