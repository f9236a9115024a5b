"""Search a trained run: encode a text or image query, hash it, rank the database codes.

Example::

    from xmhash.search import Searcher

    s = Searcher("results/demo/cca_itq/64bits/seed0")
    hits = s.search_texts(["dog, sky"], k=5)[0]  # text -> image database
    print([(h.distance, h.id) for h in hits])

A run directory holds ``model.pt`` (the trained hash functions) and ``codes.h5`` (the
database codes); the feature file the codes were exported from (recorded in ``codes.h5``
by path and content digest; any other file is refused) names the encoder and holds the
database items' texts and labels. Queries go through the same encoder, then the method's
``encode``, so a query for an item's own text hashes to that item's own text code.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xmhash.bits import pack
from xmhash.codes import Codes, load_codes
from xmhash.device import resolve_device
from xmhash.features.store import read_attrs, read_features
from xmhash.provenance import file_digest
from xmhash.search.index import BACKENDS, build_index

log = logging.getLogger(__name__)

__all__ = ["BACKENDS", "Hit", "SearchError", "Searcher", "open_encoder"]

OTHER = {"image": "text", "text": "image"}


class SearchError(ValueError):
    """A search request that cannot be served; the message says what to fix."""


@dataclass
class Hit:
    rank: int
    distance: int
    id: str
    row: int  # row of the item in the feature file
    text: str | None = None
    labels: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def open_encoder(attrs: dict[str, Any], device: str = "auto"):
    """The encoder that produced a feature file, from the file's attributes.

    The demo's features come from its generator (:class:`xmhash.data.demo.DemoEncoder`);
    real features from a ``transformers`` model (:func:`xmhash.features.encoders.load_encoder`).
    """
    if attrs.get("source") == "synthetic":
        from xmhash.data.demo import DemoEncoder

        return DemoEncoder.from_attrs(attrs)
    from xmhash.features.encoders import load_encoder

    revision = attrs.get("encoder_revision") or None
    if revision and revision.startswith("sha256:"):  # a local directory's content hash
        revision = None
    return load_encoder(
        attrs.get("encoder_id") or attrs["encoder"], device=device, revision=revision
    )


def _check_same_encoder(features: Path, made: dict[str, Any], loaded: dict[str, Any]) -> None:
    """Refuse an encoder whose weights differ from those the feature file was made with:
    its queries would be hashed into another space than the database codes."""
    was, now = made.get("encoder_revision"), loaded.get("revision")
    if not was or was == "unknown" or not now or now == "unknown" or was == now:
        return
    raise SearchError(
        f"{features} was made with encoder {made.get('encoder_id')} at {was}, but that "
        f"encoder is now {now}: queries would not match the database codes. Run "
        f"snakemake again to rebuild the features, models and codes with the new encoder "
        f"(a changed local encoder directory reruns the feature stage), or restore the "
        f"encoder the features were made with"
    )


def _feature_file(run_dir: Path, codes: Codes, features: str | os.PathLike | None) -> Path:
    """The feature file of the run: ``features`` if given, else the one ``codes.h5``
    records, found from the run directory; either way refused unless it is, by content, the
    file the codes were exported from."""
    recorded = codes.attrs.get("features")
    if features is not None:
        path = Path(features)
        if not path.is_file():
            raise SearchError(f"feature file {path} (--features) does not exist")
    elif not recorded:
        raise SearchError(
            f"{run_dir}/codes.h5 does not record its feature file: pass features=... (--features)"
        )
    else:
        # recorded relative to the workflow directory: the nearest directory above the run
        # that holds it (results/{dataset}/{method}/{bits}bits/seed{seed} sits 4 deep), then
        # the working directory, for a run moved out of its workflow
        candidates = [up / recorded for up in run_dir.resolve().parents] + [Path(recorded)]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise SearchError(
                f"feature file of {run_dir} not found: codes.h5 records {recorded}, which is "
                f"under no directory above the run nor under the working directory (was the "
                f"run moved out of its workflow?); pass the feature file with features=... "
                f"(--features)"
            )
    _check_digest(run_dir / "codes.h5", codes, path)
    return path


def _check_digest(codes_file: Path, codes: Codes, path: Path) -> None:
    """Refuse a feature file other than the one the codes came from: its encoder, texts and
    labels would be served against codes of other items."""
    want = codes.features_digest
    if want is None:
        raise SearchError(
            f"{codes_file} does not record the content digest of its feature file (it was "
            f"exported by an older xmhash), so nothing tells whether {path} is the file its "
            f"codes came from: re-export the codes (a plain snakemake does it, or "
            f"snakemake {codes_file} --force) and search again"
        )
    got = file_digest(path)
    if got != want:
        raise SearchError(
            f"{path} is not the feature file the codes of {codes_file} were exported from: "
            f"they came from {codes.attrs.get('features')} with content {want}, {path} has "
            f"content {got}. Pass the run's own feature file with --features; if the "
            f"features were rebuilt since, rerun snakemake to retrain and re-export the run"
        )


class Searcher:
    """Load a run once, then answer text and image queries against its database."""

    def __init__(
        self,
        run_dir: str | os.PathLike,
        *,
        features: str | os.PathLike | None = None,
        backend: str = "exact",
        device: str = "auto",
        encoder=None,
        **backend_options,
    ):
        self.run_dir = Path(run_dir)
        if not self.run_dir.is_dir():
            raise SearchError(f"run directory {self.run_dir} does not exist")
        from xmhash.methods.base import load_model  # the method registry imports torch

        self.codes = load_codes(self.run_dir / "codes.h5")
        self.method = load_model(self.run_dir / "model.pt", resolve_device(device))
        if self.method.bits != self.codes.bits:
            raise SearchError(
                f"{self.run_dir}: model.pt encodes {self.method.bits} bits but "
                f"codes.h5 holds {self.codes.bits}-bit codes; re-export the codes "
                f"(snakemake {self.run_dir / 'codes.h5'} --force)"
            )
        self.features = _feature_file(self.run_dir, self.codes, features)
        self.attrs = read_attrs(self.features)
        feats = read_features(self.features, parts=["texts"])
        rows = self.codes.database.index
        self.texts = feats.texts[rows] if feats.texts is not None else None
        self.labels = feats.labels[rows]
        self.label_names = np.asarray(feats.label_names)
        self.backend = backend
        self.backend_options = backend_options
        self._indexes: dict[str, Any] = {}
        self._encoder = encoder
        self._device = device

    @property
    def encoder(self):
        if self._encoder is None:
            encoder = open_encoder(self.attrs, self._device)
            _check_same_encoder(self.features, self.attrs, getattr(encoder, "attrs", {}))
            self._encoder = encoder
        return self._encoder

    def index(self, modality: str):
        """The index over the database codes of one modality (built on first use)."""
        if modality not in self._indexes:
            packed = getattr(self.codes.database, modality)
            self._indexes[modality] = build_index(
                packed, self.codes.bits, self.backend, **self.backend_options
            )
        return self._indexes[modality]

    # ------------------------------------------------------------------ queries
    def hash_texts(self, texts: Sequence[str]) -> np.ndarray:
        from xmhash.methods.base import Items

        texts = _nonempty_texts(texts)
        feats = self.encoder.encode_texts(list(texts))
        return pack(self.method.encode(Items(text=feats, texts=list(texts)), "text"))

    def hash_images(self, images: Sequence[str | os.PathLike]) -> np.ndarray:
        from xmhash.methods.base import Items

        images = _readable_images(images)
        feats = self.encoder.encode_images(list(images))
        return pack(self.method.encode(Items(image=feats), "image"))

    def search_texts(
        self, texts: Sequence[str], k: int = 10, same_modality: bool = False
    ) -> list[list[Hit]]:
        """Top-k database items for each text: images by default, texts if ``same_modality``."""
        return self._rank(self.hash_texts(texts), "text" if same_modality else "image", k)

    def search_images(
        self, images: Sequence[str | os.PathLike], k: int = 10, same_modality: bool = False
    ) -> list[list[Hit]]:
        """Top-k database items for each image file: texts by default, images if ``same_modality``."""
        return self._rank(self.hash_images(images), "image" if same_modality else "text", k)

    def _rank(self, packed: np.ndarray, target: str, k: int) -> list[list[Hit]]:
        dist, idx = self.index(target).search(packed, k)
        out = []
        for drow, irow in zip(dist, idx, strict=True):
            hits = []
            for rank, (d, i) in enumerate(zip(drow, irow, strict=True), start=1):
                if i < 0:
                    break
                hits.append(
                    Hit(
                        rank=rank,
                        distance=int(d),
                        id=str(self.codes.database.ids[i]),
                        row=int(self.codes.database.index[i]),
                        text=str(self.texts[i]) if self.texts is not None else None,
                        labels=self.label_names[self.labels[i].astype(bool)].tolist(),
                    )
                )
            out.append(hits)
        return out


def _nonempty_texts(texts: Sequence[str]) -> Sequence[str]:
    if isinstance(texts, str):
        raise SearchError("pass a list of texts, not one string")
    if not texts:
        raise SearchError("empty query: no text given")
    for i, t in enumerate(texts):
        if not str(t).strip():
            raise SearchError(f"empty query: text #{i + 1} is blank")
    return texts


def _readable_images(images: Sequence[str | os.PathLike]) -> Sequence[str | os.PathLike]:
    from PIL import Image, UnidentifiedImageError

    if not images:
        raise SearchError("empty query: no image given")
    for path in images:
        if Path(path).is_dir():
            raise SearchError(
                f"image {path} is a directory; pass one image file, or list image files "
                f"one per line in a file given to --batch"
            )
        if not Path(path).is_file():
            raise SearchError(f"image {path} does not exist")
        try:
            with Image.open(path) as im:
                im.verify()
        except (UnidentifiedImageError, OSError, SyntaxError) as err:
            raise SearchError(f"image {path} is not a readable image: {err}") from None
    return images
