"""VTM-UCH's similarity construction, ours vs the official code, on the same features.

    python benchmarks/official/vtmuch_graph.py --official path/to/VTMUCH [--n 1000]
        [--demo words] [--seed 0] [--n-clusters 14] [--official-runs 2]

The official repository (github.com/louisfanhz/VTMUCH, model code at f250eae) builds its
training target inside ``model.vtmuch.VTMUCH.__init__`` from CLIP embeddings of the
detected objects, the whole images and every BPE token. Training needs MMDetection and
a GPU, so only the construction is compared: this script imports the official module
from the checkout, unmodified, and runs that ``__init__`` with three runtime stand-ins:

* the detector: ``ObjectDetection`` is replaced by an object that returns our region
  embeddings (objects, the whole image last) in the official ``{i: tensor}`` layout;
* CLIP: ``load_download_clip`` returns an encoder whose ``encode_image`` passes our
  global image embeddings through and whose ``encode_text`` maps the token ids it is
  given (``[SOT, token, EOT]`` per word, as the official code builds them) back to our
  word embeddings;
* the imports the construction does not use (``mmdet.apis``, ``torchvision``) are empty
  modules when they are not installed. scikit-learn and cdlib (the official k-means and
  Leiden) must be installed: ``pip install scikit-learn cdlib``.

Ours is :func:`xmhash.graph.vtmuch.build_vtmuch` on the same features. Printed: S^y, S^x,
S^f and S (share of entries that agree, max |difference|, Pearson correlation), the
communities (number, modularity, NMI), end to end and with the official k-means labels
and communities fed to our later steps (which isolates the deterministic steps from
the two randomised ones), and, as the floor for the communities, the NMI between
independent runs of the official (unseeded) Leiden on the official S^f.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))
from xmhash.data.demo import DemoSpec, generate_demo  # noqa: E402
from xmhash.data.demo_variants import VARIANTS  # noqa: E402
from xmhash.features.store import Ragged  # noqa: E402
from xmhash.graph import vtmuch as ours  # noqa: E402
from xmhash.graph.communities import leiden, nmi, to_igraph  # noqa: E402


def features(demo: str, n: int, shift: float):
    """The first ``n`` items of a demo: global image features, words and regions, every
    embedding moved towards one common direction by ``shift`` and re-normalised."""
    feats = generate_demo(DemoSpec(n_items=n)) if demo == "default" else VARIANTS[demo](n_items=n)
    u = np.random.default_rng(12345).standard_normal(feats.image.shape[1])
    u /= np.linalg.norm(u)

    def cone(x: np.ndarray) -> np.ndarray:
        y = x + shift * u
        return (y / np.linalg.norm(y, axis=1, keepdims=True)).astype(np.float32)

    words = Ragged(embeddings=cone(feats.words.embeddings), offsets=feats.words.offsets)
    regions = Ragged(embeddings=cone(feats.regions.embeddings), offsets=feats.regions.offsets)
    return cone(feats.image), words, regions, feats.labels


# ---------------------------------------------------------------- the official module


def _stand_in(package: str, *submodules: str, **attrs) -> None:
    """Empty modules for ``package`` and its ``submodules`` when it is not installed."""
    if package in sys.modules or importlib.util.find_spec(package) is not None:
        return
    parent = sys.modules[package] = types.ModuleType(package)
    for sub in submodules:
        mod = sys.modules[f"{package}.{sub}"] = types.ModuleType(f"{package}.{sub}")
        mod.__dict__.update(attrs)
        setattr(parent, sub.split(".")[0], sys.modules[f"{package}.{sub.split('.')[0]}"])
        if "." in sub:
            setattr(sys.modules[f"{package}.{sub.split('.')[0]}"], sub.split(".")[1], mod)


def import_official(checkout: Path):
    """``model.vtmuch`` from the checkout, with empty stand-ins for the detector and
    torchvision imports when those packages are absent (the construction never calls
    them)."""
    if not (checkout / "model" / "vtmuch.py").is_file():
        raise SystemExit(f"{checkout}: no model/vtmuch.py; pass the VTMUCH checkout")
    for name in ("sklearn", "cdlib", "networkx"):
        if importlib.util.find_spec(name) is None:
            raise SystemExit(f"the official construction needs {name}: pip install {name}")
    _stand_in("mmdet", "apis", DetInferencer=None)
    _stand_in("torchvision", "transforms", "transforms.functional")
    sys.path.insert(0, str(checkout))
    return importlib.import_module("model.vtmuch")


class _Encoder(torch.nn.Module):
    """CLIP stand-in: images are their global embeddings; token id t in 1..R is word row
    t - 1; a whole caption (not used by the construction) encodes to zeros."""

    def __init__(self, words: np.ndarray):
        super().__init__()
        self.words = torch.as_tensor(words, dtype=torch.float32)
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def encode_image(self, x):
        return x

    def encode_text(self, tokens, mask):
        if tokens.shape[1] == 3:  # [SOT, word, EOT]
            return self.words[tokens[:, 1] - 1]
        return torch.zeros(len(tokens), self.words.shape[1])


def official_target(module, image, words: Ragged, regions: Ragged, *, n_clusters, seed):
    """Run the official ``VTMUCH.__init__`` on our features; returns the official object."""
    n, r = len(image), len(words.embeddings)
    sot, eot = r + 1, r + 2  # EOT must be every caption's largest token id
    width = int(words.counts().max()) + 2 + 1
    captions = torch.zeros(n, width, dtype=torch.int64)
    for i in range(n):
        ids = np.arange(words.offsets[i], words.offsets[i + 1]) + 1
        captions[i, : len(ids) + 2] = torch.as_tensor([sot, *ids, eot])
    visions = {i: torch.as_tensor(regions.rows(i), dtype=torch.float32) for i in range(len(image))}

    class Detection:
        def __init__(self, *args, **kwargs):
            pass

        def get_obj_clip_features(self):
            return visions

    class Loader:
        dataset = range(n)

        def __iter__(self):
            for s in range(0, n, 128):
                idx = torch.arange(s, min(n, s + 128))
                img = torch.as_tensor(image[s : s + 128], dtype=torch.float32)
                yield img, captions[idx].clone(), captions[idx] == 0, idx

    module.ObjectDetection = Detection
    module.load_download_clip = lambda path: _Encoder(words.embeddings)
    args = argparse.Namespace(
        rank="cpu",
        k_bits=32,
        is_train=True,
        n_clusters=n_clusters,
        seed=seed,
        truncation_factor=2,
        si_std=1.1,
        clip_path="",
    )
    return module.VTMUCH(args, Loader())


# ---------------------------------------------------------------- comparison


def compare(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    corr = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")
    return float(np.mean(np.isclose(a, b, atol=1e-5))), float(np.abs(a - b).max()), corr


def modularity(sf: np.ndarray, labels: np.ndarray) -> float:
    g = to_igraph(ours.positive_graph(sf), weighted=False)
    return float(g.modularity(np.asarray(labels).tolist()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--official", type=Path, required=True, help="VTMUCH checkout")
    ap.add_argument("--n", type=int, default=1000, help="training items")
    ap.add_argument("--demo", default="words", choices=["default", *VARIANTS])
    ap.add_argument("--shift", type=float, default=1.0, help="CLIP-like anisotropy")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-clusters", type=int, default=14)
    ap.add_argument("--official-runs", type=int, default=2, help="official Leiden reruns")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("XMHASH_PROGRESS", "0")
    image, words, regions, truth = features(args.demo, args.n, args.shift)
    module = import_official(args.official.resolve())

    t = time.perf_counter()
    off = official_target(module, image, words, regions, n_clusters=args.n_clusters, seed=args.seed)
    t_off = time.perf_counter() - t
    o_sy, o_sx = off.ST.numpy(), off.SI.numpy()
    o_sf = np.where((o_sy > 0) | (o_sx > 0), 1, -1)
    o_s, o_comm = off.SF.numpy(), off.pseudo_labels.numpy()
    o_vlabels = off.img_objs_clusters.labels_.astype(np.int64)
    o_a = off._batch_compute_pairwise_cos_sim(off._list2tensor(off.obj_img_features, 2))[0]
    o_a = o_a.numpy()

    t = time.perf_counter()
    g = ours.build_vtmuch(image, words, regions, n_clusters=args.n_clusters, seed=args.seed)
    t_ours = time.perf_counter() - t
    g_cd = ours.build_vtmuch(
        image, words, regions, n_clusters=args.n_clusters, seed=args.seed, cdlib_order=True
    )
    matched = ours.matched_visions(words, regions)
    _, vlabels = ours.kmeans(regions.embeddings, args.n_clusters, seed=args.seed)
    sy = ours.text_similarity(matched, vlabels, args.n_clusters)
    a = ours.object_affinity(ours.padded_visions(regions, 2.0))
    sx = ours.population_threshold(a, 1.1)[0]

    # the official k-means with the next random_state: its own run-to-run spread
    off.args.seed = args.seed + 1
    km2 = off._make_clusters(torch.as_tensor(regions.embeddings)).labels_.astype(np.int64)
    sy_2 = ours.text_similarity(matched, km2, args.n_clusters)

    # our later steps from the official random draws (k-means labels, communities)
    sy_k = ours.text_similarity(matched, o_vlabels, args.n_clusters)
    sf_k = ours.union(sy_k, sx)
    s_c = ours.joint_similarity(sf_k, ours.same_label(ours.densify_centres(image, o_comm)), a)

    # the official (unseeded) Leiden rerun on the official S^f, and ours on it
    reruns = [
        off._recnstrc(torch.as_tensor(o_sf).float())[1].numpy() for _ in range(args.official_runs)
    ]
    graph = to_igraph(ours.positive_graph(o_sf), weighted=False)
    seeded = [leiden(graph, seed=s, weighted=False).labels for s in range(args.official_runs)]

    print(
        f"VTM-UCH construction, demo {args.demo!r}, n = {args.n}, N_c = {args.n_clusters}, "
        f"shift {args.shift}, seed {args.seed}; official {t_off:.1f} s, ours {t_ours:.1f} s; "
        f"NaN in official A: {int(np.isnan(o_a).sum())}"
    )
    print(f"{'matrix (ours vs official)':<38} {'agree':>7} {'max|d|':>7} {'corr':>7}")
    rows = [
        ("A (object affinity)", a, o_a),
        ("S^x", sx, o_sx),
        ("S^y, own k-means", sy, o_sy),
        ("S^y, official k-means labels", sy_k, o_sy),
        ("S^y, official k-means, next seed", sy_2, o_sy),
        ("S^f, own k-means", g.union, o_sf),
        ("S^f, official k-means labels", sf_k, o_sf),
        ("S, end to end", g.target, o_s),
        ("S, end to end, cdlib_order", g_cd.target, o_s),
        ("S, official k-means + communities", s_c, o_s),
    ]
    for name, x, y in rows:
        agree, dmax, corr = compare(x, y)
        print(f"{name:<38} {agree:>7.4f} {dmax:>7.4f} {corr:>7.4f}")
    print(
        f"k-means labels NMI vs official: ours {nmi(vlabels, o_vlabels):.4f}, "
        f"official next seed {nmi(km2, o_vlabels):.4f}"
    )
    print(f"{'communities (NMI vs official)':<38} {'count':>7} {'modul.':>7} {'NMI':>7}")

    def line(name: str, labels: np.ndarray, sf: np.ndarray = o_sf) -> None:
        print(
            f"{name:<38} {len(np.unique(labels)):>7d} {modularity(sf, labels):>7.4f} "
            f"{nmi(labels, o_comm):>7.4f}"
        )

    line("official", o_comm)
    for i, r in enumerate(reruns):
        line(f"official rerun {i + 1}", r)
    for s, labels in enumerate(seeded):
        line(f"ours on official S^f, seed {s}", labels)
        line("  the same, cdlib_order", ours.cdlib_labels(o_sf, labels))
    line("ours end to end", g.communities, g.union)
    line("ours end to end, cdlib_order", g_cd.communities, g_cd.union)

    share = (truth.astype(np.float32) @ truth.T.astype(np.float32)) > 0
    off_diag = ~np.eye(len(truth), dtype=bool)
    print(f"{'target vs labels (off-diagonal)':<38} {'S=+1':>7} {'prec.':>7} {'S gap':>7}")
    print(f"{'(pairs sharing a label)':<38} {'':>7} {share[off_diag].mean():>7.4f}")
    for name, x in (
        ("official S^f", o_sf),
        ("official S", o_s),
        ("ours S^f", g.union),
        ("ours S", g.target),
        ("ours S, cdlib_order", g_cd.target),
    ):
        pos = (x == 1) & off_diag
        gap = x[share & off_diag].mean() - x[~share & off_diag].mean()
        print(
            f"{name:<38} {pos.sum() / off_diag.sum():>7.4f} {share[pos].mean():>7.4f} {gap:>7.4f}"
        )


if __name__ == "__main__":
    main()
