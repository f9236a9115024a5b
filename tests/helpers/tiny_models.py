"""Small CLIP and detector models built from ``transformers`` configs and saved to a
directory, so that tests and benchmarks go through the real ``from_pretrained`` loading
code without downloading anything. Weights are random (seeded)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SOT, EOT = "<|startoftext|>", "<|endoftext|>"


def _byte_chars() -> list[str]:
    """The printable stand-ins byte-level BPE uses for the 256 byte values (GPT-2's map)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    keep += list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = [], 0
    for b in range(256):
        if b in keep:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def save_byte_tokenizer(directory: str | Path, max_length: int) -> dict[str, int]:
    """A CLIP tokenizer with a byte-level vocabulary and no merges (each character is a
    token; a word's last character carries the ``</w>`` mark)."""
    from transformers import CLIPTokenizer

    chars = _byte_chars()
    vocab: dict[str, int] = {}
    for c in chars + [c + "</w>" for c in chars] + [SOT, EOT]:
        vocab.setdefault(c, len(vocab))
    tok = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length)
    tok.save_pretrained(str(directory))
    return vocab


def save_clip(
    directory: str | Path,
    *,
    tiny: bool = True,
    image_size: int = 32,
    max_length: int = 16,
    seed: int = 0,
) -> Path:
    """Save a CLIP model, tokenizer and image processor to ``directory``.

    ``tiny``: 2-layer, 32-wide towers (milliseconds per batch). Otherwise the real
    ViT-B/32 architecture (``CLIPConfig`` defaults, 224 px, 77 tokens) with random weights.
    """
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if not tiny:
        image_size, max_length = 224, 77
    vocab = save_byte_tokenizer(directory, max_length)
    ids = {"bos_token_id": vocab[SOT], "eos_token_id": vocab[EOT], "pad_token_id": vocab[EOT]}
    text: dict[str, Any] = {"max_position_embeddings": max_length, **ids}
    vision: dict[str, Any] = {"image_size": image_size}
    extra: dict[str, Any] = {}
    if tiny:
        small = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2}
        text.update(small, num_attention_heads=2, vocab_size=len(vocab))
        vision.update(small, num_attention_heads=2, patch_size=8)
        extra["projection_dim"] = 16
    torch.manual_seed(seed)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, **extra))
    model.save_pretrained(str(directory))
    CLIPImageProcessor(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
    ).save_pretrained(str(directory))
    return directory


def save_yolos(directory: str | Path, *, image_size: int = 64, seed: int = 0) -> Path:
    """A tiny YOLOS detector (ViT + detection tokens) with its image processor."""
    import torch
    from transformers import YolosConfig, YolosForObjectDetection, YolosImageProcessor

    directory = Path(directory)
    torch.manual_seed(seed)
    cfg = YolosConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=[image_size, image_size],
        patch_size=16,
        num_detection_tokens=5,
        num_labels=3,
    )
    YolosForObjectDetection(cfg).save_pretrained(str(directory))
    YolosImageProcessor(
        size={"shortest_edge": image_size, "longest_edge": image_size}
    ).save_pretrained(str(directory))
    return directory


def save_owlv2(directory: str | Path, *, image_size: int = 64, seed: int = 0) -> Path:
    """A tiny random OWLv2 zero-shot detector with its processor (byte tokenizer)."""
    import torch
    from transformers import (
        CLIPTokenizer,
        Owlv2Config,
        Owlv2ForObjectDetection,
        Owlv2ImageProcessor,
        Owlv2Processor,
    )

    directory = Path(directory)
    vocab = save_byte_tokenizer(directory, 16)
    ids = {"bos_token_id": vocab[SOT], "eos_token_id": vocab[EOT], "pad_token_id": vocab[EOT]}
    small = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2}
    cfg = Owlv2Config(
        text_config={
            **small,
            **ids,
            "num_attention_heads": 2,
            "vocab_size": len(vocab),
            "max_position_embeddings": 16,
        },
        vision_config={
            **small,
            "num_attention_heads": 2,
            "image_size": image_size,
            "patch_size": 16,
        },
        projection_dim=32,  # the class head maps vision width to it
    )
    torch.manual_seed(seed)
    model = Owlv2ForObjectDetection(cfg)
    with torch.no_grad():  # boxes = the per-patch prior (random heads predict degenerate ones)
        model.box_head.dense2.weight.zero_()
        model.box_head.dense2.bias.zero_()
    model.save_pretrained(str(directory))
    Owlv2Processor(
        image_processor=Owlv2ImageProcessor(size={"height": image_size, "width": image_size}),
        tokenizer=CLIPTokenizer.from_pretrained(str(directory)),
    ).save_pretrained(str(directory))
    return directory
