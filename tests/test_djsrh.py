"""DJSRH: loss terms by hand, training reduces the loss, codes, and demo quality."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from xmhash.methods.base import Batch, Items
from xmhash.methods.djsrh import DJSRH, DJSRHParams, djsrh_terms, relaxed_codes, unit_scale


def test_loss_terms_by_hand():
    # B_I = rows of [[1,1],[1,-1]]/sqrt2 -> B_I B_I^T = I; B_T all [1,1]/sqrt2 -> ones;
    # B_I B_T^T = [[1,1],[0,0]]; target S = 1.2 I
    ci = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
    ct = torch.tensor([[1.0, 1.0], [3.0, 3.0]])  # rows are normalised: scale is irrelevant
    terms = djsrh_terms(ci, ct, 1.2 * torch.eye(2), lambda1=0.1, lambda2=0.1)
    assert terms["intra_image"].item() == pytest.approx((0.04 + 0.04) / 4, rel=1e-5)
    assert terms["inter"].item() == pytest.approx((0.04 + 1 + 0 + 1.44) / 4, rel=1e-5)
    assert terms["intra_text"].item() == pytest.approx((0.04 + 1 + 1 + 0.04) / 4, rel=1e-5)
    assert terms["loss"].item() == pytest.approx(0.1 * 0.02 + 0.62 + 0.1 * 0.52, rel=1e-5)


def test_relaxation_sharpens_with_the_epoch():
    h = torch.tensor([0.5])
    assert relaxed_codes(h, 0).item() == pytest.approx(math.tanh(0.5), rel=1e-5)
    assert relaxed_codes(h, 3).item() == pytest.approx(
        math.tanh(2 * 0.5)
    )  # alpha = sqrt(4, rel=1e-5)


def test_unit_scale():
    x = torch.tensor([[3.0, 4.0, 0.0, 0.0]])
    torch.testing.assert_close(unit_scale(x), torch.tensor([[1.2, 1.6, 0.0, 0.0]]))


def make(method_cls, params, small_demo, bits=16, seed=0):
    torch.manual_seed(seed)
    m = method_cls(
        params,
        bits=bits,
        image_dim=small_demo.image.shape[1],
        text_dim=small_demo.text.shape[1],
        seed=seed,
    )
    m.optimizer, m.scheduler = m.configure_optimizer(10)
    return m


def batch_of(small_demo, n=64):
    idx = torch.arange(n)
    return Batch(
        idx=idx, image=torch.tensor(small_demo.image[:n]), text=torch.tensor(small_demo.text[:n])
    )


def test_a_few_steps_reduce_the_loss(small_demo):
    m = make(DJSRH, DJSRHParams(hidden=64), small_demo)
    batch = batch_of(small_demo)
    m.net.train()
    losses = [m.train_step(batch, epoch=0)["loss"] for _ in range(15)]
    assert losses[-1] < 0.9 * losses[0], losses
    assert set(m.train_step(batch, 0)) == {"loss", "intra_image", "inter", "intra_text"}


def test_encode_gives_pm1_codes_for_both_modalities(small_demo):
    m = make(DJSRH, DJSRHParams(hidden=32), small_demo, bits=24)
    items = Items(image=small_demo.image[:10], text=small_demo.text[:10])
    for modality in ("image", "text"):
        codes = m.encode(items, modality)
        assert codes.shape == (10, 24) and codes.dtype == np.int8
        assert set(np.unique(codes)) <= {-1, 1}


def test_optimizer_uses_the_papers_two_learning_rates(small_demo):
    m = make(DJSRH, DJSRHParams(hidden=8), small_demo)
    lrs = [g["lr"] for g in m.optimizer.param_groups]
    assert lrs == [0.001, 0.01]
    image_params = {id(p) for p in m.net.image.parameters()}
    assert {id(p) for p in m.optimizer.param_groups[0]["params"]} == image_params
