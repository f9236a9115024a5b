"""The demo variants: deterministic, valid feature files, and the structure each one is
built to have (near-duplicate classes; words that match their object regions)."""

from __future__ import annotations

import numpy as np
import pytest

from xmhash.data.demo import DemoSpec, generate_demo
from xmhash.data.demo_variants import (
    FineGrainedSpec,
    WordRegionSpec,
    finegrained,
    generate,
    words,
)
from xmhash.graph.vtmuch import matched_visions

SMALL = {"n_items": 300, "latent_dim": 16, "image_dim": 64, "text_dim": 64}


@pytest.fixture(scope="module")
def fine():
    return finegrained(FineGrainedSpec(**SMALL, n_groups=4, classes_per_group=5))


@pytest.fixture(scope="module")
def wordy():
    return words(WordRegionSpec(**SMALL, n_labels=8, noise_words=30))


def test_variants_are_valid_and_deterministic(fine, wordy):
    for feats, again in (
        (fine, finegrained(FineGrainedSpec(**SMALL, n_groups=4, classes_per_group=5))),
        (wordy, words(WordRegionSpec(**SMALL, n_labels=8, noise_words=30))),
    ):
        feats.validate()
        np.testing.assert_array_equal(feats.image, again.image)
        np.testing.assert_array_equal(feats.regions.embeddings, again.regions.embeddings)
        assert feats.words.offsets[-1] == len(feats.words.embeddings)
        # the whole image is every item's last region
        last = feats.regions.offsets[1:] - 1
        np.testing.assert_allclose(feats.regions.embeddings[last], feats.image, atol=1e-6)


def test_finegrained_classes_are_near_duplicates_within_groups(fine):
    assert fine.labels.shape == (300, 20)
    np.testing.assert_array_equal(fine.labels.sum(1), 1)
    cls = fine.labels.argmax(1)
    group = cls // 5
    sim = fine.image @ fine.image.T
    off = ~np.eye(300, dtype=bool)
    same_class = (cls[:, None] == cls[None, :]) & off
    same_group = (group[:, None] == group[None, :]) & ~same_class & off
    other = (group[:, None] != group[None, :]) & off
    # siblings are far closer than other groups, but not as close as the class itself
    assert sim[same_class].mean() > sim[same_group].mean() > sim[other].mean() + 0.1
    # every text names its group
    for text, g in zip(fine.texts, group, strict=True):
        assert f"group{g}_" in text


def test_word_variant_label_words_match_their_object_regions(wordy):
    matched = matched_visions(wordy.words, wordy.regions)
    whole = wordy.regions.offsets[1:] - 1
    hits = total = 0
    for i, rows in enumerate(matched):
        names = wordy.words.names[wordy.words.offsets[i] : wordy.words.offsets[i + 1]]
        if any(n.startswith("label") for n in names):
            total += 1
            hits += bool(np.any(rows != whole[i]))
    assert total > 200 and hits / total > 0.8
    # most tags of a text name no label (MIRFlickr-like noise)
    noisy = np.char.startswith(wordy.words.names.astype(str), "tag").mean()
    assert noisy > 0.5


def test_generate_dispatches_on_the_variant_key():
    spec = {"n_items": 100, "n_labels": 6, "latent_dim": 8, "image_dim": 16, "text_dim": 16}
    np.testing.assert_array_equal(generate(spec).image, generate_demo(DemoSpec(**spec)).image)
    f = generate({**spec, "variant": "words", "noise_words": 10})
    assert f.attrs["preprocessing"]["demo_variant"] == "demo_words" and len(f) == 100
    with pytest.raises(ValueError, match="variant must be one of"):
        generate({"variant": "nope"})


def test_schema_accepts_every_spec_field_and_the_demo_configs_build():
    from dataclasses import fields
    from pathlib import Path

    import yaml

    repo = Path(__file__).resolve().parents[1]
    schema = yaml.safe_load((repo / "workflow/schemas/config.schema.yaml").read_text())
    demo = schema["properties"]["datasets"]["additionalProperties"]["properties"]["demo"]
    allowed = set(demo["properties"])
    for spec in (DemoSpec, FineGrainedSpec, WordRegionSpec):
        assert {f.name for f in fields(spec)} <= allowed, spec
    assert set(demo["properties"]["variant"]["enum"]) == {"finegrained", "words"}
    configs = sorted((repo / "config/demo").glob("*.yaml"))
    assert len(configs) == 2
    for path in configs:
        cfg = yaml.safe_load(path.read_text())
        (name,) = cfg["run"]["datasets"]
        block = cfg["datasets"][name]
        assert block["source"] == "demo"
        feats = generate({**block["demo"], "n_items": 120})
        assert len(feats) == 120 and feats.words is not None and feats.regions is not None
