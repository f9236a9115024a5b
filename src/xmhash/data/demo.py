"""The built-in demo: a synthetic multi-label image-text dataset that needs no download.

A shared latent semantic model generates both modalities:

* every label l has a latent direction u_l; an item with labels L gets the semantic
  latent z = normalize(sum_{l in L} u_l) + s * e, where e is an item-specific "content"
  vector shared by its image and its text (so pairs are instance-level, not only
  label-level, as in real data);
* the image feature is a fixed random two-layer map of z plus image noise, L2-normalised;
* the text is a tag list: for each label, some of its words (a tag can be missing), plus
  random noise tags; its feature is a fixed random map of the mean word latent plus a
  share of z, plus text noise, L2-normalised;
* word-level embeddings (one per tag) and region-level embeddings (one "object" per
  label, plus the whole image last) are generated the same way, so VTM-UCH's word-vision
  matching has something real to match.

Label frequencies are skewed (Zipf-like), items carry 1-5 labels, and both modalities
are noisy, so retrieval is meaningful but far from trivial. The output is a feature file
in exactly the layout the feature stage writes for real data (:mod:`xmhash.features.store`).

``kind: bow`` generates features like the classic benchmarks' published ones instead
(Wikipedia: SIFT bag of visual words and LDA topics), from the same latent model with one
label per item (``min_labels = max_labels = 1``):

* the image is a bag of visual words: ``image_dim`` visual words, each with a latent
  direction; an image draws Poisson(``bow_words``) descriptors from
  softmax(``bow_sharpness`` * words . z_image), z_image = z plus image noise; its feature
  is the raw count vector (non-negative, mostly zeros, unnormalised);
* the text is a topic-proportion vector on the simplex (``text_dim`` topics): a Dirichlet
  draw with concentration ``topic_concentration`` around softmax(``topic_sharpness`` *
  topics . z_text), z_text = z plus text noise;
* texts are short tag lists (label words and noise words) for ``xmhash search``; there are
  no word or region embeddings (as for Wikipedia), so graph-based VTM-UCH cannot run on it.

Image and text widths differ (128 and 10 in config.yaml's ``demo_bow``), which is what a
method that assumes CLIP-like, equal-width, unit-norm features trips over.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from xmhash.features.store import Features, Ragged


@dataclass(frozen=True)
class DemoSpec:
    n_items: int = 4000
    n_labels: int = 24
    min_labels: int = 1
    max_labels: int = 5
    latent_dim: int = 48
    image_dim: int = 512
    text_dim: int = 512
    content_scale: float = 0.4  # item-specific content shared by image and text (vs labels 1)
    modality_gap: float = 0.7  # weight of each modality's own tower vs the shared one
    image_noise: float = 0.6  # isotropic noise, relative to the unit-norm signal
    text_noise: float = 0.8
    words_per_label: int = 4
    noise_words: int = 60
    tag_dropout: float = 0.3  # chance that a label leaves no tag in the text
    noise_tags: float = 1.5  # mean number of random tags per text
    seed: int = 0  # the dataset is fixed by this seed; run seeds only change splits
    kind: str = "clip"  # clip: dense unit-norm features; bow: visual-word counts + topics
    bow_words: float = 40.0  # bow: mean visual-word descriptors per image (Poisson)
    bow_sharpness: float = 1.5  # bow: how peaked an image's visual-word distribution is
    topic_sharpness: float = 8.0  # bow: how peaked a text's expected topic proportions are
    topic_concentration: float = 15.0  # bow: Dirichlet concentration (lower = noisier topics)


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class _Tower:
    """A fixed random map latent -> unit-norm embedding (a stand-in for an encoder tower):
    a linear part plus a tanh layer, so the map is smooth but not linear."""

    def __init__(self, rng: np.random.Generator, d_in: int, d_out: int, hidden: int = 256):
        self.w1 = 2.0 * rng.standard_normal((d_in, hidden))
        self.w2 = rng.standard_normal((hidden, d_out)) / np.sqrt(hidden)
        self.lin = rng.standard_normal((d_in, d_out))

    def __call__(self, z: np.ndarray) -> np.ndarray:
        return _normalize(_normalize(np.tanh(z @ self.w1) @ self.w2) + _normalize(z @ self.lin))


def generate_demo(spec: DemoSpec) -> Features:
    """Generate the demo dataset deterministically from ``spec`` (including its seed)."""
    return _generate(spec)[0]


def _generate(spec: DemoSpec) -> tuple[Features, DemoEncoder]:
    if spec.kind not in _KINDS:
        raise ValueError(
            f"demo kind {spec.kind!r} is unknown; set datasets.<demo>.demo.kind in config.yaml "
            f"to one of {sorted(_KINDS)}"
        )
    return _KINDS[spec.kind](spec)


def _latent_items(
    spec: DemoSpec,
) -> tuple[np.random.Generator, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The shared latent model: (rng, labels, label latents, item content, z)."""
    if not 1 <= spec.min_labels <= spec.max_labels <= spec.n_labels:
        raise ValueError("need 1 <= min_labels <= max_labels <= n_labels")
    rng = np.random.default_rng(spec.seed)
    n, c, d = spec.n_items, spec.n_labels, spec.latent_dim

    # labels: Zipf-like prevalence, min..max labels per item
    prevalence = 1.0 / np.arange(1, c + 1) ** 0.8
    prevalence /= prevalence.sum()
    labels = np.zeros((n, c), np.uint8)
    counts = rng.integers(spec.min_labels, spec.max_labels + 1, size=n)
    for i, k in enumerate(counts):
        labels[i, rng.choice(c, size=k, replace=False, p=prevalence)] = 1

    label_latent = _normalize(rng.standard_normal((c, d)))
    content = rng.standard_normal((n, d)) / np.sqrt(d)  # norm ~ 1
    z = _normalize(labels @ label_latent) + spec.content_scale * content
    return rng, labels, label_latent, content, z


def _generate_clip(spec: DemoSpec) -> tuple[Features, DemoEncoder]:
    rng, labels, label_latent, content, z = _latent_items(spec)
    n, c, d = spec.n_items, spec.n_labels, spec.latent_dim

    # CLIP-like: a tower shared by both modalities (a joint space) plus each modality's own
    # tower (the "modality gap"); dims may differ, then only the own towers apply.
    shared = _Tower(rng, d, spec.image_dim) if spec.image_dim == spec.text_dim else None
    img_own, txt_own = _Tower(rng, d, spec.image_dim), _Tower(rng, d, spec.text_dim)

    def img_tower(x: np.ndarray) -> np.ndarray:
        own = spec.modality_gap * img_own(x)
        return _normalize(own + shared(x) if shared is not None else own)

    def txt_tower(x: np.ndarray) -> np.ndarray:
        own = spec.modality_gap * txt_own(x)
        return _normalize(own + shared(x) if shared is not None else own)

    def noise(dim: int, scale: float) -> np.ndarray:
        return scale * _normalize(rng.standard_normal((n, dim)))

    # vocabulary: words_per_label words per label (near the label latent) + noise words
    label_words = [
        f"{_LABEL_NAMES[lab % len(_LABEL_NAMES)]}{'' if lab < len(_LABEL_NAMES) else lab}"
        for lab in range(c)
    ]
    vocab, vocab_latent, vocab_label = [], [], []
    for lab in range(c):
        for w in range(spec.words_per_label):
            vocab.append(f"{label_words[lab]}_{w}" if w else label_words[lab])
            vocab_latent.append(label_latent[lab] + 0.35 * rng.standard_normal(d) / np.sqrt(d))
            vocab_label.append(lab)
    for w in range(spec.noise_words):
        vocab.append(f"tag{w}")
        vocab_latent.append(_normalize(rng.standard_normal(d)))
        vocab_label.append(-1)
    vocab_latent = np.asarray(vocab_latent)
    vocab_label = np.asarray(vocab_label)
    noise_ids = np.flatnonzero(vocab_label < 0)
    word_emb = _normalize(txt_tower(vocab_latent))

    texts, word_rows, word_offsets = [], [], [0]
    text_latent = np.zeros((n, d))
    for i in range(n):
        tags: list[int] = []
        for lab in np.flatnonzero(labels[i]):
            if rng.random() < spec.tag_dropout:
                continue
            own = np.flatnonzero(vocab_label == lab)
            tags.extend(rng.choice(own, size=rng.integers(1, 3), replace=False).tolist())
        tags.extend(
            rng.choice(
                noise_ids, size=min(rng.poisson(spec.noise_tags), len(noise_ids)), replace=False
            ).tolist()
        )
        if not tags:  # every text has at least one tag, as in the MIRFlickr protocol
            tags.append(int(rng.choice(noise_ids)))
        tags = list(dict.fromkeys(tags))
        texts.append(", ".join(vocab[t] for t in tags))
        word_rows.extend(tags)
        word_offsets.append(len(word_rows))
        text_latent[i] = vocab_latent[tags].mean(axis=0)

    image = _normalize(img_tower(z) + noise(spec.image_dim, spec.image_noise))
    text_z = 0.6 * _normalize(text_latent) + 0.4 * z
    text = _normalize(txt_tower(text_z) + noise(spec.text_dim, spec.text_noise))

    # regions: one object per present label (object latent near the label) + the whole image
    region_lat, whole, boxes = [], [], []
    for i in range(n):
        for lab in np.flatnonzero(labels[i]):
            region_lat.append(
                label_latent[lab] + 0.5 * content[i] + 0.3 * rng.standard_normal(d) / np.sqrt(d)
            )
            whole.append(False)
            x0, y0 = rng.integers(0, 160, size=2)
            boxes.append([x0, y0, x0 + rng.integers(32, 96), y0 + rng.integers(32, 96)])
        region_lat.append(np.zeros(d))  # the whole image comes last, as in VTM-UCH
        whole.append(True)
        boxes.append([0, 0, 224, 224])
    region_emb = _normalize(img_tower(np.asarray(region_lat)))
    region_emb[np.asarray(whole)] = image
    region_offsets = np.concatenate([[0], np.cumsum(labels.sum(axis=1) + 1)])

    feats = Features(
        ids=np.array([f"demo{i:06d}" for i in range(n)]),
        labels=labels,
        label_names=label_words,
        image=image.astype(np.float32),
        text=text.astype(np.float32),
        texts=np.array(texts),
        words=Ragged(
            embeddings=word_emb[word_rows].astype(np.float32),
            offsets=np.asarray(word_offsets, np.int64),
            names=np.array([vocab[t] for t in word_rows]),
        ),
        regions=Ragged(
            embeddings=region_emb.astype(np.float32),
            offsets=region_offsets.astype(np.int64),
            boxes=np.asarray(boxes, np.float32),
        ),
        attrs={
            "dataset": "demo",
            "encoder": "synthetic",
            "encoder_id": "xmhash-demo-generator",
            "encoder_revision": "",
            "preprocessing": {"demo_spec": asdict(spec)},
            "source": "synthetic",
        },
    )
    encoder = DemoEncoder(
        vocab=dict(zip(vocab, vocab_latent, strict=True)),
        tower=txt_tower,
        known=dict(zip(texts, feats.text, strict=True)),
        dim=spec.text_dim,
    )
    return feats, encoder


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _generate_bow(spec: DemoSpec) -> tuple[Features, DemoEncoder]:
    rng, labels, label_latent, _, z = _latent_items(spec)
    n, c, d = spec.n_items, spec.n_labels, spec.latent_dim

    def noisy(scale: float) -> np.ndarray:
        return z + scale * _normalize(rng.standard_normal((n, d)))

    visual_words = _normalize(rng.standard_normal((spec.image_dim, d)))
    p_words = _softmax(spec.bow_sharpness * noisy(spec.image_noise) @ visual_words.T)
    n_desc = np.maximum(rng.poisson(spec.bow_words, size=n), 1)
    image = np.stack([rng.multinomial(k, p) for k, p in zip(n_desc, p_words, strict=True)])

    topics = _normalize(rng.standard_normal((spec.text_dim, d)))

    def topic_mean(latent: np.ndarray) -> np.ndarray:
        return _softmax(spec.topic_sharpness * _normalize(latent) @ topics.T)

    mean = topic_mean(noisy(spec.text_noise))
    text = np.stack([rng.dirichlet(spec.topic_concentration * m + 1e-3) for m in mean])

    label_words = [
        f"{_LABEL_NAMES[lab % len(_LABEL_NAMES)]}{'' if lab < len(_LABEL_NAMES) else lab}"
        for lab in range(c)
    ]
    vocab = dict(zip(label_words, label_latent, strict=True))
    noise_names = [f"tag{w}" for w in range(spec.noise_words)]
    noise_latent = _normalize(rng.standard_normal((spec.noise_words, d)))
    vocab.update(zip(noise_names, noise_latent, strict=True))
    texts = []
    for i in range(n):
        tags = [label_words[lab] for lab in np.flatnonzero(labels[i])]
        tags = [t for t in tags if rng.random() >= spec.tag_dropout]
        k = min(rng.poisson(spec.noise_tags), len(noise_names))
        tags += rng.choice(noise_names, size=k, replace=False).tolist() if k else []
        texts.append(", ".join(tags or [str(rng.choice(noise_names))]))

    feats = Features(
        ids=np.array([f"demo{i:06d}" for i in range(n)]),
        labels=labels,
        label_names=label_words,
        image=image.astype(np.float32),
        text=text.astype(np.float32),
        texts=np.array(texts),
        attrs={
            "dataset": "demo",
            "encoder": "synthetic",
            "encoder_id": "xmhash-demo-generator (bag of visual words + topics)",
            "encoder_revision": "",
            "preprocessing": {"demo_spec": asdict(spec)},
            "source": "synthetic",
        },
    )
    encoder = DemoEncoder(
        vocab=vocab,
        tower=topic_mean,
        known=dict(zip(texts, feats.text, strict=True)),
        dim=spec.text_dim,
    )
    return feats, encoder


_KINDS = {"clip": _generate_clip, "bow": _generate_bow}


class DemoEncoder:
    """The demo's text "encoder", for searching a demo run with new queries.

    The demo has no images and no neural encoder: its generator is the encoder. A text
    the generator wrote encodes to the feature it generated for it (a real encoder is
    deterministic too, so an item's own text gives back its cached feature). Any other
    text is split into comma- or space-separated tags; the known demo tags' latents are
    averaged and mapped by the text tower, without the item content and noise a generated
    text carries. Unknown tags are ignored.
    """

    def __init__(
        self, *, vocab: dict[str, np.ndarray], tower, known: dict[str, np.ndarray], dim: int
    ):
        self.vocab, self.tower, self.known, self.dim = vocab, tower, known, dim

    @classmethod
    def from_attrs(cls, attrs: dict) -> DemoEncoder:
        """Rebuild the encoder of a demo feature file from its attributes."""
        spec = DemoSpec(**attrs["preprocessing"]["demo_spec"])
        return _generate(spec)[1]

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            if text in self.known:
                out[i] = self.known[text]
                continue
            tags = [t for t in text.replace(",", " ").split() if t in self.vocab]
            if not tags:
                raise ValueError(
                    f"query {text!r} has no demo tag; demo tags look like {sorted(self.vocab)[:5]}"
                )
            out[i] = self.tower(_normalize(np.mean([self.vocab[t] for t in tags], axis=0)))
        return out

    def encode_images(self, images: list) -> np.ndarray:
        raise ValueError("the demo dataset is synthetic and has no images: query it with text")


_LABEL_NAMES = [
    "animals",
    "baby",
    "bird",
    "car",
    "clouds",
    "dog",
    "female",
    "flower",
    "food",
    "indoor",
    "lake",
    "male",
    "night",
    "people",
    "plant",
    "portrait",
    "river",
    "sea",
    "sky",
    "structures",
    "sunset",
    "transport",
    "tree",
    "water",
]
