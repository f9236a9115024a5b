"""Feature-stage throughput: end-to-end items/s against the model-only forward pass.

The model is the real CLIP ViT-B/32 architecture (``CLIPConfig`` defaults: 224 px,
77 tokens, 512-d) with random weights, so nothing is downloaded; the speed is what the
real weights give. The dataset is generated: JPEGs of MIRFlickr's typical size
(500 x 375) and captions, in the prepared layout. The end-to-end run is the feature
stage itself (``extract_features``: decoding in DataLoader workers, tokenising, both
forward passes, HDF5 writes); the physical limit measured in the same run is the two
forward passes alone on ready-made tensors at the same batch size. Their ratio is what
the stage's overhead leaves of the model's speed (target >= 0.9 on CPU).

    python benchmarks/features.py [--items 256] [--batch-size 32] [--workers 1 2] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))
from helpers.tiny_models import save_byte_tokenizer  # noqa: E402

from xmhash.data.demo_images import ImageDemoSpec, write_image_demo  # noqa: E402
from xmhash.features.encoders import Encoder, ImageTransform  # noqa: E402
from xmhash.features.extract import ExtractSettings, extract_features  # noqa: E402
from xmhash.features.regions import RegionSettings  # noqa: E402
from xmhash.methods.base import resolve_device  # noqa: E402

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def vitb32_encoder(tmp: Path, device: torch.device) -> Encoder:
    from transformers import AutoTokenizer, CLIPConfig, CLIPModel

    save_byte_tokenizer(tmp / "tok", 77)
    tokenizer = AutoTokenizer.from_pretrained(str(tmp / "tok"))
    torch.manual_seed(0)
    ids = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    model = CLIPModel(CLIPConfig(text_config=ids))  # ViT-B/32 architecture, random weights
    transform = ImageTransform(224, (224, 224), CLIP_MEAN, CLIP_STD)
    attrs = {"id": "random ViT-B/32", "key": "bench", "revision": "random"}
    return Encoder(model, tokenizer, transform, device=device, precision="auto", attrs=attrs)


def model_only(enc: Encoder, texts: list[str], n: int, batch_size: int) -> float:
    """Items/s of the two forward passes on ready-made batches (the physical limit)."""
    pixels = torch.randn(batch_size, 3, 224, 224)
    if enc.pin_memory:
        pixels = pixels.pin_memory()
    tokens = enc.tokenizer(texts[:batch_size])
    enc.forward_pixels(pixels[:2])  # warm-up
    enc.forward_tokens(tokens.select(np.arange(2)))
    done, start = 0, time.perf_counter()
    while done < n:
        enc.forward_pixels(pixels)
        enc.forward_tokens(tokens)
        done += batch_size
    if enc.device.type == "cuda":
        torch.cuda.synchronize()
    return done / (time.perf_counter() - start)


def end_to_end(enc: Encoder, prepared: Path, out: Path, settings: ExtractSettings) -> float:
    out.unlink(missing_ok=True)
    start = time.perf_counter()
    extract_features(prepared, enc, out, settings)
    if enc.device.type == "cuda":
        torch.cuda.synchronize()
    n = int(len(list(open(prepared / "items.jsonl"))))
    return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    os.environ.setdefault("XMHASH_PROGRESS", "0")
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    tmp = Path(tempfile.mkdtemp(prefix="xmhash-bench-"))
    write_image_demo(
        tmp / "data/prepared",
        ImageDemoSpec(n_items=args.items, n_labels=24, max_labels=4, image_size=375, n_query=1),
    )
    # MIRFlickr-like 500 x 375 JPEGs: stretch the generated squares once
    from PIL import Image

    for p in (tmp / "data/prepared/images").iterdir():
        Image.open(p).resize((500, 375)).save(p, quality=90)
    enc = vitb32_encoder(tmp, device)
    items = (tmp / "data/prepared/items.jsonl").read_text().splitlines()
    texts = [json.loads(line)["text"] for line in items]
    print(
        f"device {device}, torch threads {torch.get_num_threads()}, batch {args.batch_size}, "
        f"{args.items} items, ViT-B/32 architecture (random weights), 500x375 JPEG"
    )
    before = model_only(enc, texts, args.items, args.batch_size)
    stage = []
    for w in args.workers:
        s = ExtractSettings(
            batch_size=args.batch_size,
            chunk_items=4 * args.batch_size,
            workers=w,
            words="none",
            regions=RegionSettings(mode="none"),
        )
        stage.append((w, end_to_end(enc, tmp / "data/prepared", tmp / "out.h5", s)))
    after = model_only(enc, texts, args.items, args.batch_size)
    # the machine may be shared: the limit is the mean of the runs before and after
    limit = (before + after) / 2
    print(f"\n{'':40s} {'items/s':>9s} {'ratio':>7s}")
    print(f"{'model-only forward (image + text)':40s} {limit:9.2f} {1:7.3f}")
    print(f"{'  (before / after the stage runs)':40s} {before:4.2f}/{after:4.2f}")
    for w, rate in stage:
        print(f"{f'stage end-to-end, {w} worker(s)':40s} {rate:9.2f} {rate / limit:7.3f}")
    best = max(rate for _, rate in stage) / limit
    print(f"\nbest end-to-end / model-only ratio: {best:.3f} (target >= 0.9)")


if __name__ == "__main__":
    main()
