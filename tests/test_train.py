"""The generic trainer: logging, checkpoints and resume, model selection."""

from __future__ import annotations

import csv
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from conftest import train_data
from torch import nn

from xmhash.methods.base import Batch, DeepMethod, DeepParams, Items, mlp
from xmhash.train import TrainSettings, ValData, fit


@dataclass(frozen=True)
class ToyParams(DeepParams):
    epochs: int = 6
    batch_size: int = 50
    lr: float = 0.01


class Toy(DeepMethod):
    """Two MLP heads pulled together (cross-modal MSE) and towards ±1; dropout
    makes the RNG state matter for exact resume."""

    name = "toy"
    Params = ToyParams
    citation = "test"
    fail_at: int | None = None

    def build(self):
        self.net.image = nn.Sequential(mlp([self.image_dim, 32, self.bits]), nn.Dropout(0.2))
        self.net.text = nn.Sequential(mlp([self.text_dim, 32, self.bits]), nn.Dropout(0.2))

    def configure_optimizer(self, steps_per_epoch):
        opt = torch.optim.SGD(self.net.parameters(), lr=self.params.lr, momentum=0.9)
        return opt, torch.optim.lr_scheduler.StepLR(opt, step_size=3)

    def project(self, x, modality):
        return getattr(self.net, modality)(x)

    def loss(self, batch: Batch, epoch: int):
        hi, ht = (
            torch.tanh(self.project(batch.image, "image")),
            torch.tanh(self.project(batch.text, "text")),
        )
        align = (hi - ht).pow(2).mean()
        quant = (hi.abs() - 1).pow(2).mean() + (ht.abs() - 1).pow(2).mean()
        return {"loss": align + quant, "align": align, "quant": quant}

    def on_epoch_end(self, epoch):
        if self.fail_at is not None and epoch == self.fail_at:
            raise KeyboardInterrupt("simulated kill")


def _data(small_demo, rows):
    return train_data(small_demo, rows)


def _toy(seed=0, **kw):
    torch.manual_seed(seed)
    return Toy(ToyParams(**kw), bits=16, image_dim=64, text_dim=64, seed=seed)


def test_history_csv_has_every_loss_term(small_demo, tmp_path):
    m = _toy()
    summary = fit(
        m,
        _data(small_demo, np.arange(300)),
        TrainSettings(device="cpu"),
        history_csv=tmp_path / "h.csv",
        checkpoint=tmp_path / "c.ckpt",
    )
    rows = list(csv.DictReader(open(tmp_path / "h.csv")))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 7))
    assert {"loss", "align", "quant", "lr", "seconds"} <= set(rows[0])
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    assert summary["selection"] == "last" and summary["epoch"] == 6
    assert not (tmp_path / "c.ckpt").exists()  # removed after a finished run


def test_resume_after_kill_equals_uninterrupted_run(small_demo, tmp_path):
    data = _data(small_demo, np.arange(300))
    ref = _toy()
    fit(ref, data, TrainSettings(device="cpu", checkpoint_every=1))

    killed = _toy()
    killed.fail_at = 3
    with pytest.raises(KeyboardInterrupt):
        fit(
            killed,
            data,
            TrainSettings(device="cpu"),
            checkpoint=tmp_path / "c.ckpt",
            history_csv=tmp_path / "h.csv",
        )
    assert (tmp_path / "c.ckpt").exists()

    resumed = _toy(seed=0)
    summary = fit(
        resumed,
        data,
        TrainSettings(device="cpu"),
        checkpoint=tmp_path / "c.ckpt",
        history_csv=tmp_path / "h.csv",
    )
    assert [r["epoch"] for r in summary["history"]] == list(range(1, 7))
    for (k, a), b in zip(
        ref.net.state_dict().items(), resumed.net.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), k


def test_checkpoint_of_other_settings_is_ignored(small_demo, tmp_path):
    data = _data(small_demo, np.arange(300))
    killed = _toy(lr=0.05)
    killed.fail_at = 1
    with pytest.raises(KeyboardInterrupt):
        fit(killed, data, TrainSettings(device="cpu"), checkpoint=tmp_path / "c.ckpt")
    fresh = _toy(lr=0.01)  # another learning rate: must start from scratch
    summary = fit(fresh, data, TrainSettings(device="cpu"), checkpoint=tmp_path / "c.ckpt")
    assert len(summary["history"]) == 6


def test_val_selection_keeps_the_best_validation_epoch(small_demo):
    data = _data(small_demo, np.arange(300))
    val = ValData(
        items=Items(image=small_demo.image[400:500], text=small_demo.text[400:500]),
        labels=small_demo.labels[400:500],
    )
    m = _toy(epochs=5)
    summary = fit(m, data, TrainSettings(device="cpu", select="val"), val=val)
    scores = [r["val_map"] for r in summary["history"]]
    assert summary["selection"] == "val"
    assert summary["val_map"] == max(scores)
    assert summary["epoch"] == 1 + int(np.argmax(scores))
    from xmhash.train import validation_map

    assert validation_map(m, val) == pytest.approx(max(scores))  # the best state is loaded


def test_val_selection_needs_a_validation_split(small_demo):
    with pytest.raises(ValueError, match="needs a validation split"):
        fit(_toy(), _data(small_demo, np.arange(100)), TrainSettings(device="cpu", select="val"))


def test_nan_loss_is_a_clear_error(small_demo):
    m = _toy(lr=1e30)
    with pytest.raises(FloatingPointError, match="toy: loss became"):
        fit(m, _data(small_demo, np.arange(300)), TrainSettings(device="cpu"))
