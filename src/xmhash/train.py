"""The generic, method-agnostic training loop, and the train stage's entry point.

* Features of the training items live in one tensor on the device; a batch is an index
  slice (``Batch.idx``), never a per-item Python dataset.
* Seeds are arguments: batch order of epoch e comes from a generator seeded with
  (seed, e), so a resumed run draws the same batches as an uninterrupted one.
* Every ``checkpoint_minutes`` of training (at the end of the epoch that crosses the
  interval, the last epoch included), the full state (model, optimizer, scheduler, RNG
  of torch, CUDA, numpy and Python, history, best state) is written atomically to a
  checkpoint beside the model. A restarted job resumes from it only when everything
  that determines the result is unchanged: method, params, bits, seed, selection, the
  content of its inputs (features, split rows, labels, graph files) and the code of the
  method and trainer. Otherwise the checkpoint is discarded with a log line naming what
  changed. The train stage removes it once the model and summary are written; the
  summary records the time spent writing checkpoints.
* The hot loop never waits for the device: each step's loss terms stay on the device
  and are summed there; they reach the host once per epoch, when a non-finite loss is
  reported with its epoch and the epoch's mean loss terms, learning rate and time go to
  the log and to a CSV.
* Model selection: ``paper`` (default) keeps the last epoch of the method's fixed
  schedule, as the papers do; ``val`` keeps the epoch with the best mean mAP@all
  (I->T, T->I) on the validation split, which is carved from the database and never
  touches the query set. ``select_metric`` ranks the epochs by mAP@all under the fixed
  tie rule (``map``) or by the tie-aware mAP@all (``tie_aware``: the expectation over
  orderings within tied Hamming distances, which no tie-break can move; the default: on
  20 validation items the tie rule alone changed the selected epoch in 44 % of the
  splits, ``benchmarks/tie_selection.py``). The summary records which rule and metric
  were used and the epoch chosen.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import errno
import functools
import hashlib
import inspect
import json
import logging
import math
import os
import random
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from xmhash import bits, metrics
from xmhash.data import noise
from xmhash.data.download import sha256_file
from xmhash.data.splits import load_split
from xmhash.device import resolve_device
from xmhash.features.store import read_features
from xmhash.io import atomic_path, sweep_stale, write_json
from xmhash.log import progress
from xmhash.methods import get_method
from xmhash.methods.base import (
    Batch,
    ClosedFormMethod,
    DeepMethod,
    HashMethod,
    Items,
    TrainData,
    save_model,
)
from xmhash.provenance import provenance

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    device: str = "auto"
    select: Literal["paper", "val"] = "paper"
    select_metric: Literal["map", "tie_aware"] = "tie_aware"  # ranks epochs when select == "val"
    val_every: int = 1  # epochs between validation passes when select == "val"
    checkpoint_minutes: float = 10.0  # training time between checkpoints (0 = every epoch)
    tf32: bool = True  # TF32 matmuls and convolutions on CUDA
    compile: bool = False  # torch.compile the method's loss (methods that allow it)
    threads: int = 1  # torch intra-op threads of the job


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
    """One host->device copy of a float32 array; pinned and non-blocking on CUDA."""
    return _to_device(torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)), device)


# select_metric -> the metric (xmhash.metrics.evaluate's key) that ranks the epochs
SELECT_METRICS = {"map": "map@all", "tie_aware": "map@all_tie_aware"}


def _to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on ``device``; pinned and non-blocking on CUDA, so it never waits."""
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def compile_loss(method: DeepMethod) -> bool:
    """``training.compile``: the method's ``loss`` (forward pass and loss terms, and so its
    backward pass) runs through ``torch.compile`` for this instance; the optimiser step
    stays eager. Methods whose loss does host-side work set ``compilable = False`` and run
    eagerly (logged). Returns whether it was compiled."""
    if not method.compilable:
        log.info("%s: training.compile is set, but its loss cannot be compiled; eager", method.name)
        return False
    method.loss = torch.compile(method.loss, dynamic=False)
    return True


def cross_modal_map(
    method: HashMethod,
    query: Items,
    query_labels: np.ndarray,
    database: Items | None = None,
    database_labels: np.ndarray | None = None,
    *,
    metric: str = "map@all",
) -> dict[str, float]:
    """mAP@all (or ``metric``) of I->T (``i2t``) and T->I (``t2i``): the query items'
    codes ranked against the database items' codes of the other modality (the database
    defaults to the queries themselves, as in validation)."""
    if database is None:
        database, database_labels = query, query_labels
    q = {m: bits.pack(method.encode(query, m)) for m in ("image", "text")}
    d = q if database is query else {m: bits.pack(method.encode(database, m)) for m in q}
    return {
        task: metrics.evaluate(
            q[a], d[b], query_labels, database_labels, method.bits, ks=(), pn=()
        )[metric]
        for task, a, b in (("i2t", "image", "text"), ("t2i", "text", "image"))
    }


def validation_map(method: HashMethod, val: ValData, metric: str = "map") -> float:
    """Mean of mAP@all I->T and T->I with the validation split as queries and database;
    ``metric`` ``tie_aware``: of the tie-aware mAP@all."""
    maps = cross_modal_map(method, val.items, val.labels, metric=SELECT_METRICS[metric])
    return float(np.mean(list(maps.values())))


def _array_digest(digest: Any, array: Any) -> None:
    a = np.asarray(array.detach().cpu() if isinstance(array, torch.Tensor) else array)
    if a.dtype == object:
        a = np.asarray([str(x) for x in a.ravel()])
    digest.update(f"{a.dtype.str}{a.shape};".encode())
    digest.update(np.ascontiguousarray(a).data)


def _digest(*parts: Any) -> str:
    """sha256 of arrays, tensors, ragged arrays, strings and lists of strings."""
    digest = hashlib.sha256()
    for part in parts:
        if part is None:
            digest.update(b"none;")
        elif isinstance(part, str):
            digest.update(f"str{len(part)};{part}".encode())
        elif isinstance(part, list | tuple):
            digest.update(json.dumps(list(part)).encode())
        elif hasattr(part, "offsets") and hasattr(part, "embeddings"):  # a Ragged
            for field in (part.embeddings, part.offsets, part.names, part.boxes):
                digest.update(b"none;") if field is None else _array_digest(digest, field)
        else:
            _array_digest(digest, part)
    return digest.hexdigest()


def input_digests(data: TrainData) -> dict[str, str]:
    """Content digests of everything the method trains on: the features, the split's
    training rows, the labels and the graph files (not sizes or times)."""
    texts = list(data.texts) if data.texts is not None else None
    return {
        "features": _digest(data.image, data.text, texts, data.words, data.regions),
        "split": _digest(data.rows),
        "labels": _digest(data.labels, data.clean_labels),
        "graph": _digest([[k, sha256_file(p)] for k, p in sorted(data.graph.items())]),
        "resources": _digest(json.dumps(data.resources, sort_keys=True)),
    }


def code_digest(method: HashMethod) -> str:
    """sha256 of the source of the trainer, of the method's class hierarchy and of the
    xmhash modules the method's module takes names from."""
    cls = type(method)
    names = {__name__, cls.__module__}
    names.update(c.__module__ for c in cls.__mro__ if c.__module__.startswith("xmhash."))
    for value in vars(sys.modules[cls.__module__]).values():
        owner = getattr(value, "__module__", None) or getattr(value, "__name__", "")
        if isinstance(owner, str) and owner.startswith("xmhash."):
            names.add(owner)
    digest = hashlib.sha256()
    for name in sorted(names):
        module = sys.modules.get(name)
        path = inspect.getsourcefile(module) if module is not None else None
        if path:
            digest.update(f"{name};".encode() + Path(path).read_bytes())
    return digest.hexdigest()


def _fingerprint(method: HashMethod, data: TrainData, settings: TrainSettings) -> dict[str, Any]:
    """What a checkpoint must share with this run to be resumed (see the module doc)."""
    return {
        "method": method.name,
        "params": method.params.to_dict(),
        "bits": method.bits,
        "seed": method.seed,
        "selection": [settings.select, settings.val_every, settings.select_metric],
        "tf32": settings.tf32,
        "compile": settings.compile,
        **input_digests(data),
        "code": code_digest(method),
    }


def _changed(stored: Any, current: dict[str, Any]) -> list[str]:
    if not isinstance(stored, dict):
        return ["format"]
    return [k for k in current if stored.get(k) != current[k]]


def rng_state() -> dict[str, Any]:
    """The generators a training step may draw from: torch's CPU generator, every CUDA
    device's (when this process uses CUDA), numpy's and Python's."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_initialized():
        torch.cuda.set_rng_state_all(state["cuda"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def set_tf32(enabled: bool) -> None:
    """TF32 for CUDA matmuls and cuDNN convolutions (``training.tf32``)."""
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


@functools.cache  # a process-wide setting: once is enough (find_library runs ldconfig)
def keep_freed_host_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of handing it back to the
    system; True when it applied (glibc only, a no-op elsewhere).

    A training step allocates and frees the same large tensors every time (gradients and
    activations of a wide layer: 456 MB per step at UCCH's 8192 widths). glibc serves
    blocks above 32 MB with ``mmap`` and unmaps them when freed, so every step faults
    their pages in again: 76,000 page faults and 0.12 s of system time per step of an
    8192-wide MLP, about 9 % of the step. With ``mmap`` off for large blocks and no trimming,
    they stay in the heap and are reused. The process then keeps its peak memory until it
    exits, which a training job reaches on every step anyway."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return False
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None or not hasattr(libc, "gnu_get_libc_version"):
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # glibc's malloc.h
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 2**31 - 1))


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


def _snapshot(obj: Any) -> Any:
    """A copy of ``obj`` that training can no longer change: tensors copied to host memory,
    containers rebuilt, everything else deep-copied."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _snapshot(v) for k, v in obj.items()}
    if type(obj) in (list, tuple):
        return type(obj)(_snapshot(v) for v in obj)
    return copy.deepcopy(obj)


def _checkpoint_state(
    method: DeepMethod,
    fingerprint: dict[str, Any],
    epoch: int,
    history: list[dict[str, Any]],
    best: Any,
) -> dict[str, Any]:
    return _snapshot(
        {
            "fingerprint": fingerprint,
            "epoch": epoch,
            "net": method.net.state_dict(),
            "optimizer": method.optimizer.state_dict(),
            "scheduler": method.scheduler.state_dict() if method.scheduler is not None else None,
            "scaler": method.scaler.state_dict() if method.scaler is not None else None,
            "rng": rng_state(),
            "history": history,
            "best": best,
        }
    )


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (a full disk, a lost mount); the message names the
    file and the fix."""


class CheckpointWriter:
    """Writes checkpoints on a background thread, one at a time, so that training goes on
    while a file is written (a gigabyte takes seconds on a local disk and far longer on a
    busy shared one). Training waits only for the snapshot (a copy of the state in host
    memory: the checkpoint's size, once more, while it is written) and, when the previous
    file is still being written, for that one. Each file is renamed into place only when
    complete, so a kill leaves the previous checkpoint. Leaving the ``with`` block waits
    for the last write. A failed write is raised on the training thread at the next
    checkpoint or on leaving the block, as :class:`CheckpointWriteError` naming the file and
    the fix; it also replaces an ``OSError`` of the block itself (on a full disk, the next
    history or log write fails too, and its error would hide the cause)."""

    def __init__(self) -> None:
        self.written = 0
        self.blocked = 0.0  # seconds the training thread spent on checkpoints
        self.writing = 0.0  # seconds the writes took on the background thread
        self._thread: threading.Thread | None = None
        self._error: tuple[Path, BaseException] | None = None

    def write(self, path: Path, state_of: Callable[[], dict[str, Any]]) -> None:
        """Snapshot the state (``state_of()``, called now) and write it to ``path``."""
        self.wait()  # counts its own time
        t = time.perf_counter()
        state = state_of()

        def run() -> None:
            tw = time.perf_counter()
            try:
                with atomic_path(path) as tmp:
                    torch.save(state, tmp)
            except BaseException as e:  # noqa: BLE001 - handed to the training thread
                self._error = (path, e)
            self.writing += time.perf_counter() - tw

        self._thread = threading.Thread(target=run, name="checkpoint-writer", daemon=True)
        self._thread.start()
        self.written += 1
        self.blocked += time.perf_counter() - t

    def wait(self, raise_errors: bool = True) -> None:
        t = time.perf_counter()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.blocked += time.perf_counter() - t
        failed, self._error = self._error, None
        if failed is None or not raise_errors:
            return
        path, error = failed
        if not isinstance(error, OSError):
            raise error
        full = error.errno in (errno.ENOSPC, errno.EDQUOT)
        raise CheckpointWriteError(
            f"could not write the checkpoint {path}: {error.strerror or error}. "
            f"{'Free space on that disk' if full else 'Make its directory writable'} (or set "
            f"training.checkpoint_minutes: 0 to train without checkpoints) and rerun: "
            f"training resumes from the last complete checkpoint, if any"
        ) from None

    def __enter__(self) -> CheckpointWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.wait(raise_errors=exc is None or isinstance(exc, OSError))


def _resume(
    path: Path, method: DeepMethod, fingerprint: dict[str, Any]
) -> tuple[list[dict[str, Any]], Any, int] | None:
    """(history, best, first epoch) from the checkpoint at ``path`` when it belongs to
    this run; None (and a log line saying why) when it does not."""
    try:
        state = torch.load(path, map_location=method.device, weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file is discarded the same way
        log.info("discarding checkpoint %s: unreadable (%s); training from scratch", path, e)
        return None
    changed = _changed(state.get("fingerprint") if isinstance(state, dict) else None, fingerprint)
    if changed:
        log.info(
            "discarding checkpoint %s: it was written for other %s; training from scratch",
            path,
            ", ".join(changed),
        )
        return None
    method.net.load_state_dict(state["net"])
    method.optimizer.load_state_dict(state["optimizer"])
    if method.scheduler is not None and state["scheduler"] is not None:
        method.scheduler.load_state_dict(state["scheduler"])
    if method.scaler is not None and state["scaler"] is not None:
        method.scaler.load_state_dict(state["scaler"])
    restore_rng_state(state["rng"])
    log.info("resumed from %s after epoch %d", path, state["epoch"] + 1)
    return state["history"], state["best"], state["epoch"] + 1


class TermSums:
    """The epoch's sums of the loss terms in one float64 tensor on the device: a step adds
    all its terms with one stack and one in-place add, whatever their number."""

    def __init__(self, device: torch.device):
        self.device = device
        self.keys: list[str] = []
        self.total: torch.Tensor | None = None
        self.count = 0

    def add(self, terms: dict[str, Any]) -> None:
        if list(terms) != self.keys:
            self._rekey(terms)
        values = [terms.get(k, self._zero) for k in self.keys]
        values = [torch.as_tensor(v, device=self.device).detach().reshape(()) for v in values]
        step = torch.stack(values).to(torch.float64)
        self.total = step if self.total is None else self.total.add_(step)
        self.count += 1

    def _rekey(self, terms: dict[str, Any]) -> None:
        """A step with other terms than the last (rare): new terms start from zero."""
        new = [k for k in terms if k not in self.keys]
        self.keys = self.keys + new
        self._zero = torch.zeros((), device=self.device)
        if self.total is not None and new:
            pad = torch.zeros(len(new), dtype=torch.float64, device=self.device)
            self.total = torch.cat([self.total, pad])

    def means(self) -> list[float]:
        """The mean of each term on the host: the epoch's one device sync."""
        if self.total is None:
            return []
        return self.total.div(max(self.count, 1)).tolist()


def _epoch_means(method: HashMethod, sums: TermSums, epoch: int, epochs: int) -> dict[str, float]:
    """The epoch's mean loss terms on the host (the epoch's one device sync); raises on a
    non-finite term, naming the epoch."""
    means = dict(zip(sums.keys, sums.means(), strict=True))
    bad = [k for k, v in means.items() if not math.isfinite(v)]
    if bad:
        raise FloatingPointError(
            f"{method.name}: loss became non-finite in epoch {epoch + 1} of {epochs} "
            f"(term(s) {', '.join(bad)}); epoch means: "
            + " ".join(f"{k}={v:.5g}" for k, v in means.items())
            + "; lower the learning rate or check the features for NaN/inf"
        )
    return means


def fit(
    method: HashMethod,
    data: TrainData,
    settings: TrainSettings = TrainSettings(),
    *,
    val: ValData | None = None,
    checkpoint: str | os.PathLike | None = None,
    history_csv: str | os.PathLike | None = None,
    keep_checkpoint: bool = False,
) -> dict[str, Any]:
    """Train ``method`` on ``data``; return a JSON-ready summary of what was done.

    With ``checkpoint``, the state is saved there at the end of the first epoch that
    completes ``settings.checkpoint_minutes`` of training since the last save, and resumed
    from it when it belongs to this run. ``keep_checkpoint``: the last epoch is saved too
    (when due) and the file is left for the caller to remove once its outputs are written
    (the train stage); otherwise it is removed when training ends."""
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
    set_tf32(settings.tf32)
    if method.device.type == "cpu":
        keep_freed_host_memory()

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
    if ckpt is not None:  # a checkpoint write of a killed run of this job left these
        sweep_stale(ckpt)
    fp = _fingerprint(method, data, settings) if ckpt is not None else {}
    if ckpt is not None and ckpt.exists():
        resumed = _resume(ckpt, method, fp)
        if resumed is not None:
            history, best, start = resumed
    last_ckpt = time.monotonic()
    t_train = time.perf_counter()
    if settings.compile:
        compile_loss(method)

    with contextlib.ExitStack() as stack:
        stack.callback(method.__dict__.pop, "loss", None)  # the compiled loss ends with fit
        writer = stack.enter_context(CheckpointWriter())
        for epoch in progress(
            range(start, epochs),
            desc=f"{method.name} {method.bits}bits",
            total=epochs - start,
            unit="epoch",
        ):
            te = time.perf_counter()
            method.net.train()
            method.on_epoch_start(epoch)
            # the epoch's permutation is drawn on the device, seeded by (seed, epoch)
            gen = torch.Generator(device=method.device)
            gen.manual_seed(method.seed * 1_000_003 + epoch)
            sums = TermSums(method.device)
            for idx in method.batches(epoch, n, gen):
                if idx.device != method.device:  # a method drawing on the host
                    idx = _to_device(idx, method.device)
                labels = data.labels[idx] if data.labels is not None else None
                batch = Batch(idx=idx, image=data.image[idx], text=data.text[idx], labels=labels)
                sums.add(method.train_step(batch, epoch))
                if method.scheduler is not None:
                    method.scheduler.step()
            row: dict[str, Any] = {"epoch": epoch + 1}
            row.update(_epoch_means(method, sums, epoch, epochs))
            method.on_epoch_end(epoch)
            row.update(method.epoch_log())
            row["lr"] = method.optimizer.param_groups[0]["lr"]
            if settings.select == "val" and (
                (epoch + 1) % settings.val_every == 0 or epoch + 1 == epochs
            ):
                row["val_map"] = validation_map(method, val, settings.select_metric)
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
            # one write per interval at most, so the cost stays below write time / interval;
            # after the last epoch only for a caller that removes it when its outputs exist
            due = time.monotonic() - last_ckpt >= 60 * settings.checkpoint_minutes
            if ckpt is not None and due and (epoch + 1 < epochs or keep_checkpoint):
                state = functools.partial(_checkpoint_state, method, fp, epoch, history, best)
                writer.write(ckpt, state)
                last_ckpt = time.monotonic()

    train_seconds = time.perf_counter() - t_train
    summary: dict[str, Any] = {"selection": "last", "epoch": epochs, "epochs": epochs}
    if settings.select == "val" and best is not None:
        method.net.load_state_dict(best[2])
        summary.update(
            selection="val", select_metric=settings.select_metric, epoch=best[1], val_map=best[0]
        )
    summary["history"] = history
    summary.update(method.training_diagnostics(history))
    for warning in summary.get("warnings", []):
        log.warning("%s (%d bits, seed %d): %s", method.name, method.bits, method.seed, warning)
    summary["seconds"] = time.perf_counter() - t0
    summary["checkpoints"] = {
        "written": writer.written,
        "seconds": round(writer.blocked, 3),
        "write_seconds": round(writer.writing, 3),
        "share_of_training": round(writer.blocked / train_seconds, 5) if train_seconds else 0.0,
    }
    if writer.written:
        log.info(
            "%d checkpoint(s) written in %.2f s in the background; training waited %.2f s "
            "for them (%.2f%% of %.1f s of training)",
            writer.written,
            writer.writing,
            writer.blocked,
            100 * summary["checkpoints"]["share_of_training"],
            train_seconds,
        )
    if ckpt is not None and not keep_checkpoint:
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
    max_dense: int | None = None,
) -> dict[str, Any]:
    """The train stage: read features and split, train, write model and summary.

    ``train_labels`` replaces the training items' labels (the noisy-label track): an
    array, or a noise-stage file (:mod:`xmhash.data.noise`); the clean ones are then
    passed along as ``TrainData.clean_labels`` for diagnostics only.
    ``sample_weights_out``: where to write the method's per-sample weights of the
    training items with the flipped mask (``HashMethod.sample_weights``; all ones for
    methods that weigh every item equally).
    ``threads``: torch's intra-op threads (default ``settings.threads``); ``max_dense``:
    the largest n x n matrix a method may precompute (``graph.max_dense``).
    """
    torch.set_num_threads(threads or settings.threads)
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
        **({"max_dense": max_dense} if max_dense is not None else {}),
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
    ckpt = Path(model_out).with_suffix(".ckpt")
    summary = fit(
        model,
        data,
        settings,
        val=val,
        checkpoint=ckpt,
        history_csv=history_out,
        keep_checkpoint=True,
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
    ckpt.unlink(missing_ok=True)  # the outputs hold everything now
    return summary
