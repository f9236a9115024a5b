"""VTM-UCH: the loss on hand-computable inputs, training, encoding, both variants."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from xmhash.graph.store import GraphFile, write_graph
from xmhash.methods.base import Items, TrainData, load_model, save_model
from xmhash.methods.vtmuch import VTMUCH, VTMUCHParams, tag_text, vtmuch_loss
from xmhash.train import TrainSettings, fit


def test_loss_terms_by_hand():
    # one item, K = 2: hv = (1, 1), ht = (1, -1): Pvv = Ptt = 2, Pvt = 0; K*S = 2
    hv, ht, s = torch.tensor([[1.0, 1.0]]), torch.tensor([[1.0, -1.0]]), torch.tensor([[1.0]])
    t = vtmuch_loss(hv, ht, s, alpha=1.0, rho=0.1)
    assert t["sim"].item() == pytest.approx(0.1 * 0 + 0.9 * 0 + (0 - 2) ** 2)
    assert t["align"].item() == pytest.approx((2 - 2) ** 2 + (0 - 2) ** 2 + (0 - 2) ** 2)
    assert t["loss"].item() == pytest.approx(4 + 8)
    assert vtmuch_loss(hv, ht, s, alpha=0.5, rho=0.1)["loss"].item() == pytest.approx(8)


def test_loss_weights_text_and_image_terms_by_rho():
    # two items, K = 1: hv = (1, -1), ht = (1, 1), S = [[1, -1], [-1, 1]]
    hv, ht = torch.tensor([[1.0], [-1.0]]), torch.tensor([[1.0], [1.0]])
    s = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])
    # Pvv = S exactly (error 0); Ptt = all ones: squared errors 0, 4, 4, 0 -> mean 2;
    # Pvt = [[1, 1], [-1, -1]]: errors 0, 4, 0, 4 -> mean 2
    t = vtmuch_loss(hv, ht, s, alpha=0.0, rho=0.25)
    assert t["sim"].item() == pytest.approx(0.25 * 2 + 0.75 * 0 + 2)
    # align: mse(Pvv, Ptt) = 2, mse(Pvt, Pvv) = 2, mse(Pvt, Ptt) = 2
    assert t["align"].item() == pytest.approx(6)
    assert t["loss"].item() == pytest.approx(t["sim"].item())


def test_tag_text_joins_tags_with_commas():
    assert tag_text("sky sea  sunset") == "sky,sea,sunset"
    assert tag_text("sky, sea") == "sky,sea"


def _graph(path: Path, labels: np.ndarray, rows: np.ndarray) -> Path:
    share = (labels @ labels.T) > 0
    write_graph(
        path,
        GraphFile(kind="vtmuch", rows=rows, target=np.where(share, 1.0, -1.0).astype(np.float32)),
    )
    return path


def _data(demo, rows, graph):
    return TrainData(
        image=torch.tensor(demo.image[rows]),
        text=torch.tensor(demo.text[rows]),
        rows=rows,
        texts=list(demo.texts[rows]),
        graph={"vtmuch": graph},
    )


def test_cached_variant_trains_encodes_and_round_trips(small_demo, tmp_path):
    rows = np.arange(256)
    graph = _graph(tmp_path / "g.h5", small_demo.labels[rows], rows)
    params = VTMUCHParams(epochs=6, batch_size=32, hidden=64, lr=3e-3)
    method = VTMUCH(params, bits=16, image_dim=64, text_dim=64, seed=0)
    summary = fit(
        method, _data(small_demo, rows, graph), TrainSettings(device="cpu", checkpoint_minutes=0)
    )
    losses = [row["loss"] for row in summary["history"]]
    assert losses[-1] < 0.8 * losses[0]
    items = Items(image=small_demo.image[300:330], text=small_demo.text[300:330])
    for modality in ("image", "text"):
        codes = method.encode(items, modality)
        assert codes.shape == (30, 16) and codes.dtype == np.int8
        assert set(np.unique(codes)) <= {-1, 1}
    save_model(tmp_path / "m.pt", method)
    back = load_model(tmp_path / "m.pt")
    assert (back.encode(items, "text") == method.encode(items, "text")).all()


def test_setup_rejects_a_graph_of_other_rows(small_demo, tmp_path):
    rows = np.arange(64)
    graph = _graph(tmp_path / "g.h5", small_demo.labels[rows + 1], rows + 1)
    method = VTMUCH(VTMUCHParams(epochs=1, hidden=8), bits=8, image_dim=64, text_dim=64)
    with pytest.raises(ValueError, match=r"g\.h5: /rows .* not the training rows"):
        method.setup(_data(small_demo, rows, graph))
    with pytest.raises(ValueError, match="needs the 'vtmuch' graph"):
        method.setup(
            TrainData(image=torch.zeros(2, 64), text=torch.zeros(2, 64), rows=np.arange(2))
        )


# ---------------------------------------------------------------- finetune (tiny CLIP)


def _byte_chars() -> list[str]:
    """The byte -> unicode table of CLIP's byte-level BPE."""
    bs = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    cs = bs[:]
    extra = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    return [chr(c) for c in cs]


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    """A 1-layer CLIP text tower and a character-level CLIP tokenizer, saved to a dir."""
    transformers = pytest.importorskip("transformers")
    d = tmp_path_factory.mktemp("tiny_clip")
    chars = _byte_chars()
    vocab = {c: i for i, c in enumerate(chars + [c + "</w>" for c in chars])}
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (d / "vocab.json").write_text(json.dumps(vocab))
    (d / "merges.txt").write_text("#version: 0.2\n")
    transformers.CLIPTokenizer(str(d / "vocab.json"), str(d / "merges.txt")).save_pretrained(d)
    cfg = transformers.CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=32,
        projection_dim=64,
        bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"],
    )
    torch.manual_seed(0)
    transformers.CLIPTextModelWithProjection(cfg).save_pretrained(d)
    return d


def test_finetune_variant_trains_the_text_tower_on_raw_texts(small_demo, tmp_path, tiny_clip):
    rows = np.arange(64)
    graph = _graph(tmp_path / "g.h5", small_demo.labels[rows], rows)
    params = VTMUCHParams(
        variant="finetune", epochs=2, batch_size=32, hidden=16, max_words=24, clip_lr=1e-3
    )
    method = VTMUCH(
        params, bits=8, image_dim=64, text_dim=64, seed=0, resources={"encoder": str(tiny_clip)}
    )
    before = {k: v.clone() for k, v in method.net.tower.state_dict().items()}
    fit(method, _data(small_demo, rows, graph), TrainSettings(device="cpu", checkpoint_minutes=0))
    after = method.net.tower.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    items = Items(
        image=small_demo.image[100:110],
        text=small_demo.text[100:110],
        texts=list(small_demo.texts[100:110]),
    )
    codes = method.encode(items, "text")
    assert codes.shape == (10, 8) and set(np.unique(codes)) <= {-1, 1}
    # text codes come from the raw texts, not from the cached text features
    shuffled = dataclasses.replace(items, text=items.text[::-1].copy())
    assert (method.encode(shuffled, "text") == codes).all()
    save_model(tmp_path / "m.pt", method)
    assert (load_model(tmp_path / "m.pt").encode(items, "text") == codes).all()


def test_finetune_needs_the_encoder_and_matching_dims(tiny_clip):
    from xmhash.methods.base import ConfigError

    with pytest.raises(ConfigError, match="needs the encoder"):
        VTMUCH(VTMUCHParams(variant="finetune"), bits=8, image_dim=64, text_dim=64)
    with pytest.raises(ConfigError, match="projection_dim 64 differs"):
        VTMUCH(
            VTMUCHParams(variant="finetune"),
            bits=8,
            image_dim=64,
            text_dim=32,
            resources={"encoder": str(tiny_clip)},
        )


@pytest.mark.filterwarnings("ignore:.*CUDA is not available")
def test_autocast_only_on_cuda():
    method = VTMUCH(VTMUCHParams(hidden=8), bits=8, image_dim=4, text_dim=4)
    assert not isinstance(method._autocast(), torch.autocast)
    method.device = torch.device("cuda")
    assert isinstance(method._autocast(), torch.autocast)


@pytest.mark.slow
def test_beats_lsh_clearly_on_a_demo_at_32_bits(score_map, tmp_path):
    """The whole path (vtmuch graph -> training) on a mid-sized demo, against the floor."""
    from xmhash.data.demo import DemoSpec, generate_demo
    from xmhash.data.splits import make_split
    from xmhash.graph.vtmuch import build_vtmuch
    from xmhash.methods.lsh import LSH, LSHParams

    f = generate_demo(DemoSpec(n_items=1600))  # the demo's dims and labels, fewer items
    split = make_split(len(f), query=200, train=1000, val=0, seed=0)
    rows = split.train
    vg = build_vtmuch(f.image[rows], f.words.subset(rows), f.regions.subset(rows), seed=0)
    graph = tmp_path / "g.h5"
    write_graph(graph, GraphFile(kind="vtmuch", rows=rows, target=vg.target))
    params = VTMUCHParams(epochs=10, hidden=512, lr=1e-3)
    method = VTMUCH(params, bits=32, image_dim=512, text_dim=512, seed=0)
    fit(method, _data(f, rows, graph), TrainSettings(device="cpu", checkpoint_minutes=0))
    lsh = LSH(LSHParams(), bits=32, image_dim=512, text_dim=512, seed=0)
    lsh.fit(_data(f, rows, graph))
    ours, floor = (score_map(m, f, split.query, split.database) for m in (method, lsh))
    assert ours > floor + 0.03, (ours, floor)


def test_refuses_a_target_above_max_dense(small_demo, tmp_path):
    from xmhash.graph.similarity import DenseTooLargeError

    rows = np.arange(100)
    data = _data(small_demo, rows, _graph(tmp_path / "g.h5", small_demo.labels[rows], rows))
    data.max_dense = 99 * 99
    method = VTMUCH(
        VTMUCHParams(epochs=1, batch_size=32, hidden=16), bits=16, image_dim=64, text_dim=64
    )
    with pytest.raises(DenseTooLargeError, match=r"100 x 100 vtmuch target .*graph\.max_dense"):
        fit(method, data, TrainSettings(device="cpu"))
    data.max_dense = 100 * 100  # at the limit: trains
    fit(method, data, TrainSettings(device="cpu"))
