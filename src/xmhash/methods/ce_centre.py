"""CE-centre: RSHNL's networks trained with plain cross-entropy to the class centres.

The noisy-label track's "what the noise costs" baseline: the same per-modality
MLP hash networks and class-centre network as RSHNL (:mod:`xmhash.methods.rshnl`), and the
loss mean_i [-log p_i^img - log p_i^txt] with p_i^m the softmax mass of the (noisy) label
set over cosine logits to the centres. No contrastive term, no self-paced weights. It is
the CAL term of RSHNL with q -> 0 and no NSH; it corresponds to the official code's
``loss_type='CE'`` ablation (which crashes there).

Paper: the RSHNL paper (Pu et al., AAAI 2025) for the networks; official code
https://github.com/perquisite/RSHNL. Deviations: the same as RSHNL's (0-based classes
without the dummy column, ``hidden`` as a parameter, drop_last batches); the optimiser,
batch size, learning rate and epochs are RSHNL's.
"""

from __future__ import annotations

from dataclasses import dataclass

from xmhash.methods.rshnl import EPS, CentreHashing, CentreParams


@dataclass(frozen=True)
class CECentreParams(CentreParams):
    pass


class CECentre(CentreHashing):
    name = "ce_centre"
    Params = CECentreParams
    citation = (
        "Cross-entropy to learnable class centres with RSHNL's networks (Pu et al., AAAI 2025)"
    )

    def objective(self, h_img, h_txt, p_img, p_txt, epoch):
        ce = -(p_img.clamp_min(EPS).log() + p_txt.clamp_min(EPS).log()).mean()
        return {"loss": ce, "ce": ce}
