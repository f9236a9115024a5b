"""The GPU benchmark: the pipeline's device-bound stages in one call of at most 8 minutes.

    python benchmarks/gpu.py                     # CUDA sizes on a GPU machine
    python benchmarks/gpu.py --cpu-sizes         # small sizes (the default without CUDA)
    python benchmarks/gpu.py --sections knn train
    python benchmarks/gpu.py --wheels            # the wheels to carry to the GPU machine

Sections, each in its own process with its own time budget (killed at the budget plus a
grace; what it measured until then is kept), then one table, printed last:

* ``features``: the feature stage on generated 500 x 375 JPEGs through a ViT-B/32-sized
  CLIP with random weights: items/s end to end (``extract_features``), against the
  model-only items/s (every forward pass the stage makes per item, on ready uint8
  batches copied from pinned memory) and the decode-only items/s (the stage's own
  DataLoader with the same workers, no model), first at the workflow's own settings
  (config.yaml resolved for CUDA, as a plain ``snakemake`` run gets them), then at
  GPU-tuned ones (every core decoding, batch 512, ``decode: gpu`` when torchvision is
  installed). Targets on one H200 with 16 cores: >= 5,000 images/s end to end, >= 0.9 of
  the slower of the two.
* ``train``: s/epoch of every registered method at MIRFlickr's shapes under the VTM-UCH
  protocol (5,000 training items, 512-d) and the paper widths (config/paper/vtmuch.yaml,
  rshnl.yaml for the noisy-label methods), with GFLOP/s, the share of the matmul limit,
  peak memory and the share of time the GPU was busy (benchmarks/train.py), and the GPU
  time of the MIRFlickr paper grid (the config's methods x 4 code lengths x 3 seeds at
  the paper epochs; target < 15 minutes).
* ``knn``: the graph stage's exact kNN (k = 10) at NUS-WIDE's 186,577 x 512 in fp32 and
  fp16, and the share of the fp32 neighbour lists the fp16 run reproduces.
* ``workflow``: the demo workflow end to end (``snakemake --cores N``) with ``device:
  cuda``, in a copy of the repository.
* ``tests``: ``pytest -m gpu`` (device placement, resume on CUDA, the autocast choice).

It needs only Python, numpy and torch to start: the modules each section needs are
checked first, and a missing one skips its sections and is named with the wheels that
bring it (``--wheels`` prints the ``pip download`` command for the GPU machine's Python).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# seconds per section on CUDA sizes (8 minutes in all, with a margin for start-up)
BUDGET = {"features": 100, "train": 140, "knn": 40, "workflow": 110, "tests": 55}
GRACE = 5
CPU_BUDGET = 2  # times the CUDA budgets, for the small CPU sizes
SECTIONS = tuple(BUDGET)

# the modules each section imports beyond the standard library
NEEDS = {
    "features": ["torch", "numpy", "h5py", "transformers", "PIL", "yaml", "scipy"],
    "train": ["torch", "numpy", "h5py", "transformers", "yaml", "scipy"],
    "knn": ["torch", "numpy", "scipy"],
    "workflow": ["torch", "numpy", "h5py", "yaml", "scipy", "snakemake", "igraph", "leidenalg"],
    "tests": ["torch", "numpy", "h5py", "transformers", "yaml", "scipy", "pytest"],
}
# wheels (as built or downloaded for CPython 3.12, manylinux x86-64) that bring a module
# the GPU machine's image lacks, with what they need that the image lacks too
CARRY = {
    "igraph": ["igraph==1.0.0", "texttable==1.7.2"],
    "leidenalg": ["leidenalg==0.12.0"],
    "snakemake": [
        "snakemake==9.27.1",
        "snakemake-interface-common==1.23.0",
        "snakemake-interface-executor-plugins==9.4.0",
        "snakemake-interface-logger-plugins==2.1.0",
        "snakemake-interface-report-plugins==1.3.0",
        "snakemake-interface-scheduler-plugins==2.0.2",
        "snakemake-interface-storage-plugins==4.4.1",
        "annotated-types==0.7.0",
        "argparse-dataclass==2.0.0",
        "conda-inject==1.3.2",
        "configargparse==1.9.0",
        "connection-pool==0.0.3",
        "docutils==0.22.4",
        "dpath==2.2.0",
        "fastjsonschema==2.22.3",
        "gitdb==4.0.12",
        "gitpython==3.2.1",
        "greenlet==3.5.6",
        "humanfriendly==10.0",
        "immutables==0.21",
        "jsonschema==4.26.0",
        "jsonschema-specifications==2025.9.1",
        "jupyter-core==5.9.1",
        "nbformat==5.11.1",
        "platformdirs==4.14.9",
        "pulp==3.3.2",
        "pydantic==2.13.4",
        "pydantic-core==2.46.4",
        "referencing==0.37.0",
        "rpds-py==0.30.0",
        "smart-open==7.7.1",
        "smmap==5.0.3",
        "sqlalchemy==2.0.58",
        "sqlmodel==0.0.37",
        "tenacity==9.2.1",
        "throttler==1.2.3",
        "traitlets==5.15.0",
        "typing-inspection==0.4.2",
        "yte==1.9.4",
    ],
}
SDIST_ONLY = {"connection-pool"}  # no wheel on PyPI: build one with `pip wheel`
PLATFORMS = " ".join(
    f"--platform {p}"
    for p in (
        "manylinux_2_28_x86_64",
        "manylinux_2_27_x86_64",
        "manylinux_2_17_x86_64",
        "manylinux2014_x86_64",
        "manylinux1_x86_64",
    )
)


def missing_modules(modules) -> list[str]:
    return [m for m in dict.fromkeys(modules) if importlib.util.find_spec(m) is None]


def carry_commands(missing: list[str]) -> list[str]:
    """Shell commands, run in the repository root of a machine with pip and PyPI, that put
    the wheels for ``missing`` into .whl/ (for CPython 3.12 on x86-64 Linux)."""
    wheels = [w for m in missing for w in CARRY.get(m, [])]
    binary = [w for w in wheels if w.split("==")[0] not in SDIST_ONLY]
    built = [w for w in wheels if w.split("==")[0] in SDIST_ONLY]
    out = []
    if binary:
        out.append(
            "python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 "
            f"--implementation cp {PLATFORMS} -d .whl " + " ".join(binary)
        )
    if built:
        out.append("python3 -m pip wheel --no-deps -w .whl " + " ".join(built))
    return out


def report_missing(missing: list[str], out=print) -> None:
    out(f"missing here: {', '.join(missing)}")
    unknown = [m for m in missing if m not in CARRY]
    if unknown:
        out(f"  no wheel list for {', '.join(unknown)}: the image should have it")
    cmds = carry_commands(missing)
    if cmds:
        out("  carry them: in the repository root of a machine with PyPI,")
        out("    echo /.whl/ >> .git/info/exclude")
        for c in cmds:
            out(f"    {c}")
        out(
            "  then run with carry ['.whl'] and start with: python3 -m pip install -q "
            "--no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && "
            "export PYTHONPATH=/tmp/site"
        )


# ---------------------------------------------------------------- rows


class Rows:
    """Result rows of one section, appended to a JSON-lines file as they come, so that a
    section killed at its budget keeps what it measured."""

    def __init__(self, path: str | None, section: str):
        self.path, self.section = path, section

    def add(self, what: str, value: float | str, unit: str = "", vs: str = "", note: str = ""):
        row = {"section": self.section, "what": what, "value": value, "unit": unit}
        row.update(vs=vs, note=note)
        print(f"  [{self.section}] {what}: {fmt(value)} {unit} {vs} {note}".rstrip(), flush=True)
        if self.path:
            with open(self.path, "a") as fh:
                fh.write(json.dumps(row) + "\n")


def fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.3g}" if abs(v) < 100 else f"{v:,.0f}"
    return str(v)


# ---------------------------------------------------------------- features


def write_jpegs(directory: Path, unique: int, items: int, seed: int = 0) -> Path:
    """A prepared dataset of ``items`` items over ``unique`` generated 500 x 375 JPEGs
    (smooth colour fields with noise, about 60 KB each), reused cyclically."""
    import numpy as np
    from PIL import Image

    from xmhash.data.prepared import Item, write_prepared

    images = directory.parent / "jpegs"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(unique):
        coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        im = Image.fromarray(coarse).resize((500, 375), Image.BICUBIC)
        noise = rng.integers(-24, 24, (375, 500, 3))
        pixels = np.clip(np.asarray(im, np.int16) + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(images / f"{i:05d}.jpg", quality=90)
    words = ["sky", "tree", "dog", "car", "river", "portrait", "night", "flower", "city"]
    rows = [
        Item(
            id=f"i{i:06d}",
            image=f"{i % unique:05d}.jpg",
            text=" ".join(words[(i + j) % len(words)] for j in range(1 + i % 6)),
            labels=[i % 24],
        )
        for i in range(items)
    ]
    meta = {"dataset": "jpegs", "label_names": [f"c{c}" for c in range(24)]}
    meta.update(image_root="images", text_kind="tags")
    write_prepared(directory, rows, meta, files={"images": images})
    return directory


def section_features(rows: Rows, cuda: bool, budget: float) -> None:
    """The three rates of benchmarks/features.py through a ViT-B/32: first at the workflow's
    own settings (config.yaml's features block, resolved for the device as the job
    resolves it: on CUDA the node's cores up to max_threads, batch 256), then at GPU-tuned
    ones (every core decoding, batch 512, decode: gpu when torchvision is there)."""
    import dataclasses
    import importlib.util

    import torch
    from features import (
        decode_only,
        end_to_end,
        model_only,
        tiny_encoder,
        vitb32_encoder,
        workflow_settings,
    )

    start = time.perf_counter()
    device = torch.device("cuda" if cuda else "cpu")
    unique, items = (2048, 8192) if cuda else (8, 16)
    tmp = Path(tempfile.mkdtemp(prefix="xmhash-gpu-features-"))
    try:
        prepared = write_jpegs(tmp / "data" / "prepared", unique, items)
        rows.add("JPEGs written", float(unique), "files", note=f"{items} items, 500x375")
        # CPU sizes check the code paths: the tests' tiny CLIP stands in for the ViT-B/32
        enc = (vitb32_encoder if cuda else tiny_encoder)(tmp, device)
        workflow, threads = workflow_settings(device)
        torch.set_num_threads(threads)
        gpu_decode = cuda and importlib.util.find_spec("torchvision") is not None
        tuned = dataclasses.replace(
            workflow,
            batch_size=512,
            workers=max(1, (os.cpu_count() or 2) - 1),
            chunk_items=8192,
            decode="gpu" if gpu_decode else "cpu",
        )
        if not cuda:  # small sizes: the code paths, not the speed
            workflow, tuned = (
                dataclasses.replace(s, batch_size=8, workers=1, chunk_items=16)
                for s in (workflow, tuned)
            )
        dtype = str(enc.amp_dtype).replace("torch.", "") if enc.amp_dtype else "fp32"
        model_only(enc, prepared, workflow, 2 * workflow.batch_size)  # warm-up
        for name, s in (("workflow", workflow), ("tuned", tuned)):
            what = (
                f"batch {s.batch_size}, {s.workers} workers, regions {s.regions.mode}, "
                f"words {s.words}, decode {s.decode}"
            )
            if time.perf_counter() - start > budget * 0.6:
                rows.add(f"{name}: end to end", "skipped", note=f"time budget; {what}")
                continue
            model = model_only(enc, prepared, s, items // 2)
            rows.add(f"{name}: model-only", model, "items/s", note=f"{dtype}; {what}")
            decode = decode_only(prepared, enc, s)
            rows.add(f"{name}: decode-only", decode, "items/s", note=what)
            e2e = end_to_end(enc, prepared, tmp / "out.h5", s)
            slower = min(model, decode)
            target = " (target >= 5,000 images/s, >= 0.9)" if cuda else ""
            rows.add(
                f"{name}: end to end",
                e2e,
                "items/s",
                vs=f"{e2e / slower:.2f} of the slower{target}",
                note=f"{items} items, {threads} threads; {what}",
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- train


def section_train(rows: Rows, cuda: bool, budget: float) -> None:
    import torch
    import train as bench  # benchmarks/train.py

    from xmhash.methods import METHODS

    paper = REPO / "config" / "paper"
    # the noisy-label methods' widths from rshnl.yaml, the rest (and run.*) from vtmuch.yaml
    cfg = bench.load_config([str(paper / "rshnl.yaml"), str(paper / "vtmuch.yaml")])
    shape = bench.dataset_shape(cfg, "mirflickr25k")
    if not cuda:
        shape = bench.Shape(shape.dataset, 128, shape.dim, shape.n_labels)
    grid = [m for m in cfg["run"]["methods"] if m in METHODS]
    methods = grid + [m for m in sorted(METHODS) if m not in grid]
    runs = bench.grid_runs(cfg)
    done: list[float] = []

    def record(r) -> None:
        if r.error:
            status = "skipped" if r.error.startswith("skipped") else "error"
            rows.add(f"train {r.method}", status, note=r.error[:120])
            return
        share = f"{r.gflops / r.limit:.2f} of matmul" if r.gflop else ""
        busy = f", GPU busy {r.busy:.2f}" if r.busy == r.busy else ""
        rows.add(
            f"train {r.method}",
            r.seconds,
            "s/epoch",
            vs=share,
            note=f"batch {r.batch}, {r.samples_s:,.0f} samples/s, "
            f"{r.peak_bytes / 2**30:.2f} GiB{busy}",
        )
        if r.method in grid:
            done.append(r.seconds * r.epochs * runs)

    bench.run(
        cfg,
        methods,
        shape,
        bits=64,
        epochs=2 if cuda else 1,
        device=torch.device("cuda" if cuda else "cpu"),
        budget_s=budget * 0.85,
        on_result=record,
    )
    total = sum(done)
    rows.add(
        "MIRFlickr paper grid",
        total / 60,
        "min",
        vs="target < 15 min" if cuda else "",
        note=f"{len(done)}/{len(grid)} methods x {runs} runs at paper epochs, "
        f"{shape.n_train} items, epochs only (no job start-up)",
    )


# ---------------------------------------------------------------- knn


def section_knn(rows: Rows, cuda: bool, budget: float) -> None:
    import numpy as np
    import torch
    from _limits import matmul_gflops, sync

    from xmhash.graph.similarity import knn

    n, d, k = (186_577, 512, 10) if cuda else (4_000, 512, 10)
    device = torch.device("cuda" if cuda else "cpu")
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((200, d)).astype(np.float32)
    x = centres[rng.integers(0, 200, n)] + rng.standard_normal((n, d), dtype=np.float32) * 0.05
    found = {}
    for half in (False, True) if cuda else (False,):
        knn(x[:4096], k, device=device, half=half)  # warm-up
        sync(device)
        t = time.perf_counter()
        found[half] = knn(x, k, device=device, half=half)[0]
        sync(device)
        secs = time.perf_counter() - t
        dtype = torch.float16 if half else torch.float32
        limit = matmul_gflops(8192 if cuda else 1024, device=device, dtype=dtype)
        # the symmetric search computes the upper strip: n^2 d multiply-adds
        rate = n * n * d / secs / 1e9
        rows.add(
            f"exact kNN {'fp16' if half else 'fp32'}",
            secs,
            "s",
            vs=f"{rate / limit:.2f} of matmul",
            note=f"{n:,} x {d}, k={k}, {rate:,.0f} GFLOP/s vs {limit:,.0f}",
        )
    if len(found) == 2:
        a, b = found[False], found[True]
        agree = np.mean([len(set(p) & set(q)) / k for p, q in zip(a, b, strict=True)])
        rows.add("kNN fp16 vs fp32", float(agree), "of neighbours", note="same lists share")
    else:
        rows.add("exact kNN fp16", "n/a", note="fp16 similarity blocks are CUDA-only")


# ---------------------------------------------------------------- workflow


def section_workflow(rows: Rows, cuda: bool, budget: float) -> None:
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import copy_workflow  # tests/conftest.py: what a workflow copy needs

    tmp = Path(tempfile.mkdtemp(prefix="xmhash-gpu-workflow-"))
    try:
        wf = copy_workflow(tmp)
        overlay = {"device": "cuda" if cuda else "cpu"}
        if not cuda:  # a small grid on CPU
            overlay["run"] = {"datasets": ["demo"], "methods": ["lsh", "djsrh"]}
            overlay["run"].update(bits=[16], seeds=[0])
        (wf / "bench.yaml").write_text(json.dumps(overlay))
        cores = os.cpu_count() or 2
        cmd = [sys.executable, "-m", "snakemake", "--cores", str(cores)]
        cmd += ["--configfile", "bench.yaml"]
        t = time.perf_counter()
        log, rc = run_logged(cmd, wf, budget - 5, "workflow.log")
        secs = time.perf_counter() - t
        steps = re.findall(r"(\d+) of (\d+) steps", log)
        progress = f"{steps[-1][0]} of {steps[-1][1]} steps" if steps else "no step done"
        status = "done" if rc == 0 else f"exit {rc}"
        grid = "demo grid" if cuda else "lsh + djsrh x 16 bits x seed 0"
        rows.add(
            "demo workflow",
            secs,
            "s",
            vs=status,
            note=f"{progress}, device {overlay['device']}, {cores} cores, {grid}",
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_logged(cmd: list[str], cwd: Path, timeout: float, name: str) -> tuple[str, int | str]:
    """(output, exit status or 'timeout') of ``cmd``; the output also goes to ``name`` in
    the folder of ``--logs``, if given."""
    env = {**os.environ, "XMHASH_PROGRESS": "0"}
    try:
        proc = subprocess.run(
            cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
        )
        log, rc = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as e:
        log, rc = _text(e.stdout) + _text(e.stderr) + "\ntimeout", "timeout"
    if os.environ.get("XMHASH_BENCH_LOGS"):
        Path(os.environ["XMHASH_BENCH_LOGS"], name).write_text(log[-2_000_000:])
    return log, rc


def _text(b) -> str:
    return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")


# ---------------------------------------------------------------- tests


def section_tests(rows: Rows, cuda: bool, budget: float) -> None:
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider"]
    cmd += ["--continue-on-collection-errors", "tests"]
    t = time.perf_counter()
    log, _ = run_logged(cmd, REPO, budget - 5, "pytest.log")
    summary = [line for line in log.splitlines() if re.search(r"passed|failed|skipped|error", line)]
    failed = [line for line in log.splitlines() if line.startswith(("FAILED", "ERROR"))]
    rows.add(
        "pytest -m gpu",
        summary[-1].strip("= ") if summary else "no summary",
        note=f"{time.perf_counter() - t:.0f} s" + (f"; {'; '.join(failed[:4])}" if failed else ""),
    )


# ---------------------------------------------------------------- driver


def run_section(name: str, cuda: bool, out: str | None) -> None:
    sys.path.insert(0, str(REPO / "src"))
    sys.path.insert(0, str(HERE))
    os.environ.setdefault("XMHASH_PROGRESS", "0")
    budget = BUDGET[name] if cuda else CPU_BUDGET * BUDGET[name]
    globals()[f"section_{name}"](Rows(out, name), cuda, budget)


def print_table(rows: list[dict[str, Any]], header: str) -> None:
    print(f"\n{header}")
    print("| section | measure | value | unit | against | note |")
    print("| --- | --- | ---: | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['section']} | {r['what']} | {fmt(r['value'])} | {r['unit']} | {r['vs']} "
            f"| {r['note']} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    ap.add_argument("--cpu-sizes", action="store_true", help="small sizes (no CUDA: always)")
    ap.add_argument("--wheels", action="store_true", help="print how to fetch the wheels to carry")
    ap.add_argument("--logs", help="write the workflow and pytest logs into this folder")
    ap.add_argument("--section", choices=SECTIONS, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()

    absent = missing_modules(["torch", "numpy"])
    if absent:
        report_missing(absent)
        raise SystemExit(f"cannot start without {', '.join(absent)}")
    import torch

    cuda = torch.cuda.is_available() and not args.cpu_sizes
    if args.logs:
        Path(args.logs).mkdir(parents=True, exist_ok=True)
        os.environ["XMHASH_BENCH_LOGS"] = str(Path(args.logs).resolve())
    if args.section:  # a child: one section
        return run_section(args.section, cuda, args.out)

    t0 = time.perf_counter()
    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    sizes = "CUDA sizes" if cuda else "CPU sizes (small)"
    print(
        f"gpu benchmark: {name}; torch {torch.__version__}; Python {sys.version.split()[0]}; "
        f"{os.cpu_count()} CPUs; {sizes}",
        flush=True,
    )
    if args.wheels:  # for the GPU machine's image, whatever this machine has
        print("the GPU machine's image lacks these; in the repository root, with PyPI:")
        print("  echo /.whl/ >> .git/info/exclude")
        for cmd in carry_commands(list(CARRY)):
            print(f"  {cmd}")
        return
    missing = missing_modules(m for s in args.sections for m in NEEDS[s])
    if missing:
        report_missing(missing)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for section in args.sections:
            lacking = [m for m in NEEDS[section] if m in missing]
            if lacking:
                rows.append(
                    {"section": section, "what": "skipped", "value": "", "unit": ""}
                    | {"vs": "", "note": f"missing: {', '.join(lacking)}"}
                )
                continue
            out = Path(tmp) / f"{section}.jsonl"
            budget = BUDGET[section] if cuda else CPU_BUDGET * BUDGET[section]
            print(f"\n== {section} (budget {budget} s)", flush=True)
            cmd = [sys.executable, str(Path(__file__).resolve()), "--section", section]
            cmd += ["--out", str(out)] + (["--cpu-sizes"] if not cuda else [])
            t = time.perf_counter()
            try:
                rc = subprocess.run(cmd, timeout=budget + GRACE).returncode
            except subprocess.TimeoutExpired:
                rc = "killed at the budget"
            got = (
                [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
            )
            rows += got
            if rc != 0:
                rows.append(
                    {"section": section, "what": "section", "value": f"exit {rc}", "unit": ""}
                    | {"vs": "", "note": f"after {time.perf_counter() - t:.0f} s"}
                )
    total = time.perf_counter() - t0
    print_table(rows, f"gpu benchmark on {name} ({sizes}), {total:.0f} s in all")


if __name__ == "__main__":
    main()
