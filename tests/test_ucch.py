"""UCCH: loss terms on hand-computable inputs, training, codes, the demo."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import train_data

from xmhash.methods.base import Items
from xmhash.methods.ucch import (
    UCCH,
    UCCHParams,
    contrastive_logits,
    positive_first_ce,
    ranking_loss,
    update_memory,
)
from xmhash.train import TrainSettings, fit

# single-threaded: fast and deterministic on a shared machine (see conftest)
pytestmark = pytest.mark.usefixtures("one_thread")


def test_ranking_loss_orthogonal_pairs():
    # S = I: no negative within the margin, so both are lowered by the shift
    u = torch.eye(2)
    got = ranking_loss(u, u.clone(), margin=0.2, shift=0.1)
    row = -1 + math.log(math.e + math.exp(-0.1)) + 0.2
    assert got.item() == pytest.approx(2 * row, rel=1e-6)


def test_ranking_loss_keeps_negatives_within_margin():
    # every score equals the positive: all negatives are kept, none is shifted
    u = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    got = ranking_loss(u, u.clone(), margin=0.2, shift=0.5)
    assert got.item() == pytest.approx(2 * (math.log(2) + 0.2), rel=1e-6)


def test_contrastive_logits_and_ce():
    u = torch.tensor([[1.0, 0.0]])
    keys = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    logits = contrastive_logits(u, keys, torch.tensor([[0, 1, 2]]), temperature=0.5)
    a = 1 / (0.5 * math.sqrt(2))
    assert torch.allclose(logits, torch.tensor([[a, a, -a]]))
    ce = positive_first_ce(logits).item()
    assert ce == pytest.approx(-math.log(math.exp(a) / (2 * math.exp(a) + math.exp(-a))))


def test_update_memory_is_a_normalised_momentum_average():
    memory = torch.tensor([[1.0, 0.0], [0.0, -1.0]])
    u = v = torch.tensor([[0.0, 1.0]])
    update_memory(memory, torch.tensor([0]), u, v, momentum=0.5)
    s = 1 / math.sqrt(2)
    assert torch.allclose(memory, torch.tensor([[s, s], [0.0, -1.0]]))
    update_memory(memory, torch.tensor([1]), u, v, momentum=0.0)  # warm-up: overwrite
    assert torch.allclose(memory[1], torch.tensor([0.0, 1.0]))


def _data(demo, n=400):
    return train_data(demo, n)


def test_training_reduces_the_loss_and_fills_the_memory(small_demo):
    m = UCCH(
        UCCHParams(epochs=6, batch_size=50, hidden=64, warmup_epochs=0, negatives=64, lr=1e-3),
        bits=16,
        image_dim=64,
        text_dim=64,
        seed=0,
    )
    summary = fit(m, _data(small_demo), TrainSettings(device="cpu", checkpoint_minutes=0))
    losses = [h["loss"] for h in summary["history"]]
    assert losses[-1] < losses[0]
    assert {"contrast_image", "contrast_text", "ranking"} <= set(summary["history"][0])
    memory = m.net.bank.memory
    assert memory.shape == (400, 16)
    assert torch.allclose(memory.norm(dim=1), torch.ones(400), atol=1e-5)


def test_codes_are_pm1_for_both_modalities(small_demo, tmp_path):
    m = UCCH(
        UCCHParams(epochs=1, batch_size=50, hidden=32), bits=24, image_dim=64, text_dim=64, seed=0
    )
    fit(m, _data(small_demo, 200), TrainSettings(device="cpu", checkpoint_minutes=0))
    items = Items(image=small_demo.image[:30], text=small_demo.text[:30])
    for modality in ("image", "text"):
        codes = m.encode(items, modality)
        assert codes.shape == (30, 24) and set(np.unique(codes)) <= {-1, 1}


class _Killed(UCCH):
    fail_at: int | None = 1

    def on_epoch_end(self, epoch):
        if epoch == self.fail_at:
            raise KeyboardInterrupt("simulated kill")


def test_resume_restores_the_memory_bank(small_demo, tmp_path):
    p = UCCHParams(epochs=3, batch_size=50, hidden=32, negatives=32)
    data = _data(small_demo, 200)
    torch.manual_seed(0)
    ref = UCCH(p, bits=16, image_dim=64, text_dim=64, seed=0)
    fit(ref, data, TrainSettings(device="cpu", checkpoint_minutes=0))
    torch.manual_seed(0)
    killed = _Killed(p, bits=16, image_dim=64, text_dim=64, seed=0)
    every_epoch = TrainSettings(device="cpu", checkpoint_minutes=0)
    with pytest.raises(KeyboardInterrupt):
        fit(killed, data, every_epoch, checkpoint=tmp_path / "c.ckpt")
    torch.manual_seed(1)  # other initial weights: everything must come from the file
    resumed = _Killed(p, bits=16, image_dim=64, text_dim=64, seed=0)
    resumed.fail_at = None
    summary = fit(resumed, data, every_epoch, checkpoint=tmp_path / "c.ckpt")
    assert len(summary["history"]) == 3
    for key, value in ref.net.state_dict().items():
        assert torch.allclose(value, resumed.net.state_dict()[key], atol=1e-6), key


def test_image_codes_do_not_collapse_on_small_histograms(small_histogram_demo):
    """L1-normalised histograms (row norm ~0.1): unscaled, the image MLP's biases outweigh
    the items and training ends with a handful of image codes, most bits constant."""
    p = UCCHParams(epochs=10, batch_size=64, hidden=64, negatives=256, lr=1e-3)
    torch.manual_seed(0)
    m = UCCH(p, bits=16, image_dim=128, text_dim=10, seed=0)
    fit(m, _data(small_histogram_demo), TrainSettings(device="cpu", checkpoint_minutes=0))
    codes = m.encode(Items(image=small_histogram_demo.image[:400]), "image")
    ones = (codes > 0).mean(0)
    assert len(np.unique(codes, axis=0)) > 100  # unscaled: 4
    assert np.mean((ones == 0) | (ones == 1)) < 0.25  # unscaled: 0.81
