"""The contract every hashing method implements, and the model file format.

A method is one class in one file of this package, registered in ``methods/__init__.py``.
It declares:

* ``name``: the key used in config and paths;
* ``Params``: a frozen dataclass of its hyperparameters (the ``methods.<name>`` block of
  ``config.yaml``; unknown keys are rejected with a message naming them);
* ``supervised``: whether training may see (possibly noisy) labels;
* ``needs``: extra training inputs beyond the global features: ``texts``, ``words``,
  ``regions`` (from the feature file), ``graph`` (from the graph stage), ``encoder``
  (the encoder weights, for methods that fine-tune it);
* ``graphs``: with ``graph`` in ``needs``, the graph kinds it trains on (keys of the
  ``graph:`` config block), as a literal tuple (the workflow reads it from the source);
  ``TrainData.graph`` then maps each kind to its graph file (:mod:`xmhash.graph.store`).

Two kinds:

* :class:`ClosedFormMethod`: ``fit(data)`` fills the model once (LSH, CCA-ITQ);
* :class:`DeepMethod`: the generic trainer (:mod:`xmhash.train`) drives ``loss`` /
  ``train_step`` over epochs of index-sliced batches.

Everything a trained method needs to encode, or to resume training, lives in
``self.net`` (an ``nn.Module``: parameters and registered buffers), so one
``state_dict`` round trip restores it. Large training-only precomputations (similarity
matrices) are plain attributes, rebuilt by ``setup`` on resume.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import pickle
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xmhash import __version__
from xmhash.bits import binarize
from xmhash.graph.similarity import DEFAULT_MAX_DENSE, check_dense
from xmhash.io import atomic_path

MODALITIES = ("image", "text")
EXTRA_INPUTS = frozenset({"texts", "words", "regions", "graph", "encoder"})
MODEL_FORMAT = 1


class ConfigError(ValueError):
    """A configuration block is wrong; the message names the block and the key."""


class ModelFileError(ValueError):
    """A ``model.pt`` that is damaged or of another format; the message says what to do."""


# --------------------------------------------------------------------------- params


@dataclass(frozen=True)
class MethodParams:
    """Base of every method's hyperparameter dataclass."""

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None, where: str = "methods") -> MethodParams:
        cfg = dict(cfg or {})
        hints = typing.get_type_hints(cls)
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(cfg) - set(known))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; known keys: {known}")
        for key, value in list(cfg.items()):
            cfg[key] = _coerce(value, hints[key], f"{where}.{key}")
        return cls(**cfg)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is typing.Literal:
        if value not in typing.get_args(hint):
            raise ConfigError(f"{where}: {value!r} is not one of {list(typing.get_args(hint))}")
        return value
    if origin in (tuple, list, Sequence):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        (inner, *_) = typing.get_args(hint) or (Any,)
        return tuple(_coerce(v, inner, where) for v in value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


@dataclass(frozen=True)
class DeepParams(MethodParams):
    """Hyperparameters every deep method has."""

    epochs: int = 20
    batch_size: int = 128


# --------------------------------------------------------------------------- data


@dataclass
class TrainData:
    """The training items, as tensors on the training device.

    ``image``/``text`` are (n, D) float32; batches are index slices into them.
    ``labels`` is present only for supervised methods (and may be noisy);
    ``clean_labels`` only when a noise stage corrupted ``labels`` (for diagnostics,
    never for the loss). ``rows`` are the items' rows in the feature file.
    """

    image: torch.Tensor
    text: torch.Tensor
    rows: np.ndarray
    labels: torch.Tensor | None = None
    clean_labels: torch.Tensor | None = None
    texts: Sequence[str] | None = None
    words: Any = None  # features.store.Ragged restricted to the training items
    regions: Any = None
    graph: dict[str, Path] = field(default_factory=dict)
    resources: dict[str, str] = field(default_factory=dict)
    max_dense: int = DEFAULT_MAX_DENSE  # graph.max_dense: largest n x n matrix allowed

    def __len__(self) -> int:
        return len(self.image)

    def require_dense(self, what: str) -> None:
        """Refuse (before allocating it) an n x n ``what`` of the training items above
        ``max_dense`` entries, naming the setting, instead of running out of memory."""
        n = len(self)
        check_dense(n, n, self.max_dense, what, fix="train on fewer items or raise graph.max_dense")


@dataclass
class Batch:
    idx: torch.Tensor  # (b,) positions in TrainData
    image: torch.Tensor
    text: torch.Tensor
    labels: torch.Tensor | None = None


@dataclass
class Items:
    """Items to encode: global features and, for methods that need them, raw texts."""

    image: np.ndarray | None = None
    text: np.ndarray | None = None
    texts: Sequence[str] | None = None


# --------------------------------------------------------------------------- methods


class HashMethod(ABC):
    name: ClassVar[str]
    Params: ClassVar[type[MethodParams]]
    citation: ClassVar[str] = ""
    supervised: ClassVar[bool] = False
    needs: ClassVar[frozenset[str]] = frozenset()
    graphs: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        params: MethodParams,
        *,
        bits: int,
        image_dim: int,
        text_dim: int,
        seed: int = 0,
        device: str | torch.device = "cpu",
        resources: Mapping[str, str] | None = None,
    ):
        if not isinstance(params, self.Params):
            raise TypeError(f"{self.name}: params must be {self.Params.__name__}")
        if bits < 1:
            raise ConfigError(f"{self.name}: bits must be positive, got {bits}")
        self.params = params
        self.bits = bits
        self.image_dim = image_dim
        self.text_dim = text_dim
        self.seed = seed
        self.device = torch.device(device)
        self.resources = dict(resources or {})
        self.net: nn.Module = nn.Module()
        self.build()
        self.net.to(self.device)

    @abstractmethod
    def build(self) -> None:
        """Create ``self.net`` (modules and buffers) from dims, bits and params only."""

    @abstractmethod
    def project(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        """Real-valued outputs (n, bits) of one modality; codes are ``x >= 0``."""

    sample_weights_kind: ClassVar[str] = "uniform"

    def sample_weights(self, data: TrainData) -> np.ndarray | None:
        """Per-item training weights (n,) the method gives ``data`` now, e.g. RSHNL's
        self-paced weights (the noisy-label track records them); None = all equal."""
        return None

    @torch.no_grad()
    def encode(self, items: Items, modality: str, batch_size: int = 4096) -> np.ndarray:
        """±1 int8 codes (n, bits) of ``items`` for ``modality`` ('image' or 'text')."""
        if modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
        x = getattr(items, modality)
        if x is None:
            raise ValueError(f"{self.name}: no {modality} features to encode")
        dim = self.image_dim if modality == "image" else self.text_dim
        if x.ndim != 2 or x.shape[1] != dim:
            raise ValueError(
                f"{self.name}: {modality} features have shape {x.shape}, the model "
                f"expects (n, {dim})"
            )
        self.net.eval()
        out = []
        for start in range(0, len(x), batch_size):
            xb = torch.as_tensor(
                np.asarray(x[start : start + batch_size]), dtype=torch.float32, device=self.device
            )
            out.append(binarize(self.project(xb, modality).float().cpu().numpy()))
        return np.concatenate(out) if out else np.zeros((0, self.bits), np.int8)


class ClosedFormMethod(HashMethod):
    """A method fitted in one pass (no epochs, no optimizer)."""

    @abstractmethod
    def fit(self, data: TrainData) -> None: ...


class DeepMethod(HashMethod):
    """A method trained by the generic loop in :mod:`xmhash.train`.

    Override ``setup`` (precompute from the training data; called once before training
    and again on resume), ``configure_optimizer``, ``loss`` and ``project``. Override
    ``train_step`` only for non-standard updates (e.g. DGCPN's alternating steps) and
    ``batches`` only for non-uniform sampling (e.g. ENHash's error replay).
    """

    Params: ClassVar[type[DeepParams]]
    grad_clip: ClassVar[float | None] = None
    drop_last: ClassVar[bool] = True
    # training.compile: true compiles ``loss`` with torch.compile; False for a loss that
    # does host-side work between tensor operations (it would only break into pieces)
    compilable: ClassVar[bool] = True

    def setup(self, data: TrainData) -> None:
        self.data = data

    @abstractmethod
    def configure_optimizer(self, steps_per_epoch: int) -> tuple[torch.optim.Optimizer, Any | None]:
        """Return (optimizer, scheduler or None); the scheduler is stepped every batch."""

    @abstractmethod
    def loss(self, batch: Batch, epoch: int) -> dict[str, torch.Tensor]:
        """Loss terms of one batch; the key ``loss`` is the total that is minimised."""

    def on_epoch_start(self, epoch: int) -> None:
        pass

    def on_epoch_end(self, epoch: int) -> None:
        pass

    def epoch_log(self) -> dict[str, float]:
        """Columns the method adds to the epoch's row of ``train_log.csv`` besides the
        mean loss terms (e.g. a range over the epoch's items); read once per epoch."""
        return {}

    def training_diagnostics(self, history: list[dict[str, Any]]) -> dict[str, Any]:
        """Keys for the training summary once training is done, from the epoch rows:
        ``warnings`` (sentences; the evaluation copies them into ``metrics.json``) and
        structured fields, e.g. a mechanism that switched itself off."""
        return {}

    def batches(self, epoch: int, n: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
        bs = self.params.batch_size
        # drawn where the generator lives (the trainer's device): the batches are views
        # of one permutation, with no host copy per step
        perm = torch.randperm(n, generator=generator, device=generator.device)
        stop = (n // bs) * bs if self.drop_last and n >= bs else n
        for start in range(0, stop, bs):
            yield perm[start : start + bs]

    def train_step(self, batch: Batch, epoch: int) -> dict[str, torch.Tensor]:
        """One batch: loss terms, one optimiser step; returns the detached terms, still
        on the device (the trainer averages them and checks them once per epoch)."""
        terms = self.loss(batch, epoch)
        self.update(terms["loss"])
        return detached(terms)

    def update(self, total: torch.Tensor, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Minimise ``total`` by one step of ``optimizer`` (default: the method's), with
        the gradient scaler and clipping when the method has them. Never waits for the
        device: a non-finite loss is caught by the trainer at the end of the epoch."""
        opt = optimizer or self.optimizer
        opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(total).backward()
            if self.grad_clip:
                self.scaler.unscale_(opt)
                nn.utils.clip_grad_norm_(self.net.parameters(), self.grad_clip)
            self.scaler.step(opt)
            self.scaler.update()
            return
        total.backward()
        if self.grad_clip:
            nn.utils.clip_grad_norm_(self.net.parameters(), self.grad_clip)
        opt.step()

    # set by the trainer
    optimizer: torch.optim.Optimizer
    scheduler: Any = None
    # set by methods that train under fp16 autocast (see :func:`autocast_policy`)
    scaler: torch.amp.GradScaler | None = None


# --------------------------------------------------------------------------- helpers


def detached(terms: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Loss terms as the trainer keeps them: detached, on the device (no host copy)."""
    return {k: v.detach() for k, v in terms.items()}


def binary(x: torch.Tensor) -> torch.Tensor:
    """±1 codes of real outputs, x >= 0 -> +1 (never 0, unlike ``sign``), in x's dtype."""
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)


def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent between paired rows of a and b (m, d): over the 2m x 2m cosine
    matrix without its diagonal, each row's positive is its partner, its negatives the
    other 2m - 2 rows; cosines over ``temperature``."""
    z = F.normalize(torch.cat([a, b]), dim=1)
    m = len(a)
    sim = z @ z.T / temperature
    if torch.compiler.is_compiling():  # constants inside a compiled graph are folded
        diagonal, partner = _nt_xent_constants.__wrapped__(m, z.device)
    else:
        diagonal, partner = _nt_xent_constants(m, z.device)
    return F.cross_entropy(sim.masked_fill(diagonal, float("-inf")), partner)


@functools.lru_cache(maxsize=8)
def _nt_xent_constants(m: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """NT-Xent's diagonal mask and partner indices for 2m rows, built once per (m, device)
    (a training run has one or two batch sizes) rather than at every step."""
    with torch.inference_mode(False):  # usable in autograd even if first built under no-grad
        diagonal = torch.eye(2 * m, dtype=torch.bool, device=device)
        partner = torch.cat([torch.arange(m, 2 * m), torch.arange(m)]).to(device)
    return diagonal, partner


@dataclass(frozen=True)
class AutocastPolicy:
    """How a method that fine-tunes an encoder runs its forward pass: ``dtype`` None =
    fp32 (no autocast); ``scaler`` = fp16 needs a :class:`torch.amp.GradScaler`."""

    dtype: torch.dtype | None
    scaler: bool


def autocast_policy(device_type: str, bf16_supported: bool) -> AutocastPolicy:
    """bf16 autocast on CUDA devices that support it (no scaler: bf16 has fp32's range),
    fp16 with a gradient scaler on older CUDA devices, fp32 elsewhere."""
    if device_type != "cuda":
        return AutocastPolicy(None, False)
    if bf16_supported:
        return AutocastPolicy(torch.bfloat16, False)
    return AutocastPolicy(torch.float16, True)


def mlp(dims: Sequence[int], *, dropout: float = 0.0, bias_last: bool = True) -> nn.Sequential:
    """Linear-ReLU(-Dropout) stack; the last layer is linear (no activation)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        last = i == len(dims) - 2
        layers.append(nn.Linear(a, b, bias=bias_last or not last))
        if not last:
            layers.append(nn.ReLU(inplace=True))
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def warmup_cosine(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup: float = 0.0, final: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup`` (a fraction of the steps), then cosine to ``final``."""
    warm = int(round(warmup * total_steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total_steps - warm)
        return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# --------------------------------------------------------------------------- model file


def save_model(
    path: str | os.PathLike, method: HashMethod, extra: Mapping[str, Any] | None = None
) -> None:
    """``model.pt``: everything needed to rebuild the method and encode new items."""
    blob = {
        "format": MODEL_FORMAT,
        "xmhash_version": __version__,
        "method": method.name,
        "params": method.params.to_dict(),
        "bits": method.bits,
        "image_dim": method.image_dim,
        "text_dim": method.text_dim,
        "seed": method.seed,
        "resources": method.resources,
        "state": {k: v.detach().cpu() for k, v in method.net.state_dict().items()},
        "extra": dict(extra or {}),
    }
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> HashMethod:
    from xmhash.methods import get_method

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no trained model at {path}: run the train stage first")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as e:  # truncated, damaged
        reason = str(e).split(". ")[0] or type(e).__name__
        raise ModelFileError(
            f"{path}: not a readable model file, truncated or damaged ({reason}); train it "
            f"again: snakemake {path} --force"
        ) from None
    if not isinstance(blob, dict) or blob.get("format") != MODEL_FORMAT:
        found = blob.get("format") if isinstance(blob, dict) else None
        raise ModelFileError(f"{path}: model format {found}, expected {MODEL_FORMAT}")
    cls = get_method(blob["method"])
    method = cls(
        cls.Params.from_config(blob["params"], f"{path}:params"),
        bits=blob["bits"],
        image_dim=blob["image_dim"],
        text_dim=blob["text_dim"],
        seed=blob["seed"],
        device=device,
        resources=blob["resources"],
    )
    method.net.load_state_dict(blob["state"])
    method.net.to(method.device).eval()
    method.extra = blob["extra"]
    return method
