"""Start-up time of the command line, against the interpreter's own start-up.

    python benchmarks/cli_startup.py [--reps 5]

Prints the median wall time of ``xmhash --help`` and ``xmhash search --help`` (run as
``python -m xmhash.cli`` from this checkout), of a bare ``python -c pass`` (the floor, measured
in the same run) and of ``import torch`` (what the help would cost if it loaded a method),
with each as a multiple of the floor. The target is ``xmhash --help`` under 1 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

COMMANDS = {
    "python -c pass (floor)": ["-c", "pass"],
    "xmhash --help": ["-m", "xmhash.cli", "--help"],
    "xmhash search --help": ["-m", "xmhash.cli", "search", "--help"],
    "import torch": ["-c", "import torch"],
}


def wall(args: list[str], reps: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        subprocess.run([sys.executable, *args], env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    results = {name: wall(cmd, args.reps) for name, cmd in COMMANDS.items()}
    floor = results["python -c pass (floor)"]
    print(f"{'command':<24} {'median s':>9} {'x floor':>8}")
    for name, t in results.items():
        print(f"{name:<24} {t:>9.3f} {t / floor:>8.1f}")
    print(f"xmhash --help under 1 s: {'yes' if results['xmhash --help'] < 1 else 'NO'}")


if __name__ == "__main__":
    main()
