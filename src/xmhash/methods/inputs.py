"""Input centring fitted to the features a method is given.

Methods written for CLIP embeddings take cosines of the raw features (for similarity
targets) and feed L2-normalised raw features to their networks. CLIP-like features are
roughly zero-centred, so that works. Non-negative features -- bag-of-words counts,
histograms, topic proportions (Wikipedia's SIFT words and LDA topics) -- are not: every
cosine is positive and dominated by the features' common mean (on the ``demo_bow`` demo
the mean image cosine is 0.23, 0.247 within a class vs 0.228 across; the topic cosines
0.61 vs 0.36 around a mean of 0.40), so a target built from them says "similar" for
almost every pair, and a normalised input sits near one point for every item.

:class:`InputCentre` subtracts each modality's training mean before any of that. Mode
``auto`` (the default of every method that uses it) centres a modality only when all of
its training features are >= 0, which is exactly the count / histogram / proportion
kind; CLIP-like features (with negative coordinates) pass unchanged, so results on them
do not move. ``always`` centres every modality, ``never`` none (the official codes).
The means are buffers of the model, so encoding after training centres the same way.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from xmhash.methods.base import ConfigError

log = logging.getLogger(__name__)

CENTRE_MODES = ("auto", "always", "never")


def check_centre_mode(mode: str, where: str) -> None:
    if mode not in CENTRE_MODES:
        raise ConfigError(f"{where}: {mode!r} is not one of {', '.join(CENTRE_MODES)}")


class InputCentre(nn.Module):
    """Per-modality training means, subtracted from the inputs (zeros = no centring)."""

    def __init__(self, image_dim: int, text_dim: int):
        super().__init__()
        self.register_buffer("image", torch.zeros(image_dim))
        self.register_buffer("text", torch.zeros(text_dim))

    @torch.no_grad()
    def fit(self, image: torch.Tensor, text: torch.Tensor, mode: str, name: str) -> None:
        """Set the means from the training features, per ``mode`` (auto, always, never)."""
        check_centre_mode(mode, f"methods.{name}.centre_inputs")
        for modality, x in (("image", image), ("text", text)):
            centre = mode == "always" or (mode == "auto" and bool((x >= 0).all()))
            mean = x.float().mean(0) if centre else torch.zeros(x.shape[1], device=x.device)
            getattr(self, modality).copy_(mean.to(getattr(self, modality).device))
            if centre and mode == "auto":
                log.info(
                    "%s: %s features are non-negative (counts, histograms or proportions): "
                    "centred on their training mean (centre_inputs: auto; never disables it)",
                    name,
                    modality,
                )

    def forward(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        return x - getattr(self, modality)
