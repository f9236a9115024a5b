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

**Small inputs** (``lift_small``, for methods whose MLPs read the features as they are).
A linear layer with PyTorch's default initialisation (weights and bias uniform on
+-1/sqrt(d)) gives each unit an item-dependent part of variance ||x||^2 / 3d beside the
bias's 1 / 3d: below unit norm the bias dominates and every item gets nearly the same
output. Features normalised another way than L2 are that small: L1-normalised 128-bin
visual-word histograms (Wikipedia's SIFT features) have a mean row norm of 0.14 after
centring, 10-d topic proportions 0.35, and an MLP on them starts with one code for almost
every image. With ``lift_small`` each modality whose training rows have a mean norm
below 1 (0.99; after centring) is divided by that mean norm, once, by one scalar: the geometry
of the features is kept and larger features (counts, CNN activations, CLIP embeddings)
pass unchanged. ``never`` leaves the features alone here too.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from xmhash.methods.base import ConfigError

log = logging.getLogger(__name__)

CENTRE_MODES = ("auto", "always", "never")
# lift_small: mean row norms below this are scaled to 1 (unit-normalised rows, whose mean
# norm is 1 up to rounding, stay bit for bit as they are)
LIFT_BELOW = 0.99


def check_centre_mode(mode: str, where: str) -> None:
    if mode not in CENTRE_MODES:
        raise ConfigError(f"{where}: {mode!r} is not one of {', '.join(CENTRE_MODES)}")


class InputCentre(nn.Module):
    """Per-modality training means, subtracted from the inputs (zeros = no centring)."""

    def __init__(self, image_dim: int, text_dim: int, *, lift_small: bool = False):
        super().__init__()
        self.register_buffer("image", torch.zeros(image_dim))
        self.register_buffer("text", torch.zeros(text_dim))
        self.lift_small = lift_small
        if lift_small:  # per-modality divisors (1 = unchanged)
            self.register_buffer("image_scale", torch.ones(()))
            self.register_buffer("text_scale", torch.ones(()))

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
            if self.lift_small and mode != "never":
                self._lift(x.float() - mean, modality, name)

    def _lift(self, centred: torch.Tensor, modality: str, name: str) -> None:
        norm = float(centred.norm(dim=1).mean())
        small = 0 < norm < LIFT_BELOW
        getattr(self, f"{modality}_scale").fill_(norm if small else 1.0)
        if small:
            log.info(
                "%s: %s features have a mean row norm of %.3g: scaled to 1 (centre_inputs: "
                "never disables it)",
                name,
                modality,
                norm,
            )

    def forward(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        x = x - getattr(self, modality)
        return x / getattr(self, f"{modality}_scale") if self.lift_small else x
