"""ENHash (a reconstruction): loss terms, memory and notebook rules, training, ablation."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO, train_data

from xmhash.methods.base import Batch, ConfigError, Items, TrainData, load_model, save_model
from xmhash.methods.enhash import (
    ENHash,
    ENHashParams,
    ErrorNotebook,
    confuser_margin_loss,
    detect_errors,
    fine_grained_triplet,
    nt_xent,
    pairwise_loss,
    quantization_loss,
    similarity_target,
    soft_cross_entropy,
)
from xmhash.methods.memory import (
    assignment_confidence,
    ema_code_prototypes,
    ema_prototypes,
    hash_centers,
    kmeanspp,
    sinkhorn,
)
from xmhash.train import TrainSettings, cross_modal_map, fit

T = torch.tensor
EYE2 = torch.eye(2)


@pytest.fixture(autouse=True)
def one_thread():
    """Train on one thread, as the train rule does: these models are small, and on a
    shared machine a second thread mostly adds synchronisation latency per operation."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------- loss terms


def test_similarity_target_by_hand():
    # orthogonal items: S0 = I, S1 = (1 - eta) I + eta I / 2
    s = similarity_target(EYE2, EYE2, None, beta=0.5, eta=0.4, mu=0.6)
    assert torch.allclose(s, T([[0.8, 0.0], [0.0, 0.8]]))
    # in different clusters: mu S1 + (1 - mu)(2QQ^T - 1)
    s = similarity_target(EYE2, EYE2, EYE2, beta=0.5, eta=0.4, mu=0.6)
    assert torch.allclose(s, T([[0.88, -0.4], [-0.4, 0.88]]))
    # beta weighs the modalities: identical images, orthogonal texts
    same = T([[1.0, 0.0], [1.0, 0.0]])
    s = similarity_target(same, EYE2, None, beta=0.25, eta=0.0, mu=1.0)
    assert torch.allclose(s, T([[1.0, 0.25], [0.25, 1.0]]))


def test_pairwise_loss_by_hand():
    assert pairwise_loss(EYE2, EYE2, EYE2).item() == pytest.approx(0.0)
    # each of the 3 products is I against a zero target: ||I||^2 / b^2 = 2 / 4
    assert pairwise_loss(EYE2, EYE2, torch.zeros(2, 2)).item() == pytest.approx(1.5)
    # W = w w^T = [[4, 2], [2, 1]]: (16 + 1) / 4 per product
    loss = pairwise_loss(EYE2, EYE2, torch.zeros(2, 2), weight=T([2.0, 1.0]))
    assert loss.item() == pytest.approx(3 * 17 / 4)
    # scale-free: codes are compared by cosine
    assert pairwise_loss(3 * EYE2, 0.5 * EYE2, EYE2).item() == pytest.approx(0.0, abs=1e-6)


def test_nt_xent_by_hand():
    # views e1, e2, e1, e2: each row sees its positive at cosine 1 and two negatives at 0
    expected = math.log(2 + math.e) - 1
    assert nt_xent(EYE2, EYE2, 1.0).item() == pytest.approx(expected)
    # temperature divides the cosines
    expected = math.log(2 + math.exp(2)) - 2
    assert nt_xent(EYE2, EYE2, 0.5).item() == pytest.approx(expected)


def test_quantization_loss_by_hand():
    h = T([[0.5, -1.0]])
    assert quantization_loss(h).item() == pytest.approx(0.125)
    assert quantization_loss(h, T([[0.0, 1.0]])).item() == pytest.approx(0.125 + 0.5)


def test_soft_cross_entropy_by_hand():
    q = T([[0.7, 0.1, 0.1, 0.1]])
    assert soft_cross_entropy(torch.zeros(1, 4), q).item() == pytest.approx(math.log(4))
    logits = T([[2.0, 0.0]])
    expected = -(0.5 * (2 - math.log(math.exp(2) + 1)) + 0.5 * (0 - math.log(math.exp(2) + 1)))
    assert soft_cross_entropy(logits, T([[0.5, 0.5]])).item() == pytest.approx(expected)


def test_confuser_margin_loss_by_hand():
    logits = torch.zeros(1, 3)
    m = 0.2 / 0.2  # margin / tau_h
    target = T([0])
    loss = confuser_margin_loss(logits, target, T([1]), m)
    assert loss.item() == pytest.approx(math.log(2 + math.exp(m)))
    # no confuser, or the confuser is the target: plain cross-entropy
    assert confuser_margin_loss(logits, target, T([-1]), m).item() == pytest.approx(math.log(3))
    assert confuser_margin_loss(logits, target, T([0]), m).item() == pytest.approx(math.log(3))
    # weights scale each row
    two = confuser_margin_loss(torch.zeros(2, 3), T([0, 0]), T([1, -1]), m, T([2.0, 1.0]))
    assert two.item() == pytest.approx((2 * math.log(2 + math.exp(m)) + math.log(3)) / 2)


def test_fine_grained_triplet_by_hand():
    hv = T([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    ht = T([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    assign = T([0, 0, 1])
    args = (T([0]), T([0]), T([1]), assign)
    # v->t: positives j=0 (cos 1), j=1 (cos 0); negative j=2 (cos 0.6):
    #   hinges max(0, .3 - 1 + .6) = 0 and max(0, .3 - 0 + .6) = .9 -> mean .45
    # t->v: positives cos 1 and 0, negative cos(ht0, hv2) = 0: hinges 0, .3 -> mean .15
    assert fine_grained_triplet(hv, ht, *args, margin=0.3).item() == pytest.approx(0.6)
    # no item of the confuser cluster in the batch, or no confuser: no triplet
    assert fine_grained_triplet(hv, ht, T([0]), T([0]), T([2]), assign, 0.3).item() == 0.0
    assert fine_grained_triplet(hv, ht, T([0]), T([0]), T([-1]), assign, 0.3).item() == 0.0


def test_error_conditions_by_hand():
    codes = T([[1.0, 1, 1, 1], [1.0, 1, -1, -1]])
    hv = T([[0.9, 0.9, 0.9, 0.9], [0.9, 0.9, -0.9, -0.9]])
    ht = T([[0.9, 0.9, 0.9, 0.9], [0.9, 0.9, 0.9, 0.9]])
    assign = T([0, 0])
    kw = dict(delta=0.25, theta=0.5, eps_p=0.2)
    out = detect_errors(hv, ht, codes, assign, T([0.5, 0.5]), torch.zeros(2, 2), gate=False, **kw)
    # item 1: its image code predicts cluster 1 (E1), its modalities disagree (E2)
    assert out["e1"].tolist() == [False, True]
    assert out["e2"].tolist() == [False, True]
    assert out["e3"].tolist() == [False, False]
    assert out["error"].tolist() == [False, True]
    assert out["confuser"].tolist() == [-1, 1]
    # the gate keeps E1 for items at or above the batch-median confidence only
    conf = T([0.9, 0.1])
    gated = detect_errors(hv, ht, codes, assign, conf, torch.zeros(2, 2), gate=True, **kw)
    assert gated["e1"].tolist() == [False, False]
    # E3: equal codes but a confident dissimilar target pair
    same = hv[:1].repeat(2, 1)
    target = T([[1.0, -0.9], [-0.9, 1.0]])
    out = detect_errors(same, same, codes, assign, conf, target, gate=False, **kw)
    assert out["e3"].tolist() == [True, True] and not out["e1"].any()
    # ... not counted when the pair is not confident (|S| <= theta)
    out = detect_errors(same, same, codes, assign, conf, 0.4 * target, gate=False, **kw)
    assert not out["e3"].any()


# ----------------------------------------------------------------------------- memory


def test_sinkhorn_balances_a_skewed_batch():
    scores = T([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.2, 0.1]])
    plain = sinkhorn(scores, 0.1, 0)
    assert torch.allclose(plain, torch.softmax(scores / 0.1, 1))
    balanced = sinkhorn(scores, 0.1, 3)
    assert torch.allclose(balanced.sum(1), torch.ones(4))
    # every item prefers cluster 0; balancing moves mass towards cluster 1
    assert balanced[:, 1].sum() > plain[:, 1].sum() + 0.5
    assert abs(balanced[:, 1].sum() - 2) < abs(plain[:, 1].sum() - 2)


def test_assignment_confidence_by_hand():
    a, k = assignment_confidence(T([[0.7, 0.2, 0.1], [0.1, 0.45, 0.45]]))
    assert a.tolist()[0] == 0 and a.tolist()[1] in (1, 2)
    assert k.tolist() == pytest.approx([0.5, 0.0])


def test_ema_prototypes_by_hand():
    protos = EYE2.clone()
    z, q = T([[1.0, 0.0]]), T([[0.0, 1.0]])
    out = ema_prototypes(protos, z, q, gamma=0.9)
    assert torch.equal(out[0], protos[0])  # no mass in the batch: unchanged
    expected = T([0.1, 0.9]) / math.hypot(0.1, 0.9)
    assert torch.allclose(out[1], expected)


def test_ema_code_prototypes_by_hand():
    codes = T([[1.0, 1.0], [1.0, -1.0]])
    h = T([[0.0, 0.5], [0.0, 0.1]])  # both members of cluster 0; mean direction (0, 1)
    out = ema_code_prototypes(codes, h, T([0, 0]), gamma=0.9)
    old = T([1.0, 1.0]) / math.sqrt(2)
    new = 0.9 * old + 0.1 * T([0.0, 1.0])
    assert torch.allclose(out[0], new / new.norm())
    assert torch.equal(out[1], codes[1])  # no members: unchanged


def test_hash_centers_are_distinct_and_separated():
    g = torch.Generator().manual_seed(0)
    had = hash_centers(64, 32, g)  # Hadamard rows and their negations
    assert had.shape == (64, 32) and set(had.unique().tolist()) == {-1.0, 1.0}
    dist = (had[:, None, :] != had[None, :, :]).sum(-1) + 32 * torch.eye(64, dtype=torch.long)
    assert dist.min() == 16
    rnd = hash_centers(64, 16, g)  # more centres than 2 * bits: random, greedy
    dist = (rnd[:, None, :] != rnd[None, :, :]).sum(-1) + 16 * torch.eye(64, dtype=torch.long)
    assert dist.min() >= 4
    with pytest.raises(ValueError, match="distinct codes"):
        hash_centers(5, 2, g)


def test_kmeanspp_seeds_every_separated_group():
    rng = np.random.default_rng(0)
    centres = np.array([[10.0, 0], [0, 10.0], [-10.0, -10.0]])
    x = torch.tensor(np.concatenate([c + 0.1 * rng.standard_normal((20, 2)) for c in centres]))
    seeds = kmeanspp(x, 3, torch.Generator().manual_seed(1))
    groups = {int(np.argmin(((centres - s.numpy()) ** 2).sum(1))) for s in seeds}
    assert groups == {0, 1, 2}
    again = kmeanspp(x, 3, torch.Generator().manual_seed(1))
    assert torch.equal(seeds, again)
    with pytest.raises(ValueError, match="k=61"):
        kmeanspp(x, 61, torch.Generator())


# ----------------------------------------------------------------------------- notebook


def test_notebook_records_decays_and_erases():
    nb = ErrorNotebook()
    nb.resize(4)
    rec = dict(decay=0.9, erase_below=0.05)
    nb.record(T([0, 1]), T([True, False]), T([2, 3]), T([1, -1]), epoch=5, **rec)
    assert nb.score.tolist() == pytest.approx([0.1, 0.0, 0.0, 0.0])
    assert nb.target.tolist() == [2, -1, -1, -1]
    assert nb.confuser.tolist() == [1, -1, -1, -1]
    assert nb.last_epoch.tolist() == [5, -1, -1, -1]
    assert nb.entries().tolist() == [0]
    # answered correctly again and again: 0.1 * 0.9^k falls below 0.05 at k = 7
    for _ in range(6):
        nb.record(T([0]), T([False]), T([0]), T([-1]), epoch=6, **rec)
    assert nb.entries().tolist() == [0] and nb.target[0] == 2 and nb.last_epoch[0] == 5
    nb.record(T([0]), T([False]), T([0]), T([-1]), epoch=7, **rec)
    assert nb.entries().tolist() == [] and nb.score[0] == 0 and nb.confuser[0] == -1
    # a new error overwrites the record
    nb.record(T([3]), T([True]), T([1]), T([0]), epoch=8, **rec)
    nb.record(T([3]), T([True]), T([2]), T([-1]), epoch=9, **rec)
    assert nb.score[3].item() == pytest.approx(0.19)
    assert (nb.target[3].item(), nb.confuser[3].item(), nb.last_epoch[3].item()) == (2, -1, 9)


def test_notebook_takes_its_length_from_a_state_dict():
    nb = ErrorNotebook()
    nb.resize(5)
    nb.record(T([4]), T([True]), T([1]), T([2]), epoch=0, decay=0.9, erase_below=0.05)
    back = ErrorNotebook()
    back.load_state_dict(nb.state_dict())
    assert len(back) == 5 and back.entries().tolist() == [4] and back.confuser[4] == 2


# ----------------------------------------------------------------------------- method

SMALL = dict(epochs=4, batch_size=64, hidden=64, clusters=8, warmup_epochs=1)


def _data(feats, rows) -> TrainData:
    return train_data(feats, rows)


def _method(seed=0, bits=16, dims=(64, 64), **kw) -> ENHash:
    torch.manual_seed(seed)
    params = ENHashParams(**{**SMALL, **kw})
    return ENHash(params, bits=bits, image_dim=dims[0], text_dim=dims[1], seed=seed)


def _train(small_demo, n=400, **kw) -> ENHash:
    m = _method(**kw)
    fit(m, _data(small_demo, np.arange(n)), TrainSettings(device="cpu", checkpoint_minutes=0))
    return m


def _items(feats, lo=450, hi=550) -> Items:
    return Items(image=feats.image[lo:hi], text=feats.text[lo:hi])


def test_switches_nest():
    assert not _method(memory=False, notebook=True).use_notebook
    m = _method(notebook=False, error_loss=True, replay=True)
    assert m.use_memory and not (m.use_notebook or m.use_error_loss or m.use_replay)
    assert not _method(replay_fraction=0.0).use_replay
    with pytest.raises(ConfigError, match="methods.enhash.replay_fraction"):
        _method(replay_fraction=1.0)


def test_steps_reduce_the_loss_with_every_mechanism_on(small_demo):
    from xmhash.methods.base import DeepMethod

    m = _method(dropout=0.0)
    data = _data(small_demo, np.arange(200))
    m.setup(data)
    m.optimizer, m.scheduler = m.configure_optimizer(100)
    idx = torch.arange(64)
    batch = Batch(idx=idx, image=data.image[idx], text=data.text[idx])
    m._seen[:] = True
    m.on_epoch_end(0)  # seed the memory
    first = m.train_step(batch, epoch=1)  # finds errors and records them
    assert first["en"] == 0 and first["errors"] > 0 and len(m.net.notebook.entries()) > 0
    # with memory and notebook held fixed, optimiser steps reduce every trained term
    before = DeepMethod.train_step(m, batch, epoch=1)
    assert before["en"] > 0 and before["tri"] > 0 and before["proto"] > 0
    for _ in range(15):
        after = DeepMethod.train_step(m, batch, epoch=1)
    for key in ("loss", "pair", "con", "proto", "en", "tri"):
        assert after[key] < before[key], key


@pytest.mark.parametrize("dims", [(64, 64), (64, 48)])
def test_encode_gives_pm1_codes_for_both_modalities(small_demo, dims):
    m = _method(dims=dims, epochs=2)
    rows = np.arange(300)
    data = TrainData(
        image=torch.tensor(small_demo.image[rows]),
        text=torch.tensor(small_demo.text[rows, : dims[1]]),
        rows=rows,
    )
    fit(m, data, TrainSettings(device="cpu", checkpoint_minutes=0))
    items = Items(image=small_demo.image[:30], text=small_demo.text[:30, : dims[1]])
    for modality in ("image", "text"):
        codes = m.encode(items, modality)
        assert codes.shape == (30, 16) and codes.dtype == np.int8
        assert set(np.unique(codes)) <= {-1, 1}


def test_notebook_changes_the_codes(small_demo):
    full = _train(small_demo)
    assert len(full.net.notebook.entries()) > 0
    assert bool(full.net.memory.ready)
    off = _train(small_demo, notebook=False)
    assert len(off.net.notebook.entries()) == 0
    # a notebook that never starts is exactly the notebook-off run (same seed): so the
    # difference below is the notebook's doing, not a change of randomness
    late = _train(small_demo, warmup_epochs=SMALL["epochs"])
    items = _items(small_demo)
    for modality in ("image", "text"):
        assert np.array_equal(late.encode(items, modality), off.encode(items, modality))
        assert not np.array_equal(full.encode(items, modality), off.encode(items, modality))


def test_memory_changes_the_codes(small_demo):
    base = _train(small_demo, memory=False)
    assert not bool(base.net.memory.ready)
    mem = _train(small_demo, notebook=False)
    items = _items(small_demo)
    assert not np.array_equal(base.encode(items, "image"), mem.encode(items, "image"))


def test_replay_draws_notebook_items(small_demo):
    m = _train(small_demo, epochs=3)
    nb = m.net.notebook
    entries = set(nb.entries().tolist())
    assert entries
    batches = list(m.batches(2, 400, torch.Generator().manual_seed(0)))
    fresh = 64 - 16
    assert len(batches) == 400 // fresh
    for b in batches:
        assert len(set(b.tolist())) == len(b)  # no duplicates
        assert set(b[fresh:].tolist()) <= entries
    assert sum(len(b) - fresh for b in batches) > 0
    # before the notebook starts: plain batches
    assert all(len(b) == 64 for b in m.batches(0, 400, torch.Generator().manual_seed(0)))


def test_replay_reads_the_notebook_once_per_epoch(small_demo, monkeypatch):
    """Drawing a batch never copies the notebook from the device: the epoch's replay
    draws from the notebook as it stood when the epoch began."""
    m = _train(small_demo, epochs=3)
    assert len(m.net.notebook.entries()) > 0
    reads = []
    getattr_ = ErrorNotebook.__getattr__

    def counting(self, name):
        if name == "score":
            reads.append(name)
        return getattr_(self, name)

    monkeypatch.setattr(ErrorNotebook, "__getattr__", counting)
    batches = list(m.batches(2, 400, torch.Generator().manual_seed(0)))
    assert len(batches) > 1 and len(reads) == 1


class _Killed(ENHash):
    fail_at: int | None = None

    def on_epoch_end(self, epoch):
        super().on_epoch_end(epoch)
        if self.fail_at is not None and epoch == self.fail_at:
            raise KeyboardInterrupt("simulated kill")


def test_resume_restores_memory_and_notebook(small_demo, tmp_path):
    data = _data(small_demo, np.arange(300))
    settings = TrainSettings(device="cpu", checkpoint_minutes=0)
    ref = _method()
    fit(ref, data, settings)

    torch.manual_seed(0)
    killed = _Killed(ENHashParams(**SMALL), bits=16, image_dim=64, text_dim=64, seed=0)
    killed.fail_at = 2  # the notebook has entries by then
    with pytest.raises(KeyboardInterrupt):
        fit(killed, data, settings, checkpoint=tmp_path / "c.ckpt")
    assert len(killed.net.notebook.entries()) > 0

    torch.manual_seed(1)  # other initial weights: everything must come from the file
    resumed = _Killed(ENHashParams(**SMALL), bits=16, image_dim=64, text_dim=64, seed=0)
    fit(resumed, data, settings, checkpoint=tmp_path / "c.ckpt")
    assert len(resumed.net.notebook.entries()) > 0
    ref_state, res_state = ref.net.state_dict(), resumed.net.state_dict()
    assert ref_state.keys() == res_state.keys()
    for key in ref_state:
        assert torch.equal(ref_state[key], res_state[key]), key
    assert {"memory.protos", "memory.codes", "notebook.score", "notebook.confuser"} <= set(
        ref_state
    )

    save_model(tmp_path / "model.pt", ref)
    back = load_model(tmp_path / "model.pt")
    assert torch.equal(back.net.notebook.target, ref.net.notebook.target)
    assert torch.equal(back.net.memory.codes, ref.net.memory.codes)
    items = _items(small_demo)
    assert np.array_equal(back.encode(items, "text"), ref.encode(items, "text"))


def test_too_many_clusters_is_a_clear_error(small_demo):
    with pytest.raises(ConfigError, match=r"methods.enhash.clusters=100"):
        _train(small_demo, n=100, clusters=100, epochs=1)


# ----------------------------------------------------------------------------- demo


@pytest.fixture(scope="module")
def demo():
    """The demo dataset and split seed 0 exactly as config.yaml defines them."""
    from xmhash.data.demo import DemoSpec, generate_demo
    from xmhash.data.splits import make_split

    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    ds = cfg["datasets"]["demo"]
    feats = generate_demo(DemoSpec(**ds.get("demo", {})))
    split = make_split(len(feats.image), seed=0, **ds["split"])
    return feats, split, cfg


def _demo_map(method, feats, split) -> float:
    q = Items(image=feats.image[split.query], text=feats.text[split.query])
    d = Items(image=feats.image[split.database], text=feats.text[split.database])
    maps = cross_modal_map(method, q, feats.labels[split.query], d, feats.labels[split.database])
    return float(np.mean(list(maps.values())))


@pytest.mark.slow
def test_beats_lsh_and_chance_on_the_demo_at_32_bits(demo):
    from xmhash import metrics as M
    from xmhash.methods.lsh import LSH

    feats, split, cfg = demo
    rows = split.train
    data = _data(feats, rows)
    torch.manual_seed(0)
    params = ENHashParams.from_config(cfg["methods"]["enhash"], "methods.enhash")
    dim = feats.image.shape[1]
    enhash = ENHash(params, bits=32, image_dim=dim, text_dim=dim, seed=0)
    fit(enhash, data, TrainSettings(device="cpu", checkpoint_minutes=0))
    lsh = LSH(LSH.Params(), bits=32, image_dim=dim, text_dim=dim, seed=0)
    fit(lsh, data)
    chance = M.expected_random_map(feats.labels[split.query], feats.labels[split.database])
    ours, floor = _demo_map(enhash, feats, split), _demo_map(lsh, feats, split)
    assert ours > floor + 0.05, (ours, floor, chance)
    assert ours > chance + 0.1, (ours, floor, chance)


def test_config_block_is_demo_sized(demo):
    _, _, cfg = demo
    block = cfg["methods"]["enhash"]
    assert block["warmup_epochs"] < block["epochs"]  # the notebook runs in the demo
    # the paper-protocol defaults stay in the dataclass
    assert dataclasses.asdict(ENHashParams())["epochs"] == 100


def test_nt_xent_builds_its_constants_once_per_batch_size(monkeypatch):
    a, b = torch.randn(6, 4), torch.randn(6, 4)
    first = nt_xent(a, b, 0.5)
    eye = torch.eye
    built = []
    monkeypatch.setattr(torch, "eye", lambda *x, **k: built.append(x) or eye(*x, **k))
    again = nt_xent(a, b, 0.5)
    assert built == [] and torch.equal(first, again)
    # the formula the constants stand for: the diagonal out, each row's partner positive
    z = torch.nn.functional.normalize(torch.cat([a, b]), dim=1)
    sim = (z @ z.T / 0.5).masked_fill(torch.eye(12, dtype=torch.bool), float("-inf"))
    want = torch.nn.functional.cross_entropy(sim, torch.tensor([*range(6, 12), *range(6)]))
    torch.testing.assert_close(again, want)
    with torch.inference_mode():  # first built under no-grad, then used with autograd
        nt_xent(torch.randn(3, 4), torch.randn(3, 4), 0.5)
    x = torch.randn(3, 4, requires_grad=True)
    nt_xent(x, torch.randn(3, 4), 0.5).backward()
    assert x.grad is not None
