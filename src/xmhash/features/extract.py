"""The feature stage: a prepared dataset -> one HDF5 feature file per encoder.

Streaming and bounded in memory: items go through a DataLoader whose workers decode and
preprocess images to uint8 (and crop regions, and tokenise texts) while the main process
runs the model; the embeddings of a chunk stay on the device until it is complete, then
come back in one asynchronous copy, checked for NaN/Inf once, on the device. Batches never
straddle a chunk of ``chunk_items`` items, and each finished chunk is
committed to a partial directory next to the output (``store.FeatureWriter``). A killed run
restarted with the same inputs and settings continues after the last finished chunk; the
output appears atomically when all items are done.

Per item it caches the global image and text embeddings and, on request, word-level text
embeddings (``words``: each tag, or each whitespace word, or each CLIP BPE token as
VTM-UCH does, embedded alone) and region-level image embeddings (``regions``: grid crops or
detector boxes, whole image last). Unreadable images are an error naming the file, or
with ``skip_corrupt`` are left out and listed in ``/skipped``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from xmhash.data.prepared import Prepared, read_prepared
from xmhash.device import resolve_device
from xmhash.features.encoders import (
    Encoder,
    ImageTransform,
    TextBatch,
    TextTokenizer,
    load_encoder,
    load_image,
    uint8_pixels,
)
from xmhash.features.regions import (
    Detector,
    DetectorInputs,
    RegionSettings,
    grid_boxes,
    with_whole_image,
)
from xmhash.features.settings import job_threads, runtime_settings, stage_sizes
from xmhash.features.store import Features, FeatureWriter, Ragged
from xmhash.log import progress

log = logging.getLogger(__name__)

WORD_UNITS = ("none", "tags", "words", "bpe")
DECODERS = ("cpu", "gpu")  # where images are decoded: PIL in the workers, or on the CUDA device


class CorruptImage(ValueError):
    """An image could not be read or decoded; the message names the file and the item."""


@dataclass(frozen=True)
class ExtractSettings:
    batch_size: int = 64  # items per forward pass
    chunk_items: int = 2048  # items per resumable chunk (rounded up to whole batches)
    workers: int = 2  # DataLoader worker processes decoding images (0 = in-process)
    precision: str = "auto"  # autocast on CUDA: auto | fp32 | fp16 | bf16
    words: str = "tags"  # none | tags | words | bpe
    regions: RegionSettings = field(default_factory=RegionSettings)
    skip_corrupt: bool = False  # leave unreadable images out (listed in /skipped)
    text_batch_size: int = 256  # words encoded per forward pass
    decode: str = "cpu"  # cpu (PIL, in the workers) | gpu (torchvision's decode_jpeg on CUDA)

    def __post_init__(self) -> None:
        if self.words not in WORD_UNITS:
            raise ValueError(f"features.words: {self.words!r}, expected one of {WORD_UNITS}")
        if self.decode not in DECODERS:
            raise ValueError(f"features.decode: {self.decode!r}, expected one of {DECODERS}")
        for key in ("batch_size", "chunk_items", "text_batch_size"):
            if getattr(self, key) < 1:
                raise ValueError(f"features.{key}: {getattr(self, key)}, expected >= 1")

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> ExtractSettings:
        cfg = dict(cfg)
        cfg["regions"] = RegionSettings.from_config(cfg.get("regions"))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in cfg.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["regions"]["queries"] = list(self.regions.queries)
        return d


# ---------------------------------------------------------------- loading (in workers)


@dataclass
class Loaded:
    """One batch as the workers hand it over."""

    index: np.ndarray  # (n,) item positions
    ok: np.ndarray  # (n,) bool: image decoded
    errors: list[str]  # (n,) "" or why the image failed
    pixels: torch.Tensor  # (n_ok, 3, H, W) uint8
    tokens: TextBatch  # (n, L) for every item
    crops: torch.Tensor | None  # (R, 3, H, W) uint8 grid crops of the ok items, item by item
    boxes: list[np.ndarray]  # per ok item: (r_i, 4) boxes incl. the whole image last
    images: list[torch.Tensor] | None  # detector mode: the ok items' full uint8 pixels
    detector_inputs: dict[str, torch.Tensor] | None  # detector mode: its preprocessed batch
    # decode: gpu, per ok item: (JPEG bytes, None), or (None, full-size uint8 pixels) for
    # other formats; pixels and crops are then made on the device
    sources: list[tuple[torch.Tensor | None, torch.Tensor | None]] | None = None

    def __len__(self) -> int:
        return len(self.index)

    def pin_memory(self) -> Loaded:
        self.pixels = self.pixels.pin_memory()
        self.tokens = self.tokens.pin_memory()
        if self.crops is not None:
            self.crops = self.crops.pin_memory()
        return self


class _Items(Dataset):
    def __init__(
        self,
        paths: Sequence[str],
        transform: ImageTransform,
        regions: RegionSettings,
        decode: str = "cpu",
    ):
        self.paths, self.transform, self.regions = list(paths), transform, regions
        self.on_device = decode == "gpu" and regions.mode != "detector"

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, Any]:
        mode = self.regions.mode
        if self.on_device:
            return self._source(i)
        try:
            if mode == "detector":  # the detector resizes to its own scale: the full image
                image = load_image(self.paths[i])
                w, h = image.size
            else:  # each grid tile must keep the resize target's size when drafted
                pieces = self.regions.grid if mode == "grid" else 1
                image, (w, h) = self.transform.open(self.paths[i], pieces)
        except Exception as e:  # noqa: BLE001 - any decoding failure is reported per item
            return {"index": i, "error": f"{type(e).__name__}: {e}"}
        out: dict[str, Any] = {"index": i, "error": "", "pixels": self.transform(image)}
        if mode == "grid":
            boxes = grid_boxes(w, h, self.regions.grid)  # in the file's pixels
            scale = np.array([image.width / w, image.height / h] * 2, np.float32)
            out["crops"] = [self.transform(image.crop(tuple(b))) for b in (boxes * scale).tolist()]
            out["boxes"] = with_whole_image(boxes, w, h)
        elif self.regions.mode == "detector":  # the image for the detector's preprocessing
            out["pil"] = image  # (in the collate, in this worker) and the crops (on the device)
            out["image"] = uint8_pixels(image)
        return out

    def _source(self, i: int) -> dict[str, Any]:
        """decode: gpu: a JPEG's bytes (decoded on the device), other formats decoded here."""
        from PIL import Image

        try:
            with Image.open(self.paths[i]) as im:
                w, h = im.size
                jpeg = im.format == "JPEG"
                raw = None if jpeg else load_image(self.paths[i])
        except Exception as e:  # noqa: BLE001 - any decoding failure is reported per item
            return {"index": i, "error": f"{type(e).__name__}: {e}"}
        if jpeg:
            data = torch.frombuffer(bytearray(Path(self.paths[i]).read_bytes()), dtype=torch.uint8)
            source = (data, None)
        else:
            source = (None, uint8_pixels(raw))
        out: dict[str, Any] = {"index": i, "error": "", "source": source}
        if self.regions.mode == "grid":
            out["boxes"] = with_whole_image(grid_boxes(w, h, self.regions.grid), w, h)
        return out


class _Collate:
    def __init__(
        self,
        tokenizer: TextTokenizer,
        texts: Sequence[str],
        detector_inputs: DetectorInputs | None = None,
    ):
        self.tokenizer, self.texts = tokenizer, list(texts)
        self.detector_inputs = detector_inputs

    def __call__(self, samples: list[dict[str, Any]]) -> Loaded:
        good = [s for s in samples if not s["error"]]
        crops = [c for s in good for c in s.get("crops", [])]
        return Loaded(
            index=np.array([s["index"] for s in samples], np.int64),
            ok=np.array([not s["error"] for s in samples], bool),
            errors=[s["error"] for s in samples],
            pixels=torch.stack([s["pixels"] for s in good])
            if good and "pixels" in good[0]
            else torch.zeros(0, dtype=torch.uint8),
            tokens=self.tokenizer([self.texts[s["index"]] for s in samples]),
            crops=torch.stack(crops) if crops else None,
            boxes=[s["boxes"] for s in good if "boxes" in s],
            images=[s["image"] for s in good] if good and "image" in good[0] else None,
            detector_inputs=self.detector_inputs([s["pil"] for s in good])
            if good and self.detector_inputs is not None
            else None,
            sources=[s["source"] for s in good] if good and "source" in good[0] else None,
        )


def chunk_batches(start: int, n: int, batch_size: int, chunk_items: int) -> list[list[int]]:
    """Batches of item positions from ``start`` to ``n``; none straddles a chunk boundary."""
    out = []
    for c0 in range(start, n, chunk_items):
        c1 = min(c0 + chunk_items, n)
        out.extend(list(range(b, min(b + batch_size, c1))) for b in range(c0, c1, batch_size))
    return out


def loader_options(workers: int, pin_memory: bool) -> dict[str, Any]:
    """DataLoader keyword arguments (pure: tested on CPU)."""
    opts: dict[str, Any] = {"num_workers": max(0, int(workers)), "pin_memory": pin_memory}
    if opts["num_workers"] > 0:
        opts.update(prefetch_factor=2, persistent_workers=False)
    return opts


# ---------------------------------------------------------------- words


def item_words(item: Any, unit: str) -> list[str]:
    """The words of one item, in order, without repeats (tags, or whitespace words)."""
    if unit == "tags" and item.tags is not None:
        words = [t.strip() for t in item.tags]
    else:
        words = item.text.split()
    return list(dict.fromkeys(w for w in words if w))


class WordCache:
    """Embeddings of single words/tags/tokens, each computed once per run."""

    def __init__(self, encoder: Encoder, unit: str, batch_size: int):
        self.encoder, self.unit, self.batch_size = encoder, unit, batch_size
        self.cache: dict[Any, np.ndarray] = {}

    def rows(self, items: Sequence[Any]) -> Ragged:
        tok = self.encoder.tokenizer
        if self.unit == "bpe":  # VTM-UCH: each BPE token alone as [SOT, token, EOT]
            ids = tok.content_ids([it.text for it in items])
            keys = [row[: tok.max_length - 2] for row in ids]
            names = [tok.tokenizer.convert_ids_to_tokens(row) for row in keys]
        else:
            keys = names = [item_words(it, self.unit) for it in items]
        missing = list(dict.fromkeys(k for row in keys for k in row if k not in self.cache))
        for i in range(0, len(missing), self.batch_size):
            part = missing[i : i + self.batch_size]
            batch = tok.from_ids([[k] for k in part]) if self.unit == "bpe" else tok(part)
            rows = self.encoder.to_host(self.encoder.forward_tokens(batch), "word")
            self.cache.update(zip(part, rows, strict=True))
        dim = self.encoder.dim
        flat = [self.cache[k] for row in keys for k in row]
        return Ragged(
            embeddings=np.stack(flat) if flat else np.zeros((0, dim), np.float32),
            offsets=np.concatenate([[0], np.cumsum([len(r) for r in keys])]).astype(np.int64),
            names=np.array([n for row in names for n in row], dtype=object),
        )


# ---------------------------------------------------------------- the stage


def extract_features(
    prepared_dir: str | os.PathLike,
    encoder: Encoder,
    out: str | os.PathLike,
    settings: ExtractSettings = ExtractSettings(),
    *,
    dataset: str | None = None,
    encoder_key: str | None = None,
    max_chunks: int | None = None,
) -> Path | None:
    """Write the feature file ``out``; resume from its partial directory if there is one.

    ``max_chunks`` stops (leaving the partial directory) after that many new chunks and
    returns None; the full run returns ``out``.
    """
    check_decoder(settings, encoder.device)
    prep = read_prepared(prepared_dir)
    out = Path(out)
    n = len(prep.items)
    fingerprint = _fingerprint(prep, encoder, settings)
    writer = FeatureWriter(
        out,
        fingerprint=fingerprint,
        n_labels=len(prep.label_names),
        image_dim=encoder.dim,
        text_dim=encoder.dim,
        words=settings.words != "none",
        regions=settings.regions.mode != "none",
    )
    try:
        start = writer.consumed
        if start:
            log.info("%s: resuming at item %d of %d", out, start, n)
        for done, chunk in enumerate(_chunks(prep, encoder, settings, start)):
            writer.append(chunk.features, consumed=chunk.end, texts_truncated=chunk.truncated)
            if max_chunks is not None and done + 1 >= max_chunks and chunk.end < n:
                writer.close()
                return None
        counters = writer.counters
        attrs = {
            "dataset": dataset or prep.meta.get("dataset", ""),
            "encoder": encoder_key or encoder.attrs.get("key", ""),
            "encoder_id": encoder.attrs["id"],
            "encoder_revision": encoder.attrs["revision"],
            "preprocessing": encoder.attrs["preprocessing"],
            "text_kind": prep.meta.get("text_kind", ""),
            "text_max_tokens": encoder.tokenizer.max_length,
            "texts_truncated": int(counters.get("texts_truncated", 0)),
            "words_unit": settings.words,
            "regions": asdict(settings.regions) | {"queries": list(settings.regions.queries)},
            "transformers_version": encoder.attrs.get("transformers_version", ""),
            "torch_version": encoder.attrs.get("torch_version", ""),
            "n_source_items": n,
        }
        writer.finish(label_names=prep.label_names, attrs=attrs, items=n)
    except BaseException:
        writer.close()
        raise
    if attrs["texts_truncated"]:
        log.info(
            "%d of %d texts were longer than %d tokens and were truncated",
            attrs["texts_truncated"],
            n,
            encoder.tokenizer.max_length,
        )
    return out


@dataclass
class _Chunk:
    features: Features
    end: int  # items consumed up to here
    truncated: int


def _chunks(
    prep: Prepared, encoder: Encoder, settings: ExtractSettings, start: int
) -> Iterator[_Chunk]:
    n = len(prep.items)
    batches = chunk_batches(start, n, settings.batch_size, settings.chunk_items)
    if not batches:
        return
    paths = [str(prep.image_path(it)) for it in prep.items]
    texts = [it.text for it in prep.items]
    detector = (
        Detector(settings.regions, encoder.device) if settings.regions.mode == "detector" else None
    )
    loader = DataLoader(
        _Items(paths, encoder.transform, settings.regions, settings.decode),
        batch_sampler=batches,
        collate_fn=_Collate(encoder.tokenizer, texts, detector and detector.inputs()),
        **loader_options(settings.workers, encoder.pin_memory),
    )
    labels = prep.label_matrix()
    split = prep.official_split()
    words = WordCache(encoder, settings.words, settings.text_batch_size)
    parts: list[dict[str, Any]] = []
    chunk_end = min(n, start + settings.chunk_items)
    stream = progress(loader, desc="features", total=n, unit="item", initial=start, size=len)
    for batch in stream:
        parts.append(_encode(batch, prep, encoder, settings, words, detector))
        last = int(batch.index[-1]) + 1
        if last == chunk_end:
            yield _merge(_on_host(parts, encoder), labels, split, prep, last, settings)
            parts = []
            chunk_end = min(n, chunk_end + settings.chunk_items)


def _encode(
    batch: Loaded,
    prep: Prepared,
    encoder: Encoder,
    settings: ExtractSettings,
    words: WordCache,
    detector: Detector | None,
) -> dict[str, Any]:
    skipped = []
    for i, err in zip(batch.index, batch.errors, strict=True):
        if not err:
            continue
        item = prep.items[int(i)]
        if not settings.skip_corrupt:
            raise CorruptImage(
                f"{prep.image_path(item)}: cannot read the image of item {item.id!r} "
                f"({err}); repair or remove it, or set features.skip_corrupt: true to "
                f"skip such items (they are then listed in the feature file's /skipped)"
            )
        log.warning(
            "skipping item %s: unreadable image %s (%s)", item.id, prep.image_path(item), err
        )
        skipped.append(item.id)
    keep = batch.index[batch.ok]
    part: dict[str, Any] = {"index": keep, "skipped": skipped}
    tokens = batch.tokens.select(np.flatnonzero(batch.ok))
    part["truncated"] = int(tokens.truncated.sum())
    if len(keep) == 0:
        part.update(image=None, text=None, words=None, regions=None)
        return part
    if batch.sources is not None:
        try:
            batch.pixels, batch.crops = _device_pixels(batch, encoder)
        except RuntimeError as e:
            first, last = prep.items[int(keep[0])].id, prep.items[int(keep[-1])].id
            raise CorruptImage(
                f"decoding the images of items {first!r}..{last!r} on {encoder.device} failed "
                f"({e}); features.decode: cpu names an unreadable file (and can skip it)"
            ) from e
    part["image"] = encoder.forward_pixels(batch.pixels)
    part["text"] = encoder.forward_tokens(tokens)
    part["words"] = (
        words.rows([prep.items[int(i)] for i in keep]) if settings.words != "none" else None
    )
    part["regions"] = _regions(batch, part["image"], encoder, settings, detector)
    return part


def _device_pixels(batch: Loaded, encoder: Encoder) -> tuple[torch.Tensor, torch.Tensor | None]:
    """decode: gpu: the batch's JPEGs decoded on the device in one call, then every image
    (and its grid tiles, from the boxes in the file's pixels) resized and cropped there."""
    assert batch.sources is not None
    device, transform = encoder.device, encoder.transform
    jpegs = [i for i, (data, _) in enumerate(batch.sources) if data is not None]
    images = [None if raw is None else raw.to(device) for _, raw in batch.sources]
    if jpegs:
        decoded = decode_jpegs([batch.sources[i][0] for i in jpegs], device)
        for i, image in zip(jpegs, decoded, strict=True):
            images[i] = image
    pixels = torch.stack([transform.resize_tensor(im) for im in images])
    if not batch.boxes:
        return pixels, None
    tiles = [
        transform.resize_tensor(im[:, y0:y1, x0:x1])
        for im, boxes in zip(images, batch.boxes, strict=True)
        for x0, y0, x1, y1 in np.rint(boxes[:-1]).astype(int).tolist()
    ]
    return pixels, torch.stack(tiles) if tiles else None


def decode_jpegs(data: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """JPEG files' bytes -> (3, h, w) uint8 RGB tensors on ``device`` (torchvision's
    ``decode_jpeg``: nvJPEG on CUDA)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)


def check_decoder(settings: ExtractSettings, device: torch.device) -> None:
    """``decode: gpu`` needs a CUDA device and torchvision; say so before any work."""
    if settings.decode != "gpu":
        return
    if device.type != "cuda":
        raise ValueError(
            f"features.decode: gpu decodes JPEGs on a CUDA device, but the stage runs on "
            f"{device}; set features.device: cuda, or features.decode: cpu"
        )
    import importlib.util

    if importlib.util.find_spec("torchvision") is None:
        raise ModuleNotFoundError(
            "features.decode: gpu needs torchvision (the build that matches torch "
            f"{torch.__version__}: pip install torchvision); or set features.decode: cpu"
        )


def _regions(
    batch: Loaded,
    image_emb: torch.Tensor,
    encoder: Encoder,
    settings: ExtractSettings,
    detector: Detector | None,
) -> Ragged | None:
    mode = settings.regions.mode
    if mode == "none":
        return None
    if mode == "grid":
        boxes = batch.boxes
        crops = batch.crops
    else:
        assert detector is not None and batch.images is not None
        sizes = [tuple(im.shape[1:]) for im in batch.images]  # (height, width)
        with encoder._autocast():  # the encoder's autocast
            found = detector.detect(sizes, batch.detector_inputs)
        boxes = [with_whole_image(b, w, h) for b, (h, w) in zip(found, sizes, strict=True)]
        images = [im.to(encoder.device, non_blocking=True) for im in batch.images]
        crops_list = [  # cropped and resized on the device
            encoder.transform.resize_tensor(im[:, y0:y1, x0:x1])
            for bx, im in zip(found, images, strict=True)
            for x0, y0, x1, y1 in np.rint(bx).astype(int).tolist()
        ]
        crops = torch.stack(crops_list) if crops_list else None
    crop_emb = (
        torch.cat(
            [
                encoder.forward_pixels(crops[i : i + settings.batch_size])
                for i in range(0, len(crops), settings.batch_size)
            ]
        )
        if crops is not None
        else image_emb[:0]
    )
    rows, pos = [], 0
    for k, bx in enumerate(boxes):  # crops of item k, then its whole image (= its global embedding)
        r = len(bx) - 1
        rows.append(crop_emb[pos : pos + r])
        rows.append(image_emb[k : k + 1])
        pos += r
    counts = [len(b) for b in boxes]
    return Ragged(
        embeddings=torch.cat(rows),  # on the device until the chunk is complete
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        boxes=np.concatenate(boxes).astype(np.float32),
    )


def _on_host(parts: list[dict[str, Any]], encoder: Encoder) -> list[dict[str, Any]]:
    """The chunk's embeddings (image, text, regions of every batch), still on the device,
    brought to the host in one asynchronous copy, with one NaN/Inf check run on the
    device; the host waits once, for that copy."""
    slots = [
        (p, key)
        for p in parts
        if p["image"] is not None
        for key in ("image", "text", "regions")
        if p[key] is not None
    ]
    if not slots:
        return parts
    rows = torch.cat([_device_rows(p, key) for p, key in slots])
    flat = torch.cat([rows.flatten(), torch.isfinite(rows).all().float().view(1)])
    if flat.device.type == "cuda":
        host = torch.empty(flat.shape, dtype=flat.dtype, pin_memory=True)
        host.copy_(flat, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        done.synchronize()
    else:
        host = flat
    arr = host.numpy()
    values = arr[:-1].reshape(rows.shape)
    pos = 0
    for p, key in slots:
        n = len(_device_rows(p, key))
        part = values[pos : pos + n]
        pos += n
        if arr[-1] != 1 and not np.isfinite(part).all():
            raise encoder.non_finite(part, "region" if key == "regions" else key)
        if key == "regions":
            p[key] = replace(p[key], embeddings=part)
        else:
            p[key] = part
    return parts


def _device_rows(part: dict[str, Any], key: str) -> torch.Tensor:
    return part[key].embeddings if key == "regions" else part[key]


def _merge(
    parts: list[dict[str, Any]],
    labels: np.ndarray,
    split: np.ndarray,
    prep: Prepared,
    end: int,
    settings: ExtractSettings,
) -> _Chunk:
    index = np.concatenate([p["index"] for p in parts]).astype(np.int64)
    dim_parts = [p for p in parts if p["image"] is not None]

    def stack(key: str) -> np.ndarray:
        arrs = [p[key] for p in dim_parts]
        return np.concatenate(arrs) if arrs else np.zeros((0, 0), np.float32)

    def ragged(key: str) -> Ragged | None:
        rags = [p[key] for p in dim_parts]
        if not rags or rags[0] is None:
            return None
        return _concat_ragged(rags)

    feats = Features(
        ids=np.array([prep.items[i].id for i in index], dtype=object),
        labels=labels[index],
        image=stack("image"),
        text=stack("text"),
        texts=np.array([prep.items[i].text for i in index], dtype=object),
        words=ragged("words"),
        regions=ragged("regions"),
        official_split=split[index],
        skipped=[s for p in parts for s in p["skipped"]],
    )
    if not dim_parts:  # every image of the chunk was skipped
        feats.image = feats.text = np.zeros((0, 1), np.float32)
        if settings.words != "none":
            feats.words = _empty_ragged(names=True)
        if settings.regions.mode != "none":
            feats.regions = _empty_ragged(names=False)
    return _Chunk(feats, end, sum(p["truncated"] for p in parts))


def _concat_ragged(rags: Sequence[Ragged]) -> Ragged:
    offsets, base = [np.zeros(1, np.int64)], 0
    for r in rags:
        offsets.append(base + r.offsets[1:])
        base += int(r.offsets[-1])
    return Ragged(
        embeddings=np.concatenate([r.embeddings for r in rags]),
        offsets=np.concatenate(offsets).astype(np.int64),
        names=np.concatenate([r.names for r in rags]) if rags[0].names is not None else None,
        boxes=np.concatenate([r.boxes for r in rags]) if rags[0].boxes is not None else None,
    )


def _empty_ragged(*, names: bool) -> Ragged:
    return Ragged(
        embeddings=np.zeros((0, 1), np.float32),
        offsets=np.zeros(1, np.int64),
        names=np.zeros(0, dtype=object) if names else None,
        boxes=None if names else np.zeros((0, 4), np.float32),
    )


def _fingerprint(prep: Prepared, encoder: Encoder, settings: ExtractSettings) -> str:
    digest = hashlib.sha256()
    for name in ("items.jsonl", "meta.json"):
        path = prep.root / name
        digest.update(path.read_bytes())
    digest.update(
        json.dumps(
            {
                "encoder": [encoder.attrs["id"], encoder.attrs["revision"]],
                "preprocessing": encoder.attrs["preprocessing"],
                "settings": {
                    k: v
                    for k, v in settings.to_dict().items()
                    if k not in ("workers", "batch_size", "text_batch_size")
                },
            },
            sort_keys=True,
        ).encode()
    )
    return digest.hexdigest()[:24]


def run_features(
    *,
    prepared: str | os.PathLike,
    out: str | os.PathLike,
    encoder: str,
    settings: dict[str, Any],
    config: dict[str, Any] | None = None,
    dataset: str | None = None,
    threads: int | None = None,
) -> None:
    """The feature stage's entry point (the Snakemake rule ``features``).

    ``settings`` are the content settings (the rule's params); of the workflow ``config``
    only the runtime settings are read (:func:`xmhash.features.settings.runtime_settings`:
    workers, batch size, chunk size, device, the encoder key mapping).
    """
    runtime = runtime_settings(config or {})
    device = resolve_device(runtime["device"], "features.device")
    cuda = device.type == "cuda"
    threads = int(threads or job_threads(runtime, cuda=cuda, cpu_count=os.cpu_count()))
    torch.set_num_threads(threads)
    sizes = stage_sizes(runtime, cuda=cuda, threads=threads)
    opts = ExtractSettings.from_config({**settings, **runtime, **sizes})
    enc = load_encoder(
        encoder,
        device=device,
        dtype=opts.precision,
        extra=runtime["encoders"],
        draft=bool(settings.get("draft", True)),
    )
    log.info(
        "features on %s: %d threads, %d decode workers, batch %d",
        device,
        threads,
        opts.workers,
        opts.batch_size,
    )
    extract_features(prepared, enc, out, opts, dataset=dataset, encoder_key=encoder)
