"""Input centring: non-negative features are centred, CLIP-like ones pass unchanged; small
features are lifted to unit norm where a method asks for it."""

from __future__ import annotations

import pytest
import torch

from xmhash.methods.base import ConfigError
from xmhash.methods.inputs import InputCentre


def _fitted(image, text, mode="auto") -> InputCentre:
    c = InputCentre(image.shape[1], text.shape[1])
    c.fit(image, text, mode, "m")
    return c


def test_auto_centres_only_non_negative_features(small_demo, small_bow_demo):
    clip = _fitted(torch.tensor(small_demo.image), torch.tensor(small_demo.text))
    x = torch.tensor(small_demo.image[:5])
    assert torch.equal(clip(x, "image"), x)  # CLIP-like: unchanged, bit for bit
    bow_image, bow_text = torch.tensor(small_bow_demo.image), torch.tensor(small_bow_demo.text)
    assert (bow_image >= 0).all() and (bow_text >= 0).all()
    bow = _fitted(bow_image, bow_text)
    for modality, x in (("image", bow_image), ("text", bow_text)):
        centred = bow(x, modality)
        assert centred.mean(0).abs().max() < 1e-4
        assert (centred < 0).any()


def test_always_and_never(small_demo, small_bow_demo):
    image, text = torch.tensor(small_demo.image), torch.tensor(small_demo.text)
    assert _fitted(image, text, "always")(image, "image").mean(0).abs().max() < 1e-4
    bow_image, bow_text = torch.tensor(small_bow_demo.image), torch.tensor(small_bow_demo.text)
    assert torch.equal(_fitted(bow_image, bow_text, "never")(bow_text, "text"), bow_text)


def test_unknown_mode_names_the_key(small_demo):
    image, text = torch.tensor(small_demo.image), torch.tensor(small_demo.text)
    with pytest.raises(ConfigError, match=r"methods\.m\.centre_inputs: 'yes'"):
        _fitted(image, text, "yes")


def test_lift_small_scales_only_small_features_to_unit_norm(small_bow_demo, small_histogram_demo):
    histograms = torch.tensor(small_histogram_demo.image)  # row norm ~0.1 after centring
    counts, topics = torch.tensor(small_bow_demo.image), torch.tensor(small_bow_demo.text)
    c = InputCentre(128, 10, lift_small=True)
    c.fit(histograms, topics, "auto", "m")
    for modality, x in (("image", histograms), ("text", topics)):
        assert (x - x.mean(0)).norm(dim=1).mean() < 0.9
        assert abs(float(c(x, modality).norm(dim=1).mean()) - 1) < 1e-4
    c.fit(counts, topics, "auto", "m")  # counts are large: centred only
    assert torch.allclose(c(counts, "image"), counts - counts.mean(0), atol=1e-5)
    c.fit(histograms, topics, "never", "m")
    assert torch.equal(c(histograms, "image"), histograms)
    unit = torch.nn.functional.normalize(torch.randn(50, 128), dim=1)  # signed, unit rows
    c.fit(unit, topics, "auto", "m")
    assert torch.equal(c(unit, "image"), unit)


def test_without_lift_small_the_state_is_the_means_alone(small_histogram_demo):
    image = torch.tensor(small_histogram_demo.image)
    text = torch.tensor(small_histogram_demo.text)
    c = _fitted(image, text)
    assert set(c.state_dict()) == {"image", "text"}
    assert torch.allclose(c(image, "image"), image - image.mean(0))
