"""UCMFH: loss terms on hand-computable inputs, the fusion layer, training, codes, the demo."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import train_data
from torch import nn

from xmhash.methods.base import Batch, Items
from xmhash.methods.ucmfh import UCMFH, TokenEncoderLayer, UCMFHParams, nt_xent
from xmhash.train import TrainSettings, fit

# single-threaded: fast and deterministic on a shared machine (see conftest)
pytestmark = pytest.mark.usefixtures("one_thread")


def test_nt_xent_on_orthogonal_pairs():
    e = torch.eye(2)
    # each of the 4 rows: partner cosine 1, the two others 0; temperature 0.5 -> logits 2, 0, 0
    expected = -math.log(math.exp(2) / (math.exp(2) + 2))
    assert nt_xent(e, e.clone(), 0.5).item() == pytest.approx(expected, rel=1e-6)


def test_nt_xent_single_pair_is_zero():
    a = torch.tensor([[3.0, 4.0]])
    assert nt_xent(a, -a, 0.5).item() == pytest.approx(0.0, abs=1e-6)  # only the partner


def test_token_layer_equals_torch_encoder_layer_on_length_one_sequences():
    torch.manual_seed(0)
    d, ff = 16, 32
    ref = nn.TransformerEncoderLayer(d, nhead=4, dim_feedforward=ff, batch_first=True).eval()
    ours = TokenEncoderLayer(d, ff, 0.1).eval()
    with torch.no_grad():
        ours.value.weight.copy_(ref.self_attn.in_proj_weight[2 * d :])
        ours.value.bias.copy_(ref.self_attn.in_proj_bias[2 * d :])
        ours.out.load_state_dict(ref.self_attn.out_proj.state_dict())
        ours.ff[0].load_state_dict(ref.linear1.state_dict())
        ours.ff[3].load_state_dict(ref.linear2.state_dict())
        ours.norm1.load_state_dict(ref.norm1.state_dict())
        ours.norm2.load_state_dict(ref.norm2.state_dict())
        x = torch.randn(5, d)
        assert torch.allclose(ours(x), ref(x[:, None, :])[:, 0], atol=1e-5)


def test_hash_lr_follows_the_per_iteration_multistep():
    m = UCMFH(
        UCMFHParams(fusion_layers=1, fusion_ff=8, hidden=8, lr_milestones=(2, 4)),
        bits=8,
        image_dim=4,
        text_dim=4,
    )
    opt, sched = m.configure_optimizer(steps_per_epoch=10)
    lrs = []
    for _ in range(5):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    assert [lr[0] for lr in lrs] == [1e-4] * 5
    assert [lr[1] for lr in lrs] == pytest.approx([1e-3, 1e-3, 1.2e-3, 1.2e-3, 1.44e-3])


def _data(demo, n=400):
    return train_data(demo, n)


def test_training_reduces_the_loss(small_demo):
    p = UCMFHParams(epochs=5, batch_size=50, fusion_layers=1, fusion_ff=64, hidden=64)
    m = UCMFH(p, bits=16, image_dim=64, text_dim=64, seed=0)
    torch.manual_seed(0)
    summary = fit(m, _data(small_demo), TrainSettings(device="cpu", checkpoint_minutes=0))
    hist = summary["history"]
    assert hist[-1]["loss"] < hist[0]["loss"]
    assert hist[-1]["hash"] < hist[0]["hash"] and hist[-1]["fusion"] < hist[0]["fusion"]


def test_codes_need_only_one_modality(small_demo):
    p = UCMFHParams(epochs=1, batch_size=50, fusion_layers=1, fusion_ff=32, hidden=32)
    m = UCMFH(p, bits=24, image_dim=64, text_dim=64, seed=0)
    fit(m, _data(small_demo, 200), TrainSettings(device="cpu", checkpoint_minutes=0))
    for modality in ("image", "text"):
        items = Items(**{modality: getattr(small_demo, modality)[:30]})  # the other is absent
        codes = m.encode(items, modality)
        assert codes.shape == (30, 24) and set(np.unique(codes)) <= {-1, 1}


def test_paired_encoding_is_the_official_one_and_single_the_default(small_demo):
    """test_encoding: paired hashes an item's image from the token of its image and its
    text (the official test): its image code changes with the item's text, the single
    (default) one does not; a paired run says so in its training summary."""
    from dataclasses import replace

    assert UCMFHParams().test_encoding == "single"
    torch.manual_seed(0)
    p = UCMFHParams(epochs=3, batch_size=50, fusion_layers=1, fusion_ff=64, hidden=64)
    m = UCMFH(p, bits=16, image_dim=64, text_dim=64, seed=0)
    summary = fit(m, _data(small_demo), TrainSettings(device="cpu", checkpoint_minutes=0))
    assert summary["test_encoding"] == "single" and "warnings" not in summary
    rows = np.arange(400, 500)
    items = Items(image=small_demo.image[rows], text=small_demo.text[rows])
    swapped = Items(image=items.image, text=small_demo.text[rows[::-1]])  # other texts
    single = m.encode(items, "image")
    np.testing.assert_array_equal(m.encode(swapped, "image"), single)

    m.params = replace(m.params, test_encoding="paired")
    paired = m.encode(items, "image")
    with torch.no_grad():
        m.net.eval()
        x = {mod: torch.tensor(getattr(items, mod)) for mod in ("image", "text")}
        f_i, _ = m.fuse(m._embed(x["image"], "image"), m._embed(x["text"], "text"))
        expect = np.where(m.net.image(f_i).numpy() >= 0, 1, -1)
    np.testing.assert_array_equal(paired, expect)
    assert (paired != single).any()
    assert (m.encode(swapped, "image") != paired).any()  # the text is part of the code
    with pytest.raises(ValueError, match="paired encodes every item from its image and"):
        m.encode(Items(image=small_demo.image[:5]), "image")
    summary = fit(m, _data(small_demo, 100), TrainSettings(device="cpu", checkpoint_minutes=0))
    assert summary["test_encoding"] == "paired"
    assert "paired" in summary["warnings"][0]


def test_single_modality_codes_of_a_pair_agree(small_histogram_demo):
    """Codes are encoded from one modality (the other half of the token zero); trained on
    paired tokens alone, an image's code and its text's code agree on ~61% of the bits."""
    p = UCMFHParams(epochs=10, batch_size=64, fusion_layers=1, fusion_ff=64, hidden=64)
    torch.manual_seed(0)
    m = UCMFH(p, bits=16, image_dim=128, text_dim=10, seed=0)
    summary = fit(m, _data(small_histogram_demo), TrainSettings(device="cpu", checkpoint_minutes=0))
    items = Items(image=small_histogram_demo.image[:400], text=small_histogram_demo.text[:400])
    assert (m.encode(items, "image") == m.encode(items, "text")).mean() > 0.66
    assert {"hash_paired", "hash_single"} <= set(summary["history"][-1])


@pytest.mark.parametrize("single_hash", [True, False])
def test_single_hash_adds_the_single_modality_term_to_the_paper_loss(small_demo, single_hash):
    p = UCMFHParams(fusion_layers=1, fusion_ff=32, hidden=32, single_hash=single_hash)
    m = UCMFH(p, bits=16, image_dim=64, text_dim=64, seed=0)
    m.setup(_data(small_demo, 100))
    m.net.eval()  # no dropout: the terms can be recomputed
    x, y = torch.tensor(small_demo.image[:20]), torch.tensor(small_demo.text[:20])
    terms = m.loss(Batch(idx=torch.arange(20), image=x, text=y), epoch=0)
    ex, ey, zeros = m._embed(x, "image"), m._embed(y, "text"), torch.zeros(20, 64)
    paired = m._hash_contrast(*m.fuse(ex, ey))
    single = m._hash_contrast(m.fuse(ex, zeros)[0], m.fuse(zeros, ey)[1])
    expected = (paired + single) / 2 if single_hash else paired
    assert torch.allclose(terms["hash"], expected)
    assert torch.allclose(terms["loss"], terms["fusion"] + 0.5 * expected)
