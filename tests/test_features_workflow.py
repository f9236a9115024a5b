"""The image-caption demo through the whole workflow: generated images and captions ->
feature stage with a tiny CLIP (loaded from disk) -> splits, training, evaluation."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from conftest import copy_workflow, snakemake

pytestmark = pytest.mark.workflow


def config(clip: Path, **features) -> dict:
    return {
        "run": {"datasets": ["shapes"], "methods": ["lsh", "cca_itq"], "bits": [8], "seeds": [0]},
        "datasets": {
            "shapes": {
                "source": "demo_images",
                "encoder": "tiny",
                "demo_images": {"n_items": 120, "n_labels": 6, "image_size": 48, "n_query": 20},
                "split": {"query": 20, "train": 60, "val": 10},
            }
        },
        "features": {
            "workers": 1,
            "batch_size": 16,
            "chunk_items": 32,
            "encoders": {"tiny": str(clip)},
            **features,
        },
        "evaluation": {"k": [10], "pn": [1, 10]},
    }


def test_image_demo_goes_through_the_feature_stage(tmp_path, tiny_clip_dir):
    from helpers.tiny_models import save_clip

    from xmhash.features.store import read_attrs, read_features

    wf = copy_workflow(tmp_path)
    clip = shutil.copytree(tiny_clip_dir, tmp_path / "encoder")  # replaced further down
    (wf / "img.yaml").write_text(yaml.safe_dump(config(clip)))
    snakemake(wf, "--cores", "2", "--configfile", "img.yaml")
    out = wf / "results/shapes/features/tiny.h5"
    f = read_features(out, parts=("image", "text", "texts", "words", "regions"))
    assert len(f) == 120 and f.image.shape == (120, 16)
    assert (f.regions.counts() == 5).all() and f.words.counts().min() >= 1
    assert read_attrs(out)["encoder_id"] == str(clip)
    assert (wf / "results/summary/metrics.tsv").exists()
    assert (wf / "logs/shapes/features/tiny.log").exists()
    assert (wf / "results/benchmarks/shapes/features/tiny.tsv").exists()
    # a setting that changes the file reruns the stage (and only what depends on it)
    (wf / "grid.yaml").write_text(yaml.safe_dump(config(clip, regions={"grid": 3})))
    plan = snakemake(wf, "-n", "--cores", "2", "--configfile", "grid.yaml").stdout
    assert "rule features:" in plan and "rule demo_images:" not in plan
    # search through the real encoder the feature file names: an item's own image
    # hashes to its own image code, and a caption query returns ranked texts' items
    from xmhash.data.prepared import read_prepared
    from xmhash.search import Searcher, SearchError

    prepared = read_prepared(wf / "resources/shapes/prepared")
    run = wf / "results/shapes/cca_itq/8bits/seed0"
    searcher = Searcher(run, device="cpu")
    row = int(searcher.codes.database.index[0])
    item = prepared.items[row]
    hits = searcher.search_images([prepared.image_path(item)], k=5, same_modality=True)[0]
    assert hits[0].distance == 0 and item.id in {h.id for h in hits if h.distance == 0}
    hits = searcher.search_texts([item.text], k=5)[0]
    assert len(hits) == 5 and all(h.labels is not None for h in hits)
    # settings that change how, not what, the stage computes rerun nothing
    quiet = config(clip, workers=0, batch_size=8, chunk_items=16, device="cpu")
    (wf / "quiet.yaml").write_text(yaml.safe_dump(quiet))
    plan = snakemake(wf, "-n", "--cores", "2", "--configfile", "quiet.yaml")
    assert "Nothing to be done" in plan.stdout + plan.stderr, plan.stdout
    # new weights in the encoder directory: search refuses them, the feature stage reruns
    save_clip(clip, seed=1)
    with pytest.raises(SearchError, match="made with encoder .* Run snakemake again"):
        Searcher(run, device="cpu").search_texts([item.text])
    plan = snakemake(wf, "-n", "--cores", "2", "--configfile", "img.yaml").stdout
    assert "rule features:" in plan and "rule demo_images:" not in plan
