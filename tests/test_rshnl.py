"""RSHNL's loss terms on hand-computable inputs, its baselines' losses, and on a
single-label demo with symmetric noise: the self-paced weights separate flipped from
clean items, and RSHNL keeps more mAP than the cross-entropy baseline."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from xmhash.data import noise
from xmhash.methods import get_method
from xmhash.methods.base import Items, TrainData
from xmhash.methods.rshnl import (
    best_label_mass,
    contrastive_lq,
    difficulty_floor,
    gce_loss,
    label_mass,
    lq_loss,
    self_paced,
    weight_ceiling,
)
from xmhash.train import TrainSettings, ValData, fit, validation_map


def t(x):
    return torch.tensor(x, dtype=torch.float64)


# --------------------------------------------------------------------------- loss terms


def test_lq_is_zero_at_one_mae_at_q1_and_hand_value():
    assert lq_loss(t([1.0]), 0.01).item() == pytest.approx(0.0, abs=1e-12)
    p = t([0.1, 0.5, 0.9])
    assert torch.allclose(lq_loss(p, 1.0), 1 - p)
    # q = 0.5, p = 0.25: 0.5 * (1 - 0.5) / 0.5 + 0.5 * 0.75
    assert lq_loss(t([0.25]), 0.5).item() == pytest.approx(0.875)
    # q = 0.01 is nearly cross-entropy (research/rshnl.md: p = 0.12 -> 2.09 vs 2.12)
    assert lq_loss(t([0.12]), 0.01).item() == pytest.approx(
        0.99 * (1 - 0.12**0.01) / 0.01 + 0.01 * 0.88
    )
    assert 2.0 < lq_loss(t([0.12]), 0.01).item() < -math.log(0.12)


def test_gce_hand_values():
    assert gce_loss(t([0.25]), 0.5).item() == pytest.approx(1.0)  # (1 - 0.5) / 0.5
    assert torch.allclose(gce_loss(t([0.3, 0.8]), 1.0), t([0.7, 0.2]))


def test_label_mass_is_softmax_over_cosine_logits():
    h = t([[1.0, 0.0]])
    centres = t([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    e = math.e
    z = e + 1 / e + 1
    assert label_mass(h, centres, t([[1, 0, 0]])).item() == pytest.approx(e / z)
    assert label_mass(h, centres, t([[0, 1, 1]])).item() == pytest.approx((1 / e + 1) / z)
    assert label_mass(h, centres, t([[0, 0, 0]])).item() == 0.0


def test_chl_hand_value():
    # one pair: the partner is the only other item, p = 1, loss 0
    assert contrastive_lq(t([[1.0, 0.0]]), t([[0.0, 1.0]]), 1.0, 0.01).item() == pytest.approx(0)
    # two pairs with identical image/text codes e1, e2: each anchor sees its partner
    # (dot 1) and two orthogonal items (dot 0): p = e / (e + 2) for all 4 anchors
    eye = t([[1.0, 0.0], [0.0, 1.0]])
    p = math.e / (math.e + 2)
    expected = 2 * lq_loss(t([p]), 0.01).item()
    assert contrastive_lq(eye, eye, 1.0, 0.01).item() == pytest.approx(expected)
    # temperature sharpens: tau = 0.5 -> p = e^2 / (e^2 + 2)
    p2 = math.e**2 / (math.e**2 + 2)
    assert contrastive_lq(eye, eye, 0.5, 1.0).item() == pytest.approx(2 * (1 - p2))


def test_self_paced_weights_and_regulariser():
    ell = t([1.0, 4.0, 6.0]).requires_grad_()
    w, reg = self_paced(ell, 5.0, linear=True)
    assert torch.allclose(w, t([0.8, 0.2, 0.0]))
    assert torch.allclose(reg, 5.0 * (w**2 / 2 - w))
    assert not w.requires_grad  # detached: the gradient of w * l is w
    w, reg = self_paced(ell, 5.0, linear=False)
    assert torch.allclose(w, t([1.0, 1.0, 0.0])) and torch.allclose(reg, t([-5.0, -5.0, 0.0]))


def _method(name, **kw):
    cls = get_method(name)
    params = dataclasses.replace(cls.Params(), hidden=16, **kw)
    return cls(params, bits=8, image_dim=6, text_dim=5, seed=0)


def test_rshnl_objective_combines_the_terms():
    m = _method("rshnl", alpha=0.3, lamda=2.0, gamma=5.0, tp=2)
    h = torch.nn.functional.normalize(torch.randn(4, 8, dtype=torch.float64), dim=1)
    p_img, p_txt = t([0.5, 0.1, 0.9, 0.01]), t([0.4, 0.2, 0.8, 0.02])
    ell = lq_loss(p_img, 0.01) + lq_loss(p_txt, 0.01)
    chl = contrastive_lq(h, h.flip(0), 1.0, 0.01)
    warm = m.objective(h, h.flip(0), p_img, p_txt, epoch=1)
    assert warm["loss"].item() == pytest.approx((2.0 * ell.mean() + 0.3 * chl).item())
    late = m.objective(h, h.flip(0), p_img, p_txt, epoch=2)
    w, reg = self_paced(ell, 5.0)
    assert late["loss"].item() == pytest.approx((2.0 * (w * ell + reg).mean() + 0.3 * chl).item())
    assert late["weight"].item() == pytest.approx(w.mean().item())
    off = _method("rshnl", self_paced=False, tp=0).objective(h, h, p_img, p_txt, epoch=9)
    assert off["cal"].item() == pytest.approx(ell.mean().item())


def test_baseline_objectives():
    h = torch.zeros(2, 8)
    p_img, p_txt = t([0.5, 0.25]), t([0.5, 1.0])
    ce = _method("ce_centre").objective(h, h, p_img, p_txt, 0)["loss"].item()
    assert ce == pytest.approx(-(2 * math.log(0.5) + math.log(0.25)) / 2)
    mae = _method("gce_centre", q=1.0).objective(h, h, p_img, p_txt, 0)["loss"].item()
    assert mae == pytest.approx(((0.5 + 0.5) + (0.75 + 0.0)) / 2)


def test_dcmh_pairwise_loss_hand_value():
    m = _method("dcmh_feat", gamma=2.0, eta=0.5)
    m.B = t([[1.0, -1.0], [1.0, 1.0]])
    store = t([[0.0, 0.0], [2.0, 0.0]])
    out = t([[1.0, 1.0]])  # replaces row 0
    other = t([[2.0, 0.0], [0.0, -2.0]])
    sim = t([[1.0, 0.0]])
    terms = m.pairwise_loss(out, other, store, torch.tensor([0]), sim)
    theta = [1.0, -1.0]  # 0.5 * out . other_j
    likelihood = -(theta[0] - math.log1p(math.exp(theta[0]))) + math.log1p(math.exp(theta[1]))
    quant = (1 - 1) ** 2 + (-1 - 1) ** 2
    balance = (1 + 2) ** 2 + (1 + 0) ** 2
    expected = (likelihood + 2.0 * quant + 0.5 * balance) / (2 * 1)
    assert terms["loss"].item() == pytest.approx(expected)


def test_centre_network_survives_a_save_load_round_trip(tmp_path):
    from xmhash.methods.base import load_model, save_model

    m = _method("rshnl", epochs=1, batch_size=8)
    data = TrainData(
        image=torch.randn(16, 6),
        text=torch.randn(16, 5),
        rows=np.arange(16),
        labels=torch.eye(4)[torch.arange(16) % 4],
    )
    fit(m, data, TrainSettings(device="cpu", checkpoint_minutes=0))
    save_model(tmp_path / "m.pt", m)
    back = load_model(tmp_path / "m.pt")
    assert torch.allclose(back.net.centre_codes(), m.net.centre_codes())
    assert np.array_equal(back.sample_weights(data), m.sample_weights(data))


# --------------------------------------------------------------------------- the weight bound


def test_difficulty_floor_hand_values():
    # 10 classes: p* = e / (e + 9 e^(-1/9)) = 0.2524, l >= 2 L_q(p*) = 2.72, w <= 0.092
    assert best_label_mass(10) == pytest.approx(math.e / (math.e + 9 * math.exp(-1 / 9)))
    assert best_label_mass(10) == pytest.approx(0.2524, abs=1e-4)
    assert difficulty_floor(10, 0.01) == pytest.approx(2.7226, abs=1e-4)
    assert weight_ceiling(10, 0.01, 3.0) == pytest.approx(0.0925, abs=1e-4)
    assert weight_ceiling(10, 0.01, 2.5) == 0.0  # gamma below the floor: every weight is 0
    assert difficulty_floor(20, 0.01) == pytest.approx(4.0006, abs=1e-4)
    # one item alone, every other centre antipodal: p = 1 / (1 + 9 e^-2) = 0.451, l = 1.582
    assert best_label_mass(10, alone=True) == pytest.approx(0.4509, abs=1e-4)
    assert difficulty_floor(10, 0.01, alone=True) == pytest.approx(1.5820, abs=1e-4)


def test_no_codes_and_centres_reach_below_the_difficulty_floor():
    """Free unit centres and one free unit code per class, optimised for the mean
    difficulty of the classes' items, end on the floor (the regular simplex), not below."""
    c, k = 10, 16
    g = torch.Generator().manual_seed(0)
    w_raw = torch.randn(c, k, generator=g, dtype=torch.float64, requires_grad=True)
    h_raw = torch.randn(c, k, generator=g, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([w_raw, h_raw], lr=0.05)
    labels = torch.eye(c, dtype=torch.float64)
    lows = []
    for _ in range(400):
        w, h = (torch.nn.functional.normalize(x, dim=1) for x in (w_raw, h_raw))
        ell = 2 * lq_loss(label_mass(h, w, labels), 0.01)
        opt.zero_grad()
        ell.mean().backward()
        opt.step()
        lows.append(ell.mean().item())
    floor = difficulty_floor(c, 0.01)
    assert min(lows) >= floor - 1e-9
    assert lows[-1] == pytest.approx(floor, abs=0.01)


def _tiny_fit(tmp_path, **kw):
    g = torch.Generator().manual_seed(0)
    n, c = 96, 10
    m = _method("rshnl", epochs=9, batch_size=32, lr=1e-3, tp=1, **kw)
    data = TrainData(
        image=torch.randn(n, 6, generator=g),
        text=torch.randn(n, 5, generator=g),
        rows=np.arange(n),
        labels=torch.eye(c)[torch.arange(n) % c],
    )
    log = tmp_path / "train_log.csv"
    summary = fit(m, data, TrainSettings(device="cpu", checkpoint_minutes=0), history_csv=log)
    return summary, log.read_text().splitlines()


def test_weights_that_die_at_a_low_gamma_are_logged_and_warned(tmp_path):
    summary, lines = _tiny_fit(tmp_path, gamma=3.0)
    header = lines[0].split(",")
    assert {"weight_nonzero", "difficulty_min", "difficulty_max"} <= set(header)
    share = [float(row.split(",")[header.index("weight_nonzero")]) for row in lines[1:]]
    assert share[0] == 1.0 and max(share[1:]) < 0.01  # warm-up: all ones; then none
    sp = summary["self_paced"]
    assert sp["switched_off"] and sp["off_epochs"] == [2, 9]
    assert sp["gamma"] == 3.0 and sp["n_classes"] == 10
    assert sp["difficulty_floor"] == pytest.approx(difficulty_floor(10, 0.01))
    lo, hi = sp["difficulty_range"]
    assert sp["difficulty_floor"] <= lo <= hi
    (warning,) = summary["warnings"]
    assert "gamma = 3" in warning and "2.72" in warning and f"{lo:.2f}-{hi:.2f}" in warning
    assert "one item alone 1.58" in warning


def test_live_weights_do_not_warn(tmp_path):
    summary, _ = _tiny_fit(tmp_path, gamma=50.0)
    assert summary["self_paced"]["switched_off"] is False
    assert min(summary["self_paced"]["nonzero_share"]) > 0.99
    assert "warnings" not in summary


# --------------------------------------------------------------------------- demo behaviour


@pytest.fixture(scope="module")
def single_label_demo():
    """A single-label demo (10 classes) with noisy features, and train/val/test rows."""
    from xmhash.data.demo import DemoSpec, generate_demo

    f = generate_demo(
        DemoSpec(
            n_items=2400,
            n_labels=10,
            min_labels=1,
            max_labels=1,
            latent_dim=32,
            image_dim=128,
            text_dim=128,
            image_noise=1.5,
            text_noise=2.0,
        )
    )
    perm = np.random.default_rng(0).permutation(len(f.labels))
    return f, perm[:1200], perm[1200:1500], perm[1500:1900]


def _train(demo, name, rate, **kw):
    f, tr, va, te = demo
    nl = noise.make_noisy(f.labels[tr], tr, "sym", rate, seed=0)
    cls = get_method(name)
    params = dataclasses.replace(cls.Params(), epochs=20, batch_size=64, hidden=256, **kw)
    torch.manual_seed(0)
    m = cls(params, bits=32, image_dim=f.image.shape[1], text_dim=f.text.shape[1], seed=0)
    data = TrainData(
        image=torch.tensor(f.image[tr]),
        text=torch.tensor(f.text[tr]),
        rows=tr,
        labels=torch.tensor(nl.labels, dtype=torch.float32),
        clean_labels=torch.tensor(nl.clean, dtype=torch.float32),
    )
    val = ValData(Items(image=f.image[va], text=f.text[va]), f.labels[va])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared; one thread is faster under load
    try:
        m.history = fit(
            m, data, TrainSettings(device="cpu", select="val", checkpoint_minutes=0), val=val
        )["history"]
    finally:
        torch.set_num_threads(threads)
    test = ValData(Items(image=f.image[te], text=f.text[te]), f.labels[te])
    return m, data, nl, validation_map(m, test)


@pytest.mark.slow
def test_rshnl_weights_separate_flipped_from_clean_at_40_percent(single_label_demo):
    m, data, nl, _ = _train(single_label_demo, "rshnl", 0.4, gamma=4.5)
    w = m.sample_weights(data)
    assert nl.flipped.mean() == pytest.approx(0.4, abs=0.01)
    auc = noise.separation_auc(w, nl.flipped)
    assert auc > 0.8, f"AUC {auc:.3f}"
    assert w[~nl.flipped].mean() > w[nl.flipped].mean()
    # the per-epoch diagnostics (clean labels, never in the loss) agree after the warm-up
    last = m.history[-1]
    assert last["weight_clean"] > last["weight_flipped"]
    assert "weight_clean" in m.history[0]  # logged during the warm-up too (weights all 1)


@pytest.mark.slow
def test_rshnl_beats_cross_entropy_at_50_percent(single_label_demo):
    *_, rshnl = _train(single_label_demo, "rshnl", 0.5, gamma=4.5)
    *_, ce = _train(single_label_demo, "ce_centre", 0.5)
    assert rshnl > ce, f"RSHNL {rshnl:.3f} vs CE {ce:.3f}"
