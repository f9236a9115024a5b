"""The generic, method-agnostic training loop, and the train stage's entry point.

* Features of the training items live in one tensor on the device; a batch is an index
  slice (``Batch.idx``), never a per-item Python dataset.
* Seeds are arguments: batch order of epoch e comes from a generator seeded with
  (seed, e), so a resumed run draws the same batches as an uninterrupted one.
* Every ``checkpoint_every`` epochs the full state (model, optimizer, scheduler, RNG,
  history, best state) is written atomically to a checkpoint beside the model; a
  restarted job with the same method, params, bits and seed resumes from it, and a
  finished job removes it.
* Each epoch's mean loss terms, learning rate and time go to the log and to a CSV.
* Model selection: ``paper`` (default) keeps the last epoch of the method's fixed
  schedule, as the papers do; ``val`` keeps the epoch with the best mean mAP@all
  (I->T, T->I) on the validation split, which is carved from the database and never
  touches the query set. The summary records which rule was used and the epoch chosen.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import logging
import os
import random
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from xmhash import bits, metrics
from xmhash.data import noise
from xmhash.data.splits import load_split
from xmhash.features.store import read_features
from xmhash.io import atomic_path, write_json
from xmhash.log import progress
from xmhash.methods import get_method
from xmhash.methods.base import (
    Batch,
    ClosedFormMethod,
    DeepMethod,
    HashMethod,
    Items,
    TrainData,
    resolve_device,
    save_model,
)
from xmhash.provenance import provenance

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    device: str = "auto"
    select: Literal["paper", "val"] = "paper"
    val_every: int = 1  # epochs between validation passes when select == "val"
    checkpoint_every: int = 1  # epochs between checkpoints (0 = never)


@dataclass
class ValData:
    """The validation split: queries and database at once (clean labels)."""

    items: Items
    labels: np.ndarray


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """One host->device copy; pinned and non-blocking on CUDA."""
    t = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t


def cross_modal_map(
    method: HashMethod,
    query: Items,
    query_labels: np.ndarray,
    database: Items | None = None,
    database_labels: np.ndarray | None = None,
) -> dict[str, float]:
    """mAP@all of I->T (``i2t``) and T->I (``t2i``): the query items' codes ranked against
    the database items' codes of the other modality (the database defaults to the queries
    themselves, as in validation)."""
    if database is None:
        database, database_labels = query, query_labels
    q = {m: bits.pack(method.encode(query, m)) for m in ("image", "text")}
    d = q if database is query else {m: bits.pack(method.encode(database, m)) for m in q}
    return {
        task: metrics.evaluate(
            q[a], d[b], query_labels, database_labels, method.bits, ks=(), pn=()
        )["map@all"]
        for task, a, b in (("i2t", "image", "text"), ("t2i", "text", "image"))
    }


def validation_map(method: HashMethod, val: ValData) -> float:
    """Mean of mAP@all I->T and T->I with the validation split as queries and database."""
    return float(np.mean(list(cross_modal_map(method, val.items, val.labels).values())))


def _fingerprint(method: HashMethod, data: TrainData, settings: TrainSettings) -> str:
    key = {
        "method": method.name,
        "params": method.params.to_dict(),
        "bits": method.bits,
        "seed": method.seed,
        "n": len(data),
        "select": settings.select,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def _write_history(path: Path | None, history: list[dict[str, Any]]) -> None:
    if path is None:
        return
    keys: list[str] = []
    for row in history:
        keys.extend(k for k in row if k not in keys)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys or ["epoch"])
        w.writeheader()
        w.writerows(history)


def fit(
    method: HashMethod,
    data: TrainData,
    settings: TrainSettings = TrainSettings(),
    *,
    val: ValData | None = None,
    checkpoint: str | os.PathLike | None = None,
    history_csv: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Train ``method`` on ``data``; return a JSON-ready summary of what was done."""
    t0 = time.perf_counter()
    history_path = Path(history_csv) if history_csv else None
    if isinstance(method, ClosedFormMethod):
        method.fit(data)
        history = [{"epoch": 0, "seconds": round(time.perf_counter() - t0, 3)}]
        _write_history(history_path, history)
        return {
            "selection": "closed-form",
            "epoch": None,
            "epochs": 0,
            "history": history,
            "seconds": time.perf_counter() - t0,
        }
    if not isinstance(method, DeepMethod):
        raise TypeError(f"{method.name}: neither a ClosedFormMethod nor a DeepMethod")
    if settings.select == "val" and val is None:
        raise ValueError("select: val needs a validation split")

    epochs = method.params.epochs
    bs = method.params.batch_size
    n = len(data)
    method.setup(data)
    steps = max(1, n // bs if method.drop_last and n >= bs else -(-n // bs))
    method.optimizer, method.scheduler = method.configure_optimizer(steps)

    history: list[dict[str, Any]] = []
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    start = 0
    ckpt = Path(checkpoint) if checkpoint else None
    fp = _fingerprint(method, data, settings)
    if ckpt is not None and ckpt.exists():
        state = torch.load(ckpt, map_location=method.device, weights_only=False)
        if state.get("fingerprint") == fp:
            method.net.load_state_dict(state["net"])
            method.optimizer.load_state_dict(state["optimizer"])
            if method.scheduler is not None and state["scheduler"] is not None:
                method.scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["torch_rng"])
            history, best, start = state["history"], state["best"], state["epoch"] + 1
            log.info("resumed from %s after epoch %d", ckpt, start)
        else:
            log.info("ignoring checkpoint %s: it belongs to other settings", ckpt)

    for epoch in progress(
        range(start, epochs),
        desc=f"{method.name} {method.bits}bits",
        total=epochs - start,
        unit="epoch",
    ):
        te = time.perf_counter()
        method.net.train()
        method.on_epoch_start(epoch)
        gen = torch.Generator().manual_seed(method.seed * 1_000_003 + epoch)
        sums: dict[str, float] = defaultdict(float)
        count = 0
        for idx in method.batches(epoch, n, gen):
            idx = idx.to(method.device)
            labels = data.labels[idx] if data.labels is not None else None
            batch = Batch(idx=idx, image=data.image[idx], text=data.text[idx], labels=labels)
            for key, value in method.train_step(batch, epoch).items():
                sums[key] += value
            count += 1
        method.on_epoch_end(epoch)
        row: dict[str, Any] = {"epoch": epoch + 1}
        row.update({k: v / max(count, 1) for k, v in sums.items()})
        row["lr"] = method.optimizer.param_groups[0]["lr"]
        if settings.select == "val" and (
            (epoch + 1) % settings.val_every == 0 or epoch + 1 == epochs
        ):
            row["val_map"] = validation_map(method, val)
            if best is None or row["val_map"] > best[0]:
                best = (row["val_map"], epoch + 1, copy.deepcopy(method.net.state_dict()))
        row["seconds"] = round(time.perf_counter() - te, 3)
        history.append(row)
        log.info(
            "epoch %d/%d %s",
            epoch + 1,
            epochs,
            " ".join(f"{k}={v:.5g}" for k, v in row.items() if k != "epoch"),
        )
        _write_history(history_path, history)
        if (
            ckpt is not None
            and settings.checkpoint_every
            and ((epoch + 1) % settings.checkpoint_every == 0)
            and epoch + 1 < epochs
        ):
            with atomic_path(ckpt) as tmp:
                torch.save(
                    {
                        "fingerprint": fp,
                        "epoch": epoch,
                        "net": method.net.state_dict(),
                        "optimizer": method.optimizer.state_dict(),
                        "scheduler": (
                            method.scheduler.state_dict() if method.scheduler is not None else None
                        ),
                        "torch_rng": torch.get_rng_state(),
                        "history": history,
                        "best": best,
                    },
                    tmp,
                )

    summary: dict[str, Any] = {"selection": "last", "epoch": epochs, "epochs": epochs}
    if settings.select == "val" and best is not None:
        method.net.load_state_dict(best[2])
        summary.update(selection="val", epoch=best[1], val_map=best[0])
    summary["history"] = history
    summary["seconds"] = time.perf_counter() - t0
    if ckpt is not None:
        ckpt.unlink(missing_ok=True)
    return summary


def run_training(
    *,
    features: str,
    split: str,
    method: str,
    params: dict[str, Any],
    bits: int,
    seed: int,
    settings: TrainSettings,
    model_out: str,
    summary_out: str,
    history_out: str,
    graph: dict[str, str] | None = None,
    resources: dict[str, str] | None = None,
    threads: int | None = None,
    train_labels: np.ndarray | str | os.PathLike | None = None,
    sample_weights_out: str | None = None,
) -> dict[str, Any]:
    """The train stage: read features and split, train, write model and summary.

    ``train_labels`` replaces the training items' labels (the noisy-label track): an
    array, or a noise-stage file (:mod:`xmhash.data.noise`); the clean ones are then
    passed along as ``TrainData.clean_labels`` for diagnostics only.
    ``sample_weights_out``: where to write the method's per-sample weights of the
    training items with the flipped mask (``HashMethod.sample_weights``; all ones for
    methods that weigh every item equally).
    """
    if threads:
        torch.set_num_threads(threads)
    cls = get_method(method)
    hp = cls.Params.from_config(params, f"methods.{method}")
    parts = ["image", "text", *sorted(cls.needs & {"texts", "words", "regions"})]
    feats = read_features(features, parts=parts)
    sp = load_split(split)
    device = resolve_device(settings.device)
    seed_everything(seed)
    rows = sp.train
    log.info(
        "%s %d bits seed %d on %s: %d train items, %d val, features %s (%s)",
        method,
        bits,
        seed,
        device,
        len(rows),
        len(sp.val),
        features,
        feats.attrs.get("encoder"),
    )

    if isinstance(train_labels, str | os.PathLike):
        train_labels = noise.train_labels_for(train_labels, rows)
    labels = clean = None
    if cls.supervised:
        clean = feats.labels[rows]
        labels = clean if train_labels is None else train_labels
        if len(labels) != len(rows):
            raise ValueError(
                f"train_labels has {len(labels)} rows, the split has {len(rows)} training items"
            )
    resources = dict(resources or {})
    if "encoder" in cls.needs and feats.attrs.get("encoder_id"):
        # the encoder the features came from (a model id or local directory), for methods
        # that fine-tune it (VTM-UCH's paper setting)
        resources.setdefault("encoder", str(feats.attrs["encoder_id"]))
    data = TrainData(
        image=to_device(feats.image[rows], device),
        text=to_device(feats.text[rows], device),
        rows=rows,
        labels=to_device(labels, device) if labels is not None else None,
        clean_labels=(
            to_device(clean, device) if clean is not None and train_labels is not None else None
        ),
        texts=[feats.texts[i] for i in rows] if feats.texts is not None else None,
        words=feats.words.subset(rows) if feats.words is not None else None,
        regions=feats.regions.subset(rows) if feats.regions is not None else None,
        graph={k: Path(v) for k, v in (graph or {}).items()},
        resources=resources,
    )
    val = ValData(
        items=Items(
            image=feats.image[sp.val],
            text=feats.text[sp.val],
            texts=([feats.texts[i] for i in sp.val] if feats.texts is not None else None),
        ),
        labels=feats.labels[sp.val],
    )
    model = cls(
        hp,
        bits=bits,
        image_dim=feats.image.shape[1],
        text_dim=feats.text.shape[1],
        seed=seed,
        device=device,
        resources=resources,
    )
    summary = fit(
        model,
        data,
        settings,
        val=val,
        checkpoint=Path(model_out).with_suffix(".ckpt"),
        history_csv=history_out,
    )
    summary.update(
        method=method,
        bits=bits,
        seed=seed,
        params=hp.to_dict(),
        settings=asdict(settings),
        device=str(device),
        n_train=len(rows),
        encoder=feats.attrs.get("encoder"),
    )
    save_model(
        model_out,
        model,
        extra={
            "features": str(features),
            "encoder": feats.attrs.get("encoder"),
            "encoder_id": feats.attrs.get("encoder_id"),
        },
    )
    if sample_weights_out is not None:
        weights = model.sample_weights(data)
        kind = model.sample_weights_kind if weights is not None else "uniform"
        if weights is None:
            weights = np.ones(len(rows), np.float32)
        flipped = (
            np.any(feats.labels[rows] != np.asarray(train_labels), axis=1)
            if train_labels is not None
            else np.zeros(len(rows), bool)
        )
        noise.write_weights(sample_weights_out, rows, weights, flipped, kind)
        summary["weights_auc"] = noise.separation_auc(weights, flipped)
    summary["provenance"] = provenance(
        {"features": features, "split": split, **(graph or {})}, device
    )
    write_json(summary_out, summary)
    return summary
