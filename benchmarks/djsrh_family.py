"""DJSRH / JDSH / DGCPN training speed at MIRFlickr size on CPU.

5,000 training items with 512-d image and text features (the demo generator at that
size), batch 32 as in the papers. For each method: the one-off setup (JDSH's threshold
fit, DGCPN's whole-set similarity), seconds per epoch and samples/s, at the demo width
(hidden 1024) and the papers' (4096). The physical limit printed beside it is the
matmul throughput of this machine measured in the same run: the epoch's forward and
backward FLOPs divided by it give the time a perfectly efficient implementation would
take, and the ratio says how far off we are (small batches of 32 are overhead-bound).

    python benchmarks/djsrh_family.py [--items 5000] [--epochs 1] [--hidden 1024 4096]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from _limits import matmul_gflops  # benchmarks/_limits.py

from xmhash.data.demo import DemoSpec, generate_demo  # noqa: E402
from xmhash.methods import get_method  # noqa: E402
from xmhash.methods.base import TrainData  # noqa: E402
from xmhash.train import TrainSettings, fit  # noqa: E402

# forward+backward passes of both MLPs per batch: DGCPN makes three updates
PASSES = {"djsrh": 1, "jdsh": 1, "dgcpn": 3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--bits", type=int, default=64)
    ap.add_argument("--hidden", type=int, nargs="+", default=[1024, 4096])
    ap.add_argument("--methods", nargs="+", default=["djsrh", "jdsh", "dgcpn"])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("XMHASH_PROGRESS", "0")
    f = generate_demo(DemoSpec(n_items=args.items))
    data = TrainData(image=torch.from_numpy(f.image), text=torch.from_numpy(f.text), rows=None)
    peak = matmul_gflops()
    print(
        f"{args.items} items x 512-d, {args.bits} bits, batch 32, {args.threads} threads, "
        f"load {os.getloadavg()[0]:.1f}, matmul {peak:.1f} GFLOP/s"
    )
    print(
        f"{'method':>7} {'hidden':>6} {'setup s':>8} {'s/epoch':>8} {'samples/s':>10} "
        f"{'ideal s':>8} {'ratio':>6}"
    )
    for name in args.methods:
        cls = get_method(name)
        for hidden in args.hidden:
            params = cls.Params(epochs=args.epochs, hidden=hidden)
            torch.manual_seed(0)
            m = cls(params, bits=args.bits, image_dim=512, text_dim=512, seed=0)
            t = time.perf_counter()
            m.setup(data)
            setup = time.perf_counter() - t
            summary = fit(m, data, TrainSettings(device="cpu", checkpoint_minutes=0))
            train_s = summary["seconds"]  # includes a second (identical) setup
            per_epoch = max(train_s - setup, 1e-9) / args.epochs
            steps = args.items // 32
            flops = 3 * 2 * 32 * (512 * hidden + hidden * args.bits) * 2 * steps * PASSES[name]
            ideal = flops / (peak * 1e9)
            print(
                f"{name:>7} {hidden:>6} {setup:>8.2f} {per_epoch:>8.2f} "
                f"{steps * 32 / per_epoch:>10.0f} {ideal:>8.2f} {per_epoch / ideal:>6.1f}"
            )


if __name__ == "__main__":
    main()
