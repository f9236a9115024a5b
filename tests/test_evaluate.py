"""The evaluation stage describes the codes and warns when they collapse."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from xmhash.codes import Codes, make_codeset, save_codes
from xmhash.evaluate import evaluate_run


def _run(tmp_path, small_demo, small_demo_file, text_codes=None, summary=None):
    f = small_demo
    rng = np.random.default_rng(0)
    proj = rng.standard_normal((f.image.shape[1], 16))
    q, d = np.arange(100), np.arange(100, len(f))

    def codeset(rows):
        image = np.where(f.image[rows] @ proj >= 0, 1, -1)
        text = np.where(f.text[rows] @ proj >= 0, 1, -1) if text_codes is None else text_codes(rows)
        return make_codeset(image, text, f.ids[rows], rows)

    path = tmp_path / "codes.h5"
    save_codes(path, Codes(bits=16, query=codeset(q), database=codeset(d), attrs={"method": "m"}))
    out = tmp_path / "metrics.json"
    evaluate_run(
        codes=str(path),
        features=str(small_demo_file),
        out=str(out),
        ks=(),
        pn=(),
        tie_seed=0,
        train_summary=summary,
    )
    return json.loads(out.read_text())


def test_healthy_codes_are_described_without_warnings(tmp_path, small_demo, small_demo_file):
    m = _run(tmp_path, small_demo, small_demo_file)
    stats = m["codes"]["database"]["text"]
    assert stats["items"] == len(small_demo) - 100
    assert stats["distinct"] > 100 and stats["constant_bits"] == 0
    assert m["collapsed"] is False and m["warnings"] == []


def test_one_code_for_every_text_is_a_collapse(tmp_path, small_demo, small_demo_file, caplog):
    def same(rows):
        return np.ones((len(rows), 16), np.int8)

    with caplog.at_level(logging.WARNING, logger="xmhash.evaluate"):
        m = _run(tmp_path, small_demo, small_demo_file, text_codes=same)
    assert m["codes"]["database"]["text"]["distinct"] == 1
    assert m["codes"]["database"]["text"]["constant_bits"] == 1.0
    assert m["codes"]["database"]["image"]["distinct"] > 100
    assert m["collapsed"] is True
    assert any("collapsed database text codes" in w for w in m["warnings"])
    assert not any("image codes" in w for w in m["warnings"])
    assert any("at chance" in w for w in m["warnings"])  # every text ties: a random ranking
    assert "collapsed database text codes" in caplog.text


def test_training_warnings_reach_the_metrics(tmp_path, small_demo, small_demo_file, caplog):
    """A mechanism that switched itself off during training (the training summary's
    ``warnings`` and ``self_paced``) is reported beside the code warnings."""
    summary = tmp_path / "summary.json"
    self_paced = {"gamma": 3.0, "switched_off": True, "difficulty_range": [4.0, 4.5]}
    warning = "self-paced weights switched off: ... (gamma = 3, difficulty 4.00-4.50)"
    summary.write_text(
        json.dumps(
            {"selection": "val", "epoch": 7, "warnings": [warning], "self_paced": self_paced}
        )
    )
    with caplog.at_level(logging.WARNING, logger="xmhash.evaluate"):
        m = _run(tmp_path, small_demo, small_demo_file, summary=str(summary))
    assert m["warnings"] == [warning]
    assert m["self_paced"] == self_paced
    assert m["collapsed"] is False
    assert "self-paced weights switched off" in caplog.text


def test_codes_without_queries_are_one_message_naming_the_file(tmp_path, small_demo_file):
    empty = make_codeset(np.ones((0, 16)), np.ones((0, 16)), np.array([], str), np.array([], int))
    full = make_codeset(np.ones((5, 16)), np.ones((5, 16)), np.arange(5).astype(str), np.arange(5))
    path = tmp_path / "codes.h5"
    save_codes(path, Codes(bits=16, query=empty, database=full))
    with pytest.raises(ValueError, match=f"{path} holds 0 query and 5 database items"):
        evaluate_run(
            codes=str(path),
            features=str(small_demo_file),
            out=str(tmp_path / "m.json"),
            ks=(),
            pn=(),
            tie_seed=0,
        )
