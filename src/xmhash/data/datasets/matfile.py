"""Reading community ``.mat`` files: MATLAB v5 (scipy) and v7.3 (HDF5, h5py).

v7.3 arrays come back transposed (MATLAB is column-major); :func:`load_mat` returns
them in MATLAB's orientation, like scipy does. A MATLAB struct is read whole: a v5
struct as scipy's record array, a v7.3 one (an HDF5 group) as a dict. Arrays are named by
field paths (:func:`field`): ``XAll`` at the top level, ``data.X1`` the field ``X1`` of the
struct ``data``, ``data.split.ind_train`` one level further down. An array stored one
column per item (D x N, as MATLAB code often keeps features) is read with
``layout="columns"`` (:data:`LAYOUTS`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from xmhash.data.datasets.base import DatasetError, option, require, setting

# how a 2-D array holds its items: one per row (N x D) or one per column (D x N)
LAYOUTS = ("rows", "columns")


def declared_layout(options: dict[str, Any], key: str) -> dict[str, str]:
    """The :func:`take` arguments of the layout a dataset option ``key`` declares."""
    return {"layout": option(options, key, "rows"), "layout_setting": setting(options, key)}


def load_mat(path: Path) -> dict[str, Any]:
    require(path, "a .mat file")
    import h5py
    import scipy.io

    if h5py.is_hdf5(path):  # v7.3
        with h5py.File(path, "r") as f:
            return _group(f)
    try:
        return {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    except Exception as e:  # scipy raises many kinds on a damaged file
        raise DatasetError(f"{path}: not a readable .mat file ({e})") from None


def _group(group: Any) -> dict[str, Any]:
    """A v7.3 file or struct (HDF5 group): arrays in MATLAB's orientation, structs as
    dicts; MATLAB's own bookkeeping (``#refs#``, ``#subsystem#``) left out."""
    import h5py

    out = {}
    for k, v in group.items():
        if k.startswith("#"):
            continue
        out[k] = _group(v) if isinstance(v, h5py.Group) else np.asarray(v[()]).T
    return out


def _fields(value: Any) -> list[str] | None:
    """The field names of a MATLAB struct (None for anything else)."""
    if isinstance(value, dict):
        return list(value)
    if isinstance(value, np.ndarray) and value.dtype.names:
        return list(value.dtype.names)
    return None


def _describe(value: Any) -> str:
    fields = _fields(value)
    if fields is not None:
        return f"a MATLAB struct (fields {', '.join(fields)})"
    return f"an array of shape {np.shape(value)}"


def field(mat: dict[str, Any], path: Path | str, key: str) -> Any:
    """The value at the field path ``key`` (``XAll``, ``data.X1``, ...); errors name
    ``path`` (the user's file), the key and what is there instead."""
    parts = key.split(".")
    if parts[0] not in mat:
        hint = [f"{k}.{parts[0]}" for k, v in mat.items() if parts[0] in (_fields(v) or ())]
        raise DatasetError(
            f"{path}: key {parts[0] if len(parts) == 1 else key!r} missing (keys: {sorted(mat)})"
            + (
                f"; the struct {hint[0].split('.')[0]} has a field {parts[0]}: write {hint[0]}"
                if hint and len(parts) == 1
                else ""
            )
        )
    value = mat[parts[0]]
    for i, name in enumerate(parts[1:], 1):
        here = ".".join(parts[:i])
        fields = _fields(value)
        if fields is None:
            raise DatasetError(
                f"{path}: {here} is not a struct ({_describe(value)}), so it has no field {name!r}"
            )
        if name not in fields:
            raise DatasetError(
                f"{path}: key {key!r} missing (fields of {here}: {', '.join(fields)})"
            )
        if isinstance(value, dict):
            value = value[name]
        elif value.size != 1:
            raise DatasetError(
                f"{path}: {here} is a struct array of shape {value.shape}, expected one struct"
            )
        else:
            value = value.reshape(-1)[0][name]
    return value


def take(
    mat: dict[str, Any],
    path: Path | str,
    key: str,
    *,
    rows: int | None = None,
    ndim: int | None = 2,
    layout: str = "rows",
    layout_setting: str = "",
) -> np.ndarray:
    """The numeric array at the field path ``key``, items along the first axis (a
    ``columns`` layout is transposed), of ``ndim`` dims (any if None) and ``rows`` rows if
    given; errors name ``path`` (the user's file), the key and what was expected, and
    ``layout_setting`` (the config key of the layout) where the array looks transposed."""
    value = field(mat, path, key)
    arr = np.asarray(value)
    fields = _fields(value)
    if fields is not None:
        raise DatasetError(
            f"{path}: {key} is {_describe(value)}, expected an array: name one of its "
            f"fields, e.g. {key}.{fields[0] if fields else 'X'}"
        )
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise DatasetError(
            f"{path}: {key} holds {arr.dtype} values (a cell array or text?), expected a "
            "numeric array"
        )
    if layout not in LAYOUTS:
        raise DatasetError(
            f"config.yaml: {layout_setting} {layout!r}, expected one of {list(LAYOUTS)}"
        )
    if layout == "columns" and arr.ndim == 2:
        arr = arr.T
    if ndim == 1:
        arr = arr.reshape(-1)
    if (ndim is not None and arr.ndim != ndim) or (rows is not None and arr.shape[0] != rows):
        want = f"({rows if rows is not None else 'N'}{', D' if ndim == 2 else ''})"
        flipped = arr.ndim == 2 and rows is not None and arr.shape[1] == rows
        raise DatasetError(
            f"{path}: {key} has shape {arr.shape}, expected {want}"
            + (transposed_hint(layout, layout_setting) if flipped else "")
        )
    return arr


def transposed_hint(layout: str, layout_setting: str) -> str:
    """What to set when an array looks transposed (one item per column)."""
    other = "rows" if layout == "columns" else "columns"
    where = f"set {layout_setting}: {other}" if layout_setting else "save it as (N, D)"
    return f"; it looks transposed (one item per {'row' if other == 'rows' else 'column'}): {where}"


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
