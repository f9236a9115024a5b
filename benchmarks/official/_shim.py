"""Run an official script unmodified, on the CPU when there is no GPU, and keep the arguments
of its last evaluation calls.

    python _shim.py --cwd WORK [--capture NAME --capture-out FILE] [--redirect FROM=TO]
                    SCRIPT [ARGS...]

The script runs as ``__main__`` in ``WORK`` with its own folder first on ``sys.path``,
exactly as ``cd WORK; python SCRIPT ARGS`` would, with these runtime adjustments and no
change to its files:

* without CUDA, ``Tensor.cuda()``, ``Module.cuda()`` and the storages' ``.cuda()`` return
  the object itself (the official codes call ``.cuda()`` unconditionally, DGCPN also in
  its ``torch.load`` ``map_location``);
* ``torch.load`` defaults to ``weights_only=False`` (the official UCCH code reloads its
  own checkpoint, which holds numpy scalars that PyTorch >= 2.6 refuses by default);
* the numpy aliases removed in numpy 1.24 (``np.float``, ``np.int``, ``np.bool``,
  ``np.object``), which older official codes still use, are restored as the builtins
  they always were;
* packages the script imports but never uses on the feature path (torchvision's image
  transforms and VGG models, tensorboard's ``SummaryWriter``) are replaced by inert
  stand-ins when they cannot be imported; each stand-in is reported on stderr;
* with ``--redirect FROM=TO`` (repeatable), ``open`` of a path that starts with ``FROM``
  opens the same path under ``TO`` instead (official loaders that read a fixed absolute
  data folder); each redirect is reported on stderr the first time it is used;
* with ``--capture NAME``, every call of a Python function named ``NAME`` is watched
  and the array (numpy or torch) arguments of the last two calls are written to
  ``--capture-out`` (``.npz``, keys ``<call>_<argument>``): the official scripts compute
  their test mAP with such a function, so these are the official test codes.
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
import types

import numpy as np


class _Inert:
    """Accepts any call or attribute and does nothing."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _Inert()

    def __getattr__(self, name):
        return _inert_attr(name)


def _inert_attr(attr: str) -> _Inert:
    if attr.startswith("__"):  # module machinery (inspect, pickle) asks for __file__ etc.
        raise AttributeError(attr)
    return _Inert()


def _inert_module(name: str) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__getattr__ = _inert_attr  # type: ignore[method-assign]
    mod.__version__ = "inert stand-in"
    mod.__path__ = []  # a package, so that submodules import
    return mod


def _stand_in(name: str, submodules: tuple[str, ...]) -> None:
    try:
        __import__(name)
        for sub in submodules:
            __import__(f"{name}.{sub}")
    except Exception as e:  # a missing or broken install (e.g. a CUDA build on a CPU torch)
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]
        sys.modules[name] = _inert_module(name)
        for sub in submodules:
            sys.modules[f"{name}.{sub}"] = _inert_module(f"{name}.{sub}")
            setattr(sys.modules[name], sub, sys.modules[f"{name}.{sub}"])
        print(f"[shim] {name} unavailable ({type(e).__name__}): inert stand-in", file=sys.stderr)


def _cpu_cuda() -> None:
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # read when torch.load runs
    import torch

    if torch.cuda.is_available():
        return
    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    torch.nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    for storage in (torch.UntypedStorage, torch.TypedStorage):  # torch.load(map_location=...)
        storage.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    print("[shim] no CUDA: .cuda() keeps tensors, modules and storages on the CPU", file=sys.stderr)


def _numpy_aliases() -> None:
    restored = []
    for name, builtin in (("float", float), ("int", int), ("bool", bool), ("object", object)):
        if name not in np.__dict__:
            setattr(np, name, builtin)
            restored.append(f"np.{name}")
    if restored:
        print(f"[shim] numpy aliases restored: {', '.join(restored)}", file=sys.stderr)


def _tensorboard() -> None:
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except Exception as e:
        mod = types.ModuleType("torch.utils.tensorboard")
        mod.SummaryWriter = _Inert  # type: ignore[attr-defined]
        sys.modules["torch.utils.tensorboard"] = mod
        print(
            f"[shim] tensorboard unavailable ({type(e).__name__}): inert stand-in", file=sys.stderr
        )


def _redirect(pairs: list[str]) -> None:
    import builtins

    rules = []
    for pair in pairs:
        src, sep, dst = pair.partition("=")
        if not sep or not src:
            raise SystemExit(f"--redirect {pair!r}: expected FROM=TO")
        rules.append((src, dst))
    real_open, used = builtins.open, set()

    def redirected_open(file, *args, **kwargs):
        if isinstance(file, str | os.PathLike):
            name = os.fspath(file)
            for src, dst in rules:
                if isinstance(name, str) and name.startswith(src):
                    if src not in used:
                        used.add(src)
                        print(f"[shim] open({src}...) reads {dst}...", file=sys.stderr)
                    file = dst + name[len(src) :]
                    break
        return real_open(file, *args, **kwargs)

    builtins.open = redirected_open


class _Capture:
    def __init__(self, name: str):
        self.name = name
        self.calls: list[dict[str, np.ndarray]] = []

    def __call__(self, frame, event, arg):
        if event == "call" and frame.f_code.co_name == self.name:
            args = {}
            for key in frame.f_code.co_varnames[: frame.f_code.co_argcount]:
                value = frame.f_locals.get(key)
                if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
                    value = value.detach().cpu().numpy()
                if isinstance(value, np.ndarray):
                    args[key] = np.array(value)
            self.calls = [*self.calls[-1:], args]

    def save(self, path: str) -> None:
        arrays = {f"call{i}_{k}": v for i, call in enumerate(self.calls) for k, v in call.items()}
        np.savez(path, **arrays)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cwd", required=True)
    ap.add_argument("--capture")
    ap.add_argument("--capture-out")
    ap.add_argument("--redirect", action="append", default=[], help="FROM=TO: open() path prefix")
    ap.add_argument("script")
    ap.add_argument("args", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    script = os.path.abspath(a.script)
    os.chdir(a.cwd)
    sys.path.insert(0, os.path.dirname(script))
    sys.argv = [script, *a.args]
    _cpu_cuda()
    _numpy_aliases()
    _stand_in("torchvision", ("datasets", "transforms", "models"))
    _tensorboard()
    if a.redirect:
        _redirect(a.redirect)
    capture = _Capture(a.capture) if a.capture else None
    if capture:
        sys.setprofile(capture)
    try:
        runpy.run_path(script, run_name="__main__")
    finally:
        sys.setprofile(None)
        if capture and a.capture_out:
            capture.save(a.capture_out)


if __name__ == "__main__":
    main()
