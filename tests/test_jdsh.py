"""JDSH: loss terms by hand, DSDW modes, training reduces the loss, codes, demo quality."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import train_data
from test_djsrh import assert_codes_spread_on_wikipedia, batch_of, make

from xmhash.methods.base import Items
from xmhash.methods.jdsh import JDSH, JDSHParams, jdsh_terms
from xmhash.methods.joint import dsdw_weight, jdsh_similarity


def test_loss_terms_by_hand():
    # B_I B_I^T = I, B_T B_T^T = ones, B_I B_T^T = [[1,1],[0,0]], target 1.2 I;
    # paired cosines: 1 and 0
    ci = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
    ct = torch.tensor([[1.0, 1.0], [3.0, 3.0]])
    t = jdsh_terms(ci, ct, 1.2 * torch.eye(2), intra=0.1)
    assert t["intra_image"].item() == pytest.approx(0.08 / 4, rel=1e-5)
    assert t["intra_text"].item() == pytest.approx(2.08 / 4, rel=1e-5)
    assert t["inter"].item() == pytest.approx(2 * 2.48 / 4, rel=1e-5)  # I->T and T->I
    assert t["pair_cos"].item() == pytest.approx(0.5, rel=1e-5)
    assert t["loss"].item() == pytest.approx(0.1 * (0.02 + 0.52) + 1.24 - 0.5, rel=1e-5)


def _data(small_demo, n=300):
    return train_data(small_demo, n)


def test_dsdw_modes_build_the_target(small_demo):
    data = _data(small_demo)
    image, text = data.image[:32], data.text[:32]
    raw = jdsh_similarity(image, text, alpha=0.5, beta=0.1, lamb=0.4)

    off = make(JDSH, JDSHParams(hidden=8, dsdw="none"), small_demo)
    off.setup(data)
    torch.testing.assert_close(off.target(image, text), 1.47 * raw)

    fixed = make(JDSH, JDSHParams(hidden=8, dsdw="fixed"), small_demo)
    fixed.setup(data)
    assert (fixed.thresholds.loc_left, fixed.thresholds.s_max) == (-0.49, 0.68)
    expected = 1.47 * dsdw_weight(raw, fixed.thresholds, a=2.0, b=4.0, l1=0.1, l2=0.2)
    torch.testing.assert_close(fixed.target(image, text), expected)

    fit = make(JDSH, JDSHParams(hidden=8, dsdw="fit"), small_demo)
    fit.setup(data)
    th = fit.thresholds
    assert th.loc_left == th.loc_right and th.s_min < th.loc_left < th.s_max
    assert th.scale_left > 0 and th.scale_right > 0
    # fitted to off-diagonal entries: the diagonal (alpha + beta + lamb = 1) is not the max
    assert th.s_max < 1.0
    again = make(JDSH, JDSHParams(hidden=8, dsdw="fit"), small_demo)
    again.setup(data)
    assert again.thresholds == th  # seeded: a resumed run refits the same thresholds
    assert not torch.allclose(fit.target(image, text), off.target(image, text))


def test_a_few_steps_reduce_the_loss(small_demo):
    m = make(JDSH, JDSHParams(hidden=64), small_demo)
    m.setup(_data(small_demo))
    batch = batch_of(small_demo)
    m.net.train()
    losses = [m.train_step(batch, epoch=0)["loss"] for _ in range(15)]
    assert losses[-1] < losses[0] - 0.05, losses


def test_encode_gives_pm1_codes_for_both_modalities(small_demo):
    m = make(JDSH, JDSHParams(hidden=32), small_demo, bits=20)
    items = Items(image=small_demo.image[:10], text=small_demo.text[:10])
    for modality in ("image", "text"):
        codes = m.encode(items, modality)
        assert codes.shape == (10, 20) and codes.dtype == np.int8
        assert set(np.unique(codes)) <= {-1, 1}


@pytest.mark.slow
def test_no_constant_bits_on_real_non_negative_features_at_16_bits(shared_dir):
    # Wikipedia's SIFT / LDA rows are non-negative: fed as they are, every input sits in
    # one narrow cone, each output bit starts with a common offset that the paired-code
    # term amplifies, and within an epoch half the bits were the same for every item
    params = JDSHParams(hidden=1024, epochs=3)
    assert_codes_spread_on_wikipedia(JDSH, params, shared_dir, max_constant=0.25)
