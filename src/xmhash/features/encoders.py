"""CLIP encoders from ``transformers``: the registry, loading, and batched encoding.

Public API (used by the feature stage and the search CLI)::

    enc = load_encoder("vitb32")                  # or a model id, or a local directory
    enc.encode_texts(["a dog on a beach"])        # (n, d) float32, L2-normalised
    enc.encode_images([path_or_PIL, ...])         # (n, d) float32, L2-normalised
    enc.dim, enc.attrs                            # attrs: id, revision, preprocessing

The short keys are what the feature file's path carries
(``results/{dataset}/features/{key}.h5``). Weights come from the Hugging Face cache;
``HF_HUB_OFFLINE=1`` (cluster nodes without internet) is respected, and missing weights
then fail with a message saying how to fetch them.

Images are preprocessed here rather than by the ``transformers`` image processor, so that
DataLoader workers can do it: convert to RGB, resize the short side to the processor's
``shortest_edge`` (bicubic), centre-crop to ``crop_size``; the workers hand over these
uint8 pixels (a quarter of float32's bytes) and the encoder scales them to [0, 1] and
normalises them with the processor's mean/std on its device. These are the processor's
own settings, read from the model's ``preprocessor_config.json``;
``tests/test_features.py`` checks the pixels agree with it. With ``draft`` (the default)
a JPEG whose resize target is at most half its size is decoded at a reduced DCT scale
(1/2, 1/4 or 1/8: PIL's ``Image.draft``), never below the target, before the exact
bicubic resize; this changes pixels slightly (``docs/features.md`` gives the measured
difference).

GPU: the device is an argument (``auto`` = CUDA when present). On CUDA the forward pass
runs under autocast (bf16 where supported, else fp16, or fp32 on request); on the CPU it
is always fp32. Inputs are copied with ``non_blocking`` from pinned memory on CUDA.
``forward_pixels``/``forward_tokens`` return the embeddings on the device (no host copy,
no wait); ``to_host`` brings them back and checks them, once for as many rows as the
caller gathered (the feature stage: once per chunk).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xmhash.device import resolve_device
from xmhash.features.settings import ENCODERS, local_digest, resolve_encoder

log = logging.getLogger(__name__)

__all__ = ["ENCODERS", "Encoder", "EncoderNotFound", "load_encoder", "resolve_encoder"]

PRECISIONS = ("auto", "fp32", "fp16", "bf16")


class EncoderNotFound(OSError):
    """The encoder's weights are neither a local directory nor in the (reachable) hub cache."""


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() in ("1", "true", "yes", "on")


# ---------------------------------------------------------------- GPU-path decisions
# Pure functions, so their logic is tested on a CPU-only machine.


def autocast_dtype(
    device: torch.device, precision: str = "auto", bf16_supported: bool | None = None
) -> torch.dtype | None:
    """The autocast dtype for ``device``, or None for plain fp32.

    Autocast is used on CUDA only (CPU autocast is slower than fp32 for these models).
    ``auto`` picks bf16 where the GPU supports it (Ampere and later), else fp16.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}, expected one of {PRECISIONS}")
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision == "fp16":
        return torch.float16
    if bf16_supported is None:
        bf16_supported = torch.cuda.is_bf16_supported()
    if precision == "bf16" and not bf16_supported:
        raise ValueError(f"precision bf16 requested but {device} does not support bfloat16")
    return torch.bfloat16 if bf16_supported else torch.float16


def use_pinned_memory(device: torch.device) -> bool:
    """Pin host batches (and copy with ``non_blocking``) only when they go to a GPU."""
    return device.type == "cuda"


# ---------------------------------------------------------------- preprocessing


@dataclass(frozen=True)
class ImageTransform:
    """CLIP image preprocessing, picklable for DataLoader workers."""

    shortest_edge: int
    crop: tuple[int, int]  # (height, width)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resample: int = 3  # PIL.Image.BICUBIC
    draft: bool = True  # JPEGs: decode at a reduced DCT scale, never below the target

    @classmethod
    def from_processor(cls, proc: Any) -> ImageTransform:
        size, crop = proc.size, proc.crop_size
        edge = _get(size, "shortest_edge") or min(_get(size, "height"), _get(size, "width"))
        return cls(
            shortest_edge=int(edge),
            crop=(int(_get(crop, "height")), int(_get(crop, "width"))),
            mean=tuple(float(x) for x in proc.image_mean),
            std=tuple(float(x) for x in proc.image_std),
            resample=int(getattr(proc, "resample", 3) or 3),
        )

    def resize_to(self, w: float, h: float) -> tuple[int, int]:
        """The (width, height) an image of ``w`` x ``h`` is resized to before the crop."""
        edge = self.shortest_edge  # the long side is truncated, as transformers does
        return (edge, int(edge * h / w)) if w <= h else (int(edge * w / h), edge)

    def open(self, path: str | os.PathLike, pieces: int = 1) -> tuple[Any, tuple[int, int]]:
        """Decode an image file -> (RGB PIL image, its size in the file). With ``draft``, a
        JPEG is decoded at the smallest DCT scale that keeps each of ``pieces`` x
        ``pieces`` tiles (1: the whole image) at least as large as its resize target, so
        the result may be smaller than the file; boxes stay in the file's pixels."""
        from PIL import Image

        with Image.open(path) as im:
            size = im.size
            tw, th = (pieces * x for x in self.resize_to(size[0] / pieces, size[1] / pieces))
            if self.draft and im.format == "JPEG" and 2 * tw <= size[0] and 2 * th <= size[1]:
                im.draft("RGB", (tw, th))  # at least half the size smaller: DCT scaling
            im.load()
            return im.convert("RGB"), size

    def __call__(self, image: Any) -> torch.Tensor:
        """A PIL image -> (3, H, W) uint8 tensor, resized and cropped (see ``normalise``)."""
        from PIL import Image

        image = image.convert("RGB")
        size = self.resize_to(*image.size)
        image = image.resize(size, resample=Image.Resampling(self.resample))
        ch, cw = self.crop
        left, top = (size[0] - cw) // 2, (size[1] - ch) // 2
        image = image.crop((left, top, left + cw, top + ch))
        return uint8_pixels(image)

    def resize_tensor(self, image: torch.Tensor) -> torch.Tensor:
        """(3, h, w) uint8 on any device -> (3, H, W) uint8, resized (antialiased bicubic)
        and cropped as ``__call__`` does with PIL; for images decoded on the GPU. The two
        resamplers agree to within a few levels (``docs/features.md``)."""
        h, w = image.shape[-2:]
        size = self.resize_to(w, h)
        x = torch.nn.functional.interpolate(
            image[None].float(), size=size[::-1], mode="bicubic", antialias=True
        )
        ch, cw = self.crop
        left, top = (size[0] - cw) // 2, (size[1] - ch) // 2
        x = x[0, :, top : top + ch, left : left + cw]
        return x.round_().clamp_(0, 255).to(torch.uint8)

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """(n, 3, H, W) uint8 -> float32 scaled to [0, 1] and normalised, on their device."""
        mean, std = _channel_stats(self.mean, self.std, pixels.device)
        return pixels.float().div_(255.0).sub_(mean).div_(std)

    def to_dict(self) -> dict[str, Any]:
        return {
            "resize_shortest_edge": self.shortest_edge,
            "center_crop": list(self.crop),
            "mean": list(self.mean),
            "std": list(self.std),
            "resample": self.resample,
            "jpeg_draft": self.draft,
        }


def uint8_pixels(image: Any) -> torch.Tensor:
    """An RGB PIL image -> its (3, H, W) uint8 tensor, as it is (no resize)."""
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)


@functools.lru_cache(maxsize=8)
def _channel_stats(
    mean: tuple[float, ...], std: tuple[float, ...], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std as (3, 1, 1) tensors on ``device``, copied there once."""
    with torch.inference_mode(False):
        return (
            torch.tensor(mean).view(3, 1, 1).to(device),
            torch.tensor(std).view(3, 1, 1).to(device),
        )


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def load_image(path: str | os.PathLike, transform: ImageTransform | None = None) -> Any:
    """Open and fully decode an image (errors surface here, not later); with a
    ``transform``, as it decodes (at a reduced JPEG scale when it drafts)."""
    if transform is not None:
        return transform.open(path)[0]
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        return im.convert("RGB")


# ---------------------------------------------------------------- the encoder


@dataclass(frozen=True)
class TextBatch:
    input_ids: torch.Tensor  # (n, L) int64
    attention_mask: torch.Tensor  # (n, L) int64
    truncated: np.ndarray  # (n,) bool: the text was cut to the model's limit

    def select(self, rows: np.ndarray) -> TextBatch:
        return TextBatch(self.input_ids[rows], self.attention_mask[rows], self.truncated[rows])

    def pin_memory(self) -> TextBatch:
        return TextBatch(
            self.input_ids.pin_memory(), self.attention_mask.pin_memory(), self.truncated
        )


class TextTokenizer:
    """Tokenise texts to the model's limit, counting truncations; picklable for workers."""

    def __init__(self, tokenizer: Any, max_length: int):
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.bos = tokenizer.bos_token_id
        self.eos = tokenizer.eos_token_id
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos

    def content_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids without the start/end tokens."""
        enc = self.tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)
        return enc["input_ids"]

    def __call__(self, texts: Sequence[str]) -> TextBatch:
        return self.from_ids(self.content_ids(texts))

    def from_ids(self, ids: Sequence[Sequence[int]]) -> TextBatch:
        room = self.max_length - 2
        rows = [[self.bos, *row[:room], self.eos] for row in ids]
        truncated = np.array([len(row) > room for row in ids], dtype=bool)
        width = max((len(r) for r in rows), default=2)
        input_ids = torch.full((len(rows), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        return TextBatch(input_ids, mask, truncated)


class Encoder:
    """A CLIP model ready to encode texts and images; see the module docstring."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        transform: ImageTransform,
        *,
        device: torch.device,
        precision: str,
        attrs: dict[str, Any],
    ):
        self.model = model.eval().to(device)
        self.device = device
        self.precision = precision
        self.amp_dtype = autocast_dtype(device, precision)
        self.transform = transform
        text_cfg = model.config.text_config
        limit = min(
            int(text_cfg.max_position_embeddings),
            int(getattr(tokenizer, "model_max_length", 10**9) or 10**9),
        )
        self.tokenizer = TextTokenizer(tokenizer, limit)
        self.dim = int(model.config.projection_dim)
        self.attrs = {
            **attrs,
            "dim": self.dim,
            "preprocessing": {
                "image": transform.to_dict(),
                "text": {"max_tokens": limit, "truncation": "keep the first max_tokens-2"},
                "normalise": "l2",
                "autocast": str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else None,
            },
        }

    @property
    def pin_memory(self) -> bool:
        return use_pinned_memory(self.device)

    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def to_host(self, rows: torch.Tensor, what: str) -> np.ndarray:
        """Embeddings from ``forward_*`` as float32 on the host; NaN/Inf is an error."""
        arr = rows.cpu().numpy()
        if not np.isfinite(arr).all():
            raise self.non_finite(arr, what)
        return arr

    def non_finite(self, arr: np.ndarray, what: str) -> FloatingPointError:
        bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))[:5].tolist()
        return FloatingPointError(
            f"encoder {self.attrs.get('id')}: NaN/Inf in {what} embeddings (rows {bad})"
        )

    @torch.inference_mode()
    def forward_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """(n, 3, H, W) pixels -> (n, d) L2-normalised float32 on the device. uint8 pixels
        (from ``transform``) are normalised on the device; float ones are taken as they are."""
        nb = self.device.type == "cuda"
        pixels = pixels.to(self.device, non_blocking=nb)
        with self._autocast():
            if pixels.dtype == torch.uint8:
                pixels = self.transform.normalise(pixels)
            out = self.model.get_image_features(pixel_values=pixels).pooler_output
        return torch.nn.functional.normalize(out.float(), dim=-1)

    @torch.inference_mode()
    def forward_tokens(self, batch: TextBatch) -> torch.Tensor:
        """Tokenised texts -> (n, d) L2-normalised float32 on the device."""
        nb = self.device.type == "cuda"
        ids = batch.input_ids.to(self.device, non_blocking=nb)
        mask = batch.attention_mask.to(self.device, non_blocking=nb)
        with self._autocast():
            out = self.model.get_text_features(input_ids=ids, attention_mask=mask).pooler_output
        return torch.nn.functional.normalize(out.float(), dim=-1)

    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        parts = [
            self.forward_tokens(self.tokenizer(texts[i : i + batch_size]))
            for i in range(0, len(texts), batch_size)
        ]
        return self._gather(parts, "text")

    def encode_images(self, images: Sequence[Any], batch_size: int = 64) -> np.ndarray:
        parts = []
        for i in range(0, len(images), batch_size):
            chunk = [
                load_image(im, self.transform) if isinstance(im, str | os.PathLike) else im
                for im in images[i : i + batch_size]
            ]
            parts.append(self.forward_pixels(torch.stack([self.transform(im) for im in chunk])))
        return self._gather(parts, "image")

    def _gather(self, parts: list[torch.Tensor], what: str) -> np.ndarray:
        if not parts:
            return np.zeros((0, self.dim), np.float32)
        return self.to_host(torch.cat(parts), what)


def load_encoder(
    key_or_path: str,
    device: str | torch.device = "auto",
    dtype: str = "auto",
    *,
    extra: Mapping[str, str] | None = None,
    revision: str | None = None,
    draft: bool = True,
) -> Encoder:
    """Load a CLIP model by short key (``vitb32``, ``vitb16``, ``vitl14``, or a key in
    ``extra``), Hugging Face model id, or local directory.

    ``dtype`` is the autocast precision on CUDA (auto/fp32/fp16/bf16); the CPU is fp32.
    ``draft``: decode JPEGs at a reduced scale where the target is smaller (module doc).
    """
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

    source = resolve_encoder(key_or_path, extra)
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    local = Path(source).expanduser().is_dir()
    kwargs: dict[str, Any] = {} if local else {"revision": revision}
    if not local and hub_offline():
        kwargs["local_files_only"] = True
    try:
        model = CLIPModel.from_pretrained(source, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        processor = AutoImageProcessor.from_pretrained(source, **kwargs)
    except OSError as e:
        raise EncoderNotFound(_missing_message(key_or_path, source, local, e)) from e
    attrs = {
        "id": source,
        "key": key_or_path,
        "revision": local_digest(source) if local else _hub_revision(source, revision),
        "transformers_version": _version("transformers"),
        "torch_version": str(torch.__version__),
    }
    log.info("encoder %s (%s) on %s, precision %s", key_or_path, source, dev, dtype)
    return Encoder(
        model,
        tokenizer,
        replace(ImageTransform.from_processor(processor), draft=draft),
        device=dev,
        precision=dtype,
        attrs=attrs,
    )


def _missing_message(key: str, source: str, local: bool, err: Exception) -> str:
    if Path(source).expanduser().is_absolute() or source.startswith("."):
        return (
            f"encoder {key!r}: {source} is not a directory with a saved CLIP model "
            f"(config.json, weights, tokenizer, preprocessor_config.json): {err}"
        )
    how = (
        f"fetch them on a machine with internet: `hf download {source}` (or "
        f'`python -c "from transformers import CLIPModel, AutoProcessor; '
        f"CLIPModel.from_pretrained('{source}'); AutoProcessor.from_pretrained('{source}')\"`), "
        f"then copy the Hugging Face cache (~/.cache/huggingface, or $HF_HOME) here, or save "
        f"the model to a directory and map the key to it under `features.encoders` in config.yaml"
    )
    state = (
        "HF_HUB_OFFLINE is set and they are not in the local cache"
        if hub_offline()
        else ("they could not be downloaded")
    )
    return f"encoder {key!r}: weights for {source} not found ({state}); {how}. Cause: {err}"


def _hub_revision(source: str, revision: str | None) -> str:
    """The commit hash of the cached snapshot (the cache path names it)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        path = try_to_load_from_cache(source, "config.json", revision=revision)
        if isinstance(path, str) and "/snapshots/" in path:
            return path.split("/snapshots/")[1].split("/")[0]
    except Exception as e:  # noqa: BLE001 - the revision is informative only
        log.warning("could not resolve the revision of %s: %s", source, e)
    return revision or "unknown"


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)
