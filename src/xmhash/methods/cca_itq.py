"""CCA-ITQ: canonical correlation analysis, then an iterative-quantisation rotation.

Gong, Lazebnik, Gordo, Perronnin, "Iterative Quantization: A Procrustean Approach to
Learning Binary Codes for Large-scale Image Retrieval", TPAMI 2013 (ITQ, and CCA-ITQ
for paired modalities). Reference MATLAB code: slazebni's ITQ page (not in any stored
corpus); this is written from the paper.

1. Centre each modality on its training mean; regularised covariances
   C_xx + r I, C_yy + r I, with r = ``reg`` times the mean eigenvalue. Gong et al. add
   1e-4 to the diagonal; for unit-norm 512-d CLIP features (mean eigenvalue ~ 1/512)
   that is ~0.05 relative, our default. The relative form keeps it scale-free.
2. CCA by whitening and SVD: T = C_xx^-1/2 C_xy C_yy^-1/2 = U S V^T; projections
   A = C_xx^-1/2 U_c, B = C_yy^-1/2 V_c for the top c = bits directions, each scaled
   by its canonical correlation to the power ``corr_power`` (the paper scales by the
   eigenvalue, power 1).
3. ITQ on the stacked projections V = [X A; Y B]: alternate B = sign(V R) and the
   orthogonal Procrustes update R = argmin ||B - V R||, ``itq_iters`` times, from a
   seeded random rotation.

Codes: sign((x - mean) A R) for images, sign((y - mean) B R) for texts.

**Codes longer than the features.** CCA has at most k = min(image dim, text dim)
directions (10 for Wikipedia's LDA topics). For bits > k, the k-d CCA space is padded:
it is mapped into ``bits`` dimensions by k orthonormal rows of a seeded random rotation
P (k x bits), and ITQ rotates that embedding (the Procrustes step works on the rank-k
embedding as on any other). The codes then carry no more than k dimensions of signal;
the extra bits are ITQ-balanced random hyperplanes of the CCA space, so they sharpen
the Hamming ranking the way added LSH bits do. ``beyond_dims: error`` stops instead.

Deviations: none; the scaling of step 2 is configurable (``corr_power``, 0 = none).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from xmhash.methods.base import ClosedFormMethod, ConfigError, MethodParams, TrainData, binary


@dataclass(frozen=True)
class CCAITQParams(MethodParams):
    reg: float = 0.05  # ridge, relative to the mean eigenvalue (Gong et al.: 1e-4 absolute)
    itq_iters: int = 50  # ITQ alternations (the paper uses 50)
    corr_power: float = 1.0  # scale CCA directions by correlation**power (paper: 1)
    beyond_dims: str = "pad"  # bits > min(dims): pad (random rotation of the CCA space), error


def _inv_sqrt(c: torch.Tensor) -> torch.Tensor:
    evals, evecs = torch.linalg.eigh(c)
    return evecs @ torch.diag(evals.clamp_min(1e-12).rsqrt()) @ evecs.T


class CCAITQ(ClosedFormMethod):
    name = "cca_itq"
    Params = CCAITQParams
    citation = "Gong et al., TPAMI 2013 (CCA-ITQ)"

    def build(self) -> None:
        if self.params.beyond_dims not in ("pad", "error"):
            raise ConfigError(
                f"methods.cca_itq.beyond_dims: {self.params.beyond_dims!r} is not one of pad, error"
            )
        if self.bits > min(self.image_dim, self.text_dim) and self.params.beyond_dims == "error":
            raise ConfigError(
                f"cca_itq: bits={self.bits} exceeds the feature dimension "
                f"({min(self.image_dim, self.text_dim)}); set methods.cca_itq.beyond_dims: pad "
                "to pad the CCA space with a random rotation"
            )
        for mod, dim in (("image", self.image_dim), ("text", self.text_dim)):
            self.net.register_buffer(f"mean_{mod}", torch.zeros(dim))
            self.net.register_buffer(f"proj_{mod}", torch.zeros(dim, self.bits))

    def fit(self, data: TrainData) -> None:
        p = self.params
        x = data.image.double().cpu()
        y = data.text.double().cpu()
        mx, my = x.mean(0), y.mean(0)
        x, y = x - mx, y - my
        n = len(x)

        def cov(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return a.T @ b / (n - 1)

        cxx, cyy, cxy = cov(x, x), cov(y, y), cov(x, y)
        cxx += p.reg * torch.trace(cxx) / cxx.shape[0] * torch.eye(cxx.shape[0], dtype=x.dtype)
        cyy += p.reg * torch.trace(cyy) / cyy.shape[0] * torch.eye(cyy.shape[0], dtype=x.dtype)
        wx, wy = _inv_sqrt(cxx), _inv_sqrt(cyy)
        u, s, vh = torch.linalg.svd(wx @ cxy @ wy)
        k = min(self.bits, len(s))
        scale = s[:k].clamp_min(1e-12) ** p.corr_power
        a = wx @ u[:, :k] * scale
        b = wy @ vh[:k].T * scale
        g = torch.Generator().manual_seed(self.seed)
        if k < self.bits:  # pad: k orthonormal rows of a random rotation, k -> bits
            pad = self._rotation(g, x.dtype)[:k]
            a, b = a @ pad, b @ pad

        v = torch.cat([x @ a, y @ b])
        r = self._rotation(g, v.dtype)
        for _ in range(p.itq_iters):
            codes = binary(v @ r)
            uu, _, wh = torch.linalg.svd(v.T @ codes)
            r = uu @ wh
        self.net.mean_image.copy_(mx.float())
        self.net.mean_text.copy_(my.float())
        self.net.proj_image.copy_((a @ r).float())
        self.net.proj_text.copy_((b @ r).float())

    def _rotation(self, g: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
        q, _ = torch.linalg.qr(torch.randn(self.bits, self.bits, generator=g, dtype=dtype))
        return q

    def project(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        return (x - getattr(self.net, f"mean_{modality}")) @ getattr(self.net, f"proj_{modality}")
