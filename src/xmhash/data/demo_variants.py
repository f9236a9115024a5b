"""Demo variants built to exercise two methods' mechanisms (the default demo may not).

* ``finegrained`` (:class:`FineGrainedSpec`): many classes in near-duplicate groups, the
  setting ENHash's abstract names. Classes come in groups whose latent directions are
  close (sibling cosine about 1 / (1 + spread^2)); every item has one class; a text
  names its group with generic words (shared by the whole group) and its class with
  specific words (which a text can drop). Relevance is the fine class, so a retrieval
  that only finds the group scores low.
* ``words`` (:class:`WordRegionSpec`): texts carry the words and images the regions that
  VTM-UCH's word-vision matching relies on. Multi-label like the default demo, but tags
  are MIRFlickr-like noisy (most tags of a text name no label), so the *global* text
  feature is weak, while every label word has an object region in the paired image
  (images also show unlabelled background objects); each word's embedding is the text
  tower of its own latent, the way VTM-UCH embeds every token alone.

Both share the default demo's generative model (:mod:`xmhash.data.demo`: a latent per
label, item content shared by image and text, CLIP-like towers with a modality gap,
noise) and its feature-file layout. The spec's parameters are set from the mechanism's
description, not from results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from xmhash.data.demo import DemoSpec, _normalize, _Tower, generate_demo
from xmhash.features.store import Features, Ragged


@dataclass(frozen=True)
class FineGrainedSpec:
    n_items: int = 2000
    n_groups: int = 12
    classes_per_group: int = 8
    spread: float = 0.5  # class latent = group direction + spread * own direction
    latent_dim: int = 48
    image_dim: int = 512
    text_dim: int = 512
    content_scale: float = 0.4
    modality_gap: float = 0.7
    image_noise: float = 0.6
    text_noise: float = 0.8
    group_words: int = 3  # generic words per group
    class_words: int = 2  # specific words per class
    class_dropout: float = 0.3  # chance that a text names no specific word of its class
    noise_words: int = 60
    noise_tags: float = 1.5
    seed: int = 0


@dataclass(frozen=True)
class WordRegionSpec:
    n_items: int = 2000
    n_labels: int = 24
    min_labels: int = 1
    max_labels: int = 4
    latent_dim: int = 48
    image_dim: int = 512
    text_dim: int = 512
    content_scale: float = 0.4
    modality_gap: float = 0.7
    image_noise: float = 0.6
    text_noise: float = 0.8
    words_per_label: int = 4
    tag_dropout: float = 0.3
    noise_words: int = 200
    noise_tags: float = 5.0  # mean unlabelled tags per text (MIRFlickr: most tags)
    background: float = 1.0  # mean unlabelled background objects per image
    seed: int = 0


class _Towers:
    """The default demo's towers: one shared by both modalities plus each one's own."""

    def __init__(self, rng: np.random.Generator, d: int, di: int, dt: int, gap: float):
        self.shared = _Tower(rng, d, di) if di == dt else None
        self.img, self.txt, self.gap = _Tower(rng, d, di), _Tower(rng, d, dt), gap

    def _apply(self, own: _Tower, x: np.ndarray) -> np.ndarray:
        out = self.gap * own(x)
        return _normalize(out + self.shared(x) if self.shared is not None else out)

    def image(self, x: np.ndarray) -> np.ndarray:
        return self._apply(self.img, x)

    def text(self, x: np.ndarray) -> np.ndarray:
        return self._apply(self.txt, x)


def _compose(
    spec,
    rng: np.random.Generator,
    *,
    labels: np.ndarray,
    label_latent: np.ndarray,
    label_names: list[str],
    vocab: list[str],
    vocab_latent: np.ndarray,
    tags: list[list[int]],
    background: np.ndarray,
    name: str,
) -> Features:
    """Features from the labels, the texts' tags (vocabulary ids) and the number of
    background objects per image: the default demo's towers, content and noise."""
    n, d = labels.shape[0], label_latent.shape[1]
    towers = _Towers(rng, d, spec.image_dim, spec.text_dim, spec.modality_gap)
    content = rng.standard_normal((n, d)) / np.sqrt(d)
    z = _normalize(labels @ label_latent) + spec.content_scale * content
    image = _normalize(
        towers.image(z) + spec.image_noise * _normalize(rng.standard_normal((n, spec.image_dim)))
    )
    text_latent = np.stack([vocab_latent[t].mean(0) for t in tags])
    text = _normalize(
        towers.text(0.6 * _normalize(text_latent) + 0.4 * z)
        + spec.text_noise * _normalize(rng.standard_normal((n, spec.text_dim)))
    )
    word_emb = towers.text(vocab_latent)
    rows = [t for item in tags for t in item]

    region_lat, whole, offsets = [], [], [0]
    for i in range(n):
        objects = [label_latent[lab] for lab in np.flatnonzero(labels[i])]
        objects += list(_normalize(rng.standard_normal((int(background[i]), d))))
        for k in rng.permutation(len(objects)):
            region_lat.append(
                objects[k] + 0.5 * content[i] + 0.3 * rng.standard_normal(d) / np.sqrt(d)
            )
            whole.append(False)
        region_lat.append(np.zeros(d))  # the whole image last, as in VTM-UCH
        whole.append(True)
        offsets.append(len(region_lat))
    region_emb = towers.image(np.asarray(region_lat))
    region_emb[np.asarray(whole)] = image
    counts = np.diff(offsets)
    boxes = np.tile(np.array([[0, 0, 224, 224]], np.float32), (len(region_lat), 1))
    boxes[~np.asarray(whole)] = [32, 32, 128, 128]
    return Features(
        ids=np.array([f"{name}{i:06d}" for i in range(n)]),
        labels=labels.astype(np.uint8),
        label_names=list(label_names),
        image=image.astype(np.float32),
        text=text.astype(np.float32),
        texts=np.array([", ".join(vocab[t] for t in item) for item in tags]),
        words=Ragged(
            embeddings=word_emb[rows].astype(np.float32),
            offsets=np.concatenate([[0], np.cumsum([len(t) for t in tags])]).astype(np.int64),
            names=np.array([vocab[t] for t in rows]),
        ),
        regions=Ragged(
            embeddings=region_emb.astype(np.float32),
            offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            boxes=boxes,
        ),
        attrs={
            "dataset": name,
            "encoder": "synthetic",
            "encoder_id": "xmhash-demo-generator",
            "encoder_revision": "",
            "preprocessing": {"demo_variant": name, "variant_spec": asdict(spec)},
            "source": "synthetic",
        },
    )


def _near(rng: np.random.Generator, centre: np.ndarray, k: int, spread: float) -> np.ndarray:
    d = len(centre)
    return centre[None, :] + spread * rng.standard_normal((k, d)) / np.sqrt(d)


def _vocabulary(
    rng: np.random.Generator, groups: list[tuple[str, np.ndarray, int]], noise_words: int
) -> tuple[list[str], np.ndarray, list[list[int]], np.ndarray]:
    """Words near each group's centre (``(prefix, centre, count)``, named prefix_w), then
    ``noise_words`` random ones (tagW): (names, latents, ids per group, noise ids)."""
    vocab, latent, ids = [], [], []
    for prefix, centre, count in groups:
        ids.append(list(range(len(vocab), len(vocab) + count)))
        for w, x in enumerate(_near(rng, centre, count, 0.35)):
            vocab.append(f"{prefix}_{w}")
            latent.append(x)
    noise_ids = np.arange(len(vocab), len(vocab) + noise_words)
    vocab += [f"tag{w}" for w in range(noise_words)]
    latent += list(_normalize(rng.standard_normal((noise_words, len(groups[0][1])))))
    return vocab, np.asarray(latent), ids, noise_ids


def _noise_tags(rng, ids: np.ndarray, mean: float) -> list[int]:
    return rng.choice(ids, size=min(rng.poisson(mean), len(ids)), replace=False).tolist()


def finegrained(spec: FineGrainedSpec = FineGrainedSpec()) -> Features:
    """The fine-grained variant (see the module docstring), deterministic in ``spec``."""
    rng = np.random.default_rng(spec.seed)
    g, per, d = spec.n_groups, spec.classes_per_group, spec.latent_dim
    c = g * per
    group_latent = _normalize(rng.standard_normal((g, d)))
    own = _normalize(rng.standard_normal((c, d)))
    label_latent = _normalize(np.repeat(group_latent, per, axis=0) + spec.spread * own)
    cls = rng.integers(0, c, size=spec.n_items)
    labels = np.zeros((spec.n_items, c), np.uint8)
    labels[np.arange(spec.n_items), cls] = 1

    vocab, latent, ids, noise_ids = _vocabulary(
        rng,
        [(f"group{k}", group_latent[k], spec.group_words) for k in range(g)]
        + [(f"class{k}", label_latent[k], spec.class_words) for k in range(c)],
        spec.noise_words,
    )
    group_ids, class_ids = ids[:g], ids[g:]

    tags = []
    for k in cls:
        item = rng.choice(group_ids[k // per], size=rng.integers(1, 3), replace=False).tolist()
        if rng.random() >= spec.class_dropout:
            item += rng.choice(class_ids[k], size=1).tolist()
        item += _noise_tags(rng, noise_ids, spec.noise_tags)
        tags.append(list(dict.fromkeys(item)))
    return _compose(
        spec,
        rng,
        labels=labels,
        label_latent=label_latent,
        label_names=[f"class{k}" for k in range(c)],
        vocab=vocab,
        vocab_latent=latent,
        tags=tags,
        background=np.zeros(spec.n_items, np.int64),
        name="demo_finegrained",
    )


def words(spec: WordRegionSpec = WordRegionSpec()) -> Features:
    """The word-region variant (see the module docstring), deterministic in ``spec``."""
    if not 1 <= spec.min_labels <= spec.max_labels <= spec.n_labels:
        raise ValueError("need 1 <= min_labels <= max_labels <= n_labels")
    rng = np.random.default_rng(spec.seed)
    n, c, d = spec.n_items, spec.n_labels, spec.latent_dim
    prevalence = 1.0 / np.arange(1, c + 1) ** 0.8
    labels = np.zeros((n, c), np.uint8)
    for i, k in enumerate(rng.integers(spec.min_labels, spec.max_labels + 1, size=n)):
        labels[i, rng.choice(c, size=k, replace=False, p=prevalence / prevalence.sum())] = 1
    label_latent = _normalize(rng.standard_normal((c, d)))

    vocab, latent, own, noise_ids = _vocabulary(
        rng,
        [(f"label{lab}", label_latent[lab], spec.words_per_label) for lab in range(c)],
        spec.noise_words,
    )

    tags = []
    for i in range(n):
        item = []
        for lab in np.flatnonzero(labels[i]):
            if rng.random() >= spec.tag_dropout:
                item += rng.choice(own[lab], size=rng.integers(1, 3), replace=False).tolist()
        item += _noise_tags(rng, noise_ids, spec.noise_tags)
        if not item:
            item.append(int(rng.choice(noise_ids)))
        tags.append(list(dict.fromkeys(item)))
    return _compose(
        spec,
        rng,
        labels=labels,
        label_latent=label_latent,
        label_names=[f"label{lab}" for lab in range(c)],
        vocab=vocab,
        vocab_latent=latent,
        tags=tags,
        background=rng.poisson(spec.background, size=n),
        name="demo_words",
    )


VARIANTS: dict[str, Callable[..., Features]] = {
    "finegrained": lambda **kw: finegrained(FineGrainedSpec(**kw)),
    "words": lambda **kw: words(WordRegionSpec(**kw)),
}


def generate(spec: dict) -> Features:
    """A demo from a ``datasets.<name>.demo`` block: ``variant: finegrained|words`` with
    that variant's spec fields, or (no ``variant``) the default demo's :class:`DemoSpec`."""
    spec = dict(spec)
    name = spec.pop("variant", None)
    if name is None:
        return generate_demo(DemoSpec(**spec))
    if name not in VARIANTS:
        raise ValueError(f"demo variant must be one of {sorted(VARIANTS)}, got {name!r}")
    return VARIANTS[name](**spec)
