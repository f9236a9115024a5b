"""VTM-UCH against its baselines on a demo, and what its target S can carry per code length.

    python benchmarks/vtmuch_baselines.py [--dataset config/demo/words.yaml]
        [--methods lsh djsrh jdsh daeh cirh vtmuch] [--bits 16 32 64] [--seeds 0 1 2]
        [--cdlib] [--spectrum-only] [--threads 1]

Per split seed, the VTM-UCH graph (graph.vtmuch of config.yaml) is built on the training
rows with our construction and, with ``--cdlib``, a second time with ``cdlib_order``
(the official code's community labels; see src/xmhash/graph/vtmuch.py), trained as
``vtmuch_cdlib``. Every method trains with its config.yaml block (demo-sized epochs) by
the train stage's ``fit`` and is scored by mAP@all, query set vs database. Printed: the
graph per seed (communities, modularity, refined groups, share of soft entries), then
per method and code length I->T and T->I, mean ± std over the seeds.

The spectrum table explains a flat curve over code lengths. The codes of a method that
reproduces K * S with K-bit inner products span at most rank K, so a target whose
information lies in a few directions gains nothing from more bits. For each K it prints
the share of ||S||_F^2 in the top K eigenvalues of (S + S^T) / 2, and the mAP@all of
ranking the training items by the best rank-K approximation of S (and by S itself):
the retrieval quality any K-bit reproduction of S can reach on the training items.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _demo_runs import add_common_arguments, mean_std, start, train_and_score  # noqa: E402

from xmhash import metrics as M  # noqa: E402
from xmhash.data.splits import make_split  # noqa: E402
from xmhash.graph.store import GraphFile, write_graph  # noqa: E402
from xmhash.graph.vtmuch import build_vtmuch  # noqa: E402

BASELINES = ["lsh", "djsrh", "jdsh", "daeh", "cirh", "vtmuch"]  # the paper's, implemented here


def score_map(scores: np.ndarray, labels: np.ndarray) -> float:
    """mAP@all of ranking every item against the others by a real-valued score matrix
    (self excluded; queries without a relevant item left out)."""
    n = len(scores)
    rel = (labels.astype(np.float32) @ labels.T.astype(np.float32)) > 0
    aps = []
    for i in range(n):
        keep = np.arange(n) != i
        order = np.argsort(-scores[i, keep], kind="stable")
        r = rel[i, keep][order]
        if r.any():
            hits = np.cumsum(r)
            aps.append(float((hits[r] / (np.flatnonzero(r) + 1)).mean()))
    return float(np.mean(aps))


def spectrum(target: np.ndarray, labels: np.ndarray, ks: list[int]) -> list[tuple]:
    """(K, energy share of the top K eigenvalues, mAP of the rank-K approximation)."""
    sym = (target.astype(np.float64) + target.T) / 2
    w, v = np.linalg.eigh(sym)
    order = np.argsort(-np.abs(w))
    w, v = w[order], v[:, order]
    energy = np.cumsum(w**2) / np.sum(w**2)
    out = []
    for k in ks:
        approx = (v[:, :k] * w[:k]) @ v[:, :k].T
        out.append((k, float(energy[k - 1]), score_map(approx, labels)))
    out.append(("all", 1.0, score_map(sym, labels)))
    return out


def graph_for(cfg: dict, feats, rows: np.ndarray, seed: int, cdlib_order: bool):
    settings = dict(cfg["graph"]["vtmuch"])
    settings["cdlib_order"] = cdlib_order
    return build_vtmuch(
        feats.image[rows],
        feats.words.subset(rows),
        feats.regions.subset(rows),
        seed=seed,
        max_dense=cfg["graph"]["max_dense"],
        **settings,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_arguments(ap)
    ap.add_argument("--methods", nargs="+", default=BASELINES)
    ap.add_argument("--bits", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--cdlib", action="store_true", help="also train on the cdlib_order S")
    ap.add_argument("--spectrum-only", action="store_true")
    args = ap.parse_args()
    cfg, name, feats, split_cfg = start(args)
    print(f"{name}: {len(feats)} items, split {split_cfg}, seeds {args.seeds}")
    print(
        f"{'seed':>4} {'graph':>12} {'comm.':>6} {'modul.':>7} {'refined':>8} {'soft':>6} "
        f"{'S=+1 prec.':>10} {'base rate':>9}"
    )
    tmp = Path(tempfile.mkdtemp(prefix="vtmuch_baselines_"))
    splits, graphs, spectra = {}, {}, {}
    kinds = ("vtmuch", "vtmuch_cdlib") if args.cdlib else ("vtmuch",)
    for seed in args.seeds:
        split = splits[seed] = make_split(len(feats), seed=seed, **split_cfg)
        labels = feats.labels[split.train]
        share = (labels.astype(np.float32) @ labels.T.astype(np.float32)) > 0
        off = ~np.eye(len(labels), dtype=bool)
        for kind in kinds:
            vg = graph_for(cfg, feats, split.train, seed, cdlib_order=kind == "vtmuch_cdlib")
            path = graphs[seed, kind] = tmp / f"{kind}{seed}.h5"
            write_graph(path, GraphFile(kind="vtmuch", rows=split.train, target=vg.target))
            pos = (vg.target == 1) & off
            print(
                f"{seed:>4} {kind:>12} {vg.stats['communities_used']:>6} "
                f"{vg.stats['modularity_used']:>7.4f} {vg.stats['refined_groups']:>8} "
                f"{vg.stats['soft_target']:>6.3f} {share[pos].mean():>10.4f} "
                f"{share[off].mean():>9.4f}",
                flush=True,
            )
            if kind == "vtmuch" and seed == args.seeds[0]:
                ks = [2, 4, 8, 16, 32, 64]
                spectra["S"] = spectrum(vg.target, labels, ks)
                spectra["labels"] = spectrum(np.where(share, 1.0, -1.0), labels, ks)
    print(
        f"split seed {args.seeds[0]}, training items: rank-K approximations of the target S "
        f"and of the label target 2[l_i.l_j > 0] - 1"
    )
    print(f"{'K':>4} {'energy S':>9} {'mAP(S_K)':>9} {'energy L':>9} {'mAP(L_K)':>9}")
    for (k, energy, m), (_, e_l, m_l) in zip(spectra["S"], spectra["labels"], strict=True):
        print(f"{k:>4} {energy:>9.4f} {m:>9.4f} {e_l:>9.4f} {m_l:>9.4f}")
    if args.spectrum_only:
        return

    methods = [*args.methods, *(["vtmuch_cdlib"] if args.cdlib else [])]
    print(f"{'method':>13} {'bits':>5} {'I->T':>16} {'T->I':>16} {'train s':>8}")
    for bits in args.bits:
        chance = np.mean(
            [
                M.expected_random_map(
                    feats.labels[splits[s].query], feats.labels[splits[s].database]
                )
                for s in args.seeds
            ]
        )
        print(f"{'chance':>13} {bits:>5} {chance:>16.4f}")
        for method in methods:
            real = "vtmuch" if method.startswith("vtmuch") else method
            res = np.asarray(
                [
                    train_and_score(
                        real,
                        cfg["methods"][real],
                        bits,
                        s,
                        feats,
                        splits[s],
                        graph={"vtmuch": graphs[s, method]} if real == "vtmuch" else None,
                    )
                    for s in args.seeds
                ]
            )
            print(
                f"{method:>13} {bits:>5} {mean_std(res[:, 0]):>16} {mean_std(res[:, 1]):>16} "
                f"{res[:, 2].mean():>8.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
