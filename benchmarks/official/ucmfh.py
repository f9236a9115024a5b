"""UCMFH side by side with its official code (github.com/XinyuXia97/UCMFH).

    git clone https://github.com/XinyuXia97/UCMFH
    git -C UCMFH checkout 116f015d512380fb344dd54b5641bf4c884c2a05
    python benchmarks/official/ucmfh.py --official UCMFH [--bits 16 32] [--seeds 0 1 2]
    python benchmarks/official/ucmfh.py --diagnose --official UCMFH   # after a run

One synthetic CLIP-like feature set per seed (512-d image and text features, the widths
the official code fixes) is written as the official loader ``load_dataset`` reads it:
``Dataset/mirflickr/train.pkl``, ``query.pkl`` and ``retrieval.pkl``, each a pickled dict
with ``image`` and ``text`` (float32, one row per item) and ``label`` (multi-hot int64).
The loader opens them under the fixed folder ``/home/summer/data/Dataset/``; the shim
redirects that prefix to this seed's folder (``--redirect``), so nothing is written
outside ``--work``. The retrieval set is the first ``--n-database`` items, the training
set its first ``--n-train`` items (train.pkl repeats them, as the published pickles hold
training items that are also retrieval items), and the last ``--n-test`` items are the
queries. Our feature file is written from the very same arrays
(:func:`xmhash.features.store.write_features`), with these rows as its official split
(``train`` / ``database`` / ``query``), and our split takes them as they are.

The official script (``demo.py --dataset mirflickr --task 1``: train the hash functions,
then test) runs with the paper config's epochs and code length as its arguments; its
other settings (batch 128, learning rates, widths, the MultiStep schedule of
``mirflickr``) have no argument and are checked against config/paper/ucmfh.yaml. It has
no model selection: both sides keep the last epoch. Its test codes are the arguments of
its last two ``calculate_top_map`` calls (I->T: image queries against retrieval texts,
then T->I). Its own evaluator prints DJSRH's mAP@50; our evaluator scores both code sets
by mAP@all on the retrieval set.

The official loaders drop the last partial batch of 128 of the query and retrieval sets,
so ``--n-test`` and ``--n-database`` must be multiples of 128 (then both sides score the
same items). The official code fixes its seed (2023); each harness seed draws another
feature set, and our run uses that seed.

``--diagnose`` reads a finished ``--work`` folder and scores both trained models (ours, and
the official checkpoint loaded into the official modules) under three test encodings: the
official one (image and text in one token, each test batch one sequence), paired tokens
one item per sequence, and ours (one modality, the other half zero). It separates a gap
of training from one of encoding.
"""

from __future__ import annotations

import argparse
import dataclasses
import pickle
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H  # noqa: E402

from xmhash.data.demo import DemoSpec  # noqa: E402
from xmhash.features.store import read_ids, write_features  # noqa: E402

BLOCK = "mirflickr25k"  # the paper config's dataset block (the official --dataset mirflickr)
OFFICIAL_DATASET = "mirflickr"  # selects the MultiStep schedule x1.2 at 30 and 80
DATA_ROOT = "/home/summer/data/Dataset/"  # load_dataset's fixed folder
FEAT_DIM = 512  # ICMR.py: feat_lens = 512 (token_size 1024 = image + text)
BATCH = 128  # ICMR.py: batch_size = 128; every loader drops its last partial batch
TRAIN_CUT = 4992  # load_dataset: train[:4992]
# the official settings that have no command-line argument: methods.ucmfh must hold them
FIXED = {
    "batch_size": 128,
    "fusion_layers": 2,
    "fusion_ff": 2048,
    "fusion_dropout": 0.1,
    "hidden": 4096,
    "mlp_dropout": 0.3,
    "temperature": 0.5,
    "hash_weight": 0.5,
    "lr_fusion": 1e-4,
    "lr_hash": 1e-3,
    "beta1": 0.5,
    "lr_milestones": [30, 80],
    "lr_gamma": 1.2,
}
PARTS = ("train", "query", "retrieval")


def official_rows(n_train: int, n_database: int, n_test: int) -> dict[str, np.ndarray]:
    """Rows of our feature file that each official pickle holds, in the pickle's order."""
    return {
        "train": np.arange(n_train),
        "retrieval": np.arange(n_database),
        "query": np.arange(n_database, n_database + n_test),
    }


def check_sizes(n_train: int, n_database: int, n_test: int) -> None:
    for flag, n in (("--n-test", n_test), ("--n-database", n_database)):
        if n <= 0 or n % BATCH:
            raise SystemExit(
                f"{flag} {n}: the official query and retrieval loaders drop the last partial "
                f"batch of {BATCH}; use a multiple of {BATCH} so that both sides score the "
                "same items"
            )
    if not BATCH <= n_train <= min(TRAIN_CUT, n_database):
        raise SystemExit(
            f"--n-train {n_train}: must be at least one batch ({BATCH}), at most the "
            f"{TRAIN_CUT} rows the official loader uses and at most --n-database"
        )


def write_layout(folder: Path, feats, rows: dict[str, np.ndarray]) -> None:
    """The official pickles: ``folder/<part>.pkl`` with image, text and label arrays."""
    folder.mkdir(parents=True, exist_ok=True)
    for part in PARTS:
        r = rows[part]
        data = {
            "image": feats.image[r].astype(np.float32),
            "text": feats.text[r].astype(np.float32),
            "label": feats.labels[r].astype(np.int64),
        }
        with open(folder / f"{part}.pkl", "wb") as fh:
            pickle.dump(data, fh, protocol=4)


def write_data(case: H.Case) -> None:
    a = case.args
    if (a.image_dim, a.text_dim) != (FEAT_DIM, FEAT_DIM):
        raise SystemExit(
            f"the official code fixes {FEAT_DIM}-d image and text features: use "
            f"--image-dim {FEAT_DIM} --text-dim {FEAT_DIM}"
        )
    check_sizes(a.n_train, a.n_database, a.n_test)
    n = a.n_database + a.n_test
    feats = H.feature_set(
        case,
        a.n_database,
        a.n_test,
        DemoSpec(n_items=n, image_dim=FEAT_DIM, text_dim=FEAT_DIM, seed=case.seed),
    )
    feats.image = H.pad_columns(feats.image, FEAT_DIM, "UCMFH image")
    feats.text = H.pad_columns(feats.text, FEAT_DIM, "UCMFH text")
    rows = official_rows(a.n_train, a.n_database, a.n_test)
    write_layout(case.official_dir / "Dataset" / OFFICIAL_DATASET, feats, rows)
    for sub in ("real", "hash"):  # save_checkpoints writes ./checkpoints/<sub>/
        (case.official_dir / "checkpoints" / sub).mkdir(parents=True, exist_ok=True)
    write_features(
        case.features,
        dataclasses.replace(feats, official_split=H.official_split(rows, n)),
    )
    case.extra["split"] = {"query": a.n_test, "train": "all", "val": 0, "official": True}
    case.extra["database"] = H.database_setting(case.config, BLOCK)


def our_params(case: H.Case):
    params = dict(case.config["methods"]["ucmfh"])
    for key, value in FIXED.items():
        have = list(params[key]) if isinstance(value, list) else params.get(key)
        if have != value:
            raise SystemExit(
                f"config/paper/ucmfh.yaml: methods.ucmfh.{key} is {have!r}; the official "
                f"code fixes {value!r} (no argument changes it): set it to {value!r}"
            )
    if case.args.epochs:
        params["epochs"] = case.args.epochs
    return params, case.config["training"]["select"], None


def official_argv(case: H.Case) -> list[str]:
    p, _, _ = our_params(case)
    return [
        *("--dataset", OFFICIAL_DATASET, "--epoch", str(p["epochs"])),
        *("--hash_lens", str(case.bits), "--task", "1", "--device", case.args.device),
    ]


def shim_args(case: H.Case) -> list[str]:
    return ["--redirect", f"{DATA_ROOT}={case.official_dir / 'Dataset'}/"]


def official_codes(case: H.Case, arrays: dict[str, np.ndarray]) -> H.Codes:
    # the final evaluate(): calculate_top_map(qu_BI, re_BT, ...) for I->T, then
    # calculate_top_map(qu_BT, re_BI, ...) for T->I
    ids = read_ids(case.features)
    a = case.args
    rows = official_rows(a.n_train, a.n_database, a.n_test)
    return H.top_map_codeset(arrays, rows["query"], rows["retrieval"], case.bits, ids)


SPEC = H.Spec(
    method="ucmfh",
    title="UCMFH",
    url="https://github.com/XinyuXia97/UCMFH",
    commit="116f015d512380fb344dd54b5641bf4c884c2a05",
    script="demo.py",
    files=("demo.py", "ICMR.py", "load_dataset.py", "model.py", "metric.py", "evaluate.py"),
    packages=("torch", "numpy", "tqdm"),
    pip={},
    dataset=BLOCK,
    capture="calculate_top_map",
    write_data=write_data,
    official_argv=official_argv,
    official_codes=official_codes,
    our_params=our_params,
    parse_official=lambda text: H.parse_numbers(
        text,
        {
            "i2t": r"I2T:\s*([0-9.]+)\s*, T2I:",
            "t2i": r"I2T:\s*[0-9.]+\s*, T2I:\s*([0-9.]+)",
        },
    ),
    defaults={
        "bits": [16],
        "seeds": list(range(21)),  # per-seed sd 0.0179 (T->I): (0.0179 / 0.004)^2 = 20.0
        "n_train": 128,  # one batch per epoch: 100 epochs cost the official code ~7 min on a CPU
        "n_database": 512,
        "n_test": 256,
        "image_dim": FEAT_DIM,
        "text_dim": FEAT_DIM,
    },
    shim_args=shim_args,
    own_metric="mAP@50 (DJSRH calculate_top_map)",
)

# --------------------------------------------------------------------------- encodings

ENCODINGS = {
    "paired_batch": "image + text token, each test batch of 128 one sequence (official test)",
    "paired_item": "image + text token, each item its own sequence",
    "single_item": "one modality, the other half zero, each item its own sequence (ours)",
}


def _official_model(checkout: Path, ckpt: Path, bits: int):
    """The official modules (imported from the checkout) with the run's saved weights."""
    import torch

    sys.path.insert(0, str(checkout))
    from model import FuseTransEncoder, ImageMlp, TextMlp  # the official model.py

    fuse = FuseTransEncoder(2, 2 * FEAT_DIM, 4)
    image, text = ImageMlp(FEAT_DIM, bits), TextMlp(FEAT_DIM, bits)
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    fuse.load_state_dict(state["FusionTransformer"])
    image.load_state_dict(state["ImageMlp"])
    text.load_state_dict(state["TextMlp"])
    for m in (fuse, image, text):
        m.eval()

    def encode(img, txt, how: str):
        tokens = torch.cat([img, txt], 1)
        if how == "paired_batch":  # a 2-D input: one sequence per batch, as in evaluate()
            parts = [fuse(tokens[i : i + BATCH]) for i in range(0, len(tokens), BATCH)]
            f_i, f_t = (torch.cat([p[k] for p in parts]) for k in (0, 1))
            return image(f_i), text(f_t)
        if how == "paired_item":  # (1, N, d): N sequences of one token, as in training
            f_i, f_t = fuse(tokens.unsqueeze(0))
            return image(f_i), text(f_t)
        zi, zt = torch.zeros_like(img), torch.zeros_like(txt)
        return image(fuse(torch.cat([img, zt], 1).unsqueeze(0))[0]), text(
            fuse(torch.cat([zi, txt], 1).unsqueeze(0))[1]
        )

    return encode


def _our_model(path: Path):
    from xmhash.methods.base import load_model

    m = load_model(path)

    def encode(img, txt, how: str):
        if how == "single_item":
            return m.project(img, "image"), m.project(txt, "text")
        if how == "paired_item":
            f_i, f_t = m.fuse(m._embed(img, "image"), m._embed(txt, "text"))
            return m.net.image(f_i), m.net.text(f_t)
        return None  # our encoder has no attention across items

    return encode


def diagnose(work: Path, checkout: Path, bits: int) -> None:
    """Both trained models of every seed in ``work``, each encoded three ways, scored by
    our evaluator: separates the training from the test-time encoding."""
    import torch

    from xmhash.codes import make_codeset, save_codes
    from xmhash.data.splits import load_split
    from xmhash.features.store import read_features

    config = H.paper_config("ucmfh")
    rows: dict[tuple[str, str], list[dict[str, float]]] = {}
    for seed_dir in sorted(work.glob("seed*")):
        ckpt = (
            seed_dir / "official" / "checkpoints" / "hash" / f"{OFFICIAL_DATASET}_hash_{bits}.pth"
        )
        if not (ckpt.exists() and (seed_dir / f"ours_{bits}.pt").exists()):
            print(
                f"{seed_dir}: no finished {bits}-bit run of both sides, left out", file=sys.stderr
            )
            continue
        feats = read_features(seed_dir / "features.h5")
        sp = load_split(seed_dir / "split.npz")
        models = {
            "ours": _our_model(seed_dir / f"ours_{bits}.pt"),
            "official": _official_model(checkout, ckpt, bits),
        }
        case = H.Case.in_folder(
            seed_dir,
            seed=int(seed_dir.name[4:]),
            bits=bits,
            config=config,
            args=argparse.Namespace(),
            extra={"database": "retrieval"},
        )
        for name, encode in models.items():
            for how in ENCODINGS:
                sets = {}
                with torch.no_grad():
                    for part in ("query", "database"):
                        r = getattr(sp, part)
                        img = torch.as_tensor(feats.image[r], dtype=torch.float32)
                        txt = torch.as_tensor(feats.text[r], dtype=torch.float32)
                        out = encode(img, txt, how)
                        if out is None:
                            break
                        h_i, h_t = (np.where(o.numpy() >= 0, 1, -1) for o in out)
                        sets[part] = make_codeset(h_i, h_t, feats.ids[r], r)
                if len(sets) < 2:
                    continue
                path = seed_dir / f"diag_{name}_{how}_{bits}_codes.h5"
                save_codes(path, H.Codes(bits, sets["query"], sets["database"], {"seed": -1}))
                rows.setdefault((name, how), []).append(H.score(case, path, f"diag_{name}_{how}"))
    print(f"UCMFH trained models x test-time encodings ({work}, {bits} bits); mAP@all, database =")
    print("retrieval, mean ± std over seeds\n")
    print("| model | encoding | i2t | t2i |\n|---|---|---:|---:|")
    for (name, how), res in rows.items():
        cells = [H._ms([r[t] for r in res]) for t in H.TASKS]
        print(f"| {name} | {how}: {ENCODINGS[how]} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    if "--diagnose" in sys.argv:
        ap = argparse.ArgumentParser(description="UCMFH: both models under three encodings")
        ap.add_argument("--diagnose", action="store_true")
        ap.add_argument("--official", type=Path, required=True)
        ap.add_argument("--work", type=Path, default=Path("/tmp/xmhash-official/ucmfh"))
        ap.add_argument("--bits", type=int, default=16)
        a = ap.parse_args()
        diagnose(a.work, a.official.resolve(), a.bits)
    else:
        H.main(SPEC)
