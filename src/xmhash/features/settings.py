"""What decides a feature file's content, and what only decides how it is computed.

The feature rule reruns when a rule param changes, so its params are exactly what
changes the file: the encoder's identity (:func:`encoder_identity`) and the content
settings (:func:`content_settings`). The runtime settings (:func:`runtime_settings`:
``features.threads``, ``max_threads``, ``workers``, ``batch_size``, ``chunk_items``, the
device and the ``features.encoders`` mapping from short keys to models) change speed,
memory and resume granularity, or results only at the level of floating-point noise, so
changing them reruns nothing. How many threads, decode workers and items per batch
``auto`` means is decided here too (:func:`job_threads`, :func:`stage_sizes`). Nothing
here imports torch: the workflow calls it while it builds the job graph.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from xmhash.io import read_json, write_json

# short key -> Hugging Face model id (or local directory)
ENCODERS: dict[str, str] = {
    "vitb32": "openai/clip-vit-base-patch32",
    "vitb16": "openai/clip-vit-base-patch16",
    "vitl14": "openai/clip-vit-large-patch14",
}

RUNTIME_KEYS = (
    "threads",
    "max_threads",
    "workers",
    "batch_size",
    "chunk_items",
    "device",
    "encoders",
)

CPU_THREADS = 2  # the job's threads on the CPU, where the model and not decoding is the limit
CPU_BATCH, CUDA_BATCH = 64, 256

# the files of a saved model directory that make up the model: weights, configs, vocab
_MODEL_FILES = (".json", ".safetensors", ".bin", ".txt", ".model")


def resolve_encoder(key_or_path: str, extra: Mapping[str, str] | None = None) -> str:
    """The model id or directory behind a short key; other strings are returned unchanged."""
    registry = {**ENCODERS, **(extra or {})}
    return str(registry.get(key_or_path, key_or_path))


def local_digest(path: str | os.PathLike, cache: str | os.PathLike | None = None) -> str:
    """A content hash of a local model directory: its weights, configs and vocabulary.

    ``cache`` (a JSON file) keeps each file's sha256 under its path, size, mtime and
    inode, so that a workflow that checks the encoder on every start reads gigabytes of
    weights only when a file was replaced or rewritten.
    """
    path = Path(path).expanduser().resolve()
    known: dict[str, str] = {}
    if cache is not None and Path(cache).is_file():
        try:
            known = dict(read_json(cache))
        except (OSError, ValueError, TypeError):
            known = {}
    fresh: dict[str, str] = {}
    digest = hashlib.sha256()
    for file in sorted(p for p in path.iterdir() if p.is_file()):
        if not file.name.endswith(_MODEL_FILES):
            continue
        st = file.stat()
        key = f"{file}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"
        if key not in known:
            h = hashlib.sha256()
            with open(file, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 22), b""):
                    h.update(block)
            known[key] = h.hexdigest()
        fresh[key] = known[key]
        digest.update(f"{file.name}\0{known[key]}\n".encode())
    if cache is not None:
        others = {k: v for k, v in known.items() if not k.startswith(f"{path}/")}
        try:
            write_json(cache, {**others, **fresh})
        except OSError:  # a read-only workflow directory: hash again next time
            pass
    return "sha256:" + digest.hexdigest()[:16]


def encoder_identity(
    key: str, extra: Mapping[str, str] | None = None, cache: str | os.PathLike | None = None
) -> str:
    """What the feature file's content depends on about its encoder: the content digest
    of a local directory (so replacing its weights reruns the feature stage, and moving
    it does not), or the hub model id (the snapshot it resolves to is recorded in the
    file as ``encoder_revision``)."""
    source = resolve_encoder(key, extra)
    if Path(source).expanduser().is_dir():
        return local_digest(source, cache)
    return source


def content_settings(features: Mapping[str, Any]) -> dict[str, Any]:
    """The ``features`` config block without the runtime settings."""
    return {k: v for k, v in features.items() if k not in RUNTIME_KEYS}


def job_threads(features: Mapping[str, Any], *, cuda: bool, cpu_count: int | None) -> int:
    """The feature job's CPU threads (the rule's ``threads``, so Slurm's cpus-per-task):
    ``features.threads``, or for ``auto`` 2 on the CPU and, on CUDA, every core of the node
    up to ``features.max_threads`` (decoding is what feeds the GPU)."""
    threads = features.get("threads", "auto")
    if threads != "auto":
        return int(threads)
    if not cuda:
        return CPU_THREADS
    return max(
        CPU_THREADS, min(int(cpu_count or CPU_THREADS), int(features.get("max_threads", 16)))
    )


def stage_sizes(features: Mapping[str, Any], *, cuda: bool, threads: int) -> dict[str, int]:
    """``workers`` and ``batch_size`` with ``auto`` resolved for the job. The threads drive
    the decode workers: on CUDA one thread is left to the process feeding the GPU; on the
    CPU the workers share the cores with the model, which is the slower of the two."""
    workers = features.get("workers", "auto")
    if workers == "auto":
        workers = max(1, threads - 1) if cuda else threads
    batch = features.get("batch_size", "auto")
    if batch == "auto":
        batch = CUDA_BATCH if cuda else CPU_BATCH
    return {"workers": int(workers), "batch_size": int(batch)}


def runtime_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of the whole config that change how, not what, the stage computes."""
    features = config.get("features") or {}
    out = {k: features[k] for k in RUNTIME_KEYS if k in features and k != "device"}
    out["device"] = features.get("device") or config.get("device") or "auto"
    out.setdefault("encoders", {})
    return out
