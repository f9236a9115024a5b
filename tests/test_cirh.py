"""CIRH: similarity and loss terms on hand-computable inputs, training, codes, the demo."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import train_data

from xmhash.methods.base import Items
from xmhash.methods.cirh import (
    CIRH,
    CIRHParams,
    cirh_similarity,
    hash_terms,
    method_terms,
    neighbour_mix,
)
from xmhash.train import TrainSettings, fit

# single-threaded: fast and deterministic on a shared machine (see conftest)
pytestmark = pytest.mark.usefixtures("one_thread")

# three unit vectors at 0, 60 and 180 degrees: cosines 0.5 (0-1), -1 (0-2), -0.5 (1-2)
X = torch.tensor([[1.0, 0.0], [0.5, math.sqrt(3) / 2], [-1.0, 0.0]])


def test_similarity_zeroes_the_smallest_entries_of_each_row():
    s1 = cirh_similarity(X, X, a1=0.6, a2=1.0, zero_fraction=1 / 3)  # a2 = 1: S = S1
    expected = torch.tensor([[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, -0.5, 1.0]])
    assert torch.allclose(s1, expected, atol=1e-6)


def test_similarity_s2_is_a_symmetrised_sigmoid():
    s2 = cirh_similarity(X, X, a1=0.6, a2=0.0, zero_fraction=1 / 3)  # a2 = 0: S = S2
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    assert s2[0, 0].item() == pytest.approx(2 * sig(1.0), rel=1e-6)  # 2 sig(1) - 1 + 1
    assert s2[1, 2].item() == pytest.approx(sig(-0.5) - 0.5, rel=1e-6)  # (0 + 2 sig(-.5) - 1) / 2
    assert torch.allclose(s2, s2.T)


def test_neighbour_mix_uses_the_second_and_third_neighbours():
    s = torch.tensor(
        [[9.0, 1.0, 3.0, 2.0], [0.0, 9.0, 1.0, 2.0], [1.0, 2.0, 9.0, 0.0], [2.0, 1.0, 0.0, 9.0]]
    )
    x = torch.eye(4)
    mixed = neighbour_mix(x, s)
    # row 0: self 0, then 2 (3.0), 3 (2.0), 1 (1.0): 2nd NN = 3, 3rd NN = 1
    assert torch.allclose(mixed[0], torch.tensor([0.7, 0.1, 0.0, 0.2]))


def test_loss_terms_vanish_at_their_optimum():
    b = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])
    s = b @ b.T / 2  # the cosine matrix of b
    terms = hash_terms(b.clone(), b.clone(), b, s, beta=0.01)
    assert terms["hash"].item() == pytest.approx(0.0, abs=1e-6)
    x = torch.randn(2, 3)
    out = {"h": b, "h_image": b, "h_text": b, "dec_image": x, "dec_text": x}
    terms = method_terms(out, x, x, s, lambda1=10, lambda2=1)
    assert terms["method"].item() == pytest.approx(0.0, abs=1e-6)
    out["h"] = 0.5 * b  # quantisation: MSE(0.5 b, b) = 0.25
    assert method_terms(out, x, x, s, lambda1=10, lambda2=1)["quantization"].item() == (
        pytest.approx(0.25)
    )


def _data(demo, n=400):
    return train_data(demo, n)


@pytest.mark.slow
def test_training_reduces_the_loss(small_demo):
    p = CIRHParams(epochs=8, batch_size=100, width=64, image_hidden=64)
    m = CIRH(p, bits=16, image_dim=64, text_dim=64, seed=0)
    torch.manual_seed(0)
    hist = fit(m, _data(small_demo), TrainSettings(device="cpu", checkpoint_minutes=0))["history"]
    assert hist[-1]["loss"] < hist[0]["loss"]
    assert hist[-1]["method"] < hist[0]["method"] and hist[-1]["hash"] < hist[0]["hash"]


def test_codes_are_pm1_for_both_modalities(small_demo):
    m = CIRH(
        CIRHParams(epochs=1, batch_size=100, width=32, image_hidden=32),
        bits=24,
        image_dim=64,
        text_dim=64,
        seed=0,
    )
    fit(m, _data(small_demo, 200), TrainSettings(device="cpu", checkpoint_minutes=0))
    items = Items(image=small_demo.image[:30], text=small_demo.text[:30])
    for modality in ("image", "text"):
        codes = m.encode(items, modality)
        assert codes.shape == (30, 24) and set(np.unique(codes)) <= {-1, 1}
