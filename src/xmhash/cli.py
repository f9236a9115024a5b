"""The ``xmhash`` command line. The pipeline itself runs through Snakemake; this is for
using what it produced.

    xmhash search RUN_DIR --text "dog, sky" [-k 10] [--json]
    xmhash search RUN_DIR --image photo.jpg
    xmhash search RUN_DIR --batch queries.txt            # one text or image path per line
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def _batch(path: str, kind: str) -> tuple[str, list[str]]:
    """Read a batch file: one query per line; ``auto`` = images when every line names an
    image file, texts otherwise."""
    file = Path(path)
    if not file.is_file():
        raise SystemExit(f"xmhash search: batch file {path} does not exist")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        text = "\0"  # refused below, as a file with NUL bytes is
    if "\0" in text:
        raise SystemExit(
            f"xmhash search: batch file {path} is not a text file (binary, or not UTF-8): "
            f"--batch takes UTF-8 text, one query (a text, or an image path) per line; to "
            f"query with one image, use --image {path}"
        )
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise SystemExit(f"xmhash search: batch file {path} holds no query")
    if kind == "auto":
        kind = "image" if all(Path(ln).suffix.lower() in IMAGE_SUFFIXES for ln in lines) else "text"
    return kind, lines


def _table(queries: list[str], results) -> str:
    out = []
    for q, hits in zip(queries, results, strict=True):
        out.append(f"query: {q}")
        out.append(f"{'rank':>4}  {'dist':>4}  {'id':<16}  {'labels':<30}  text")
        for h in hits:
            labels = ",".join(h.labels or [])
            text = (h.text or "")[:60]
            out.append(f"{h.rank:>4}  {h.distance:>4}  {h.id:<16}  {labels:<30.30}  {text}")
        out.append("")
    return "\n".join(out)


def search_main(args: argparse.Namespace) -> int:
    from xmhash.device import check_device
    from xmhash.search import Searcher, SearchError

    given = [x for x in (args.text, args.image, args.batch) if x is not None]
    if len(given) != 1:
        raise SystemExit("xmhash search: give exactly one of --text, --image, --batch")
    if args.batch is not None:
        kind, queries = _batch(args.batch, args.batch_kind)
    elif args.text is not None:
        kind, queries = "text", [args.text]
    else:
        kind, queries = "image", [args.image]
    try:
        check_device(args.device, "--device")
        searcher = Searcher(
            args.run, features=args.features, backend=args.backend, device=args.device
        )
        fn = searcher.search_texts if kind == "text" else searcher.search_images
        results = fn(queries, k=args.k, same_modality=args.same_modality)
    except (SearchError, FileNotFoundError, ValueError) as err:
        print(f"xmhash search: {err}", file=sys.stderr)
        return 2
    if args.json:
        json.dump(
            [
                {"query": q, "modality": kind, "hits": [h.to_dict() for h in hits]}
                for q, hits in zip(queries, results, strict=True)
            ],
            sys.stdout,
            indent=1,
        )
        print()
    else:
        print(_table(queries, results))
    return 0


def parser() -> argparse.ArgumentParser:
    from xmhash.search.index import BACKENDS

    p = argparse.ArgumentParser(
        prog="xmhash", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("search", help="search a trained run's database with text or image queries")
    s.add_argument("run", help="run directory: results/{dataset}/{method}/{bits}bits/seed{seed}")
    s.add_argument("--text", help="a text query (tags or a caption)")
    s.add_argument("--image", help="an image file to query with")
    s.add_argument("--batch", help="a file with one query per line (texts or image paths)")
    s.add_argument(
        "--batch-kind",
        choices=["auto", "text", "image"],
        default="auto",
        help="what the batch file's lines are (default: images if every line has an image suffix)",
    )
    s.add_argument("-k", type=int, default=10, help="results per query (default 10)")
    s.add_argument(
        "--same-modality",
        action="store_true",
        help="search the query's own modality (default: cross-modal)",
    )
    s.add_argument(
        "--backend",
        choices=sorted(BACKENDS),
        default="exact",
        help="exact = XOR + popcount (default); faiss-flat is exact too; "
        "faiss-hash/faiss-mih are approximate, for large databases",
    )
    s.add_argument("--features", help="the run's feature file, if not where codes.h5 says")
    s.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.set_defaults(func=search_main)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
