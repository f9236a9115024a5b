"""The dataset rules through Snakemake: every configured dataset plans its jobs, and a
real download -> prepare -> import -> split run against a local server."""

from __future__ import annotations

import pytest
import yaml
from conftest import REPO, copy_workflow, snakemake
from fileserver import FileServer

pytestmark = pytest.mark.workflow


def _targets(config: dict) -> dict[str, list[str]]:
    import sys

    sys.path.insert(0, str(REPO / "src"))
    from xmhash.data.datasets import SOURCES

    out = {}
    for name, cfg in config["datasets"].items():
        if cfg["source"] == "demo":
            continue
        src = SOURCES[cfg["source"]]
        out[name] = ([f"resources/{name}/prepared"] if src.prepare else []) + (
            [f"results/{name}/features/{src.encoder}.h5"] if src.import_features else []
        )
    return out


def test_every_configured_dataset_plans_download_and_prepare():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    targets = _targets(config)
    assert {c["source"] for c in config["datasets"].values()} >= {
        "mirflickr25k",
        "nuswide",
        "coco2014",
        "iaprtc12",
        "wikipedia",
        "xmedia",
        "xmedianet",
        "fg_xmedia",
        "inria_websearch",
        "dcmh_mat",
        "rshnl_mat",
        "manifest",
    }
    flat = [t for ts in targets.values() for t in ts]
    out = snakemake(REPO, "-n", "--cores", "1", *flat).stdout
    for name, ts in targets.items():
        assert f"resources/{name}/downloads/manifest.json" in out, name
        for t in ts:
            assert f"output: {t}" in out, t
    assert out.count("rule download:") == len(targets)


def test_wikipedia_download_prepare_import_split(tmp_path):
    from dataset_fixtures import wikipedia_archive

    from xmhash.data.prepared import read_prepared
    from xmhash.data.splits import load_split
    from xmhash.features.store import read_features

    wf = copy_workflow(tmp_path / "wf")
    archive, truth = wikipedia_archive()
    targets = [
        "resources/wikipedia/prepared",
        "results/wikipedia/features/wiki_sift_lda.h5",
        "results/wikipedia/splits/seed0.npz",
    ]
    with FileServer({"wikipedia_dataset.zip": archive}) as srv:
        overlay = {
            "datasets": {
                "wikipedia": {
                    "mirrors": [srv.url],
                    "official_urls": False,
                    "split": {"query": 5, "train": "all", "val": 2, "official": True},
                }
            }
        }
        (wf / "overlay.yaml").write_text(yaml.safe_dump(overlay))
        snakemake(wf, *targets, "--cores", "1", "--configfile", "overlay.yaml")
    prep = read_prepared(wf / "resources/wikipedia/prepared")
    assert [it.id for it in prep.items] == truth["ids"]
    assert list(read_features(wf / targets[1]).ids) == truth["ids"]
    split = load_split(wf / targets[2])
    assert list(split.query) == [i for i, s in enumerate(truth["split"]) if s == "query"]
    assert (wf / "logs/wikipedia/download.log").exists()
    assert (wf / "results/benchmarks/wikipedia/prepare.tsv").exists()

    # where files come from is not a param: a new mirror redoes nothing
    overlay["datasets"]["wikipedia"]["mirrors"] = ["http://127.0.0.1:9/elsewhere"]
    (wf / "overlay.yaml").write_text(yaml.safe_dump(overlay))
    out = snakemake(wf, *targets, "-n", "--cores", "1", "--configfile", "overlay.yaml").stdout
    assert "Nothing to be done" in out


def test_a_truncated_local_archive_stops_the_run_until_it_is_replaced(tmp_path):
    from dataset_fixtures import wikipedia_archive

    from xmhash.data.prepared import read_prepared

    wf = copy_workflow(tmp_path / "wf")
    archive, truth = wikipedia_archive()
    local = tmp_path / "local"
    local.mkdir()
    (local / "wikipedia_dataset.zip").write_bytes(archive[: len(archive) // 2])
    overlay = {"datasets": {"wikipedia": {"local_dir": str(local), "official_urls": False}}}
    (wf / "overlay.yaml").write_text(yaml.safe_dump(overlay))
    args = ("resources/wikipedia/prepared", "--cores", "1", "--configfile", "overlay.yaml")
    failed = snakemake(wf, *args, check=False)
    assert failed.returncode != 0
    log = (wf / "logs/wikipedia/download.log").read_text()
    assert "local/wikipedia_dataset.zip: truncated or corrupt" in log and "replace it" in log
    downloads = wf / "resources/wikipedia/downloads"
    assert not list(downloads.glob("wikipedia_dataset.zip*"))  # nothing copied or pinned
    (local / "wikipedia_dataset.zip").write_bytes(archive)  # what the message asks for
    snakemake(wf, *args)
    assert [it.id for it in read_prepared(wf / "resources/wikipedia/prepared").items] == truth[
        "ids"
    ]


def test_wikipedia_folder_imports_without_a_download(tmp_path):
    """``root``: the published features folder (the .mat and the two lists) is imported and
    split by the rules, with nothing to download."""
    from dataset_fixtures import FEATURES_ONLY, wikipedia_folder

    from xmhash.data.splits import load_split
    from xmhash.features.store import read_features

    wf = copy_workflow(tmp_path / "wf")
    root, truth = wikipedia_folder(tmp_path / "wiki", only=FEATURES_ONLY, stray_a=True)
    targets = ["results/wikipedia/features/wiki_sift_lda.h5", "results/wikipedia/splits/seed0.npz"]
    overlay = {
        "datasets": {
            "wikipedia": {
                "root": str(root),
                "official_urls": False,
                "split": {"query": 5, "train": "all", "val": 2, "official": True},
            }
        }
    }
    (wf / "overlay.yaml").write_text(yaml.safe_dump(overlay))
    snakemake(wf, *targets, "--cores", "1", "--configfile", "overlay.yaml")
    assert list(read_features(wf / targets[0]).ids) == truth["ids"]
    assert list(load_split(wf / targets[1]).query) == list(range(12, 17))
    assert sorted(p.name for p in (wf / "resources/wikipedia/downloads").iterdir()) == [
        "manifest.json"
    ]
