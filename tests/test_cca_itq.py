"""CCA-ITQ: codes longer than the smaller feature width."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import train_data

from xmhash import bits, metrics
from xmhash.methods import get_method
from xmhash.methods.base import ConfigError, Items


def _fit(feats, n_bits: int, **params):
    cls = get_method("cca_itq")
    m = cls(
        cls.Params(**params),
        bits=n_bits,
        image_dim=feats.image.shape[1],
        text_dim=feats.text.shape[1],
        seed=0,
        device="cpu",
    )
    m.fit(train_data(feats, 400))
    return m


@pytest.mark.parametrize("n_bits", [16, 32, 64])
def test_codes_longer_than_the_text_width_are_padded(small_bow_demo, n_bits):
    f = small_bow_demo
    assert f.text.shape[1] == 10 < n_bits
    m = _fit(f, n_bits)
    rest = Items(image=f.image[400:], text=f.text[400:])
    codes = {mod: m.encode(rest, mod) for mod in ("image", "text")}
    for c in codes.values():
        assert c.shape == (200, n_bits)
        ones = (c > 0).mean(axis=0)
        assert 0.05 < ones.min() and ones.max() < 0.95  # no constant bit
    labels = f.labels[400:]
    i2t = metrics.evaluate(
        bits.pack(codes["image"]), bits.pack(codes["text"]), labels, labels, n_bits, ks=(), pn=()
    )["map@all"]
    assert i2t > metrics.expected_random_map(labels, labels) + 0.05


def test_beyond_dims_error_names_the_setting(small_bow_demo):
    with pytest.raises(ConfigError, match="beyond_dims"):
        _fit(small_bow_demo, 16, beyond_dims="error")
    with pytest.raises(ConfigError, match="beyond_dims"):
        _fit(small_bow_demo, 16, beyond_dims="cap")


def test_padded_projections_span_the_cca_space_only(small_bow_demo):
    """The extra bits are rotations of the 10 CCA directions, not new directions."""
    m = _fit(small_bow_demo, 32)
    assert torch.linalg.matrix_rank(m.net.proj_text.double()) == 10
    assert np.isfinite(m.net.proj_image.numpy()).all()
