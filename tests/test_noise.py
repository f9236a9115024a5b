"""The noise stage: realised rates, seeds, kinds, the file format, the weight AUC."""

from __future__ import annotations

import numpy as np
import pytest

from xmhash.data import noise


def one_hot(classes: np.ndarray, c: int) -> np.ndarray:
    out = np.zeros((len(classes), c), np.uint8)
    out[np.arange(len(classes)), classes] = 1
    return out


@pytest.fixture
def single(rng):
    return one_hot(rng.integers(0, 10, size=3000), 10)


@pytest.fixture
def multi(rng):
    y = (rng.random((2000, 12)) < 0.2).astype(np.uint8)
    y[y.sum(1) == 0, 0] = 1
    return y


@pytest.mark.parametrize("rate", [0.0, 0.2, 0.5, 0.8, 1.0])
def test_sym_flips_exactly_the_rate_to_other_classes(single, rate):
    nl = noise.make_noisy(single, np.arange(len(single)), "sym", rate, seed=3)
    assert nl.flipped.sum() == int(np.floor(rate * len(single)))
    assert np.array_equal(nl.flipped, nl.selected)
    assert np.all(nl.labels.sum(1) == 1)
    # unselected rows are untouched
    assert np.array_equal(nl.labels[~nl.selected], single[~nl.selected])


def test_sym_new_classes_are_uniform_over_the_others(single):
    nl = noise.make_noisy(single, np.arange(len(single)), "sym", 1.0, seed=0)
    shift = (nl.labels.argmax(1) - single.argmax(1)) % 10
    counts = np.bincount(shift, minlength=10)
    assert counts[0] == 0
    expected = len(single) / 9
    assert np.all(np.abs(counts[1:] - expected) < 5 * np.sqrt(expected))


def test_symall_may_return_the_true_class(single):
    rate = 0.8
    nl = noise.make_noisy(single, np.arange(len(single)), "symall", rate, seed=1)
    assert nl.selected.sum() == int(rate * len(single))
    assert nl.flipped.sum() < nl.selected.sum()
    assert not np.any(nl.flipped & ~nl.selected)
    expected = rate * (1 - 1 / 10)
    assert abs(nl.realised_rate - expected) < 0.03


def test_asym_follows_the_pair_map(single):
    nl = noise.make_noisy(single, np.arange(len(single)), "asym", 0.4, seed=2)
    f = nl.flipped
    assert abs(nl.realised_rate - 0.4) < 1e-3
    assert np.all(nl.labels[f].argmax(1) == (single[f].argmax(1) + 1) % 10)


def test_set_replacement_keeps_cardinality_and_changes_every_selected_set(multi):
    nl = noise.make_noisy(multi, np.arange(len(multi)), "set", 0.5, seed=4)
    assert np.array_equal(nl.labels.sum(1), multi.sum(1))
    assert np.array_equal(nl.flipped, nl.selected)
    assert nl.flipped.sum() == 1000


def test_single_label_kinds_refuse_multi_hot(multi):
    with pytest.raises(ValueError, match="single-label"):
        noise.corrupt(multi, "sym", 0.2, 0)


def test_seeds_reproduce_and_differ(single):
    a, _ = noise.corrupt(single, "sym", 0.5, 7)
    b, _ = noise.corrupt(single, "sym", 0.5, 7)
    c, _ = noise.corrupt(single, "sym", 0.5, 8)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_tags_round_trip():
    for kind in noise.KINDS:
        for rate in (0.2, 0.5, 0.8, 0.0, 1.0):
            assert noise.parse_tag(noise.tag(kind, rate)) == (kind, rate)
    with pytest.raises(ValueError):
        noise.parse_tag("flip0.2")


def test_file_round_trip_and_row_check(tmp_path, single):
    rows = np.arange(100, 100 + len(single))
    nl = noise.make_noisy(single, rows, "sym", 0.2, seed=0)
    path = tmp_path / "n.npz"
    noise.write_noise(path, nl)
    back = noise.read_noise(path)
    assert back.kind == "sym" and back.rate == 0.2 and back.seed == 0
    assert np.array_equal(back.labels, nl.labels) and np.array_equal(back.flipped, nl.flipped)
    assert np.array_equal(noise.train_labels_for(path, rows), nl.labels)
    with pytest.raises(ValueError, match="training rows"):
        noise.train_labels_for(path, rows[:-1])


def test_run_noise_on_a_single_label_demo(tmp_path):
    from xmhash.data.demo import DemoSpec, generate_demo
    from xmhash.data.splits import split_features
    from xmhash.features.store import read_labels, write_features

    feats = generate_demo(
        DemoSpec(
            n_items=400,
            n_labels=6,
            min_labels=1,
            max_labels=1,
            latent_dim=8,
            image_dim=16,
            text_dim=16,
            words_per_label=2,
            noise_words=4,
        )
    )
    write_features(tmp_path / "f.h5", feats)
    split_features(tmp_path / "f.h5", tmp_path / "s.npz", seed=0, query=50, train=200, val=30)
    nl = noise.run_noise(
        features=str(tmp_path / "f.h5"),
        split=str(tmp_path / "s.npz"),
        out=str(tmp_path / "n.npz"),
        kind="sym",
        rate=0.5,
        seed=0,
    )
    assert nl.realised_rate == 0.5
    clean = read_labels(tmp_path / "f.h5")[nl.rows]
    assert np.array_equal(nl.clean, clean)
    assert np.array_equal(nl.flipped, np.any(nl.labels != clean, axis=1))


def test_separation_auc():
    flipped = np.array([True, True, False, False])
    assert noise.separation_auc(np.array([0.0, 0.1, 0.5, 0.9]), flipped) == 1.0
    assert noise.separation_auc(np.array([0.9, 0.5, 0.1, 0.0]), flipped) == 0.0
    assert noise.separation_auc(np.ones(4), flipped) == 0.5
    # one clean item below one flipped item: 3 of 4 pairs ordered
    assert noise.separation_auc(np.array([0.0, 0.6, 0.5, 0.9]), flipped) == 0.75


def test_weight_panel_says_when_every_weight_is_zero():
    from xmhash.report.noise import panel_title

    flipped = np.array([True, False, False, True])
    dead = panel_title("rshnl", "sym0.5", np.zeros(4), flipped)
    assert "switched off" in dead and "AUC" not in dead
    live = panel_title("rshnl", "sym0.5", np.array([0.1, 0.9, 0.8, 0.2]), flipped)
    assert live == "rshnl, noise sym0.5: AUC 1.000"
