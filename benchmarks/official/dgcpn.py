"""DGCPN side by side with its official code (github.com/Atmegal/DGCPN).

    git clone https://github.com/Atmegal/DGCPN
    git -C DGCPN checkout 9f62c56e037c0c399451d0f02db05b8666d439ed
    python benchmarks/official/dgcpn.py --official DGCPN [--bits 16 32] [--seeds 0 1 2]

The official ``train.py`` needs scikit-learn (``load_data.py`` imports it) and nothing
else beyond torch, numpy and scipy.

One synthetic multi-label feature set per seed (4,096-d images: the official image
network's first layer is ``Linear(4096, 4096)``) is written as the official loader
``get_loader('flickr', ...)`` reads it: ``<root>/flickr/flickr_vgg19.npy`` (images,
float32), ``tags.npy`` (texts, float32), ``label.npy`` (multi-hot, int) and the row
indices ``test_num.npy`` (queries), ``val_num.npy`` (validation), ``train_num.npy``
(training) and ``database_num.npy`` (retrieval set: every non-query row). The authors
never published their index files; the harness draws them per seed (sorted rows, so the
official loaders and our split list every part in the same order). The loader reads from
the authors' disk (``/media/zhouhao/.../dataset/``); the shim's ``--redirect`` opens
those files from the harness's folder instead. Our feature file holds the very same
arrays, with the four parts as its ``official_split`` (``query``, ``val``, ``train``, the
rest ``database``), and our split takes them as they are (``split.official``).

The official script runs with the paper config's values as its arguments
(config/paper/dgcpn.yaml: at most 100 epochs, batch 32, SGD lr 0.005, ...); its kNN size
is given as the number of dropped entries (``--knn_number N - k``) and its coherence
scale as a number (``--scale coherence_scale * k``), which is how the official defaults
(3,000 and 4,000 at N = 5,000) read in our relative parameters. Hidden width 4,096 and
dropout 0.5 are fixed in the official ``models.py``; the paper config must use them.
It stops early (11 validation passes without a better mAP) and keeps the epoch with the
best mAP@all of the validation queries against the retrieval set; ours keeps the best
epoch of the validation rows ranked against themselves (``select: val``) over all epochs.
The official test codes are the arguments of the last two ``calculate_map`` calls (I->T:
query images vs retrieval texts, then T->I).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H  # noqa: E402

from xmhash.data.demo import DemoSpec  # noqa: E402
from xmhash.features.store import read_ids, write_features  # noqa: E402
from xmhash.methods.joint import neighbours_of  # noqa: E402

BLOCK = "mirflickr25k"  # the paper config's dataset block whose split rule our side uses
DATA_NAME = "flickr"  # --data_name: any name but "wiki" takes get_loader(data_name)
DATA_ROOT = "/media/zhouhao/02A04EDFA04ED935/dataset/"  # load_data.get_loader's fixed path
OFFICIAL_IMAGE_DIM = 4096  # models.py ImgNet: fc1 = nn.Linear(4096, 4096)
OFFICIAL_WIDTH = 4096  # models.py: both networks' hidden layer
OFFICIAL_DROPOUT = 0.5  # models.py: nn.Dropout(p=0.5)
INDEX_FILES = {
    "query": "test_num.npy",
    "val": "val_num.npy",
    "train": "train_num.npy",
    "database": "database_num.npy",
}


def official_rows(n_test: int, n_val: int, n_train: int, seed: int) -> dict[str, np.ndarray]:
    """The rows of each official part: query, validation and training rows drawn without
    overlap; the retrieval set is every non-query row (validation and training included)."""
    n = n_test + n_val + n_train
    perm = np.random.default_rng(seed).permutation(n)
    q = np.sort(perm[:n_test])
    return {
        "query": q,
        "val": np.sort(perm[n_test : n_test + n_val]),
        "train": np.sort(perm[n_test + n_val :]),
        "database": np.setdiff1d(np.arange(n), q),
    }


def data_folder(case: H.Case) -> Path:
    return case.official_dir / "dataset"


def write_data(case: H.Case) -> None:
    a = case.args
    if a.image_dim != OFFICIAL_IMAGE_DIM:
        raise SystemExit(
            f"--image-dim {a.image_dim}: the official ImgNet takes {OFFICIAL_IMAGE_DIM}-d "
            f"images (models.py), use --image-dim {OFFICIAL_IMAGE_DIM}"
        )
    if min(a.n_test, a.n_val, a.n_train) < 1:
        raise SystemExit("--n-test, --n-val and --n-train must all be at least 1")
    rows = official_rows(a.n_test, a.n_val, a.n_train, case.seed)
    n = a.n_test + a.n_val + a.n_train
    feats = H.feature_set(
        case,
        n - a.n_test,
        a.n_test,
        DemoSpec(n_items=n, image_dim=a.image_dim, text_dim=a.text_dim, seed=case.seed),
    )
    feats.image = H.pad_columns(feats.image, a.image_dim, "DGCPN image")
    if getattr(
        a, "features", None
    ):  # the drawn query rows hold the folder's query items (the trailing rows)
        order = np.empty(n, int)
        order[rows["query"]] = np.arange(n - a.n_test, n)
        order[np.setdiff1d(np.arange(n), rows["query"])] = np.arange(n - a.n_test)
        feats = dataclasses.replace(
            feats,
            **{k: getattr(feats, k)[order] for k in ("ids", "labels", "image", "text")},
        )
    # the official networks take the raw features (VGG-19 fc7, bag-of-words): rows of
    # norm sqrt(d), i.e. coordinates of unit scale, instead of the demo's unit-norm rows,
    # whose 4,096 image coordinates of ~1/64 leave the official image network's codes
    # almost constant; both sides read these same numbers
    feats.image = (feats.image * np.sqrt(feats.image.shape[1])).astype(np.float32)
    feats.text = (feats.text * np.sqrt(feats.text.shape[1])).astype(np.float32)
    folder = data_folder(case) / DATA_NAME
    folder.mkdir(parents=True)
    np.save(folder / f"{DATA_NAME}_vgg19.npy", feats.image.astype(np.float32))
    np.save(folder / "tags.npy", feats.text.astype(np.float32))
    np.save(folder / "label.npy", feats.labels.astype(np.int64))
    for part, fname in INDEX_FILES.items():
        np.save(folder / fname, rows[part].astype(np.int64))
    for sub in ("checkpoint", "log", "result"):  # the script writes there, relative to its cwd
        (case.official_dir / sub).mkdir()
    split = H.official_split(rows, n)
    ours = dataclasses.replace(feats, words=None, regions=None, official_split=split)
    ours.attrs = {**ours.attrs, "dataset": f"dgcpn-official-{case.seed}"}
    write_features(case.features, ours)

    block = case.config["datasets"][BLOCK]
    if block["split"].get("val_from", "database") != "database":
        raise SystemExit(
            f"config/paper/dgcpn.yaml: datasets.{BLOCK}.split.val_from must be database "
            "(the official validation rows are not trained on)"
        )
    case.extra["split"] = {
        "query": a.n_test,
        "train": "all",
        "val": a.n_val,
        "official": True,
        "val_from": "database",
    }
    case.extra["database"] = H.database_setting(case.config, BLOCK)
    case.extra["rows"] = rows


def our_params(case: H.Case):
    params = dict(case.config["methods"]["dgcpn"])
    if case.args.epochs:
        params["epochs"] = case.args.epochs
    fixed = {"hidden": OFFICIAL_WIDTH, "dropout": OFFICIAL_DROPOUT}
    for key, value in fixed.items():
        if params.get(key) != value:
            raise SystemExit(
                f"config/paper/dgcpn.yaml: methods.dgcpn.{key} must be {value}, the official "
                "value (fixed in models.py)"
            )
    return params, case.config["training"]["select"], None


def official_knn(params: dict, n_train: int) -> tuple[int, float]:
    """The official --knn_number (entries dropped per row) and --scale for our neighbours
    fraction and coherence scale on n_train items."""
    k = neighbours_of(params["neighbours"], n_train)
    return n_train - k, params["coherence_scale"] * k


def official_argv(case: H.Case) -> list[str]:
    p, _, _ = our_params(case)
    knn_number, scale = official_knn(p, case.args.n_train)
    return [
        *("--data_name", DATA_NAME, "--bit", str(case.bits)),
        *("--num_epochs", str(p["epochs"]), "--batch_size", str(p["batch_size"])),
        *("--learning_rate", str(p["lr"]), "--weight_decay", str(p["weight_decay"])),
        *("--momentum", str(p["momentum"]), "--K", str(p["k_pair"])),
        *("--dw", str(p["dis_weight"]), "--cw", str(p["cons_weight"])),
        *("--a1", str(p["a1"]), "--a2", str(p["a2"])),
        *("--knn_number", str(knn_number), "--scale", str(scale)),
        *("--save_model_path", "checkpoint/"),
    ]


def shim_args(case: H.Case) -> list[str]:
    return ["--redirect", f"{DATA_ROOT}={data_folder(case)}/"]


def official_codes(case: H.Case, arrays: dict[str, np.ndarray]) -> H.Codes:
    # the final eval(): calculate_map(qu_B=query images, re_B=retrieval texts, ...) for
    # I->T, then (qu_B=query texts, re_B=retrieval images, ...) for T->I
    rows = case.extra["rows"]
    q_img = arrays["call0_qu_B"]
    if len(q_img) != len(rows["query"]) or len(arrays["call0_re_B"]) != len(rows["database"]):
        raise SystemExit(
            f"captured {len(q_img)} x {len(arrays['call0_re_B'])} official test codes, "
            f"expected {len(rows['query'])} x {len(rows['database'])}"
        )
    return H.official_codeset(
        q_img,
        arrays["call1_qu_B"],
        rows["query"],
        arrays["call1_re_B"],
        arrays["call0_re_B"],
        rows["database"],
        case.bits,
        read_ids(case.features),
    )


def parse_official(text: str) -> dict[str, float]:
    out = H.parse_numbers(
        text,
        {
            "i2t": r"MAP@All of Image to Text: ([0-9.]+)",
            "t2i": r"MAP@All of Image to Text: [0-9.]+, MAP of Text to Image: ([0-9.]+)",
            "epoch": r"has been trained for (\d+) epochs",
        },
    )
    return out


SPEC = H.Spec(
    method="dgcpn",
    title="DGCPN",
    url="https://github.com/Atmegal/DGCPN",
    commit="9f62c56e037c0c399451d0f02db05b8666d439ed",
    script="train.py",
    files=("train.py", "train_div.py", "load_data.py", "models.py", "metric.py"),
    packages=("torch", "numpy", "scipy", "sklearn"),
    pip={"sklearn": "scikit-learn"},
    dataset=BLOCK,
    capture="calculate_map",
    write_data=write_data,
    official_argv=official_argv,
    official_codes=official_codes,
    our_params=our_params,
    parse_official=parse_official,
    defaults={
        "bits": [16],
        "seeds": list(range(13)),  # per-seed sd 0.014 (T->I): (0.014 / 0.004)^2 = 12.3
        "n_train": 128,  # 4 batches per epoch: 3 seeds of both sides in about 20 minutes
        "n_val": 64,
        "n_test": 128,
        "image_dim": OFFICIAL_IMAGE_DIM,
        "text_dim": 128,
    },
    shim_args=shim_args,
)

if __name__ == "__main__":
    H.main(SPEC)
