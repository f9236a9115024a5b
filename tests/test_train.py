"""The generic trainer: logging, checkpoints and resume, model selection, the hot loop."""

from __future__ import annotations

import csv
import logging
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import train_data
from host_syncs import host_syncs  # noqa: F401 (a fixture)
from torch import nn

from xmhash import train
from xmhash.methods.base import Batch, DeepMethod, DeepParams, Items, autocast_policy, mlp
from xmhash.train import TrainSettings, ValData, fit

EVERY_EPOCH = TrainSettings(device="cpu", checkpoint_minutes=0)


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
    fit(ref, data, TrainSettings(device="cpu", checkpoint_minutes=0))

    killed = _toy()
    killed.fail_at = 3
    with pytest.raises(KeyboardInterrupt):
        fit(
            killed,
            data,
            EVERY_EPOCH,
            checkpoint=tmp_path / "c.ckpt",
            history_csv=tmp_path / "h.csv",
        )
    assert (tmp_path / "c.ckpt").exists()

    resumed = _toy(seed=0)
    summary = fit(
        resumed,
        data,
        EVERY_EPOCH,
        checkpoint=tmp_path / "c.ckpt",
        history_csv=tmp_path / "h.csv",
    )
    assert [r["epoch"] for r in summary["history"]] == list(range(1, 7))
    for (k, a), b in zip(
        ref.net.state_dict().items(), resumed.net.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), k


def test_checkpoints_are_written_beside_training_from_a_snapshot(small_demo, tmp_path, monkeypatch):
    """A checkpoint is written on another thread while training goes on, from a copy of
    the state taken at the end of its epoch: a slow disk neither holds training up nor
    lets later steps leak into the file (the resumed run still equals the uninterrupted
    one), and a run that stops waits for the write in flight."""
    import threading
    import time

    data = _data(small_demo, np.arange(300))
    ref = _toy()
    fit(ref, data, TrainSettings(device="cpu", checkpoint_minutes=0))

    real_save, writers = torch.save, []

    def slow_save(obj, f, *args, **kwargs):
        writers.append(threading.current_thread().name)
        time.sleep(0.2)  # a busy disk: training takes further steps meanwhile
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", slow_save)
    killed = _toy()
    killed.fail_at = 3
    with pytest.raises(KeyboardInterrupt):
        fit(killed, data, EVERY_EPOCH, checkpoint=tmp_path / "c.ckpt")
    assert torch.load(tmp_path / "c.ckpt", weights_only=False)["epoch"] == 2
    resumed = _toy(seed=0)
    summary = fit(resumed, data, EVERY_EPOCH, checkpoint=tmp_path / "c.ckpt")
    _assert_same_weights(ref, resumed)
    assert writers and threading.main_thread().name not in writers
    assert summary["checkpoints"]["write_seconds"] >= 0.2 * summary["checkpoints"]["written"]


def test_a_full_disk_during_a_checkpoint_write_is_one_message_naming_the_file(
    small_demo, tmp_path, monkeypatch
):
    """The background write fails first; the next history write fails on the same full
    disk. What the user sees is the checkpoint's error, naming the file and the fix."""
    import errno
    import os

    disk = {"full": False}

    def fill(path) -> OSError:
        disk["full"] = True
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    def save(obj, f, *args, **kwargs):
        raise fill(f)

    write_history = train._write_history

    def history(path, rows):
        if disk["full"]:
            raise fill(path)
        write_history(path, rows)

    monkeypatch.setattr(torch, "save", save)
    monkeypatch.setattr(train, "_write_history", history)
    ckpt = tmp_path / "model.ckpt"
    with pytest.raises(OSError) as err:
        fit(
            _toy(),
            _data(small_demo, np.arange(300)),
            EVERY_EPOCH,
            checkpoint=ckpt,
            history_csv=tmp_path / "log.csv",
        )
    message = str(err.value)
    assert message.startswith(f"could not write the checkpoint {ckpt}: No space left"), message
    assert "Free space" in message and "checkpoint_minutes: 0" in message, message


def test_checkpoint_of_other_settings_is_ignored(small_demo, tmp_path):
    data = _data(small_demo, np.arange(300))
    killed = _toy(lr=0.05)
    killed.fail_at = 1
    with pytest.raises(KeyboardInterrupt):
        fit(killed, data, EVERY_EPOCH, checkpoint=tmp_path / "c.ckpt")
    fresh = _toy(lr=0.01)  # another learning rate: must start from scratch
    summary = fit(fresh, data, EVERY_EPOCH, checkpoint=tmp_path / "c.ckpt")
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

    assert validation_map(m, val, "tie_aware") == pytest.approx(max(scores))  # best state loaded


def test_tie_aware_selection_ranks_epochs_by_the_tie_aware_map(small_demo):
    """select_metric: tie_aware ranks the epochs by the tie-aware validation mAP@all, which
    on a small validation split differs from the fixed tie rule's mAP@all."""
    from xmhash import bits, metrics
    from xmhash.train import validation_map

    data = _data(small_demo, np.arange(300))
    val = ValData(
        items=Items(image=small_demo.image[400:420], text=small_demo.text[400:420]),
        labels=small_demo.labels[400:420],
    )
    m = _toy(epochs=4)
    settings = TrainSettings(device="cpu", select="val", select_metric="tie_aware")
    summary = fit(m, data, settings, val=val)
    scores = [r["val_map"] for r in summary["history"]]
    assert summary["select_metric"] == "tie_aware"
    assert summary["epoch"] == 1 + int(np.argmax(scores))
    codes = {mod: bits.pack(m.encode(val.items, mod)) for mod in ("image", "text")}
    expect = np.mean(
        [
            metrics.evaluate(codes[a], codes[b], val.labels, val.labels, 16, ks=(), pn=())[
                "map@all_tie_aware"
            ]
            for a, b in (("image", "text"), ("text", "image"))
        ]
    )
    assert summary["val_map"] == pytest.approx(expect)
    assert validation_map(m, val, "tie_aware") == pytest.approx(expect)
    assert validation_map(m, val, "map") != pytest.approx(expect)  # 20 items: ties matter


def test_val_selection_needs_a_validation_split(small_demo):
    with pytest.raises(ValueError, match="needs a validation split"):
        fit(_toy(), _data(small_demo, np.arange(100)), TrainSettings(device="cpu", select="val"))


def test_nan_loss_is_a_clear_error(small_demo):
    m = _toy(lr=1e30)
    with pytest.raises(FloatingPointError, match="toy: loss became non-finite in epoch 1 of 6"):
        fit(m, _data(small_demo, np.arange(300)), TrainSettings(device="cpu"))


class NaNAt(Toy):
    """One step of one epoch has a NaN loss term."""

    def loss(self, batch, epoch):
        terms = super().loss(batch, epoch)
        if epoch == 3 and int(batch.idx[0]) % 2 == 0:
            terms["quant"] = terms["quant"] * float("nan")
            terms["loss"] = terms["align"] + terms["quant"]
        return terms


def test_a_non_finite_step_is_named_with_its_epoch(small_demo, tmp_path):
    m = NaNAt(ToyParams(), bits=16, image_dim=64, text_dim=64, seed=0)
    with pytest.raises(
        FloatingPointError, match=r"toy: loss became non-finite in epoch 4 of 6 \(term\(s\) loss"
    ):
        fit(m, _data(small_demo, np.arange(300)), EVERY_EPOCH, checkpoint=tmp_path / "c.ckpt")
    # the last checkpoint is of epoch 3, before the NaN: a rerun resumes from sane weights
    state = torch.load(tmp_path / "c.ckpt", weights_only=False)
    assert state["epoch"] == 2
    assert all(torch.isfinite(v).all() for v in state["net"].values())


# ---------------------------------------------------------------- stale checkpoints


def _killed_then_rerun(data_before, data_after, tmp_path, caplog, **toy):
    """A run killed after epoch 2 on ``data_before`` (its checkpoint stays), then a run
    on ``data_after``: returns the rerun's method and summary."""
    killed = _toy(**toy)
    killed.fail_at = 2
    with pytest.raises(KeyboardInterrupt):
        fit(killed, data_before, EVERY_EPOCH, checkpoint=tmp_path / "c.ckpt")
    assert (tmp_path / "c.ckpt").exists()
    rerun = _toy(**toy)
    with caplog.at_level(logging.INFO, logger="xmhash.train"):
        summary = fit(rerun, data_after, EVERY_EPOCH, checkpoint=tmp_path / "c.ckpt")
    return rerun, summary


def _assert_same_weights(a, b):
    for (k, x), y in zip(a.net.state_dict().items(), b.net.state_dict().values(), strict=True):
        assert torch.equal(x, y), k


@pytest.mark.parametrize("change", ["features", "split", "labels"])
def test_checkpoint_of_other_inputs_is_discarded(small_demo, tmp_path, caplog, change):
    """Killed mid-training, then the inputs change with the number of items unchanged:
    the rerun starts from scratch, says why, and equals a clean run on the new inputs."""
    rows = np.arange(300)
    before = _data(small_demo, rows)
    before.labels = torch.tensor(small_demo.labels[rows], dtype=torch.float32)
    after = _data(small_demo, rows)
    after.labels = before.labels.clone()
    if change == "split":
        after.rows = rows + 100  # other training rows (the features alone would not tell)
    if change == "features":
        after.image = after.image + 0.01  # e.g. another demo seed: same shapes, new content
    if change == "labels":
        after.labels[:10] = 1 - after.labels[:10]  # other noisy labels
    rerun, summary = _killed_then_rerun(before, after, tmp_path, caplog)
    assert f"discarding checkpoint {tmp_path / 'c.ckpt'}: it was written for other {change}" in (
        caplog.text
    )
    assert "resumed from" not in caplog.text
    assert [r["epoch"] for r in summary["history"]] == list(range(1, 7))
    clean = _toy()
    fit(clean, after, TrainSettings(device="cpu"))
    _assert_same_weights(clean, rerun)


def test_checkpoint_of_other_graph_file_is_discarded(small_demo, tmp_path, caplog):
    graph = tmp_path / "g.h5"
    graph.write_bytes(b"graph one")
    before = _data(small_demo, np.arange(300))
    before.graph = {"vtmuch": graph}
    after = _data(small_demo, np.arange(300))
    after.graph = {"vtmuch": tmp_path / "g2.h5"}
    after.graph["vtmuch"].write_bytes(b"graph two")  # same size, other content
    _killed_then_rerun(before, after, tmp_path, caplog)
    assert "it was written for other graph" in caplog.text


def test_checkpoint_of_other_code_is_discarded(small_demo, tmp_path, caplog, monkeypatch):
    module = tmp_path / "toy_module.py"
    module.write_text("from test_train import Toy\n\n\nclass ToyCopy(Toy):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import toy_module

    data = _data(small_demo, np.arange(300))
    killed = toy_module.ToyCopy(ToyParams(), bits=16, image_dim=64, text_dim=64, seed=0)
    killed.fail_at = 2
    with pytest.raises(KeyboardInterrupt):
        fit(killed, data, EVERY_EPOCH, checkpoint=tmp_path / "c.ckpt")
    module.write_text(module.read_text() + "# a change to the method's code\n")
    rerun = toy_module.ToyCopy(ToyParams(), bits=16, image_dim=64, text_dim=64, seed=0)
    with caplog.at_level(logging.INFO, logger="xmhash.train"):
        fit(rerun, data, EVERY_EPOCH, checkpoint=tmp_path / "c.ckpt")
    assert "it was written for other code" in caplog.text
    sys.modules.pop("toy_module", None)


def test_unchanged_inputs_resume_and_say_so(small_demo, tmp_path, caplog):
    data = _data(small_demo, np.arange(300))
    rerun, summary = _killed_then_rerun(data, _data(small_demo, np.arange(300)), tmp_path, caplog)
    assert "resumed from" in caplog.text and "after epoch 2" in caplog.text
    ref = _toy()
    fit(ref, data, TrainSettings(device="cpu"))
    _assert_same_weights(ref, rerun)


def test_unreadable_checkpoint_is_discarded(small_demo, tmp_path, caplog):
    (tmp_path / "c.ckpt").write_bytes(b"not a checkpoint")
    with caplog.at_level(logging.INFO, logger="xmhash.train"):
        summary = fit(
            _toy(), _data(small_demo, np.arange(300)), EVERY_EPOCH, checkpoint=tmp_path / "c.ckpt"
        )
    assert "unreadable" in caplog.text and len(summary["history"]) == 6


def test_cuda_generator_states_are_saved_and_restored(small_demo, tmp_path, monkeypatch):
    """On a CUDA process the checkpoint carries every device's generator state and the
    resumed run restores it (CUDA simulated: the calls are recorded)."""
    states = [torch.tensor([1, 2, 3], dtype=torch.uint8), torch.tensor([4], dtype=torch.uint8)]
    restored = []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [s.clone() for s in states])
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda new: restored.append(new))
    data = _data(small_demo, np.arange(300))
    killed = _toy()
    killed.fail_at = 2
    with pytest.raises(KeyboardInterrupt):
        fit(killed, data, EVERY_EPOCH, checkpoint=tmp_path / "c.ckpt")
    saved = torch.load(tmp_path / "c.ckpt", weights_only=False)["rng"]["cuda"]
    assert [s.tolist() for s in saved] == [[1, 2, 3], [4]]
    assert restored == []
    fit(_toy(), data, EVERY_EPOCH, checkpoint=tmp_path / "c.ckpt")
    assert len(restored) == 1 and [s.tolist() for s in restored[0]] == [[1, 2, 3], [4]]


@pytest.mark.gpu
def test_resume_equals_uninterrupted_run_on_cuda(small_demo, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    data = _data(small_demo, np.arange(300))
    data.image, data.text = data.image.cuda(), data.text.cuda()
    settings = replace(EVERY_EPOCH, device="cuda")

    def toy():
        torch.manual_seed(0)
        torch.cuda.manual_seed_all(0)
        return Toy(ToyParams(), bits=16, image_dim=64, text_dim=64, seed=0, device="cuda")

    ref = toy()
    fit(ref, data, settings)
    killed = toy()
    killed.fail_at = 2
    with pytest.raises(KeyboardInterrupt):
        fit(killed, data, settings, checkpoint=tmp_path / "c.ckpt")
    torch.cuda.manual_seed_all(123)  # the generators' state must come from the checkpoint
    resumed = toy()
    torch.cuda.manual_seed_all(123)
    fit(resumed, data, settings, checkpoint=tmp_path / "c.ckpt")
    _assert_same_weights(ref, resumed)


# ---------------------------------------------------------------- checkpoint schedule


def test_checkpoints_follow_the_clock_not_the_epochs(small_demo, tmp_path):
    data = _data(small_demo, np.arange(300))
    summary = fit(_toy(), data, TrainSettings(device="cpu"), checkpoint=tmp_path / "c.ckpt")
    assert summary["checkpoints"]["written"] == 0  # 6 short epochs, 10 minutes apart
    summary = fit(
        _toy(),
        data,
        TrainSettings(device="cpu"),
        checkpoint=tmp_path / "c.ckpt",
        keep_checkpoint=True,
    )
    assert summary["checkpoints"]["written"] == 0  # nor after the last epoch of a short run
    summary = fit(_toy(), data, EVERY_EPOCH, checkpoint=tmp_path / "c.ckpt")
    assert summary["checkpoints"]["written"] == 5  # every epoch but the last
    assert 0 < summary["checkpoints"]["share_of_training"] < 1
    assert not (tmp_path / "c.ckpt").exists()


def test_the_final_state_is_kept_for_the_caller(small_demo, tmp_path):
    data = _data(small_demo, np.arange(300))
    m = _toy()
    summary = fit(m, data, EVERY_EPOCH, checkpoint=tmp_path / "c.ckpt", keep_checkpoint=True)
    assert summary["checkpoints"]["written"] == 6
    state = torch.load(tmp_path / "c.ckpt", weights_only=False)
    assert state["epoch"] == 5
    # a job that died after training but before writing its outputs trains no epoch again
    again = _toy(seed=1)  # other initial weights: the result must come from the file
    again.seed = 0
    summary = fit(again, data, TrainSettings(device="cpu"), checkpoint=tmp_path / "c.ckpt")
    assert len(summary["history"]) == 6 and summary["checkpoints"]["written"] == 0
    _assert_same_weights(m, again)


# ---------------------------------------------------------------- hot loop

FAULTS = """
import resource, sys
import numpy as np, torch
sys.path.insert(0, sys.argv[1])
from xmhash.methods import METHODS
from xmhash.methods.base import TrainData
from xmhash.train import TrainSettings, fit

cls = METHODS["dcmh_feat"]
params = cls.Params.from_config({"epochs": 1, "batch_size": 16}, "methods.dcmh_feat")
x = torch.randn(32, 8)
data = TrainData(image=x, text=x, rows=np.arange(32), labels=torch.ones(32, 2))
fit(cls(params, bits=8, image_dim=8, text_dim=8, seed=0), data, TrainSettings(device="cpu"))
faults = []
for _ in range(3):  # what a step does to a wide layer's gradient: allocate, write, free
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.empty(64 * 2**20 // 4).fill_(1.0)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(faults[-1])
"""


def test_cpu_training_reuses_freed_memory_instead_of_faulting_it_in_again():
    """After training has started on the CPU, a large block that is freed and allocated
    again comes back from the heap: its pages are not faulted in anew (16,384 faults for
    64 MB with glibc's default, which unmaps blocks above 32 MB when they are freed)."""
    import platform
    import subprocess

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc's malloc only")
    res = subprocess.run(
        [sys.executable, "-c", FAULTS, str(Path(train.__file__).parents[1])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert int(res.stdout.split()[-1]) < 1000


def test_the_trainer_syncs_once_per_epoch_not_per_step(small_demo, host_syncs):  # noqa: F811
    data = _data(small_demo, np.arange(300))
    counts = []
    for bs in (100, 25):  # 3 and 12 steps per epoch
        host_syncs.calls.clear()
        fit(_toy(batch_size=bs), data, TrainSettings(device="cpu"))
        counts.append(len(host_syncs.calls))
    assert counts[0] == counts[1], host_syncs.calls


def test_tf32_setting_reaches_torch(small_demo):
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        data = _data(small_demo, np.arange(100))
        fit(_toy(epochs=1), data, TrainSettings(device="cpu", tf32=False))
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        fit(_toy(epochs=1), data, TrainSettings(device="cpu", tf32=True))
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        train.set_tf32(before[0])
        torch.backends.cudnn.allow_tf32 = before[1]


def test_autocast_policy():
    for bf16_supported in (True, False):
        cpu = autocast_policy("cpu", bf16_supported)
        assert cpu.dtype is None and not cpu.scaler
    bf16 = autocast_policy("cuda", True)
    assert bf16.dtype is torch.bfloat16 and not bf16.scaler
    fp16 = autocast_policy("cuda", False)
    assert fp16.dtype is torch.float16 and fp16.scaler


# ---------------------------------------------------------------- the train stage


def _stage_inputs(tmp_path, demo_seed):
    from xmhash.data.demo import DemoSpec, generate_demo
    from xmhash.data.splits import make_split, save_split
    from xmhash.features.store import write_features

    spec = DemoSpec(n_items=400, n_labels=8, latent_dim=16, image_dim=64, text_dim=64)
    feats = generate_demo(replace(spec, seed=demo_seed))
    features = tmp_path / "features.h5"
    write_features(features, feats)
    split = tmp_path / "split.npz"
    save_split(split, make_split(len(feats.ids), query=50, train=300, val=50, seed=0))
    return features, split


def _stage(features, split, out, method="djsrh", **kw):
    run = {
        "features": str(features),
        "split": str(split),
        "method": method,
        "params": {"epochs": 4, "batch_size": 50, **kw.pop("params", {})},
        "bits": 16,
        "seed": 0,
        "settings": kw.pop("settings", EVERY_EPOCH),
        "model_out": str(out / "model.pt"),
        "summary_out": str(out / "train.json"),
        "history_out": str(out / "train_log.csv"),
        **kw,
    }
    return train.run_training(**run)


def test_stage_killed_then_rerun_on_new_features_starts_over(tmp_path, caplog, monkeypatch):
    """The scenario of a user: kill a training job, regenerate the features with another
    seed (same number of items), rerun: the job says it starts over, and its model is
    that of a clean run on the new features."""
    from xmhash.methods.base import load_model
    from xmhash.methods.djsrh import DJSRH

    features, split = _stage_inputs(tmp_path, demo_seed=0)
    out = tmp_path / "run"
    out.mkdir()

    def kill(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt("simulated kill")

    with monkeypatch.context() as m:
        m.setattr(DJSRH, "on_epoch_end", kill)
        with pytest.raises(KeyboardInterrupt):
            _stage(features, split, out)
    assert (out / "model.ckpt").exists() and not (out / "model.pt").exists()

    features, split = _stage_inputs(tmp_path, demo_seed=1)  # same shapes, new content
    with caplog.at_level(logging.INFO, logger="xmhash.train"):
        summary = _stage(features, split, out)
    assert "it was written for other features; training from scratch" in caplog.text
    assert not (out / "model.ckpt").exists()  # removed once the outputs are written
    assert summary["checkpoints"]["written"] == 4  # every epoch (setting 0), incl. the last
    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    _stage(features, split, clean_dir, settings=TrainSettings(device="cpu"))
    a, b = load_model(out / "model.pt"), load_model(clean_dir / "model.pt")
    _assert_same_weights(a, b)


def test_stage_sets_the_threads(tmp_path):
    features, split = _stage_inputs(tmp_path, demo_seed=0)
    before = torch.get_num_threads()
    try:
        _stage(
            features,
            split,
            tmp_path,
            params={"epochs": 1},
            settings=replace(EVERY_EPOCH, threads=2),
        )
        assert torch.get_num_threads() == 2
        _stage(features, split, tmp_path, params={"epochs": 1}, threads=1)  # the rule's threads
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("method", ["cirh", "daeh", "dgcpn"])
def test_dense_methods_refuse_a_training_set_above_max_dense(tmp_path, method):
    from xmhash.graph.similarity import DenseTooLargeError

    features, split = _stage_inputs(tmp_path, demo_seed=0)
    with pytest.raises(DenseTooLargeError, match=r"300 x 300 .*graph\.max_dense=10,000"):
        _stage(features, split, tmp_path, method=method, params={"epochs": 1}, max_dense=10_000)


def test_the_epoch_permutation_is_drawn_on_the_trainers_device(small_demo, monkeypatch):
    data = _data(small_demo, np.arange(300))
    drawn = []
    randperm = torch.randperm

    def spy(n, *args, **kwargs):
        drawn.append((kwargs.get("device"), kwargs["generator"].device))
        return randperm(n, *args, **kwargs)

    monkeypatch.setattr(torch, "randperm", spy)
    fit(_toy(epochs=3, batch_size=25), data, TrainSettings(device="cpu"))
    # once per epoch (not per step), by a generator that lives on the device
    assert drawn == [(torch.device("cpu"), torch.device("cpu"))] * 3


def test_the_epoch_permutation_is_seeded_as_before(small_demo):
    """Batches come from randperm(n) seeded with (seed, epoch), so models trained before the
    permutation moved to the device are reproduced."""
    toy = _toy(batch_size=100)
    gen = torch.Generator(device="cpu").manual_seed(toy.seed * 1_000_003 + 4)
    got = torch.cat(list(toy.batches(4, 300, gen)))
    want = torch.randperm(300, generator=torch.Generator().manual_seed(4))
    assert torch.equal(got, want)


def test_term_sums_stack_every_term_and_follow_new_ones():
    sums = train.TermSums(torch.device("cpu"))
    steps = [
        {"loss": torch.tensor(1.0), "a": torch.tensor(0.5)},
        {"loss": torch.tensor(3.0), "a": 1.5},  # a Python float is accepted
        {"loss": torch.tensor(2.0), "a": torch.tensor(1.0), "late": torch.tensor(6.0)},
    ]
    for step in steps:
        sums.add(step)
    assert sums.keys == ["loss", "a", "late"]
    assert sums.means() == pytest.approx([2.0, 1.0, 2.0])
    assert sums.total.dtype == torch.float64 and sums.total.shape == (3,)


class Smooth(Toy):
    """The toy without dropout: compiled and eager kernels differ only by rounding."""

    def build(self):
        self.net.image = mlp([self.image_dim, 32, self.bits])
        self.net.text = mlp([self.text_dim, 32, self.bits])


def test_a_compiled_loss_trains_the_model_eager_training_gives(small_demo):
    data = _data(small_demo, np.arange(200))
    models, summaries = [], []
    for compiled in (False, True):
        torch.manual_seed(0)
        toy = Smooth(ToyParams(epochs=3, batch_size=50), bits=16, image_dim=64, text_dim=64, seed=0)
        summaries.append(fit(toy, data, TrainSettings(device="cpu", compile=compiled)))
        assert "loss" not in vars(toy)  # the compiled loss ends with the fit
        models.append(toy.net.state_dict())
    for k, a in models[0].items():
        torch.testing.assert_close(models[1][k], a, rtol=1e-4, atol=1e-5, msg=k)
    for a, b in zip(summaries[0]["history"], summaries[1]["history"], strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)


def test_a_method_that_cannot_be_compiled_runs_eagerly(small_demo, caplog):
    class Eager(Smooth):
        compilable = False

    toy = Eager(ToyParams(epochs=1, batch_size=50), bits=16, image_dim=64, text_dim=64, seed=0)
    with caplog.at_level(logging.INFO, logger="xmhash.train"):
        fit(toy, _data(small_demo, np.arange(100)), TrainSettings(device="cpu", compile=True))
    assert "cannot be compiled" in caplog.text
