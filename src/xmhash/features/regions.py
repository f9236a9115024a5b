"""Image regions for region-level embeddings (VTM-UCH's "visions").

Each image gets a list of boxes ``(x0, y0, x1, y1)`` in pixels of the original image, and
the whole image is always appended last (as VTM-UCH does). Two sources of boxes:

* ``grid``: a g x g grid of crops; needs no detector, deterministic.
* ``detector``: any object detector loadable with ``transformers``:
  ``AutoModelForObjectDetection`` models (DETR, YOLOS, RT-DETR, ...) or zero-shot
  detectors (OWLv2/OWL-ViT, ``AutoModelForZeroShotObjectDetection``) prompted with
  ``queries``. Boxes above ``threshold`` are kept, best first, up to ``max_boxes``;
  zero-area boxes are dropped and near-duplicates (all four coordinates within
  ``prune_px`` pixels of an earlier kept box) pruned, as in the VTM-UCH code.

Deviation from VTM-UCH: the paper's detector is an MMDetection Faster R-CNN trained on
Open Images; MMDetection is not a dependency here, so a ``transformers`` detector (or the
grid) stands in. Class names are ignored, as in the paper.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

MODES = ("none", "grid", "detector")


@dataclass(frozen=True)
class RegionSettings:
    mode: str = "none"  # none | grid | detector
    grid: int = 2  # grid mode: g x g crops
    detector: str = "hustvl/yolos-tiny"  # detector mode: model id or local directory
    queries: tuple[str, ...] = ("an object",)  # zero-shot detectors only
    threshold: float = 0.3  # detection score threshold
    max_boxes: int = 10  # at most this many detected boxes per image
    prune_px: float = 15.0  # near-duplicate pruning distance, pixels
    min_size: int = 8  # drop boxes narrower or lower than this, pixels

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"features.regions.mode: {self.mode!r}, expected one of {MODES}")

    @classmethod
    def from_config(cls, cfg: dict[str, Any] | None) -> RegionSettings:
        cfg = dict(cfg or {})
        if "queries" in cfg:
            cfg["queries"] = tuple(cfg["queries"])
        return cls(**cfg)


def grid_boxes(width: int, height: int, grid: int) -> np.ndarray:
    """``grid`` x ``grid`` boxes covering the image, row by row, as (g*g, 4) float32."""
    xs = np.linspace(0, width, grid + 1)
    ys = np.linspace(0, height, grid + 1)
    boxes = [(xs[c], ys[r], xs[c + 1], ys[r + 1]) for r in range(grid) for c in range(grid)]
    return np.asarray(boxes, np.float32).reshape(-1, 4)


def prune_boxes(
    boxes: np.ndarray, *, prune_px: float, max_boxes: int, min_size: float = 1.0
) -> np.ndarray:
    """Drop tiny boxes and near-duplicates of earlier boxes (order = priority)."""
    kept: list[np.ndarray] = []
    for box in np.asarray(boxes, np.float32).reshape(-1, 4):
        if box[2] - box[0] < min_size or box[3] - box[1] < min_size:
            continue
        if any(np.all(np.abs(box - k) < prune_px) for k in kept):
            continue
        kept.append(box)
        if len(kept) == max_boxes:
            break
    return np.asarray(kept, np.float32).reshape(-1, 4)


def with_whole_image(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    whole = np.array([[0, 0, width, height]], np.float32)
    return np.concatenate([np.asarray(boxes, np.float32).reshape(-1, 4), whole])


def target_sizes(sizes: Sequence[tuple[int, int]], pads_to_square: bool) -> list[tuple[int, int]]:
    """(height, width) to scale normalised boxes by. OWLv2 pads each image to a square
    (bottom/right) before predicting, so its boxes are relative to the padded square."""
    if not pads_to_square:
        return [tuple(s) for s in sizes]
    return [(max(h, w), max(h, w)) for h, w in sizes]


@dataclass(frozen=True)
class DetectorInputs:
    """The detector's preprocessing of a batch of PIL images (resize, normalise, pad; the
    text prompts of a zero-shot detector): picklable, so the DataLoader workers run it."""

    processor: Any
    queries: tuple[str, ...] | None  # zero-shot detectors: the prompts; else None

    def __call__(self, images: Sequence[Any]) -> dict[str, torch.Tensor]:
        if self.queries is not None:
            texts = [list(self.queries)] * len(images)
            inputs = self.processor(text=texts, images=list(images), return_tensors="pt")
        else:
            inputs = self.processor(images=list(images), return_tensors="pt")
        return {k: v for k, v in inputs.items() if isinstance(v, torch.Tensor)}


class Detector:
    """A ``transformers`` object detector returning boxes per image."""

    def __init__(self, settings: RegionSettings, device: torch.device):
        from transformers import (
            AutoConfig,
            AutoModelForObjectDetection,
            AutoModelForZeroShotObjectDetection,
            AutoProcessor,
        )

        from xmhash.features.encoders import EncoderNotFound, hub_offline

        self.settings, self.device = settings, device
        kwargs = {"local_files_only": True} if hub_offline() else {}
        try:
            config = AutoConfig.from_pretrained(settings.detector, **kwargs)
            self.zero_shot = config.model_type in ("owlv2", "owlvit", "grounding-dino")
            self.pads_to_square = config.model_type == "owlv2"
            cls = (
                AutoModelForZeroShotObjectDetection
                if self.zero_shot
                else (AutoModelForObjectDetection)
            )
            self.model = cls.from_pretrained(settings.detector, **kwargs).eval().to(device)
            self.processor = AutoProcessor.from_pretrained(settings.detector, **kwargs)
        except OSError as e:
            raise EncoderNotFound(
                f"features.regions.detector: cannot load {settings.detector!r} ({e}); fetch it "
                f"with `hf download {settings.detector}` on a machine with internet, or use "
                f"features.regions.mode: grid, which needs no detector"
            ) from e

    def inputs(self) -> DetectorInputs:
        """The preprocessing, for the DataLoader workers."""
        return DetectorInputs(self.processor, self.settings.queries if self.zero_shot else None)

    @torch.inference_mode()
    def detect(
        self, sizes: Sequence[tuple[int, int]], inputs: dict[str, torch.Tensor]
    ) -> list[np.ndarray]:
        """Boxes per image of (height, width) ``sizes``, from the batch ``inputs`` made by
        :meth:`inputs` (in the workers); runs under the caller's autocast. The boxes come to
        the host here, once per batch: how many crops follow depends on them."""
        s = self.settings
        nb = self.device.type == "cuda"
        inputs = {k: v.to(self.device, non_blocking=nb) for k, v in inputs.items()}
        outputs = self.model(**inputs)
        for key, value in outputs.items():  # post-processing in fp32
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                outputs[key] = value.float()
        post = (
            self.processor.post_process_grounded_object_detection
            if self.zero_shot
            else self.processor.post_process_object_detection
        )
        results = post(
            outputs, threshold=s.threshold, target_sizes=target_sizes(sizes, self.pads_to_square)
        )
        out = []
        for res, (h, w) in zip(results, sizes, strict=True):
            order = torch.argsort(res["scores"], descending=True)
            boxes = res["boxes"][order].float().cpu().numpy()
            boxes = np.clip(boxes, 0, [w, h, w, h]).astype(np.float32)
            out.append(
                prune_boxes(boxes, prune_px=s.prune_px, max_boxes=s.max_boxes, min_size=s.min_size)
            )
        return out
