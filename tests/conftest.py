"""Shared fixtures: small synthetic data, built fast, never downloaded."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
# test the checkout the tests live in, whatever copy of xmhash is pip-installed
sys.path.insert(0, str(REPO / "src"))
os.environ.setdefault("XMHASH_PROGRESS", "0")


@pytest.fixture(scope="session")
def small_demo():
    """A small demo dataset (600 items, 64-d features) as a Features object."""
    from xmhash.data.demo import DemoSpec, generate_demo

    return generate_demo(DemoSpec(n_items=600, n_labels=8, latent_dim=16, image_dim=64,
                                  text_dim=64, words_per_label=2, noise_words=10))


@pytest.fixture(scope="session")
def small_demo_file(small_demo, tmp_path_factory) -> Path:
    from xmhash.features.store import write_features

    path = tmp_path_factory.mktemp("demo") / "synthetic.h5"
    write_features(path, small_demo)
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the checkout (real metadata for tests); XMHASH_SHARED overrides."""
    path = Path(os.environ.get("XMHASH_SHARED", REPO.parent / "shared"))
    if not (path / "data").is_dir():
        raise FileNotFoundError(f"shared data not found at {path}; set XMHASH_SHARED")
    return path


# >>> demo_map (graph-vtmuch helper) >>>
@pytest.fixture(scope="session")
def demo_map():
    """demo_map(method, feats, query_rows, db_rows) -> mean of mAP@all I->T and T->I."""
    from xmhash import bits, metrics
    from xmhash.methods.base import Items

    def score(method, feats, query, database) -> float:
        out = []
        for q_mod, d_mod in (("image", "text"), ("text", "image")):
            q = method.encode(Items(image=feats.image[query], text=feats.text[query],
                                    texts=None if feats.texts is None else list(feats.texts[query])),
                              q_mod)
            d = method.encode(Items(image=feats.image[database], text=feats.text[database],
                                    texts=None if feats.texts is None
                                    else list(feats.texts[database])), d_mod)
            out.append(metrics.evaluate(bits.pack(q), bits.pack(d), feats.labels[query],
                                        feats.labels[database], method.bits, ks=(),
                                        pn=())["map@all"])
        return float(np.mean(out))

    return score
# <<< demo_map <<<
