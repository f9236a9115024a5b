"""Feature-stage throughput at the workflow's own settings: end to end against model-only
and decode-only, and the decoding rate of one worker with and without JPEG draft decoding.

The settings are those of a plain ``snakemake`` run: the ``features`` block of
``config.yaml`` (batch size, decode workers and threads resolved for the device as the
job resolves them, regions, words), so the figures are what the stage does by default.
The dataset is generated: scenes of coloured shapes with captions, saved as JPEGs of
MIRFlickr's typical size (500 x 375), in the prepared layout. The model is ``--model``:
``tiny`` (the tests' tiny CLIP: 32 px, 16-d, built from a ``transformers`` config; the
CPU default, where a ViT-B/32 at the workflow's grid regions would take an hour) or
``vitb32`` (the real ViT-B/32 architecture with random weights: 224 px, 512-d; the speed
is what the real weights give; the default on CUDA). Nothing is downloaded.

Three rates, each the median over ``--rounds`` rounds that alternate them (on a shared
machine the load changes by the second):

* model-only: every forward pass the stage makes per item (the whole image, its g x g
  grid crops, its text; and each distinct word once), on ready-made uint8 batches;
* decode-only: the stage's own DataLoader with its workers (decode, resize, crop,
  tokenise, collate), no model;
* end to end: ``extract_features`` itself (HDF5 writes included); its ratio to the
  slower of the two limits is what the stage's overhead leaves (target >= 0.9), and the
  share of its wall time spent inside the forward passes is timed within the run.

Before them, decode-only images/s of one worker (in the main process) with and without
draft decoding, for the model's input size and for 224 px (ViT-B/32's), whole images only
and with the grid crops.

    python benchmarks/features.py [--model tiny|vitb32] [--items 256] [--rounds 3]
        [--decode-items 96] [--device auto] [--batch-size N] [--workers N] [--threads N]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))
from helpers.tiny_models import save_byte_tokenizer, save_clip  # noqa: E402

from xmhash.data.demo_images import ImageDemoSpec, write_image_demo  # noqa: E402
from xmhash.data.prepared import read_prepared  # noqa: E402
from xmhash.device import resolve_device  # noqa: E402
from xmhash.features import extract as stage  # noqa: E402
from xmhash.features import settings as feature_settings  # noqa: E402
from xmhash.features.encoders import (  # noqa: E402
    Encoder,
    ImageTransform,
    load_encoder,
    load_image,
)
from xmhash.features.extract import (  # noqa: E402
    ExtractSettings,
    _Collate,
    _Items,
    chunk_batches,
    extract_features,
    item_words,
    loader_options,
)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
DRAFT = "draft" in {f.name for f in dataclasses.fields(ImageTransform)}


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


def tiny_encoder(tmp: Path, device: torch.device) -> Encoder:
    return load_encoder(str(save_clip(tmp / "tiny")), device=device)


def workflow_settings(
    device: torch.device, threads: int | None = None, **override
) -> tuple[ExtractSettings, int]:
    """The feature stage's settings in config.yaml, resolved for ``device`` as the job
    resolves them, and the job's threads."""
    features = yaml.safe_load((ROOT / "config.yaml").read_text())["features"]
    cuda = device.type == "cuda"
    if hasattr(feature_settings, "stage_sizes"):
        threads = threads or feature_settings.job_threads(
            features, cuda=cuda, cpu_count=os.cpu_count()
        )
        sizes = feature_settings.stage_sizes(features, cuda=cuda, threads=threads)
    else:  # the code before the job sized itself: fixed values, 2 threads
        threads, sizes = threads or 2, {}
    cfg = {**features, **sizes, **{k: v for k, v in override.items() if v is not None}}
    return ExtractSettings.from_config(cfg), threads


def make_dataset(root: Path, n: int) -> Path:
    from PIL import Image

    spec = ImageDemoSpec(n_items=n, n_labels=24, max_labels=4, image_size=375, n_query=1)
    write_image_demo(root, spec)
    for p in (root / "images").iterdir():  # MIRFlickr-like 500 x 375 JPEGs
        Image.open(p).resize((500, 375)).save(p, "JPEG", quality=90)
    return root


def model_only(enc: Encoder, prepared: Path, settings: ExtractSettings, n: int) -> float:
    """Items/s of the stage's forward passes on ready-made batches (the model's limit):
    per batch the whole images, the grid crops in batches of the same size, the texts;
    and every distinct word of the dataset once."""
    prep = read_prepared(prepared)
    bs = settings.batch_size
    path = prep.image_path(prep.items[0])
    one = enc.transform(enc.transform.open(path)[0] if DRAFT else load_image(path))
    pixels = one.expand(bs, *one.shape).contiguous()
    if enc.pin_memory:
        pixels = pixels.pin_memory()
    tokens = enc.tokenizer([it.text for it in prep.items[:bs]])
    crops = settings.regions.grid**2 if settings.regions.mode == "grid" else 0
    words = []
    if settings.words != "none":
        words = list(dict.fromkeys(w for it in prep.items for w in item_words(it, settings.words)))
    enc.forward_pixels(pixels[:2])  # warm-up
    enc.forward_tokens(tokens.select(np.arange(2)))
    done, start = 0, time.perf_counter()
    while done < n:
        for _ in range(1 + crops):
            enc.forward_pixels(pixels)
        enc.forward_tokens(tokens)
        done += bs
    for i in range(0, len(words), settings.text_batch_size):
        enc.forward_tokens(enc.tokenizer(words[i : i + settings.text_batch_size]))
    if enc.device.type == "cuda":
        torch.cuda.synchronize()
    return done / (time.perf_counter() - start)


def decode_only(
    prepared: Path,
    enc: Encoder,
    settings: ExtractSettings,
    transform: ImageTransform | None = None,
    limit: int | None = None,
) -> float:
    """Images/s of the stage's DataLoader alone (decode, resize, crop, tokenise, collate)
    over the first ``limit`` items; with ``decode: gpu`` the decoding and resizing on the
    device included."""
    prep = read_prepared(prepared)
    n = min(len(prep.items), limit or len(prep.items))
    decode = getattr(settings, "decode", "cpu")
    items = [str(prep.image_path(it)) for it in prep.items]
    args = (transform or enc.transform, settings.regions) + ((decode,) if decode != "cpu" else ())
    loader = DataLoader(
        _Items(items, *args),
        batch_sampler=chunk_batches(0, n, settings.batch_size, settings.chunk_items),
        collate_fn=_Collate(enc.tokenizer, [it.text for it in prep.items]),
        **loader_options(settings.workers, False),
    )
    t, done = time.perf_counter(), 0
    for batch in loader:
        if getattr(batch, "sources", None) is not None:
            stage._device_pixels(batch, enc)
        done += len(batch)
    if enc.device.type == "cuda":
        torch.cuda.synchronize()
    return done / (time.perf_counter() - t)


def end_to_end(enc: Encoder, prepared: Path, out: Path, settings: ExtractSettings) -> float:
    out.unlink(missing_ok=True)
    start = time.perf_counter()
    extract_features(prepared, enc, out, settings)
    if enc.device.type == "cuda":
        torch.cuda.synchronize()
    n = int(len(list(open(prepared / "items.jsonl"))))
    return n / (time.perf_counter() - start)


def per_worker_decoding(
    prepared: Path, enc: Encoder, settings: ExtractSettings, items: int, repeats: int = 3
) -> None:
    """Decode-only images/s of one worker, with and without draft decoding: the best of
    ``repeats`` runs of each, alternating (the load of a shared machine only slows runs)."""
    print(f"\ndecode only, one worker (in-process), {items} JPEGs, best of {repeats} runs")
    print(f"{'input size':>10s} {'regions':>9s} {'no draft':>9s} {'draft':>9s} {'ratio':>6s}")
    sizes = dict.fromkeys([enc.transform.shortest_edge, 224])
    one = dataclasses.replace(settings, workers=0)
    for edge in sizes:
        base = dataclasses.replace(enc.transform, shortest_edge=edge, crop=(edge, edge))
        for regions in dict.fromkeys(("none", settings.regions.mode)):
            s = dataclasses.replace(
                one, regions=dataclasses.replace(settings.regions, mode=regions)
            )
            variants = (
                [dataclasses.replace(base, draft=d) for d in (False, True)] if DRAFT else [base]
            )
            runs = [
                [decode_only(prepared, enc, s, t, items) for t in variants] for _ in range(repeats)
            ]
            rates = [max(r[i] for r in runs) for i in range(len(variants))] + [float("nan")]
            ratio = f"{rates[1] / rates[0]:6.2f}" if DRAFT else "   n/a"
            label = f"grid {s.regions.grid}x{s.regions.grid}" if regions == "grid" else regions
            print(f"{edge:>7d} px {label:>9s} {rates[0]:9.1f} {rates[1]:9.1f} {ratio}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=("tiny", "vitb32"), help="default: tiny on CPU, else vitb32")
    ap.add_argument("--items", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--decode-items", type=int, default=96, help="JPEGs per one-worker run")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-size", type=int, help="default: the workflow's")
    ap.add_argument("--workers", type=int, help="default: the workflow's")
    ap.add_argument("--threads", type=int, help="default: the job's (features.threads)")
    args = ap.parse_args()
    os.environ.setdefault("XMHASH_PROGRESS", "0")
    device = resolve_device(args.device)
    settings, threads = workflow_settings(
        device, args.threads, batch_size=args.batch_size, workers=args.workers
    )
    torch.set_num_threads(threads)
    model = args.model or ("vitb32" if device.type == "cuda" else "tiny")
    tmp = Path(tempfile.mkdtemp(prefix="xmhash-bench-"))
    prepared = make_dataset(tmp / "data/prepared", args.items)
    enc = (vitb32_encoder if model == "vitb32" else tiny_encoder)(tmp, device)
    regions = settings.regions
    print(
        f"device {device}, {model} ({enc.transform.shortest_edge} px), {args.items} items of "
        f"500x375 JPEG; the workflow's settings: {threads} threads, {settings.workers} decode "
        f"workers, batch {settings.batch_size}, regions {regions.mode}"
        + (f" {regions.grid}x{regions.grid}" if regions.mode == "grid" else "")
        + f", words {settings.words}, draft {enc.transform.draft if DRAFT else 'n/a'}"
    )
    per_worker_decoding(prepared, enc, settings, min(args.items, args.decode_items))
    timed = TimedForward(enc)
    model_rates, decode_rates, stage = [], [], []
    for r in range(args.rounds):
        model_rates.append(model_only(enc, prepared, settings, args.items))
        decode_rates.append(decode_only(prepared, enc, settings))
        timed.seconds = 0.0
        start = time.perf_counter()
        rate = end_to_end(enc, prepared, tmp / "out.h5", settings)
        share = timed.seconds / (time.perf_counter() - start)
        slower = min(model_rates[-1], decode_rates[-1])
        stage.append((rate, rate / slower, share))
        print(f"round {r + 1}/{args.rounds} done", flush=True)
    med = [float(np.median([x[i] for x in stage])) for i in range(3)]
    m, d = float(np.median(model_rates)), float(np.median(decode_rates))
    print(f"\n{'median of ' + str(args.rounds) + ' rounds':36s} {'items/s':>9s} {'ratio':>6s}")
    print(f"{'model-only (all forward passes)':36s} {m:9.1f}")
    print(f"{f'decode-only ({settings.workers} workers)':36s} {d:9.1f}")
    print(f"{'stage end to end':36s} {med[0]:9.1f} {med[1]:6.3f}  (of the slower, per round)")
    print(
        f"\nend to end / slower limit: {med[1]:.3f} (target >= 0.9); the slower limit is "
        f"{'decode' if d < m else 'the model'}; share of the stage's time inside the forward "
        f"passes: {med[2]:.3f}; per round model-only "
        f"{', '.join(f'{x:.1f}' for x in model_rates)}, decode-only "
        f"{', '.join(f'{x:.1f}' for x in decode_rates)}"
    )


class TimedForward:
    """Adds the wall time of the encoder's forward passes to ``seconds``."""

    def __init__(self, enc: Encoder):
        self.seconds = 0.0
        for name in ("forward_pixels", "forward_tokens"):
            setattr(enc, name, self._wrap(getattr(enc, name)))

    def _wrap(self, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        return timed


if __name__ == "__main__":
    main()
