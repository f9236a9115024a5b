"""UCMFH side by side with its official code (github.com/XinyuXia97/UCMFH).

    git clone https://github.com/XinyuXia97/UCMFH
    git -C UCMFH checkout 116f015d512380fb344dd54b5641bf4c884c2a05
    python benchmarks/official/ucmfh.py --official UCMFH [--bits 16 32] [--seeds 0 1 2]

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
"""

from __future__ import annotations

import dataclasses
import pickle
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H  # noqa: E402

from xmhash.data.demo import DemoSpec, generate_demo  # noqa: E402
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


def official_split(rows: dict[str, np.ndarray], n_items: int) -> np.ndarray:
    where = np.full(n_items, "database", dtype=object)
    where[rows["query"]] = "query"
    where[rows["train"]] = "train"
    return where.astype(str)


def write_data(case: H.Case) -> None:
    a = case.args
    if (a.image_dim, a.text_dim) != (FEAT_DIM, FEAT_DIM):
        raise SystemExit(
            f"the official code fixes {FEAT_DIM}-d image and text features: use "
            f"--image-dim {FEAT_DIM} --text-dim {FEAT_DIM}"
        )
    check_sizes(a.n_train, a.n_database, a.n_test)
    n = a.n_database + a.n_test
    feats = generate_demo(
        DemoSpec(n_items=n, image_dim=FEAT_DIM, text_dim=FEAT_DIM, seed=case.seed)
    )
    rows = official_rows(a.n_train, a.n_database, a.n_test)
    write_layout(case.official_dir / "Dataset" / OFFICIAL_DATASET, feats, rows)
    for sub in ("real", "hash"):  # save_checkpoints writes ./checkpoints/<sub>/
        (case.official_dir / "checkpoints" / sub).mkdir(parents=True, exist_ok=True)
    write_features(
        case.features,
        dataclasses.replace(feats, official_split=official_split(rows, n)),
    )
    case.extra["split"] = {"query": a.n_test, "train": "all", "val": 0, "official": True}
    block = case.config["datasets"][BLOCK]
    case.extra["database"] = block.get("database") or case.config["evaluation"]["database"]


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
    if len(arrays["call0_qu_B"]) != len(rows["query"]):
        raise SystemExit(
            f"captured {len(arrays['call0_qu_B'])} official query codes, "
            f"expected {len(rows['query'])}"
        )
    return H.official_codeset(
        arrays["call0_qu_B"],
        arrays["call1_qu_B"],
        rows["query"],
        arrays["call1_re_B"],
        arrays["call0_re_B"],
        rows["retrieval"],
        case.bits,
        ids,
    )


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
        "n_train": 512,
        "n_database": 1024,
        "n_test": 512,
        "image_dim": FEAT_DIM,
        "text_dim": FEAT_DIM,
    },
    shim_args=shim_args,
    own_metric="mAP@50 (DJSRH calculate_top_map)",
)

if __name__ == "__main__":
    H.main(SPEC)
