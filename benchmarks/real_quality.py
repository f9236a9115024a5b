"""mAP@all of every unsupervised method on real Wikipedia features, through the workflow's stages.

The Wikipedia benchmark's own features (128-d SIFT bag of visual words, 10-d LDA topics,
10 classes) in DIR, as the ``wikipedia`` source reads them (``root: DIR``: the archive
unpacked, or ``raw_features.mat`` with the two lists), go through the stages the rules
run, in this process and with config.yaml's settings: import -> feature file -> split ->
[graph] -> train -> export -> evaluate, each writing the files its rule writes under
``--work`` (``results/wikipedia/...``; a temporary folder by default). The dataset is
named ``wikipedia``, so ``method_overrides.wikipedia`` applies as in a workflow run.

The split is the official one: the 693 test pairs are the queries, the 2,173 training pairs
the database and the training set (``split.val_from: train``; with ``training.select:
paper`` the validation rows are never used). With ``--noise KIND:RATE`` the supervised
noisy-label methods train instead on training labels corrupted by the noise stage, and
their validation rows (``noise.select: val``) are drawn from the database and held out of
training, as config.yaml's ``datasets.wikipedia.split`` does.

Output: one JSON line per run (``method, bits, seed, i2t, t2i, collapsed,
distinct_codes`` -- the database's distinct image and text codes --, ``seconds`` and
``cpu_seconds``, the run's wall and CPU time, and ``chance``), then a table of the means
over seeds with lsh, cca_itq and the chance level, and the acceptance of each row: every deep unsupervised method beats lsh by
at least 0.05 in both directions at every code length with no run collapsed, and ENHash
reaches the best of DJSRH, JDSH and DGCPN on the mean of both directions at every code
length (the clean track only; lsh and cca_itq, which use no labels, are the references of
both). The exit status is 0 whatever the verdicts (they are measurements).

    python benchmarks/real_quality.py --data ../shared/data/wikipedia-sift-lda
        [--methods djsrh enhash ...] [--bits 16 32 64] [--seeds 0 1 2] [--noise sym:0.5]
        [--epochs N] [--work DIR] [--text-feature lda|tfidf]
    python benchmarks/real_quality.py --combine seed0.txt seeds12.txt
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from xmhash.data.noise import KINDS, run_noise, tag  # noqa: E402
from xmhash.data.splits import split_features  # noqa: E402
from xmhash.data.stage import download_dataset, import_features  # noqa: E402
from xmhash.evaluate import evaluate_run  # noqa: E402
from xmhash.export import export_run  # noqa: E402
from xmhash.graph.stage import build_graph  # noqa: E402
from xmhash.methods import METHODS  # noqa: E402
from xmhash.methods.base import DeepMethod  # noqa: E402
from xmhash.plan import method_config  # noqa: E402
from xmhash.train import TrainSettings, run_training  # noqa: E402

DATASET = "wikipedia"
REFERENCES = ("lsh", "cca_itq")  # always in the table
MARGIN = 0.05  # a deep method's lead over lsh in each direction
ENHASH_RIVALS = ("djsrh", "jdsh", "dgcpn")


def default_methods(noisy: bool) -> list[str]:
    """Every registered method that trains on features alone: the unsupervised ones, or
    with label noise the supervised ones."""
    return [
        name
        for name, cls in METHODS.items()
        if cls.supervised == noisy and not cls.needs & {"encoder", "texts"}
    ]


def short_schedule(params: dict, epochs: int | None) -> dict:
    """``params`` with at most ``epochs`` epochs (and fewer warm-up epochs than that)."""
    if epochs is None or "epochs" not in params:
        return params
    out = {**params, "epochs": min(int(params["epochs"]), epochs)}
    if "warmup_epochs" in out:
        out["warmup_epochs"] = min(int(out["warmup_epochs"]), max(out["epochs"] - 1, 0))
    return out


class Stages:
    """The workflow's files for one dataset under ``work``, each written by the stage
    function its rule calls, once."""

    def __init__(
        self,
        cfg: dict,
        data: Path,
        work: Path,
        text_feature: str,
        noise: tuple[str, float] | None,
    ):
        self.cfg, self.work, self.noise = cfg, work, noise
        block = cfg["datasets"][DATASET]
        self.options = {
            "name": DATASET,
            **{k: v for k, v in block.items() if k not in ("source", "split", "encoder")},
            "root": str(data.resolve()),
            "text_feature": text_feature,
        }
        self.split_spec = {**block["split"], **({} if noise else {"val_from": "train"})}
        self.results = work / "results" / DATASET
        self.features = self.results / "features" / f"{block['encoder']}.h5"
        training = cfg["training"]
        if noise:
            training = {**training, "select": cfg["noise"].get("select", "val")}
        self.settings = TrainSettings(device="cpu", **{**training, "threads": 1})

    def feature_file(self) -> Path:
        if not self.features.exists():
            downloads = work_dir(self.work / "resources" / DATASET / "downloads")
            download_dataset("wikipedia", downloads, self.options, dataset=DATASET)
            import_features("wikipedia", downloads, self.features, self.options)
        return self.features

    def split(self, seed: int) -> Path:
        out = self.results / "splits" / f"seed{seed}.npz"
        if not out.exists():
            split_features(self.feature_file(), out, seed=seed, **self.split_spec)
        return out

    def noisy_labels(self, seed: int) -> Path:
        kind, rate = self.noise
        out = self.results / "noise" / tag(kind, rate) / f"seed{seed}.npz"
        if not out.exists():
            run_noise(
                features=str(self.features),
                split=str(self.split(seed)),
                out=str(work_dir(out.parent) / out.name),
                kind=kind,
                rate=rate,
                seed=seed,
            )
        return out

    def graph(self, kind: str, seed: int) -> Path:
        enc = self.features.stem
        out = self.results / "graph" / enc / kind / f"seed{seed}.h5"
        if not out.exists():
            build_graph(
                features=str(self.features),
                split=str(self.split(seed)),
                kind=kind,
                spec=self.cfg["graph"][kind] or {},
                seed=seed,
                out=str(work_dir(out.parent) / out.name),
                stats_out=str(out.with_suffix(".json")),
                max_dense=self.cfg["graph"].get("max_dense"),
            )
        return out

    def run(self, method: str, bits: int, seed: int, params: dict) -> dict:
        """train -> export -> evaluate of one run; its metrics.json."""
        noisy = tag(*self.noise) if self.noise else ""
        run = work_dir(self.results / f"noise{noisy}" if noisy else self.results)
        run = work_dir(run / method / f"{bits}bits" / f"seed{seed}")
        split = str(self.split(seed))
        graphs = getattr(METHODS[method], "graphs", ())
        run_training(
            features=str(self.feature_file()),
            split=split,
            method=method,
            params=params,
            bits=bits,
            seed=seed,
            settings=self.settings,
            model_out=str(run / "model.pt"),
            summary_out=str(run / "train.json"),
            history_out=str(run / "train_log.csv"),
            threads=1,
            graph={k: str(self.graph(k, seed)) for k in graphs},
            max_dense=self.cfg["graph"].get("max_dense"),
            train_labels=str(self.noisy_labels(seed)) if self.noise else None,
            sample_weights_out=str(run / "sample_weights.npz") if self.noise else None,
        )
        export_run(
            model=str(run / "model.pt"),
            features=str(self.features),
            split=split,
            codes_out=str(run / "codes.h5"),
            device="cpu",
            threads=1,
            attrs={"dataset": DATASET, "features": str(self.features)},
        )
        ev = self.cfg["evaluation"]
        return evaluate_run(
            codes=str(run / "codes.h5"),
            features=str(self.features),
            out=str(run / "metrics.json"),
            ks=ev["k"],
            pn=ev["pn"],
            tie_seed=ev["tie_seed"],
            train_summary=str(run / "train.json"),
            database=self.cfg["datasets"][DATASET].get("database") or ev["database"],
            meta={"dataset": DATASET, "variant": f"noise-{noisy}" if noisy else ""},
        )


def work_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def record(
    method: str, bits: int, seed: int, metrics: dict, seconds: float, cpu_seconds: float
) -> dict:
    db = metrics["codes"]["database"]
    return {
        "method": method,
        "bits": bits,
        "seed": seed,
        "i2t": round(metrics["tasks"]["i2t"]["map@all"], 4),
        "t2i": round(metrics["tasks"]["t2i"]["map@all"], 4),
        "collapsed": bool(metrics["collapsed"]),
        "distinct_codes": {m: db[m]["distinct"] for m in ("image", "text")},
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu_seconds, 1),
        "chance": round(metrics["chance"]["map@all_expected"], 4),
    }


def acceptance(
    means: dict[str, dict[tuple[str, int], float]],
    collapsed: dict[str, int],
    bits: list[int],
    deep: set[str],
) -> dict[str, str]:
    """``pass`` or ``FAIL: why`` per deep method (``-`` for the others)."""
    verdicts = {}
    lsh = means.get("lsh")
    for name in means:
        if name not in deep or lsh is None:
            verdicts[name] = "-"
            continue
        why = []
        for b in bits:
            for task in ("i2t", "t2i"):
                lead = means[name][(task, b)] - lsh[(task, b)]
                if lead < MARGIN:
                    why.append(f"{task} {b}: lsh{lead:+.4f}")
        if collapsed.get(name):
            why.append(f"{collapsed[name]} runs collapsed")
        if name == "enhash":
            rivals = [r for r in ENHASH_RIVALS if r in means]
            if not rivals:
                why.append(f"no {'/'.join(ENHASH_RIVALS)} run to compare with")
            for b in bits if rivals else ():
                best = max((means[r][("i2t", b)] + means[r][("t2i", b)]) / 2 for r in rivals)
                mine = (means[name][("i2t", b)] + means[name][("t2i", b)]) / 2
                if mine < best:
                    why.append(f"mean {b}: best rival{mine - best:+.4f}")
        verdicts[name] = "pass" if not why else "FAIL: " + "; ".join(why)
    return verdicts


def table(records: list[dict], bits: list[int], chance: float, deep: set[str]) -> str:
    cells: dict[str, dict[tuple[str, int], list[float]]] = defaultdict(lambda: defaultdict(list))
    collapsed: dict[str, int] = defaultdict(int)
    seconds: dict[str, float] = defaultdict(float)
    for r in records:
        for task in ("i2t", "t2i"):
            cells[r["method"]][(task, r["bits"])].append(r[task])
        collapsed[r["method"]] += r["collapsed"]
        seconds[r["method"]] += r["seconds"]
    means = {
        m: {k: float(np.mean(v)) for k, v in per.items()}
        for m, per in cells.items()
        if all((t, b) in per for t in ("i2t", "t2i") for b in bits)
    }
    verdicts = acceptance(means, collapsed, bits, deep)
    heads = [f"I→T {b}" for b in bits] + [f"T→I {b}" for b in bits]
    lines = [
        "| method | " + " | ".join(heads) + " | runs | collapsed | wall s | acceptance |",
        "|---|" + "---|" * (len(heads) + 4),
    ]
    for m, per in means.items():
        n = len(cells[m][("i2t", bits[0])])
        vals = [per[(t, b)] for t in ("i2t", "t2i") for b in bits]
        lines.append(
            f"| {m} | "
            + " | ".join(f"{v:.3f}" for v in vals)
            + f" | {n * len(bits)} | {collapsed[m]} | {seconds[m]:.0f} | {verdicts[m]} |"
        )
    lines.append("| chance | " + " | ".join(f"{chance:.3f}" for _ in heads) + " | | | | |")
    judged = [v for m, v in verdicts.items() if m in deep]
    if judged:
        ok = sum(v == "pass" for v in judged)
        lines.append(f"\nacceptance: {ok}/{len(judged)} deep methods pass")
    return "\n".join(lines)


def config() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def runs(
    stages: Stages, methods: list[str], bits: list[int], seeds: list[int], epochs: int | None
) -> Iterator[dict]:
    """The record of each run, seed by seed (so an interrupted grid has whole seeds)."""
    for seed in seeds:
        for m in methods:
            params = short_schedule(method_config(stages.cfg, DATASET, m), epochs)
            for b in bits:
                t, cpu = time.perf_counter(), time.process_time()
                metrics = stages.run(m, b, seed, params)
                wall = time.perf_counter() - t
                yield record(m, b, seed, metrics, wall, time.process_time() - cpu)


def print_table(records: list[dict], deep: set[str]) -> None:
    bits = sorted({r["bits"] for r in records})
    chance = float(np.mean([r["chance"] for r in records]))
    print()
    print(table(records, bits, chance, deep & {r["method"] for r in records}), flush=True)


def parse_noise(ap: argparse.ArgumentParser, text: str) -> tuple[str, float]:
    kind, _, rate = text.partition(":")
    try:
        value = float(rate)
    except ValueError:
        value = -1.0
    if kind not in KINDS or not 0 <= value <= 1:
        ap.error(f"--noise {text!r}: expected KIND:RATE, KIND one of {list(KINDS)}, RATE in [0, 1]")
    return kind, value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, help="the Wikipedia folder")
    ap.add_argument("--methods", nargs="+", default=None)
    ap.add_argument("--bits", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--noise", metavar="KIND:RATE", help="e.g. sym:0.5 (noisy-label methods)")
    ap.add_argument("--epochs", type=int, help="cap every method's epochs (short schedules)")
    ap.add_argument("--text-feature", default="lda", choices=["lda", "tfidf"])
    ap.add_argument("--work", type=Path, help="where the stages write (default: a temp dir)")
    ap.add_argument(
        "--combine",
        type=Path,
        nargs="+",
        metavar="OUTPUT",
        help="train nothing: the table of the JSON lines of earlier outputs (e.g. seeds run apart)",
    )
    args = ap.parse_args(argv)
    if not args.data and not args.combine:
        ap.error("--data DIR is required (the Wikipedia folder)")
    noise = parse_noise(ap, args.noise) if args.noise else None
    os.environ.setdefault("XMHASH_PROGRESS", "0")
    torch.set_num_threads(1)
    cfg = config()
    methods = args.methods or default_methods(bool(args.noise))
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        ap.error(f"unknown methods {unknown}; registered: {sorted(METHODS)}")
    methods = [*[r for r in REFERENCES if r not in methods], *methods]
    deep = {m for m in methods if issubclass(METHODS[m], DeepMethod) and not args.noise}
    if args.combine:
        records = [
            json.loads(line)
            for path in args.combine
            for line in path.read_text().splitlines()
            if line.startswith("{")
        ]
        for r in records:
            print(json.dumps(r))
        print_table(records, deep)
        return 0
    with tempfile.TemporaryDirectory(prefix="real_quality.") as tmp:
        stages = Stages(cfg, args.data, args.work or Path(tmp), args.text_feature, noise)
        records = []
        for r in runs(stages, methods, args.bits, args.seeds, args.epochs):
            records.append(r)
            print(json.dumps(r), flush=True)
    print_table(records, deep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
