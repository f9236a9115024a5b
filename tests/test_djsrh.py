"""DJSRH: loss terms by hand, training reduces the loss, codes, and demo quality."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from xmhash.methods.base import Batch, Items, TrainData
from xmhash.methods.dgcpn import DGCPN, DGCPNParams
from xmhash.methods.djsrh import DJSRH, DJSRHParams, djsrh_terms, relaxed_codes, unit_scale
from xmhash.methods.jdsh import JDSH, JDSHParams
from xmhash.train import TrainSettings, fit

FAMILY = [(DJSRH, DJSRHParams), (JDSH, JDSHParams), (DGCPN, DGCPNParams)]


def wikipedia_training_set(shared_dir) -> TrainData:
    """The 2,173 training pairs of the real Wikipedia benchmark (128-d SIFT words, 10-d
    LDA topics: non-negative rows that sum to 1); skips when the data is absent."""
    path = shared_dir / "data" / "wikipedia-sift-lda" / "raw_features.mat"
    if not path.exists():
        pytest.skip(f"{path} not found")
    from scipy.io import loadmat

    mat = loadmat(path)
    image, text = (torch.tensor(mat[k], dtype=torch.float32) for k in ("I_tr", "T_tr"))
    return TrainData(image=image, text=text, rows=np.arange(len(image)))


def assert_codes_spread_on_wikipedia(method_cls, params, shared_dir, max_constant: float):
    """Train ``method_cls`` at 16 bits on the Wikipedia training pairs (CPU, seed 0); per
    modality, fewer than ``max_constant`` of the bits may be the same for every item, and
    the items take more than 5 % as many distinct codes as there are items."""
    data = wikipedia_training_set(shared_dir)
    torch.manual_seed(0)
    method = method_cls(params, bits=16, image_dim=128, text_dim=10, seed=0)
    fit(method, data, TrainSettings(device="cpu", checkpoint_minutes=1e9))
    for modality in ("image", "text"):
        codes = method.encode(Items(**{modality: getattr(data, modality).numpy()}), modality)
        ones = (codes > 0).mean(0)
        constant = float(np.mean((ones == 0) | (ones == 1)))
        distinct = len(np.unique(codes, axis=0))
        assert constant < max_constant, (modality, constant, distinct)
        assert distinct > 0.05 * len(data), (modality, constant, distinct)


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


@pytest.mark.parametrize("cls, params", FAMILY)
def test_network_inputs_are_centred_only_for_non_negative_features(cls, params, rng):
    # non-negative features (counts, topics) share one direction: centred before the
    # networks; signed features pass unchanged
    image = torch.tensor(rng.random((50, 6)), dtype=torch.float32)
    text = torch.tensor(rng.standard_normal((50, 4)), dtype=torch.float32)
    m = cls(params(hidden=16, epochs=1), bits=8, image_dim=6, text_dim=4, seed=0)
    m.setup(TrainData(image=image, text=text, rows=np.arange(50)))
    assert torch.allclose(m.net.inputs.image, image.mean(0))
    assert (m.net.inputs.text == 0).all()
    m.net.eval()
    with torch.no_grad():
        expected = m.net.image(unit_scale(image - image.mean(0)))
        assert torch.allclose(m.project(image, "image"), expected, atol=1e-6)
    never = cls(params(hidden=16, centre_inputs="never"), bits=8, image_dim=6, text_dim=4)
    never.setup(TrainData(image=image, text=text, rows=np.arange(50)))
    assert (never.net.inputs.image == 0).all()
