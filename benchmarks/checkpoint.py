"""Checkpoint overhead of the trainer as a share of training time, measured in one run.

    python benchmarks/checkpoint.py [--method rshnl] [--bits 128] [--hidden 4096]
                                    [--dim 4096] [--n 2000] [--epochs 3] [--minutes 10]

Trains one method at paper width on random features twice, as the train stage does
(checkpoint beside the model, kept until the outputs are written): for ``--epochs`` with
the wall-clock interval (``--minutes``, the default of ``training.checkpoint_minutes``),
and for at most 3 epochs writing a checkpoint after every epoch (``checkpoint_minutes:
0``, what the trainer used to do). Prints the checkpoint's size, the seconds per write
(on the writer's thread), the seconds training waited for the writer (the snapshot, and
the previous write when it was still running), the slowdown of the epochs that ran
beside a write (their excess over the median epoch), the seconds per epoch and the share
of training time lost to checkpoints, (waited + slowdown) / training time, against the
2 % limit; and the bound for a run of any length: at most one write per interval, so at
most its cost / (interval + its cost). The interval run measures the default only when
it trains longer than the interval (``written`` > 0): choose ``--epochs`` so that it
does.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from xmhash.methods import METHODS  # noqa: E402
from xmhash.methods.base import TrainData  # noqa: E402
from xmhash.train import TrainSettings, fit  # noqa: E402

LIMIT = 0.02


def run(args, minutes: float, epochs: int, tmp: Path) -> dict:
    cls = METHODS[args.method]
    g = torch.Generator().manual_seed(0)
    n = args.n
    labels = torch.zeros(n, 10)
    labels[torch.arange(n), torch.randint(0, 10, (n,), generator=g)] = 1
    data = TrainData(
        image=torch.randn(n, args.dim, generator=g),
        text=torch.randn(n, args.dim, generator=g),
        rows=np.arange(n),
        labels=labels if cls.supervised else None,
    )
    params = cls.Params()
    fields = {f.name for f in dataclasses.fields(params)}
    over = {"epochs": epochs, **({"hidden": args.hidden} if "hidden" in fields else {})}
    params = dataclasses.replace(params, **over)
    torch.manual_seed(0)
    method = cls(params, bits=args.bits, image_dim=args.dim, text_dim=args.dim, seed=0)
    ckpt = tmp / "model.ckpt"
    settings = TrainSettings(device="cpu", checkpoint_minutes=minutes)
    # when each epoch ended and when each file was written (the writer's thread), so that
    # the slowdown of the epochs that ran beside a write is counted, not only the wait
    ends, writes, real_save, epoch_end = [], [], torch.save, method.on_epoch_end

    def timed_save(obj, f, *a, **k):
        t = time.perf_counter()
        real_save(obj, f, *a, **k)
        writes.append((t, time.perf_counter()))

    def timed_epoch_end(epoch):
        epoch_end(epoch)
        ends.append(time.perf_counter())

    method.on_epoch_end = timed_epoch_end
    torch.save = timed_save
    try:
        summary = fit(method, data, settings, checkpoint=ckpt, keep_checkpoint=True)
    finally:
        torch.save = real_save
    size = ckpt.stat().st_size if ckpt.exists() else 0
    ckpt.unlink(missing_ok=True)
    c = summary["checkpoints"]
    secs = [r["seconds"] for r in summary["history"]]
    beside = [
        any(w0 < end and end - s < w1 for w0, w1 in writes)
        for end, s in zip(ends, secs, strict=True)
    ]
    alone = statistics.median([s for s, b in zip(secs, beside, strict=True) if not b] or secs)
    slowdown = sum(max(0.0, s - alone) for s, b in zip(secs, beside, strict=True) if b)
    train_s = sum(secs)
    return {
        "epochs": epochs,
        "written": c["written"],
        "waited_s": c["seconds"],
        "write_s": c["write_seconds"] / max(c["written"], 1),
        "slowdown_s": slowdown,
        "epoch_s": alone,
        "share": (c["seconds"] + slowdown) / train_s,
        "size_mb": size / 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="rshnl")
    ap.add_argument("--bits", type=int, default=128)
    ap.add_argument("--hidden", type=int, default=4096)
    ap.add_argument("--dim", type=int, default=4096)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        schedules = (
            ("every epoch", 0.0, min(args.epochs, 3)),
            (f"every {args.minutes:g} min", args.minutes, args.epochs),
        )
        for label, minutes, epochs in schedules:
            rows.append((label, run(args, minutes, epochs, Path(tmp))))
    print(
        f"{args.method} {args.bits} bits, hidden {args.hidden}, {args.n} x {args.dim} "
        f"features, {args.threads} thread(s); share = (time training waited for the "
        "writer + slowdown of the epochs beside a write) / training time"
    )
    head = f"{'schedule':<16}{'epochs':>7}{'written':>8}{'MB':>7}{'s/write':>9}{'waited':>8}"
    print(head + f"{'slowdown':>9}{'s/epoch':>9}{'share':>8}{'/ limit':>8}")
    for label, r in rows:
        print(
            f"{label:<16}{r['epochs']:>7}{r['written']:>8}{r['size_mb']:>7.0f}"
            f"{r['write_s']:>9.2f}{r['waited_s']:>8.2f}{r['slowdown_s']:>9.2f}"
            f"{r['epoch_s']:>9.2f}{r['share']:>8.2%}{r['share'] / LIMIT:>8.2f}"
        )
    every = rows[0][1]  # the interval run of a short test may write none
    per_write = (every["waited_s"] + every["slowdown_s"]) / max(every["written"], 1)
    bound = per_write / (60 * args.minutes + per_write)
    print(
        f"{'any length':<16}{'':>7}{'':>8}{'':>7}{'':>9}{per_write:>8.2f}{'':>9}{'':>9}"
        f"{bound:>8.2%}{bound / LIMIT:>8.2f}   (at most one write per {args.minutes:g} min)"
    )


if __name__ == "__main__":
    main()
