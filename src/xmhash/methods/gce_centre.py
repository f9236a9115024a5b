"""GCE-centre: a noise-robust loss baseline, the generalised cross-entropy to class centres.

Generalised cross-entropy: Z. Zhang, M. R. Sabuncu, "Generalized Cross Entropy Loss for
Training Deep Neural Networks with Noisy Labels", NeurIPS 2018 (official code: none from
the authors; the loss is L_q(p) = (1 - p^q)/q, which tends to CE as q -> 0 and is MAE at
q = 1; q = 0.7 is the paper's default). Applied in RSHNL's frame
(:mod:`xmhash.methods.rshnl`): the same networks, the same softmax over cosine logits to
the learnable class centres, loss mean_i [L_q(p_i^img) + L_q(p_i^txt)]. No contrastive term
and no self-paced weights, so the comparison with RSHNL isolates what a robust loss alone
recovers.

Deviations: GCE's truncated variant (L_trunc with its pruning step) is not used; the
networks, optimiser and schedule are RSHNL's, not a classifier's (with RSHNL's own
deviations: 0-based classes, ``hidden`` as a parameter, drop_last batches).
"""

from __future__ import annotations

from dataclasses import dataclass

from xmhash.methods.rshnl import CentreHashing, CentreParams, gce_loss


@dataclass(frozen=True)
class GCECentreParams(CentreParams):
    q: float = 0.7  # GCE exponent (0 < q <= 1; 1 = MAE)


class GCECentre(CentreHashing):
    name = "gce_centre"
    Params = GCECentreParams
    citation = (
        "Zhang & Sabuncu, Generalized Cross Entropy Loss for Training Deep Neural "
        "Networks with Noisy Labels, NeurIPS 2018 (in RSHNL's centre frame)"
    )

    def objective(self, h_img, h_txt, p_img, p_txt, epoch):
        q = self.params.q
        gce = (gce_loss(p_img, q) + gce_loss(p_txt, q)).mean()
        return {"loss": gce, "gce": gce}
