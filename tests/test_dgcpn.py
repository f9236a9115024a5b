"""DGCPN: loss terms by hand, the whole-set similarity, half-binary updates, codes, demo."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import train_data
from test_djsrh import assert_codes_spread_on_wikipedia, batch_of, make

from xmhash.methods.base import Items, TrainData
from xmhash.methods.dgcpn import DGCPN, DGCPNParams, binary, dgcpn_terms
from xmhash.methods.joint import graph_coherence_similarity, neighbours_of


def test_loss_terms_by_hand():
    # B_I B_I^T = I, B_T B_T^T = ones, B_I B_T^T = [[1,1],[0,0]]; S off-diagonal 0.5
    # (its diagonal, 9, must be ignored by the distance terms)
    ci = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
    ct = torch.tensor([[1.0, 1.0], [3.0, 3.0]])
    s = torch.tensor([[9.0, 0.5], [0.5, 9.0]])
    t = dgcpn_terms(ci, ct, s, k_pair=1.5, dis_weight=1.0, cons_weight=1.0)
    assert t["pair"].item() == pytest.approx((0.5**2 + 1.5**2) / 2, rel=1e-5)
    assert t["distance"].item() == pytest.approx(3 * 0.5 / 4, rel=1e-5)
    # four terms, as in the official loss_cal: (IT, II), (IT, TT), (II, TT), (IT, IT^T)
    assert t["consistency"].item() == pytest.approx(4 * 2 / 4, rel=1e-5)
    assert t["loss"].item() == pytest.approx(1.25 + 0.375 + 2.0, rel=1e-5)
    t2 = dgcpn_terms(ci, ct, s, k_pair=1.5, dis_weight=2.0, cons_weight=0.0)
    assert t2["loss"].item() == pytest.approx(1.25 + 0.75, rel=1e-5)


def test_binary_has_no_zeros():
    torch.testing.assert_close(binary(torch.tensor([-0.1, 0.0, 2.0])), torch.tensor([-1.0, 1, 1]))


def _data(small_demo, n=200):
    return train_data(small_demo, n)


def test_setup_builds_the_whole_set_similarity(small_demo):
    m = make(DGCPN, DGCPNParams(hidden=8), small_demo)
    data = _data(small_demo)
    m.setup(data)
    ref = graph_coherence_similarity(
        data.image, data.text, a1=0.01, a2=0.3, neighbours=80, scale=160.0
    )
    torch.testing.assert_close(m.similarity, ref)
    idx = torch.tensor([5, 1, 7])
    torch.testing.assert_close(m.target(idx), ref[idx][:, idx])


def test_half_binary_updates_touch_one_network_each(small_demo):
    m = make(DGCPN, DGCPNParams(hidden=16, dropout=0.0), small_demo)
    m.setup(_data(small_demo))
    batch = batch_of(small_demo, 32)
    m.net.train()
    m.update(m.loss(batch, 0)["loss"])  # momentum buffers for both networks
    before = {k: v.clone() for k, v in m.net.state_dict().items()}
    code_i = torch.tanh(m.project(batch.image, "image"))
    fixed_t = binary(m.project(batch.text, "text").detach())
    m.update(m._terms(code_i, fixed_t, m.target(batch.idx))["loss"])
    after = m.net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("text."))
    assert not all(torch.equal(before[k], after[k]) for k in before if k.startswith("image."))


def test_a_few_steps_reduce_the_loss(small_demo):
    m = make(DGCPN, DGCPNParams(hidden=64, dropout=0.0), small_demo)
    m.setup(_data(small_demo))
    batch = batch_of(small_demo)
    m.net.train()
    steps = [m.train_step(batch, epoch=0) for _ in range(10)]
    assert {"loss", "pair", "distance", "consistency", "loss_image_step", "loss_text_step"} <= set(
        steps[0]
    )
    assert steps[-1]["loss"] < 0.9 * steps[0]["loss"], [s["loss"] for s in steps]


def test_encode_gives_pm1_codes_for_both_modalities(small_demo):
    m = make(DGCPN, DGCPNParams(hidden=32), small_demo, bits=12)
    items = Items(image=small_demo.image[:10], text=small_demo.text[:10])
    for modality in ("image", "text"):
        codes = m.encode(items, modality)
        assert codes.shape == (10, 12) and codes.dtype == np.int8
        assert set(np.unique(codes)) <= {-1, 1}
    # encoding is deterministic (dropout is off in eval mode)
    assert (m.encode(items, "image") == m.encode(items, "image")).all()


def test_text_output_layer_starts_from_the_official_normal_for_raw_inputs():
    torch.manual_seed(0)
    raw = DGCPNParams(hidden=2048, unit_inputs=False)
    m = DGCPN(raw, bits=64, image_dim=8, text_dim=8, seed=0)
    w_text, w_image = m.net.text[-1].weight, m.net.image[-1].weight
    assert w_text.std().item() == pytest.approx(0.3, rel=0.02)  # official TxtNet: N(0, 0.3)
    assert w_image.std().item() < 0.05  # the image network keeps PyTorch's default
    plain = DGCPN(
        DGCPNParams(hidden=2048, unit_inputs=False, text_init_std=0.0),
        bits=64,
        image_dim=8,
        text_dim=8,
    )
    assert plain.net.text[-1].weight.std().item() < 0.05
    # inputs scaled by sqrt(d) (unit_inputs) already give unit-scale outputs with PyTorch's
    # init; N(0, 0.3) on top saturated tanh for most text outputs
    scaled = DGCPN(DGCPNParams(hidden=2048), bits=64, image_dim=8, text_dim=8)
    assert scaled.net.text[-1].weight.std().item() < 0.05


def test_similarity_of_non_negative_features_is_built_centred(rng):
    # raw cosines of non-negative rows are all positive: S = 2 [...] - 1 then called most
    # pairs similar, which codes can only meet with bits shared by every item
    image = torch.tensor(rng.random((120, 12)), dtype=torch.float32)
    text = torch.tensor(rng.random((120, 6)), dtype=torch.float32)
    m = DGCPN(DGCPNParams(hidden=16), bits=8, image_dim=12, text_dim=6, seed=0)
    m.setup(TrainData(image=image, text=text, rows=np.arange(120)))
    off = ~torch.eye(120, dtype=torch.bool)
    assert m.similarity[off].mean() < 0
    centred = (image - image.mean(0), text - text.mean(0))
    k = neighbours_of(0.4, 120)
    expected = graph_coherence_similarity(*centred, a1=0.01, a2=0.3, neighbours=k, scale=2 * k)
    assert torch.allclose(m.similarity, expected, atol=1e-5)


@pytest.mark.slow
def test_no_constant_text_bits_on_real_non_negative_features(shared_dir):
    # Wikipedia's SIFT / LDA rows: a similarity from their raw (all positive) cosines and
    # saturated text outputs left 31-38 % of the text bits the same for every item
    params = DGCPNParams(hidden=1024, epochs=3)
    assert_codes_spread_on_wikipedia(DGCPN, params, shared_dir, max_constant=0.1)


def test_half_binary_steps_share_one_forward_pass(small_demo):
    # official train(): after the joint step, one forward pass of each network; the image
    # step uses those text codes made binary, the text step those image codes (taken
    # before the image step) made binary: two passes per network and batch in all
    m = make(DGCPN, DGCPNParams(hidden=16), small_demo)
    m.setup(_data(small_demo))
    calls = {"image": 0, "text": 0}
    for name in calls:
        getattr(m.net, name).register_forward_hook(
            lambda *_, name=name: calls.__setitem__(name, calls[name] + 1)
        )
    m.net.train()
    m.train_step(batch_of(small_demo, 32), epoch=0)
    assert calls == {"image": 2, "text": 2}


def test_the_last_short_batch_is_kept():
    m = DGCPN(DGCPNParams(batch_size=32), bits=16, image_dim=8, text_dim=8, seed=0)
    batches = list(m.batches(0, 70, torch.Generator().manual_seed(0)))
    assert [len(b) for b in batches] == [32, 32, 6]  # the official DataLoader keeps it
    assert sorted(torch.cat(batches).tolist()) == list(range(70))
