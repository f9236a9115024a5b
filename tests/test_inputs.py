"""Input centring: non-negative features are centred, CLIP-like ones pass unchanged."""

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
