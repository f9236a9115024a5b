"""Registry, schema and config.yaml agree, and every registered method obeys the contract."""

from __future__ import annotations

import dataclasses
import importlib
import typing

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO
from host_syncs import host_syncs  # noqa: F401 (a fixture)

from xmhash.methods import METHODS, get_method
from xmhash.methods.base import (
    EXTRA_INPUTS,
    ConfigError,
    Items,
    TrainData,
    load_model,
    save_model,
)

SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())
JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _schema_type(hint) -> str | None:
    origin = typing.get_origin(hint)
    if origin in (tuple, list):
        return "array"
    if origin is typing.Literal:
        return "string"
    return JSON_TYPES.get(hint)


def test_unknown_method_names_the_registry():
    with pytest.raises(KeyError, match="registered methods"):
        get_method("nope")


def test_schema_enum_equals_registry():
    enum = SCHEMA["properties"]["run"]["properties"]["methods"]["items"]["enum"]
    assert sorted(enum) == sorted(METHODS)
    assert sorted(SCHEMA["properties"]["methods"]["properties"]) == sorted(METHODS)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_schema_config_and_params_agree(name):
    cls = METHODS[name]
    hints = typing.get_type_hints(cls.Params)
    fields = [f.name for f in dataclasses.fields(cls.Params)]
    props = SCHEMA["properties"]["methods"]["properties"][name]
    assert props.get("additionalProperties") is False
    assert sorted(props["properties"]) == sorted(fields), f"schema methods.{name}"
    for key, spec in props["properties"].items():
        expected = _schema_type(hints[key])
        if expected and "type" in spec:
            types = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
            assert expected in types or (expected == "number" and "integer" in types), (
                f"schema methods.{name}.{key}: {spec['type']} vs {hints[key]}"
            )
    assert name in CONFIG["methods"], f"config.yaml has no methods.{name} block"
    assert sorted(CONFIG["methods"][name]) == sorted(fields), f"config.yaml methods.{name}"
    cls.Params.from_config(CONFIG["methods"][name], f"methods.{name}")


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_module_is_named_after_the_method(name):
    cls = METHODS[name]
    # code fingerprints (common.smk) find a method's source file by its name, without
    # importing the package
    assert cls.__module__ == f"xmhash.methods.{name}", cls.__module__
    assert cls.citation, f"{name}: citation is empty"
    assert cls.needs <= EXTRA_INPUTS, f"{name}: unknown needs {cls.needs - EXTRA_INPUTS}"
    doc = (importlib.import_module(cls.__module__).__doc__ or "").lower()
    assert "deviation" in doc, f"{cls.__module__}: the docstring must list deviations"


def test_params_reject_unknown_keys_and_bad_types():
    cls = get_method("cca_itq")
    with pytest.raises(ConfigError, match=r"methods.cca_itq: unknown key\(s\) \['regg'\]"):
        cls.Params.from_config({"regg": 1.0}, "methods.cca_itq")
    with pytest.raises(ConfigError, match=r"methods.cca_itq.itq_iters: expected an integer"):
        cls.Params.from_config({"itq_iters": "many"}, "methods.cca_itq")
    assert cls.Params.from_config({"reg": 1}, "m").reg == 1.0  # ints are valid numbers


SMOKE_NEEDS = frozenset({"texts", "words", "regions"})


def _smoke_data(f, rows, cls, tmp_path) -> TrainData:
    """Every training input of the demo's ``rows``, with a label-agreement target as the
    graph file of each graph kind the method trains on."""
    from xmhash.graph.store import GraphFile, write_graph

    graphs = {}
    for kind in cls.graphs:
        target = np.where(f.labels[rows] @ f.labels[rows].T > 0, 1.0, -1.0).astype(np.float32)
        graphs[kind] = tmp_path / f"{kind}.h5"
        write_graph(graphs[kind], GraphFile(kind=kind, rows=rows, target=target))
    return TrainData(
        image=torch.tensor(f.image[rows]),
        text=torch.tensor(f.text[rows]),
        rows=rows,
        labels=torch.tensor(f.labels[rows], dtype=torch.float32),
        texts=list(f.texts[rows]),
        words=f.words.subset(rows) if f.words is not None else None,
        regions=f.regions.subset(rows) if f.regions is not None else None,
        graph=graphs,
    )


# Network widths of the contract tests. What they assert (code shapes and values, the
# save/load round trip, fused optimiser steps, no host-device syncs) holds at any width;
# at the papers' widths (UCCH: 8192 hidden units, 4096 memory keys) these tests took most
# of the quick suite's time.
SMALL_WIDTHS = {
    "hidden": 64,
    "image_hidden": 64,
    "teacher_hidden": 64,
    "width": 64,
    "fusion_ff": 64,
    "negatives": 64,
}


def small_params(cls, **overrides):
    """``cls.Params()`` at small widths (:data:`SMALL_WIDTHS`), then ``overrides``."""
    fields = {fl.name for fl in dataclasses.fields(cls.Params)}
    widths = {k: v for k, v in SMALL_WIDTHS.items() if k in fields}
    return dataclasses.replace(cls.Params(), **{**widths, **overrides})


def test_contract_widths_are_small_for_every_method():
    for name, cls in METHODS.items():
        p = small_params(cls)
        wide = {
            fl.name: getattr(p, fl.name)
            for fl in dataclasses.fields(p)
            if fl.name not in ("epochs", "batch_size")
            and type(getattr(p, fl.name)) is int
            and getattr(p, fl.name) > 256
        }
        assert not wide, f"{name}: add {sorted(wide)} to SMALL_WIDTHS"


@pytest.mark.parametrize("features", ["small_demo", "small_bow_demo"])
@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_trains_and_encodes(name, features, request, tmp_path):
    """Contract smoke test: 1 epoch, ±1 codes of the right shape, save/load round trip;
    on 64-d CLIP-like features of both modalities, and on 128-d visual-word counts with
    10-d topic proportions (unequal widths, non-negative, 16 bits > the text width)."""
    from xmhash.train import TrainSettings, fit

    cls = METHODS[name]
    f = request.getfixturevalue(features)
    available = SMOKE_NEEDS if f.words is not None else frozenset({"texts"})
    if not cls.needs <= available:
        pytest.skip(f"{name} needs {sorted(cls.needs - available)}; see its own tests")
    params = small_params(cls)
    if hasattr(params, "epochs"):
        params = dataclasses.replace(params, epochs=1, batch_size=64)
    data = _smoke_data(f, np.arange(200), cls, tmp_path)
    dims = {"image_dim": f.image.shape[1], "text_dim": f.text.shape[1]}
    method = cls(params, bits=16, seed=0, **dims)
    summary = fit(method, data, TrainSettings(device="cpu", checkpoint_minutes=0))
    assert summary["selection"] in ("closed-form", "last")
    items = Items(image=f.image[300:340], text=f.text[300:340], texts=list(f.texts[300:340]))
    for modality in ("image", "text"):
        codes = method.encode(items, modality)
        assert codes.shape == (40, 16) and codes.dtype == np.int8
        assert set(np.unique(codes)) <= {-1, 1}
    save_model(tmp_path / "model.pt", method)
    back = load_model(tmp_path / "model.pt")
    for modality in ("image", "text"):
        assert (back.encode(items, modality) == method.encode(items, modality)).all()


def _deep_methods():
    return sorted(n for n, c in METHODS.items() if hasattr(c.Params(), "epochs"))


def _three_epochs(name, small_demo, tmp_path):
    """A deep method and its data for 3 short epochs that reach every branch of its step
    (ENHash's memory, notebook and replay from epoch 1)."""
    cls = METHODS[name]
    data = _smoke_data(small_demo, np.arange(192), cls, tmp_path)
    overrides = {"epochs": 3, "batch_size": 64}
    fields = {fl.name for fl in dataclasses.fields(cls.Params)}
    overrides.update({k: v for k, v in {"warmup_epochs": 1, "clusters": 4}.items() if k in fields})
    method = cls(small_params(cls, **overrides), bits=16, image_dim=64, text_dim=64, seed=0)
    return method, data


@pytest.mark.parametrize("name", _deep_methods())
def test_every_optimizer_step_is_one_fused_pass(name, small_demo, tmp_path):
    """Every optimiser step uses torch's fused kernel: one pass over the weights, where
    the default per-tensor loop on CPU makes about ten (at UCCH's 114 M parameters that
    loop was a third of the step)."""
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    from xmhash.train import TrainSettings, fit

    method, data = _three_epochs(name, small_demo, tmp_path)
    steps = []
    hook = register_optimizer_step_pre_hook(
        lambda opt, args, kwargs: steps.append((type(opt).__name__, opt.defaults.get("fused")))
    )
    try:
        fit(method, data, TrainSettings(device="cpu"))
    finally:
        hook.remove()
    assert steps, "no optimiser step was taken"
    assert {s for s in steps if not s[1]} == set()


@pytest.mark.parametrize("name", _deep_methods())
def test_no_training_step_waits_for_the_device(name, small_demo, tmp_path, host_syncs):  # noqa: F811
    """No training step makes the host wait for the device: loss terms stay there, and
    the trainer reads them once per epoch."""
    from xmhash.train import TrainSettings, fit

    method, data = _three_epochs(name, small_demo, tmp_path)
    host_syncs.active = False
    step = method.train_step

    def watched_step(*args):
        with host_syncs.watching():
            return step(*args)

    method.train_step = watched_step
    fit(method, data, TrainSettings(device="cpu"))
    assert host_syncs.calls == []


@pytest.mark.gpu
@pytest.mark.parametrize("name", _deep_methods())
def test_no_training_step_synchronises_on_cuda(name, small_demo, tmp_path):
    """On a GPU, CUDA's own sync detector finds no synchronising call in a step."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from xmhash.train import TrainSettings, fit

    cls = METHODS[name]
    data = _smoke_data(small_demo, np.arange(192), cls, tmp_path)
    for key in ("image", "text", "labels"):
        setattr(data, key, getattr(data, key).cuda())
    fields = {fl.name for fl in dataclasses.fields(cls.Params)}
    overrides = {"epochs": 3, "batch_size": 64}
    overrides.update({k: v for k, v in {"warmup_epochs": 1, "clusters": 4}.items() if k in fields})
    method = cls(
        small_params(cls, **overrides), bits=16, image_dim=64, text_dim=64, seed=0, device="cuda"
    )
    step = method.train_step

    def strict_step(*args):
        torch.cuda.set_sync_debug_mode("error")
        try:
            return step(*args)
        finally:
            torch.cuda.set_sync_debug_mode("default")

    method.train_step = strict_step
    fit(method, data, TrainSettings(device="cuda"))


def test_method_overrides_replace_the_method_block_on_their_dataset_only():
    from xmhash.plan import method_config

    assert method_config(CONFIG, "demo_bow", "djsrh")["beta"] == 0.3
    assert method_config(CONFIG, "demo", "djsrh")["beta"] == CONFIG["methods"]["djsrh"]["beta"]
    for dataset, per_method in CONFIG["method_overrides"].items():
        assert dataset in CONFIG["datasets"], f"method_overrides.{dataset}: no such dataset"
        for name in per_method:
            params = method_config(CONFIG, dataset, name)
            METHODS[name].Params.from_config(params, f"method_overrides.{dataset}.{name}")
