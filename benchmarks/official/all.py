"""Every side-by-side harness, on generated and real features, in one table.

    python benchmarks/official/all.py --checkouts DIR [--quick] [--features DIR]

``DIR`` holds the official checkouts as ``UCCH``, ``RSHNL``, ``UCMFH``, ``CIRH`` and
``DGCPN`` (docs/official.md names their commits). Each harness runs at its documented size
and seed count, once on its synthetic features and once on the real features of
``--features`` (default ``../shared/data/wikipedia-sift-lda`` next to the repository; the
real rows are skipped when the folder is absent). ``--quick`` runs two seeds of a few
items and epochs each, a smoke run of the whole chain; its numbers say nothing about
fidelity. The table gives, per method, code length, features and direction: the seeds,
mean mAP@all of both sides, the paired difference ours - official ± its standard error and
whether it lies within ±0.01 (undecided while the standard error exceeds 0.004).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H  # noqa: E402

HERE = Path(__file__).resolve().parent
WIKI = H.REPO.parent / "shared" / "data" / "wikipedia-sift-lda"
TOLERANCE = 0.01
MAX_SE = 0.004  # a standard error above this cannot tell a 0.01 difference from none

# method -> checkout folder, and the harness arguments per (features, size); "real" sizes
# fit the 2,173 training and 693 test items of the Wikipedia folder
RUNS: dict[str, dict[str, Any]] = {
    "ucch": {
        "checkout": "UCCH",
        "full": {"generated": ["--n-train", "256"], "real": ["--n-train", "256"]},
        "quick": ["--n-train", "256", "--epochs", "1"],
    },
    "rshnl": {
        "checkout": "RSHNL",
        "full": {
            "generated": ["--class-base", "0", "--bits", "16"],
            "real": ["--class-base", "0", "--bits", "16", "--n-test", "193"],
        },
        "quick": [
            *("--class-base", "0", "--layout", "INRIA-Websearch", "--bits", "16"),
            *("--n-train", "128", "--n-val", "32", "--n-test", "64", "--epochs", "3"),
        ],
    },
    "ucmfh": {
        "checkout": "UCMFH",
        "full": {"generated": [], "real": []},
        "quick": ["--n-train", "128", "--n-database", "256", "--n-test", "128", "--epochs", "2"],
    },
    "cirh": {
        "checkout": "CIRH",
        "full": {"generated": [], "real": []},
        "quick": [
            *("--bits", "16", "--n-train", "512", "--n-database", "1024", "--n-test", "256"),
            *("--epochs", "2"),
        ],
    },
    "dgcpn": {
        "checkout": "DGCPN",
        "full": {"generated": [], "real": []},
        "quick": ["--n-train", "64", "--n-val", "32", "--n-test", "64", "--epochs", "2"],
    },
}
QUICK_SEEDS = ["0", "1"]


def harness_command(
    method: str, checkouts: Path, work: Path, features: Path | None, quick: bool, threads: int
) -> list[str]:
    run = RUNS[method]
    kind = "real" if features else "generated"
    args = [*run["quick"], "--seeds", *QUICK_SEEDS] if quick else run["full"][kind]
    cmd = [
        sys.executable,
        str(HERE / f"{method}.py"),
        "--official",
        str(checkouts / run["checkout"]),
    ]
    cmd += ["--work", str(work), "--threads", str(threads), *args]
    return cmd + (["--features", str(features)] if features else [])


def summary(method: str, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per code length, features and direction from a harness's results.json."""
    out = []
    for key in sorted({(r["bits"], r.get("features", "generated")) for r in results}):
        rb = [r for r in results if (r["bits"], r.get("features", "generated")) == key]
        for task in H.TASKS:
            ours = [r["ours"][task] for r in rb]
            off = [r["official"][task] for r in rb]
            diff, se = H.paired(ours, off)
            out.append(
                {
                    "method": method,
                    "bits": key[0],
                    "features": key[1],
                    "task": task,
                    "seeds": len(rb),
                    "ours": sum(ours) / len(ours),
                    "official": sum(off) / len(off),
                    "diff": diff,
                    "se": se,
                    "within": verdict(diff, se),
                }
            )
    return out


def verdict(diff: float, se: float) -> str:
    """yes / no when the standard error can decide it, else says why not."""
    if not se <= MAX_SE:  # nan (one seed) too
        return f"undecided (SE > {MAX_SE})"
    return "yes" if abs(diff) <= TOLERANCE else "no"


def render(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| method | bits | features | task | seeds | ours | official | ours − official ± SE "
        f"| within ±{TOLERANCE} |",
        "|---|---:|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['bits']} | {r['features']} | {r['task']} | {r['seeds']} | "
            f"{r['ours']:.4f} | {r['official']:.4f} | {r['diff']:+.4f} ± {r['se']:.4f} | "
            f"{r['within']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkouts", type=Path, required=True, help="folder of the checkouts")
    ap.add_argument("--quick", action="store_true", help="two seeds, few items and epochs")
    ap.add_argument("--features", type=Path, default=WIKI, help="real features (Wikipedia layout)")
    ap.add_argument("--methods", nargs="+", choices=sorted(RUNS), default=list(RUNS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", type=Path, default=Path("/tmp/xmhash-official/all"))
    args = ap.parse_args(argv)
    kinds: list[Path | None] = [None]
    if args.features.is_dir():
        kinds.append(args.features)
    else:
        print(f"{args.features}: no such folder, real-feature rows skipped", file=sys.stderr)
    rows, failed = [], []
    for method in args.methods:
        for features in kinds:
            kind = "real" if features else "generated"
            work = args.work / f"{method}-{kind}"
            cmd = harness_command(method, args.checkouts, work, features, args.quick, args.threads)
            print("$", " ".join(cmd), flush=True)
            if subprocess.run(cmd).returncode:
                failed.append(f"{method} ({kind})")
                continue
            rows += summary(method, json.loads((work / "results.json").read_text()))
    print()
    print(
        f"ours vs official, mAP@all by our evaluator, {args.threads} thread(s)"
        + (" (--quick: a smoke run, not a fidelity measure)" if args.quick else "")
    )
    print()
    print(render(rows))
    if failed:
        raise SystemExit(f"harnesses that failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
