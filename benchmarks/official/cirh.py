"""CIRH side by side with its official code (github.com/XizeWu/CIRH).

    git clone https://github.com/XizeWu/CIRH
    git -C CIRH checkout 0f6439d3cad0240ea4a9924ff168aa2cef3b3b1e
    python benchmarks/official/cirh.py --official CIRH [--bits 16 32] [--seeds 0 1 2]

The official code needs scikit-learn (``load_data.py`` imports it); torchvision is
imported but unused, and the shim stands in for it when it is missing.

One synthetic multi-label feature set per seed (:mod:`xmhash.data.demo`) is written as
the official loader ``get_loader_flickr`` reads it: ``datasets/MIRFlickr/mir_train.mat``
(``I_tr``, ``T_tr``, ``L_tr``), ``mir_query.mat`` (``I_te``, ``T_te``, ``L_te``) and
``mir_database.mat`` (``I_db``, ``T_db``, ``L_db``), float32 arrays (the loader reads them
as float64, the networks as float32). The training items are the first ``--n-train``
database items, as MIRFlickr's 5,000 training items are a part of its 18,015 database
items. Our feature file holds the very same arrays, database rows first (in
``mir_database.mat`` order, the training rows leading) and query rows last, with the
official split as its ``official_split`` (``train`` / ``database`` / ``query``), so our
split has the same query, database and training rows, in the same order.

The official ``main_mir.py`` runs with the paper config's values as its arguments
(config/paper/cirh.yaml: 60 epochs, batch 512, Adam 1e-3 / 1e-4 / 1e-4, lambda1 10,
lambda2 1, beta 0.01, a1 = a2 = 0.6) and ``--TRAIN True`` (its default, False, only
loads a checkpoint), ``--SEED`` = the harness seed, ``--GPU_ID -1`` (no
``torch.cuda.set_device`` on a CPU), and ``--K`` = round(``zero_fraction`` x training
items), 3,000 of MIRFlickr's 5,000 and the same share of fewer items. It evaluates every
10 epochs and saves the checkpoint with the best *test* mAP@50, but keeps training; the
codes of its last evaluation (the last two ``calculate_top_map`` calls, epoch 60) are
the official codes here, and ours are the last epoch's too (``training.select: paper``),
so both sides are compared at the same epoch. The official script's own number
(last column of the table) is its mAP@50, printed with three decimals; the other
columns are mAP@all by our evaluator.

Sizes: ``--n-train`` (at least one batch, 512), ``--n-database``, ``--n-test`` (queries);
``--image-dim``/``--text-dim`` default to CLIP's 512 (the text dimension must be at least
512, the method network's width: below it our text hash function is wider than the
official d -> d -> c). With ``--n-train 2048 --n-database 4096 --n-test 1000`` one seed
takes about 100 s (ours) and 190 s (official) on one CPU thread.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import scipy.io as sio

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H  # noqa: E402

from xmhash.data.demo import DemoSpec  # noqa: E402
from xmhash.features.store import Features, read_ids, write_features  # noqa: E402
from xmhash.plan import method_config  # noqa: E402

BLOCK = "mirflickr25k"  # the paper config's dataset block (MIRFlickr, main_mir.py)
FOLDER = "datasets/MIRFlickr"  # get_loader_flickr: path = './datasets/MIRFlickr/'
# part -> (file, image key, text key, label key), as get_loader_flickr reads them
FILES = {
    "train": ("mir_train.mat", "I_tr", "T_tr", "L_tr"),
    "query": ("mir_query.mat", "I_te", "T_te", "L_te"),
    "database": ("mir_database.mat", "I_db", "T_db", "L_db"),
}
# main_mir.py's defaults and models.py's widths, and the names of the matching parameters
OFFICIAL = {
    "epochs": 60,  # --NUM_EPOCH
    "batch_size": 512,  # --BATCH_SIZE
    "lambda1": 10.0,  # --lambda1
    "lambda2": 1.0,  # --lambda2
    "beta": 0.01,  # --beta
    "a1": 0.6,  # --a1
    "a2": 0.6,  # --a2
    "zero_fraction": 0.6,  # --K 3000 of MIRFlickr's 5,000 training items
    "lr_method": 0.001,  # --LR_MyNet
    "lr_hash": 0.0001,  # --LR_IMG and --LR_TXT
    "width": 512,  # MyNet: encoders, GCNs and decoders 512 wide
    "image_hidden": 4096,  # Img_Net: d -> 4096 -> c
    "dropout": 0.3,  # Img_Net, Txt_Net
    "centre_inputs": "never",  # the loaders pass the features on as they are
}
OFFICIAL_SPLIT = {"query": 2000, "database": 18015, "train": 5000}  # the MIRFlickr files
EVAL_INTERVAL = 10  # main_mir.py --EVAL_INTERVAL


def layout(n_train: int, n_database: int, n_query: int) -> dict[str, np.ndarray]:
    """Rows of our feature file per official part: database rows first (the training
    rows leading), query rows last."""
    if not 0 < n_train <= n_database:
        raise SystemExit(
            f"--n-train {n_train}: the training items are a part of the database "
            f"(--n-database {n_database})"
        )
    return {
        "train": np.arange(n_train),
        "database": np.arange(n_database),
        "query": np.arange(n_database, n_database + n_query),
    }


def write_layout(
    folder: Path, image: np.ndarray, text: np.ndarray, labels: np.ndarray, rows: dict
) -> None:
    """The official MIRFlickr files from our rows (float32 features, float labels)."""
    folder.mkdir(parents=True, exist_ok=True)
    for part, (fname, ik, tk, lk) in FILES.items():
        r = rows[part]
        sio.savemat(
            folder / fname,
            {
                ik: image[r].astype(np.float32),
                tk: text[r].astype(np.float32),
                lk: labels[r].astype(np.float64),
            },
        )


def write_data(case: H.Case) -> None:
    a = case.args
    rows = layout(a.n_train, a.n_database, a.n_test)
    n = a.n_database + a.n_test
    demo = H.feature_set(
        case,
        a.n_database,
        a.n_test,
        DemoSpec(n_items=n, image_dim=a.image_dim, text_dim=a.text_dim, seed=case.seed),
    )
    # the text hash function is d -> d -> c with d >= width: real features are widened with
    # zero columns to --image-dim / --text-dim
    image = H.pad_columns(demo.image, a.image_dim, "CIRH image").astype(np.float32)
    text = H.pad_columns(demo.text, a.text_dim, "CIRH text").astype(np.float32)
    write_layout(case.official_dir / FOLDER, image, text, demo.labels, rows)
    for sub in ("logs", "checkpoints"):  # utils.logger and save_checkpoints write there
        (case.official_dir / sub).mkdir(exist_ok=True)
    write_features(
        case.features,
        Features(
            ids=demo.ids,
            labels=demo.labels,
            image=image,
            text=text,
            label_names=list(demo.label_names),
            official_split=H.official_split(rows, n),
            attrs={**demo.attrs, "dataset": "cirh_official_layout"},
        ),
    )
    cfg = case.config
    block = cfg["datasets"][BLOCK]
    if block["split"]["val"] != 0 or cfg["training"]["select"] != "paper":
        raise SystemExit(
            "config/paper/cirh.yaml: the comparison is at the last epoch; set "
            f"datasets.{BLOCK}.split.val: 0 and training.select: paper"
        )
    # the official files fix every row: train on all of the file's training rows
    case.extra["split"] = {**block["split"], "official": True, "train": "all"}
    case.extra["database"] = H.database_setting(cfg, BLOCK)


def our_params(case: H.Case):
    params = method_config(case.config, BLOCK, "cirh")
    if case.args.epochs:
        params["epochs"] = case.args.epochs
    text_hidden = params.get("text_hidden", 0) or max(case.args.text_dim, params["width"])
    if text_hidden != case.args.text_dim:
        raise SystemExit(
            f"the official text hash function is d -> d -> c; ours is d -> {text_hidden} -> c "
            f"for d = {case.args.text_dim} (methods.cirh.text_hidden: 0 means the text width, "
            f"but at least width {params['width']}): use --text-dim >= {params['width']}"
        )
    return params, case.config["training"]["select"], None


def official_k(zero_fraction: float, n_train: int) -> int:
    """--K for n_train training items: the same share of each row as ours zeroes."""
    return int(round(zero_fraction * n_train))


def official_argv(case: H.Case) -> list[str]:
    p, _, _ = our_params(case)
    if case.args.n_train < p["batch_size"]:
        # main_mir.py logs every (train_num // BATCH_SIZE / EPOCH_INTERVAL) batches: 0 fails
        raise SystemExit(f"--n-train must be at least the batch size ({p['batch_size']})")
    interval = EVAL_INTERVAL if p["epochs"] % EVAL_INTERVAL == 0 else p["epochs"]
    return [
        *("--TRAIN", "True", "--DATASET", "MIRFlickr", "--HASH_BIT", str(case.bits)),
        *("--NUM_EPOCH", str(p["epochs"]), "--BATCH_SIZE", str(p["batch_size"])),
        *("--LR_MyNet", str(p["lr_method"]), "--LR_IMG", str(p["lr_hash"])),
        *("--LR_TXT", str(p["lr_hash"])),
        *("--lambda1", str(p["lambda1"]), "--lambda2", str(p["lambda2"])),
        *("--beta", str(p["beta"]), "--a1", str(p["a1"]), "--a2", str(p["a2"])),
        *("--K", str(official_k(p["zero_fraction"], case.args.n_train))),
        *("--SEED", str(case.seed), "--GPU_ID", "-1", "--EVAL_INTERVAL", str(interval)),
        *("--MODEL_DIR", "./checkpoints"),
    ]


def official_codes(case: H.Case, arrays: dict[str, np.ndarray]) -> H.Codes:
    # performance_eval(): calculate_top_map(qu_B=query images, re_B=database texts, ...)
    # for I->T, then (qu_B=query texts, re_B=database images, ...) for T->I
    ids = read_ids(case.features)
    rows = layout(case.args.n_train, case.args.n_database, case.args.n_test)
    return H.top_map_codeset(arrays, rows["query"], rows["database"], case.bits, ids)


SPEC = H.Spec(
    method="cirh",
    title="CIRH",
    url="https://github.com/XizeWu/CIRH",
    commit="0f6439d3cad0240ea4a9924ff168aa2cef3b3b1e",
    script="main_mir.py",
    files=("main_mir.py", "my_opt.py", "models.py", "utils.py", "load_data.py"),
    packages=("torch", "numpy", "scipy", "h5py", "sklearn"),
    pip={"sklearn": "scikit-learn"},
    dataset=BLOCK,
    capture="calculate_top_map",
    write_data=write_data,
    official_argv=official_argv,
    official_codes=official_codes,
    our_params=our_params,
    parse_official=lambda text: H.parse_numbers(
        text,
        {
            "i2t": r"mAP@50 I->T: ([0-9.]+)",
            "t2i": r"mAP@50 I->T: [0-9.]+, mAP@50 T->I: ([0-9.]+)",
        },
    ),
    own_metric="mAP@50 (calculate_top_map)",
    defaults={
        "seeds": list(range(6)),  # per-seed sd 0.009 at these sizes: (0.009 / 0.004)^2 = 5.1
        "n_train": 1024,
        "n_database": 2048,
        "n_test": 500,
        "image_dim": 512,
        "text_dim": 512,
    },
)

if __name__ == "__main__":
    H.main(SPEC)
