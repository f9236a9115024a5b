"""Kill the feature stage at random instants: how much work does each kill cost?

The feature stage (``extract_features``: a tiny random CLIP, generated images with grid
regions and tag words, so that writing a chunk takes a real share of the time) runs in a
process forked from this one and is killed with SIGKILL at a random instant after it
starts, ``--kills`` times in a row; each restart resumes from what the killed one left on
disk, and a last run finishes the file. The runs record the item they resumed at, the
items they encoded and the chunks they committed, so that for every kill the table gives
the items the killed run had encoded, the item the next run resumed at and the
difference: the items redone. The limit is one chunk (``--chunk-items``) per kill: the
chunk being encoded when the kill came. The last table says whether the finished file
equals an uninterrupted run's.

    python benchmarks/feature_kills.py [--items 800] [--chunk-items 16] [--kills 20]
        [--window 3] [--seed 0]
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from xmhash.features import extract as X  # noqa: E402
from xmhash.features.extract import ExtractSettings, extract_features  # noqa: E402
from xmhash.features.regions import RegionSettings  # noqa: E402
from xmhash.features.store import FeatureWriter, read_features  # noqa: E402

PARTS = ("image", "text", "words", "regions")


@dataclass
class Kill:
    at: float  # seconds after the run started
    resumed_at: int = -1  # item the killed run resumed at (-1: killed before it opened)
    encoded: int = 0  # items it had encoded
    committed: int = 0  # items it had committed
    next_resumed_at: int = 0  # item the next run resumed at

    @property
    def redone(self) -> int:
        return max(0, self.encoded - self.next_resumed_at) if self.resumed_at >= 0 else 0


def _run(encoder, prepared: Path, out: Path, settings: ExtractSettings, record: Path) -> None:
    """The feature stage, recording each resume, encoded batch and commit (in a child)."""
    rec = open(record, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
    encode, append, init = X._encode, FeatureWriter.append, FeatureWriter.__init__

    def encoded(batch, *args, **kwargs):
        part = encode(batch, *args, **kwargs)
        rec.write(f"encoded {os.getpid()} {int(batch.index[-1]) + 1}\n")
        return part

    def committed(self, chunk, *, consumed, **counters):
        append(self, chunk, consumed=consumed, **counters)
        rec.write(f"committed {os.getpid()} {consumed}\n")

    def opened(self, *args, **kwargs):
        init(self, *args, **kwargs)
        rec.write(f"resumed {os.getpid()} {self.consumed}\n")

    X._encode, FeatureWriter.append, FeatureWriter.__init__ = encoded, committed, opened
    extract_features(prepared, encoder, out, settings)


def _fork(encoder, prepared, out, settings, record, log: Path) -> int:
    pid = os.fork()
    if pid == 0:  # the child: its log to a file, never back into the parent's code
        code = 1
        try:
            handler = logging.FileHandler(log)
            logging.getLogger("xmhash").addHandler(handler)
            logging.getLogger("xmhash").setLevel(logging.INFO)
            _run(encoder, prepared, out, settings, record)
            code = 0
        finally:
            os._exit(code)
    return pid


def kill_runs(
    encoder,
    prepared: Path,
    work: Path,
    *,
    chunk_items: int = 16,
    kills: int = 20,
    window: float = 3.0,
    seed: int = 0,
) -> tuple[list[Kill], bool, int]:
    """Kill the feature stage ``kills`` times at random instants within ``window`` s of
    its start, then finish it; return the kills, whether the file equals an uninterrupted
    run's, and how many restarts said they started over from item 0."""
    settings = ExtractSettings(
        batch_size=4,
        chunk_items=chunk_items,
        workers=0,
        words="tags",
        regions=RegionSettings(mode="grid"),
    )
    ref, out, record, log = (work / n for n in ("ref.h5", "out.h5", "record.txt", "log.txt"))
    extract_features(prepared, encoder, ref, settings)
    rng = random.Random(seed)
    done: list[tuple[int, Kill]] = []
    while len(done) < kills:
        pid = _fork(encoder, prepared, out, settings, record, log)
        kill = Kill(at=rng.uniform(0, window))
        time.sleep(kill.at)
        if os.waitpid(pid, os.WNOHANG) != (0, 0):  # finished first: start anew
            out.unlink(missing_ok=True)
            continue
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        done.append((pid, kill))
    pid = _fork(encoder, prepared, out, settings, record, log)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, log.read_text()[-3000:]

    events = [line.split() for line in record.read_text().splitlines()]
    opened = [(int(p), int(v)) for k, p, v in events if k == "resumed"]
    for pid, kill in done:
        mine = [(k, int(v)) for k, p, v in events if int(p) == pid]
        starts = [v for k, v in mine if k == "resumed"]
        if not starts:
            continue
        kill.resumed_at = starts[0]
        kill.encoded = max([v for k, v in mine if k == "encoded"], default=kill.resumed_at)
        kill.committed = max([v for k, v in mine if k == "committed"], default=kill.resumed_at)
        index = [p for p, _ in opened].index(pid)
        kill.next_resumed_at = opened[index + 1][1]
    a, b = read_features(ref, parts=PARTS), read_features(out, parts=PARTS)
    same = (
        list(a.ids) == list(b.ids)
        and np.array_equal(a.image, b.image)
        and np.array_equal(a.regions.embeddings, b.regions.embeddings)
        and np.array_equal(a.words.offsets, b.words.offsets)
        and list(a.words.names) == list(b.words.names)
    )
    return [k for _, k in done], same, log.read_text().count("starting over from item 0")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=800)
    ap.add_argument("--chunk-items", type=int, default=16)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--window", type=float, default=3.0, help="kill within this many s")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(1)

    from helpers.tiny_models import save_clip

    from xmhash.data.demo_images import ImageDemoSpec, write_image_demo
    from xmhash.features.encoders import load_encoder

    with tempfile.TemporaryDirectory(prefix="feature_kills.") as tmp:
        work = Path(tmp)
        encoder = load_encoder(str(save_clip(work / "clip")), device="cpu")
        prepared = work / "prepared"
        write_image_demo(prepared, ImageDemoSpec(n_items=a.items, n_query=a.items // 10))
        t = time.perf_counter()
        kills, same, starts_over = kill_runs(
            encoder,
            prepared,
            work,
            chunk_items=a.chunk_items,
            kills=a.kills,
            window=a.window,
            seed=a.seed,
        )
    print(f"{a.kills} kills in {time.perf_counter() - t:.0f} s")
    print()
    print("| kill | at (s) | resumed at | encoded | committed | next resumed at | redone |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for i, k in enumerate(kills, 1):
        if k.resumed_at < 0:
            print(f"| {i} | {k.at:.2f} | (before opening) | | | | 0 |")
            continue
        print(
            f"| {i} | {k.at:.2f} | {k.resumed_at} | {k.encoded} | {k.committed} | "
            f"{k.next_resumed_at} | {k.redone} |"
        )
    worst = max(k.redone for k in kills)
    print()
    print("| measure | value | limit | ratio |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| items | {a.items} | | |")
    print(
        f"| most items redone after one kill | {worst} | {a.chunk_items} | "
        f"{worst / a.chunk_items:.2f} |"
    )
    print(f"| items redone, all kills | {sum(k.redone for k in kills)} | | |")
    print(f"| restarts from item 0 ('starting over') | {starts_over} | 0 | |")
    print(f"| finished file equals the uninterrupted run's | {'yes' if same else 'NO'} | yes | |")


if __name__ == "__main__":
    main()
