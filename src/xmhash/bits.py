"""Binary codes: binarisation and bit packing (pure numpy).

Binarisation is x >= 0 -> +1, else -1 (never ``sign``, whose sign(0) = 0 produces
half-integer Hamming distances). Packed codes are ``np.packbits`` of the +1 bits along
each row (big-endian), shape (N, ceil(bits/8)) uint8.
"""

from __future__ import annotations

import numpy as np


def binarize(x: np.ndarray) -> np.ndarray:
    """Real-valued outputs -> {-1, +1} int8 codes, with x >= 0 -> +1."""
    return np.where(np.asarray(x) >= 0, 1, -1).astype(np.int8)


def pack(codes: np.ndarray) -> np.ndarray:
    """±1 (or 0/1) codes of shape (N, c) -> packed bits (N, ceil(c/8)) uint8, big-endian."""
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"codes must be 2-D (N, bits), got shape {codes.shape}")
    return np.packbits(codes > 0, axis=1)


def unpack(packed: np.ndarray, bits: int) -> np.ndarray:
    """Packed bits -> ±1 int8 codes of shape (N, bits)."""
    b = np.unpackbits(np.asarray(packed, np.uint8), axis=1, count=bits)
    return (b.astype(np.int8) * 2 - 1).astype(np.int8)
