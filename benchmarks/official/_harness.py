"""Side by side with an official implementation: one feature set, two runs, one evaluator.

For each seed the harness

1. draws one synthetic feature set (:mod:`xmhash.data.demo`, seeded by the seed) and writes
   it in the official code's file layout; our feature file is imported from those very
   files by our own source (``rshnl_mat`` / ``dcmh_mat``), so both read the same numbers;
2. runs the official script unmodified through ``_shim.py`` (CPU redirect, inert
   stand-ins for unused imports, capture of the official test codes);
3. runs our method through the train and export stages with the paper config
   (config.yaml merged with config/paper/<method>.yaml): split, noise, params and model
   selection from there;
4. scores both code sets with our evaluator (:func:`xmhash.evaluate.evaluate_run`) under
   the official protocol, and prints mAP@all per direction and code length, mean ± std
   over seeds, and the paired difference ours - official with its standard error
   (std / sqrt(seeds)).

``--features DIR`` replaces the synthetic set by real features of the Wikipedia layout
(``raw_features.mat`` with ``I_tr``/``I_te``/``T_tr``/``T_te`` and the two
``*_txt_img_cat.list`` files with the classes): :func:`feature_set` hands every harness
the same kind of :class:`Features` either way.

A method module (``rshnl.py``, ``ucch.py``) supplies a :class:`Spec`: the checkout's
expected files and pinned commit, the data layout, the official command line and how to
turn the captured arrays into code sets.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))

from xmhash.codes import Codes, make_codeset, save_codes  # noqa: E402
from xmhash.data.splits import split_features  # noqa: E402
from xmhash.evaluate import evaluate_run  # noqa: E402
from xmhash.export import export_run  # noqa: E402
from xmhash.features.store import Features  # noqa: E402
from xmhash.train import TrainSettings, run_training  # noqa: E402

SHIM = Path(__file__).with_name("_shim.py")
TASKS = ("i2t", "t2i")


@dataclass
class Case:
    """What one seed's run needs: the folders, the data and the settings from the config."""

    seed: int
    bits: int
    work: Path  # this seed's folder
    official_dir: Path  # the official script's working directory
    features: Path  # our feature file
    config: dict[str, Any]  # merged paper config
    args: argparse.Namespace
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def in_folder(cls, work: Path, **kw: Any) -> Case:
        """A case whose official folder and feature file are the harness's names in ``work``."""
        return cls(work=work, official_dir=work / "official", features=work / "features.h5", **kw)


@dataclass
class Spec:
    method: str  # our registry name and config/paper/<method>.yaml
    title: str
    url: str
    commit: str
    script: str  # the official entry point, relative to the checkout
    files: tuple[str, ...]  # files the checkout must have
    packages: tuple[str, ...]  # modules the official script needs (pip names in pip)
    pip: dict[str, str]
    dataset: str  # the paper config's dataset block used for our side
    capture: str  # the official function whose last two calls hold the test codes
    write_data: Callable[[Case], None]  # official layout + our feature file
    official_argv: Callable[[Case], list[str]]
    official_codes: Callable[[Case, dict[str, np.ndarray]], Codes]
    our_params: Callable[[Case], tuple[dict[str, Any], str, str | None]]  # params, select, noise
    parse_official: Callable[[str], dict[str, float]]
    defaults: dict[str, Any] = field(default_factory=dict)
    shim_args: Callable[[Case], list[str]] | None = None  # e.g. --redirect of a fixed data path
    own_metric: str = "mAP@all"  # what the official script's own evaluator prints


# --------------------------------------------------------------------------- config


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = (
            deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        )
    return out


def paper_config(method: str) -> dict[str, Any]:
    """config.yaml with config/paper/<method>.yaml merged over it, as Snakemake merges them."""
    base = yaml.safe_load((REPO / "config.yaml").read_text())
    return deep_merge(base, yaml.safe_load((REPO / f"config/paper/{method}.yaml").read_text()))


def database_setting(config: dict[str, Any], block: str) -> str:
    """The evaluation database of dataset ``block``, as the evaluate rule reads it: the
    dataset's own ``database`` or else ``evaluation.database``."""
    return config["datasets"][block].get("database") or config["evaluation"]["database"]


def official_split(rows: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Our feature file's ``official_split`` column for an official layout: each item is
    ``train``, ``val`` or ``query`` where that part of ``rows`` holds it, else ``database``."""
    where = np.full(n, "database", dtype=object)
    for part in ("train", "val", "query"):
        if part in rows:
            where[rows[part]] = part
    return where.astype(str)


# --------------------------------------------------------------------------- features

WIKI_LISTS = {"train": "trainset_txt_img_cat.list", "test": "testset_txt_img_cat.list"}
WIKI_KEYS = {"train": ("I_tr", "T_tr"), "test": ("I_te", "T_te")}


def read_wiki_layout(folder: Path) -> dict[str, Features]:
    """The train and test parts of a folder of the Wikipedia layout, classes from the lists."""
    import scipy.io as sio

    mat = folder / "raw_features.mat"
    for f in (mat, *(folder / n for n in WIKI_LISTS.values())):
        if not f.exists():
            raise SystemExit(
                f"--features {folder}: {f.name} missing (a folder of the Wikipedia layout "
                f"holds raw_features.mat and {' and '.join(WIKI_LISTS.values())})"
            )
    m = sio.loadmat(mat)
    parts = {}
    for part, lst in WIKI_LISTS.items():
        rows = [ln.split() for ln in (folder / lst).read_text().splitlines() if ln.strip()]
        ik, tk = WIKI_KEYS[part]
        for k in (ik, tk):
            if k not in m:
                raise SystemExit(f"{mat}: no key {k!r} (the Wikipedia layout has {ik}, {tk})")
        if not len(m[ik]) == len(m[tk]) == len(rows):
            raise SystemExit(
                f"{mat}: {ik} has {len(m[ik])} rows, {tk} {len(m[tk])}, {lst} {len(rows)} lines"
            )
        parts[part] = (np.array([int(r[-1]) for r in rows]), m[ik], m[tk], [r[0] for r in rows])
    n_classes = max(int(p[0].max()) for p in parts.values())
    out = {}
    for part, (cls, image, text, ids) in parts.items():
        labels = np.zeros((len(cls), n_classes), np.uint8)
        labels[np.arange(len(cls)), cls - 1] = 1  # the lists number the classes from 1
        out[part] = Features(
            ids=np.array([f"{part}-{i}" for i in range(len(ids))]),
            labels=labels,
            image=np.asarray(image, np.float32),
            text=np.asarray(text, np.float32),
            label_names=[f"class{c + 1}" for c in range(n_classes)],
            attrs={"dataset": f"real:{folder.name}"},
        )
    return out


def real_rows(n_train_part: int, n_test_part: int, head: int, tail: int, seed: int):
    """Rows for ``head`` leading (training / database) and ``tail`` trailing (query) items:
    the tail from the test part first, topped up from the training part where a protocol
    needs more queries than it has; the head from the remaining training items. Each seed
    draws its own rows (a permutation seeded by the seed)."""
    rng = np.random.default_rng(seed)
    tr, te = rng.permutation(n_train_part), rng.permutation(n_test_part)
    from_test = min(tail, n_test_part)
    from_train = tail - from_test
    if head + from_train > n_train_part:
        raise SystemExit(
            f"--features: {head} training/database + {tail} query items need more than the "
            f"{n_train_part} + {n_test_part} items of the folder; lower the sizes"
        )
    return tr[from_train : from_train + head], tr[:from_train], te[:from_test]


def feature_set(case: Case, head: int, tail: int, demo: Any) -> Features:
    """The features of one seed: ``head`` training/database items then ``tail`` query items.

    Without ``--features`` the demo generator draws them from ``demo`` (a ``DemoSpec``, its
    ``n_items`` = head + tail); with it, the rows come from the folder's official split
    (:func:`real_rows`): queries from its test part, training and database from its
    training part."""
    folder = getattr(case.args, "features", None)
    if folder is None:
        from xmhash.data.demo import generate_demo

        return generate_demo(demo)
    parts = read_wiki_layout(Path(folder))
    tr_rows, tr_query, te_query = real_rows(
        len(parts["train"]), len(parts["test"]), head, tail, case.seed
    )
    tr, te = parts["train"], parts["test"]

    def take(name: str) -> np.ndarray:
        a, b = getattr(tr, name), getattr(te, name)
        return np.concatenate([a[tr_rows], a[tr_query], b[te_query]])

    return Features(
        ids=take("ids"),
        labels=take("labels"),
        image=take("image"),
        text=take("text"),
        label_names=tr.label_names,
        attrs=dict(tr.attrs),
    )


def pad_columns(x: np.ndarray, dim: int, what: str) -> np.ndarray:
    """``x`` widened to the ``dim`` columns an official network fixes, with zero columns
    (a linear layer's zero inputs add nothing: the function class is unchanged)."""
    if x.shape[1] > dim:
        raise SystemExit(f"{what}: {x.shape[1]}-d features, the official code takes {dim}-d")
    return np.pad(x, ((0, 0), (0, dim - x.shape[1])))


# --------------------------------------------------------------------------- checks


def check_checkout(spec: Spec, path: Path | None) -> list[str]:
    """What is missing to run the official code, each with how to get it."""
    how = f"git clone {spec.url} && git -C {spec.url.rsplit('/', 1)[-1]} checkout {spec.commit}"
    if path is None:
        return [f"--official PATH: the checkout of {spec.url} (get it: {how})"]
    problems = []
    if not path.is_dir():
        return [f"{path}: no such folder (get the checkout: {how})"]
    missing = [f for f in spec.files if not (path / f).exists()]
    if missing:
        problems.append(f"{path}: missing {missing}; not a checkout of {spec.url} ({how})")
    if (path / ".git").exists():
        head = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        if head and head != spec.commit:
            problems.append(
                f"{path}: at commit {head[:12]}, the harness is pinned to {spec.commit[:12]} "
                f"(git -C {path} checkout {spec.commit})"
            )
    code = "import importlib.util as u, sys; sys.exit(0 if u.find_spec(sys.argv[1]) else 1)"
    for mod in spec.packages:
        if subprocess.run([sys.executable, "-c", code, mod]).returncode:
            problems.append(f"python package {mod!r} missing: pip install {spec.pip.get(mod, mod)}")
    return problems


# --------------------------------------------------------------------------- runs


def start_official(spec: Spec, case: Case, checkout: Path) -> Callable[[], tuple]:
    """Start the official script; the returned function waits for it and reads its codes."""
    captured = case.work / "official_capture.npz"
    cmd = [
        sys.executable,
        str(SHIM),
        "--cwd",
        str(case.official_dir),
        "--capture",
        spec.capture,
        "--capture-out",
        str(captured),
        *(spec.shim_args(case) if spec.shim_args else []),
        str(checkout / spec.script),
        *spec.official_argv(case),
    ]
    env = {**os.environ, "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED", "0")}
    t0 = time.perf_counter()
    log = open(case.work / "official.log", "w")  # noqa: SIM115 (closed in finish)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)

    def finish() -> tuple[Codes, dict[str, float], float]:
        rc = proc.wait()
        log.close()
        seconds = time.perf_counter() - t0
        text = (case.work / "official.log").read_text(errors="replace")
        if rc != 0:
            tail = "\n".join(text.splitlines()[-25:])
            raise SystemExit(
                f"the official script failed (exit {rc}); {case.work}/official.log:\n{tail}"
            )
        with np.load(captured) as z:
            arrays = {k: z[k] for k in z.files}
        return spec.official_codes(case, arrays), spec.parse_official(text), seconds

    return finish


def run_ours(spec: Spec, case: Case) -> tuple[Path, float]:
    split = case.work / "split.npz"
    split_features(case.features, split, seed=case.seed, **case.extra["split"])
    params, select, noise_file = spec.our_params(case)
    t0 = time.perf_counter()
    run_training(
        features=str(case.features),
        split=str(split),
        method=spec.method,
        params=params,
        bits=case.bits,
        seed=case.seed,
        settings=TrainSettings(device=case.args.device, select=select, threads=case.args.threads),
        model_out=str(case.work / f"ours_{case.bits}.pt"),
        summary_out=str(case.work / f"ours_{case.bits}_train.json"),
        history_out=str(case.work / f"ours_{case.bits}_history.csv"),
        threads=case.args.threads,
        train_labels=noise_file,
    )
    seconds = time.perf_counter() - t0
    codes = case.work / f"ours_{case.bits}_codes.h5"
    export_run(
        model=str(case.work / f"ours_{case.bits}.pt"),
        features=str(case.features),
        split=str(split),
        codes_out=str(codes),
        device=case.args.device,
    )
    return codes, seconds


def score(case: Case, codes: Path, name: str) -> dict[str, float]:
    res = evaluate_run(
        codes=str(codes),
        features=str(case.features),
        out=str(case.work / f"{name}_{case.bits}_metrics.json"),
        ks=(),
        pn=(),
        tie_seed=case.config["evaluation"]["tie_seed"],
        database=case.extra["database"],
    )
    return {t: float(res["tasks"][t]["map@all"]) for t in TASKS}


def official_codeset(
    q_img: np.ndarray,
    q_txt: np.ndarray,
    q_rows: np.ndarray,
    db_img: np.ndarray,
    db_txt: np.ndarray,
    db_rows: np.ndarray,
    bits: int,
    ids: np.ndarray,
) -> Codes:
    """Codes from the official ±1 (sign) outputs; rows index our feature file."""
    for arr in (q_img, q_txt, db_img, db_txt):
        if arr.shape[1] != bits:
            raise SystemExit(f"captured official codes have {arr.shape[1]} bits, expected {bits}")
    return Codes(
        bits=bits,
        query=make_codeset(q_img, q_txt, ids[q_rows], q_rows),
        database=make_codeset(db_img, db_txt, ids[db_rows], db_rows),
        attrs={"method": "official", "seed": -1},
    )


def top_map_codeset(
    arrays: dict[str, np.ndarray],
    q_rows: np.ndarray,
    db_rows: np.ndarray,
    bits: int,
    ids: np.ndarray,
) -> Codes:
    """Codes from the last two calls of DJSRH's ``calculate_top_map(qu_B, re_B, ...)``, as
    UCMFH and CIRH evaluate: image queries against database texts (I->T), then text
    queries against database images (T->I)."""
    for key, rows, part in (("call0_qu_B", q_rows, "query"), ("call0_re_B", db_rows, "database")):
        if len(arrays[key]) != len(rows):
            raise SystemExit(
                f"captured {len(arrays[key])} official {part} codes, expected {len(rows)}"
            )
    return official_codeset(
        arrays["call0_qu_B"],
        arrays["call1_qu_B"],
        q_rows,
        arrays["call1_re_B"],
        arrays["call0_re_B"],
        db_rows,
        bits,
        ids,
    )


# --------------------------------------------------------------------------- table


def _ms(values: list[float]) -> str:
    a = np.asarray(values, float)
    return f"{a.mean():.4f} ± {a.std(ddof=1) if len(a) > 1 else 0.0:.4f}"


def paired(ours: list[float], official: list[float]) -> tuple[float, float]:
    """The paired difference ours - official over seeds: its mean and standard error,
    std(ddof=1) / sqrt(n) (nan for one seed: no spread to estimate it from)."""
    d = np.asarray(ours, float) - np.asarray(official, float)
    se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
    return float(d.mean()), float(se)


def seeds_for(sd: float, target: float = 0.004) -> int:
    """Seeds that give a standard error <= ``target`` for a per-seed spread ``sd``:
    n >= (sd / target)^2, at least 2 (one seed has no standard error)."""
    return max(2, int(np.ceil((sd / target) ** 2 - 1e-9)))


def table(rows: list[dict[str, Any]], header: str) -> str:
    lines = [
        header,
        "",
        "| bits | task | seeds | ours | official | ours - official ± SE | official, own evaluator |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for bits in sorted({r["bits"] for r in rows}):
        rb = [r for r in rows if r["bits"] == bits]
        for t in TASKS:
            ours = [r["ours"][t] for r in rb]
            off = [r["official"][t] for r in rb]
            own = [r["official_own"].get(t, float("nan")) for r in rb]
            mean, se = paired(ours, off)
            lines.append(
                f"| {bits} | {t} | {len(rb)} | {_ms(ours)} | {_ms(off)} | {mean:+.4f} ± "
                f"{se:.4f} | {_ms(own)} |"
            )
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def main(spec: Spec, argv: list[str] | None = None) -> None:
    d = spec.defaults
    ap = argparse.ArgumentParser(
        description=f"{spec.title}: ours vs the official code ({spec.url} @ {spec.commit[:7]})"
    )
    ap.add_argument("--official", type=Path, help=f"checkout of {spec.url} at {spec.commit[:7]}")
    ap.add_argument("--bits", type=int, nargs="+", default=d.get("bits", [16, 32]))
    ap.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=d.get("seeds", [0, 1, 2]),
        help="the default is the documented count: standard error <= 0.004 at the defaults",
    )
    ap.add_argument(
        "--features",
        type=Path,
        help="a folder of the Wikipedia layout (raw_features.mat, *_txt_img_cat.list): "
        "real features in place of the synthetic set",
    )
    ap.add_argument("--n-train", type=int, default=d["n_train"], help="training items")
    ap.add_argument("--n-test", type=int, default=d["n_test"], help="test (query) items")
    ap.add_argument("--n-val", type=int, default=d.get("n_val", 0), help="validation items")
    if "n_database" in d:  # layouts whose training items are a part of a larger database
        ap.add_argument(
            "--n-database", type=int, default=d["n_database"], help="database (retrieval) items"
        )
    ap.add_argument("--image-dim", type=int, default=d.get("image_dim", 128))
    ap.add_argument("--text-dim", type=int, default=d.get("text_dim", 64))
    ap.add_argument("--epochs", type=int, help="override BOTH schedules (smoke runs only)")
    ap.add_argument("--rate", type=float, default=0.2, help="noise rate (noisy-label methods)")
    if "class_base" in d:
        ap.add_argument(
            "--class-base",
            type=int,
            choices=(0, 1),
            default=d["class_base"],
            help="first class id in the official files (1: as published, 0: no empty class)",
        )
    if d.get("layouts"):
        ap.add_argument("--layout", choices=d["layouts"], default=d["layout"], help="file layout")
    if "official_seed_offset" in d:
        ap.add_argument(
            "--official-seed-offset",
            type=int,
            default=d["official_seed_offset"],
            help="the official run's seed is the harness seed + this (0: both sides start "
            "from the same weights, one computation twice)",
        )
    ap.add_argument("--threads", type=int, default=1, help="torch threads of both runs")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--parallel", action="store_true", help="run both sides at the same time")
    ap.add_argument("--work", type=Path, default=Path(f"/tmp/xmhash-official/{spec.method}"))
    ap.add_argument("--keep", action="store_true", help="keep an earlier --work folder")
    ap.add_argument(
        "--combine",
        type=Path,
        nargs="+",
        help="print the table of earlier runs' --work folders (e.g. seeds run in parallel)",
    )
    args = ap.parse_args(argv)
    if args.combine:
        rows = [r for w in args.combine for r in json.loads((w / "results.json").read_text())]
        print(
            table(
                rows, f"{spec.title} vs official: {len(rows)} runs from {len(args.combine)} folders"
            )
        )
        return

    problems = check_checkout(spec, args.official)
    if problems:
        raise SystemExit("cannot run the side-by-side comparison:\n  - " + "\n  - ".join(problems))
    # the thread count is fixed for both sides (the official run inherits the environment)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    config = paper_config(spec.method)
    if args.work.exists() and not args.keep:
        shutil.rmtree(args.work)
    rows = []
    for seed in args.seeds:
        for bits in args.bits:
            work = args.work / f"seed{seed}"
            case = Case.in_folder(work, seed=seed, bits=bits, config=config, args=args)
            work.mkdir(parents=True, exist_ok=True)
            # each code length gets a fresh official folder (its caches and checkpoints)
            shutil.rmtree(case.official_dir, ignore_errors=True)
            case.official_dir.mkdir()
            spec.write_data(case)
            finish = start_official(spec, case, args.official.resolve())
            if not args.parallel:
                off_codes, own, off_s = finish()
            ours_path, ours_s = run_ours(spec, case)
            if args.parallel:
                off_codes, own, off_s = finish()
            off_path = work / f"official_{bits}_codes.h5"
            save_codes(off_path, off_codes)
            row = {
                "seed": seed,
                "bits": bits,
                "ours": score(case, ours_path, "ours"),
                "official": score(case, off_path, "official"),
                "official_own": own,
                "features": features_kind(args),
                "threads": args.threads,
                "seconds": {"ours": round(ours_s, 1), "official": round(off_s, 1)},
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
            (args.work / "results.json").write_text(json.dumps(rows, indent=1))
    epochs = args.epochs or "official"
    db = f" / {args.n_database} database items" if "n_database" in d else ""
    header = (
        f"{spec.title} vs official ({spec.url} @ {spec.commit[:7]}); mAP@all by our evaluator, "
        f"database = {case.extra['database']}; {len(args.seeds)} seeds, {args.n_train} train / "
        f"{args.n_test} test items{db}, epochs: {epochs}; features: {features_kind(args)}; "
        f"{args.threads} thread(s); official's own evaluator: {spec.own_metric}"
    )
    print()
    print(table(rows, header))


def features_kind(args: argparse.Namespace) -> str:
    return "real" if getattr(args, "features", None) else "generated"


def parse_numbers(text: str, patterns: dict[str, str]) -> dict[str, float]:
    out = {}
    for task, pat in patterns.items():
        found = re.findall(pat, text)
        if found:
            out[task] = float(found[-1])
    return out
