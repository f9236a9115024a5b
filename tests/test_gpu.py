"""CUDA behaviour: every method trains and encodes on the GPU, a run interrupted on the
GPU resumes to the same weights, and mixed precision is bf16 where the GPU supports it.

Run on a CUDA machine with ``pytest -m gpu`` (benchmarks/gpu.py does); skipped elsewhere.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO
from test_vtmuch import _graph, tiny_clip  # noqa: F401  (tiny_clip: a fixture)
from torch import nn

from xmhash.methods import METHODS
from xmhash.methods.base import ClosedFormMethod, Items, TrainData
from xmhash.train import TrainSettings, fit, to_device

# cuBLAS picks deterministic kernels only with a fixed workspace, set before it starts
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
CUDA = torch.device("cuda")
N_TRAIN = 256


def demo_block(name: str, **override) -> dict:
    """config.yaml's (demo-sized) block of a method."""
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())["methods"]
    return {**(cfg.get(name) or {}), **override}


def cuda_data(feats, rows: np.ndarray, cls, tmp_path) -> TrainData:
    """The training items on the GPU, as the train stage places them."""
    data = TrainData(
        image=to_device(feats.image[rows], CUDA),
        text=to_device(feats.text[rows], CUDA),
        rows=rows,
        labels=to_device(feats.labels[rows], CUDA) if cls.supervised else None,
        texts=list(feats.texts[rows]),
    )
    for kind in cls.graphs:
        data.graph[kind] = _graph(tmp_path / f"{kind}.h5", feats.labels[rows], rows)
    return data


def build(name: str, dim: int, device=CUDA, resources=None, **override):
    cls = METHODS[name]
    if not issubclass(cls, ClosedFormMethod):
        override.setdefault("epochs", 1)
    if override.get("variant") == "finetune":
        override.setdefault("max_words", 24)  # the tiny tower has 32 positions
    params = cls.Params.from_config(demo_block(name, **override), f"methods.{name}")
    return cls(
        params, bits=16, image_dim=dim, text_dim=dim, seed=0, device=device, resources=resources
    )


def tower(path) -> dict[str, str]:
    """The run resources of VTM-UCH's finetune variant: the (tiny) CLIP text tower."""
    return {"encoder": str(path)}


def devices_of(module: nn.Module) -> set[str]:
    return {t.device.type for t in [*module.parameters(), *module.buffers()]}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_trains_and_encodes_on_cuda(name, small_demo, tmp_path):
    rows = np.arange(N_TRAIN)
    method = build(name, small_demo.image.shape[1])
    data = cuda_data(small_demo, rows, type(method), tmp_path)
    fit(method, data, TrainSettings(device="cuda"))
    assert devices_of(method.net) <= {"cuda"}, devices_of(method.net)
    query = slice(400, 450)
    x = torch.as_tensor(small_demo.image[query], device=CUDA)
    with torch.no_grad():
        assert method.project(x, "image").device.type == "cuda"
    items = Items(
        image=small_demo.image[query],
        text=small_demo.text[query],
        texts=list(small_demo.texts[query]),
    )
    for modality in ("image", "text"):
        codes = method.encode(items, modality)
        assert codes.shape == (50, 16) and set(np.unique(codes)) <= {-1, 1}
    assert devices_of(method.net) <= {"cuda"}  # encoding moved nothing back


def test_vtmuch_finetune_trains_the_text_tower_on_cuda(small_demo, tmp_path, tiny_clip):  # noqa: F811
    rows = np.arange(64)
    method = build("vtmuch", 64, resources=tower(tiny_clip), variant="finetune", batch_size=32)
    before = {k: v.clone() for k, v in method.net.tower.state_dict().items()}
    fit(method, cuda_data(small_demo, rows, type(method), tmp_path), TrainSettings(device="cuda"))
    assert devices_of(method.net) <= {"cuda"}
    after = method.net.tower.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    codes = method.encode(Items(texts=list(small_demo.texts[400:410])), "text")
    assert codes.shape == (10, 16)


def interrupt_after(method, epoch: int) -> None:
    """Make ``method`` stop (as a killed job does) at the end of ``epoch`` (0-based)."""
    original = method.on_epoch_end

    def stop(e):
        original(e)
        if e == epoch:
            raise KeyboardInterrupt("simulated kill")

    method.on_epoch_end = stop


@pytest.mark.parametrize("name", ["ucch", "djsrh"])
def test_resume_on_cuda_equals_the_uninterrupted_run(name, small_demo, tmp_path):
    rows = np.arange(N_TRAIN)
    dim = small_demo.image.shape[1]
    data = cuda_data(small_demo, rows, METHODS[name], tmp_path)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        torch.manual_seed(0)
        ref = build(name, dim, epochs=4)
        fit(ref, data, TrainSettings(device="cuda"))

        torch.manual_seed(0)
        killed = build(name, dim, epochs=4)
        interrupt_after(killed, 2)
        ckpt = tmp_path / "model.ckpt"
        with pytest.raises(KeyboardInterrupt):
            fit(killed, data, TrainSettings(device="cuda"), checkpoint=ckpt)
        assert ckpt.exists()

        torch.manual_seed(0)
        resumed = build(name, dim, epochs=4)
        summary = fit(resumed, data, TrainSettings(device="cuda"), checkpoint=ckpt)
    finally:
        torch.use_deterministic_algorithms(False)
    assert [r["epoch"] for r in summary["history"]] == [1, 2, 3, 4]
    ref_state, state = ref.net.state_dict(), resumed.net.state_dict()
    assert ref_state.keys() == state.keys()
    for key in ref_state:
        assert state[key].device.type == "cuda"
        assert torch.equal(ref_state[key], state[key]), key


def expected_half() -> torch.dtype:
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def linear_output_dtypes(module: nn.Module, call) -> set[torch.dtype]:
    """The dtypes the Linear layers inside ``module`` compute in while ``call()`` runs."""
    seen: set[torch.dtype] = set()
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype))
        for m in module.modules()
        if isinstance(m, nn.Linear)
    ]
    try:
        call()
    finally:
        for h in hooks:
            h.remove()
    return seen


def test_feature_encoder_autocasts_to_bf16_where_supported(tiny_clip_dir):
    from xmhash.features.encoders import load_encoder

    enc = load_encoder(str(tiny_clip_dir), device="cuda", dtype="auto")
    pixels = torch.randn(4, 3, 32, 32)
    tokens = enc.tokenizer(["a dog", "two cats", "sky", "a red car"])
    assert linear_output_dtypes(enc.model, lambda: enc.forward_pixels(pixels)) == {expected_half()}
    assert linear_output_dtypes(enc.model, lambda: enc.forward_tokens(tokens)) == {expected_half()}


def test_vtmuch_text_tower_autocasts_to_bf16_where_supported(tiny_clip):  # noqa: F811
    method = build("vtmuch", 64, resources=tower(tiny_clip), variant="finetune")
    ids, mask = method.tokenize(["sky,tree", "dog"])
    seen = linear_output_dtypes(
        method.net.tower, lambda: method.text_tower(ids.to(CUDA), mask.to(CUDA))
    )
    assert seen == {expected_half()}


def test_feature_stage_on_cuda_decodes_jpegs_on_the_gpu_as_pil_does(tiny_clip_dir, tmp_path):
    """decode: gpu (torchvision's nvJPEG decode, resizing and grid tiles on the device)
    against decode: cpu (PIL in the workers), same device, draft off: cosines >= 0.98; and
    the chunk's embeddings come back finite, in one copy, from batches of 256."""
    pytest.importorskip("torchvision")
    from test_features import SETTINGS, _photo_jpegs

    from xmhash.features.encoders import load_encoder
    from xmhash.features.extract import ExtractSettings, extract_features
    from xmhash.features.store import read_features

    photos = _photo_jpegs(tmp_path / "prepared", 24)
    enc = load_encoder(str(tiny_clip_dir), device="cuda", draft=False)
    runs = {}
    for decode in ("cpu", "gpu"):
        settings = ExtractSettings(**{**SETTINGS.__dict__, "decode": decode, "batch_size": 256})
        out = extract_features(photos, enc, tmp_path / f"{decode}.h5", settings)
        runs[decode] = read_features(out, parts=("image", "regions"))
    cpu, gpu = runs["cpu"], runs["gpu"]
    assert (cpu.image * gpu.image).sum(axis=1).min() >= 0.98
    assert (cpu.regions.embeddings * gpu.regions.embeddings).sum(axis=1).min() >= 0.98


def test_a_compiled_loss_trains_on_cuda_as_eager_does(tmp_path):
    from test_train import Smooth, ToyParams

    rng = np.random.default_rng(0)
    data = TrainData(
        image=torch.tensor(rng.standard_normal((200, 64)), dtype=torch.float32, device="cuda"),
        text=torch.tensor(rng.standard_normal((200, 64)), dtype=torch.float32, device="cuda"),
        rows=np.arange(200),
    )
    models = []
    for compiled in (False, True):
        torch.manual_seed(0)
        toy = Smooth(ToyParams(epochs=3), bits=16, image_dim=64, text_dim=64, seed=0, device="cuda")
        fit(toy, data, TrainSettings(device="cuda", tf32=False, compile=compiled))
        models.append(toy.net.state_dict())
    for k, a in models[0].items():
        torch.testing.assert_close(models[1][k], a, rtol=1e-3, atol=1e-4, msg=k)
