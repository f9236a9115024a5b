"""A generated image-caption dataset in the prepared layout (source ``demo_images``).

Unlike the built-in demo (which is a feature file), this one has real image files and
captions, so it goes through the feature stage: use it to try an encoder, or to test the
stage end to end without a download. Each label is a (colour, shape) concept; an item
with labels L shows those shapes in those colours at random places on a noisy background
(JPEG), and its caption names them ("a photo of a red circle and a blue square"). Its
tags are the concept names. The official split marks the first ``n_query`` items as
queries and the rest as the database.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xmhash.data.prepared import Item, write_prepared
from xmhash.io import scratch_path

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 210, 40),
    "purple": (140, 60, 170),
    "white": (240, 240, 240),
}
SHAPES = ("circle", "square", "triangle", "bar")


@dataclass(frozen=True)
class ImageDemoSpec:
    n_items: int = 200
    n_labels: int = 8  # at most len(COLOURS) * len(SHAPES)
    max_labels: int = 3
    image_size: int = 64
    n_query: int = 20
    seed: int = 0


def concepts(n: int) -> list[str]:
    names = [f"{c} {s}" for s in SHAPES for c in COLOURS]
    if not 2 <= n <= len(names):
        raise ValueError(f"demo_images: n_labels {n}, expected 2..{len(names)}")
    return names[:n]


def _draw(draw, shape: str, box: tuple[int, int, int, int], colour: tuple[int, int, int]):
    x0, y0, x1, y1 = box
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    elif shape == "triangle":
        draw.polygon([(x0, y1), ((x0 + x1) // 2, y0), (x1, y1)], fill=colour)
    else:
        draw.rectangle((x0, (y0 + y1) // 2 - 3, x1, (y0 + y1) // 2 + 3), fill=colour)


def write_image_demo(directory: str | os.PathLike, spec: ImageDemoSpec = ImageDemoSpec()) -> None:
    """Generate the dataset and write it atomically as a prepared directory."""
    from PIL import Image, ImageDraw

    names = concepts(spec.n_labels)
    rng = np.random.default_rng(spec.seed)
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    with scratch_path(directory, directory=True) as images:  # removed whatever happens
        items, s = [], spec.image_size
        for i in range(spec.n_items):
            k = int(rng.integers(1, spec.max_labels + 1))
            labels = sorted(rng.choice(spec.n_labels, size=k, replace=False).tolist())
            noise = rng.integers(0, 60, size=(s, s, 3), dtype=np.uint8)
            im = Image.fromarray(noise)
            draw = ImageDraw.Draw(im)
            for lab in labels:
                colour, shape = names[lab].split()
                w = int(rng.integers(s // 5, s // 2))
                x, y = (int(v) for v in rng.integers(0, s - w, size=2))
                _draw(draw, shape, (x, y, x + w, y + w), COLOURS[colour])
            name = f"{i:06d}.jpg"
            im.save(images / name, quality=90)
            caption = "a photo of " + " and ".join(f"a {names[lab]}" for lab in labels)
            items.append(
                Item(
                    id=f"img{i:06d}",
                    image=name,
                    text=caption,
                    labels=labels,
                    split="query" if i < spec.n_query else "database",
                    tags=[names[lab] for lab in labels],
                    captions=[caption],
                )
            )
        meta = {
            "dataset": directory.parent.name,
            "label_names": names,
            "image_root": "images",
            "text_kind": "caption",
            "source": "xmhash.data.demo_images",
            "spec": spec.__dict__,
        }
        write_prepared(directory, items, meta, files={"images": images})
