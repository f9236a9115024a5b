"""Download and extraction throughput against their physical limits, on this machine.

* fetch: ``xmhash.data.download.fetch`` of one file from a local HTTP server (127.0.0.1),
  including the sha256 check, against a plain read of the same response (no write, no
  hash): the loopback + HTTP limit;
* sha256: ``sha256_file`` against hashlib on the bytes already in memory;
* extract: ``extract`` of a zip of many small files (MIRFlickr-like: 25 KB JPEGs, many
  files) against ``zipfile.extractall`` into a plain directory (no checks, not atomic).

    python benchmarks/download.py [--mb 64] [--files 2000]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
os.environ.setdefault("XMHASH_PROGRESS", "0")

from fileserver import FileServer  # noqa: E402

from xmhash.data.download import Remote, extract, fetch, sha256_file  # noqa: E402


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=64)
    ap.add_argument("--files", type=int, default=2000)
    args = ap.parse_args()
    body = os.urandom(args.mb << 20)
    digest = hashlib.sha256(body).hexdigest()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, FileServer({"f.bin": body}) as srv:
        tmp = Path(tmp)

        def plain():
            with urllib.request.urlopen(f"{srv.url}/f.bin") as r:
                while r.read(1 << 20):
                    pass

        limit = timed(plain)
        ours = timed(lambda: fetch(Remote("f.bin", (f"{srv.url}/f.bin",), digest), tmp / "a"))
        rows.append(("fetch + verify", args.mb / ours, args.mb / limit))
        limit = timed(lambda: hashlib.sha256(body).hexdigest())
        ours = timed(lambda: sha256_file(tmp / "a/f.bin"))
        rows.append(("sha256_file", args.mb / ours, args.mb / limit))

        member = os.urandom(25_000)
        with zipfile.ZipFile(tmp / "z.zip", "w") as zf:
            for i in range(args.files):
                zf.writestr(f"mirflickr/im{i}.jpg", member)
        mb = args.files * 25_000 / (1 << 20)

        def raw_extract():
            with zipfile.ZipFile(tmp / "z.zip") as zf:
                zf.extractall(tmp / "raw")

        limit = timed(raw_extract)
        ours = timed(lambda: extract(tmp / "z.zip", tmp / "ours"))
        rows.append((f"extract ({args.files} files)", mb / ours, mb / limit))
    print(f"load {os.getloadavg()[0]:.1f}")
    print(f"{'step':<24} {'xmhash MB/s':>12} {'limit MB/s':>11} {'ratio':>6}")
    for name, ours, limit in rows:
        print(f"{name:<24} {ours:>12.0f} {limit:>11.0f} {ours / limit:>6.2f}")


if __name__ == "__main__":
    main()
