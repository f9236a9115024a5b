"""DAEH: similarity and loss terms on hand-computable inputs, training, codes, the demo."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import train_data

from xmhash.methods.base import Items
from xmhash.methods.daeh import (
    DAEH,
    DAEHParams,
    attribute_terms,
    combine_confident,
    confident_pairs,
    mirrored_gaussian_thresholds,
    pair_terms,
    renyi_mutual_information,
)
from xmhash.train import TrainSettings, fit

# single-threaded: fast and deterministic on a shared machine (see conftest)
pytestmark = pytest.mark.usefixtures("one_thread")

# ten distances in the bin [0.50, 0.51), one far left, one far right
DIST = torch.tensor([0.505] * 10 + [0.305, 0.905])


def test_mirrored_gaussians_are_centred_on_the_histogram_mode():
    mode, sl, sr = mirrored_gaussian_thresholds(DIST)
    assert mode == pytest.approx(0.5)
    assert sl == pytest.approx(0.195, rel=1e-5)  # only 0.305 is <= the mode
    assert sr == pytest.approx(math.sqrt((10 * 0.005**2 + 0.405**2) / 11), rel=1e-5)


def test_confident_pairs_are_the_gaussian_tails():
    conf = confident_pairs(DIST, alpha=0.5, beta=1.0)
    # similar: d < 0.5 - 0.0975; dissimilar: d > 0.5 + sigma_r (about 0.122)
    assert conf.tolist() == [0.0] * 10 + [1.0, -1.0]


def test_confident_pairs_combine_and_or():
    conf_i = torch.tensor([1.0, 1.0, -1.0, 0.0, 0.0])
    conf_t = torch.tensor([1.0, 0.0, 1.0, -1.0, 0.0])
    soft = torch.full((5,), 0.3)
    assert combine_confident(conf_i, conf_t, soft).tolist() == pytest.approx(
        [1.0, 0.3, -1.0, -1.0, 0.3]
    )


def test_pair_terms_on_orthogonal_codes():
    a = torch.eye(2)
    s = torch.tensor([[0.9, 0.5], [0.5, 0.9]])
    terms = pair_terms(a, a.clone(), s)
    assert terms["pair"].item() == pytest.approx(0.25)  # (1 - 1.5)^2
    assert terms["distance"].item() == pytest.approx(2 * 0.25 / 4)  # off-diagonal 0 vs 0.5
    assert terms["consistency"].item() == pytest.approx(0.0)


def test_attribute_terms_are_summed_per_item():
    t = torch.zeros(2, 3)
    got = attribute_terms(t, t + 1, torch.zeros(2, 4), torch.full((2, 4), 2.0))
    assert got.item() == pytest.approx((6 * 1 + 8 * 4) / 2)


def test_renyi_mutual_information_extremes():
    n = 6
    far = 100 * torch.eye(n)  # kernel -> I / n: entropies log n, MI = log n
    assert renyi_mutual_information(far, far).item() == pytest.approx(math.log(n), rel=1e-5)
    same = torch.ones(n, 3)  # kernel -> 1/n everywhere: entropies 0
    assert renyi_mutual_information(same, far).item() == pytest.approx(0.0, abs=1e-5)


def _data(demo, n=400):
    return train_data(demo, n)


def test_training_reduces_the_loss(small_demo):
    p = DAEHParams(epochs=4, batch_size=40, hidden=64, teacher_hidden=64)
    m = DAEH(p, bits=16, image_dim=64, text_dim=64, seed=0)
    torch.manual_seed(0)
    hist = fit(m, _data(small_demo), TrainSettings(device="cpu", checkpoint_minutes=0))["history"]
    assert hist[-1]["loss"] < hist[0]["loss"]
    assert 0.0 <= hist[0]["text_weaker"] <= 1.0


def test_codes_are_pm1_for_both_modalities(small_demo):
    m = DAEH(
        DAEHParams(epochs=1, batch_size=40, hidden=32, teacher_hidden=32),
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


def test_non_negative_text_features_yield_confidently_dissimilar_pairs(small_bow_demo):
    """10-d topic proportions: every cosine distance is <= 1, so without centring the
    text side never marks a pair dissimilar and its target follows the features' mean."""
    import torch.nn.functional as F

    from xmhash.methods.daeh import DAEH, DAEHParams

    data = train_data(small_bow_demo, 400)
    m = DAEH(DAEHParams(hidden=16, teacher_hidden=16), bits=16, image_dim=128, text_dim=10)
    m.setup(data)
    text = F.normalize(m.net.inputs(data.text, "text"), dim=1)
    conf = confident_pairs(1 - text @ text.T, alpha=2.0, beta=2.0)
    assert (conf == -1).float().mean() > 0.005
    labels = torch.as_tensor(small_bow_demo.labels[:400]).float()
    same = (labels @ labels.T) > 0
    assert (conf[~same] == -1).float().mean() > 2 * (conf[same] == -1).float().mean()


def test_students_start_apart_on_small_histograms(small_histogram_demo):
    """L1-normalised histograms have rows of norm ~0.1: unscaled, the first layer's bias
    outweighs the item and the image student starts with almost one code for every item."""
    data = train_data(small_histogram_demo, 400)
    torch.manual_seed(0)
    m = DAEH(DAEHParams(hidden=64, teacher_hidden=64), bits=16, image_dim=128, text_dim=10)
    m.setup(data)
    codes = m.encode(Items(image=small_histogram_demo.image[:400]), "image")
    assert len(np.unique(codes, axis=0)) > 10  # unscaled: 6
