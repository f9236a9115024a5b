"""The real-data quality benchmark (benchmarks/real_quality.py): its acceptance rule, and a
reduced grid on the real Wikipedia features (1 seed, 32 bits) where every unsupervised
method must give codes that did not collapse. The real-data cases run when
``../shared/data/wikipedia-sift-lda`` exists and skip otherwise.

The reduced grid trains config.yaml's own schedules, which are short already (3 to 20
epochs over 2,173 items: 2 to 8 CPU seconds per method). Cutting them further flags
collapses that the full schedule does not have: UCCH's image codes at 32 bits are
collapsed after 3 to 5 of its 10 epochs (39 to 75 distinct codes), CIRH's after 10 of
its 15; a collapse this test reports is one that a user of the defaults gets."""

from __future__ import annotations

import json
import sys

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import real_quality as rq  # noqa: E402  benchmarks/real_quality.py

WIKI = (REPO / "../shared/data/wikipedia-sift-lda").resolve()
needs_wiki = pytest.mark.skipif(not WIKI.is_dir(), reason=f"no {WIKI}")


def _means(**rows):
    """Seed-mean cells {(task, bits): mAP} from (i2t, t2i) per method at 16 bits."""
    return {m: {("i2t", 16): a, ("t2i", 16): b} for m, (a, b) in rows.items()}


def test_acceptance_needs_the_lead_over_lsh_in_both_directions_and_no_collapse():
    means = _means(lsh=(0.14, 0.11), djsrh=(0.20, 0.31), jdsh=(0.25, 0.15), dgcpn=(0.30, 0.30))
    v = rq.acceptance(means, {"dgcpn": 2}, [16], deep={"djsrh", "jdsh", "dgcpn"})
    assert v["lsh"] == "-" and v["djsrh"] == "pass"
    assert v["jdsh"] == "FAIL: t2i 16: lsh+0.0400"
    assert v["dgcpn"] == "FAIL: 2 runs collapsed"


def test_acceptance_holds_enhash_to_the_best_of_its_rivals():
    means = _means(lsh=(0.1, 0.1), djsrh=(0.3, 0.3), jdsh=(0.2, 0.5), enhash=(0.34, 0.34))
    deep = {"djsrh", "jdsh", "enhash"}
    assert rq.acceptance(means, {}, [16], deep)["enhash"] == "FAIL: mean 16: best rival-0.0100"
    means["enhash"] = {("i2t", 16): 0.35, ("t2i", 16): 0.35}
    assert rq.acceptance(means, {}, [16], deep)["enhash"] == "pass"


def test_acceptance_of_enhash_run_alone_says_it_has_no_rival():
    means = _means(lsh=(0.1, 0.1), enhash=(0.34, 0.34))
    verdict = rq.acceptance(means, {}, [16], {"enhash"})["enhash"]
    assert verdict == "FAIL: no djsrh/jdsh/dgcpn run to compare with"


def test_short_schedules_cap_epochs_and_warmup():
    assert rq.short_schedule({"epochs": 10, "warmup_epochs": 2, "lr": 1}, 2) == {
        "epochs": 2,
        "warmup_epochs": 1,
        "lr": 1,
    }
    assert rq.short_schedule({"epochs": 1}, 3) == {"epochs": 1}
    assert rq.short_schedule({"bits": 1}, 3) == {"bits": 1}  # closed-form: no epochs


def test_default_methods_are_the_feature_methods_of_each_track():
    clean, noisy = rq.default_methods(False), rq.default_methods(True)
    assert {"lsh", "cca_itq", "djsrh", "enhash", "daeh"} <= set(clean)
    assert "vtmuch" not in clean  # it needs an encoder's words and regions
    assert {"rshnl", "ce_centre", "gce_centre"} <= set(noisy) and not set(clean) & set(noisy)


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    """The stages on the real features, sharing the feature file and the split."""
    return rq.Stages(rq.config(), WIKI, tmp_path_factory.mktemp("real"), "lda", None)


@needs_wiki
def test_the_command_prints_one_line_per_run_and_the_table(tmp_path, capsys):
    args = ["--data", str(WIKI), "--methods", "lsh", "--bits", "32", "--seeds", "0"]
    assert rq.main([*args, "--work", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert [(r["method"], r["bits"], r["seed"]) for r in lines] == [
        ("cca_itq", 32, 0),
        ("lsh", 32, 0),
    ]  # the references always run
    keys = {"method", "bits", "seed", "i2t", "t2i", "collapsed", "distinct_codes"}
    assert keys <= set(lines[0])
    assert "| chance | 0.111 |" in out
    # the workflow's files, as the rules name them
    run = tmp_path / "results/wikipedia/lsh/32bits/seed0"
    assert {p.name for p in run.iterdir()} >= {"model.pt", "codes.h5", "metrics.json"}
    split = json.loads((run / "metrics.json").read_text())
    assert split["chance"]["map@all_expected"] == pytest.approx(lines[1]["chance"], abs=1e-4)


@needs_wiki
@pytest.mark.parametrize("method", rq.default_methods(False))
def test_no_method_collapses_on_real_features(stages, method):
    """32 bits, seed 0, config.yaml's schedules: the codes of every unsupervised method
    keep the items apart (evaluate's collapse flags stay off)."""
    (r,) = rq.runs(stages, [method], [32], [0], None)
    assert not r["collapsed"], r


def test_noise_setting_is_checked():
    with pytest.raises(SystemExit):
        rq.main(["--data", "x", "--noise", "sym0.5"])
    with pytest.raises(SystemExit):
        rq.main(["--data", "x", "--noise", "flip:0.5"])


@needs_wiki
def test_noise_trains_the_noisy_label_methods_on_corrupted_labels(tmp_path, capsys):
    args = ["--data", str(WIKI), "--noise", "sym:0.5", "--methods", "rshnl", "--epochs", "1"]
    assert rq.main([*args, "--bits", "32", "--seeds", "0", "--work", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert [json.loads(x)["method"] for x in out.splitlines() if x.startswith("{")] == [
        "lsh",
        "cca_itq",
        "rshnl",
    ]
    results = tmp_path / "results/wikipedia"
    assert (results / "noise/sym0.5/seed0.npz").is_file()
    run = results / "noisesym0.5/rshnl/32bits/seed0"
    assert (run / "sample_weights.npz").is_file()
    assert json.loads((run / "metrics.json").read_text())["variant"] == "noise-sym0.5"
    assert "acceptance:" not in out  # the acceptance is the clean track's
